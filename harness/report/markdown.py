"""Markdown: the verdict table of a comparison (latency and a column per metric beyond it) and the
summary of one saved result (the report's ``report.md``, also appended to $GITHUB_STEP_SUMMARY),
and ``markdown_text``, through which every Markdown report here writes each value that comes from
data."""

from __future__ import annotations

import re
from collections.abc import Callable

from harness.compare.compare import Comparison
from harness.compare.history import CellHistory, ChangePoint
from harness.report.op_profile import op_diff_markdown
from harness.report.tables import (
    HISTORY_HEADER,
    VERDICT_HEADER,
    change_point_rows,
    drift_lines,
    fmt_or_dash,
    history_notes,
    history_summary,
    percentile_ms,
    short_name,
    verdict_counts,
    verdict_rows,
)
from harness.store.results import bench_gflops, cell_peak, peak_of, process_median, profile_of

# What GitHub-flavoured Markdown could read as markup in a value: line breaks; the characters of
# HTML tags and entities (GitHub renders raw HTML in Markdown); backslash, code, emphasis,
# strikethrough, math and table-column characters; a ``]`` that would close a link, an image or a
# reference definition (``](``, ``][``, ``]:``); a ``_`` not inside a word (``test_latency`` stays).
_MARKDOWN_SPECIAL = re.compile(r"\r\n|[\r\n]|[&<>\\`*~$|]|\](?=[(\[:])|(?<![^\W_])_|_(?![^\W_])")
_ENTITY = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r\n": " ", "\r": " ", "\n": " "}


def markdown_text(value) -> str:
    """``value`` as Markdown that renders as its literal text, on one line, inside a table cell
    too: no tag, link, emphasis or extra column can come from it. Reports pass every value from a
    result (names, labels, versions, node ids, paths, notes) through it, and no static text."""
    return _MARKDOWN_SPECIAL.sub(lambda m: _ENTITY.get(m[0], "\\" + m[0]), str(value))


def profile_headline(current: dict, text: Callable[[object], str], strong: Callable[[object], str]) -> str:
    """The report's line on the machine of ``current``, each value from the result written by
    ``text`` (the profile id by ``strong``): the Markdown and the HTML report say the same."""
    profile = profile_of(current) or {}
    peak, method = peak_of(current)
    cpu = (profile.get("cpu") or {}).get("model", "?")
    effective_cpus = (profile.get("cpu_budget") or {}).get("effective_cpus", "?")
    gpus = profile.get("gpus") or []
    names = ", ".join(g["name"] for g in gpus)
    devices = f" GPUs: {text(names)} (a cuda cell's % of peak: its GPU's datasheet peak)." if gpus else ""
    return (
        f"Profile {strong(profile.get('profile_id', 'unknown'))} - {text(cpu)}, {text(effective_cpus)} effective CPUs; "
        f"practical fp32 peak {fmt_or_dash(peak, '.0f')} GFLOP/s ({text(method)}).{devices}"
    )


