"""The throughput and server scenarios (harness.plan.scenario), run inside the worker on prepared
steps: one zero-argument callable per stream, each of its own compiled instance, each driven by
its own thread (the runtimes release the GIL inside a call).

- ``run_throughput``: every stream calls back to back from a common start until the window has
  lasted ``window_s`` and ``min_queries`` queries completed (at most ``max_window_s``); samples/s
  is the queries completed times the batch over the wall time from the start to the last
  completion.
- ``run_server``: queries arrive at precomputed Poisson times (the same for the same seed); a
  free stream takes the next query, waits for its arrival if it is early, and runs it. A query's
  latency is its completion minus its *scheduled* arrival: when the streams fall behind, the wait
  counts (no coordinated omission). No query starts after ``max_window_s`` of wall time; the
  ones left are reported as dropped (an overloaded server is cut off, not waited for).
- ``find_peak``: the highest Poisson rate whose p99 stays under a bound (LoadGen's
  FindPeakPerformance): from the streams' capacity, rates are bracketed and then bisected
  (geometric midpoints) in short windows; the found rate then runs the full window. Near capacity
  a longer run queues more than a short one, so a full run that misses the bound is followed by
  full runs at ``CONFIRM_FACTOR`` times the rate, up to ``CONFIRM_RUNS`` of them, until one holds
  it (``bound_met``); the last full run's latencies are the cell's samples, and its rate the peak
  when it held. A tried rate with too few queries to support a p99 is judged by its largest
  latencies (stricter, never looser).

There is no separate load-generator thread: each stream does its own bookkeeping. What that costs
is measured (``harness_cpu_s``: the streams' thread CPU outside their calls), since on 2 cores
the harness's own CPU use competes with the model's.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.compare.percentiles import quantile
from harness.plan.scenario import (
    BOUND_FACTOR,
    CONFIRM_FACTOR,
    CONFIRM_RUNS,
    MAX_WINDOW_S,
    MIN_QUERIES,
    PEAK_STEPS,
    PEAK_WINDOW_S,
    WINDOW_S,
    Scenario,
    poisson_arrivals,
)
from harness.run.activity import ActivityWindow
from harness.run.protocol import LoadReport
from harness.run.timing import Samples

Step = Callable[[], object]


@dataclass
class _Stream:
    latencies: list[float] = field(default_factory=list)
    last_done: float = 0.0
    call_cpu: float = 0.0
    thread_cpu: float = 0.0
    halt: threading.Event = field(default_factory=threading.Event)  # shared: set when a stream failed


def _run_streams(
    steps: Sequence[Step], body: Callable[[int, Step, _Stream, float], None], window: ActivityWindow
) -> tuple[list[_Stream], float]:
    """Start one thread per step, release them together, wait for all; (their records, start).
    ``window`` spans the streams' work, closed while their threads still exist (an exited
    thread's CPU is no longer in /proc: harness.run.activity). A stream whose call raises sets the
    streams' shared ``halt``: the others stop at their next query, and the error is raised here."""
    halt = threading.Event()
    streams = [_Stream(halt=halt) for _ in steps]
    ready, finished = threading.Barrier(len(steps) + 1), threading.Barrier(len(steps) + 1)
    leave = threading.Event()
    start_box: list[float] = []
    errors: list[BaseException] = []

    def thread(i: int) -> None:
        cpu0 = time.thread_time()
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        try:
            body(i, steps[i], streams[i], start_box[0])
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
            halt.set()
        streams[i].thread_cpu = time.thread_time() - cpu0
        try:
            finished.wait()
        except threading.BrokenBarrierError:
            return
        leave.wait()

    threads = [threading.Thread(target=thread, args=(i,), daemon=True) for i in range(len(steps))]
    for t in threads:
        t.start()
    try:
        window.__enter__()
        start_box.append(time.perf_counter())
        ready.wait()
        finished.wait()
        window.__exit__(None, None, None)
    finally:  # whatever happened here, no stream thread is left waiting
        ready.abort()
        finished.abort()
        leave.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return streams, start_box[0]


def _timed_call(step: Step, record: _Stream, since: float) -> float:
    """Run one query; record its latency from ``since``; return its completion time."""
    c0 = time.thread_time()
    step()
    done = time.perf_counter()
    record.call_cpu += time.thread_time() - c0
    record.latencies.append(done - since)
    record.last_done = done
    return done


def _harness_cpu(streams: list[_Stream]) -> float:
    return sum(max(0.0, s.thread_cpu - s.call_cpu) for s in streams)


def run_throughput(
    steps: Sequence[Step],
    batch: int,
    window_s: float = WINDOW_S,
    min_queries: int = MIN_QUERIES,
    max_window_s: float = MAX_WINDOW_S,
    window: ActivityWindow | None = None,
) -> tuple[LoadReport, list[float]]:
    """Every stream back to back; (the report, every query's latency). ``window``: what ran."""
    lock, count = threading.Lock(), [0]

    def body(i: int, step: Step, record: _Stream, start: float) -> None:
        while True:
            now = time.perf_counter()
            with lock:
                enough = now - start >= window_s and count[0] >= min_queries
            if enough or now - start >= max_window_s or record.halt.is_set():
                return
            _timed_call(step, record, time.perf_counter())
            with lock:
                count[0] += 1

    streams, start = _run_streams(steps, body, window or ActivityWindow())
    latencies = [x for s in streams for x in s.latencies]
    wall = max(s.last_done for s in streams) - start
    report = LoadReport("throughput", len(steps), batch, wall, len(latencies))
    report.samples_per_s = len(latencies) * batch / wall if wall > 0 else None
    report.harness_cpu_s = _harness_cpu(streams)
    return report, latencies


