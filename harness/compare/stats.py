"""Statistics on timing samples grouped by worker process: pure functions, no I/O.

Samples are per-call times, one array per worker process. Rounds inside one process share that
process's luck (memory layout, clock, neighbours, even which code path a runtime picked), so they
are not independent: measured here, consecutive processes timing the same ORT model gave medians
of 5.3 ms and 3.45 ms, and a Mann-Whitney U test on the pooled calls of two identical 10-process
runs gave p < 0.01 in 87% of trials. Every test here is therefore at the level of processes: each
process contributes one observation, the log of its median.

**Machine states.** Processes are often bimodal: measured here (squeezenet on ORT, 2 threads, 30
processes), 70% of processes ran at 1.64-1.77 ms and 30% at 2.03-2.29 ms, for the same code. With
at least ``MIN_PROCESSES_FOR_STATES`` processes per side, each side's processes are split into a
*steady* state and the rest (``split_states``):

1. the steady state is anchored on the fastest window of ``MODE_GAP`` (12%) holding at least
   ``MIN_STATE_SHARE`` (a third) of the side's processes (``state_anchor``): not the single
   fastest process (one or two lucky ones cannot anchor it) and not the median (a side whose
   majority ran slow keeps its fast state). Each side is anchored on its own, so a real change
   moves no process between states;
2. each side is re-centred on the median of its processes near the anchor (within 12%, or
   ``MODE_SPREAD`` robust standard deviations if wider), and the spread of those processes is
   estimated (1.4826 x their median absolute deviation, both sides pooled);
3. the steady state is every process chained to the centre by gaps no wider than ``STATE_GAP``
   (5%) or ``GAP_SPREAD`` spreads, whichever is wider (single linkage): another state lies across
   an *empty stretch*, so a continuum of process speeds stays one state and ordinary unimodal noise
   keeps every process; processes beyond the stretch above are in a *slow state*, below in a
   *fast state* (lucky processes).

A side with a slow majority is ambiguous (a slow majority, or a change plus a few lucky
processes?): where anchoring on the fastest two processes instead gives another split, the
interval covers both readings.

With fewer processes per side, states cannot be told apart from a change, and every process counts.

**Estimates.** The ratio current/baseline is exp(difference of mean log medians) of the steady
processes, with Welch's t interval (unequal variances; each side's variance at least the sampling
variance of its processes' medians, so identical medians do not give a zero-width interval) and
its two-sided p-value. The same is computed over all processes (the *mixture*: what a user pays
on average, slow states included), and whether the share of slow-state processes differs between
the sides is tested with Fisher's exact test, one-sided each way. The verdict (harness.compare.verdict)
combines the three; its error rates are checked by simulation in tests/test_statistics.py.

With a single process on a side no between-process noise is visible: the interval then comes from
a bootstrap over that process's rounds (and says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from harness.compare.percentiles import DEFAULT_STATISTIC, quantile, statistic_quantile

MODE_GAP = 0.12  # the window (ratio) a state's anchor is looked for in
MODE_SPREAD = 4.5  # the neighbourhood of the centre the spread is estimated in, in robust sds, if wider
STATE_GAP = 0.05  # another state lies across an empty stretch of at least this (ratio) ...
GAP_SPREAD = 2.5  # ... or this many robust standard deviations of the steady processes, if wider
MIN_PROCESSES_FOR_STATES = 5  # per side; with fewer, machine states cannot be told from a change
MIN_STATE_SHARE = 1 / 3  # the steady state holds at least this share of a side's processes


def _log_quartiles(groups: list[np.ndarray]) -> np.ndarray:
    """Rows (q1, median, q3) of each process's log samples (one vectorised call when the
    processes have equal numbers of samples, as they usually do)."""
    if len({g.size for g in groups}) == 1:
        return np.quantile(np.log(np.stack(groups)), [0.25, 0.5, 0.75], axis=1).T
    return np.array([np.quantile(np.log(g), [0.25, 0.5, 0.75]) for g in groups])


def median_log_variance(samples: np.ndarray, quartiles: np.ndarray) -> float:
    """Sampling variance of log(median) of one process's rounds: (1.2533 sigma)^2 / n, with sigma
    from the interquartile range of the log samples (``quartiles``: their q1, median, q3; robust
    to outlier rounds), or from the resolution of the values when most rounds are identical."""
    q1, _, q3 = quartiles
    sigma = (q3 - q1) / 1.349
    if sigma == 0:
        steps = np.diff(np.unique(np.log(samples)))
        sigma = (steps.min() if steps.size else 1e-9) / math.sqrt(12)
    return float((1.2533 * sigma) ** 2 / np.asarray(samples).size)


BATCHES = 10  # batch means for the sampling variance of a process's mean


def quantile_log_variance(log_sorted: np.ndarray, q: float) -> float:
    """Sampling variance of the log q-quantile of one process's calls (sorted logs), from the
    order statistics one binomial standard deviation either side of it (distribution-free:
    the count of calls below the true quantile is Binomial(n, q)), or from the resolution of the
    values when they are equal there."""
    n = log_sorted.size
    k, d = q * n, math.sqrt(n * q * (1 - q))
    lo, hi = max(0, math.floor(k - d) - 1), min(n - 1, math.ceil(k + d) - 1)
    half = float(log_sorted[hi] - log_sorted[lo]) / 2
    if half == 0:
        steps = np.diff(np.unique(log_sorted))
        half = (steps.min() if steps.size else 1e-9) / math.sqrt(12)
    return half**2


def log_process_levels(groups: list, statistic: str = DEFAULT_STATISTIC) -> tuple[np.ndarray, np.ndarray]:
    """Each process's log statistic of its per-call times (harness.compare.percentiles:
    ``median``; a tail percentile ``p90``/``p95``/``p99``, the inverted-CDF order statistic; or
    ``mean``: what throughput sees, throttled calls included) and that statistic's
    within-process sampling variance (the least variance a process can have). For the mean it
    comes from batch means (``BATCHES`` consecutive batches of calls in the order they ran):
    throttling under a CPU quota is periodic, not independent from call to call, and batches
    follow that."""
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    q = statistic_quantile(statistic)
    if statistic == DEFAULT_STATISTIC:
        quartiles = _log_quartiles(groups)
        return quartiles[:, 1], np.array([median_log_variance(g, qs) for g, qs in zip(groups, quartiles)])
    if q is not None:
        logs = [np.sort(np.log(g)) for g in groups]
        return (
            np.array([quantile(x, q) for x in logs]),
            np.array([quantile_log_variance(x, q) for x in logs]),
        )
    means = np.array([g.mean() for g in groups])
    floors = np.zeros(len(groups))
    for i, g in enumerate(groups):
        k = min(BATCHES, g.size // 2)
        if k >= 2:
            batch_means = np.array([b.mean() for b in np.array_split(g, k)])
            floors[i] = batch_means.var(ddof=1) / (k * means[i] ** 2)
    return np.log(means), floors


def level_interval(x: np.ndarray, floors: np.ndarray, confidence: float) -> LogInterval | None:
    """t interval of the mean log level of >= 2 processes (None with fewer: one process shows no
    between-process noise), each process's variance at least its within-process variance."""
    if x.size < 2:
        return None
    var = max(float(x.var(ddof=1)), float(floors.mean())) / x.size
    return welch_from(float(x.mean()), math.sqrt(var), x.size - 1, confidence)


