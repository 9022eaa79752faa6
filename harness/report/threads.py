"""Thread-scaling report: latency and parallel efficiency vs threads, per model and backend.

Parallel efficiency at n threads = T(1) / (n * T(n)) against the same cell's 1-thread median
(1.0 = perfect scaling). A point whose thread count exceeds the effective CPUs (cgroup quota
and affinity) is flagged ``oversubscribed``."""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from harness.report.tables import fmt_or_dash
from harness.run.protocol import CellResult
from harness.store.io import write_atomic

ORDER = {"auto": 1000, "host": 1001}


@dataclass
class Point:
    spec: str  # "1", "4", "auto", "host"
    resolved: int
    median_ms: float
    efficiency: float | None
    speedup: float | None
    oversubscribed: bool

    @property
    def label(self) -> str:
        return self.spec if self.spec.isdigit() else f"{self.spec}({self.resolved})"


def scaling_table(results: list[CellResult]) -> dict[tuple, list[Point]]:
    """(model, backend, target, sparsity, batch, test) -> points ordered by thread spec; only
    groups with at least two thread settings. Cells of different tests are never mixed."""
    groups: dict[tuple, list[CellResult]] = defaultdict(list)
    for r in results:
        if r.ok and r.median_s():
            c = r.cell
            test = (r.nodeid or "").split("[")[0]
            groups[(c.model, c.backend, c.target, c.sparsity, c.batch, test)].append(r)
    table = {}
    for key, rs in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        if len({r.cell.threads for r in rs}) < 2:
            continue
        rs.sort(key=lambda r: ORDER.get(r.cell.threads, 0) or int(r.cell.threads))
        base = next((r.median_s() for r in rs if r.threads.resolved == 1), None)
        points = []
        for r in rs:
            n, t = r.threads.resolved, r.median_s()
            points.append(
                Point(
                    r.cell.threads,
                    n,
                    t * 1e3,
                    base / (n * t) if base else None,
                    base / t if base else None,
                    r.oversubscribed,
                )
            )
        table[key] = points
    return table


def to_markdown(table: dict[tuple, list[Point]], budget: dict | None = None) -> str:
    lines = ["# Thread scaling", ""]
    if budget:
        quota = "none" if budget.get("quota_cpus") is None else f"{budget['quota_cpus']:g} CPUs"
        lines += [
            f"Effective CPUs: **{budget['effective_cpus']}** (affinity {budget['affinity_cpus']}, "
            f"cgroup quota {quota}); "
            f"host CPUs (`os.cpu_count()`): {budget['host_cpus']}.",
            "",
        ]
    lines += [
        "Efficiency = T(1 thread) / (n x T(n)). Speed-up = T(1) / T(n). "
        "**oversubscribed** = more threads than effective CPUs.",
        "",
        "| model | backend | threads | median ms | speed-up | efficiency | note |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for (model, backend, *_), points in table.items():
        best = min(p.median_ms for p in points)
        for p in points:
            note = ", ".join(
                filter(None, ["oversubscribed" if p.oversubscribed else "", "fastest" if p.median_ms == best else ""])
            )
            lines.append(
                f"| {model} | {backend} | {p.label} | {p.median_ms:.3f} | {fmt_or_dash(p.speedup, '.2f')} | "
                f"{fmt_or_dash(p.efficiency, '.2f')} | {note} |"
            )
    return "\n".join(lines) + "\n"


def plot(table: dict[tuple, list[Point]], path: Path) -> Path | None:
    if not table:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({key[0] for key in table})
    fig, axes = plt.subplots(2, len(models), figsize=(4.5 * len(models), 7), squeeze=False)
    for col, model in enumerate(models):
        lat, eff = axes[0][col], axes[1][col]
        for (m, backend, *_), points in table.items():
            if m != model:
                continue
            xs = list(range(len(points)))
            (line,) = lat.plot(xs, [p.median_ms for p in points], marker="o", label=backend)
            if all(p.efficiency is not None for p in points):
                eff.plot(xs, [p.efficiency for p in points], marker="o", color=line.get_color(), label=backend)
            for x, p in zip(xs, points):
                if p.oversubscribed:
                    lat.plot([x], [p.median_ms], marker="X", markersize=12, color="red", linestyle="none")
            lat.set_xticks(xs, [p.label for p in points])
            eff.set_xticks(xs, [p.label for p in points])
        lat.set_title(model)
        lat.set_yscale("log")
        lat.set_ylabel("median latency (ms, log)")
        eff.set_ylabel("parallel efficiency")
        eff.set_xlabel("threads (red X: oversubscribed)")
        eff.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        lat.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_atomic(path, buf.getvalue())
    plt.close(fig)
    return path


def write_report(table: dict[tuple, list[Point]], results: list[CellResult], out_dir: Path) -> tuple[Path, Path | None]:
    """threads.md (with the CPU budget of ``results``) and threads.png for ``scaling_table(results)``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    budget = next((r.cpu_budget.to_dict() for r in results if r.cpu_budget), None)
    png = plot(table, out_dir / "threads.png")
    md = to_markdown(table, budget) + (f"\n![latency and efficiency vs threads]({png.name})\n" if png else "")
    return write_atomic(out_dir / "threads.md", md), png
