"""Default CPU schedules for TVM Relax, no tuning: what makes ``tvm`` run parallel, vectorised loops.

TVM 0.27's CPU DLight rules cover GEMV and row reductions (softmax, layer norm) only; without a
schedule every matmul and convolution is a serial scalar loop nest. These rules fill the gap, in
the order ``ApplyDefaultSchedule`` tries them:

- ``TiledReduction``: a function whose heavy part is one reduction block (matmul, batch matmul,
  dense, conv2d, pooling). Register tile ``rows x lanes``: the innermost output axis is split into
  vector lanes; ``rows`` comes from an output axis the vector operand does not depend on (the
  matmul's M, the convolution's output channels), so each vector load feeds ``rows`` FMAs. The
  tile accumulates in a local buffer (registers after LLVM), the reduction loops run over it, the
  outer tile loops are fused and run in parallel, and the epilogue (bias, BN, ReLU...) is computed
  per tile from the accumulator.
- DLight's ``GEMV`` and ``Reduction`` (softmax, layer norm).
- ``ParallelFallback``: anything else (elementwise, layout changes, concatenations): producers
  inlined, every remaining block's spatial loops fused, parallel outside, vectorised inside when
  the innermost axis is contiguous.

Tile sizes are derived from the loop extents (divisors only: a tile with a tail predicate does not
vectorise) and the target's vector width, never searched: that is MetaSchedule's job
(``python -m harness tune``)."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir import dlight
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.analysis.common_analysis import collect_vars_used_in_prim_expr
from tvm.s_tir.dlight.base import get_extent
from tvm.s_tir.dlight.cpu.base import CPUScheduleRule
from tvm.target.codegen import llvm_get_vector_width

ACCUMULATORS = 16  # accumulator registers of the tile (16 ymm on x86-64; measured: 4x32 beat 4x16 on a matmul)
NATIVE_LANES = 8  # float32 lanes of one AVX2 register: tile rows are budgeted in these


def vector_lanes(target, dtype_bits: int = 32) -> int:
    bits = llvm_get_vector_width(target)
    return max((bits if bits > 0 else 128) // dtype_bits, 2)


def _vector_tiles(lanes: int) -> tuple[int, ...]:
    """Vector tile widths to try, widest first: two registers, one, then halves down to 4 floats."""
    return tuple(w for w in (lanes * 2, lanes, lanes // 2, lanes // 4) if w >= 4)


def _best_rows(extent: int, limit: int) -> int:
    """The largest divisor of ``extent`` not above ``limit`` (1 when there is none but 1)."""
    return max(d for d in range(1, min(extent, max(limit, 1)) + 1) if extent % d == 0)


def _divisor(extent: int, preferred: tuple[int, ...]) -> int:
    for factor in preferred:
        if factor <= extent and extent % factor == 0:
            return factor
    return 1


def _index_vars(region) -> list[set]:
    """Variables used in each dimension of a buffer region."""
    return [collect_vars_used_in_prim_expr(rng.min) for rng in region]


def _is_pad(sch, info) -> bool:
    try:
        return info.is_data_pad(sch)
    except Exception:  # noqa: BLE001 - analysis helpers raise on unusual blocks
        return False


def _inline_producers(sch, infos, keep):
    """compute_inline every injective block except data pads (a pad inlined into a convolution puts
    a condition in its innermost loop, which stops vectorisation) and ``keep``."""
    for info in infos:
        if info is keep or not info.is_injective() or _is_pad(sch, info):
            continue
        try:
            sch.compute_inline(info.block_rv)
        except Exception:  # noqa: BLE001 - not inlinable (e.g. an output): scheduled later
            continue


def _vectorize_innermost(sch, block, lanes: int) -> bool:
    """Vectorise the block's innermost loop (split to a vector tile that divides it); True if done."""
    loops = sch.get_loops(block)
    if not loops:
        return False
    inner = loops[-1]
    extent = get_extent(sch, inner)
    if not isinstance(extent, int) or extent < 2:
        return False
    factor = _divisor(extent, _vector_tiles(lanes))
    if factor < 2:
        return False
    if factor < extent:
        _, inner = sch.split(inner, factors=[None, factor])
    sch.vectorize(inner)
    return True


def _contiguous_innermost(sch, block) -> bool:
    """Whether the block's innermost loop walks the last dimension of what it writes."""
    stmt = sch.get(block)
    if not stmt.iter_vars or not stmt.writes:
        return False
    last = stmt.iter_vars[-1].var
    dims = _index_vars(stmt.writes[0].region)
    return bool(dims) and last in dims[-1] and all(last not in d for d in dims[:-1])


class GuardedRule(CPUScheduleRule):
    """A rule whose schedule primitives may refuse a function it did not foresee: the refusal
    (a ScheduleError) passes the function on to the next rule instead of failing the build.
    Each attempt starts from a fresh Schedule, so nothing half-scheduled is kept."""

    def apply(self, func, target, tunable):
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        try:
            sch = s_tir.Schedule(func)
            infos = normalize_prim_func(sch)
            return None if infos is None else self.schedule(sch, infos, target)
        except s_tir.schedule.ScheduleError:
            return None

    def schedule(self, sch, infos, target):
        """The schedule for a function in DLight's normal form (``infos``), or None to pass."""
        raise NotImplementedError


