"""Sparsity report: is pruning this model to X% worth it, on this hardware and backend?

For every group of cells that differ only in sparsity and pruning mode (same model, target,
threads, batch), one row per (backend, pruning mode, sparsity):

- the median latency (all processes' calls pooled),
- the speed-up over the *same backend's* dense cell (sparsity 0): what the zeros buy that backend;
  a dense backend (ort, torch, tvm) running pruned weights is the control, near 1.0x;
- the speed-up over the best dense cell of the group (usually ORT: the competitor a user would
  keep if pruning does not pay), and which backend that is;
- per (backend, mode) the break-even sparsity: where the speed-up over its own dense cell crosses
  1.0, interpolated linearly between the two measured sparsities around it (``< lowest`` when all
  measured points are faster, ``none`` when none is), and the same against the best dense cell.

Written as sparsity.md and sparsity.png (speed-up over the same backend's dense latency against
sparsity, one line per backend and pruning mode, one panel per model).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from harness.models.pruning import DEFAULT_PRUNING
from harness.plan.cell import sparsity_label
from harness.report.figures import png_bytes, pyplot
from harness.report.markdown import markdown_text
from harness.report.tables import fmt_or_dash
from harness.run.protocol import CellResult
from harness.store.io import write_atomic


@dataclass
class SparsePoint:
    result: CellResult
    latency_ms: float
    own_dense_ms: float | None  # the same backend at sparsity 0
    best_dense_ms: float | None  # the fastest backend at sparsity 0
    best_dense_backend: str | None

    @property
    def cell(self):
        return self.result.cell

    @property
    def speedup(self) -> float | None:
        return self.own_dense_ms / self.latency_ms if self.own_dense_ms else None

    @property
    def vs_best_dense(self) -> float | None:
        return self.best_dense_ms / self.latency_ms if self.best_dense_ms else None


def _group_key(r: CellResult) -> tuple:
    c = r.cell
    return (c.model, c.target, c.threads, c.batch, c.thread_control, c.interop, c.spin)


def sparsity_table(results: list[CellResult]) -> dict[tuple, list[SparsePoint]]:
    """Groups with at least one pruned cell and one dense cell; points sorted by backend, mode, sparsity."""
    groups: dict[tuple, list[tuple[CellResult, float]]] = defaultdict(list)
    for r in results:
        median = r.median_s() if r.ok else None
        if median is not None:
            groups[_group_key(r)].append((r, median * 1e3))
    table = {}
    for key, members in groups.items():
        dense = {r.cell.backend: ms for r, ms in members if r.cell.sparsity == 0}
        if not dense or not any(r.cell.sparsity > 0 for r, _ in members):
            continue
        best_backend = min(dense, key=dense.get)
        points = [SparsePoint(r, ms, dense.get(r.cell.backend), dense[best_backend], best_backend) for r, ms in members]
        points.sort(key=lambda p: (p.cell.backend, p.cell.pruning, p.cell.sparsity))
        table[key] = points
    return table


def curves(points: list[SparsePoint]) -> dict[tuple[str, str], list[SparsePoint]]:
    """(backend, pruning mode) -> its pruned points by sparsity (points come sorted)."""
    out: dict[tuple[str, str], list[SparsePoint]] = defaultdict(list)
    for p in points:
        if p.cell.sparsity > 0:
            out[(p.cell.backend, p.cell.pruning)].append(p)
    return dict(out)


def break_even(xs: list[float], ys: list[float]) -> str:
    """Where ys (speed-ups, by increasing sparsity xs) cross 1.0 for good: the last crossing from
    below, interpolated; ``< lowest`` if every point is >= 1, ``none`` if the last point is < 1."""
    if not xs:
        return "-"
    if ys[-1] < 1.0:
        return "none"
    i = len(ys) - 1
    while i > 0 and ys[i - 1] >= 1.0:
        i -= 1
    if i == 0:
        return f"< {xs[0]:.0%}" if xs[0] > 0 else "always"
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return f"{x0 + (1.0 - y0) * (x1 - x0) / (y1 - y0):.0%}"


def _title(key: tuple) -> str:
    model, target, threads, batch, control, interop, spin = key
    extra = "".join(
        [
            f", batch {batch}" if batch else "",
            f", {control}" if control != "both" else "",
            f", i{interop}" * (interop != 1),
        ]
    )
    return f"{model} ({target}, {threads} threads{extra})"


def to_markdown(table: dict[tuple, list[SparsePoint]]) -> str:
    lines = ["# Sparsity: what pruning buys per backend", ""]
    if not table:
        return "\n".join(lines + ["No group with both a dense (sparsity 0) and a pruned cell."]) + "\n"
    for key, points in table.items():
        best = points[0].best_dense_backend
        lines += [
            f"## {markdown_text(_title(key))}",
            "",
            f"Best dense cell: **{markdown_text(best)}** {points[0].best_dense_ms:.3f} ms.",
            "",
        ]
        lines += [
            "| backend | pruning | sparsity | measured | median ms | vs own dense | vs best dense | label |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for p in points:
            r = p.result
            mode = "dense" if p.cell.sparsity == 0 else p.cell.pruning
            lines.append(
                f"| {markdown_text(p.cell.backend)} | {markdown_text(mode)} | {sparsity_label(p.cell.sparsity)} | "
                f"{fmt_or_dash(r.measured_sparsity, '.3f')} | {p.latency_ms:.3f} | "
                f"{fmt_or_dash(p.speedup, '.2f')}x | {fmt_or_dash(p.vs_best_dense, '.2f')}x | "
                f"{markdown_text(r.label or '-')} |"
            )
        lines += ["", "| backend | pruning | break-even vs own dense | break-even vs best dense |", "|---|---|---|---|"]
        for (backend, mode), sparse in curves(points).items():
            xs = [p.cell.sparsity for p in sparse]
            own = break_even(xs, [p.speedup for p in sparse]) if sparse[0].speedup is not None else "-"
            lines.append(
                f"| {markdown_text(backend)} | {markdown_text(mode)} | {own} | "
                f"{break_even(xs, [p.vs_best_dense for p in sparse])} |"
            )
        lines.append("")
    lines.append(
        f"Pruning `{DEFAULT_PRUNING}` is per-layer magnitude pruning; `block:RxC` zeroes whole blocks of "
        "R outputs x C inputs (harness/models/pruning.py). Speed-ups are ratios of medians from this run."
    )
    return "\n".join(lines) + "\n"


def terminal_lines(table: dict[tuple, list[SparsePoint]]) -> list[str]:
    out = []
    for key, points in table.items():
        for (backend, mode), sparse in curves(points).items():
            own = ", ".join(f"{sparsity_label(p.cell.sparsity)} {p.speedup:.2f}x" for p in sparse if p.speedup)
            best = ", ".join(
                f"{sparsity_label(p.cell.sparsity)} {fmt_or_dash(p.vs_best_dense, '.2f')}x" for p in sparse
            )
            parts = ([f"vs own dense {own}"] if own else []) + [
                f"vs best dense ({sparse[0].best_dense_backend}) {best}"
            ]
            out.append(f"{_title(key)} {backend} {mode}: {'; '.join(parts)}")
    return out


def plot(table: dict[tuple, list[SparsePoint]]) -> bytes | None:
    if not table:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(table), figsize=(6 * len(table), 4.5), squeeze=False)
    for ax, (key, points) in zip(axes[0], table.items()):
        for (backend, mode), sparse in curves(points).items():
            if sparse[0].speedup is None:  # no dense cell of its own to measure against
                continue
            style = "-" if backend.endswith("sparse") else ":"
            xs, ys = [0.0] + [p.cell.sparsity for p in sparse], [1.0] + [p.speedup for p in sparse]
            ax.plot(xs, ys, style, marker="o", label=f"{backend} {mode}")
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(_title(key), fontsize=9)
        ax.set_xlabel("sparsity")
        ax.set_ylabel("speed-up over the same backend dense")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    return png_bytes(fig)


def write_report(table: dict[tuple, list[SparsePoint]], out_dir: Path) -> list[Path]:
    """sparsity.md and sparsity.png (when there is something to plot) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot(table)
    written = []
    if png:
        written.append(write_atomic(out_dir / "sparsity.png", png))
    md = to_markdown(table) + ("\n![speed-up vs sparsity](sparsity.png)\n" if png else "")
    written.append(write_atomic(out_dir / "sparsity.md", md))
    return written
