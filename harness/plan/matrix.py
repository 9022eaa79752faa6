"""Matrix declaration and expansion.

A suite declares its axes as data; ``Matrix.expand`` yields one ``MatrixCell`` per combination,
each with its pytest id, its marks and, where the backend cannot run it, the reason it is skipped
(skipped cells are kept so that they show up as skips, never silently dropped).

Command-line options (``--models``, ``--backends``, ``--targets``, ``--sparsity``, ``--threads``,
``--batch``) replace an axis for one run; ``Matrix.smoke`` names the subset marked ``smoke``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from harness.machine.threads import normalize_thread_spec
from harness.plan.cell import Cell

AXES = ("models", "backends", "targets", "sparsity", "threads", "batch")


class MatrixError(ValueError):
    pass


def _parse_sparsity(value) -> float:
    try:
        s = float(str(value).strip().rstrip("%")) / (100.0 if str(value).strip().endswith("%") else 1.0)
    except ValueError:
        raise MatrixError(f"sparsity {value!r} is not a number in [0, 1) (e.g. 0.9 or 90%)") from None
    if not 0.0 <= s < 1.0:
        raise MatrixError(f"sparsity {value!r} must be in [0, 1)")
    return s


def _parse_batch(value) -> int | None:
    if value is None or str(value).strip().lower() in ("", "none", "default"):
        return None
    try:
        b = int(value)
    except ValueError:
        raise MatrixError(f"batch {value!r} is not a positive integer") from None
    if b < 1:
        raise MatrixError(f"batch {value!r} must be at least 1")
    return b


NORMALIZE = {
    "models": lambda v: str(v).strip(),
    "backends": lambda v: str(v).strip(),
    "targets": lambda v: str(v).strip(),
    "sparsity": _parse_sparsity,
    "threads": lambda v: normalize_thread_spec(v),
    "batch": _parse_batch,
}


def normalize_axis(axis: str, values) -> tuple:
    try:
        out = tuple(dict.fromkeys(NORMALIZE[axis](v) for v in values))
    except ValueError as exc:
        raise MatrixError(f"axis {axis!r}: {exc}") from None
    if not out:
        raise MatrixError(f"axis {axis!r} is empty")
    if axis == "models":
        for v in out:
            if not v or "-" in v:  # '-' separates the parts of a cell id
                raise MatrixError(f"axis 'models': {v!r} is not a valid name (no empty names, no '-' in model names)")
    return out


def parse_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


@dataclass(frozen=True)
class MatrixCell:
    cell: Cell
    smoke: bool
    skip_reason: str | None = None

    @property
    def id(self) -> str:
        return self.cell.id


@dataclass(frozen=True)
class Matrix:
    models: tuple
    backends: tuple
    targets: tuple = ("llvm",)
    sparsity: tuple = (0.0,)
    threads: tuple = ("1",)
    batch: tuple = (None,)
    smoke: dict = field(default_factory=dict)  # axis -> subset; cells inside all subsets are smoke

    def __post_init__(self):
        for axis in AXES:
            object.__setattr__(self, axis, normalize_axis(axis, getattr(self, axis)))
        unknown = set(self.smoke) - set(AXES)
        if unknown:
            raise MatrixError(f"smoke subset names unknown axes {sorted(unknown)}; axes are {', '.join(AXES)}")
        object.__setattr__(self, "smoke", {a: normalize_axis(a, v) for a, v in self.smoke.items()})

    def override(self, **axes) -> Matrix:
        """Replace axes (values None are ignored). An overridden axis no longer limits smoke."""
        given = {a: v for a, v in axes.items() if v is not None}
        unknown = set(given) - set(AXES)
        if unknown:
            raise MatrixError(f"unknown axes {sorted(unknown)}")
        smoke = {a: v for a, v in self.smoke.items() if a not in given}
        return replace(self, **given, smoke=smoke)

    def expand(self, unsupported=None, model_options: dict | None = None) -> list[MatrixCell]:
        """All combinations in axis order. ``unsupported(cell) -> reason | None`` marks skips."""
        cells = []
        for model, backend, target, sparsity, threads, batch in itertools.product(
            self.models, self.backends, self.targets, self.sparsity, self.threads, self.batch
        ):
            values = dict(
                models=model, backends=backend, targets=target, sparsity=sparsity, threads=threads, batch=batch
            )
            cell = Cell(model, backend, target, sparsity, threads, batch, dict((model_options or {}).get(model, {})))
            smoke = all(values[a] in subset for a, subset in self.smoke.items())
            reason = unsupported(cell) if unsupported else None
            cells.append(MatrixCell(cell, smoke, reason))
        ids = [c.id for c in cells]
        if len(set(ids)) != len(ids):
            raise MatrixError("matrix expands to duplicate cell ids")
        return cells