class TiledReduction(GuardedRule):
    """One reduction block (matmul, conv, pooling) plus injective producers and epilogue."""

    def schedule(self, sch, infos, target):
        reductions = [i for i in infos if not i.is_injective()]
        if len(reductions) != 1 or any(k not in "SR" for k in reductions[0].dom_kind()):
            return None
        main = reductions[0]
        if "S" not in main.dom_kind() or "R" not in main.dom_kind():
            return None
        _inline_producers(sch, infos[: infos.index(main)], keep=main)
        main_block = sch.get_sblock(main.name)
        lanes = vector_lanes(target)

        stmt = sch.get(main_block)
        spatial = [(it.var, it.loop_rv) for it in main.iters if it.kind == "S"]
        reduce_loops = [it.loop_rv for it in main.iters if it.kind == "R"]

        # vector axis: the last output axis, when every read that uses it uses it in its last dim only
        vec_var, vec_loop = spatial[-1]
        vec_extent = get_extent(sch, vec_loop)
        reads = [_index_vars(r.region) for r in stmt.reads]
        vec_reads = [dims for dims in reads if any(vec_var in d for d in dims)]
        contiguous = all(vec_var in dims[-1] and all(vec_var not in d for d in dims[:-1]) for dims in vec_reads)
        width = 1
        if contiguous and isinstance(vec_extent, int):
            width = _divisor(vec_extent, _vector_tiles(lanes))
        inputs = [r for r in stmt.reads if not any(r.source.same_as(w.source) for w in stmt.writes)]
        if width == 1 and len(inputs) <= 1:
            return None  # a row reduction (mean, norm statistics): DLight's Reduction does those better
        # row axis: an output axis the vector operand(s) do not use; its tile shares each vector load
        row, rows = None, 1
        if width > 1:
            candidates = [
                (get_extent(sch, lp), v, lp)
                for v, lp in spatial[:-1]
                if isinstance(get_extent(sch, lp), int) and all(all(v not in d for d in dims) for dims in vec_reads)
            ]
            for extent, var, loop in candidates:
                for w in _vector_tiles(lanes):
                    if vec_extent % w:
                        continue
                    r = _best_rows(extent, ACCUMULATORS // max(1, w // NATIVE_LANES))
                    if r * w > rows * width or (r * w == rows * width and w > width):
                        row, rows, width = (extent, var, loop), r, w

        local = sch.cache_write(main_block, 0, "local")
        # epilogue (bias, BN, ReLU...): folded into the tile's write-back from the accumulator
        for info in infos[infos.index(main) + 1 :]:
            try:
                sch.reverse_compute_inline(sch.get_sblock(info.name))
            except Exception:  # noqa: BLE001 - not an epilogue of this tile: left to its own loops below
                continue
        outer, inner = [], []
        for v, lp in spatial:
            if v is vec_var and width > 1:
                o, i = sch.split(lp, factors=[None, width])
                outer.append(o)
                vec_inner = i
            elif row is not None and v is row[1] and rows > 1:
                o, i = sch.split(lp, factors=[None, rows])
                outer.append(o)
                inner.append(i)
            else:
                outer.append(lp)
        if width > 1:
            inner.append(vec_inner)
        sch.reorder(*outer, *reduce_loops, *inner)
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        sch.parallel(fused)
        sch.reverse_compute_at(local, fused, preserve_unit_loops=True)
        if width > 1:
            sch.vectorize(sch.get_loops(main_block)[-1])  # before decompose: the update alone is no reduction
            if rows > 1:
                sch.unroll(sch.get_loops(main_block)[-2])
        init = sch.decompose_reduction(main_block, reduce_loops[0])
        _vectorize_innermost(sch, local, lanes)
        _schedule_rest(sch, exclude={sch.get(b).name_hint for b in (main_block, local, init)}, lanes=lanes)
        return sch


def _schedule_rest(sch, exclude, lanes) -> None:
    """Parallel outer / vectorised inner loops for every root-level block not yet scheduled."""
    root = sch.get_sblock("root") if _has_root(sch) else None
    blocks = sch.get_child_blocks(root) if root is not None else []
    for block in blocks:
        name = sch.get(block).name_hint
        if name in exclude:
            continue
        loops = sch.get_loops(block)
        if not loops:
            continue
        stmt = sch.get(block)
        kinds = ["S" if iv.iter_type == tirx.IterVar.DataPar else "R" for iv in stmt.iter_vars]
        n_spatial = len(kinds) - len("".join(kinds).lstrip("S")) if kinds else 0
        n_spatial = min(n_spatial, len(loops))
        if n_spatial == 0:
            continue
        if n_spatial == len(loops) and _contiguous_innermost(sch, block):
            vectorized = _vectorize_innermost(sch, block, lanes)
            loops = sch.get_loops(block)
            fusable = loops[: len(loops) - 1] if vectorized else loops
        else:
            fusable = loops[:n_spatial]
        if not fusable:
            continue
        fused = sch.fuse(*fusable) if len(fusable) > 1 else fusable[0]
        sch.parallel(fused)


def _has_root(sch) -> bool:
    try:
        sch.get_sblock("root")
        return True
    except Exception:  # noqa: BLE001
        return False


class ParallelFallback(GuardedRule):
    """Elementwise, layout and concatenation functions: inline what can be, parallelise the rest."""

    def schedule(self, sch, infos, target):
        _inline_producers(sch, infos[:-1], keep=None)
        _schedule_rest(sch, exclude=set(), lanes=vector_lanes(target))
        return sch


def default_schedule_rules():
    """In order: GEMV first (its test is specific), then tiles for matmul/conv/pooling, then row
    reductions (softmax, layer norm, means), then the fallback."""
    return (dlight.cpu.GEMV(), TiledReduction(), dlight.cpu.Reduction(), ParallelFallback())


def apply_default_schedules():
    """The module pass: every PrimFunc not already scheduled (by a tuning database or by hand)."""
    return dlight.ApplyDefaultSchedule(*default_schedule_rules())
