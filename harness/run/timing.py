"""The timing loop run inside the worker. It follows pytest-benchmark's fixture (calibrate the
iterations per round against the timer's precision, warm up, then rounds = max(min_rounds,
max_time / round time)) so that the --benchmark-min-rounds/-max-time/-min-time/-warmup options
mean the same thing; the samples then become pytest-benchmark stats in the pytest process.

A round is read by a ``Clock``. On the CPU that is the host timer. A GPU call returns once its
kernels are queued, so reading the host timer around it would time the launch, not the work: a
device backend gives its own clock (``Compiled.clock()``): CUDA events recorded on the stream
before and after the round, whose elapsed time is the device's (``EventClock``), or the host
timer read only after the device has finished (``SyncClock``)."""

from __future__ import annotations

import gc
import math
import time
from dataclasses import asdict, dataclass, field

from harness.run.activity import ActivityWindow


@dataclass(frozen=True)
class TimingOptions:
    min_rounds: int = 5
    max_time: float = 1.0
    min_time: float = 0.000005
    warmup: bool = True
    warmup_iterations: int = 100000
    calibration_precision: int = 10
    disable_gc: bool = False  # pytest-benchmark default (--benchmark-disable-gc turns it on)
    min_window_s: float = 0.0  # keep timing rounds until the window lasts this long (CPU quotas)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Samples:
    round_s: list[float] = field(default_factory=list)  # wall time of each round (iterations calls)
    iterations: int = 1
    warmup_rounds: int = 0
    # what ran during the timed rounds (harness.run.activity); None where not measured
    threads_ran: int | None = None  # OS threads of the worker that used CPU
    cpu_s: float | None = None  # the worker's CPU seconds over the rounds
    window_s: float | None = None  # wall seconds of the rounds

    @property
    def cpu_per_wall(self) -> float | None:
        return self.cpu_s / self.window_s if self.cpu_s is not None and self.window_s else None

    @property
    def per_call_s(self) -> list[float]:
        return [r / self.iterations for r in self.round_s]

    def to_dict(self) -> dict:
        return asdict(self)


class HostClock:
    """The host timer: right where a call returns when its work is done (every CPU runtime)."""

    def __init__(self, timer=time.perf_counter):
        self.timer = timer

    def resolution(self) -> float:
        return timer_precision(self.timer)

    def describe(self) -> str:
        return "host clock around each round"

    def start(self):
        return self.timer()

    def stop(self, started) -> float:
        return self.timer() - started


class SyncClock(HostClock):
    """The host timer read after ``sync()`` (e.g. ``tvm.runtime.Device.sync``) has waited for the
    device's queued work, at both ends of a round: the round's time includes what it queued."""

    def __init__(self, sync, timer=time.perf_counter):
        super().__init__(timer)
        self.sync = sync

    def describe(self) -> str:
        return "host clock read after a device synchronise, at both ends of each round"

    def start(self):
        self.sync()
        return self.timer()

    def stop(self, started) -> float:
        self.sync()
        return self.timer() - started


EVENT_RESOLUTION_S = 0.5e-6  # cudaEventElapsedTime: "a resolution of around 0.5 microseconds"


class EventClock:
    """Device events around a round (``torch.cuda.Event(enable_timing=True)``): both recorded on the
    stream the calls queue their kernels on, the end one waited for, their elapsed time in ms."""

    def __init__(self, make_event):
        self.make_event = make_event

    def resolution(self) -> float:
        return EVENT_RESOLUTION_S

    def describe(self) -> str:
        return "device events recorded on the stream before and after each round"

    def start(self):
        event = self.make_event()
        event.record()
        return event

    def stop(self, started) -> float:
        end = self.make_event()
        end.record()
        end.synchronize()
        return started.elapsed_time(end) / 1e3


def timer_precision(timer=time.perf_counter) -> float:
    best = math.inf
    for _ in range(10):
        t1 = timer()
        t2 = timer()
        while t2 == t1:
            t2 = timer()
        best = min(best, t2 - t1)
    return best


def _round(step, iterations: int, clock) -> float:
    loops = range(iterations)
    start = clock.start()
    for _ in loops:
        step()
    return clock.stop(start)


def measure(step, options: TimingOptions = TimingOptions(), timer=time.perf_counter, clock=None) -> Samples:
    """Time ``step`` (pytest-benchmark's calibration, warm-up and rounds). ``timer`` paces the
    loop (warm-up and window lengths); ``clock`` reads each round (the host ``timer`` where None)."""
    clock = clock or HostClock(timer)
    gc_was_enabled = gc.isenabled()
    if options.disable_gc:
        gc.disable()
    try:
        min_time = max(options.min_time, clock.resolution() * options.calibration_precision)
        # calibrate: grow iterations until one round lasts min_time
        iterations, warmup_rounds = 1, 0
        while True:
            duration = _round(step, iterations, clock)
            if options.warmup:
                start, done = timer(), 0
                while timer() - start < options.max_time and done < options.warmup_iterations:
                    duration = min(duration, _round(step, iterations, clock))
                    done += iterations
                    warmup_rounds += 1
            if duration >= min_time:
                break
            iterations = max(iterations + 1, math.ceil(min_time * iterations / max(duration, 1e-12)))
        rounds = max(options.min_rounds, math.ceil(options.max_time / max(duration, 1e-12)))
        samples = Samples([], iterations, warmup_rounds)
        with ActivityWindow() as window:
            start = timer()
            while len(samples.round_s) < rounds or timer() - start < options.min_window_s:
                samples.round_s.append(_round(step, iterations, clock))
        activity = window.activity
        samples.threads_ran, samples.cpu_s, samples.window_s = activity.threads_ran, activity.cpu_s, activity.window_s
        return samples
    finally:
        if gc_was_enabled:
            gc.enable()
