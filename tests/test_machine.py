"""Machine profile ids and the drift control."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.compare.compare import Comparison, drift_estimates
from harness.machine.drift import add_sample, control_samples
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


def _control(threads: int, *seconds: float) -> dict:
    control = None
    for i, x in enumerate(seconds):
        control = add_sample(control, {"control_s": x}, threads, f"round {i}")
    return control


@given(factor=st.floats(0.5, 2.0), noise=st.floats(0.0, 0.05))
def test_drift_is_applied_when_the_control_interval_excludes_1(factor, noise):
    spread = [1 - noise, 1.0, 1 + noise, 1.0]
    baseline, now = _control(2, *(1e-3 * s for s in spread)), _control(2, *(1e-3 * factor * s for s in spread))
    comparison = Comparison([], drift=drift_estimates(now, baseline, 0.99))
    estimate = comparison.drift[2]
    assert math.exp(estimate.diff) == pytest.approx(factor)
    applied = comparison.drifted(2) is not None
    assert applied == (estimate.low > 0 or estimate.high < 0)
    if noise == 0 and abs(math.log(factor)) > 0.01:  # a noiseless control that moved 1% is applied
        assert applied
    if abs(math.log(factor)) < 0.002:  # identical controls are not certain: below their resolution, no drift
        assert not applied
    assert comparison.drifted(1) is None  # no control at 1 thread: 1-thread cells stay raw


def test_control_samples_read_both_storage_versions_and_need_two_per_side():
    old = {"before": {"control_s": 1e-3}, "after": {"control_s": 1.1e-3}}
    assert control_samples(old) == {1: [1e-3, 1.1e-3]}
    assert control_samples(_control(2, 1e-3, 2e-3)) == {2: [1e-3, 2e-3]}
    assert add_sample(None, None, 2, "before")["samples"] == []  # a failed measurement is left out
    assert drift_estimates(_control(1, 1e-3), old, 0.99) == {}  # one measurement: no interval
    assert drift_estimates(None, old, 0.99) == {} and drift_estimates(old, None, 0.99) == {}
