"""Unstructured magnitude pruning: zero the smallest |w| of every Conv/Linear/MatMul weight so
each layer reaches the cell's sparsity. Applied before compilation, so a backend that exploits
zeros can win; dense backends run the same FLOPs (FLOPs are reported dense)."""

from __future__ import annotations

import numpy as np

from .models.base import Model


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


def apply_sparsity(model: Model, sparsity: float) -> float:
    """Prune ``model`` in place; returns the measured fraction of zeros over pruned weights."""
    if sparsity == 0:
        return 0.0
    if model.kind == "torch":
        import torch

        pruned = []
        with torch.no_grad():
            for mod in model.torch_module().modules():
                if isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
                    w = prune_array(mod.weight.detach().numpy(), sparsity)
                    mod.weight.copy_(torch.from_numpy(w))
                    pruned.append(w)
        model._onnx_cache = None  # exported graph must carry the pruned weights
        return measured_sparsity(pruned)
    from onnx import numpy_helper

    from .models.onnx_graph import weight_initializers

    graph = model.onnx_model()
    names = set(weight_initializers(graph))
    pruned = []
    for init in graph.graph.initializer:
        if init.name in names:
            w = prune_array(numpy_helper.to_array(init), sparsity)
            init.CopyFrom(numpy_helper.from_array(w, init.name))
            pruned.append(w)
    return measured_sparsity(pruned)
