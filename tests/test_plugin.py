"""The pytest plugin end to end, in a fresh pytest subprocess per test."""

import json
import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.process  # every test here starts worker processes or a pytest subprocess

ROOT = Path(__file__).resolve().parent.parent
SUITE = """
from harness.plan.matrix import Matrix

MATRIX = Matrix(models=["mlp", "squeezenet"], backends=["torch", "ort"], threads=["1", "2"],
                smoke={"models": ["mlp"], "threads": ["1"]})


def test_latency(cell, measure_cell):
    measure_cell(cell)
"""
FAKES = ",".join(
    f"{n}=tests.fake_backends:{c}"
    for n, c in [("abort", "Abort"), ("hang", "Hang"), ("wrong", "WrongAnswer"), ("missing", "Missing")]
)


@pytest.fixture
def suite(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("INFER_BENCH_BACKENDS", FAKES)
    pytester.makepyfile(test_suite=SUITE)
    return lambda *args: pytester.runpytest_subprocess("-p", "harness.plugin.hooks", "-p", "no:cacheprovider", *args)


def test_ids_smoke_marker_and_axis_overrides(suite):
    out = suite("--collect-only", "-q")
    ids = [line.split("[")[1].rstrip("]") for line in out.outlines if "test_latency[" in line]
    assert ids == [
        "mlp-torch-llvm-sp0-t1",
        "mlp-torch-llvm-sp0-t2",
        "mlp-ort-llvm-sp0-t1",
        "mlp-ort-llvm-sp0-t2",
        "squeezenet-torch-llvm-sp0-t1",
        "squeezenet-torch-llvm-sp0-t2",
        "squeezenet-ort-llvm-sp0-t1",
        "squeezenet-ort-llvm-sp0-t2",
    ]
    out = suite("--collect-only", "-q", "-m", "smoke")
    assert [line for line in out.outlines if "test_latency[" in line] == [
        "test_suite.py::test_latency[mlp-torch-llvm-sp0-t1]",
        "test_suite.py::test_latency[mlp-ort-llvm-sp0-t1]",
    ]
    out = suite("--collect-only", "-q", "--backends", "ort", "--threads", "auto,4", "--sparsity", "0.5", "-m", "smoke")
    assert [line.split("[")[1] for line in out.outlines if "test_latency[" in line] == [
        "mlp-ort-llvm-sp50-tauto]",
        "mlp-ort-llvm-sp50-t4]",
    ]


def test_unsupported_cells_skip_with_their_reason(suite):
    out = suite("-rs", "-k", "squeezenet-torch", "--benchmark-disable")
    out.assert_outcomes(skipped=2)
    out.stdout.fnmatch_lines(["*torch runs torch models; this model is an onnx graph*"])


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("--backends", "nope"),
            "ERROR: infer-bench: unknown backend 'nope'; registered backends: torch, torch-compile, torch-sparse*",
        ),
        (("--threads", "0"), "*infer-bench: axis 'threads': thread count '0' must be at least 1*"),
        (("--thread-control", "omp"), "*thread control 'omp' is not one of both, env, api, unset*"),
        (("--cpuset", "999"), "*infer-bench: --cpuset '999': CPUs 999 are not available here*"),
        (
            ("--cpu-quota", "1", "--launcher", "inline"),
            "*1-CPU quota applies to worker processes; drop --launcher inline*",
        ),
        (
            ("--targets", "rocm"),
            "*infer-bench: unknown target 'rocm'; known targets: llvm, llvm-generic, cuda?:N?, cuda-tf32?:N?",
        ),
        (("--models", "nope"), "*unknown model 'nope'; built-in models:*"),
        (
            ("--targets", "llvm,cuda:1", "--rpc-tracker", "127.0.0.1:9190", "--rpc-key", "pi"),
            "*infer-bench: --rpc-tracker runs cells on an RPC device's CPU, not on cuda:1",
        ),
        (("--input-shape", "x=1x2"), "*--input-shape only applies to --model-file*"),
        (("--input-shape", "x=oops", "--model-file", "m.onnx"), "*--input-shape 'x=oops': expected NAME=D1xD2*"),
        (("--model-file", "missing.onnx"), "ERROR: infer-bench: --model-file missing.onnx: no such file"),
    ],
)
def test_bad_options_are_usage_errors_with_one_line(suite, args, message):
    out = suite("--collect-only", *args)
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    out.stderr.fnmatch_lines([message])


