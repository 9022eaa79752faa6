"""``python -m harness report``: a Markdown summary and a self-contained HTML page (plots are
embedded PNGs, no external resources, no scripts beyond a render check) for one result, with
verdicts against a baseline and a trend over the saved history of the result's profile, its
change points marked (harness.compare.history).

The page is built from the data, not from the Markdown: every value from a result goes through
``html_text`` once, and matplotlib reads no ``$...$`` in a name as math (a name is drawn as written
and cannot break the plot)."""

from __future__ import annotations

import base64
import html
import statistics
from datetime import datetime
from pathlib import Path

from harness.compare.compare import Comparison
from harness.compare.history import CellHistory, analyse
from harness.compare.percentiles import DEFAULT_STATISTIC
from harness.report.figures import png_bytes, pyplot
from harness.report.markdown import cell_rows, profile_headline, summary_markdown
from harness.report.op_profile import op_diff_html
from harness.report.tables import (
    HISTORY_HEADER,
    METRIC_COLUMNS,
    change_point_rows,
    fmt_or_dash,
    history_notes,
    history_summary,
    metric_mark,
    short_name,
)
from harness.store.io import write_atomic

COLORS = {
    "regression": "#d62728",
    "minor regression": "#e377c2",
    "improvement": "#2ca02c",
    "minor improvement": "#bcbd22",
    "unchanged": "#7f7f7f",
    "inconclusive": "#ff7f0e",
    "new": "#1f77b4",
    "missing": "#000000",
    "not compared": "#7f7f7f",
}


def html_text(value) -> str:
    """A value from a result as HTML text or attribute value: no tag or attribute can come from it."""
    return html.escape(str(value))


def _png(fig) -> str:
    return base64.b64encode(png_bytes(fig, dpi=90)).decode()


def plot_ratios(verdicts) -> str | None:
    judged = [v for v in verdicts if v.ratio is not None]
    if not judged:
        return None
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 0.35 * len(judged) + 1.2))
    for i, v in enumerate(judged):
        r, lo, hi = v.ratio, v.low, v.high  # what the verdict judged (drift-corrected when the machine moved)
        ax.errorbar([r], [i], xerr=[[r - lo], [hi - r]], fmt="o", color=COLORS[v.verdict], capsize=3)
    ax.set_yticks(range(len(judged)), [short_name(v.name) for v in judged], fontsize=7)
    t = judged[0].threshold
    for x, style in ((1.0, "-"), (1 + t, "--"), (1 / (1 + t), "--")):
        ax.axvline(x, color="grey", linestyle=style, linewidth=0.8)
    ax.set_xlabel("current / baseline (steady-state ratio and the interval the verdict judged)")
    handles = [
        plt.Line2D([], [], marker="o", linestyle="none", color=c, label=k)
        for k, c in COLORS.items()
        if any(v.verdict == k for v in judged)
    ]
    ax.legend(handles=handles, fontsize=7, loc="best")
    return _png(fig)


def plot_latency(rows: list[dict]) -> str | None:
    if not rows:
        return None
    plt = pyplot()

    models = sorted({r["model"] for r in rows if r["model"]})
    backends = sorted({r["backend"] for r in rows if r["backend"]})
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(models)), 4))
    width = 0.8 / max(1, len(backends))
    for j, backend in enumerate(backends):
        xs, ys = [], []
        for i, model in enumerate(models):
            vals = [r["median_ms"] for r in rows if r["model"] == model and r["backend"] == backend]
            if vals:
                xs.append(i + j * width)
                ys.append(min(vals))
        ax.bar(xs, ys, width=width, label=backend)
    ax.set_xticks([i + width * (len(backends) - 1) / 2 for i in range(len(models))], models, rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("median latency (ms, log)")
    if backends:
        ax.legend(fontsize=8)
    return _png(fig)


def history_runs(history_dir: Path | None, current: dict) -> list[tuple[str, dict]]:
    """The readable saved runs in ``history_dir`` (oldest first), then ``current`` (unless it is the
    newest of them, saved already)."""
    from harness.store.baselines import BaselineStore

    folder = Path(history_dir) if history_dir else None
    runs = BaselineStore(folder.parent, folder.name).history()[0] if folder else []
    if not runs or runs[-1][1] != current:
        runs.append(("current", current))
    return runs


def plot_trend(histories: dict[str, CellHistory]) -> str | None:
    """Each cell's nightly value over the runs, relative to its median over them; busy nights hollow
    (left out of the change points), each change point a red triangle (pointing up when slower) with
    its step, a dotted line where a runtime package changed (the series is split there)."""
    plotted = {cell: h for cell, h in histories.items() if len(h.nights) > 1}
    if not plotted:
        return None
    plt = pyplot()

    labels = list(dict.fromkeys(n.run for h in plotted.values() for n in h.nights))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for cell, history in sorted(plotted.items()):
        first = statistics.median(n.value for n in history.nights)
        xs = [labels.index(n.run) for n in history.nights]
        (line,) = ax.plot(
            xs, [n.value / first for n in history.nights], marker="o", markersize=3, linewidth=1, label=short_name(cell)
        )
        busy = [n for n in history.nights if n.busy]
        if busy:
            ax.scatter(
                [labels.index(n.run) for n in busy],
                [n.value / first for n in busy],
                facecolors="white",
                edgecolors=line.get_color(),
                zorder=3,
            )
        for cp in history.change_points:
            x, y = labels.index(cp.night.run), cp.night.value / first
            ax.scatter([x], [y], marker="^" if cp.ratio > 1 else "v", s=90, color="#d62728", zorder=4)
            ax.annotate(f"{cp.ratio - 1:+.1%}", (x, y), textcoords="offset points", xytext=(4, 6), fontsize=7)
    for run in {night.run for h in plotted.values() for night, _ in h.splits}:
        ax.axvline(labels.index(run) - 0.5, color="grey", linestyle=":", linewidth=1)
    step = max(1, len(labels) // 30)
    ax.set_xticks(range(0, len(labels), step), labels[::step], rotation=30, fontsize=7)
    ax.set_ylabel("nightly median / the cell's median")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    if len(plotted) <= 16:
        ax.legend(fontsize=6, ncol=2)
    return _png(fig)


def _change_points_html(histories: dict[str, CellHistory]) -> str:
    points = [cp for h in histories.values() for cp in h.change_points]
    notes = "".join(f"<li>{html_text(line)}</li>" for line in history_notes(histories))
    head = "".join(f"<th>{html_text(h)}</th>" for h in HISTORY_HEADER)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in row) + "</tr>" for row in change_point_rows(points)
    )
    table = f"<table id='change-points'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>" if rows else ""
    return f"{table}<p>{html_text(history_summary(histories))}</p>" + (f"<ul>{notes}</ul>" if notes else "")


