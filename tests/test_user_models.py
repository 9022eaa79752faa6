"""A user's model is checked once, before any worker starts (harness.run.user_check): every way a
file or a factory can be unusable is one line naming it; an operator one importer lacks skips
that importer's cells only; a suite's broken model file fails its own cells only."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from harness.models.user import ModelFile, UserModelError, load_onnx_file
from harness.plan.matrix import Matrix
from harness.run.user_check import vet

ROOT = Path(__file__).resolve().parent.parent
X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])


def _model(nodes=None, ir=8, opset=17, inputs=None, inits=()):
    nodes = nodes or [helper.make_node("Relu", ["x"], ["y"])]
    graph = helper.make_graph(nodes, "g", inputs or [X], [Y], initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


def _external(folder: Path, location: str) -> Path:
    """A MatMul whose weight lives in external data at ``location`` (written raw, as a hostile file would be)."""
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", location
    path = folder / "model.onnx"
    path.write_bytes(_model([helper.make_node("MatMul", ["x", "w"], ["y"])], inits=[w]).SerializeToString())
    return path


def _bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.onnx"
    good = _model().SerializeToString()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "not_protobuf":
        path.write_text("name,latency\nbert,3.2\n")
    elif kind == "checker":
        path.write_bytes(_model([helper.make_node("Relu", ["undefined"], ["y"])]).SerializeToString())
    elif kind == "ir_too_new_for_ort":
        path.write_bytes(_model(ir=14, opset=21).SerializeToString())
    elif kind == "opset_too_new_for_ort":
        path.write_bytes(_model(ir=10, opset=27).SerializeToString())
    elif kind == "opset_unknown_to_onnx":
        path.write_bytes(_model(ir=10, opset=onnx.defs.onnx_opset_version() + 5).SerializeToString())
    elif kind == "ir_unknown_to_onnx":
        path.write_bytes(_model(ir=onnx.IR_VERSION + 1).SerializeToString())
    elif kind == "no_graph":
        path.write_bytes(onnx.ModelProto(ir_version=8).SerializeToString())
    return path


BAD_FILES = [
    ("empty", "the file is empty"),
    ("truncated", "not an ONNX model (truncated, or another format: DecodeError"),
    ("not_protobuf", "not an ONNX model (truncated, or another format"),
    ("no_graph", "holds no ONNX graph"),
    ("checker", "fails onnx.checker (ValidationError: Nodes in a graph must be topologically sorted"),
    ("ir_too_new_for_ort", "ONNX IR version 14, but onnxruntime"),
    ("opset_too_new_for_ort", "opset 27, but onnxruntime"),
    ("opset_unknown_to_onnx", "is newer than onnx"),
    ("ir_unknown_to_onnx", "is newer than onnx"),
]


@pytest.mark.parametrize("kind, message", BAD_FILES)
def test_an_unusable_file_is_one_line_naming_it(tmp_path, kind, message):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(UserModelError) as info:
        vet({"model_file": str(path)}, {"onnxruntime", "tvm"})
    text = str(info.value)
    assert text.startswith(f"--model-file {path}: ") and message in text and "\n" not in text


def test_ort_limits_only_matter_when_ort_runs_the_file(tmp_path):
    path = _bad_file(tmp_path, "ir_too_new_for_ort")
    assert vet({"model_file": str(path)}, {"tvm"}).refused == {}


@pytest.mark.parametrize(
    "location, message",
    [
        ("../../etc/passwd", "leads outside the model's folder"),
        ("/etc/passwd", "is not a relative path"),
        ("link.bin", "leads outside the model's folder"),  # a symlink pointing out
        ("missing.bin", "external data file 'missing.bin' is missing"),
    ],
)
def test_external_data_outside_the_models_folder_is_refused_before_it_is_read(tmp_path, monkeypatch, location, message):
    folder = tmp_path / "model"
    folder.mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(16, np.float32).tobytes())
    (folder / "link.bin").symlink_to(secret)
    path = _external(folder, location)
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    with pytest.raises(UserModelError, match=f"tensor 'w': .*{message}"):
        load_onnx_file(str(path))
    assert not [f for f in opened if "secret" in f or "passwd" in f or f.endswith(".bin")]


def test_two_locations_or_external_data_in_a_sparse_initializer_are_checked_too(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").write_bytes(np.ones(16, np.float32).tobytes())
    path = _external(folder, "w.bin")
    model = onnx.load(str(path), load_external_data=False)
    entry = model.graph.initializer[0].external_data.add()
    entry.key, entry.value = "location", "../outside.bin"  # readers take the last one
    path.write_bytes(model.SerializeToString())
    with pytest.raises(UserModelError, match="tensor 'w': 2 external data locations"):
        load_onnx_file(str(path))
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.ones(2, np.float32), "s"), numpy_helper.from_array(np.array([0, 5]), "i"), [4, 4]
    )
    sparse.values.ClearField("raw_data")
    sparse.values.data_location = TensorProto.EXTERNAL
    entry = sparse.values.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    model = _model()
    model.graph.sparse_initializer.append(sparse)
    path.write_bytes(model.SerializeToString())
    with pytest.raises(UserModelError, match="tensor 's': external data location '/etc/passwd' is not a relative"):
        load_onnx_file(str(path))


def test_external_data_inside_the_folder_loads(tmp_path):
    folder = tmp_path / "model"
    (folder / "weights").mkdir(parents=True)
    (folder / "weights" / "w.bin").write_bytes(np.full(16, 2, np.float32).tobytes())
    model, _ = load_onnx_file(str(_external(folder, "weights/w.bin")))
    assert numpy_helper.to_array(model.graph.initializer[0]).sum() == 32


@given(position=st.floats(0, 1, exclude_max=True), value=st.integers(0, 255), cut=st.booleans(), seed=st.integers(0, 9))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_damaged_file_loads_or_is_one_line(tmp_path, position, value, cut, seed):
    """One byte changed (or the file cut there) in a real graph: a checked model or a UserModelError."""
    w = numpy_helper.from_array(np.random.default_rng(seed).standard_normal((4, 4)).astype(np.float32), "w")
    data = bytearray(_model([helper.make_node("MatMul", ["x", "w"], ["y"])], inits=[w]).SerializeToString())
    index = int(position * len(data))
    data = data[:index] if cut else data[:index] + bytes([value]) + data[index + 1 :]
    path = tmp_path / "damaged.onnx"
    path.write_bytes(bytes(data))
    try:
        load_onnx_file(str(path))
    except UserModelError as exc:
        assert str(exc).startswith(f"--model-file {path}: ") and "\n" not in str(exc)


def test_an_operator_one_importer_lacks_refuses_that_importer_only(tmp_path):
    path = tmp_path / "celu.onnx"
    onnx.save(_model([helper.make_node("Celu", ["x"], ["y"])]), path)
    refused = vet({"model_file": str(path)}, {"onnxruntime", "tvm"}).refused
    assert list(refused) == ["tvm"] and "Relax ONNX frontend has no converter for Celu" in refused["tvm"]
    custom = tmp_path / "custom.onnx"
    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.acme")
    model = _model([node])
    model.opset_import.append(helper.make_opsetid("com.acme", 1))
    onnx.save(model, custom)
    refused = vet({"model_file": str(custom)}, {"onnxruntime", "tvm"}).refused
    assert "com.acme:Frobnicate(-1) is not a registered function/op" in refused["onnxruntime"]
    assert "no converter for Frobnicate" in refused["tvm"]


@pytest.mark.parametrize(
    "shapes, message",
    [
        ({"z": [1, 4]}, r"--input-shape names ['z'] but the graph's inputs are ['x']"),
        ({"x": [1, 4, 1]}, "input 'x' has rank 2 (1x4); --input-shape gives 3 dims"),
        ({"x": [1, 5]}, "input 'x' is 1x4 in the graph; --input-shape changes fixed dim 1 to 5"),
    ],
)
def test_wrong_input_shapes_are_one_line(tmp_path, shapes, message):
    path = tmp_path / "m.onnx"
    onnx.save(_model(), path)
    with pytest.raises(UserModelError) as info:
        vet({"model_file": str(path), "input_shapes": shapes})
    assert message in str(info.value)


@pytest.mark.parametrize(
    "factory, message",
    [
        ("tests.no_such_module:make", "cannot import (ModuleNotFoundError: No module named 'tests.no_such_module')"),
        ("tests.tiny_models:nothing_here", "cannot import (AttributeError: module 'tests.tiny_models' has no"),
        ("tests.tiny_models:raises", "the factory raised RuntimeError: weights not found"),
        ("tests.tiny_models:wrong_types", "must return (torch.nn.Module, example inputs: a tensor or a tuple of"),
        ("tests.tiny_models:wrong_inputs", "got inputs of type str"),
        ("tests.tiny_models:forward_fails", "the module's forward fails on its example inputs (1x5): RuntimeError"),
        ("tests.tiny_models:segfaults", "the process checking it killed by SIGSEGV before answering"),
    ],
)
def test_a_broken_factory_is_one_line_naming_it(factory, message):
    with pytest.raises(UserModelError) as info:
        vet({"model_factory": factory})
    assert str(info.value).startswith(f"--model-factory {factory}: ") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_good_factory_passes_with_its_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # checked where workers start, whatever the directory pytest runs in
    vetted = vet({"model_factory": "tests.tiny_models:tiny_mlp"})
    assert vetted.inputs == [{"name": "input0", "shape": [2, 16], "dtype": "float32"}]


def test_model_file_names_must_be_unique_and_not_built_in():
    from harness.plan.matrix import MatrixError

    both = r"ModelFile\('b/model.onnx'\) and ModelFile\('a/model.onnx'\) are both named 'model'"
    with pytest.raises(MatrixError, match=both):
        Matrix(models=[ModelFile("a/model.onnx"), ModelFile("b/model.onnx")], backends=["ort"])
    with pytest.raises(MatrixError, match="named 'mlp' like a built-in; give name="):
        Matrix(models=[ModelFile("nets/mlp.onnx")], backends=["ort"])
    matrix = Matrix(models=[ModelFile("a/model.onnx", name="a"), ModelFile("b/model.onnx", name="b")], backends=["ort"])
    assert matrix.models == ("a", "b")


def test_model_files_on_the_models_axis(tmp_path):
    matrix = Matrix(models=["mlp", ModelFile("nets/my-net.onnx", {"x": (2, 4)})], backends=["ort"])
    assert matrix.models == ("mlp", "my_net") and set(matrix.model_files) == {"my_net"}
    options = matrix.model_files["my_net"].options(tmp_path)
    assert options == {"model_file": str(tmp_path / "nets" / "my-net.onnx"), "input_shapes": {"x": [2, 4]}}


@pytest.mark.process
def test_a_bad_model_file_stops_the_run_before_any_worker_once(pytester, run_plugin):
    pytester.makepyfile(
        test_suite="from harness import Matrix\nMATRIX = Matrix(models=['mlp'], backends=['ort', 'tvm'], "
        "threads=['1', '2'])\n\ndef test_latency(cell, measure_cell):\n    measure_cell(cell)\n"
    )
    _bad_file(pytester.path, "truncated")
    out = run_plugin("--model-file", "truncated.onnx")
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in out.stderr.lines if "truncated.onnx" in line]
    assert len(errors) == 1 and errors[0].startswith("ERROR: infer-bench: --model-file truncated.onnx: not an ONNX")
    assert "infer-bench: measuring" not in out.stdout.str() and "Traceback" not in out.stderr.str()


SUITE_WITH_FILES = """
from harness import Matrix, ModelFile

