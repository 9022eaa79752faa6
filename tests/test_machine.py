"""Machine profile ids and the drift control's tolerance."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.machine.drift import DRIFT_TOLERANCE, applied_drift, drift_factor, within_run_drift
from harness.machine.profile import profile_id, version_changes

PROFILE = {
    "cpu": {"model": "AMD EPYC 9B45 Processor", "isa": ["avx2", "avx512f", "fma"]},
    "cpu_budget": {"effective_cpus": 2, "host_cpus": 2},
    "memory_gib": 23.5,
    "os": "Linux 6.1.0",
    "python": "3.11.7",
    "packages": {"torch": "2.13.0"},
}


def test_profile_id_reads_as_the_machine_and_ignores_what_varies_between_runs():
    pid = profile_id(PROFILE)
    assert pid.startswith("amd-epyc-9b45-2cpu-32g-") and len(pid.rsplit("-", 1)[1]) == 6
    # the same machine kind: memory within a power of two, another kernel or Python patch, other runtimes
    same = dict(PROFILE, memory_gib=24.2, os="Linux 6.5.0", python="3.11.9", packages={"torch": "2.14.0"})
    assert profile_id(same) == pid
    # another CPU, ISA, CPU budget, Python minor version: another profile
    for other in (
        dict(PROFILE, cpu={"model": "Intel Xeon", "isa": PROFILE["cpu"]["isa"]}),
        dict(PROFILE, cpu={"model": PROFILE["cpu"]["model"], "isa": ["avx2"]}),
        dict(PROFILE, cpu_budget={"effective_cpus": 1, "host_cpus": 2}),
        dict(PROFILE, python="3.12.1"),
    ):
        assert profile_id(other) != pid


def test_version_changes_name_each_changed_package():
    new = dict(PROFILE, packages={"torch": "2.14.0", "onnxruntime": "1.31.1"})
    assert version_changes(PROFILE, new) == [
        "torch 2.13.0 in the baseline, 2.14.0 now: ratios include the effect of this upgrade",
        "onnxruntime not installed in the baseline, 1.31.1 now: ratios include the effect of this upgrade",
    ]
    assert version_changes(PROFILE, PROFILE) == []


def _control(before, after=None):
    return {"before": {"control_s": before}, "after": {"control_s": after if after is not None else before}}


@given(factor=st.floats(0.5, 2.0))
def test_drift_is_applied_only_beyond_its_tolerance(factor):
    now, baseline = _control(1e-3 * factor), _control(1e-3)
    assert drift_factor(now, baseline) == pytest.approx(factor)
    applied = applied_drift(now, baseline)
    if abs(factor - 1) > DRIFT_TOLERANCE:
        assert applied == pytest.approx(factor)
    else:
        assert applied is None


def test_drift_needs_both_runs_and_within_run_needs_both_ends():
    assert drift_factor(None, _control(1e-3)) is None and drift_factor(_control(1e-3), None) is None
    assert within_run_drift(_control(1e-3, 1.2e-3)) == pytest.approx(1.2)
    assert within_run_drift({"before": {"control_s": 1e-3}}) is None
