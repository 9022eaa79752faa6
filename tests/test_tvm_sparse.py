"""tvm-sparse: the BSR x dense TIR kernel against numpy float64 on random block-sparse matrices
(hypothesis: shapes the block does not divide, densities from empty block rows to fully dense,
few and many rows of x), and the Relax rewrite on real graph shapes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

tvm = pytest.importorskip("tvm")

from tvm import relax  # noqa: E402

from harness.backends.sparse_weights import to_bsr  # noqa: E402
from harness.backends.tvm import pipeline, sparse, tvm_target  # noqa: E402
from harness.plan.targets import get_target  # noqa: E402
from tests.test_sparse import _block_sparse  # noqa: E402

TARGET = tvm_target(get_target("llvm"), 2)


def _run_kernel(x, w, block):
    m, k = x.shape
    bsr = to_bsr(w, block)
    kernel, (kp, mp) = sparse.bsr_matmul(m, w.shape[0], k, bsr)
    lib = tvm.compile(tvm.IRModule({"bsr": kernel.with_attr("global_symbol", "bsr")}), target=TARGET)
    xt = np.zeros((kp, mp), np.float32)
    xt[:k, :m] = x.T
    y = tvm.runtime.tensor(np.full((m, w.shape[0]), np.nan, np.float32))
    lib["bsr"](*[tvm.runtime.tensor(a) for a in (xt, *sparse.bsr_arrays(bsr))], y)
    return y.numpy()


@settings(max_examples=25, deadline=None)
@given(
    m=st.sampled_from([1, 3, 8, 13, 40]),
    n=st.integers(1, 50),
    k=st.integers(1, 40),
    block=st.sampled_from([(1, 1), (2, 1), (4, 1), (8, 1), (16, 1), (4, 2), (1, 3)]),
    density=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
)
def test_bsr_kernel_matches_numpy(m, n, k, block, density):
    w = _block_sparse(n, k, block, density, seed=n * 1000 + k)
    x = np.random.default_rng(m).standard_normal((m, k)).astype(np.float32)
    got = _run_kernel(x, w, block)
    np.testing.assert_allclose(got, x.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-4, atol=1e-4)


def test_bsr_kernel_with_empty_block_rows():
    w = _block_sparse(32, 24, (4, 1), 0.5, seed=1)
    w[4:12] = 0  # two empty block rows
    w[-4:] = 0  # and the last
    x = np.random.default_rng(0).standard_normal((9, 24)).astype(np.float32)
    np.testing.assert_allclose(_run_kernel(x, w, (4, 1)), x @ w.T, rtol=1e-4, atol=1e-4)


def _module(x_shape, make):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(x_shape, "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(make(x)))
        bb.emit_func_output(out)
    return bb.get()


def _build_sparse(mod):
    fused = pipeline.fuse(mod, TARGET, sparse=True)
    scheduled = pipeline.schedule(fused.mod, TARGET)
    return fused, relax.VirtualMachine(pipeline.build(scheduled.mod, TARGET), tvm.cpu())


@pytest.mark.parametrize("transposed", [False, True])
def test_rewrite_finds_linear_weights_directly_and_through_permute_dims(transposed):
    rng = np.random.default_rng(0)
    w = _block_sparse(40, 24, (8, 1), 0.2, seed=2)  # (outputs, inputs)
    if transposed:  # torch.export's linear: permute_dims(W) then matmul, before constant folding
        make = lambda x: relax.op.matmul(x, relax.op.permute_dims(relax.const(w)))  # noqa: E731
    else:
        make = lambda x: relax.op.matmul(x, relax.const(np.ascontiguousarray(w.T)))  # noqa: E731
    fused, vm = _build_sparse(_module((2, 5, 24), make))
    assert fused.sparse.converted == 1 and fused.sparse.blocks == {"8x1": 1}
    x = rng.standard_normal((2, 5, 24)).astype(np.float32)
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(x)).numpy(), x @ w.T, rtol=1e-4, atol=1e-4)


def test_rewrite_runs_one_by_one_convolutions_as_matmuls():
    rng = np.random.default_rng(0)
    w = _block_sparse(16, 8, (4, 1), 0.25, seed=3)[:, :, None, None]  # OIHW 1x1
    make = lambda x: relax.op.nn.conv2d(x, relax.const(w))  # noqa: E731
    fused, vm = _build_sparse(_module((1, 8, 5, 7), make))  # NCHW in, NHWC after the layout change
    assert fused.sparse.converted == 1
    x = rng.standard_normal((1, 8, 5, 7)).astype(np.float32)
    expected = np.einsum("oi,nihw->nohw", w[:, :, 0, 0].astype(np.float64), x)
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_weights_below_the_threshold_stay_dense():
    w = np.random.default_rng(0).standard_normal((24, 16)).astype(np.float32)
    w[:, :4] = 0  # 25% zeros
    fused, _ = _build_sparse(_module((4, 16), lambda x: relax.op.matmul(x, relax.const(w.T.copy()))))
    assert (fused.sparse.converted, fused.sparse.candidates) == (0, 1)
    assert not any(gv.name_hint.startswith(sparse.KERNEL) for gv, _ in fused.mod.functions_items())


def test_a_dense_model_on_tvm_sparse_runs_densely_and_says_so(tmp_path, monkeypatch):
    from harness.backends import get_backend
    from harness.models.user import build_from_factory

    monkeypatch.setenv("INFER_BENCH_CACHE_DIR", str(tmp_path))
    model = build_from_factory("tests.tiny_models:tiny_mlp")
    compiled = get_backend("tvm-sparse").compile(model, get_target("llvm"), 1, model.make_inputs(0))
    assert "dense: none of 2 matmul/1x1-conv weights" in compiled.label
    assert compiled.build_info()["sparse_weights"] == 0
    model.prune(0.9, "block:4x1")
    compiled = get_backend("tvm-sparse").compile(model, get_target("llvm"), 1, model.make_inputs(0))
    assert "BSR: 2/2 matmul/1x1-conv weights sparse" in compiled.label
    expected = model.reference(model.make_inputs(5))[0][0]
    np.testing.assert_allclose(compiled.run(model.make_inputs(5))[0], expected, rtol=1e-4, atol=1e-4)
