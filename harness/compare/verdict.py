"""The verdict for one cell.

With t the minimum practical effect (the threshold, default 5%), alpha the significance level, and
from harness.compare.stats: the steady-state ratio r with its 1 - alpha interval [lo, hi], the
mixture ratio m with its interval (all processes, slow states included) and Fisher's test of the
share of slow-state processes, checked in this order:

- inconclusive      : fewer than 2 steady processes on a side (between-process noise unseen)
- regression        : lo > 1 and r >= 1 + t        (surely slower, and the estimate reaches t)
- minor regression  : lo > 1 and r < 1 + t         (surely slower, by less than t)
- improvement, minor improvement: the mirror image (hi < 1)
- regression / minor regression: the slow state is more frequent now (Fisher, one-sided, p < alpha/2)
  even though the steady state did not move; ``regression`` when m >= 1 + t
- improvement / minor improvement: the slow state is less frequent now (the mirror image)
- unchanged         : both intervals inside (1/(1+t), 1+t): whatever changed, in the steady state
  or in how often processes run slow, is smaller than t
- inconclusive      : anything else; the note says how many processes per side would decide it

Only ``regression`` fails a gate by default; ``minor regression`` is shown and fails only when
asked (``--fail-on-minor``). The interval is the verdict's own claim: a true ratio outside it
happens with probability about alpha (tests/test_statistics.py checks coverage, false alarms and
detection by simulation at 3, 10 and 15 processes per side).

Drift: when the machine itself moved between the runs (the control workload's ratio, with its own
interval, excludes 1), the intervals are of the ratio divided by the control's, with both
uncertainties (``LogInterval.shifted``); the verdict says so and keeps the raw ratio.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.compare.op_profile import OpDiff
from harness.compare.percentiles import DEFAULT_STATISTIC, unsupported_reason
from harness.compare.stats import LogInterval, RatioEstimate, ratio_estimate, welch_half_width

VERDICTS = (
    "regression",
    "minor regression",
    "improvement",
    "minor improvement",
    "unchanged",
    "inconclusive",
    "new",
    "missing",
)
DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.01
MAX_ADVISED_PROCESSES = 200  # beyond this the advice says the change sits on a decision boundary


@dataclass(frozen=True)
class Projection:
    """What keeps an inconclusive verdict undecided, to project more processes from (its advice
    note here; the --until-decided planner, harness.compare.sequential): the ``interval`` that must
    narrow, ``steady`` (the steady state's) or ``mixture`` (all processes': the steady state is
    unchanged but the share of slow-state processes is unsettled), its log estimate ``diff`` (as
    judged: drift-corrected where the verdict is), the per-side ``spread`` of the log process levels
    it uses, the least spread the interval itself implies (``least_spread``: two equal medians are
    not a noiseless side), and the processes per side it uses (``counts``) out of all
    (``processes``)."""

    interval: str
    diff: float
    spread: tuple[float, float]
    least_spread: float
    counts: tuple[int, int]
    processes: tuple[int, int]

    @property
    def share(self) -> tuple[float, float]:
        """The share of each side's processes the interval uses, kept as processes are added."""
        return tuple(k / max(1, p) for k, p in zip(self.counts, self.processes))

    def margin(self, threshold: float) -> float:
        """The half-width at which the interval decides (``decision_margin``). The mixture's decides
        only by fitting inside the no-change band (its steady state is unchanged already): 0 or less
        where its estimate lies outside the band, which no number of processes narrows into it."""
        if self.interval == "mixture":
            return math.log1p(threshold) - abs(self.diff)
        return decision_margin(self.diff, threshold)


