"""The verdict for one cell: regression, improvement, unchanged, inconclusive, new or missing.

With r the ratio current/baseline of the centres (geometric mean of per-process medians, slow
machine-state processes left out: see harness.compare.stats),
[lo, hi] its confidence interval at 1 - alpha (see harness.compare.stats), p the Mann-Whitney U p-value
and t the minimum practical effect (default 5%), checked in this order:

- unchanged    : 1 / (1 + t) < lo and hi < 1 + t    (whatever changed, it is smaller than t)
- regression   : lo > 1, r >= 1 + t/2 and p < alpha  (surely slower, and it may well reach t)
- improvement  : hi < 1, r <= 1 / (1 + t/2) and p < alpha
- inconclusive : anything else; says how many processes would resolve it

"unchanged" first means a true slowdown of exactly t is still caught: its interval reaches past
1 + t. The t/2 floor keeps a significant but tiny change with a wide interval from alarming.

Fewer than two (steady) processes on either side cannot show between-process noise (measured here:
5.3 ms vs 3.45 ms medians for the same model in consecutive processes), so such a comparison is
always ``inconclusive``. Measured detection power: README.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from harness.compare.stats import MODE_GAP, ratio_estimate

VERDICTS = ("regression", "improvement", "unchanged", "inconclusive", "new", "missing")
DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.01


@dataclass
class Verdict:
    name: str
    verdict: str
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    drift: float | None = None  # control(current) / control(baseline)
    corrected_ratio: float | None = None  # ratio / drift
    note: str = ""
    processes: tuple[int, int] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _more_processes_needed(ratio: float, low: float, high: float, t: float, processes: int) -> str:
    """The interval shrinks ~ 1/sqrt(processes): how many would let it decide? Inside the
    no-change band it must fit in the band (unchanged); outside, it must clear 1 (a change)."""
    half = (high - low) / 2
    if 1 / (1 + t) < ratio < 1 + t:
        distance = min(ratio - 1 / (1 + t), 1 + t - ratio)
    else:
        distance = abs(ratio - 1)
    if distance < 1e-3 or half <= 0:
        return "the change sits on a decision boundary; more samples will not resolve it"
    needed = math.ceil(processes * (half / distance) ** 2)
    return f"about {max(needed - processes, 1)} more worker processes per side (--processes {needed}) would resolve it"


def judge(
    name: str,
    baseline: list | None,
    current: list | None,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    drift: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> Verdict:
    """``baseline``/``current``: per-process arrays of per-call seconds (None = absent)."""
    if not baseline:
        return Verdict(
            name,
            "new" if current else "missing",
            threshold=threshold,
            alpha=alpha,
            note="no baseline for this cell" if current else "no samples on either side",
        )
    if not current:
        return Verdict(name, "missing", threshold=threshold, alpha=alpha, note="in the baseline but not measured now")
    base = [np.asarray(g, dtype=np.float64) for g in baseline]
    cur = [np.asarray(g, dtype=np.float64) for g in current]
    est = ratio_estimate(base, cur, confidence=1 - alpha, n_boot=n_boot, seed=seed)
    r, lo, hi, p = est.ratio, est.low, est.high, est.p_value
    if drift:  # judge the drift-corrected ratio: a slower machine is not a slower model
        r, lo, hi = r / drift, lo / drift, hi / drift
    up, down = 1 + threshold, 1 / (1 + threshold)
    few = min(n - k for n, k in zip(est.processes, est.slow_mode)) < 2
    if few:  # one process cannot show between-process noise: no claim either way
        verdict = "inconclusive"
        note = "fewer than 2 steady worker processes on a side: between-process noise unseen; use --processes 3 or more"
    elif down < lo and hi < up:
        verdict, note = "unchanged", ""
    elif lo > 1 and r >= 1 + threshold / 2 and p < alpha:
        verdict, note = "regression", ""
    elif hi < 1 and r <= 1 / (1 + threshold / 2) and p < alpha:
        verdict, note = "improvement", ""
    else:
        verdict = "inconclusive"
        note = _more_processes_needed(r, lo, hi, threshold, max(est.processes))
    if any(est.slow_mode):
        note = "; ".join(
            filter(
                None,
                [
                    note,
                    f"slow machine state: {est.slow_mode[0]}/{est.processes[0]} baseline and "
                    f"{est.slow_mode[1]}/{est.processes[1]} current processes ran >{MODE_GAP:.0%} slower than "
                    f"their fastest and were left out",
                ],
            )
        )
    return Verdict(
        name,
        verdict,
        est.ratio,
        est.low,
        est.high,
        p,
        threshold,
        alpha,
        drift,
        r if drift else None,
        note,
        est.processes,
    )
