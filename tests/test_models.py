import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.models import MODELS, UnknownModelError, build_model, model_kind
from harness.models.base import INPUT_SEED_PARITY, INPUT_SEED_TIMING
from harness.models.mlp import build_mlp
from harness.models.onnx_graph import materialize_weights, onnx_flops
from harness.models.user import UserModelError, build_from_file, model_name_for, parse_input_shapes


def test_mlp_shapes_and_flops_are_analytic():
    m = build_mlp("m", batch=4, features=32, hidden=64, layers=3, classes=5)
    x = m.make_inputs(INPUT_SEED_TIMING)
    assert [a.shape for a in x] == [(4, 32)]
    assert m.flops() == 2 * 4 * (32 * 64 + 64 * 64 + 64 * 5)
    y64, y32 = m.reference(x)
    assert y64[0].shape == (4, 5) and y64[0].dtype == np.float64 and y32[0].dtype == np.float32


def test_builders_are_seeded_and_inputs_differ_between_timing_and_parity():
    a, b = build_model("bert_tiny"), build_model("bert_tiny")
    xa, xb = a.make_inputs(INPUT_SEED_PARITY), b.make_inputs(INPUT_SEED_PARITY)
    np.testing.assert_array_equal(xa[0], xb[0])
    np.testing.assert_array_equal(a.reference(xa)[0][0], b.reference(xb)[0][0])
    assert not np.array_equal(xa[0], a.make_inputs(INPUT_SEED_TIMING)[0])
    assert xa[0].dtype == np.int64 and xa[0].max() < 1000


@pytest.mark.parametrize(
    "name, shape, flops",
    [
        ("bert_tiny", (1, 2), None),
        ("resnet_tiny", (1, 10), None),
    ],
)
def test_builtin_torch_models_build_and_count_flops(name, shape, flops):
    m = build_model(name)
    y64, y32 = m.reference(m.make_inputs(INPUT_SEED_TIMING))
    assert y64[0].shape == shape
    assert m.flops() > 1e7
    assert float(np.max(np.abs(y32[0] - y64[0]))) < 1e-4


def test_encoder_flops_match_its_matmuls():
    # bert_tiny: 2 layers, hidden 128, seq 128 -> qkv, out, ffn (2x4) and attention matmuls
    h, s, layers = 128, 128, 2
    per_layer = 2 * s * h * (3 * h + h + 4 * h + 4 * h) + 2 * 2 * s * s * h
    heads = 2 * h * h + 2 * h * 2  # pooler + classifier on the first token
    assert build_model("bert_tiny").flops() == layers * per_layer + heads


def test_the_hf_layout_encoder_takes_a_mask_that_hides_padded_keys():
    hf, plain = build_model("bert_tiny_hf"), build_model("bert_tiny")
    ids, mask = hf.make_inputs(INPUT_SEED_TIMING)
    assert [s.name for s in hf.inputs] == ["input_ids", "attention_mask"]
    assert mask.shape == ids.shape == (1, 128) and mask.dtype == np.int64 and (mask == 1).all()  # timed unpadded
    assert hf.flops() == plain.flops()  # separate Q, K, V: the same matmuls as one QKV projection
    assert hf.transformer == plain.transformer

    def cls_logits(ids, mask):
        return hf.reference([ids, mask])[0][0]

    padded = mask.copy()
    padded[:, 100:] = 0
    other = ids.copy()
    other[:, 100:] = (ids[:, 100:] + 1) % 1000
    # the first token's logits see no padded key: changing padded tokens changes nothing ...
    np.testing.assert_array_equal(cls_logits(ids, padded), cls_logits(other, padded))
    # ... and they do change it when the same tokens are attended
    assert not np.allclose(cls_logits(ids, mask), cls_logits(other, mask))
    assert not np.allclose(cls_logits(ids, mask), cls_logits(ids, padded))


def test_batch_changes_input_shape_and_flops():
    one, eight = build_model("mlp", batch=1), build_model("mlp", batch=8)
    assert one.inputs[0].shape[0] == 1 and eight.inputs[0].shape[0] == 8
    assert eight.flops() == 8 * one.flops()


