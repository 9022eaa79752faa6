"""The Relax build the ``tvm`` backend ships, in the steps both the build and tuning must share.

1. ``fuse``: NHWC/HWIO convolutions (the output channel becomes the contiguous, vectorised axis;
   NCHW's innermost axis is the image width, 13 or 55 in SqueezeNet, which no vector tile divides),
   constant folding, for ``tvm-sparse`` the BSR rewrite of sparse matmuls (``sparse.py``), then
   TVM's CPU legalize + fusion passes (``cpu_generic``: LegalizeOps, FoldConstant, FuseOps,
   FuseTIR). Tuning extracts its tasks from this module, so a database's workloads match the build's.
2. ``schedule``: the functions a MetaSchedule database has records for take them; every other one
   gets the default CPU schedules (``schedules.py``). Coverage = functions from the database / all.
3. ``build``: TVM's dataflow lowering and finalisation, then codegen.

``tvm-untuned`` skips 1's layout change and 2 entirely: TVM's ``default_build`` pipeline, the naive
serial loop nests (the floor a schedule is measured against).

A GPU target takes none of these: ``build_for_gpu`` is TVM's own GPU build."""

from __future__ import annotations

from dataclasses import dataclass

CONV_LAYOUT = {"relax.nn.conv2d": ["NHWC", "HWIO"]}


@dataclass(frozen=True)
class Fused:
    mod: object  # its PrimFuncs are the tasks tuning extracts
    layout: str  # the convolution layout used
    sparse: object = None  # harness.backends.tvm.sparse.SparseSummary where the sparse rewrite ran


def fuse(mod, target, sparse: bool = False) -> Fused:
    """Layout conversion, legalisation and operator fusion. A graph ``ConvertLayout`` cannot
    convert (it fails on some ops, e.g. 5-D tensors in ResNet-50's ONNX graph) keeps NCHW, and
    says so. ``sparse``: after constant folding, matmuls with sparse constant weights become BSR
    kernel calls (``tvm-sparse``, harness.backends.tvm.sparse)."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    from harness.backends.tvm.schedules import vector_lanes
    from harness.backends.tvm.sparse import rewrite as sparse_rewrite

    layout, summary = "NHWC", None
    with target:
        try:
            mod = relax.transform.ConvertLayout(CONV_LAYOUT)(mod)
        except RuntimeError as exc:  # tvm.error.InternalError and its kin
            layout = f"NCHW (ConvertLayout failed: {str(exc).strip().splitlines()[-1][:120]})"
        mod = relax.transform.FoldConstant()(mod)
        if sparse:
            mod, summary = sparse_rewrite(mod, vector_lanes(target))
        passes = cpu.library_dispatch_passes(target) + cpu.legalize_passes(target)
        return Fused(tvm.transform.Sequential(passes)(mod), layout, summary)


@dataclass(frozen=True)
class Scheduled:
    mod: object
    functions: int  # PrimFuncs in the fused module that needed a schedule
    from_database: int  # of which scheduled by the database

    @property
    def coverage(self) -> float | None:
        return self.from_database / self.functions if self.functions else None


def _scheduled(func) -> bool:
    return bool(func.attrs and func.attrs.get("tirx.is_scheduled", False))


def schedule(fused, target, database=None) -> Scheduled:
    """Database records first (when a database is given), default schedules for the rest."""
    from tvm import relax, tirx

    from harness.backends.tvm.schedules import apply_default_schedules

    # functions that come scheduled (the sparse kernels) need no schedule and are not counted
    open_before = [gv for gv, f in fused.functions_items() if isinstance(f, tirx.PrimFunc) and not _scheduled(f)]
    mod = fused
    with target:
        if database is not None:
            with database:
                mod = relax.transform.MetaScheduleApplyDatabase()(mod)
        # the pass marks what it applied (tirx.is_scheduled): count only what it changed
        from_database = sum(1 for gv in open_before if _scheduled(mod[gv.name_hint]))
        mod = apply_default_schedules()(mod)
    return Scheduled(mod, len(open_before), from_database)


def build(scheduled_mod, target):
    """Lower the scheduled module to an executable (no further scheduling passes)."""
    import tvm
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    @tvm.transform.module_pass(opt_level=0)
    def lower(mod, _ctx):
        with target:
            return tvm.transform.Sequential(cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target))(mod)

    return tvm.compile(scheduled_mod, target=target, relax_pipeline=lower)


def gpu_target(cuda: dict | object):
    """A CUDA target (``Target.from_device``'s, or its attributes: ``{"kind": "cuda", "arch":
    "sm_90", ...}``) with the generic x86-64 host its launch code is compiled for."""
    import tvm

    from harness.backends.tvm.frontend import tvm_target
    from harness.plan.targets import get_target

    return tvm.target.Target(cuda, host=tvm_target(get_target("llvm-generic"), 1))


def build_for_gpu(mod, target):
    """``relax.build``'s default pipeline for a GPU target: legalize, fuse, the DLight GPU rules
    (Matmul, GEMV, Reduction, GeneralReduction, Fallback); no CUDA graphs
    (``relax.backend.use_cuda_graph`` unset). Needs no GPU: the executable carries its kernels as
    CUDA source, which TVM's CUDA runtime compiles (NVRTC, or nvcc) when a VirtualMachine loads it."""
    from tvm import relax

    return relax.build(mod, target=target, relax_pipeline="default")
