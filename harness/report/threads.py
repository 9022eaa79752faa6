"""Thread report: what each thread setting really did, per model and backend.

For every group of cells that differ only in their thread settings (count and thread control;
same model, backend, target, sparsity, pruning, batch, inter-op, spin, confinement and test) one row per
setting: the latency with its interval over worker processes, speed-up and parallel efficiency
against the same control's 1-thread point, the threads that actually ran, CPU time over wall time,
the tail (p99, max) and throughput.

- The judged statistic is the per-process median, or under a CPU quota the per-process *mean*: a
  quota throttles whole 100 ms periods, so most calls run at full speed and a few wait ~50 ms; the
  median then favours the setting that gets throttled (README "What thread settings do").
- ``fastest`` marks the best row only when Welch's test on the processes' log statistics tells it
  from every other row; rows it cannot be told from are ``tied`` with it (``tied`` only: nothing is
  fastest). With fewer than 2 processes a row has no interval and takes no part.
- Under a quota, a headline per backend compares the runtime's own choice (``unset``) with
  ``threads=auto``: throughput and p99.

Written as threads.md, threads.html (self-contained) and threads.png.
"""

from __future__ import annotations

import base64
import html
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.compare.stats import LogInterval, level_interval, log_process_levels, welch
from harness.compare.verdict import DEFAULT_ALPHA
from harness.plan.scenario import DEFAULT_SCENARIO
from harness.report.figures import png_bytes, pyplot
from harness.report.markdown import markdown_text
from harness.report.tables import fmt_or_dash
from harness.run.protocol import CellResult
from harness.store.io import write_atomic

CONTROL_ORDER = {"both": 0, "env": 1, "api": 2, "unset": 3}
SYMBOLIC_ORDER = {"auto": 1000, "physical": 1001, "host": 1002, "runtime": 1003}
HEADER = [
    "model",
    "backend",
    "control",
    "threads",
    "ran",
    "latency ms",
    "CI",
    "speed-up",
    "efficiency",
    "CPU/wall",
    "p99 ms",
    "max ms",
    "calls/s",
    "processes",
    "note",
]


@dataclass
class Point:
    result: CellResult
    statistic: str  # "median" or "mean" (under a CPU quota)
    level: np.ndarray  # per-process log statistic
    floors: np.ndarray  # their within-process variances
    interval: LogInterval | None  # of the mean log statistic (None: one process)
    speedup: float | None = None
    efficiency: float | None = None
    note: str = ""

    @property
    def cell(self):
        return self.result.cell

    @property
    def threads(self) -> int | None:
        """The threads that ran where known (an ORT cell given OMP_NUM_THREADS=1 alone runs its
        default pool), else the count asked for."""
        return self.result.threads_ran() or self.result.threads.resolved

    @property
    def label(self) -> str:
        spec, resolved = self.cell.threads, self.result.threads.resolved
        return spec if spec.isdigit() or resolved is None else f"{spec}({resolved})"

    @property
    def latency_ms(self) -> float:
        return math.exp(float(self.level.mean())) * 1e3

    @property
    def processes(self) -> int:
        return int(self.level.size)

    def row(self) -> list[str]:
        r, interval = self.result, self.interval
        ci = "-" if interval is None else f"{math.exp(interval.low) * 1e3:.3f}-{math.exp(interval.high) * 1e3:.3f}"
        return [
            self.cell.model,
            self.cell.backend,
            self.cell.thread_control,
            self.label,
            fmt_or_dash(r.threads_ran(), "d"),
            f"{self.latency_ms:.3f} ({self.statistic})",
            ci,
            fmt_or_dash(self.speedup, ".2f"),
            fmt_or_dash(self.efficiency, ".2f"),
            fmt_or_dash(r.cpu_per_wall(), ".2f"),
            fmt_or_dash(_ms(r.quantile_s(0.99)), ".3f"),
            fmt_or_dash(_ms(r.quantile_s(1.0)), ".3f"),
            fmt_or_dash(r.throughput(), ".0f"),
            str(self.processes),
            self.note,
        ]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _group_key(r: CellResult) -> tuple:
    c = r.cell
    test = (r.nodeid or "").split("[")[0]
    confinement = tuple(sorted((k, str(v)) for k, v in (r.confinement or {}).items() if v is not None))
    return (c.model, c.backend, c.target, c.sparsity, c.pruning, c.batch, c.interop, c.spin, confinement, test)


def _order(p: Point) -> tuple:
    spec = p.cell.threads
    return (CONTROL_ORDER.get(p.cell.thread_control, 9), SYMBOLIC_ORDER.get(spec, 0) or int(spec))


