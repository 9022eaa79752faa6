import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.machine.threads import (
    THREAD_ENV_VARS,
    CpuBudget,
    ThreadSettings,
    ThreadSpecError,
    cpu_budget,
    cpu_quota,
    resolve_threads,
    thread_env,
    worker_environment,
)


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


def test_quota_is_read_from_the_process_own_cgroup_and_its_parents(tmp_path):
    proc = tmp_path / "proc-cgroup"
    proc.write_text("4:memory:/x\n1:cpu,cpuacct:/docker/abc\n0::/\n")
    (tmp_path / "cpu" / "docker" / "abc").mkdir(parents=True)
    for where, quota in ((tmp_path / "cpu" / "docker", 150000), (tmp_path / "cpu" / "docker" / "abc", 300000)):
        (where / "cpu.cfs_quota_us").write_text(str(quota))
        (where / "cpu.cfs_period_us").write_text("100000")
    assert cpu_quota(tmp_path, proc) == 1.5  # the parent's tighter quota applies to its children
    v2 = tmp_path / "v2"
    (v2 / "job").mkdir(parents=True)
    (v2 / "job" / "cpu.max").write_text("100000 100000\n")
    proc.write_text("0::/job\n")
    assert cpu_quota(v2, proc) == 1.0


def test_physical_resolves_to_the_physical_cores_of_the_affinity():
    assert resolve_threads("physical", CpuBudget(8, 8, None, 8, physical_cores=4)) == 4
    assert resolve_threads("physical", CpuBudget(8, 6, None, 6)) == 6  # unknown: the affinity CPUs
    assert resolve_threads("runtime", CpuBudget(8, 8, None, 8)) is None


@pytest.mark.parametrize(
    "control, expected",
    [("both", "3"), ("env", "3"), ("api", None), ("unset", None)],
)
def test_worker_environment_sets_or_removes_the_thread_variables(control, expected):
    env = worker_environment(3, control)
    assert {env[name] for name in THREAD_ENV_VARS} == {expected}
    assert env["OMP_WAIT_POLICY"] is None and env["OMP_PLACES"] is None


def test_spin_off_and_pinning_reach_the_environment():
    env = worker_environment(2, "api", "off", [2, 3])
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["TVM_THREAD_POOL_SPIN_COUNT"] == "0"
    assert env["OMP_PROC_BIND"] == "close" and env["OMP_PLACES"] == "{2},{3}"


def test_thread_settings_from_an_int_keep_the_old_meaning():
    assert ThreadSettings.coerce(4) == ThreadSettings(4, 1, True, None)
    assert ThreadSettings.coerce(None) == ThreadSettings(None, None, True, None)


def test_ort_session_config_for_spin_and_pinning():
    from harness.backends.ort import session_config

    assert session_config(ThreadSettings(4, 1, True, None)) == {}
    config = session_config(ThreadSettings(3, 1, False, (4, 5, 6)))
    assert config["session.intra_op.allow_spinning"] == "0"
    assert config["session.intra_op_thread_affinities"] == "6;7"  # 1-based, one per pool thread


def test_threads_that_ran_are_counted_from_the_kernel():
    import threading
    import time

    from harness.run.activity import ActivityWindow

    def spin(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    sleeper = threading.Thread(target=time.sleep, args=(0.5,))
    sleeper.start()
    with ActivityWindow() as quiet:
        spin(0.2)
    stop = threading.Event()

    def pool_thread():  # like a runtime's pool thread: alive across calls, busy during them
        while not stop.is_set():
            spin(0.001)

    helper = threading.Thread(target=pool_thread)
    with ActivityWindow() as busy:
        helper.start()
        spin(0.3)
    stop.set()
    helper.join()
    sleeper.join()
    assert quiet.activity.threads_ran == 1  # the sleeping thread exists but used no CPU
    assert busy.activity.threads_ran == 2
    assert busy.activity.cpu_s > 0 and busy.activity.cpu_per_wall > 0
