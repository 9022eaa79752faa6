"""Statistics on timing samples grouped by worker process.

Samples are per-call times, one array per worker process. Rounds inside one process share that
process's luck (memory layout, clock, neighbours, even which code path a runtime picked), so they
are not independent: measured here, consecutive processes timing the same ORT model gave medians
of 5.3 ms and 3.45 ms. Treating thousands of rounds as independent would call that a
"significant" change every time.

So each process contributes one observation, its median, and:

- processes are often bimodal: measured here (squeezenet on ORT, 2 threads, 30 processes), 70% of
  processes ran at 1.64-1.77 ms and 30% at 2.03-2.29 ms, for the same code. A process whose median
  is more than ``MODE_GAP`` (12%) above the fastest process of its side belongs to a slow machine
  state; it is left out of the centre and the interval, and the verdict says how many were;
- the centre of a measurement is the geometric mean of its remaining per-process medians;
- with at least two processes per side, the confidence interval of the ratio is Welch's t
  interval on the log process medians (between-process noise included by construction);
- with a single process on a side, only a bootstrap over that process's rounds is possible,
  which cannot see between-process noise (the verdict treats it accordingly);
- the significance test is scipy's Mann-Whitney U on the pooled per-call samples (reported, and
  required in addition to the interval).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

MODE_GAP = 0.12


def process_medians(groups: list[np.ndarray]) -> np.ndarray:
    return np.array([np.median(np.asarray(g, dtype=np.float64)) for g in groups])


def steady(medians: np.ndarray, gap: float = MODE_GAP) -> np.ndarray:
    """The process medians of the fast (steady) mode: within ``gap`` of the fastest."""
    return medians[medians <= medians.min() * (1 + gap)]


def center(groups: list[np.ndarray], gap: float | None = MODE_GAP) -> float:
    """Geometric mean of the per-process medians (of the steady mode unless ``gap`` is None)."""
    meds = process_medians(groups)
    if gap is not None:
        meds = steady(meds, gap)
    return float(np.exp(np.mean(np.log(meds))))


def _welch_log_interval(base_meds: np.ndarray, cur_meds: np.ndarray, confidence: float) -> tuple[float, float]:
    lb, lc = np.log(base_meds), np.log(cur_meds)
    vb, vc = lb.var(ddof=1) / lb.size, lc.var(ddof=1) / lc.size
    diff = lc.mean() - lb.mean()
    se = np.sqrt(vb + vc)
    if se == 0:
        return float(np.exp(diff)), float(np.exp(diff))
    df = (vb + vc) ** 2 / ((vb**2) / (lb.size - 1) + (vc**2) / (lc.size - 1))
    half = sps.t.ppf(0.5 + confidence / 2, df) * se
    return float(np.exp(diff - half)), float(np.exp(diff + half))


def _bootstrap_interval(
    base: list[np.ndarray], cur: list[np.ndarray], confidence: float, n_boot: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Two-level bootstrap (processes, then rounds): for sides with a single process."""

    def centers(groups):
        meds = np.empty((len(groups), n_boot))
        for i, g in enumerate(groups):
            g = np.asarray(g, dtype=np.float64)
            meds[i] = np.median(g[rng.integers(0, g.size, size=(n_boot, g.size))], axis=1)
        pick = rng.integers(0, len(groups), size=(n_boot, len(groups)))
        return np.exp(np.log(meds[pick, np.arange(n_boot)[:, None]]).mean(axis=1))

    boot = centers(cur) / centers(base)
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class RatioEstimate:
    ratio: float  # current / baseline, > 1 = slower
    low: float
    high: float
    confidence: float
    p_value: float  # Mann-Whitney U, two-sided, on pooled per-call samples
    processes: tuple[int, int]
    rounds: tuple[int, int]
    method: str  # "welch-t on log process medians" or "bootstrap over rounds"
    slow_mode: tuple[int, int] = (0, 0)  # processes left out as a slow machine state, per side


def ratio_estimate(
    baseline: list[np.ndarray], current: list[np.ndarray], confidence: float = 0.99, n_boot: int = 2000, seed: int = 0
) -> RatioEstimate:
    if not baseline or not current or any(len(g) == 0 for g in list(baseline) + list(current)):
        raise ValueError("both sides need at least one process with at least one sample")
    base_meds, cur_meds = steady(process_medians(baseline)), steady(process_medians(current))
    slow = (len(baseline) - base_meds.size, len(current) - cur_meds.size)
    if min(base_meds.size, cur_meds.size) >= 2:
        low, high = _welch_log_interval(base_meds, cur_meds, confidence)
        method = "welch-t on log process medians (steady mode)"
    else:
        low, high = _bootstrap_interval(baseline, current, confidence, n_boot, np.random.default_rng(seed))
        method = "bootstrap over rounds (one process: between-process noise unseen)"
    pooled_b, pooled_c = np.concatenate(baseline), np.concatenate(current)
    p = (
        float(sps.mannwhitneyu(pooled_c, pooled_b, alternative="two-sided").pvalue)
        if min(pooled_b.size, pooled_c.size) > 1
        else 1.0
    )
    return RatioEstimate(
        center(current) / center(baseline),
        low,
        high,
        confidence,
        p,
        (len(baseline), len(current)),
        (int(pooled_b.size), int(pooled_c.size)),
        method,
        slow,
    )
