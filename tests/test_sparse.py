"""The sparse path: pruning modes, the BSR form and kernel (against a dense numpy reference on
hypothesis-drawn shapes not divisible by the block, empty block rows, fully dense), the Relax
rewrite (through permute_dims and 1x1 convolutions; below the threshold nothing changes) and
torch's CSR linear layers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import Matrix
from harness.backends.sparse_weights import SPARSE_MIN, choose_block, eligible, to_bsr
from harness.models.pruning import PruningError, parse_pruning, prune_matrix, prune_weight
from harness.plan.cell import Cell
from harness.plan.matrix import MatrixError

BLOCKS = st.sampled_from([(1, 1), (2, 1), (4, 1), (8, 1), (16, 1), (1, 2), (4, 3)])


# -- pruning modes -------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), BLOCKS, st.floats(0, 0.99))
def test_block_pruning_zeroes_whole_blocks_of_least_norm(n, k, block, sparsity):
    rng = np.random.default_rng(n * 100 + k)
    w = rng.standard_normal((n, k)).astype(np.float32)
    out = prune_matrix(w, sparsity, parse_pruning(f"block:{block[0]}x{block[1]}"))
    r, c = block
    rows, cols = -(-n // r), -(-k // c)
    norms, zero = np.zeros((rows, cols)), np.zeros((rows, cols), dtype=bool)
    for i in range(rows):
        for j in range(cols):
            tile = out[i * r : (i + 1) * r, j * c : (j + 1) * c]
            source = w[i * r : (i + 1) * r, j * c : (j + 1) * c]
            zero[i, j] = not tile.any()
            norms[i, j] = np.linalg.norm(source)
            if tile.any():  # a kept block is kept whole, with its own values
                np.testing.assert_array_equal(tile, source)
    assert zero.sum() == int(np.floor(sparsity * rows * cols))
    if zero.any() and (~zero).any():
        assert norms[zero].max() <= norms[~zero].min() + 1e-6


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), BLOCKS, st.floats(0, 0.99))
def test_random_pruning_is_seeded_at_the_asked_density(n, k, block, sparsity):
    w = np.ones((n, k), np.float32)
    mode = parse_pruning(f"random:{block[0]}x{block[1]}")
    first, again = prune_matrix(w, sparsity, mode, layer=3), prune_matrix(w, sparsity, mode, layer=3)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[first != 0], w[first != 0]) or not first.any()  # new values, not w's
    blocks = -(-n // block[0]) * -(-k // block[1])
    kept = -(-n // block[0]) * -(-k // block[1]) - int(np.floor(sparsity * blocks))
    assert np.count_nonzero(first) <= kept * block[0] * block[1]


def test_onnx_matmul_weights_are_pruned_in_output_blocks():
    w = np.arange(1, 33, dtype=np.float32).reshape(4, 8)  # (inputs, outputs) as an ONNX MatMul holds it
    out = prune_weight(w, 0.5, parse_pruning("block:4x1"), transposed=True)
    # 4x1 blocks run along the outputs: in the transposed storage, along a row
    for j in range(4):
        for col in range(0, 8, 4):
            assert out[j, col : col + 4].all() or not out[j, col : col + 4].any()


@pytest.mark.parametrize(
    "text,spec,part",
    [
        ("unstructured", "unstructured", ""),
        ("block:16x1", "block:16x1", "b16x1"),
        ("BLOCK4x1", "block:4x1", "b4x1"),
        ("random", "random", "rand"),
        ("random:16x1", "random:16x1", "rand16x1"),
    ],
)
def test_pruning_specs_and_their_id_parts(text, spec, part):
    assert parse_pruning(text).spec == spec
    assert parse_pruning(text).id_part == part


@pytest.mark.parametrize("text", ["block", "unstructured:4x1", "block:0x1", "magnitude", "block:16"])
def test_bad_pruning_specs_say_what_is_accepted(text):
    with pytest.raises(PruningError, match="block:RxC|block shape|at least 1|takes no block"):
        parse_pruning(text)


def test_pruning_axis_ids_and_dense_cells():
    m = Matrix(models=["mlp"], backends=["ort"], sparsity=[0, 0.9], pruning=["unstructured", "block:16x1", "random"])
    assert [c.id for c in m.expand()] == [
        "mlp-ort-llvm-sp0-t1",  # one dense cell: sparsity 0 has no pruning mode
        "mlp-ort-llvm-sp90-t1",  # the default mode leaves the id as it was
        "mlp-ort-llvm-sp90-b16x1-t1",
        "mlp-ort-llvm-sp90-rand-t1",
    ]
    assert Cell("mlp", "ort", sparsity=0.9, threads="2").id == "mlp-ort-llvm-sp90-t2"
    with pytest.raises(MatrixError, match="axis 'pruning'"):
        Matrix(models=["mlp"], backends=["ort"], pruning=["blocky"])


@pytest.mark.parametrize("name,mode", [("mlp", "block:16x1"), ("squeezenet", "block:4x1"), ("mlp", "random")])
def test_model_prune_reports_per_layer_sparsity(name, mode):
    from harness.models import build_model

    report = build_model(name).prune(0.9, mode)
    assert report.pruning == mode and report.layers
    assert report.measured == pytest.approx(0.9, abs=0.01)
    assert all(0.85 <= s <= 0.95 for s in report.layers.values()), report.layers


# -- BSR form ------------------------------------------------------------------------------------
def _block_sparse(n, k, block, density, seed):
    rng = np.random.default_rng(seed)
    r, c = block
    keep = rng.random((-(-n // r), -(-k // c))) < density
    mask = np.repeat(np.repeat(keep, r, 0), c, 1)[:n, :k]
    return np.where(mask, rng.standard_normal((n, k)), 0).astype(np.float32)


@pytest.mark.parametrize("block", [(16, 1), (8, 1), (4, 1)])
def test_choose_block_finds_the_pruned_block_and_falls_back_to_csr(block):
    w = prune_matrix(
        np.random.default_rng(0).standard_normal((64, 48)).astype(np.float32), 0.9, parse_pruning(f"block:{block[0]}x1")
    )
    assert choose_block(w)[0] >= block[0]
    unstructured = prune_matrix(
        np.random.default_rng(1).standard_normal((64, 48)).astype(np.float32), 0.9, parse_pruning("unstructured")
    )
    assert choose_block(unstructured) == (1, 1)


def test_bsr_round_trip_and_threshold():
    w = _block_sparse(13, 7, (4, 1), 0.3, 0)
    b = to_bsr(w, (4, 1))
    dense = np.zeros((16, 7), np.float32)
    for i in range(len(b.indptr) - 1):
        for j in range(b.indptr[i], b.indptr[i + 1]):
            dense[i * 4 : i * 4 + 4, b.indices[j]] = b.data[j, 0]
    np.testing.assert_array_equal(dense[:13], w)
    dense_w = np.arange(1, 129, dtype=np.float32).reshape(16, 8)
    assert eligible(prune_matrix(dense_w, SPARSE_MIN, parse_pruning("unstructured")))
    assert not eligible(prune_matrix(dense_w, SPARSE_MIN - 0.01, parse_pruning("unstructured")))


def test_torch_sparse_converts_sparse_linears_and_matches_dense():
    import torch

    from harness.backends.torch_sparse import sparsify_linears

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    with torch.no_grad():
        net[0].weight[torch.rand(32, 16) < 0.8] = 0
    sparse_net, converted, linears = sparsify_linears(net)
    assert (converted, linears) == (1, 2)
    assert net[0].weight.layout == torch.strided  # the model's own module is untouched
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(sparse_net(x), net(x), rtol=1e-5, atol=1e-5)