def test_cuda_cells_on_a_machine_without_a_gpu_are_skipped_before_any_worker(suite):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: its GPU decides")
    out = suite("-rs", "--models", "mlp", "--targets", "cuda,cuda-tf32:1", "--threads", "1,2")
    assert out.ret == pytest.ExitCode.OK
    out.assert_outcomes(skipped=4)  # mlp on torch and ort, two targets; the thread axis collapsed to 1
    out.stdout.fnmatch_lines(["SKIPPED ?4? *: no NVIDIA GPU here (nvidia-smi is missing or lists none)"])
    out.stdout.no_fnmatch_line("*infer-bench cells*")  # no worker ran: nothing was measured


def test_streams_beyond_the_cpus_are_skipped_before_any_worker(suite):
    out = suite("-rs", "--models", "mlp", "--backends", "ort", "--threads", "1", "--scenario", "throughput:streams=64")
    out.assert_outcomes(skipped=1)
    out.stdout.fnmatch_lines(["SKIPPED ?1? *: 64 streams x 1 threads exceed the * effective CPUs; use fewer streams*"])
    out.stdout.no_fnmatch_line("*infer-bench cells*")  # no worker ran


def test_broken_cells_fail_alone_and_good_cells_are_recorded(suite, pytester):
    out = suite(
        "--model-factory",
        "tests.tiny_models:tiny_mlp",
        "--backends",
        "torch,abort,hang,wrong,missing",
        "--threads",
        "1",
        "--cell-timeout",
        "10",
        "--benchmark-max-time",
        "0.05",
        "-rs",
        "--benchmark-json",
        "out.json",
    )
    out.assert_outcomes(passed=1, failed=3, skipped=1)
    out.stdout.fnmatch_lines_random(
        [
            "*tiny_mlp-abort-llvm-sp0-t1: worker killed by SIGABRT; stderr: about to abort*",
            "*tiny_mlp-hang-llvm-sp0-t1: timed out after 10s*",
            "*tiny_mlp-wrong-llvm-sp0-t1: output 'output' worst element*float64 expects*",
            "*missing cannot be imported: No module named 'package_that_does_not_exist'*",
            "*infer-bench cells*",
        ]
    )
    data = json.loads((pytester.path / "out.json").read_text())
    assert [b["param"] for b in data["benchmarks"]] == ["tiny_mlp-torch-llvm-sp0-t1"]
    bench = data["benchmarks"][0]
    info = bench["extra_info"]
    assert info["backend"] == "torch" and info["threads_resolved"] == 1 and info["parity_passed"] is True
    assert info["compile_s"] >= 0 and info["gflops_per_s"] > 0 and info["peak_rss_mb"] > 0
    assert info["threads_runtime"]["torch_num_threads"] == 1 and info["flops"] == 2 * 2 * (16 * 32 + 32 * 4)
    assert bench["stats"]["rounds"] >= 5 and bench["stats"]["median"] > 0
    assert data["machine_info"]["infer_bench"]["cpu_budget"]["effective_cpus"] >= 1


VERDICT_SUITE = """
import pytest
from harness.plan.matrix import Matrix

MATRIX = Matrix(models=["tiny_mlp"], backends=["sleeper"], threads=["1"])


def test_latency(cell, measure_cell):
    measure_cell(cell)


@pytest.mark.regression_threshold(9.0)
def test_tolerant(cell, measure_cell):
    measure_cell(cell)
"""