@dataclass(frozen=True)
class LogInterval:
    """Welch's comparison of two sets of log process medians."""

    diff: float  # mean(current) - mean(baseline), log
    low: float
    high: float
    p_value: float  # two-sided, H0: diff = 0
    se: float
    df: float

    @property
    def ratio(self) -> tuple[float, float, float]:
        return math.exp(self.diff), math.exp(self.low), math.exp(self.high)

    def shifted(self, by: LogInterval, confidence: float) -> LogInterval:
        """This difference minus another independent one (``by``: the drift control), with both
        uncertainties: Welch-Satterthwaite degrees of freedom for the sum of the two variances.
        The interval keeps its own shape (an interval widened to cover two readings stays as
        wide) and grows on each side by what the added variance adds to the half-width."""
        var = self.se**2 + by.se**2
        df = float(satterthwaite_df((self.se**2, self.df), (by.se**2, by.df)))
        combined = welch_from(self.diff - by.diff, math.sqrt(var), df, confidence)
        own = float(sps.t.ppf(0.5 + confidence / 2, self.df)) * self.se if self.se > 0 else 0.0
        extra = max(0.0, (combined.high - combined.low) / 2 - own)
        return LogInterval(
            combined.diff,
            self.low - by.diff - extra,
            self.high - by.diff + extra,
            max(combined.p_value, self.p_value),
            combined.se,
            combined.df,
        )