def make_point(r: CellResult, confidence: float) -> Point:
    statistic = "mean" if r.quota_cpus is not None else "median"
    level, floors = log_process_levels(r.per_process(), statistic)
    return Point(r, statistic, level, floors, level_interval(level, floors, confidence))


def _one_thread_point(points: list[Point], control: str) -> Point | None:
    """The point speed-ups are measured against: one that really ran one thread (where the threads
    that ran are known), of the same thread control if there is one, else of any."""
    single = [p for p in points if p.threads == 1 and p.result.threads_ran() in (None, 1)]
    return next((p for p in single if p.cell.thread_control == control), single[0] if single else None)


def _rank(points: list[Point], confidence: float) -> None:
    """``fastest`` / ``tied`` notes (module docstring)."""
    ranked = [p for p in points if p.interval is not None]
    if len(ranked) < 2:
        return
    best = min(ranked, key=lambda p: p.level.mean())
    tied = [
        p
        for p in ranked
        if p is not best and welch(best.level, p.level, confidence, (best.floors.mean(), p.floors.mean())).low <= 0
    ]
    for p in [best, *tied] if tied else []:
        p.note = "tied"
    if not tied:
        best.note = "fastest"


def scaling_table(results: list[CellResult], alpha: float = DEFAULT_ALPHA) -> dict[tuple, list[Point]]:
    """Group key -> points, for groups with at least two thread settings (cells of different
    tests, confinements, inter-op or spin settings are never mixed)."""
    confidence = 1 - alpha
    groups: dict[tuple, list[CellResult]] = defaultdict(list)
    for r in results:
        if r.ok and r.per_process() and r.cell.scenario == DEFAULT_SCENARIO:  # single-stream latency only
            groups[_group_key(r)].append(r)
    table = {}
    for key, rs in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        if len(rs) < 2:
            continue
        points = sorted((make_point(r, confidence) for r in rs), key=_order)
        for p in points:
            one = _one_thread_point(points, p.cell.thread_control)
            if one is not None and p.threads:
                p.speedup = one.latency_ms / p.latency_ms
                p.efficiency = p.speedup / p.threads
        _rank(points, confidence)
        for p in points:
            if p.result.oversubscribed:
                p.note = ", ".join(filter(None, ["oversubscribed", p.note]))
        table[key] = points
    return table


def quota_headlines(table: dict[tuple, list[Point]], alpha: float = DEFAULT_ALPHA) -> list[str]:
    """Under a CPU quota, per group: what the runtime's own choice (``unset``) cost against
    ``threads=auto`` (thread control ``both``), in throughput (with its interval) and p99."""
    lines = []
    for points in table.values():
        unset = next((p for p in points if p.cell.thread_control == "unset"), None)
        auto = next((p for p in points if p.cell.thread_control == "both" and p.cell.threads == "auto"), None)
        quota = unset.result.quota_cpus if unset else None
        if unset is None or auto is None or quota is None:
            continue
        r_unset, r_auto = unset.result, auto.result
        change = r_unset.throughput() / r_auto.throughput() - 1
        ci = ""
        if unset.interval is not None and auto.interval is not None:
            w = welch(auto.level, unset.level, 1 - alpha, (auto.floors.mean(), unset.floors.mean()))
            ci = f" (CI {(math.exp(-w.high) - 1) * 100:+.0f}% to {(math.exp(-w.low) - 1) * 100:+.0f}%)"
        p99 = r_unset.quantile_s(0.99) / r_auto.quantile_s(0.99)
        lines.append(
            f"{unset.cell.model} {unset.cell.backend}: in a {quota:g}-CPU quota the runtime's default ran "
            f"{fmt_or_dash(r_unset.threads_ran(), 'd')} threads: throughput {abs(change) * 100:.0f}% "
            f"{'lower' if change < 0 else 'higher'}{ci} and p99 {p99:.1f} times "
            f"{'higher' if p99 >= 1 else 'lower'} than threads=auto ({r_auto.threads.resolved} thread"
            f"{'s' if r_auto.threads.resolved != 1 else ''})"
        )
    return lines


def _budget_line(results: list[CellResult]) -> str | None:
    budget = next((r.cpu_budget for r in results if r.cpu_budget), None)
    if budget is None:
        return None
    quota = "none" if budget.quota_cpus is None else f"{budget.quota_cpus:g} CPUs"
    return (
        f"Effective CPUs: **{budget.effective_cpus}** (affinity {budget.affinity_cpus}"
        f"{f' = {budget.cpuset}' if budget.cpuset else ''}, cgroup quota {quota}, physical cores "
        f"{fmt_or_dash(budget.physical_cores, 'd')}); host CPUs (`os.cpu_count()`): {budget.host_cpus}."
    )