def test_fail_on_regression_and_verdict_table(pytester, monkeypatch):
    """Each call sleeps 2 ms in the baseline and 8 ms now: a 4x slowdown that CPU load cannot
    blur (a sleeping worker does not compete for the CPU), so the verdicts below do not depend on
    how busy the machine is, even after a drift correction of up to ~3x either way."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("INFER_BENCH_BACKENDS", "sleeper=tests.fake_backends:Sleeper")
    pytester.makepyfile(test_verdicts=VERDICT_SUITE)
    common = (
        "-p",
        "harness.plugin.hooks",
        "-p",
        "no:cacheprovider",
        "--model-factory",
        "tests.tiny_models:tiny_mlp",
        "--processes",
        "3",
        "--benchmark-max-time",
        "0.1",
        "--benchmark-storage",
        f"file://{pytester.path / 'store'}",
    )
    monkeypatch.setenv("INFER_BENCH_SLEEP_MS", "2")
    first = pytester.runpytest_subprocess(*common, "--benchmark-save", "base")
    first.assert_outcomes(passed=2)
    monkeypatch.setenv("INFER_BENCH_SLEEP_MS", "8")
    second = pytester.runpytest_subprocess(
        *common, "--benchmark-compare", "--fail-on-regression", "--benchmark-json", "cur.json"
    )
    second.stdout.fnmatch_lines_random(
        [
            "*infer-bench verdicts*",
            "test_latency[tiny_mlp-sleeper-llvm-sp0-t1]*REGRESSION*5%*",
            "test_tolerant[tiny_mlp-sleeper-llvm-sp0-t1]*900%*",
            "*control workload this run at 1 thread(s): 4 measurements within*",
            "*control now/baseline at 1 thread(s)*",
        ]
    )
    assert second.ret == pytest.ExitCode.TESTS_FAILED  # every test passed; the verdict fails the run
    second.assert_outcomes(passed=2)
    saved = json.loads((pytester.path / "cur.json").read_text())
    verdicts = {v["name"].split("::")[1]: v for v in saved["infer_bench"]["verdicts"]}
    assert verdicts["test_latency[tiny_mlp-sleeper-llvm-sp0-t1]"]["verdict"] == "regression"
    # 4x slower is significant, but below the tolerant test's 900%: seen as minor, not failing
    assert verdicts["test_tolerant[tiny_mlp-sleeper-llvm-sp0-t1]"]["verdict"] == "minor regression"
    assert 3.0 < verdicts["test_latency[tiny_mlp-sleeper-llvm-sp0-t1]"]["ratio"] < 4.5
    # the control ran at the cells' thread count before, between the interleaved rounds and after
    control = saved["infer_bench"]["control"]["samples"]
    assert [(c["threads"], c["at"]) for c in control] == [(1, "before"), (1, "round 1"), (1, "round 2"), (1, "after")]
    assert all(c["control_s"] > 0 for c in control)
    assert len(saved["benchmarks"][0]["extra_info"]["samples"]["per_process"]) == 3
    # without --fail-on-regression the same comparison does not change the exit code
    third = pytester.runpytest_subprocess(*common, "--benchmark-compare")
    assert third.ret == pytest.ExitCode.OK


def test_model_file_runs_through_the_graph_backends(suite, pytester):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
        "user",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [w],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
        pytester.path / "my-model.onnx",
    )
    out = suite(
        "--model-file",
        "my-model.onnx",
        "--input-shape",
        "x=3x8",
        "--backends",
        "ort,tvm,torch",
        "--threads",
        "1",
        "--processes",
        "1",
        "--benchmark-max-time",
        "0.05",
        "-rs",
        "--benchmark-json",
        "out.json",
    )
    out.assert_outcomes(passed=2, skipped=1)
    out.stdout.fnmatch_lines_random(
        [
            "*my_model-ort-llvm-sp0-t1*ok*",
            "*my_model-tvm-llvm-sp0-t1*ok*",
            "*torch runs torch models; this model is an onnx graph*",
        ]
    )
    info = {b["param"]: b["extra_info"] for b in json.loads((pytester.path / "out.json").read_text())["benchmarks"]}
    assert (
        info["my_model-tvm-llvm-sp0-t1"]["flops"] == 2 * 3 * 8 * 4 and info["my_model-ort-llvm-sp0-t1"]["parity_passed"]
    )