def satterthwaite_df(*terms):
    """Welch-Satterthwaite degrees of freedom of a sum of independent variances, each term
    (variance, its degrees of freedom; inf for a known one). Scalars or arrays; inf when the sum is 0."""
    total = sum(v for v, _ in terms)
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = np.asarray(sum(np.asarray(v, dtype=np.float64) ** 2 / d for v, d in terms))
        return np.where(denominator > 0, total**2 / denominator, np.inf)


def welch_from(diff: float, se: float, df: float, confidence: float) -> LogInterval:
    if se == 0:
        return LogInterval(diff, diff, diff, 0.0 if diff else 1.0, 0.0, df)
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * se
    p = float(2 * sps.t.sf(abs(diff) / se, df))
    return LogInterval(diff, diff - half, diff + half, p, se, df)


def welch(
    base: np.ndarray, cur: np.ndarray, confidence: float, floors: tuple[float, float] = (0.0, 0.0)
) -> LogInterval:
    """``base``/``cur``: log process medians (>= 2 each); ``floors``: each side's least variance
    per process (the within-process sampling variance of a median)."""
    vb = max(float(base.var(ddof=1)), floors[0]) / base.size
    vc = max(float(cur.var(ddof=1)), floors[1]) / cur.size
    df = float(satterthwaite_df((vb, base.size - 1), (vc, cur.size - 1)))
    return welch_from(float(cur.mean() - base.mean()), math.sqrt(vb + vc), df, confidence)


def welch_half_width(sd: tuple[float, float], kept: tuple[np.ndarray, np.ndarray], confidence: float) -> np.ndarray:
    """The half-widths Welch's interval would have with ``kept`` processes per side (arrays of
    counts, >= 2) of spread ``sd``: what the advice on more processes projects."""
    kb, kc = (np.asarray(k, dtype=np.float64) for k in kept)
    vb, vc = sd[0] ** 2 / kb, sd[1] ** 2 / kc
    df = satterthwaite_df((vb, kb - 1), (vc, kc - 1))
    return sps.t.ppf(0.5 + confidence / 2, df) * np.sqrt(vb + vc)


@dataclass(frozen=True)
class StateSplit:
    """Which processes of each side are steady, in a slow state or in a fast state."""

    steady: tuple[np.ndarray, np.ndarray]  # boolean masks
    slow: tuple[int, int]
    fast: tuple[int, int]
    gap: float  # the empty stretch (log) that separates another state; 0 when states were not considered

    @property
    def split(self) -> bool:
        return self.gap > 0


def state_anchor(x: np.ndarray, width: float, min_share: float = MIN_STATE_SHARE, least: int = 3) -> float:
    """The centre of the fastest state of one side: the median of the first (fastest) window of
    log-width ``width`` that holds at least ``min_share`` of the side's processes and at least
    ``least``. One or two lucky-fast processes cannot anchor it; a majority in a slow state does
    not move it."""
    xs = np.sort(x)
    need = max(least, math.ceil(min_share * xs.size))
    ends = np.searchsorted(xs, xs + width, side="right")
    starts = np.flatnonzero(ends - np.arange(xs.size) >= need)
    if not starts.size:
        return float(np.median(xs))
    i = int(starts[0])
    return float(np.median(xs[i : ends[i]]))


