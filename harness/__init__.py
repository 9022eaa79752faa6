"""infer-bench: a pytest-based benchmark and regression harness for deep-learning inference.

Data flows one way, one folder per step:

    plan/ (matrix -> cells, skip reasons) -> models/ -> backends/ -> run/ (worker: compile, parity,
    timing; launcher and interleaved schedule in the parent) -> compare/ (statistics, verdicts)
    -> store/ (saved results, baselines) -> report/ (tables, Markdown, HTML, thread scaling)

with machine/ (threads, profile, peak, drift, load) beside it, and plugin/ wiring it into pytest
and pytest-benchmark. The library works without pytest (``python -m harness``).

This package must stay import-light: worker processes import it *before* any runtime so that
thread settings in the environment take effect. ``Matrix``, ``Cell`` and ``ModelFile`` are re-exported lazily.
"""

from pathlib import Path

__version__ = "0.1.0"
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # where worker processes start (harness importable)


def __getattr__(name: str):
    if name in ("Matrix", "Cell", "ModelFile"):
        from harness.models import user
        from harness.plan import cell, matrix

        return {"Matrix": matrix.Matrix, "Cell": cell.Cell, "ModelFile": user.ModelFile}[name]
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
