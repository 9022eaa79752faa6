"""``tvm-sparse``: matmuls with a constant sparse weight run as a block-sparse (BSR) x dense kernel.

``rewrite`` (a Relax rewrite, run after constant folding, so a transposed weight
``permute_dims(W)`` is already a constant; an unfolded one is seen through) finds

- ``matmul(x, W)`` with W a constant (inputs, outputs) or ``permute_dims`` of an (outputs, inputs)
  constant: torch Linear layers after ``torch.export``, ONNX MatMul/Gemm weights;
- 1x1 ``conv2d`` (stride 1, no padding, one group, NHWC/HWIO after the layout change): a matmul
  over the pixels,

whose weight has at least ``SPARSE_MIN`` zeros (harness.backends.sparse_weights), converts the
weight to BSR at compile time (scipy.sparse; block R x 1 chosen by ``choose_block``) and calls
``bsr_matmul``, a TIR kernel marked ``tirx.is_scheduled`` so that tuning and the default schedules
leave it alone. Everything else stays dense.

The kernel computes y (M, N) = x (M, K) W^T from xt = x^T (``pack_columns``, zero-padded to
whole tiles): in parallel over (group of block rows, tile of TM rows of x), a register tile
acc[R, TM] accumulates ``data[b, c, r] * xt[col, m0:m0+TM]`` over the block row's nonzero blocks,
vectorised over the TM rows of x (so 1x1 blocks, unstructured pruning, vectorise too), then is
written back into y. Both are opaque to fusion and marked scheduled. What it buys on whole models:
README "Sparsity".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.backends.sparse_weights import Bsr, choose_block, eligible, to_bsr

KERNEL = "bsr_matmul"
PACK = "pack_columns"
OPAQUE = 8  # relax OpPatternKind kOpaque: FuseOps fuses nothing into our kernels (their schedules stay)


def tile_rows(block_rows: int, m: int, lanes: int) -> int:
    """Rows of x per register tile: enough independent accumulator vectors (R x TM / lanes, 8 or
    more) to hide the FMA latency, the vector at least ``lanes`` wide, never more rows than M needs
    (1x1 blocks on AVX2: 64 rows, 8 accumulators; 16x1 blocks: 8 rows, 16 accumulators)."""
    tm = min(16 * lanes, max(lanes, 8 * lanes // block_rows))
    while tm > 1 and tm // 2 >= m:
        tm //= 2
    return tm


def bsr_matmul(m: int, n: int, k: int, bsr: Bsr, lanes: int = 8):
    """The TIR kernel for one weight, (xt (Kp, Mp), data, indices, indptr) -> y (M, N), and
    (Kp, Mp): x^T's shape zero-padded to whole blocks of C inputs and tiles of TM rows."""
    from tvm.script import tirx as T

    r, c = bsr.block
    tm = tile_rows(r, m, lanes)
    tiles = -(-m // tm)
    kp, mp, nb, blocks = -(-k // c) * c, tiles * tm, len(bsr.indptr) - 1, max(len(bsr.indices), 1)
    whole_rows = n % r == 0
    # a task runs `group` consecutive block rows: together they fill whole 64-byte lines of y
    # (1x1 blocks: 16 rows; each task alone would write one float per line, per row of x)
    group = max(1, 16 // r)
    groups = -(-nb // group)

    @T.prim_func
    def kernel(
        xt: T.Buffer((kp, mp), "float32"),
        data: T.Buffer((blocks, c, r), "float32"),
        indices: T.Buffer((blocks,), "int32"),
        indptr: T.Buffer((nb + 1,), "int32"),
        y: T.Buffer((m, n), "float32"),
    ):
        T.func_attr({"tir.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
        for task in T.parallel(groups * tiles):
            # "global" scope: a small constant-size buffer goes on the stack and into registers;
            # "local" would be a heap workspace that LLVM cannot keep in registers
            acc = T.decl_buffer((r, tm), "float32", scope="global")
            m0 = task % tiles * tm
            for gi in T.serial(group):
                i = task // tiles * group + gi
                if i < nb:
                    for rr in T.unroll(r):
                        for mm in T.vectorized(tm):
                            acc[rr, mm] = T.float32(0)
                    for b in range(indptr[i], indptr[i + 1]):
                        for cc in T.unroll(c):
                            for rr in T.unroll(r):
                                for mm in T.vectorized(tm):
                                    acc[rr, mm] = acc[rr, mm] + data[b, cc, rr] * xt[indices[b] * c + cc, m0 + mm]
                    for mm in T.unroll(tm):
                        if m0 + mm < m:
                            if whole_rows:
                                for rr in T.vectorized(r):
                                    y[m0 + mm, i * r + rr] = acc[rr, mm]
                            else:
                                for rr in T.serial(r):
                                    if i * r + rr < n:
                                        y[m0 + mm, i * r + rr] = acc[rr, mm]

    return kernel, (kp, mp)


def pack_columns(m: int, k: int, kp: int, mp: int):
    """The TIR function writing xt (Kp, Mp) = x^T, zero-padded, from x (M, K): in parallel over
    rows of xt, each read as vectorised strided gathers of a column of x (consecutive rows read
    the same cache lines). A scheduled function of its own: TVM's fusion would otherwise fuse the
    transpose into the producer's elementwise epilogue (bias + GELU) and leave neither vectorised
    (bert_base at 90%: 2.9 ms of 13.6 ms per layer in that one function)."""
    from tvm.script import tirx as T

    lanes = 8 if mp % 8 == 0 else 1

    # block form (s_tir): Relax's RewriteDataflowReshape inspects every call_tir function whose
    # input and output have as many elements, and accepts only block-form TIR
    @T.prim_func(s_tir=True)
    def pack(x: T.Buffer((m, k), "float32"), xt: T.Buffer((kp, mp), "float32")):
        T.func_attr({"tir.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
        for row in T.parallel(kp):
            for v in T.serial(mp // lanes):
                for lane in T.vectorized(lanes):
                    with T.sblock("pack"):
                        r = T.axis.spatial(kp, row)
                        c = T.axis.spatial(mp, v * lanes + lane)
                        # clamped indices: every load is in bounds, the padding is a select
                        xt[r, c] = T.if_then_else(r < k and c < m, x[T.min(c, m - 1), T.min(r, k - 1)], T.float32(0))

    return pack


def bsr_arrays(bsr: Bsr) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's constant operands (an all-zero weight keeps one zero block: no empty tensors)."""
    if len(bsr.indices):
        return bsr.data, bsr.indices, bsr.indptr
    r, c = bsr.block
    return np.zeros((1, c, r), np.float32), np.zeros(1, np.int32), bsr.indptr


@dataclass
class SparseSummary:
    converted: int = 0  # weights now run by the BSR kernel
    candidates: int = 0  # constant matmul / 1x1 convolution weights seen
    blocks: dict = field(default_factory=dict)  # block shape -> weights converted with it

    def to_dict(self) -> dict:
        return {"sparse_weights": self.converted, "sparse_candidates": self.candidates, "sparse_blocks": self.blocks}


def rewrite(mod, lanes: int = 8) -> tuple[object, SparseSummary]:
    """The module with every eligible matmul as a BSR kernel call, and what was converted;
    ``lanes``: float32 lanes of the target's vectors."""
    from tvm import relax
    from tvm.ir.expr import Constant

    summary = SparseSummary()

    @relax.expr_functor.mutator
    class SparseMatmuls(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            found = self._weight(call)
            if found is None:
                return call
            x, weight, pixels = found
            summary.candidates += 1
            if not eligible(weight):
                return call
            summary.converted += 1
            return self._emit_sparse(x, weight, pixels, call)

        def _constant(self, expr):
            """A constant array behind ``expr`` (through a bound variable), else None."""
            if isinstance(expr, relax.Var):
                bound = self.lookup_binding(expr)
                expr = bound if bound is not None else expr
            return expr.value.numpy() if isinstance(expr, Constant) else None

        def _weight(self, call):
            """(x, the (outputs, inputs) weight, whether x is NHWC pixels) for a candidate call."""
            name = getattr(call.op, "name", "")
            if name == "relax.matmul" and len(call.args) == 2:
                x, b = call.args
                if b.ty.ndim != 2 or b.ty.dtype != "float32":
                    return None
                w = self._constant(b)
                if w is not None:
                    return x, np.ascontiguousarray(w.T), False
                source = self.lookup_binding(b) if isinstance(b, relax.Var) else b
                if isinstance(source, relax.Call) and getattr(source.op, "name", "") == "relax.permute_dims":
                    w = self._constant(source.args[0])
                    if w is not None and w.ndim == 2:  # permute_dims(W) of a 2-D W is its transpose
                        return x, w, False
                return None
            if name == "relax.nn.conv2d":
                a = call.attrs
                one_by_one = (
                    str(a.data_layout) == "NHWC"
                    and str(a.kernel_layout) == "HWIO"
                    and int(a.groups) == 1
                    and all(int(v) == 1 for v in list(a.strides) + list(a.dilation))
                    and all(int(v) == 0 for v in a.padding)
                )
                w = self._constant(call.args[1]) if one_by_one else None
                if w is not None and w.shape[:2] == (1, 1):
                    return call.args[0], np.ascontiguousarray(w[0, 0].T), True
            return None

        def _emit_sparse(self, x, weight, pixels, call):
            out_shape = [int(d) for d in call.ty.shape]
            n, k = weight.shape
            m = int(np.prod(out_shape[:-1]))
            block = choose_block(weight)
            shape = f"{block[0]}x{block[1]}"
            summary.blocks[shape] = summary.blocks.get(shape, 0) + 1
            bsr = to_bsr(weight.astype(np.float32), block)
            kernel, (kp, mp) = bsr_matmul(m, n, k, bsr, lanes)
            gv = self.builder_.add_func(kernel.without_attr("global_symbol"), KERNEL)
            pack = self.builder_.add_func(pack_columns(m, k, kp, mp).without_attr("global_symbol"), PACK)
            emit = self.builder_.emit
            x2 = emit(relax.op.reshape(x, (m, k)))
            xt = emit(relax.call_tir(pack, [x2], relax.TensorType((kp, mp), "float32")))
            operands = [relax.const(a) for a in bsr_arrays(bsr)]
            y = emit(relax.call_tir(gv, [xt, *operands], relax.TensorType((m, n), "float32")))
            return relax.op.reshape(y, out_shape)

    rewriter = SparseMatmuls(mod)
    for gv, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gv, rewriter.visit_expr(func))
    return rewriter.builder_.get(), summary
