import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.run.parity import ParityPolicy, check_parity

POLICY = ParityPolicy(multiplier=10.0, rel_floor=1e-5, abs_floor=1e-7)
values = arrays(np.float64, st.integers(1, 64), elements=st.floats(-100, 100, allow_nan=False))


def _case(y64, ref_noise):
    ref32 = (y64 + ref_noise).astype(np.float32)
    ref_err = float(np.max(np.abs(ref32.astype(np.float64) - y64)))
    budget, _ = POLICY.budget(ref_err, float(np.max(np.abs(y64))))
    return ref32, budget


@given(values, st.floats(0, 0.99), st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_perturbation_inside_budget_passes(y64, fraction, seed):
    ref32, budget = _case(y64, 0.0)
    rng = np.random.default_rng(seed)
    direction = rng.choice([-1.0, 1.0], size=y64.shape)
    got = y64 + direction * fraction * budget  # float64 result: exactly the intended error
    report = check_parity(["y"], [got], [y64], [ref32], POLICY)
    assert report.passed, report.message
    assert report.outputs[0].max_abs_err <= budget


@given(values, st.floats(1.01, 1e6), st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_perturbation_outside_budget_fails_and_names_the_worst_element(y64, factor, seed):
    ref32, budget = _case(y64, 0.0)
    idx = np.random.default_rng(seed).integers(0, y64.size)
    got = y64.copy()
    got[idx] += factor * budget
    assume(abs(got[idx] - y64[idx]) > budget)  # not lost to float64 rounding
    report = check_parity(["logits"], [got], [y64], [ref32], POLICY)
    assert not report.passed
    out = report.outputs[0]
    assert out.worst_index == [int(idx)]
    assert out.worst_value == got[idx] and out.worst_expected == y64[idx]
    assert "output 'logits' worst element" in report.message and f"[{idx}]" in report.message


@given(values, st.integers(0, 2**32 - 1), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_any_nonfinite_value_fails(y64, seed, bad):
    idx = np.random.default_rng(seed).integers(0, y64.size)
    got = y64.astype(np.float32)
    got[idx] = bad
    report = check_parity(["y"], [got], [y64], [y64.astype(np.float32)], POLICY)
    assert not report.passed
    assert report.outputs[0].nonfinite == 1
    assert "non-finite" in report.message


@given(values, st.floats(1e-6, 1e-2))
@settings(max_examples=100, deadline=None)
def test_budget_scales_with_the_fp32_reference_error(y64, noise):
    # a backend as wrong as a noisier fp32 reference passes; 11x as wrong plus the floor fails
    ref32 = y64 + noise
    floor = max(POLICY.abs_floor, POLICY.rel_floor * float(np.max(np.abs(y64))))
    report = check_parity(["y"], [y64 + noise], [y64], [ref32], POLICY)
    assert report.passed
    assert not check_parity(["y"], [y64 + 11 * noise + floor], [y64], [ref32], POLICY).passed


def test_floor_lets_tiny_absolute_errors_near_zero_pass():
    y64 = np.zeros(4)
    got = np.full(4, 5e-8, dtype=np.float32)
    assert check_parity(["y"], [got], [y64], [y64], POLICY).passed
    assert not check_parity(["y"], [np.full(4, 1e-3)], [y64], [y64], POLICY).passed


def test_shape_and_count_mismatches_fail_with_a_reason():
    y = np.ones((2, 3))
    r = check_parity(["y"], [np.ones((3, 3))], [y], [y])
    assert not r.passed and "shape [3, 3] but float64 reference has [2, 3]" in r.message
    r = check_parity(["y"], [y, y], [y], [y])
    assert not r.passed and "returned 2 outputs, the reference 1" in r.message


def test_summary_and_round_trip():
    y = np.linspace(-1, 1, 10)
    report = check_parity(["y"], [y * (1 + 1e-7)], [y], [y.astype(np.float32)])
    s = report.summary()
    assert s["parity_passed"] and s["cosine"] == pytest.approx(1.0)
    assert s["max_abs_err"] == pytest.approx(1e-7, rel=1e-3)
    from harness.run.parity import ParityReport

    assert ParityReport.from_dict(report.to_dict()).summary() == s