def run_server(
    steps: Sequence[Step],
    batch: int,
    qps: float,
    window_s: float = WINDOW_S,
    min_queries: int = MIN_QUERIES,
    max_window_s: float = MAX_WINDOW_S,
    seed: int = 0,
    window: ActivityWindow | None = None,
) -> tuple[LoadReport, list[float]]:
    """Poisson arrivals at ``qps`` served by the streams; (the report, every served query's
    latency from its scheduled arrival). ``window``: what ran."""
    count = max(min_queries, math.ceil(qps * window_s))
    arrivals = poisson_arrivals(qps, count, seed)
    lock, nxt = threading.Lock(), [0]

    def body(i: int, step: Step, record: _Stream, start: float) -> None:
        while True:
            with lock:
                k = nxt[0]
                nxt[0] += 1
            if k >= count or time.perf_counter() - start > max_window_s or record.halt.is_set():  # the rest dropped
                return
            due = start + arrivals[k]
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            _timed_call(step, record, due)

    streams, start = _run_streams(steps, body, window or ActivityWindow())
    latencies = [x for s in streams for x in s.latencies]
    wall = max((s.last_done for s in streams), default=start) - start
    report = LoadReport("server", len(steps), batch, wall, len(latencies), target_qps=qps)
    report.dropped = count - len(latencies)
    report.achieved_qps = len(latencies) / wall if wall > 0 else None
    report.samples_per_s = report.achieved_qps * batch if report.achieved_qps else None
    report.harness_cpu_s = _harness_cpu(streams)
    return report, latencies


def p99_of(latencies: Sequence[float]) -> float:
    return quantile(sorted(latencies), 0.99)


def unloaded_median(step: Step, calls: int = 20, max_s: float = 2.0) -> float:
    """One stream's median call, unloaded: ``calls`` calls, or as many as ``max_s`` allows (at least 3)."""
    times, t_end = [], time.perf_counter() + max_s
    while len(times) < calls and (len(times) < 3 or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return quantile(sorted(times), 0.5)


def find_peak(
    steps: Sequence[Step],
    batch: int,
    p99_bound_s: float | None = None,
    window_s: float = WINDOW_S,
    min_queries: int = MIN_QUERIES,
    max_window_s: float = MAX_WINDOW_S,
    seed: int = 0,
    window: ActivityWindow | None = None,
) -> tuple[LoadReport, list[float]]:
    """The highest Poisson rate whose p99 stays under ``p99_bound_s`` (None: ``BOUND_FACTOR`` x the
    unloaded median); (the found rate's full-window report, its latencies)."""
    median = unloaded_median(steps[0])
    bound = p99_bound_s if p99_bound_s is not None else BOUND_FACTOR * median
    capacity = len(steps) / median
    tried: list = []

    def attempt(qps: float) -> bool:
        short = min(max_window_s / 3, max(PEAK_WINDOW_S, 20 / qps))  # ~20 queries, a third of the longest window
        # arrivals over ``short``; a rate that keeps up serves them within about that, one that
        # falls behind is cut off at twice it and fails on its drops
        report, lat = run_server(steps, batch, qps, short, 1, 2 * short, seed + len(tried) + 1)
        p99 = p99_of(lat) if lat else math.inf
        passed = bool(lat) and p99 <= bound and report.dropped == 0
        tried.append([qps, p99, len(lat), passed])
        return passed

    low, high = None, None
    rate = 0.5 * capacity
    for _ in range(4):  # bracket: a passing rate below a failing one
        if attempt(rate):
            low = rate
            if high is not None:
                break
            rate *= 1.6
        else:
            high = rate
            if low is not None:
                break
            rate *= 0.4
    if low is not None and high is not None:
        for _ in range(PEAK_STEPS):
            mid = math.sqrt(low * high)
            if attempt(mid):
                low = mid
            else:
                high = mid
    rate = low if low is not None else min(t[0] for t in tried)
    for run in range(CONFIRM_RUNS + 1):  # the found rate's full run, then lower rates until one holds
        report, latencies = run_server(steps, batch, rate, window_s, min_queries, max_window_s, seed, window)
        held = bool(latencies) and p99_of(latencies) <= bound and report.dropped == 0
        tried.append([rate, p99_of(latencies) if latencies else math.inf, len(latencies), held])
        if held or low is None or run == CONFIRM_RUNS:
            break
        rate *= CONFIRM_FACTOR
    report.p99_bound_s, report.tried = bound, tried
    report.peak_qps = rate if held else low  # a peak that no full run held is an upper estimate
    report.unloaded_median_s = median
    report.bound_met = held
    return report, latencies


def batch_of(inputs: Sequence) -> int:
    """Samples in one query: the leading dimension of the first input (1 for a scalar input)."""
    shape = getattr(inputs[0], "shape", ()) if inputs else ()
    return int(shape[0]) if len(shape) else 1


def drive(scenario: Scenario, steps: Sequence[Step], batch: int) -> tuple[LoadReport, Samples]:
    """Run a throughput or server scenario on ``steps`` (one per stream); the report and the
    queries' latencies as this process's samples, with what ran during the window."""
    window = ActivityWindow()  # of the run whose latencies are the samples (a peak search's last)
    if scenario.kind == "throughput":
        report, latencies = run_throughput(steps, batch, window=window)
    elif scenario.qps is not None:
        report, latencies = run_server(steps, batch, scenario.qps, window=window)
    else:
        report, latencies = find_peak(steps, batch, scenario.p99_s, window=window)
    activity = window.activity
    samples = Samples(latencies, 1, 0, activity.threads_ran, activity.cpu_s, activity.window_s)
    return report, samples