def verdict_markdown(comparison: Comparison) -> str:
    rows = verdict_rows(comparison)
    out = [f"- **runtime changed**: {markdown_text(line)}" for line in comparison.runtime_changes] + (
        [""] if comparison.runtime_changes else []
    )
    if comparison.profiles_differ:
        baseline, current = comparison.profile_ids
        out = [
            f"- **compared across machine profiles** {markdown_text(baseline)} -> {markdown_text(current)}: "
            "timings may not be comparable",
            "",
        ] + out
    out += ["| " + " | ".join(VERDICT_HEADER) + " |", "|" + "---|" * len(VERDICT_HEADER)]
    out += ["| " + " | ".join(markdown_text(c) for c in r) + " |" for r in rows]
    out += ["", ", ".join(f"**{n}** {k}" for k, n in verdict_counts(comparison).items()) or "no cells", ""]
    for v in comparison.verdicts:
        if v.op_diff is not None:
            out += [op_diff_markdown(v.op_diff, markdown_text, short_name(v.name))]
    out += [f"- {line}" for line in drift_lines(comparison)]
    return "\n".join(out) + "\n"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def cell_rows(result: dict) -> list[dict]:
    peak, _ = peak_of(result)
    rows = []
    for bench in result["benchmarks"]:
        info = bench.get("extra_info") or {}
        median_ms = bench["stats"]["median"] * 1e3
        gflops = bench_gflops(bench)
        cell_peak_gflops = cell_peak(info, peak)
        rows.append(
            {
                "name": bench["fullname"],
                "cell": short_name(bench["fullname"]),
                "model": info.get("model"),
                "backend": info.get("backend"),
                "label": info.get("backend_label"),
                "threads": info.get("threads_resolved"),
                "median_ms": median_ms,
                "p90_ms": percentile_ms(info, "p90"),
                "p99_ms": percentile_ms(info, "p99"),
                "samples_per_s": process_median(info, "samples_per_s"),
                "gflops": gflops,
                "pct_peak": 100 * gflops / cell_peak_gflops if gflops and cell_peak_gflops else None,
                "compile_s": info.get("compile_s"),
                "first_inference_ms": _ms(process_median(info, "first_inference_s")),
                "model_mb": process_median(info, "model_rss_mb"),
                "max_rel_err": info.get("max_rel_err"),
                "oversubscribed": info.get("oversubscribed"),
                "processes": (info.get("samples") or {}).get("processes"),
            }
        )
    return rows


def summary_markdown(
    current: dict, rows: list[dict], comparison: Comparison | None, histories: dict[str, CellHistory] | None = None
) -> str:
    out = [
        "# infer-bench report",
        "",
        profile_headline(current, markdown_text, lambda value: f"**{markdown_text(value)}**"),
        "",
        "| cell | backend | threads | median ms | p90 ms | p99 ms | samples/s | GFLOP/s | % of peak | compile s "
        "| first inference ms | model MiB | max rel err | processes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        flag = " (oversubscribed)" if r["oversubscribed"] else ""
        out.append(
            f"| {markdown_text(r['cell'])} | {markdown_text(r['backend'])} | {markdown_text(r['threads'])}{flag} | "
            f"{r['median_ms']:.3f} | {r['p90_ms']} | {r['p99_ms']} | {fmt_or_dash(r['samples_per_s'], '.1f')} | "
            f"{fmt_or_dash(r['gflops'], '.1f')} | {fmt_or_dash(r['pct_peak'], '.1f')} | "
            f"{fmt_or_dash(r['compile_s'], '.2f')} | {fmt_or_dash(r['first_inference_ms'], '.3f')} | "
            f"{fmt_or_dash(r['model_mb'], '.1f')} | {fmt_or_dash(r['max_rel_err'], '.1e')} | "
            f"{markdown_text(r['processes'] or '-')} |"
        )
    if comparison is not None:
        out += ["", "## Verdicts against the baseline", "", verdict_markdown(comparison)]
    if histories:
        out += ["", "## Change points over the saved runs", "", history_markdown(histories)]
    return "\n".join(out) + "\n"


def history_markdown(histories: dict[str, CellHistory], new: list[ChangePoint] = ()) -> str:
    """The change points of a history as a Markdown table (the report's and the step summary's)."""
    points = [cp for h in histories.values() for cp in h.change_points]
    out = []
    if points:
        out += ["| " + " | ".join(HISTORY_HEADER) + " |", "|" + "---|" * len(HISTORY_HEADER)]
        out += ["| " + " | ".join(markdown_text(c) for c in r) + " |" for r in change_point_rows(points, new)]
        out.append("")
    out.append(markdown_text(history_summary(histories)))
    out += [f"- {markdown_text(line)}" for line in history_notes(histories)]
    return "\n".join(out) + "\n"
