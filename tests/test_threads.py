import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.machine.threads import CpuBudget, ThreadSpecError, cpu_budget, cpu_quota, resolve_threads, thread_env


def test_cgroup_v2_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) is None


def test_cgroup_v1_quota(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cpu_quota(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert cpu_quota(tmp_path) is None


def test_no_cgroup_means_unlimited(tmp_path):
    assert cpu_quota(tmp_path) is None
    budget = cpu_budget(tmp_path)
    assert budget.effective_cpus == len(os.sched_getaffinity(0))
    assert budget.host_cpus == os.cpu_count()


def test_quota_caps_effective_cpus(tmp_path):
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU still gives one thread
    assert cpu_budget(tmp_path).effective_cpus == 1


@given(st.integers(1, 512), st.integers(1, 512), st.integers(1, 64))
def test_auto_and_host_resolve_from_the_budget(host, affinity, n):
    budget = CpuBudget(host, affinity, None, affinity)
    assert resolve_threads("auto", budget) == affinity
    assert resolve_threads("host", budget) == host
    assert resolve_threads(str(n), budget) == n
    assert resolve_threads(n, budget) == n


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", ""])
def test_bad_thread_specs(bad):
    with pytest.raises(ThreadSpecError):
        resolve_threads(bad, CpuBudget(2, 2, None, 2))


def test_thread_env_sets_every_runtime_knob():
    assert thread_env(3) == {
        "OMP_NUM_THREADS": "3",
        "MKL_NUM_THREADS": "3",
        "OPENBLAS_NUM_THREADS": "3",
        "TVM_NUM_THREADS": "3",
    }
