"""Terminal tables: the cells of a run, the verdicts of a comparison (latency, then a column per
metric beyond latency: harness.compare.metrics) and the change points of a history (plain text,
one line each)."""

from __future__ import annotations

import statistics
from collections import Counter

from harness.compare.compare import Comparison
from harness.compare.history import CellHistory, ChangePoint
from harness.compare.metrics import METRICS, NOT_COMPARED, MetricVerdict
from harness.compare.percentiles import DEFAULT_STATISTIC
from harness.machine.drift import control_samples
from harness.report.op_profile import op_diff_lines
from harness.run.protocol import CellResult
from harness.store.results import percentiles

MARK = {
    "regression": "REGRESSION",
    "minor regression": "minor regression",
    "improvement": "improvement",
    "minor improvement": "minor improvement",
    "unchanged": "unchanged",
    "inconclusive": "inconclusive",
    "new": "new",
    "missing": "MISSING",
}
METRIC_COLUMNS = tuple(m for m in METRICS if m != "latency")  # one column each, after latency's
VERDICT_HEADER = [
    "cell",
    "verdict",
    "ratio",
    "CI",
    "resolves",
    "all processes",
    "p (Welch)",
    "threshold",
    *METRIC_COLUMNS,
    "note",
]
METRIC_FAILS = ("regression", "minor regression")  # whose notes join the row's note


def short_name(fullname: str) -> str:
    return fullname.split("::")[-1]


def fmt_or_dash(x, spec=".3f") -> str:
    """A number formatted with ``spec``, or '-' when there is none (every table here uses it)."""
    return "-" if x is None else format(x, spec)


def metric_mark(m: MetricVerdict | None) -> str:
    """A metric verdict in a few characters: '=' unchanged, '-' not compared, else the change and
    the verdict, e.g. '+31% REGRESSION' or '12x REGRESSION'."""
    if m is None or m.verdict == NOT_COMPARED:
        return "-"
    if m.verdict == "unchanged":
        return "="
    if m.ratio is None:
        return MARK[m.verdict]
    change = f"{m.ratio:.0f}x" if m.ratio >= 10 else f"{m.ratio:.1f}x" if m.ratio >= 2 else f"{m.ratio - 1:+.0%}"
    return f"{change} {MARK[m.verdict]}"


def metric_notes(metrics: dict) -> list[str]:
    """'metric: note' of each metric beyond latency that regressed, for the row's note."""
    return [f"{name}: {m.note}" for name, m in metrics.items() if m.verdict in METRIC_FAILS and m.note]


def percentile_ms(info: dict, name: str) -> str:
    """A cell's saved percentile in ms, or 'n/a' where its calls do not support one, '-' where
    none was recorded (harness.store.results.percentiles)."""
    if info.get(f"{name}_s") is not None:
        return f"{info[f'{name}_s'] * 1e3:.3f}"
    return "n/a" if name in ((info.get("percentiles") or {}).get("not_supported") or {}) else "-"


def cell_lines(results: list[CellResult]) -> list[str]:
    """The run's cells: status, median, p90 and p99 ('n/a': too few calls to support one), samples/s
    of a throughput or server scenario, GFLOP/s, compile time, first inference and model memory
    (medians over the worker processes), parity error, threads that ran and what the runtime
    reports, flags."""
    lines = [
        f"{'cell':<44} {'status':<13} {'median ms':>10} {'p90 ms':>9} {'p99 ms':>9} {'samples/s':>9} "
        f"{'GFLOP/s':>8} {'compile s':>9} {'1st inf ms':>10} "
        f"{'model MiB':>9} {'max rel err':>11} {'ran':>3} {'threads (runtime)':<28}"
    ]
    for r in sorted(results, key=lambda r: r.nodeid or r.cell.id):
        med = r.median_s()
        flag = (" oversubscribed" if r.oversubscribed else "") + (
            f" BUSY MACHINE ({r.foreign_load:.2f} CPUs used by other processes)" if r.busy else ""
        )
        first, memory = r.process_median("first_inference_s"), r.process_median("model_rss_mb")
        tail = percentiles(r) if med else {}
        lines.append(
            f"{r.cell.id:<44} {r.status:<13} {fmt_or_dash(med and med * 1e3, '.3f'):>10} "
            f"{percentile_ms(tail, 'p90'):>9} {percentile_ms(tail, 'p99'):>9} "
            f"{fmt_or_dash(r.process_median('samples_per_s'), '.1f'):>9} "
            f"{fmt_or_dash(r.gflops(), '.2f'):>8} {fmt_or_dash(r.compile_s, '.2f'):>9} "
            f"{fmt_or_dash(first and first * 1e3, '.3f'):>10} {fmt_or_dash(memory, '.1f'):>9} "
            f"{fmt_or_dash(r.max_rel_err, '.2e'):>11} {fmt_or_dash(r.threads_ran(), 'd'):>3} "
            f"{','.join(f'{k}={v}' for k, v in r.threads.runtime.items()):<28}{flag}"
        )
    return lines


