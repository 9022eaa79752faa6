"""Verdict tables (terminal, Markdown) and the self-contained HTML report."""

from __future__ import annotations

from .drift import DRIFT_TOLERANCE, drift_factor, within_run_drift

MARK = {"regression": "REGRESSION", "improvement": "improvement", "unchanged": "unchanged",
        "inconclusive": "inconclusive", "new": "new", "missing": "MISSING"}


def short_name(fullname: str) -> str:
    return fullname.split("::")[-1]


def fmt_or_dash(x, spec=".3f") -> str:
    """A number formatted with ``spec``, or '-' when there is none (every table here uses it)."""
    return "-" if x is None else format(x, spec)


def drift_lines(current_control: dict | None, baseline_control: dict | None) -> list[str]:
    lines = []
    inside = within_run_drift(current_control)
    if inside is not None:
        moved = abs(inside - 1) > DRIFT_TOLERANCE
        lines.append(f"control workload after/before this run: {inside:.3f}" + (
            " - the machine drifted during the run" if moved else f" (steady within {DRIFT_TOLERANCE:.0%})"))
    drift = drift_factor(current_control, baseline_control)
    if drift is not None:
        moved = abs(drift - 1) > DRIFT_TOLERANCE
        lines.append(f"control workload now/baseline: {drift:.3f}" + (
            " - the machine itself is faster/slower than when the baseline was made: verdicts use drift-corrected ratios"
            if moved else f" (within {DRIFT_TOLERANCE:.0%}: ratios are raw)"))
    elif not current_control:
        lines.append("no drift control measured this run (ratios are raw)")
    else:
        lines.append("the baseline has no drift control (ratios are raw)")
    return lines


def verdict_rows(verdicts) -> list[list[str]]:
    rows = []
    for v in verdicts:
        ci = f"[{v.low:.3f}, {v.high:.3f}]" if v.low is not None else "-"
        rows.append([short_name(v.name), MARK[v.verdict], fmt_or_dash(v.ratio), ci, fmt_or_dash(v.corrected_ratio),
                     fmt_or_dash(v.p_value, ".1e"), f"{v.threshold:.0%}", v.note])
    return rows


HEADER = ["cell", "verdict", "ratio", "CI", "drift-corrected", "p (MWU)", "threshold", "note"]


def verdict_lines(verdicts, current_control=None, baseline_control=None, versions: list[str] = ()) -> list[str]:
    """The terminal verdict table; ``versions``: machine_profile.version_changes, one line each above it."""
    rows = verdict_rows(verdicts)
    widths = [max(len(r[i]) for r in rows + [HEADER]) for i in range(len(HEADER) - 1)]
    lines = [f"runtime changed: {line}" for line in versions]
    lines += ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths)) + "  note"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    counts = {k: sum(v.verdict == k for v in verdicts) for k in MARK}
    lines.append(", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no cells")
    lines += drift_lines(current_control, baseline_control)
    return lines


def verdict_markdown(verdicts, current_control=None, baseline_control=None, versions: list[str] = ()) -> str:
    rows = verdict_rows(verdicts)
    out = [f"- **runtime changed**: {line}" for line in versions] + ([""] if versions else [])
    out += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    counts = {k: sum(v.verdict == k for v in verdicts) for k in MARK}
    out += ["", ", ".join(f"**{n}** {k}" for k, n in counts.items() if n) or "no cells", ""]
    out += [f"- {line}" for line in drift_lines(current_control, baseline_control)]
    return "\n".join(out) + "\n"
