"""Weight pruning, applied before compilation (``Model.prune``: each model kind finds its own
weights), so that a backend that exploits zeros can win while dense backends run the same pruned
weights (the control: zeros alone buy nothing). FLOPs are reported dense.

A layer's weight is seen as an (outputs, inputs) matrix: a Linear weight as it is, an ONNX MatMul
weight (inputs, outputs) transposed, a convolution's (out channels, in channels x kernel). Modes,
a cell's ``pruning`` axis (``parse_pruning``; the cell id shows every mode but the default):

- ``unstructured`` (id ``sp90``): per layer, the smallest |w| are zeroed (magnitude pruning).
- ``block:RxC`` (id ``sp90-b16x1``): the matrix in blocks of R outputs x C inputs (the last blocks
  cut short where R or C does not divide it); the blocks with the smallest L2 norm are zeroed,
  floor(sparsity x blocks) of them. ``block:1x1`` is unstructured pruning.
- ``random`` / ``random:RxC`` (id ``sp90-rand``, ``sp90-rand16x1``): the weights are replaced by
  seeded normal values with the layer's own standard deviation, and a seeded random mask of
  elements (or RxC blocks) keeps 1 - sparsity of them: TVM's tutorial way to estimate what a
  sparsity would buy before pruning anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

DEFAULT_PRUNING = "unstructured"
RANDOM_SEED = 4242  # random-mode weights and masks: layer i uses RANDOM_SEED + i

_SPEC = re.compile(r"^(unstructured|block|random)(?::?(\d+)x(\d+))?$")


class PruningError(ValueError):
    pass


@dataclass(frozen=True)
class Pruning:
    mode: str = "unstructured"  # unstructured, block, random
    block: tuple[int, int] = (1, 1)  # (outputs, inputs) per block

    @property
    def spec(self) -> str:
        """The canonical text: unstructured, block:16x1, random, random:4x1."""
        if self.mode == "unstructured" or (self.mode == "random" and self.block == (1, 1)):
            return self.mode
        return f"{self.mode}:{self.block[0]}x{self.block[1]}"

    @property
    def id_part(self) -> str:
        """What the cell id adds after the sparsity: '' (unstructured), b16x1, rand, rand16x1."""
        if self.mode == "unstructured":
            return ""
        shape = "" if self.block == (1, 1) and self.mode == "random" else f"{self.block[0]}x{self.block[1]}"
        return f"b{shape}" if self.mode == "block" else f"rand{shape}"


def parse_pruning(text) -> Pruning:
    """``unstructured``, ``block:RxC`` (also ``blockRxC``), ``random`` or ``random:RxC``."""
    match = _SPEC.match(str(text).strip().lower())
    if not match:
        raise PruningError(f"pruning {text!r} is not unstructured, block:RxC (e.g. block:16x1), random or random:RxC")
    mode, rows, cols = match.groups()
    if mode == "unstructured" and rows:
        raise PruningError(f"pruning {text!r}: unstructured takes no block shape (use block:{rows}x{cols})")
    if mode == "block" and not rows:
        raise PruningError(f"pruning {text!r}: block needs a block shape, e.g. block:16x1")
    block = (int(rows), int(cols)) if rows else (1, 1)
    if min(block) < 1:
        raise PruningError(f"pruning {text!r}: block sides must be at least 1")
    return Pruning(mode, block)


@dataclass
class PruneReport:
    """What pruning did: the mode, and the measured fraction of zeros overall and per layer."""

    pruning: str = DEFAULT_PRUNING
    sparsity: float = 0.0  # asked
    measured: float = 0.0  # zeros / elements over all pruned layers
    layers: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"mode": self.pruning, "sparsity": self.sparsity, "measured": self.measured, "layers": self.layers}


def check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")


def prune_array(w: np.ndarray, sparsity: float) -> np.ndarray:
    """A copy of ``w`` with exactly floor(sparsity * size) smallest-magnitude entries zeroed."""
    check_sparsity(sparsity)
    k = int(np.floor(sparsity * w.size))
    out = np.array(w, copy=True)
    if k == 0:
        return out
    flat = out.reshape(-1)
    flat[np.argpartition(np.abs(flat), k - 1)[:k]] = 0
    return out


def pad_to_blocks(matrix: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """The matrix zero-padded (False-padded) to whole R x C blocks."""
    (n, k), (r, c) = matrix.shape, block
    padded = np.zeros((-(-n // r) * r, -(-k // c) * c), dtype=matrix.dtype)
    padded[:n, :k] = matrix
    return padded


def _block_grid(matrix: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """The matrix zero-padded to whole blocks, as (block rows, R, block cols, C)."""
    padded, (r, c) = pad_to_blocks(matrix, block), block
    return padded.reshape(padded.shape[0] // r, r, padded.shape[1] // c, c)


def _expand_mask(keep: np.ndarray, block: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """A per-block keep mask (block rows, block cols) as an element mask of ``shape``."""
    return np.repeat(np.repeat(keep, block[0], axis=0), block[1], axis=1)[: shape[0], : shape[1]]


def prune_matrix(matrix: np.ndarray, sparsity: float, pruning: Pruning, layer: int = 0) -> np.ndarray:
    """A pruned copy of an (outputs, inputs) matrix (see the module docstring for the modes)."""
    check_sparsity(sparsity)
    if pruning.mode == "unstructured":
        return prune_array(matrix, sparsity)
    grid = _block_grid(matrix, pruning.block)
    blocks = grid.shape[0] * grid.shape[2]
    k = int(np.floor(sparsity * blocks))
    if pruning.mode == "block":
        norms = np.sqrt(np.square(grid.astype(np.float64)).sum(axis=(1, 3))).reshape(-1)
        drop = np.argpartition(norms, k - 1)[:k] if k else np.array([], dtype=int)
        values = matrix
    else:
        rng = np.random.default_rng(RANDOM_SEED + layer)
        drop = rng.permutation(blocks)[:k]
        scale = float(np.std(matrix)) or 1.0
        values = (rng.standard_normal(matrix.shape) * scale).astype(matrix.dtype)
    keep = np.ones(blocks, dtype=bool)
    keep[drop] = False
    mask = _expand_mask(keep.reshape(grid.shape[0], grid.shape[2]), pruning.block, matrix.shape)
    return np.where(mask, values, np.zeros((), dtype=matrix.dtype))


def prune_weight(w: np.ndarray, sparsity: float, pruning: Pruning, layer: int = 0, transposed: bool = False):
    """``prune_matrix`` on a layer's weight: (outputs, ...) as is (Linear, convolutions: the trailing
    axes flattened), or (inputs, outputs) when ``transposed`` (an ONNX MatMul/Gemm weight)."""
    matrix = w.T if transposed else w.reshape(w.shape[0], -1)
    out = prune_matrix(matrix, sparsity, pruning, layer)
    return np.ascontiguousarray(out.T) if transposed else out.reshape(w.shape)


def prune_report(pruning: Pruning, sparsity: float, layers: dict[str, np.ndarray]) -> PruneReport:
    total = sum(a.size for a in layers.values())
    zeros = {name: float(a.size - np.count_nonzero(a)) for name, a in layers.items()}
    return PruneReport(
        pruning.spec,
        sparsity,
        round(sum(zeros.values()) / total, 6) if total else 0.0,
        {name: round(zeros[name] / a.size, 6) for name, a in layers.items()},
    )
