"""What ``--until-decided`` spent where (harness.compare.sequential.AdaptationLog), as terminal lines."""

from __future__ import annotations

from harness.compare.sequential import AdaptationLog
from harness.report.tables import MARK, short_name


def adaptation_lines(log: AdaptationLog) -> list[str]:
    """The totals, then one line per cell that got more processes or stayed undecided."""
    if log.note:
        return [f"--until-decided: {log.note}"]
    cells = len(log.first)
    lines = [
        f"--until-decided: budget {log.budget_s / 60:.1f} min, spent {log.spent_s / 60:.1f} min in {log.rounds} "
        f"round(s) of added processes; decided at the first look: {log.decided(log.first)} of {cells} cells, "
        f"after adaptation: {log.decided(log.final)} of {cells}"
    ]
    rows = [["cell", "first look", "now", "look", "processes", "added s", "undecided because"]]
    for key in log.first:
        if not log.added.get(key) and key not in log.why:
            continue
        rows.append(
            [
                short_name(str(key)),
                MARK.get(log.first[key], str(log.first[key])),
                MARK.get(log.final.get(key), str(log.final.get(key))),
                str(log.looks.get(key, 1)),
                f"{log.processes.get(key, 0) - log.added.get(key, 0)} -> {log.processes.get(key, 0)}",
                f"{log.seconds.get(key, 0.0):.0f}",
                log.why.get(key, ""),
            ]
        )
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    return lines