@dataclass
class Verdict:
    name: str
    verdict: str
    ratio: float | None = None  # current / baseline of the steady state, as judged (drift-corrected if ``drift``)
    low: float | None = None  # its interval at 1 - alpha
    high: float | None = None
    p_value: float | None = None  # two-sided, of what was judged (Welch's t; the bootstrap's with one process)
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    drift: float | None = None  # control(now) / control(baseline) the ratios were divided by; None: raw
    raw_ratio: float | None = None  # the steady-state ratio before the drift correction (only when corrected)
    mixture: tuple[float, float, float] | None = None  # ratio, low, high over all processes
    resolution: float | None = None  # the interval's half-width as a fraction: effects below it are not seen
    slow_state: tuple[int, int] | None = None  # slow-state processes (baseline, current)
    fast_state: tuple[int, int] | None = None  # fast-state processes (baseline, current)
    slow_share_p: float | None = None  # Fisher, one-sided, in the direction the shares moved
    processes: tuple[int, int] | None = None
    steady: tuple[int, int] | None = None  # processes in the steady state (baseline, current)
    note: str = ""
    spread: tuple[float, float] | None = None  # sd of the steady log process medians (baseline, current)
    look: int | None = None  # with --until-decided: the look (1, 2, ...) this verdict was made at
    statistic: str = DEFAULT_STATISTIC  # what each process contributes (harness.compare.percentiles)
    metrics: dict = field(default_factory=dict)  # metric name -> harness.compare.metrics.MetricVerdict
    op_diff: OpDiff | None = None  # a regression whose sides both have a per-operator profile: what got slower
    projection: Projection | None = None  # inconclusive on its intervals: what must narrow to decide

    def to_dict(self) -> dict:
        return asdict(self)


def _in_band(interval: LogInterval, up: float) -> bool:
    return -up < interval.low and interval.high < up


def decision_margin(diff: float, threshold: float) -> float:
    """How narrow an interval around the log ratio ``diff`` must get (its half-width) to decide:
    inside the no-change band, fit in it or clear 1, whichever is nearer; outside it, clear 1."""
    up, d = math.log1p(threshold), abs(diff)
    return max(up - d, d) if d < up else d


def _projection(est: RatioEstimate, interval: LogInterval, mixture: bool) -> Projection:
    """The ``Projection`` of an undecided ``interval``: the mixture's (all processes, their spread)
    or the steady state's (the steady processes, their spread)."""
    counts = est.processes if mixture else est.kept
    spread = est.mixture_spread if mixture else est.spread
    least = interval.se * math.sqrt(min(counts) / 2)
    return Projection("mixture" if mixture else "steady", interval.diff, spread, least, counts, est.processes)


def _advice(projection: Projection, t: float, confidence: float) -> str:
    """How many processes per side would let the projected interval decide: fit inside the
    no-change band when its estimate is inside it, clear 1 otherwise. Projects Welch's half-width
    (t quantile at the projected degrees of freedom) from the spread seen, keeping the share of
    the processes the interval uses."""
    margin = projection.margin(t)
    mixture = projection.interval == "mixture"
    what = "whether the share of slow-state processes changed" if mixture else "whether it changed"
    if mixture and margin <= 0:
        return (
            "over all processes the ratio lies outside the no-change band while the steady state is unchanged: "
            "more processes tell whether the share of slow-state processes changed only through Fisher's test"
        )
    if margin < 1e-3:
        return f"the estimate sits on a decision boundary: more processes will not tell {what}"
    totals = np.arange(max(projection.processes) + 1, MAX_ADVISED_PROCESSES + 1)
    kept = tuple(np.maximum(2, (totals * s).astype(int)) for s in projection.share)
    spread = tuple(max(s, projection.least_spread) for s in projection.spread)
    enough = np.flatnonzero(welch_half_width(spread, kept, confidence) < margin)
    if enough.size:
        total = int(totals[enough[0]])
        return f"about {total} worker processes per side (--processes {total}) would decide {what}"
    return (
        f"more than {MAX_ADVISED_PROCESSES} processes per side would be needed to tell {what}: the estimate is "
        f"close to a decision boundary"
    )


def _states_note(est: RatioEstimate) -> str:
    s = est.states
    if not s.split or not (any(s.slow) or any(s.fast)):
        return ""
    (nb, nc), parts = est.processes, []
    if any(s.slow):
        parts.append(f"slow state {s.slow[0]}/{nb} baseline, {s.slow[1]}/{nc} current")
    if any(s.fast):
        parts.append(f"fast state {s.fast[0]}/{nb} baseline, {s.fast[1]}/{nc} current")
    return (
        "; ".join(parts)
        + f" (apart from the steady state by a gap of over {math.expm1(s.gap):.0%}; left out of the ratio)"
    )


