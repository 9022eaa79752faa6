"""Two measurements -> verdicts: the one comparison behind ``python -m harness compare``, the pytest
plugin's verdict table and the report.

The baseline is always a saved result (pytest-benchmark JSON); the current side is either another
saved result (``compare_results``) or the samples a pytest run just measured (``compare``). Each
cell's verdict judges its latency and, where both sides' ``extra_info`` are at hand, carries the
verdicts beyond latency (harness.compare.metrics) in ``Verdict.metrics``. Besides the verdicts, a
``Comparison`` carries what the tables print above them: the profiles of both sides,
the drift control of both runs (and the correction applied, if any) and the runtime packages whose
versions changed."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from harness.compare.metrics import DEFAULT_FAIL_ON, METRIC_THRESHOLDS_KEY, judge_metrics
from harness.compare.op_profile import OpProfile, op_diff
from harness.compare.percentiles import DEFAULT_STATISTIC, STATISTIC_KEY, check_statistic
from harness.compare.sequential import LOOK_KEY, look_alpha
from harness.compare.stats import LogInterval, welch
from harness.compare.verdict import DEFAULT_ALPHA, DEFAULT_THRESHOLD, Verdict, judge
from harness.machine.drift import control_samples
from harness.machine.profile import version_changes
from harness.plan.scenario import DEFAULT_SCENARIO, ScenarioError, parse_scenario
from harness.store.results import (
    by_name,
    control_of,
    is_compacted,
    process_mean_levels,
    process_rounds,
    process_samples,
    profile_of,
)

CONTROL_RESOLUTION = 0.002  # the least relative spread assumed between control measurements


def pick_threshold(*candidates: float | None) -> float:
    """The first threshold given, in the caller's order of precedence; 0 is a threshold (no effect
    is too small), None is not given. The order everywhere: command line > per-test marker > suite
    (REGRESSION_THRESHOLD) > the result file's own > DEFAULT_THRESHOLD."""
    return next((float(t) for t in candidates if t is not None), DEFAULT_THRESHOLD)


def profile_mismatch(baseline_profile: dict | None, current_profile: dict | None) -> tuple[str, str] | None:
    """(baseline id, current id) when two results come from different machine profiles: timings
    from different machines are not comparable, and every path that judges refuses them alike."""
    baseline = (baseline_profile or {}).get("profile_id") or "unknown"
    current = (current_profile or {}).get("profile_id") or "unknown"
    return (baseline, current) if baseline != current else None


def drift_estimates(
    current_control: dict | None, baseline_control: dict | None, confidence: float
) -> dict[int, LogInterval]:
    """Per thread count measured in both runs (at least twice each): the control's log ratio
    now/baseline with Welch's interval over the control measurements of the two runs."""
    now, then = control_samples(current_control), control_samples(baseline_control)
    floor = CONTROL_RESOLUTION**2  # identical control values do not make the control certain
    return {
        threads: welch(np.log(then[threads]), np.log(now[threads]), confidence, (floor, floor))
        for threads in sorted(set(now) & set(then))
        if min(len(now[threads]), len(then[threads])) >= 2
    }


