"""The tvm backend's default CPU schedules: every function scheduled, parallel and vectorised where
the shapes allow, and numerically the same as numpy, on shapes chosen by hypothesis (primes and 1s
included: a tile that does not divide its loop must not be used)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

tvm = pytest.importorskip("tvm")

from tvm import relax  # noqa: E402

from harness.backends.tvm import pipeline, tvm_target  # noqa: E402
from harness.plan.targets import get_target  # noqa: E402

TARGET = tvm_target(get_target("llvm"), 2)


def _build(mod):
    fused = pipeline.fuse(mod, TARGET)
    assert fused.layout == "NHWC"
    scheduled = pipeline.schedule(fused.mod, TARGET)
    vm = relax.VirtualMachine(pipeline.build(scheduled.mod, TARGET), tvm.cpu())
    return scheduled, vm


def _unscheduled(mod) -> list[str]:
    return [
        gv.name_hint
        for gv, f in mod.functions_items()
        if isinstance(f, tvm.tirx.PrimFunc) and not (f.attrs and f.attrs.get("tirx.is_scheduled", False))
    ]


def _matmul_module(m, k, n, rng, epilogue):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((m, k), "float32"))
    w = rng.standard_normal((k, n)).astype("float32")
    b = rng.standard_normal((n,)).astype("float32")
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.matmul(x, relax.const(w)))
            if epilogue:
                y = bb.emit(relax.op.nn.relu(relax.op.add(y, relax.const(b))))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    ref = lambda a: np.maximum(a.astype(np.float64) @ w + b, 0) if epilogue else a.astype(np.float64) @ w  # noqa: E731
    return bb.get(), ref


@settings(max_examples=12, deadline=None)
@given(
    m=st.integers(1, 19),
    k=st.integers(1, 40),
    n=st.sampled_from([1, 3, 8, 13, 16, 24, 40, 64, 100]),
    epilogue=st.booleans(),
)
def test_matmul_schedule_matches_numpy(m, k, n, epilogue):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    mod, ref = _matmul_module(m, k, n, rng, epilogue)
    scheduled, vm = _build(mod)
    assert _unscheduled(scheduled.mod) == []
    a = rng.standard_normal((m, k)).astype("float32")
    got = vm["main"](tvm.runtime.tensor(a)).numpy()
    np.testing.assert_allclose(got, ref(a), rtol=1e-4, atol=1e-4)


def test_matmul_schedule_is_parallel_and_vectorised():
    mod, _ = _matmul_module(32, 64, 128, np.random.default_rng(0), epilogue=True)
    scheduled, _ = _build(mod)
    script = scheduled.mod.script()
    assert "T.parallel(" in script and "T.vectorized(" in script and "_local" in script  # register tile


@settings(max_examples=10, deadline=None)
@given(
    channels=st.integers(1, 6),
    size=st.integers(3, 14),
    out_channels=st.sampled_from([1, 5, 8, 16, 20]),
    kernel=st.sampled_from([1, 3]),
    stride=st.sampled_from([1, 2]),
    padding=st.sampled_from([0, 1]),
)
def test_conv2d_schedule_matches_torch(channels, size, out_channels, kernel, stride, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(channels * 100 + size)
    w = rng.standard_normal((out_channels, channels, kernel, kernel)).astype("float32")
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, channels, size, size), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, relax.const(w), strides=stride, padding=padding))
            out = bb.emit_output(relax.op.nn.relu(y))
        bb.emit_func_output(out)
    scheduled, vm = _build(bb.get())
    assert _unscheduled(scheduled.mod) == []
    a = rng.standard_normal((1, channels, size, size)).astype("float32")
    got = vm["main"](tvm.runtime.tensor(a)).numpy()
    expected = torch.relu(
        torch.nn.functional.conv2d(
            torch.from_numpy(a).double(), torch.from_numpy(w).double(), stride=stride, padding=padding
        )
    ).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_onnx_sum_becomes_adds_with_the_same_result():
    import onnx
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    from harness.backends.tvm.frontend import sum_as_adds

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in "abc"]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    graph = helper.make_model(
        helper.make_graph([helper.make_node("Sum", ["a", "b", "c"], ["y"])], "g", inputs, [out]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    rewritten = sum_as_adds(graph)
    onnx.checker.check_model(rewritten)
    assert [n.op_type for n in rewritten.graph.node] == ["Add", "Add"]
    assert [n.op_type for n in graph.graph.node] == ["Sum"]  # the model's own graph is left alone
    feeds = {n: np.random.default_rng(i).standard_normal((2, 3)).astype("float32") for i, n in enumerate("abc")}
    np.testing.assert_allclose(
        ReferenceEvaluator(rewritten).run(None, feeds)[0], ReferenceEvaluator(graph).run(None, feeds)[0], rtol=1e-6
    )
