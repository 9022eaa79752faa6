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
    assert report.message.startswith(f"output 'y': 1 non-finite value(s), first at [{idx}]: got {bad}")


@given(values, st.floats(1e-6, 1e-2))
@settings(max_examples=100, deadline=None)
def test_budget_scales_with_the_fp32_reference_error(y64, noise):
    # a backend as wrong as a noisier fp32 reference passes; 11x as wrong plus the floor fails
    # (while the reference is within 1% of the output's scale: beyond, its allowance is capped)
    assume(noise <= 0.01 * float(np.max(np.abs(y64))))
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


def test_a_layout_mismatch_of_equal_size_is_a_shape_error_not_a_value_error():
    y64 = np.arange(6, dtype=np.float64).reshape(2, 3)
    r = check_parity(["y"], [y64.T.astype(np.float32)], [y64], [y64.astype(np.float32)])
    assert not r.passed
    assert "shape [3, 2] but float64 reference has [2, 3] (same number of elements: another layout?)" in r.message


def test_an_unreliable_fp32_reference_is_capped_and_flagged():
    # the fp32 reference is off by 20% of the scale: a budget of 10x that would pass all zeros
    y64 = np.linspace(-1.0, 1.0, 50)
    ref32 = (y64 + 0.2 * np.sin(7 * y64)).astype(np.float32)
    zeros = check_parity(["y"], [np.zeros(50, dtype=np.float32)], [y64], [ref32])
    assert not zeros.passed and zeros.outputs[0].reference_off
    assert "the fp32 reference itself is off by over 1% of the output's scale" in zeros.message
    assert zeros.summary()["parity_reference_off"] is True
    # nor a constant on a flat output when the reference is off (its variation allowance is capped too)
    flat = 1.0 + 0.02 * np.sin(np.arange(50.0))
    off = (flat * 1.2).astype(np.float32)
    assert not check_parity(["y"], [np.ones(50, dtype=np.float32)], [flat], [off]).passed
    # an all-zero output is not "off" for a reference error below the absolute floor
    zero = np.zeros(8)
    assert not check_parity(["z"], [zero], [zero], [zero + 1e-12]).outputs[0].reference_off
    close = check_parity(["y"], [(y64 + 0.05).astype(np.float32)], [y64], [ref32])
    assert close.passed and close.outputs[0].reference_off  # within the capped allowance, but flagged


def test_a_constant_does_not_pass_on_a_nearly_flat_output():
    # variation of 2e-6 around 1.0 sits under the relative floor (1e-5 of the scale), but fp32
    # resolves it: a constant must not pass
    y64 = 1.0 + 2e-6 * np.sin(np.arange(64.0))
    ref32 = y64.astype(np.float32)
    flat = check_parity(["p"], [np.ones(64, dtype=np.float32)], [y64], [ref32])
    assert not flat.passed and "does not follow the float64 output's variation" in flat.message
    assert "constant output" in flat.message
    # an output whose variation is below the absolute floor is not judged on it
    tiny = np.array([0.0, 6e-8, 6e-8, 6e-8])
    assert check_parity(["p"], [np.full(4, 3e-8)], [tiny], [tiny.astype(np.float32)]).passed
    follows = check_parity(["p"], [(y64 + 1e-7 * np.cos(np.arange(64.0))).astype(np.float32)], [y64], [ref32])
    assert follows.passed, follows.message


def test_a_result_computed_in_fp32_passes():
    # the passing case must not compare the reference with itself: a float32 computation of the
    # same function differs from float64 by rounding, and passes
    x = np.random.default_rng(0).standard_normal((16, 32))
    w = np.random.default_rng(1).standard_normal((32, 8))
    y64 = np.tanh(x @ w)
    got = np.tanh(x.astype(np.float32) @ w.astype(np.float32))
    ref32 = np.tanh((x.astype(np.float32) @ w.astype(np.float32)).astype(np.float64)).astype(np.float32)
    report = check_parity(["y"], [got], [y64], [ref32])
    assert report.passed, report.message
    assert 0 < report.outputs[0].max_abs_err <= report.outputs[0].budget


def test_summary_and_round_trip():
    y = np.linspace(-1, 1, 10)
    report = check_parity(["y"], [y * (1 + 1e-7)], [y], [y.astype(np.float32)])
    s = report.summary()
    assert s["parity_passed"] and s["cosine"] == pytest.approx(1.0)
    assert s["max_abs_err"] == pytest.approx(1e-7, rel=1e-3)
    from harness.run.parity import ParityReport

    assert ParityReport.from_dict(report.to_dict()).summary() == s