@dataclass
class Comparison:
    verdicts: list[Verdict]
    baseline_profile: dict | None = None
    current_profile: dict | None = None
    baseline_control: dict | None = None
    current_control: dict | None = None
    drift: dict[int, LogInterval] = field(default_factory=dict)  # per thread count: control now/baseline
    confidence: float = 1 - DEFAULT_ALPHA
    runtime_changes: list[str] = field(default_factory=list)

    def drifted(self, threads: int | None) -> LogInterval | None:
        """The control's log ratio for cells of ``threads`` threads when the machine measurably moved
        (its interval excludes 1): the verdicts of those cells divide by it, uncertainty included."""
        estimate = self.drift.get(threads) if threads is not None else None
        return estimate if estimate is not None and (estimate.low > 0 or estimate.high < 0) else None

    @property
    def profile_ids(self) -> tuple[str | None, str | None]:
        return (self.baseline_profile or {}).get("profile_id"), (self.current_profile or {}).get("profile_id")

    @property
    def profiles_differ(self) -> bool:
        return profile_mismatch(self.baseline_profile, self.current_profile) is not None

    @property
    def regressions(self) -> list[Verdict]:
        return self.failing()

    def failing(self, minor: bool = False, metrics: Collection[str] = DEFAULT_FAIL_ON) -> list[Verdict]:
        """The cells that fail a gate: a ``regression`` (and a ``minor regression`` when asked) of
        their latency or of another of ``metrics`` (harness.compare.metrics.METRICS)."""
        kinds = ("regression", "minor regression") if minor else ("regression",)
        return [
            v
            for v in self.verdicts
            if ("latency" in metrics and v.verdict in kinds)
            or any(m.verdict in kinds for name, m in v.metrics.items() if name in metrics)
        ]

    def to_dict(self) -> dict:
        baseline, current = self.profile_ids
        return {
            "profiles": {"baseline": baseline, "current": current},
            "runtime_changes": self.runtime_changes,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "control": {"baseline": self.baseline_control, "current": self.current_control},
            "drift": {
                str(t): dict(zip(("ratio", "low", "high"), d.ratio), applied=bool(self.drifted(t)))
                for t, d in self.drift.items()
            },
        }


def compare(
    baseline: dict,
    current: dict[str, list | None],
    thresholds: dict[str, float | None] | None = None,
    threshold: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    current_control: dict | None = None,
    current_profile: dict | None = None,
    names: list[str] | None = None,
    threads: dict[str, int | None] | None = None,
    current_info: dict[str, dict] | None = None,
    looks: dict[str, int] | None = None,
    statistics: dict[str, str | None] | None = None,
    statistic: str | None = None,
    metric_thresholds: dict[str, float] | None = None,
) -> Comparison:
    """Verdicts for ``current`` (name -> per-process samples, None when not measured) against the
    saved ``baseline``. ``threshold`` (the command line) beats a cell's own ``thresholds[name]``,
    which beats the default (``pick_threshold``). ``threads``: each cell's resolved thread count,
    to match the drift control measured at it. ``names`` defaults to current's, then the baseline's.
    ``current_info``: each current cell's extra_info; the cells in it and in the baseline get the
    verdicts beyond latency (``Verdict.metrics``, harness.compare.metrics) at ``metric_thresholds``
    (metric -> threshold: the command line's), else the cell's saved ones (``METRIC_THRESHOLDS_KEY``
    in its extra_info: the command line's when it ran), else their defaults.
    ``looks``: the --until-decided look of each cell that had one; its verdicts are made at that
    look's share of ``alpha`` (harness.compare.sequential).
    ``statistic`` (the command line) beats each cell's own ``statistics[name]`` (its suite's or
    marker's choice), which beats the median (harness.compare.percentiles)."""
    base = by_name(baseline)
    thresholds, threads, current_info, looks = thresholds or {}, threads or {}, current_info or {}, looks or {}
    statistics = statistics or {}
    comparison = Comparison(
        [],
        profile_of(baseline),
        current_profile,
        control_of(baseline),
        current_control,
        drift_estimates(current_control, control_of(baseline), 1 - alpha),
        1 - alpha,
        version_changes(profile_of(baseline), current_profile),
    )
    names = names if names is not None else list(dict.fromkeys(list(current) + list(base)))
    for name in names:
        before = process_samples(base[name]) if name in base else None
        now = current.get(name)
        if before is None and now is None:
            continue
        cell_threads = threads.get(name)
        if cell_threads is None and name in base:
            cell_threads = (base[name].get("extra_info") or {}).get("threads_resolved")
        look = looks.get(name)
        level = look_alpha(alpha, look) if look else alpha
        info = current_info.get(name) or {}
        judged = check_statistic(statistic or statistics.get(name) or DEFAULT_STATISTIC)
        levels = (None, None)
        if judged == "mean":  # saved means, from the calls in run order (stored samples are sorted)
            levels = (
                process_mean_levels(base[name]) if name in base else None,
                process_mean_levels({"extra_info": info}) if info else None,
            )
        unusable = (
            _unusable_baseline(base.get(name), judged, levels[0])
            or _peak_search(info)
            or _other_transfers(base.get(name), info)
        )
        if unusable and before and now:
            verdict = Verdict(name, "inconclusive", threshold=pick_threshold(threshold, thresholds.get(name)))
            verdict.alpha, verdict.note, verdict.statistic = level, unusable, judged
        else:
            verdict = judge(
                name,
                before,
                now,
                pick_threshold(threshold, thresholds.get(name)),
                level,
                comparison.drifted(cell_threads),
                statistic=judged,
                calls=(
                    process_rounds(base[name]) if name in base else None,
                    process_rounds({"extra_info": info}) if info else None,
                ),
                levels=levels,
            )
        verdict.look = look
        if name in base and now and name in current_info:
            limits = {**(info.get(METRIC_THRESHOLDS_KEY) or {}), **(metric_thresholds or {})}
            verdict.metrics = judge_metrics(base[name].get("extra_info") or {}, current_info[name], level, limits)
        before_info = (base[name].get("extra_info") or {}) if name in base else {}
        profiles = (before_info.get("op_profile"), info.get("op_profile"))
        if verdict.verdict == "regression" and None not in profiles:
            verdict.op_diff = op_diff(*(OpProfile.from_dict(p) for p in profiles))
        comparison.verdicts.append(verdict)
    return comparison