def test_light_graph_placeholders_become_seeded_weights():
    m = build_model("squeezenet")
    graph = m.onnx_model()
    assert not any(n.op_type == "ConstantOfShape" for n in graph.graph.node)
    assert [i.name for i in graph.graph.input] == ["data_0"]  # no initializers listed as inputs
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) == 17
    y_a = m.reference(m.make_inputs(1))[0][0]
    y_b = m.reference(m.make_inputs(2))[0][0]
    assert not np.allclose(y_a, y_b)  # outputs depend on the input
    assert y_a.max() < 0.9  # calibrated: softmax is not one-hot
    assert m.flops() == pytest.approx(0.698e9, rel=0.01)


def test_every_light_graph_is_registered_as_onnx():
    assert model_kind("resnet50") == "onnx" and model_kind("mlp") == "torch"
    with pytest.raises(UnknownModelError, match="unknown model 'nope'"):
        model_kind("nope")
    assert {"squeezenet", "resnet50", "mlp", "bert_tiny", "bert_base", "resnet_tiny", "mobilenet_v2"} <= set(MODELS)


def _tiny_graph(dynamic=False):
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N" if dynamic else 2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N" if dynamic else 2, 4])
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny", [x], [y], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_flops_counts_matmul():
    assert onnx_flops(_tiny_graph()) == 2 * 2 * 3 * 4


def test_model_file_and_input_shape_override(tmp_path):
    path = tmp_path / "my-net.v2.onnx"
    onnx.save(_tiny_graph(dynamic=True), path)
    with pytest.raises(UserModelError, match=r"dynamic shape \?x3; give it with --input-shape x=1x3"):
        build_from_file(str(path))
    m = build_from_file(str(path), {"x": (5, 3)})
    assert m.name == "my_net_v2" and m.inputs[0].shape == (5, 3)
    assert m.flops() == 2 * 5 * 3 * 4
    y64, _ = m.reference(m.make_inputs(0))
    assert y64[0].shape == (5, 4)


def test_model_file_errors_are_one_line(tmp_path):
    with pytest.raises(UserModelError, match="no such file"):
        build_from_file(str(tmp_path / "missing.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(UserModelError, match="not an ONNX model"):
        build_from_file(str(bad))
    good = tmp_path / "ok.onnx"
    onnx.save(_tiny_graph(), good)
    with pytest.raises(UserModelError, match=r"--input-shape names \['z'\] but the graph's inputs are \['x'\]"):
        build_from_file(str(good), {"z": (1,)})


def test_parse_input_shapes():
    assert parse_input_shapes(["x=1x3x224x224", "a=2,b=3x4"]) == {"x": (1, 3, 224, 224), "a": (2,), "b": (3, 4)}
    for bad in ["x", "x=", "x=1xa", "=1x2", "x=0x3"]:
        with pytest.raises(UserModelError, match="expected NAME=D1xD2"):
            parse_input_shapes([bad])


def test_model_names_are_id_safe():
    assert model_name_for("pkg.models:make_net") == "make_net"
    assert model_name_for("/a/b/My-Net.v2.onnx") == "My_Net_v2"


def test_materialize_weights_replaces_constant_of_shape():
    shape = numpy_helper.from_array(np.array([4, 3], dtype=np.int64), "w__SHAPE")
    value = numpy_helper.from_array(np.array([0.02], dtype=np.float32))
    node = helper.make_node("ConstantOfShape", ["w__SHAPE"], ["w"], value=value)
    mm = helper.make_node("MatMul", ["x", "w"], ["y"])
    g = helper.make_graph(
        [node, mm],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("w__SHAPE", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [shape],
    )
    out = materialize_weights(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), seed=3)
    assert [n.op_type for n in out.graph.node] == ["MatMul"]
    assert [i.name for i in out.graph.input] == ["x"]
    w = numpy_helper.to_array(next(i for i in out.graph.initializer if i.name == "w"))
    assert w.shape == (4, 3) and len(np.unique(w)) == 12
    again = numpy_helper.to_array(
        next(i for i in materialize_weights(helper.make_model(g), seed=3).graph.initializer if i.name == "w")
    )
    np.testing.assert_array_equal(w, again)