def split_states(
    base: np.ndarray, cur: np.ndarray, gap: float = MODE_GAP, min_share: float = MIN_STATE_SHARE, least: int = 3
) -> StateSplit:
    """``base``/``cur``: log process medians. See the module docstring. A split that would leave
    a side fewer than 2 steady processes is not made (every process counts)."""
    unsplit = StateSplit((np.ones(base.size, bool), np.ones(cur.size, bool)), (0, 0), (0, 0), 0.0)
    if min(base.size, cur.size) < MIN_PROCESSES_FOR_STATES:
        return unsplit
    width = math.log1p(gap)
    offsets = tuple(side - state_anchor(side, width, min_share, least) for side in (base, cur))
    half = width
    for _ in range(2):  # re-centre each side on its processes near the centre, widen to the spread seen there
        if not all(np.any(np.abs(o) <= half) for o in offsets):
            return unsplit  # a side with no process near its own state: no state structure to use
        offsets = tuple(o - np.median(o[np.abs(o) <= half]) for o in offsets)
        near = np.abs(np.concatenate(offsets))
        spread = 1.4826 * float(np.median(near[near <= half]))  # robust sd of the processes near the centre
        half = max(width, MODE_SPREAD * spread)
    # the steady state: the processes chained to the centre by gaps no wider than the link (single
    # linkage on both sides' offsets): a state is another state only across an empty stretch
    link = max(math.log1p(STATE_GAP), GAP_SPREAD * spread)
    pooled = np.sort(np.concatenate(offsets))
    centre = int(np.argmin(np.abs(pooled)))
    breaks = np.flatnonzero(np.diff(pooled) > link)
    low = pooled[breaks[breaks < centre].max() + 1] if (breaks < centre).any() else pooled[0]
    high = pooled[breaks[breaks >= centre].min()] if (breaks >= centre).any() else pooled[-1]
    steady = tuple((o >= low) & (o <= high) for o in offsets)
    if min(int(m.sum()) for m in steady) < 2:
        return unsplit
    slow = tuple(int(np.count_nonzero(o > high)) for o in offsets)
    fast = tuple(int(np.count_nonzero(o < low)) for o in offsets)
    return StateSplit(steady, slow, fast, link)  # type: ignore[arg-type]


def slow_share_p(slow: tuple[int, int], n: tuple[int, int]) -> tuple[float, float]:
    """One-sided Fisher exact p-values: (current has more slow-state processes, current has fewer)."""
    if not any(slow):
        return 1.0, 1.0
    table = [[slow[1], n[1] - slow[1]], [slow[0], n[0] - slow[0]]]
    more = float(sps.fisher_exact(table, alternative="greater").pvalue)
    fewer = float(sps.fisher_exact(table, alternative="less").pvalue)
    return more, fewer


def _bootstrap_interval(
    base: list[np.ndarray],
    cur: list[np.ndarray],
    diff: float,
    confidence: float,
    n_boot: int,
    seed: int,
    statistic: str = DEFAULT_STATISTIC,
) -> LogInterval:
    """Two-level bootstrap (processes, then rounds) of ``diff``, the difference of mean log
    process statistics: for a side with a single process, where no between-process noise can be
    seen."""
    rng = np.random.default_rng(seed)
    q = statistic_quantile(statistic)

    def level(resampled: np.ndarray) -> np.ndarray:
        if q is None:
            return resampled.mean(axis=1)
        if statistic == DEFAULT_STATISTIC:
            return np.median(resampled, axis=1)
        return np.quantile(resampled, q, axis=1, method="inverted_cdf")

    def centres(groups):
        meds = np.empty((len(groups), n_boot))
        for i, g in enumerate(groups):
            meds[i] = level(g[rng.integers(0, g.size, size=(n_boot, g.size))])
        pick = rng.integers(0, len(groups), size=(n_boot, len(groups)))
        return np.log(meds[pick, np.arange(n_boot)[:, None]]).mean(axis=1)

    boot = centres(cur) - centres(base)
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    low, high = min(float(low), diff), max(float(high), diff)
    p = float(min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0))))
    return LogInterval(diff, low, high, p, float(np.std(boot)), math.inf)


