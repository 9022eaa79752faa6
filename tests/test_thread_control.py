"""What thread settings really do, seen from the threads that ran in real worker processes:
which runtimes follow the environment variables alone and which only their own API, and the
seeds' container pitfall under a real 1-CPU cgroup quota. Behaviour, never a time threshold."""

import os
from pathlib import Path

import pytest

from harness.machine.confine import CGROUP_ROOT, Confinement
from harness.machine.threads import cpu_budget
from harness.machine.topology import read_topology
from harness.plan.cell import Cell
from harness.report.threads import quota_headlines, scaling_table
from harness.run.schedule import run_cell

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(cpu_budget().effective_cpus < 2, reason="needs at least 2 CPUs to tell 1 thread from more"),
]

WIDE = {"model_factory": "tests.tiny_models:wide_mlp"}
SHORT = {"max_time": 0.5, "min_rounds": 5}  # with warm-up: the window starts after the parity check settles


def _run(backend, threads, control, confinement=None, timing=SHORT):
    cell = Cell("wide_mlp", backend, threads=threads, thread_control=control, model_options=WIDE)
    result = run_cell(cell, timing=timing, confinement=confinement)
    assert result.ok, result.message
    result.nodeid = f"tests::t[{cell.id}]"
    return result


def test_which_runtime_follows_the_environment_and_which_its_api():
    ran = {
        (backend, control): _run(backend, "1" if control != "unset" else "runtime", control).threads_ran()
        for backend in ("ort", "torch")
        for control in ("env", "api", "unset")
    }
    # ONNX Runtime has its own pool and reads no thread variable: OMP_NUM_THREADS=1 alone leaves it
    # at its default (one thread per physical core); only intra_op_num_threads makes it 1
    assert ran["ort", "env"] >= 2 and ran["ort", "unset"] >= 2
    assert ran["ort", "api"] == 1
    # PyTorch's OpenMP pool takes OMP_NUM_THREADS at start-up, and torch.set_num_threads as well
    assert ran["torch", "env"] == ran["torch", "api"] == 1
    assert ran["torch", "unset"] >= 2


def test_tvm_pool_follows_both_env_and_api():
    # untuned TVM runs serial loops (nothing schedules them), so the pool never runs: its own read-back
    # of the pool size is the evidence here until TVM cells are scheduled
    env = _run("tvm", "2", "env")
    api = _run("tvm", "2", "api")
    assert env.threads.runtime["tvm_num_threads"] == api.threads.runtime["tvm_num_threads"] == 2
    assert env.threads.env["TVM_NUM_THREADS"] == "2" and api.threads.env["TVM_NUM_THREADS"] is None


def _leftover_groups() -> list[Path]:
    return sorted((CGROUP_ROOT / "cpu").glob(f"infer-bench-{os.getpid()}-*")) + sorted(
        CGROUP_ROOT.glob(f"**/infer-bench-{os.getpid()}-*")
    )


quota_reason = Confinement(quota=1.0).unavailable()


@pytest.mark.skipif(quota_reason is not None, reason=str(quota_reason))
@pytest.mark.parametrize("backend", ["ort", "torch"])
def test_the_container_pitfall_under_a_one_cpu_quota(backend):
    one_cpu = Confinement(quota=1.0)
    timing = {"max_time": 0.5, "min_rounds": 5}  # the window is stretched to 2 s
    auto = _run(backend, "auto", "both", one_cpu, timing)
    default = _run(backend, "runtime", "unset", one_cpu, timing)
    for r in (auto, default):
        assert r.confinement == {"quota": 1.0, "cpuset": None, "pin": None, "memory": None}
        assert r.cpu_budget.quota_cpus == 1.0 and r.cpu_budget.effective_cpus == 1
        assert r.threads.seen["quota_cpus"] == 1.0  # the worker itself sees the quota
        assert r.samples[0].window_s >= 2.0  # many CFS periods
        assert r.cpu_per_wall() <= 1.05  # the kernel holds it to one CPU
        assert r.throughput() == pytest.approx(1 / r.mean_s())
    assert auto.threads.resolved == 1 and auto.threads_ran() == 1  # auto resolves within the quota
    assert default.threads.resolved is None and default.threads_ran() >= 2  # the runtime sees the host
    [headline] = quota_headlines(scaling_table([auto, default]))
    assert headline.startswith(
        f"wide_mlp {backend}: in a 1-CPU quota the runtime's default ran {default.threads_ran()} threads: throughput "
    )
    assert not _leftover_groups()


@pytest.mark.skipif(quota_reason is not None, reason=str(quota_reason))
def test_a_crashing_worker_leaves_no_cgroup_behind(monkeypatch):
    monkeypatch.setenv("INFER_BENCH_BACKENDS", "abort=tests.fake_backends:Abort")
    cell = Cell("wide_mlp", "abort", threads="1", model_options=WIDE)
    result = run_cell(cell, timing=SHORT, confinement=Confinement(quota=0.5))
    assert result.status == "crashed" and "SIGABRT" in result.message
    assert result.confinement["quota"] == 0.5
    assert not _leftover_groups()


def test_pinned_worker_runs_on_its_cpus():
    first = read_topology().order(os.sched_getaffinity(0), "compact")[0]
    result = _run("torch", "1", "both", Confinement(pin="compact"))
    assert result.threads.seen["affinity"] == str(first) and result.cpu_budget.cpuset == str(first)
    assert result.threads.env["OMP_PLACES"] == f"{{{first}}}" and result.threads_ran() == 1
