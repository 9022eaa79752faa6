"""Each backend on a tiny model: compiles, runs, and matches eager PyTorch / the float64 truth."""

import numpy as np
import pytest

from harness.backends import BUILTIN, UnknownBackendError, get_backend, registered
from harness.models.base import INPUT_SEED_PARITY, OnnxModel
from harness.models.mlp import build_mlp
from harness.plan.targets import get_target
from harness.run.parity import check_parity


@pytest.fixture(scope="module")
def tiny():
    return build_mlp("tiny", batch=2, features=16, hidden=32, layers=2, classes=4)


@pytest.mark.parametrize("name", ["torch", "torch-compile", "ort", "tvm", "tvm-untuned"])
def test_backend_matches_eager_and_float64(name, tiny):
    backend = get_backend(name)
    assert backend.version()
    x = tiny.make_inputs(INPUT_SEED_PARITY)
    compiled = backend.compile(tiny, get_target("llvm"), 1, x)
    got = compiled.run(x)
    eager = get_backend("torch").compile(tiny, get_target("llvm"), 1, x).run(x)
    np.testing.assert_allclose(got[0], eager[0], rtol=1e-5, atol=1e-6)
    y64, y32 = tiny.reference(x)
    assert check_parity(["output"], got, y64, y32).passed
    step = compiled.prepare(x)
    step()  # the timing callable runs
    assert compiled.label and compiled.thread_info()
    info = compiled.build_info()  # the artifact on disk: a TVM library, ORT's graph; nothing for torch
    if name in ("ort", "tvm", "tvm-untuned"):
        assert info["artifact_bytes"] > 0 and info["artifact"], info
    else:
        assert info["artifact_bytes"] is None and info["artifact"].startswith("none: "), info


@pytest.mark.parametrize("name", ["ort", "tvm"])
def test_onnx_graph_backends_match_reference(name, tiny):
    graph = OnnxModel("tiny_onnx", tiny.onnx_model())
    x = graph.make_inputs(INPUT_SEED_PARITY)
    got = get_backend(name).compile(graph, get_target("llvm"), 1, x).run(x)
    y64, y32 = graph.reference(x)
    report = check_parity(graph.output_names(), got, y64, y32)
    assert report.passed, report.message


def test_tvm_generic_target_builds_without_mcpu(tiny):
    from harness.backends.tvm import tvm_target

    assert "mcpu" not in str(tvm_target(get_target("llvm-generic"), 1))
    host = tvm_target(get_target("llvm"), 2)
    assert "mcpu" in str(host)


def test_static_support_facts_need_no_imports():
    assert (
        get_backend("torch").unsupported_reason("onnx", "llvm")
        == "torch runs torch models; this model is an onnx graph"
    )
    assert (
        get_backend("ort")
        .unsupported_reason("onnx", "llvm-generic")
        .startswith("ort does not support target 'llvm-generic'")
    )
    assert get_backend("tvm").unsupported_reason("onnx", "llvm-generic") is None


def test_registry_entries_from_environment(monkeypatch):
    monkeypatch.setenv("INFER_BENCH_BACKENDS", "abort=tests.fake_backends:Abort")
    assert registered()["abort"] == "tests.fake_backends:Abort" and set(BUILTIN) <= set(registered())
    assert get_backend("abort").name == "abort"
    monkeypatch.setenv("INFER_BENCH_BACKENDS", "broken")
    with pytest.raises(UnknownBackendError, match="not name=package.module:Class"):
        registered()
    monkeypatch.delenv("INFER_BENCH_BACKENDS")
    with pytest.raises(UnknownBackendError, match="unknown backend 'nope'"):
        get_backend("nope")