def _one_process_interval(
    x1: float, other: np.ndarray, other_floor: float, sign: int, confidence: float
) -> LogInterval:
    """``sign`` * (x1 - mean(other)) with one process on one side: its variance is taken to be the
    other side's spread (the only between-process noise seen)."""
    var = max(float(other.var(ddof=1)), other_floor)
    return welch_from(sign * float(x1 - other.mean()), math.sqrt(var / other.size + var), other.size - 1, confidence)


def _small_side_readings(
    xb: np.ndarray, xc: np.ndarray, floors: list[np.ndarray], confidence: float
) -> list[tuple[str, LogInterval]]:
    """A side of fewer than MIN_PROCESSES_FOR_STATES processes against one that shows machine states:
    when all of the small side's processes sit in one of the big side's other states (a slow or a
    fast one), the reading "the small side ran in that state" (3 processes all in a 30% slow state
    happen 2.7% of the time) is compared with the big side's processes in it."""
    small_is_base = xb.size < xc.size
    small, big = (xb, xc) if small_is_base else (xc, xb)
    big_floor = floors[1] if small_is_base else floors[0]
    own = split_states(big, big)
    if not own.split:
        return []
    steady = big[own.steady[0]]
    readings = []
    for name, in_state in (("slow", big > steady.max()), ("fast", big < steady.min())):
        state = big[in_state]
        if not state.size or not np.all((small >= state.min() - own.gap) & (small <= state.max() + own.gap)):
            continue
        sign = -1 if small_is_base else 1  # current - baseline
        if state.size >= 2:
            fb, fc = (
                (floors[0].mean(), big_floor[in_state].mean())
                if small_is_base
                else (big_floor[in_state].mean(), floors[1].mean())
            )
            alt = (
                welch(small, state, confidence, (fb, fc))
                if small_is_base
                else welch(state, small, confidence, (fb, fc))
            )
        else:
            alt = _one_process_interval(
                float(state[0]), small, float(floors[0 if small_is_base else 1].mean()), -sign, confidence
            )
        which = "baseline" if small_is_base else "current"
        readings.append((f"the {which}'s {small.size} processes all in the other side's {name} state", alt))
    return readings


@dataclass(frozen=True)
class RatioEstimate:
    """current / baseline (> 1 = slower) for one cell, from per-process samples."""

    steady: LogInterval  # the steady processes (all of them when states were not split)
    mixture: LogInterval | None  # all processes (None with a single process on a side)
    confidence: float
    processes: tuple[int, int]
    rounds: tuple[int, int]
    method: str
    states: StateSplit
    slow_share_p: tuple[float, float]  # Fisher: (current has more slow processes, fewer)
    spread: tuple[float, float]  # std of the steady log medians per side (0 with one process)
    mixture_spread: tuple[float, float]  # std of all log medians per side

    @property
    def kept(self) -> tuple[int, int]:
        return int(self.states.steady[0].sum()), int(self.states.steady[1].sum())


