"""Worker processes: crash, hang and error isolation; environment applied before import."""

import json
from pathlib import Path

import pytest

from harness.machine.confine import Confinement, ConfinementError
from harness.plan.cell import Cell
from harness.run.launcher import build_request
from harness.run.schedule import run_cell
from harness.run.worker import main as worker_main

pytestmark = pytest.mark.process  # every test here starts worker processes or a pytest subprocess

FACTORY = {"model_factory": "tests.tiny_models:tiny_mlp"}
FAKES = ",".join(
    f"{n}=tests.fake_backends:{c}"
    for n, c in [
        ("abort", "Abort"),
        ("segfault", "Segfault"),
        ("hang", "Hang"),
        ("raises", "Raises"),
        ("missing", "Missing"),
        ("wrong", "WrongAnswer"),
        ("envreport", "EnvReport"),
        ("hog", "MemoryHog"),
    ]
)
FAST = {"max_time": 0.05, "min_rounds": 3, "warmup": False}


@pytest.fixture(autouse=True)
def fake_backends(monkeypatch):
    monkeypatch.setenv("INFER_BENCH_BACKENDS", FAKES)


def _cell(backend, threads="1"):
    return Cell("tiny_mlp", backend, threads=threads, model_options=FACTORY)


@pytest.mark.parametrize(
    "backend, reason",
    [
        ("abort", "worker killed by SIGABRT; stderr: "),
        ("segfault", "worker killed by SIGSEGV; stderr: "),
    ],
)
def test_crashing_worker_fails_only_its_cell_with_signal_and_stderr(backend, reason):
    result = run_cell(_cell(backend), timing=FAST)
    assert result.status == "crashed"
    assert result.message.startswith(reason)
    assert f"about to {backend}" in result.message
    assert result.samples == []


def test_hanging_worker_is_killed_at_the_timeout():
    result = run_cell(_cell("hang"), timeout_s=8, timing=FAST)
    assert result.status == "crashed"
    assert result.message.startswith("timed out after 8s (per-cell timeout; raise it with --cell-timeout)")
    assert "hanging now" in result.message


MEMORY_LIMIT = Confinement(memory=512 * 2**20)
NO_MEMORY_CGROUP = MEMORY_LIMIT.unavailable()


@pytest.mark.skipif(NO_MEMORY_CGROUP is not None, reason=f"no memory cgroup here: {NO_MEMORY_CGROUP}")
def test_an_oom_killed_worker_fails_only_its_cell_and_says_so():
    """A real OOM kill (the kernel's, in the worker's memory cgroup; RLIMIT_AS would only make
    allocations fail): the cell fails naming the OOM killer and the limit, the next cell runs."""
    hog = run_cell(_cell("hog"), timing=FAST, confinement=MEMORY_LIMIT)
    assert hog.status == "crashed"
    assert hog.message.startswith("worker killed by the kernel's OOM killer: it passed its --memory-limit of 512 MiB")
    assert "(peak 512 MiB)" in hog.message
    assert "allocating until stopped" in hog.message
    good = run_cell(
        Cell("tiny_mlp", "torch", threads="1", model_options=FACTORY), timing=FAST, confinement=MEMORY_LIMIT
    )
    assert good.ok and good.samples
    assert good.confinement["memory"] == 512 * 2**20


def test_memory_limit_option_values():
    assert Confinement.parse(memory="1.5g").memory == int(1.5 * 2**30)
    assert Confinement.parse(memory="512MiB").describe() == "memory limit 512 MiB"
    for bad, message in [("lots", "is not a size"), ("1m", "is below 64 MiB")]:
        with pytest.raises(ConfinementError, match=message):
            Confinement.parse(memory=bad)


def test_backend_exception_is_a_one_line_error_with_stage():
    result = run_cell(_cell("raises"), timing=FAST)
    assert result.status == "error" and result.stage == "compile"
    assert result.message == "compile failed: RuntimeError: the in-house compiler rejected op 'Gelu'"
    assert "Traceback" in result.traceback


def test_missing_runtime_is_unavailable_not_failed():
    result = run_cell(_cell("missing"), timing=FAST)
    assert result.status == "unavailable"
    assert "No module named 'package_that_does_not_exist'" in result.message


