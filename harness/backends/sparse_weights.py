"""Which weights the sparse backends (``torch-sparse``, ``tvm-sparse``) run as sparse matrices,
and in which block-sparse form.

A linear/matmul weight with a constant value and at least ``SPARSE_MIN`` zeros is converted; any
other runs densely, and the backend's label says how many were converted (``dense`` when none:
a model without eligible weights, or a cell below the threshold, is a dense run, not an error).

``choose_block``: the largest R x 1 block (R along the outputs, the axis a kernel vectorises)
that stores no more than ``FILL_LIMIT`` times the nonzeros (a block-pruned weight has no
fill-in at its own block; an unstructured 90% weight in 4x1 blocks would store 13x its nonzeros)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.models.pruning import pad_to_blocks

SPARSE_MIN = 0.5  # fraction of zeros from which a weight runs sparse
FILL_LIMIT = 1.25  # stored elements / nonzeros a block shape may cost
BLOCK_ROWS = (16, 8, 4, 2)  # R x 1 blocks tried, largest first; else 1x1 (CSR)


def zero_fraction(w: np.ndarray) -> float:
    return float(1.0 - np.count_nonzero(w) / w.size) if w.size else 0.0


def eligible(w: np.ndarray) -> bool:
    return w.ndim == 2 and zero_fraction(w) >= SPARSE_MIN


def choose_block(matrix: np.ndarray) -> tuple[int, int]:
    """The BSR block for an (outputs, inputs) matrix (see the module docstring)."""
    nonzeros = np.count_nonzero(matrix)
    n, k = matrix.shape
    for r in BLOCK_ROWS:
        if r > n:
            continue
        stored = r * np.count_nonzero(pad_to_blocks(matrix != 0, (r, 1)).reshape(-1, r, k).any(axis=1))
        if stored <= FILL_LIMIT * max(nonzeros, 1):
            return (r, 1)
    return (1, 1)


@dataclass(frozen=True)
class Bsr:
    """An (outputs, inputs) matrix in block sparse rows, blocks stored (nnz blocks, C, R) so that a
    block's R outputs are contiguous (the vectorised axis); the shape is padded to whole blocks."""

    data: np.ndarray  # (blocks, C, R)
    indices: np.ndarray  # int32 (blocks,): block column of each block
    indptr: np.ndarray  # int32 (block rows + 1,)
    shape: tuple[int, int]  # the unpadded (outputs, inputs)
    block: tuple[int, int]  # (R, C)


def to_bsr(matrix: np.ndarray, block: tuple[int, int]) -> Bsr:
    import scipy.sparse

    bsr = scipy.sparse.bsr_matrix(pad_to_blocks(matrix, block), blocksize=block)
    bsr.sort_indices()
    data = np.ascontiguousarray(bsr.data.transpose(0, 2, 1)).astype(matrix.dtype)
    return Bsr(data, bsr.indices.astype(np.int32), bsr.indptr.astype(np.int32), matrix.shape, block)


def describe(converted: int, candidates: int, fmt: str, weights: str) -> str:
    """The label's sparse part: how many of the ``weights`` that could run sparse do, in ``fmt``."""
    if not converted:
        return f"dense: none of {candidates} {weights} has {SPARSE_MIN:.0%} zeros"
    return f"{fmt}: {converted}/{candidates} {weights} sparse (>= {SPARSE_MIN:.0%} zeros)"