def ratio_estimate(
    baseline: list[np.ndarray],
    current: list[np.ndarray],
    confidence: float = 0.99,
    n_boot: int = 2000,
    seed: int = 0,
    statistic: str = DEFAULT_STATISTIC,
    levels: tuple = (None, None),
) -> RatioEstimate:
    """current/baseline of each process's ``statistic`` (harness.compare.percentiles), read as the
    module docstring says. ``levels``: a side's (log process statistics, their within-process
    variances) where they were computed from the calls in the order they ran (a saved ``mean``:
    the stored samples are sorted order statistics), else None: from the samples given."""
    baseline = [np.asarray(g, dtype=np.float64) for g in baseline]
    current = [np.asarray(g, dtype=np.float64) for g in current]
    if not baseline or not current or any(g.size == 0 for g in baseline + current):
        raise ValueError("both sides need at least one process with at least one sample")
    if any(not np.all(np.isfinite(g) & (g > 0)) for g in baseline + current):
        raise ValueError("samples must be finite positive seconds")
    (xb, floor_b), (xc, floor_c) = (
        (np.asarray(given[0], dtype=np.float64), np.asarray(given[1], dtype=np.float64))
        if given is not None
        else log_process_levels(side, statistic)
        for side, given in zip((baseline, current), levels)
    )
    floors = [floor_b, floor_c]  # xb, xc: log process medians (or the judged statistic)
    states = split_states(xb, xc)
    mb, mc = states.steady

    def sd(x):
        return float(x.std(ddof=1)) if x.size > 1 else 0.0

    def welch_of(keep_b: np.ndarray, keep_c: np.ndarray) -> LogInterval:
        """Welch on the kept processes of each side, floored by their within-process variance."""
        floor = (float(floors[0][keep_b].mean()), float(floors[1][keep_c].mean()))
        return welch(xb[keep_b], xc[keep_c], confidence, floor)

    if min(mb.sum(), mc.sum()) >= 2:
        steady = welch_of(mb, mc)
        method = f"Welch t on log process {statistic}s" + (" (steady state)" if states.split else "")
        # other readings of the machine states; where one differs, the interval covers it too:
        # 1. two or more processes faster than the steady state are the real steady state (and the
        #    rest of that side runs slow);
        # 2. a side's processes at the other side's steady level are its steady state (nothing moved;
        #    this side happened to run mostly slow or fast): with 5-7 processes, 4 of 5 in a 30% slow
        #    state happen 3% of the time and would otherwise read as a steady-state change.
        readings = []
        other = split_states(xb, xc, min_share=0.0, least=2)
        ob, oc = other.steady
        if states.split and not (np.array_equal(ob, mb) and np.array_equal(oc, mc)) and min(ob.sum(), oc.sum()) >= 2:
            readings.append(("a few fast processes, or a slow majority", welch_of(ob, oc)))
        if states.split:
            for moved, keep in ((0, mb), (1, mc)):
                x, (other_x, other_keep) = (xb, xc)[moved], ((xc, mc), (xb, mb))[moved]
                # within the other side's steady state, as the states are chained (by the gap)
                at_level = (x >= other_x[other_keep].min() - states.gap) & (x <= other_x[other_keep].max() + states.gap)
                if not (at_level & ~keep).any():
                    continue  # no process of this side outside its steady state sits at the other's level
                masks = (at_level, mc) if moved == 0 else (mb, at_level)
                if at_level.sum() >= 2:
                    alt = welch_of(*masks)
                else:  # one process: its level, with the other side's spread for its variance
                    other_floor = float(floors[1 - moved][other_keep].mean())
                    sign = 1 if moved == 1 else -1  # current - baseline
                    alt = _one_process_interval(
                        float(x[at_level][0]), other_x[other_keep], other_floor, sign, confidence
                    )
                readings.append((f"the {('baseline', 'current')[moved]}'s processes at the other's level", alt))
        if not states.split and min(xb.size, xc.size) < MIN_PROCESSES_FOR_STATES <= max(xb.size, xc.size):
            readings += _small_side_readings(xb, xc, floors, confidence)
        for what, alt in readings:
            steady = LogInterval(
                steady.diff,
                min(steady.low, alt.low),
                max(steady.high, alt.high),
                max(steady.p_value, alt.p_value),
                max(steady.se, alt.se),
                min(steady.df, alt.df),
            )
            method += f"; the machine states read two ways ({what}): interval covers both"
    else:
        steady = _bootstrap_interval(
            baseline, current, float(xc.mean() - xb.mean()), confidence, n_boot, seed, statistic
        )
        method = "bootstrap over rounds (one process: between-process noise unseen)"
    every = (np.ones(xb.size, bool), np.ones(xc.size, bool))
    mixture = welch_of(*every) if min(xb.size, xc.size) >= 2 else None
    return RatioEstimate(
        steady,
        mixture,
        confidence,
        (len(baseline), len(current)),
        (sum(g.size for g in baseline), sum(g.size for g in current)),
        method,
        states,
        slow_share_p(states.slow, (xb.size, xc.size)),
        (sd(xb[mb]), sd(xc[mc])),
        (sd(xb), sd(xc)),
    )