def _metric_html(m) -> str:
    """A metric verdict's cell: its mark in the verdict's colour, its note as the cell's title."""
    if m is None:
        return "<td>-</td>"
    mark = f"<span style='color:{COLORS[m.verdict]}'>{html_text(metric_mark(m))}</span>"
    return f"<td title='{html_text(m.note)}'>{mark}</td>"


def _table_html(rows: list[dict], verdicts) -> str:
    by = {v.name: v for v in verdicts or []}
    head = [
        "cell",
        "backend",
        "threads",
        "median ms",
        "p90 ms",
        "p99 ms",
        "samples/s",
        "GFLOP/s",
        "% of peak",
        "compile s",
        "first inference ms",
        "model MiB",
        "max rel err",
        "verdict",
        "ratio [CI]",
        *METRIC_COLUMNS,
    ]
    out = ["<table id='cells'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        v = by.get(r["name"])
        verdict = f"<span style='color:{COLORS[v.verdict]}'>{html_text(v.verdict)}</span>" if v else "-"
        ratio = f"{v.ratio:.3f} [{v.low:.3f}, {v.high:.3f}]" if v and v.ratio is not None else "-"
        if v and v.ratio is not None and v.statistic != DEFAULT_STATISTIC:
            ratio += f" ({html_text(v.statistic)})"
        cells = [
            r["cell"],
            r["backend"],
            f"{r['threads']}{' (oversubscribed)' if r['oversubscribed'] else ''}",
            f"{r['median_ms']:.3f}",
            r["p90_ms"],
            r["p99_ms"],
            fmt_or_dash(r["samples_per_s"], ".1f"),
            fmt_or_dash(r["gflops"], ".1f"),
            fmt_or_dash(r["pct_peak"], ".1f"),
            fmt_or_dash(r["compile_s"], ".2f"),
            fmt_or_dash(r["first_inference_ms"], ".3f"),
            fmt_or_dash(r["model_mb"], ".1f"),
            fmt_or_dash(r["max_rel_err"], ".1e"),
        ]
        metrics = "".join(_metric_html(v.metrics.get(name) if v else None) for name in METRIC_COLUMNS)
        out.append(
            "<tr>"
            + "".join(f"<td>{html_text(c)}</td>" for c in cells)
            + f"<td>{verdict}</td><td>{ratio}</td>{metrics}</tr>"
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def write_reports(current: dict, comparison: Comparison | None, out_dir: Path, history_dir=None) -> list[Path]:
    """report.md and report.html for ``current`` (verdicts from ``comparison`` when given) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = cell_rows(current)
    verdicts = comparison.verdicts if comparison else None
    if history_dir is None:  # the saved runs of the result's own machine profile
        from harness.store.baselines import BaselineStore, profile_id_of

        history_dir = BaselineStore(profile_id=profile_id_of(current)).dir
    histories = analyse(history_runs(Path(history_dir), current))
    md = summary_markdown(current, rows, comparison, histories)
    plots = [
        ("Ratio to baseline, by verdict", plot_ratios(verdicts or [])),
        ("Latency per backend", plot_latency(rows)),
        ("Trend over saved runs", plot_trend(histories)),
    ]
    body = "\n".join(
        f"<h2>{html_text(title)}</h2><img class='plot' alt='{html_text(title)}' src='data:image/png;base64,{png}'>"
        for title, png in plots
        if png
    )
    headline = profile_headline(current, html_text, lambda value: f"<b>{html_text(value)}</b>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>infer-bench report</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}} td:first-child{{text-align:left}}
img.plot{{max-width:100%}}</style>
</head><body>
<h1>infer-bench report</h1>
<p>Generated {datetime.now().isoformat(timespec="seconds")}.</p>
<p>{headline}</p>
{_table_html(rows, verdicts)}
{"".join(op_diff_html(v.op_diff, html_text, short_name(v.name)) for v in verdicts or [] if v.op_diff is not None)}
{body}
<h2>Change points over the saved runs</h2>
{_change_points_html(histories)}
<script>
window.addEventListener('load', function () {{
  var imgs = document.querySelectorAll('img.plot'), ok = 0;
  imgs.forEach(function (img) {{ if (img.complete && img.naturalWidth > 0) ok++; }});
  document.body.setAttribute('data-plots-rendered', ok + '/' + imgs.length);
}});
</script>
</body></html>
"""
    return [write_atomic(out_dir / "report.md", md), write_atomic(out_dir / "report.html", page)]