def judge(
    name: str,
    baseline: list | None,
    current: list | None,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    drift: LogInterval | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    statistic: str = DEFAULT_STATISTIC,
    calls: tuple[list[int] | None, list[int] | None] = (None, None),
    levels: tuple = (None, None),
) -> Verdict:
    """``baseline``/``current``: per-process arrays of per-call seconds (None = absent).
    ``drift``: the control's log ratio now/baseline, when the verdict must correct for it.
    ``statistic``: what each process contributes (median, p90, p95, p99, mean); a percentile the
    calls of a side do not support (``calls``: per-process call counts, where the arrays hold
    fewer stored values than calls were timed) leaves the verdict inconclusive, saying so.
    ``levels``: a side's per-process (log statistic, within-process variance) computed where the
    calls were in order (harness.compare.stats ``ratio_estimate``), else None."""
    if not baseline:
        return Verdict(
            name,
            "new" if current else "missing",
            threshold=threshold,
            alpha=alpha,
            note="no baseline for this cell" if current else "no samples on either side",
            statistic=statistic,
        )
    if not current:
        return Verdict(
            name,
            "missing",
            threshold=threshold,
            alpha=alpha,
            note="in the baseline but not measured now",
            statistic=statistic,
        )
    base = [np.asarray(g, dtype=np.float64) for g in baseline]
    cur = [np.asarray(g, dtype=np.float64) for g in current]
    for side, groups, counts in (("baseline", base, calls[0]), ("current", cur, calls[1])):
        why = unsupported_reason(statistic, counts or [g.size for g in groups])
        if why:
            return Verdict(
                name, "inconclusive", threshold=threshold, alpha=alpha, note=f"{side}: {why}", statistic=statistic
            )
    est = ratio_estimate(base, cur, confidence=1 - alpha, n_boot=n_boot, seed=seed, statistic=statistic, levels=levels)
    steady, mixture = est.steady, est.mixture
    if drift is not None:  # a slower machine is not a slower model: divide by the control, keep its noise
        steady = steady.shifted(drift, 1 - alpha)
        mixture = mixture.shifted(drift, 1 - alpha) if mixture is not None else None
    up = math.log1p(threshold)
    more_slow, fewer_slow = est.slow_share_p
    notes: list[str] = []
    projection = None
    few = min(est.kept) < 2 or mixture is None
    if few:
        verdict = "inconclusive"
        notes.append(
            "fewer than 2 steady worker processes on a side: between-process noise unseen; use --processes 3 or more"
        )
    elif steady.low > 0:
        verdict = "regression" if steady.diff >= up else "minor regression"
    elif steady.high < 0:
        verdict = "improvement" if steady.diff <= -up else "minor improvement"
    elif more_slow < alpha / 2 or fewer_slow < alpha / 2:
        slower = more_slow < alpha / 2
        big = mixture.diff >= up if slower else mixture.diff <= -up
        verdict = ("" if big else "minor ") + ("regression" if slower else "improvement")
        notes.append(
            f"the slow state is {'more' if slower else 'less'} frequent now "
            f"(Fisher p = {min(more_slow, fewer_slow):.2g}; all processes: ratio {mixture.ratio[0]:.3f})"
        )
    elif _in_band(steady, up) and _in_band(mixture, up):
        verdict = "unchanged"
    else:
        verdict = "inconclusive"
        projection = _projection(est, mixture if _in_band(steady, up) else steady, _in_band(steady, up))
        notes.append(_advice(projection, threshold, est.confidence))
    notes.append(_states_note(est))
    if drift is not None:
        notes.append(
            "drift-corrected: the control ran {:.3f}x [{:.3f}, {:.3f}] of the baseline's; ".format(*drift.ratio)
            + f"raw ratio {est.steady.ratio[0]:.3f}"
        )
    if est.method.startswith("bootstrap"):
        notes.append(est.method)
    ratio, low, high = steady.ratio
    return Verdict(
        name,
        verdict,
        ratio,
        low,
        high,
        steady.p_value,
        threshold,
        alpha,
        drift.ratio[0] if drift is not None else None,
        est.steady.ratio[0] if drift is not None else None,
        mixture.ratio if mixture is not None else None,
        math.expm1((steady.high - steady.low) / 2),
        est.states.slow,
        est.states.fast,
        min(more_slow, fewer_slow),
        est.processes,
        est.kept,
        "; ".join(n for n in notes if n),
        est.spread,
        statistic=statistic,
        projection=projection,
    )
