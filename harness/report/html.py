"""``python -m harness report``: a Markdown summary and a self-contained HTML page (plots are
embedded PNGs, no external resources, no scripts beyond a render check) for one result, with
verdicts against a baseline and a trend over the saved history.

The page is built from the data, not from the Markdown: every value from a result goes through
``html_text`` once, and matplotlib reads no ``$...$`` in a name as math (a name is drawn as written
and cannot break the plot)."""

from __future__ import annotations

import base64
import html
from datetime import datetime
from pathlib import Path

from harness.compare.compare import Comparison
from harness.report.figures import png_bytes, pyplot
from harness.report.markdown import cell_rows, profile_headline, summary_markdown
from harness.report.tables import fmt_or_dash, short_name
from harness.store.io import write_atomic
from harness.store.results import ResultFileError, by_name, load_result

COLORS = {
    "regression": "#d62728",
    "minor regression": "#e377c2",
    "improvement": "#2ca02c",
    "minor improvement": "#bcbd22",
    "unchanged": "#7f7f7f",
    "inconclusive": "#ff7f0e",
    "new": "#1f77b4",
    "missing": "#000000",
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
    ax.legend(fontsize=8)
    return _png(fig)


def history_points(history_dir: Path | None, current: dict) -> dict[str, list[tuple[str, float]]]:
    runs = []
    if history_dir and Path(history_dir).is_dir():
        for path in sorted(Path(history_dir).glob("[0-9][0-9][0-9][0-9]_*.json")):
            try:
                runs.append((path.stem, load_result(path)))
            except ResultFileError:
                continue
    runs.append(("current", current))
    series: dict[str, list[tuple[str, float]]] = {}
    for label, run in runs:
        for name, bench in by_name(run).items():
            series.setdefault(name, []).append((label, bench["stats"]["median"] * 1e3))
    return series


def plot_trend(series: dict[str, list[tuple[str, float]]]) -> str | None:
    if not any(len(points) > 1 for points in series.values()):
        return None
    plt = pyplot()

    labels = list(dict.fromkeys(label for points in series.values() for label, _ in points))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, points in sorted(series.items()):
        if len(points) > 1:
            first = points[0][1]
            ax.plot(
                [labels.index(lbl) for lbl, _ in points],
                [v / first for _, v in points],
                marker="o",
                linewidth=1,
                label=short_name(name),
            )
    ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
    ax.set_ylabel("median / first saved median")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    if len(series) <= 16:
        ax.legend(fontsize=6, ncol=2)
    return _png(fig)


def _table_html(rows: list[dict], verdicts) -> str:
    by = {v.name: v for v in verdicts or []}
    head = [
        "cell",
        "backend",
        "threads",
        "median ms",
        "GFLOP/s",
        "% of peak",
        "compile s",
        "max rel err",
        "verdict",
        "ratio [CI]",
    ]
    out = ["<table id='cells'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        v = by.get(r["name"])
        verdict = f"<span style='color:{COLORS[v.verdict]}'>{html_text(v.verdict)}</span>" if v else "-"
        ratio = f"{v.ratio:.3f} [{v.low:.3f}, {v.high:.3f}]" if v and v.ratio is not None else "-"
        cells = [
            r["cell"],
            r["backend"],
            f"{r['threads']}{' (oversubscribed)' if r['oversubscribed'] else ''}",
            f"{r['median_ms']:.3f}",
            fmt_or_dash(r["gflops"], ".1f"),
            fmt_or_dash(r["pct_peak"], ".1f"),
            fmt_or_dash(r["compile_s"], ".2f"),
            fmt_or_dash(r["max_rel_err"], ".1e"),
        ]
        out.append(
            "<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in cells) + f"<td>{verdict}</td><td>{ratio}</td></tr>"
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
    md = summary_markdown(current, rows, comparison)
    plots = [
        ("Ratio to baseline, by verdict", plot_ratios(verdicts or [])),
        ("Latency per backend", plot_latency(rows)),
        ("Trend over saved runs", plot_trend(history_points(Path(history_dir), current))),
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
{body}
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
