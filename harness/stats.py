"""Statistics on timing samples grouped by worker process.

Samples are per-call times, one array per worker process. Rounds inside one process share that
process's luck (memory layout, frequency, neighbours), so they are not independent: the centre of
a measurement is the mean of its per-process medians, and confidence intervals come from a
two-level (hierarchical) bootstrap that resamples processes, then rounds inside each process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


def center(groups: list[np.ndarray]) -> float:
    """Mean of per-process medians."""
    return float(np.mean([np.median(g) for g in groups]))


def _bootstrap_centers(groups: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    # level 2: a bootstrap median for every process and every replicate
    meds = np.empty((len(groups), n_boot))
    for i, g in enumerate(groups):
        g = np.asarray(g, dtype=np.float64)
        idx = rng.integers(0, g.size, size=(n_boot, g.size))
        meds[i] = np.median(g[idx], axis=1)
    # level 1: resample processes
    pick = rng.integers(0, len(groups), size=(n_boot, len(groups)))
    return meds[pick, np.arange(n_boot)[:, None]].mean(axis=1)


@dataclass(frozen=True)
class RatioEstimate:
    ratio: float          # current / baseline, > 1 = slower
    low: float
    high: float
    confidence: float
    p_value: float        # Mann-Whitney U, two-sided, on pooled per-call samples
    processes: tuple[int, int]
    rounds: tuple[int, int]


def ratio_estimate(baseline: list[np.ndarray], current: list[np.ndarray], confidence: float = 0.99,
                   n_boot: int = 2000, seed: int = 0) -> RatioEstimate:
    if not baseline or not current or any(len(g) == 0 for g in list(baseline) + list(current)):
        raise ValueError("both sides need at least one process with at least one sample")
    rng = np.random.default_rng(seed)
    b = _bootstrap_centers(baseline, n_boot, rng)
    c = _bootstrap_centers(current, n_boot, rng)
    boot = c / b
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    pooled_b, pooled_c = np.concatenate(baseline), np.concatenate(current)
    p = float(sps.mannwhitneyu(pooled_c, pooled_b, alternative="two-sided").pvalue) if min(pooled_b.size, pooled_c.size) > 1 else 1.0
    return RatioEstimate(center(current) / center(baseline), float(low), float(high), confidence, p,
                         (len(baseline), len(current)), (int(pooled_b.size), int(pooled_c.size)))