def _peak_search(info: dict) -> str | None:
    """A server cell that searched for its peak rate: its latency is at the rate each run found."""
    try:
        scenario = parse_scenario(info.get("scenario") or DEFAULT_SCENARIO)
    except ScenarioError:
        return None
    if scenario.kind != "server" or scenario.qps is not None:
        return None
    return (
        "a peak search's latency is measured at the rate each run found (its p99 near the bound by "
        "construction): its throughput verdict (the peak rate) is the one to read"
    )


def _other_transfers(bench: dict | None, info: dict | None) -> str | None:
    """Why a device cell cannot be compared with its baseline: one timed host-device copies
    (--include-transfers) and the other did not (None: both timed the same)."""
    before = ((bench or {}).get("extra_info") or {}).get("device") or {}
    now = (info or {}).get("device") or {}
    if before.get("transfers") == now.get("transfers"):
        return None
    return (
        f"host-device copies were {before.get('transfers') or 'not recorded'} in the baseline and "
        f"{now.get('transfers') or 'not recorded'} now: time both the same way (--include-transfers)"
    )


def _unusable_baseline(bench: dict | None, statistic: str, mean_levels) -> str | None:
    """Why a saved baseline cell cannot be judged on ``statistic`` (None: it can)."""
    if bench is None or statistic == DEFAULT_STATISTIC:
        return None
    if is_compacted(bench):
        return (
            f"the baseline is a compacted run (it keeps its processes' medians only): no {statistic} to "
            f"compare; compare with a newer run or judge the median (--verdict-statistic median)"
        )
    if statistic == "mean" and mean_levels is None:
        return "the baseline saved no per-process means (saved before they were recorded): judge the median"
    return None


def compare_results(
    baseline: dict,
    current: dict,
    threshold: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    statistic: str | None = None,
    metric_thresholds: dict[str, float] | None = None,
) -> Comparison:
    """Two saved results. ``threshold`` (the command line) beats each benchmark's saved
    ``regression_threshold`` (its marker or suite when it ran), which beats the default; a cell
    measured with --until-decided is judged at its saved look's level, and each cell by its saved
    ``verdict_statistic`` unless ``statistic`` (the command line) says otherwise; the metrics
    beyond latency at ``metric_thresholds`` (the command line), else at those each cell ran with."""
    benches = by_name(current)
    info = {name: b.get("extra_info") or {} for name, b in benches.items()}
    return compare(
        baseline,
        {name: process_samples(b) for name, b in benches.items()},
        {name: i.get("regression_threshold") for name, i in info.items()},
        threshold,
        alpha,
        control_of(current),
        profile_of(current),
        threads={name: i.get("threads_resolved") for name, i in info.items()},
        current_info=info,
        looks={name: i[LOOK_KEY] for name, i in info.items() if i.get(LOOK_KEY) is not None},
        statistics={name: i.get(STATISTIC_KEY) for name, i in info.items()},
        statistic=statistic,
        metric_thresholds=metric_thresholds,
    )
