"""Statistics and verdicts on synthetic samples: per-process medians with process-level noise."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.compare.stats import ratio_estimate, welch
from harness.compare.verdict import judge


def measurement(rng, true_s, processes=3, rounds=40, within=0.02, between=0.0):
    """Per-process samples: lognormal round noise around a per-process level."""
    groups = []
    for _ in range(processes):
        level = true_s * np.exp(rng.normal(0, between))
        groups.append(level * np.exp(rng.normal(0, within, size=rounds)))
    return groups


@given(st.integers(0, 2**31), st.floats(0.005, 0.03), st.floats(0.0, 0.01))
@settings(max_examples=60, deadline=None)
def test_a_20_percent_slowdown_with_low_noise_is_always_a_regression(seed, within, between):
    rng = np.random.default_rng(seed)
    base = measurement(rng, 1e-3, within=within, between=between)
    cur = measurement(rng, 1.2e-3, within=within, between=between)
    v = judge("cell", base, cur, n_boot=500, seed=seed)
    assert v.verdict == "regression", v
    assert v.low > 1 and 1.1 < v.ratio < 1.3


@given(st.integers(0, 2**31), st.floats(0.005, 0.03), st.floats(0.0, 0.01))
@settings(max_examples=60, deadline=None)
def test_a_20_percent_speedup_is_an_improvement(seed, within, between):
    rng = np.random.default_rng(seed)
    v = judge(
        "cell",
        measurement(rng, 1e-3, within=within, between=between),
        measurement(rng, 0.8e-3, within=within, between=between),
        n_boot=500,
        seed=seed,
    )
    assert v.verdict == "improvement", v


@given(st.integers(0, 2**31), st.integers(5, 15), st.floats(0.5, 2.0))
@settings(max_examples=60, deadline=None)
def test_states_and_ratio_follow_a_uniform_change_exactly(seed, n, factor):
    # multiplying every current sample by a factor moves no process between states and scales the
    # ratio by exactly that factor (a real change is never mistaken for a state); the interval too,
    # unless processes of one side sat at the other's level before or after (a reading of the states
    # that only exists where the sides overlap widens it)
    rng = np.random.default_rng(seed)
    base = measurement(rng, 1e-3, processes=n, between=0.05)
    cur = measurement(rng, 1e-3, processes=n, between=0.05)
    plain, scaled = ratio_estimate(base, cur), ratio_estimate(base, [g * factor for g in cur])
    assert [m.tolist() for m in plain.states.steady] == [m.tolist() for m in scaled.states.steady]
    assert scaled.steady.ratio[0] == pytest.approx(plain.steady.ratio[0] * factor, rel=1e-9)
    if "at the other's level" not in plain.method + scaled.method:
        for a, b in zip(plain.steady.ratio, scaled.steady.ratio):
            assert b == pytest.approx(a * factor, rel=1e-9)


def test_a_slow_machine_state_is_left_out_and_named():
    # the measured pattern: identical code, some processes' medians jump by a quarter
    rng = np.random.default_rng(5)
    base = measurement(rng, 1e-3, processes=10, within=0.01, between=0.005)
    cur = measurement(rng, 1e-3, processes=10, within=0.01, between=0.005)
    cur[0], cur[1] = cur[0] * 1.25, cur[1] * 1.3
    base[4] = base[4] * 1.27
    v = judge("c", base, cur)
    assert v.slow_state == (1, 2) and v.steady == (9, 8)
    assert v.verdict in ("unchanged", "inconclusive") and 0.99 < v.ratio < 1.01
    assert "slow state 1/10 baseline, 2/10 current" in v.note


def test_a_real_slowdown_of_every_process_is_not_mistaken_for_a_slow_state():
    rng = np.random.default_rng(7)
    base = measurement(rng, 1e-3, processes=5, within=0.01, between=0.01)
    cur = measurement(rng, 1.3e-3, processes=5, within=0.01, between=0.01)
    v = judge("c", base, cur)
    assert v.verdict == "regression" and v.slow_state == (0, 0) and "slow state" not in v.note


def test_single_process_cannot_claim_a_regression():
    rng = np.random.default_rng(1)
    v = judge("c", measurement(rng, 1e-3, processes=1), measurement(rng, 1.3e-3, processes=1))
    assert v.verdict == "inconclusive"
    assert "fewer than 2 steady worker processes" in v.note


def test_new_missing_and_threshold():
    rng = np.random.default_rng(2)
    m = measurement(rng, 1e-3)
    assert judge("c", None, m).verdict == "new"
    assert judge("c", m, None).verdict == "missing"
    # an 8% slowdown: a regression at 5%, a minor one at a 10% threshold, and at 0 any
    # significant change counts in full
    cur = measurement(rng, 1.08e-3, within=0.005)
    base = measurement(rng, 1e-3, within=0.005)
    assert judge("c", base, cur, threshold=0.05).verdict == "regression"
    assert judge("c", base, cur, threshold=0.10).verdict == "minor regression"
    tiny = measurement(rng, 1.005e-3, within=0.0005)
    assert judge("c", base, tiny, threshold=0.0).verdict in ("regression", "inconclusive")
    assert judge("c", base, tiny, threshold=0.0).verdict != "minor regression"


def test_drift_correction_divides_by_the_control_and_keeps_its_uncertainty():
    rng = np.random.default_rng(3)
    base, cur = measurement(rng, 1e-3, within=0.005), measurement(rng, 1.25e-3, within=0.005)
    raw = judge("c", base, cur)
    precise = welch(np.log([1.0, 1.001, 0.999, 1.0]), np.log([1.25, 1.251, 1.249, 1.25]), 0.99)
    noisy = welch(np.log([1.0, 1.1, 0.9]), np.log([1.25, 1.4, 1.1]), 0.99)
    corrected, blurred = judge("c", base, cur, drift=precise), judge("c", base, cur, drift=noisy)
    assert raw.verdict == "regression" and raw.drift is None and raw.raw_ratio is None
    assert corrected.ratio == pytest.approx(raw.ratio / 1.25, rel=1e-3) and corrected.raw_ratio == raw.ratio
    assert corrected.verdict in ("unchanged", "inconclusive") and "drift-corrected" in corrected.note
    # a noisy control cannot turn the change into a confident 'unchanged': its noise widens the interval
    assert blurred.verdict == "inconclusive" and blurred.high - blurred.low > 3 * (corrected.high - corrected.low)
    assert corrected.p_value > 0.01  # the p-value is of the corrected ratio too
