"""Markdown: the verdict table of a comparison and the summary of one saved result (the report's
``report.md``, also appended to $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

from harness.compare.compare import Comparison
from harness.report.tables import VERDICT_HEADER, drift_lines, fmt_or_dash, short_name, verdict_counts, verdict_rows
from harness.store.results import bench_gflops, peak_of, profile_of


def verdict_markdown(comparison: Comparison) -> str:
    rows = verdict_rows(comparison)
    out = [f"- **runtime changed**: {line}" for line in comparison.runtime_changes] + (
        [""] if comparison.runtime_changes else []
    )
    if comparison.profiles_differ:
        baseline, current = comparison.profile_ids
        out = [
            f"- **compared across machine profiles** {baseline} -> {current}: timings may not be comparable",
            "",
        ] + out
    out += ["| " + " | ".join(VERDICT_HEADER) + " |", "|" + "---|" * len(VERDICT_HEADER)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    out += ["", ", ".join(f"**{n}** {k}" for k, n in verdict_counts(comparison).items()) or "no cells", ""]
    out += [f"- {line}" for line in drift_lines(comparison)]
    return "\n".join(out) + "\n"


def cell_rows(result: dict) -> list[dict]:
    peak, _ = peak_of(result)
    rows = []
    for bench in result["benchmarks"]:
        info = bench.get("extra_info") or {}
        median_ms = bench["stats"]["median"] * 1e3
        gflops = bench_gflops(bench)
        rows.append(
            {
                "name": bench["fullname"],
                "cell": short_name(bench["fullname"]),
                "model": info.get("model"),
                "backend": info.get("backend"),
                "label": info.get("backend_label"),
                "threads": info.get("threads_resolved"),
                "median_ms": median_ms,
                "gflops": gflops,
                "pct_peak": 100 * gflops / peak if gflops and peak else None,
                "compile_s": info.get("compile_s"),
                "max_rel_err": info.get("max_rel_err"),
                "oversubscribed": info.get("oversubscribed"),
                "processes": (info.get("samples") or {}).get("processes"),
            }
        )
    return rows


def summary_markdown(current: dict, rows: list[dict], comparison: Comparison | None) -> str:
    profile = profile_of(current) or {}
    peak, method = peak_of(current)
    out = [
        "# infer-bench report",
        "",
        f"Profile **{profile.get('profile_id', 'unknown')}** - {(profile.get('cpu') or {}).get('model', '?')}, "
        f"{(profile.get('cpu_budget') or {}).get('effective_cpus', '?')} effective CPUs; "
        f"practical fp32 peak {fmt_or_dash(peak, '.0f')} GFLOP/s ({method}).",
        "",
        "| cell | backend | threads | median ms | GFLOP/s | % of peak | compile s | max rel err | processes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        flag = " (oversubscribed)" if r["oversubscribed"] else ""
        out.append(
            f"| {r['cell']} | {r['backend']} | {r['threads']}{flag} | {r['median_ms']:.3f} | "
            f"{fmt_or_dash(r['gflops'], '.1f')} | {fmt_or_dash(r['pct_peak'], '.1f')} | "
            f"{fmt_or_dash(r['compile_s'], '.2f')} | {fmt_or_dash(r['max_rel_err'], '.1e')} | {r['processes'] or '-'} |"
        )
    if comparison is not None:
        out += ["", "## Verdicts against the baseline", "", verdict_markdown(comparison)]
    return "\n".join(out) + "\n"
