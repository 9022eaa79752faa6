"""Verdicts on what a cell costs besides its latency: compile time, first inference, the model's
memory, the compiled artifact's size and its numerical error against float64.

``METRICS`` are the names ``--fail-on`` takes (latency is judged in harness.compare.verdict)."""

from __future__ import annotations

METRICS = ("latency", "compile", "first-inference", "memory", "size", "accuracy")
DEFAULT_FAIL_ON = ("latency",)


class MetricNameError(ValueError):
    pass


def parse_fail_on(text: str | None) -> tuple[str, ...]:
    """'latency,memory' -> ('latency', 'memory'); None -> DEFAULT_FAIL_ON; 'all' -> every metric."""
    if text is None:
        return DEFAULT_FAIL_ON
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return METRICS
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise MetricNameError(
            f"--fail-on {text!r}: {'unknown ' + ', '.join(unknown) if unknown else 'empty'}; "
            f"use a comma list of {', '.join(METRICS)} (or all)"
        )
    return tuple(dict.fromkeys(names))