EXPLAIN = (
    "Latency: the geometric mean over worker processes of each process's median, or mean under "
    "a CPU quota; CI: its confidence interval over processes. Speed-up = T(1) / T(n), "
    "efficiency = T(1) / (n x T(n)), n the threads that ran, T(1) a point that ran one thread. "
    "ran: OS threads that were on a CPU for >= 5% of the timed window; CPU/wall: CPUs' worth of "
    "work during it. fastest: distinguishable (Welch) from every other setting; tied: not "
    "distinguishable from the best. oversubscribed: more threads than effective CPUs."
)


def to_markdown(table: dict[tuple, list[Point]], results: list[CellResult] | None = None) -> str:
    lines = ["# Thread settings", ""]
    budget = _budget_line(results or [])
    if budget:
        lines += [budget, ""]
    headlines = quota_headlines(table)
    if headlines:
        lines += [f"- **{markdown_text(h)}**" for h in headlines] + [""]
    lines += [EXPLAIN, "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(map(markdown_text, p.row())) + " |" for points in table.values() for p in points]
    return "\n".join(lines) + "\n"


def terminal_lines(table: dict[tuple, list[Point]]) -> list[str]:
    """The table for the terminal: headlines, then one aligned line per point."""
    rows = [HEADER] + [p.row() for points in table.values() for p in points]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return quota_headlines(table) + ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]


def to_html(table: dict[tuple, list[Point]], results: list[CellResult], png: bytes | None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in p.row()) + "</tr>"
        for points in table.values()
        for p in points
    )
    budget = (_budget_line(results) or "").replace("**", "")
    headlines = "".join(f"<li><b>{html.escape(h)}</b></li>" for h in quota_headlines(table))
    image = (
        f'<img alt="latency and efficiency vs threads" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else ""
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Thread settings</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}</style></head><body><h1>Thread settings</h1>"
        f"<p>{html.escape(budget)}</p><ul>{headlines}</ul><p>{html.escape(EXPLAIN)}</p>"
        f"<table><tr>{head}</tr>{body}</table>{image}</body></html>\n"
    )


def plot(table: dict[tuple, list[Point]]) -> bytes | None:
    """Latency (with intervals) and parallel efficiency vs threads, one column per model, one line
    per backend and thread control; oversubscribed points marked."""
    if not table:
        return None
    plt = pyplot()
    models = sorted({key[0] for key in table})
    fig, axes = plt.subplots(2, len(models), figsize=(4.5 * len(models), 7), squeeze=False)
    for col, model in enumerate(models):
        lat, eff = axes[0][col], axes[1][col]
        labels: list[str] = []
        for key, points in table.items():
            if key[0] != model:
                continue
            for control in sorted({p.cell.thread_control for p in points}, key=CONTROL_ORDER.get):
                series = [p for p in points if p.cell.thread_control == control]
                labels += [p.label for p in series if p.label not in labels]
                xs = [labels.index(p.label) for p in series]
                ys = [p.latency_ms for p in series]
                err = [
                    (y - math.exp(p.interval.low) * 1e3, math.exp(p.interval.high) * 1e3 - y)
                    if p.interval
                    else (0.0, 0.0)
                    for p, y in zip(series, ys)
                ]
                (line,) = lat.plot(xs, ys, marker="o", label=f"{key[1]} {control}")
                lat.errorbar(xs, ys, yerr=np.array(err).T, fmt="none", ecolor=line.get_color(), capsize=3)
                if all(p.efficiency is not None for p in series):
                    eff.plot(xs, [p.efficiency for p in series], marker="o", color=line.get_color())
                for x, p in zip(xs, series):
                    if p.result.oversubscribed:
                        lat.plot([x], [p.latency_ms], marker="X", markersize=12, color="red", linestyle="none")
        for ax in (lat, eff):
            ax.set_xticks(range(len(labels)), labels)
        lat.set_title(model)
        lat.set_yscale("log")
        lat.set_ylabel("latency (ms, log; median or mean under a quota)")
        eff.set_ylabel("parallel efficiency")
        eff.set_xlabel("threads (red X: oversubscribed)")
        eff.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        lat.legend(fontsize=7)
    return png_bytes(fig)


def write_report(table: dict[tuple, list[Point]], results: list[CellResult], out_dir: Path) -> list[Path]:
    """threads.md, threads.html and threads.png (when there is something to plot) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot(table)
    written = []
    if png:
        written.append(write_atomic(out_dir / "threads.png", png))
    md = to_markdown(table, results) + ("\n![latency and efficiency vs threads](threads.png)\n" if png else "")
    written.append(write_atomic(out_dir / "threads.md", md))
    written.append(write_atomic(out_dir / "threads.html", to_html(table, results, png)))
    return written
