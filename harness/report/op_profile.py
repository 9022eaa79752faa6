"""One cell's per-operator diff (harness.compare.op_profile ``op_diff``), shown where its verdict is
a regression and both sides have profiles: terminal lines, a Markdown table and an HTML fragment
with the same title, rows and notes. The rows are the ``SHOWN_OPS`` op types that added the most
time per inference (a line says how many more got slower and by how much).

The Markdown and HTML forms take the report's escaping function (``markdown_text``,
``html_text``), through which every value from the profiles passes (op types and node names come
from the model's graph: a node name is any text), as ``profile_headline`` does; this module imports
neither report, which call it."""

from __future__ import annotations

from collections.abc import Callable

from harness.compare.op_profile import OpChange, OpDiff

SHOWN_OPS = 5  # op types shown per diff, the largest contributors to the slowdown first
OP_DIFF_HEADER = ["op type", "baseline us", "current us", "ratio", "share of the slowdown", "nodes"]


def op_diff_title(diff: OpDiff, cell: str | None = None) -> str:
    """E.g. ``per-op diff of bert_tiny-ort (onnxruntime session profiler, 10 runs): 512.3 -> 731.0
    us per inference (+43%)``."""
    base, now = diff.baseline_total_us, diff.current_total_us
    change = f" ({now / base - 1:+.0%})" if base > 0 else ""
    runs = diff.current.runs if diff.current.runs == diff.baseline.runs else f"{diff.baseline.runs}/{diff.current.runs}"
    where = f" of {cell}" if cell else ""
    return f"per-op diff{where} ({diff.current.source}, {runs} runs): {base:.1f} -> {now:.1f} us per inference{change}"


def _ratio(c: OpChange) -> str:
    ratio = "" if c.ratio is None else f"{c.ratio:.2f}x"
    if c.status == "both":
        return ratio or "-"
    return f"{ratio} {c.status}".strip()


def op_diff_rows(diff: OpDiff, shown: int = SHOWN_OPS) -> list[list[str]]:
    """The ``shown`` op types that got slower, the largest contributor first, as table cells."""
    return [
        [
            c.op_type,
            "-" if c.baseline_us is None else f"{c.baseline_us:.1f}",
            "-" if c.current_us is None else f"{c.current_us:.1f}",
            _ratio(c),
            "-" if c.share_of_slowdown is None else f"{c.share_of_slowdown:.0%}",
            ", ".join(name for name, _ in c.nodes) or "-",
        ]
        for c in diff.slower()[:shown]
    ]


def op_diff_notes(diff: OpDiff, shown: int = SHOWN_OPS) -> list[str]:
    """What the rows leave out (more op types that got slower, or none did) and the diff's notes."""
    slower = diff.slower()
    notes = []
    if not slower:
        notes.append("no op type got slower in the profiles")
    elif len(slower) > shown:
        rest = slower[shown:]
        notes.append(f"{len(rest)} more op types got slower, by {sum(c.change_us for c in rest):.1f} us in all")
    return notes + list(diff.notes)


def op_diff_lines(diff: OpDiff, cell: str | None = None, shown: int = SHOWN_OPS) -> list[str]:
    """The diff for the terminal: the title, an aligned table, the notes (names are one line
    each already: harness.compare.op_profile cleans them)."""
    rows = op_diff_rows(diff, shown)
    lines = [op_diff_title(diff, cell)]
    if rows:
        widths = [max(len(r[i]) for r in rows + [OP_DIFF_HEADER]) for i in range(len(OP_DIFF_HEADER) - 1)]
        lines += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in [OP_DIFF_HEADER] + rows
        ]
    return lines + [f"  {note}" for note in op_diff_notes(diff, shown)]


def op_diff_markdown(
    diff: OpDiff, text: Callable[[object], str], cell: str | None = None, shown: int = SHOWN_OPS
) -> str:
    """The diff as Markdown, every value through ``text`` (the report's ``markdown_text``)."""
    rows = op_diff_rows(diff, shown)
    out = [f"**{text(op_diff_title(diff, cell))}**", ""]
    if rows:
        out += ["| " + " | ".join(OP_DIFF_HEADER) + " |", "|---|" + "---:|" * 4 + "---|"]
        out += ["| " + " | ".join(text(c) for c in r) + " |" for r in rows]
        out.append("")
    out += [f"- {text(note)}" for note in op_diff_notes(diff, shown)]
    return "\n".join(out) + "\n"


def op_diff_html(diff: OpDiff, text: Callable[[object], str], cell: str | None = None, shown: int = SHOWN_OPS) -> str:
    """The diff as an HTML fragment (a title, a table, the notes), every value through ``text``
    (the report's ``html_text``)."""
    rows = op_diff_rows(diff, shown)
    head = "".join(f"<th>{h}</th>" for h in OP_DIFF_HEADER)
    body = "".join("<tr>" + "".join(f"<td>{text(c)}</td>" for c in r) + "</tr>" for r in rows)
    table = f"<table class='op-diff'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if rows else ""
    notes = "".join(f"<li>{text(note)}</li>" for note in op_diff_notes(diff, shown))
    return f"<div class='op-diff'><p><b>{text(op_diff_title(diff, cell))}</b></p>{table}" + (
        f"<ul>{notes}</ul></div>" if notes else "</div>"
    )