def test_wrong_answers_fail_parity_and_are_not_timed():
    result = run_cell(_cell("wrong"), timing=FAST)
    assert result.status == "parity_failed"
    assert result.samples == []
    assert result.message.startswith("output 'output' worst element [")
    assert "float64 expects" in result.message


def test_environment_is_applied_before_any_runtime_loads():
    seen = {}
    for threads in ("1", "2"):
        result = run_cell(_cell("envreport", threads), timing=FAST)
        assert result.status == "ok", result.message
        seen[threads] = result.threads
    for threads, info in seen.items():
        assert info.runtime["omp_env_seen"] == threads
        assert info.runtime["torch_threads_at_import"] == int(threads)  # read by torch at import
        assert info.env["OMP_NUM_THREADS"] == threads and info.env["TVM_NUM_THREADS"] == threads
        assert info.os_threads >= 1


def test_good_cell_returns_samples_and_metadata():
    result = run_cell(_cell("torch"), timing=FAST)
    assert result.status == "ok"
    [s] = result.samples
    assert len(s.round_s) >= 3 and s.iterations >= 1 and all(r > 0 for r in s.round_s)
    assert result.flops == 2 * 2 * (16 * 32 + 32 * 4)
    assert result.peak_rss_mb > 10 and result.compile_s >= 0
    assert result.cpu_budget.effective_cpus >= 1


def test_worker_refuses_other_schema_versions(tmp_path):
    req = build_request(_cell("torch")).to_dict()
    req["schema_version"] = 999
    (tmp_path / "req.json").write_text(json.dumps(req))
    assert worker_main([str(tmp_path / "req.json"), str(tmp_path / "res.json")]) == 2
    assert not (tmp_path / "res.json").exists()


def test_worker_that_exits_without_a_result_is_reported(monkeypatch):
    import harness.run.launcher as launcher

    req = build_request(_cell("torch"))
    real_to_dict = req.to_dict
    # a request from another harness version: the worker exits 2 before writing anything
    monkeypatch.setattr(type(req), "to_dict", lambda self: dict(real_to_dict(), schema_version=999))
    result = launcher.run_in_process(req, timeout_s=60)
    assert result.status == "crashed" and result.cell == req.cell and result.threads.resolved == req.threads
    assert result.message.startswith("worker exited with code 2; stderr: request has schema 999, this worker speaks 2")


def test_several_processes_each_contribute_samples_and_parity_runs_once():
    result = run_cell(_cell("envreport", "1"), timing=FAST, processes=3)
    assert result.status == "ok"
    assert len(result.samples) == 3 and all(len(s.round_s) >= 3 for s in result.samples)
    assert result.parity["passed"]


def test_a_failing_later_process_fails_the_cell(monkeypatch, tmp_path):
    # the second worker crashes: the cell fails and names the process
    flag = tmp_path / "crash-next"
    monkeypatch.setenv("INFER_BENCH_BACKENDS", FAKES + ",crashsecond=tests.fake_backends:CrashSecond")
    monkeypatch.setenv("CRASH_FLAG", str(flag))
    result = run_cell(_cell("crashsecond"), timing=FAST, processes=3)
    assert result.status == "crashed"
    assert result.message.startswith("worker process 2/3: worker killed by SIGABRT")


def test_foreign_cpu_load_during_a_cell_is_measured():
    import subprocess
    import sys

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        result = run_cell(_cell("torch"), timing=FAST)
    finally:
        spinner.kill()
        spinner.wait()
    assert result.status == "ok"
    assert result.foreign_load > 0.5  # one spinning neighbour = about one CPU of foreign work


def test_workers_die_with_the_harness_that_started_them(tmp_path):
    import subprocess
    import sys
    import time

    import psutil

    script = (
        f"import os; os.environ['INFER_BENCH_BACKENDS'] = {FAKES!r}\n"
        "from tests.test_launcher import _cell\nfrom harness.run.schedule import run_cell\n"
        "run_cell(_cell('hang'), timeout_s=300)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=str(Path(__file__).resolve().parent.parent))
    try:
        deadline = time.time() + 60
        workers = []
        while time.time() < deadline and not workers:
            workers = [
                p
                for p in psutil.Process(parent.pid).children(recursive=True)
                if "harness.run.worker" in " ".join(p.cmdline())
            ]
            time.sleep(0.2)
        assert workers, "the worker never started"
        parent.kill()  # like a killed pytest: no cleanup code runs
        parent.wait()
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert alive == []
    finally:
        parent.kill()