MATRIX = Matrix(models=["tiny", ModelFile("broken.onnx"), ModelFile("celu.onnx")], backends=["ort", "tvm"],
                threads=["1"])


def test_latency(cell, measure_cell):
    measure_cell(cell)
"""


@pytest.mark.process
def test_a_suites_broken_model_file_fails_its_own_cells_and_the_rest_runs(pytester, run_plugin):
    """The suite names a good file, a truncated one and one TVM cannot import: the good file runs on
    both backends, the broken one's cells fail with one line and no worker, Celu skips on TVM only."""
    onnx.save(_model(), pytester.path / "tiny.onnx")
    onnx.save(_model([helper.make_node("Celu", ["x"], ["y"])]), pytester.path / "celu.onnx")
    (pytester.path / "broken.onnx").write_bytes(_model().SerializeToString()[:20])
    pytester.makepyfile(test_suite=SUITE_WITH_FILES.replace('"tiny"', 'ModelFile("tiny.onnx")'))
    out = run_plugin("--processes", "1", "--benchmark-max-time", "0.02", "--no-drift-control", "-rfs", "-q")
    out.assert_outcomes(passed=3, failed=2, skipped=1)
    out.stdout.fnmatch_lines_random(
        [
            "*infer-bench: measuring 3 cells, 3 worker processes*",
            "FAILED *test_latency[[]broken-ort-llvm-sp0-t1[]]*",
            "FAILED *test_latency[[]broken-tvm-llvm-sp0-t1[]]*",
            "broken-ort-llvm-sp0-t1: model file */broken.onnx: not an ONNX model (truncated, or another format*",
            "broken-tvm-llvm-sp0-t1: model file */broken.onnx: not an ONNX model (truncated, or another format*",
            "SKIPPED*Relax ONNX frontend has no converter for Celu*",
        ]
    )
    assert "Traceback" not in out.stdout.str()


@pytest.mark.process
def test_tune_refuses_a_model_tvm_cannot_import_before_its_worker(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "celu.onnx"
    onnx.save(_model([helper.make_node("Celu", ["x"], ["y"])]), path)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "tune", "--model-file", str(path), "--threads", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}: TVM {_tvm_version()}'s Relax ONNX frontend has no converter for Celu"
    ]


def _tvm_version() -> str:
    import tvm

    return tvm.__version__


@pytest.mark.process
def test_a_damaged_borrowed_tuning_database_is_a_usage_error(pytester, run_plugin):
    pytester.makepyfile(
        test_suite="from harness import Matrix\nMATRIX = Matrix(models=['mlp'], backends=['tvm'])\n\n"
        "def test_latency(cell, measure_cell):\n    measure_cell(cell)\n"
    )
    db = pytester.path / "db"
    db.mkdir()
    (db / "database_workload.json").write_text('["123", "AAAA"]\n')
    (db / "database_tuning_record.json").write_text("[0, [oops\n")
    out = run_plugin("--tvm-tuning-db", "db", "--collect-only")
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    out.stderr.fnmatch_lines(["ERROR: infer-bench: --tvm-tuning-db db: *database_* line 1: *"])
