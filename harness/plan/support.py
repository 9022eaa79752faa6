"""Which cells can run here, and which command-line axis values are valid, decided in the parent
without importing any runtime (collection must stay fast, and a missing runtime is a skip with its
reason, never an import error)."""

from __future__ import annotations

import importlib.util

from harness.backends import get_backend
from harness.models import is_batchable, model_kind
from harness.plan.cell import Cell
from harness.plan.matrix import normalize_axis
from harness.plan.targets import get_target


def unsupported_reason(cell: Cell) -> str | None:
    """Why a cell cannot run here, or None."""
    backend = get_backend(cell.backend)
    if backend.module and importlib.util.find_spec(backend.module) is None:
        return f"backend {cell.backend}: package {backend.module!r} is not installed"
    reason = backend.unsupported_reason(model_kind(cell.model, cell.model_options), cell.target)
    model_reason = getattr(backend, "unsupported_model_reason", None)  # optional: a backend for some models only
    if reason is None and model_reason is not None:
        reason = model_reason(cell.model, cell.model_options)
    if reason:
        return reason
    if cell.batch is not None and not is_batchable(cell.model, cell.model_options):
        return f"model {cell.model} has its batch size fixed by its graph; batch {cell.batch} cannot be applied"
    return None


def onnx_importers(backends) -> set[str]:
    """The ONNX importers (``Backend.onnx_importer``) the named backends read graphs with, for the
    ones whose runtime is installed (no imports)."""
    found = set()
    for name in backends:
        backend = get_backend(name)
        if backend.onnx_importer and not (backend.module and importlib.util.find_spec(backend.module) is None):
            found.add(backend.onnx_importer)
    return found


def check_axis_overrides(axes: dict[str, list[str]], user_model: bool = False) -> None:
    """Raise (MatrixError, UnknownBackendError, UnknownTargetError, UnknownModelError) on the first
    bad value of a command-line axis override; model names are not checked for a user's model."""
    for axis, values in axes.items():
        normalize_axis(axis, values)
    for name in axes.get("backends", []):
        get_backend(name)
    for name in axes.get("targets", []):
        get_target(name)
    if not user_model:
        for name in axes.get("models", []):
            model_kind(name)
