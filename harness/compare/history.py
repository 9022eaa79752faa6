"""A profile's saved runs as one series per cell, and the change points in each: what
``python -m harness history`` prints, the HTML trend marks and the nightly gate judges.

The series (``cell_nights``): one value per run in which the cell has samples, in the store's
order: the median of the run's per-process medians (what a compacted run keeps, so old and new
runs give the same number). Nights are runs, not dates: a runner that was down for a week, or a
cell missing from a run (failed, skipped, another shard), leaves no gap to fill.

Three rules for real series, each applied before the statistics (harness.compare.change_points)
see a value:

- a night whose cell ran on a busy machine (``machine_busy``) is left out of the series and
  listed as left out;
- the series is split where a runtime package changed version (the profile's ``packages``): each
  part is searched on its own, and the split is reported with the packages that moved, since a
  step there has a known cause (the pairwise verdict of that night already judged it);
- results are stored per machine profile (harness.store.baselines), so a series never spans two
  machines.

A change point is *new* (``new_change_points``, the nightly gate) when the history without the
newest run showed none of the same direction within ``NEW_TOLERANCE`` nights of it: a step found
tonight, or one the newest night made significant, is new once and never again."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.compare.change_points import DEFAULT_MAX_PVALUE, DEFAULT_WINDOW, find_steps
from harness.machine.profile import PACKAGES
from harness.store.results import process_samples, profile_of

NEW_TOLERANCE = 2  # nights: how far a change point may move as nights are added and stay the same one
SPLIT_PACKAGES = tuple(p for p in PACKAGES if p != "pytest-benchmark")  # the harness's own tooling times nothing


@dataclass(frozen=True)
class Night:
    """One run's value for a cell: ``run`` is the run's name (its file stem, or 'current')."""

    run: str
    value: float  # seconds
    commit: str | None = None
    when: str | None = None
    busy: bool = False
    packages: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class ChangePoint:
    cell: str
    night: Night  # the first night after the change
    previous: Night  # the last night before it
    before: float  # mean seconds of the segment before (up to the previous change point or split)
    after: float
    pvalue: float

    @property
    def ratio(self) -> float:
        return self.after / self.before

    def is_regression(self, threshold: float) -> bool:
        """Slower by more than ``threshold`` (a fraction): what the nightly gate fails on."""
        return self.ratio - 1 > threshold

    def to_dict(self) -> dict:
        return {
            "cell": self.cell,
            "run": self.night.run,
            "commit": self.night.commit,
            "when": self.night.when,
            "previous_run": self.previous.run,
            "previous_commit": self.previous.commit,
            "before_ms": self.before * 1e3,
            "after_ms": self.after * 1e3,
            "change_percent": (self.ratio - 1) * 100,
            "pvalue": self.pvalue,
        }


@dataclass
class CellHistory:
    cell: str
    nights: list[Night]  # every night with the cell, busy ones included, oldest first
    change_points: list[ChangePoint] = field(default_factory=list)
    splits: list[tuple[Night, list[str]]] = field(default_factory=list)  # (first night after, what changed)

    @property
    def left_out(self) -> list[Night]:
        return [n for n in self.nights if n.busy]


def night_value(bench: dict) -> float | None:
    """The median of a saved cell's per-process medians (seconds), or None without samples."""
    groups = process_samples(bench) or []
    medians = [statistics.median(g) for g in groups if g]
    return statistics.median(medians) if medians else None


def run_packages(run: dict) -> tuple[tuple[str, str | None], ...]:
    packages = (profile_of(run) or {}).get("packages") or {}
    return tuple((name, packages.get(name)) for name in SPLIT_PACKAGES) if packages else ()


def cell_nights(runs: Sequence[tuple[str, dict]]) -> dict[str, list[Night]]:
    """cell fullname -> its nights, in the order of ``runs`` ((name, loaded result), oldest first)."""
    series: dict[str, list[Night]] = {}
    for name, run in runs:
        commit = (run.get("commit_info") or {}).get("id")
        packages = run_packages(run)
        for bench in run.get("benchmarks") or []:
            value = night_value(bench)
            if value is None:
                continue
            series.setdefault(bench["fullname"], []).append(
                Night(
                    run=name,
                    value=value,
                    commit=commit[:12] if commit else None,
                    when=run.get("datetime"),
                    busy=bool((bench.get("extra_info") or {}).get("machine_busy")),
                    packages=packages,
                )
            )
    return series


def package_changes(before: Night, after: Night) -> list[str]:
    """'onnxruntime 1.22.0 -> 1.23.1' per package that moved (none when either run records none)."""
    if not before.packages or not after.packages:
        return []
    old = dict(before.packages)
    return [f"{name} {old.get(name)} -> {version}" for name, version in after.packages if old.get(name) != version]


def analyse_cell(
    cell: str, nights: list[Night], max_pvalue: float = DEFAULT_MAX_PVALUE, window: int = DEFAULT_WINDOW
) -> CellHistory:
    """The change points of one cell's nights (busy nights left out, split at package changes)."""
    history = CellHistory(cell, list(nights))
    segments: list[list[Night]] = []
    for night in (n for n in nights if not n.busy):
        changed = package_changes(segments[-1][-1], night) if segments else []
        if not segments or changed:
            if changed:
                history.splits.append((night, changed))
            segments.append([])
        segments[-1].append(night)
    for segment in segments:
        for step in find_steps([n.value for n in segment], max_pvalue, window):
            history.change_points.append(
                ChangePoint(cell, segment[step.index], segment[step.index - 1], step.before, step.after, step.pvalue)
            )
    return history


def analyse(
    runs: Sequence[tuple[str, dict]],
    cells: Sequence[str] | None = None,
    max_pvalue: float = DEFAULT_MAX_PVALUE,
    window: int = DEFAULT_WINDOW,
) -> dict[str, CellHistory]:
    """Every cell's history (or those whose fullname contains one of ``cells``), by fullname."""
    return {
        cell: analyse_cell(cell, nights, max_pvalue, window)
        for cell, nights in sorted(cell_nights(runs).items())
        if not cells or any(c in cell for c in cells)
    }


def new_change_points(
    runs: Sequence[tuple[str, dict]],
    cells: Sequence[str] | None = None,
    max_pvalue: float = DEFAULT_MAX_PVALUE,
    window: int = DEFAULT_WINDOW,
    now: dict[str, CellHistory] | None = None,
) -> list[ChangePoint]:
    """The change points the newest run brought: found with it and absent (same cell, same direction,
    within NEW_TOLERANCE nights) from the history without it. ``now``: ``analyse`` of the same runs,
    when the caller has it already."""
    if not runs:
        return []
    now = analyse(runs, cells, max_pvalue, window) if now is None else now
    before = analyse(runs[:-1], cells, max_pvalue, window)
    found = []
    for cell, history in now.items():
        earlier = before.get(cell)
        positions = {n.run: i for i, n in enumerate(history.nights)}
        for cp in history.change_points:
            seen = earlier and any(
                (old.ratio > 1) == (cp.ratio > 1)
                and abs(positions.get(old.night.run, -(10**9)) - positions[cp.night.run]) <= NEW_TOLERANCE
                for old in earlier.change_points
            )
            if not seen:
                found.append(cp)
    return found