def drift_lines(comparison: Comparison) -> list[str]:
    """What the drift control saw during this run, and between this run and the baseline."""
    lines = []
    for threads, values in control_samples(comparison.current_control).items():
        mid = statistics.median(values)
        lines.append(
            f"control workload this run at {threads} thread(s): {len(values)} measurements within "
            f"{min(values) / mid:.3f}-{max(values) / mid:.3f} of their median"
        )
    if not comparison.current_control:
        lines.append("no drift control measured this run (ratios are raw)")
    elif not comparison.drift:
        lines.append("the baseline has no drift control at these thread counts (ratios are raw)")
    for threads, d in comparison.drift.items():
        ratio, low, high = d.ratio
        if comparison.drifted(threads):
            lines.append(
                f"MACHINE DRIFT at {threads} thread(s): the control runs {ratio:.3f}x [{low:.3f}, {high:.3f}] "
                f"of the baseline's; verdicts of {threads}-thread cells are of ratios divided by it, its "
                f"uncertainty included"
            )
        else:
            lines.append(
                f"control now/baseline at {threads} thread(s): {ratio:.3f} [{low:.3f}, {high:.3f}]: "
                f"no drift detected, ratios are raw"
            )
    return lines


def verdict_rows(comparison: Comparison) -> list[list[str]]:
    rows = []
    for v in comparison.verdicts:
        rows.append(
            [
                short_name(v.name),
                MARK[v.verdict],
                fmt_or_dash(v.ratio)
                + ("" if v.statistic == DEFAULT_STATISTIC or v.ratio is None else f" ({v.statistic})"),
                f"[{v.low:.3f}, {v.high:.3f}]" if v.low is not None else "-",
                f"±{v.resolution:.1%}" if v.resolution is not None else "-",
                f"{v.mixture[0]:.3f} [{v.mixture[1]:.3f}, {v.mixture[2]:.3f}]" if v.mixture else "-",
                fmt_or_dash(v.p_value, ".1e"),
                f"{v.threshold:.0%}",
                *(metric_mark(v.metrics.get(name)) for name in METRIC_COLUMNS),
                "; ".join(n for n in [v.note, *metric_notes(v.metrics)] if n),
            ]
        )
    return rows


def verdict_counts(comparison: Comparison) -> dict[str, int]:
    return {k: n for k in MARK if (n := sum(v.verdict == k for v in comparison.verdicts))}


def metric_counts(comparison: Comparison) -> list[str]:
    """'compile: 1 regression' for each metric beyond latency with a regression or improvement."""
    lines = []
    for name in METRIC_COLUMNS:
        seen = Counter(v.metrics[name].verdict for v in comparison.verdicts if name in v.metrics)
        moved = [f"{seen[k]} {k}" for k in MARK if k in seen and k not in ("unchanged", "inconclusive")]
        if moved:
            lines.append(f"{name}: {', '.join(moved)}")
    return lines


def verdict_lines(comparison: Comparison) -> list[str]:
    """Runtime changes first (one line per package), the table, the counts, the drift control."""
    rows = verdict_rows(comparison)
    widths = [max(len(r[i]) for r in rows + [VERDICT_HEADER]) for i in range(len(VERDICT_HEADER) - 1)]
    lines = [f"runtime changed: {line}" for line in comparison.runtime_changes]
    lines += ["  ".join(h.ljust(w) for h, w in zip(VERDICT_HEADER, widths)) + "  note"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    lines.append(", ".join(f"{n} {k}" for k, n in verdict_counts(comparison).items()) or "no cells")
    lines += metric_counts(comparison)
    for v in comparison.verdicts:
        if v.op_diff is not None:
            lines += op_diff_lines(v.op_diff, short_name(v.name))
    lines += drift_lines(comparison)
    return lines


HISTORY_HEADER = ["cell", "at run", "commit", "change", "before ms", "after ms", "p-value", "new"]


def change_point_rows(points: list[ChangePoint], new: list[ChangePoint] = ()) -> list[list[str]]:
    """One row per change point: where (the first run after it, and its commit), by how much, how sure."""
    return [
        [
            short_name(cp.cell),
            cp.night.run,
            cp.night.commit or "-",
            f"{cp.ratio - 1:+.1%}",
            f"{cp.before * 1e3:.4g}",
            f"{cp.after * 1e3:.4g}",
            f"{cp.pvalue:.1e}",
            "NEW" if cp in new else "",
        ]
        for cp in points
    ]


def history_notes(histories: dict[str, CellHistory]) -> list[str]:
    """What the series left out or split, one line each (the same under the text and Markdown tables)."""
    lines = []
    busy = Counter(n.run for h in histories.values() for n in h.left_out)
    if busy:
        runs = [f"{run} ({n} cell{'s' if n > 1 else ''})" for run, n in sorted(busy.items())]
        lines.append(f"left out (machine busy): {', '.join(runs[:8])}{' ...' if len(runs) > 8 else ''}")
    splits = {(night.run, "; ".join(why)) for h in histories.values() for night, why in h.splits}
    lines += [f"series split at {run}: {why}" for run, why in sorted(splits)]
    return lines


def history_lines(histories: dict[str, CellHistory], new: list[ChangePoint] = ()) -> list[str]:
    """The change points of every cell as a table, then what was left out or split."""
    points = [cp for h in histories.values() for cp in h.change_points]
    rows = change_point_rows(points, new)
    widths = [max(len(r[i]) for r in rows + [HISTORY_HEADER]) for i in range(len(HISTORY_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [HISTORY_HEADER] + rows] if rows else []
    return lines + [history_summary(histories)] + history_notes(histories)


def history_summary(histories: dict[str, CellHistory]) -> str:
    points = sum(len(h.change_points) for h in histories.values())
    nights = max((len(h.nights) for h in histories.values()), default=0)
    return (
        f"{points} change points in {sum(bool(h.change_points) for h in histories.values())} of "
        f"{len(histories)} cells (up to {nights} nights each)"
    )
