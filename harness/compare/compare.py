"""Two measurements -> verdicts: the one comparison behind ``python -m harness compare``, the pytest
plugin's verdict table and the report.

The baseline is always a saved result (pytest-benchmark JSON); the current side is either another
saved result (``compare_results``) or the samples a pytest run just measured (``compare``). Besides
the verdicts, a ``Comparison`` carries what the tables print above them: the profiles of both sides,
the drift control of both runs (and the correction applied, if any) and the runtime packages whose
versions changed."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.compare.verdict import DEFAULT_ALPHA, DEFAULT_THRESHOLD, Verdict, judge
from harness.machine.drift import applied_drift
from harness.machine.profile import version_changes
from harness.store.results import by_name, control_of, process_samples, profile_of


@dataclass
class Comparison:
    verdicts: list[Verdict]
    baseline_profile: dict | None = None
    current_profile: dict | None = None
    baseline_control: dict | None = None
    current_control: dict | None = None
    drift: float | None = None  # the correction the verdicts used (None: raw ratios)
    runtime_changes: list[str] = field(default_factory=list)

    @property
    def profile_ids(self) -> tuple[str | None, str | None]:
        return (self.baseline_profile or {}).get("profile_id"), (self.current_profile or {}).get("profile_id")

    @property
    def profiles_differ(self) -> bool:
        baseline, current = self.profile_ids
        return baseline != current

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.verdict == "regression"]

    def to_dict(self) -> dict:
        baseline, current = self.profile_ids
        return {
            "profiles": {"baseline": baseline, "current": current},
            "runtime_changes": self.runtime_changes,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "control": {"baseline": self.baseline_control, "current": self.current_control},
        }


def compare(
    baseline: dict,
    current: dict[str, list | None],
    thresholds: dict[str, float | None] | None = None,
    default_threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    current_control: dict | None = None,
    current_profile: dict | None = None,
    names: list[str] | None = None,
) -> Comparison:
    """Verdicts for ``current`` (name -> per-process samples, None when not measured) against the
    saved ``baseline``. ``names`` defaults to current's names, then the baseline's."""
    base = by_name(baseline)
    thresholds = thresholds or {}
    drift = applied_drift(current_control, control_of(baseline))
    names = names if names is not None else list(dict.fromkeys(list(current) + list(base)))
    verdicts = []
    for name in names:
        before = process_samples(base[name]) if name in base else None
        now = current.get(name)
        if before is None and now is None:
            continue
        verdicts.append(judge(name, before, now, thresholds.get(name) or default_threshold, alpha, drift))
    return Comparison(
        verdicts,
        profile_of(baseline),
        current_profile,
        control_of(baseline),
        current_control,
        drift,
        version_changes(profile_of(baseline), current_profile),
    )


def compare_results(
    baseline: dict, current: dict, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA
) -> Comparison:
    """Two saved results. A benchmark's own saved ``regression_threshold`` is used where it has one."""
    benches = by_name(current)
    return compare(
        baseline,
        {name: process_samples(b) for name, b in benches.items()},
        {name: (b.get("extra_info") or {}).get("regression_threshold") for name, b in benches.items()},
        threshold,
        alpha,
        control_of(current),
        profile_of(current),
    )
