"""Unstructured magnitude pruning: zero the smallest |w| of every Conv/Linear/MatMul weight so
each layer reaches the cell's sparsity. Applied before compilation (``Model.prune``: each model
kind finds its own weights), so a backend that exploits zeros can win; dense backends run the same
FLOPs (FLOPs are reported dense)."""

from __future__ import annotations

import numpy as np


def prune_array(w: np.ndarray, sparsity: float) -> np.ndarray:
    """A copy of ``w`` with exactly floor(sparsity * size) smallest-magnitude entries zeroed."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    k = int(np.floor(sparsity * w.size))
    out = np.array(w, copy=True)
    if k == 0:
        return out
    flat = out.reshape(-1)
    flat[np.argpartition(np.abs(flat), k - 1)[:k]] = 0
    return out


def measured_sparsity(arrays: list[np.ndarray]) -> float:
    total = sum(a.size for a in arrays)
    return float(sum(a.size - np.count_nonzero(a) for a in arrays) / total) if total else 0.0
