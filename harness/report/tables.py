"""Terminal tables: the cells of a run and the verdicts of a comparison (plain text, one line each)."""

from __future__ import annotations

from harness.compare.compare import Comparison
from harness.machine.drift import DRIFT_TOLERANCE, drift_factor, within_run_drift
from harness.run.protocol import CellResult

MARK = {
    "regression": "REGRESSION",
    "improvement": "improvement",
    "unchanged": "unchanged",
    "inconclusive": "inconclusive",
    "new": "new",
    "missing": "MISSING",
}
VERDICT_HEADER = ["cell", "verdict", "ratio", "CI", "drift-corrected", "p (MWU)", "threshold", "note"]


def short_name(fullname: str) -> str:
    return fullname.split("::")[-1]


def fmt_or_dash(x, spec=".3f") -> str:
    """A number formatted with ``spec``, or '-' when there is none (every table here uses it)."""
    return "-" if x is None else format(x, spec)


def cell_lines(results: list[CellResult]) -> list[str]:
    """The run's cells: status, median, GFLOP/s, compile time, parity error, runtime threads, flags."""
    lines = [
        f"{'cell':<44} {'status':<13} {'median ms':>10} {'GFLOP/s':>8} {'compile s':>9} {'max rel err':>11} "
        f"{'threads (runtime)':<28}"
    ]
    for r in sorted(results, key=lambda r: r.nodeid or r.cell.id):
        med = r.median_s()
        flag = (" oversubscribed" if r.oversubscribed else "") + (
            f" BUSY MACHINE ({r.foreign_load:.2f} CPUs used by other processes)" if r.busy else ""
        )
        lines.append(
            f"{r.cell.id:<44} {r.status:<13} {fmt_or_dash(med and med * 1e3, '.3f'):>10} "
            f"{fmt_or_dash(r.gflops(), '.2f'):>8} {fmt_or_dash(r.compile_s, '.2f'):>9} "
            f"{fmt_or_dash(r.max_rel_err, '.2e'):>11} "
            f"{','.join(f'{k}={v}' for k, v in r.threads.runtime.items()):<28}{flag}"
        )
    return lines


def drift_lines(current_control: dict | None, baseline_control: dict | None) -> list[str]:
    lines = []
    inside = within_run_drift(current_control)
    if inside is not None:
        moved = abs(inside - 1) > DRIFT_TOLERANCE
        lines.append(
            f"control workload after/before this run: {inside:.3f}"
            + (" - the machine drifted during the run" if moved else f" (steady within {DRIFT_TOLERANCE:.0%})")
        )
    drift = drift_factor(current_control, baseline_control)
    if drift is not None:
        moved = abs(drift - 1) > DRIFT_TOLERANCE
        lines.append(
            f"control workload now/baseline: {drift:.3f}"
            + (
                " - the machine itself is faster/slower than when the baseline was made: "
                "verdicts use drift-corrected ratios"
                if moved
                else f" (within {DRIFT_TOLERANCE:.0%}: ratios are raw)"
            )
        )
    elif not current_control:
        lines.append("no drift control measured this run (ratios are raw)")
    else:
        lines.append("the baseline has no drift control (ratios are raw)")
    return lines


def verdict_rows(comparison: Comparison) -> list[list[str]]:
    rows = []
    for v in comparison.verdicts:
        ci = f"[{v.low:.3f}, {v.high:.3f}]" if v.low is not None else "-"
        rows.append(
            [
                short_name(v.name),
                MARK[v.verdict],
                fmt_or_dash(v.ratio),
                ci,
                fmt_or_dash(v.corrected_ratio),
                fmt_or_dash(v.p_value, ".1e"),
                f"{v.threshold:.0%}",
                v.note,
            ]
        )
    return rows


def verdict_counts(comparison: Comparison) -> dict[str, int]:
    return {k: n for k in MARK if (n := sum(v.verdict == k for v in comparison.verdicts))}


def verdict_lines(comparison: Comparison) -> list[str]:
    """Runtime changes first (one line per package), the table, the counts, the drift control."""
    rows = verdict_rows(comparison)
    widths = [max(len(r[i]) for r in rows + [VERDICT_HEADER]) for i in range(len(VERDICT_HEADER) - 1)]
    lines = [f"runtime changed: {line}" for line in comparison.runtime_changes]
    lines += ["  ".join(h.ljust(w) for h, w in zip(VERDICT_HEADER, widths)) + "  note"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    lines.append(", ".join(f"{n} {k}" for k, n in verdict_counts(comparison).items()) or "no cells")
    lines += drift_lines(comparison.current_control, comparison.baseline_control)
    return lines
