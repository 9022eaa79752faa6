"""The worker's timing loop against a fake clock: calibration, warm-up and round count follow
pytest-benchmark's fixture exactly, with no real time involved."""

import gc
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.run.timing import TimingOptions, measure, timer_precision

TICK = 1e-9  # every clock read advances the fake clock by this much


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.now += TICK
        self.reads += 1
        return self.now

    def step(self, cost: float):
        def run():
            self.now += cost

        return run


def test_timer_precision_is_the_smallest_step_of_the_clock():
    assert timer_precision(FakeClock()) == pytest.approx(TICK)


def test_slow_calls_need_one_iteration_and_warm_up_for_max_time():
    clock = FakeClock()
    samples = measure(clock.step(1e-3), TimingOptions(max_time=0.1, min_rounds=5, warmup=True), timer=clock)
    assert samples.iterations == 1
    # warm-up: rounds until max_time of the clock has passed (each round is 1 ms plus a few ticks)
    assert samples.warmup_rounds == 100
    # rounds = max(min_rounds, ceil(max_time / round time)) = ceil(0.1 / 1.000002e-3) = 100
    assert len(samples.round_s) == 100
    assert all(r == pytest.approx(1e-3, rel=1e-5) for r in samples.round_s)
    assert samples.per_call_s[0] == pytest.approx(1e-3, rel=1e-5)


def test_warm_up_is_capped_by_warmup_iterations_and_can_be_off():
    clock = FakeClock()
    capped = measure(clock.step(1e-3), TimingOptions(max_time=0.1, warmup=True, warmup_iterations=7), timer=clock)
    assert capped.warmup_rounds == 7
    off = measure(clock.step(1e-3), TimingOptions(max_time=0.1, warmup=False), timer=clock)
    assert off.warmup_rounds == 0 and len(off.round_s) == 100


def test_fast_calls_are_calibrated_to_min_time_per_round():
    clock = FakeClock()
    # 0.1 us per call, min_time 5 us: ceil(5e-6 / 1.02e-7) = 50 iterations per round
    samples = measure(clock.step(1e-7), TimingOptions(max_time=0.01, min_time=5e-6, warmup=False), timer=clock)
    assert samples.iterations == 50
    assert all(r == pytest.approx(5e-6, rel=1e-3) for r in samples.round_s)
    assert samples.per_call_s[0] == pytest.approx(1e-7, rel=1e-3)
    assert len(samples.round_s) == 2000  # ceil(0.01 / 5.002e-6)


@given(cost=st.floats(1e-6, 1e-2), max_time=st.floats(1e-3, 0.05), min_rounds=st.integers(1, 50))
def test_round_count_matches_pytest_benchmark(cost, max_time, min_rounds):
    clock = FakeClock()
    samples = measure(
        clock.step(cost), TimingOptions(max_time=max_time, min_rounds=min_rounds, warmup=False), timer=clock
    )
    round_s = samples.iterations * cost + TICK  # what the fake clock measures for one round
    assert round_s >= 5e-6  # calibrated to at least min_time per round
    assert all(r == pytest.approx(round_s, rel=1e-6) for r in samples.round_s)
    expected = max(min_rounds, math.ceil(max_time / round_s))
    assert abs(len(samples.round_s) - expected) <= 1  # float rounding of the fake clock's sums


@pytest.mark.parametrize("disable_gc", [True, False])
def test_gc_state_during_and_after_timing(disable_gc):
    seen = []
    clock = FakeClock()
    step = clock.step(1e-3)

    def spy():
        seen.append(gc.isenabled())
        step()

    assert gc.isenabled()
    measure(spy, TimingOptions(max_time=0.01, warmup=False, disable_gc=disable_gc), timer=clock)
    assert set(seen) == {not disable_gc} and gc.isenabled()
