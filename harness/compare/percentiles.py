"""Latency percentiles: the one definition of a percentile of per-call times, when the data
support one, and the statistics a verdict may judge. Pure Python (the worker side imports it).

- A percentile is the inverted-CDF order statistic: the smallest time at or above which a share
  ``q`` of the calls lie (``quantile``; no interpolation, so p99 of 300 calls is one real call).
- It is *supported* when at least ``MIN_TAIL_CALLS`` calls lie beyond it (``calls_needed``): p90
  needs 50 calls, p99 500. Below that a p99 is the largest call or two, whatever the tail is; it
  is reported as not supported (with the count) rather than as a number.
- Percentiles are of single calls. A call shorter than the timing loop's minimum round
  (``TimingOptions.min_time``, 5 us, or ten ticks of the clock) is timed in rounds of several
  calls, and then the percentiles are of round means, which hide the tail inside a round: the
  basis says so (``basis``).
- A verdict judges one statistic of each worker process (``VERDICT_STATISTICS``): its median (the
  default), or a tail percentile (``p90``, ``p95``, ``p99``; harness.compare.stats), or its mean
  (what throughput sees; cells under a CPU quota in the thread report).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

REPORTED = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))  # what every cell reports
MIN_TAIL_CALLS = 5  # calls beyond a percentile for it to be supported by the data
DEFAULT_STATISTIC = "median"
QUANTILE_STATISTICS = {"p90": 0.9, "p95": 0.95, "p99": 0.99}
VERDICT_STATISTICS = (DEFAULT_STATISTIC, *QUANTILE_STATISTICS, "mean")
STATISTIC_KEY = "verdict_statistic"  # a saved cell's extra_info: the statistic its verdict judges


class StatisticError(ValueError):
    pass


def quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, inverted CDF (a value that occurred)."""
    if len(ordered) == 0:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def calls_needed(q: float) -> int:
    """The fewest calls that support the q-quantile (``MIN_TAIL_CALLS`` beyond it)."""
    return math.ceil(MIN_TAIL_CALLS / (1.0 - q) - 1e-9) if q < 1 else math.inf


def supported(calls: int, q: float) -> bool:
    return q <= 0.5 or calls >= calls_needed(q)


def basis(iterations: Sequence[int]) -> str:
    """What the percentiles of a cell are of, given each process's calls per round."""
    most = max(iterations, default=1)
    return "single calls" if most <= 1 else f"round means of up to {most} calls (calls under the clock's resolution)"


def check_statistic(name: str) -> str:
    """``name`` if a verdict can judge it, else a one-line StatisticError."""
    if name not in VERDICT_STATISTICS:
        raise StatisticError(f"verdict statistic {name!r}: use one of {', '.join(VERDICT_STATISTICS)}")
    return name


def statistic_quantile(name: str) -> float | None:
    """0.5 for the median, the percentile's q for p90/p95/p99, None for the mean."""
    return 0.5 if name == DEFAULT_STATISTIC else QUANTILE_STATISTICS.get(check_statistic(name))


def unsupported_reason(name: str, calls_per_process: Sequence[int]) -> str | None:
    """Why ``name`` cannot be judged from processes with these call counts (None: it can)."""
    q = statistic_quantile(name)
    if q is None or not calls_per_process:
        return None
    fewest = min(calls_per_process)
    if supported(fewest, q):
        return None
    return (
        f"{name} needs {calls_needed(q)} calls per worker process ({MIN_TAIL_CALLS} beyond it), "
        f"a process here has {fewest}: time longer (--benchmark-max-time) or judge the median"
    )
