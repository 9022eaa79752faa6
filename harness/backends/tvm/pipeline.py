"""The Relax build the ``tvm`` backend ships, in the steps both the build and tuning must share.

1. ``fuse``: NHWC/HWIO convolutions (the output channel becomes the contiguous, vectorised axis;
   NCHW's innermost axis is the image width, 13 or 55 in SqueezeNet, which no vector tile divides),
   then TVM's CPU legalize + fusion passes (``cpu_generic``: LegalizeOps, FoldConstant, FuseOps,
   FuseTIR). Tuning extracts its tasks from this module, so a database's workloads match the build's.
2. ``schedule``: the functions a MetaSchedule database has records for take them; every other one
   gets the default CPU schedules (``schedules.py``). Coverage = functions from the database / all.
3. ``build``: TVM's dataflow lowering and finalisation, then codegen.

``tvm-untuned`` skips 1's layout change and 2 entirely: TVM's ``default_build`` pipeline, the naive
serial loop nests (the floor a schedule is measured against)."""

from __future__ import annotations

from dataclasses import dataclass

CONV_LAYOUT = {"relax.nn.conv2d": ["NHWC", "HWIO"]}


def fuse(mod, target) -> tuple[object, str]:
    """Layout conversion, legalisation and operator fusion: (the module whose PrimFuncs are tasks,
    the convolution layout used). A graph ``ConvertLayout`` cannot convert (it fails on some ops,
    e.g. 5-D tensors in ResNet-50's ONNX graph) keeps NCHW, and says so."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    layout = "NHWC"
    with target:
        try:
            mod = relax.transform.ConvertLayout(CONV_LAYOUT)(mod)
        except RuntimeError as exc:  # tvm.error.InternalError and its kin
            layout = f"NCHW (ConvertLayout failed: {str(exc).strip().splitlines()[-1][:120]})"
        passes = [relax.transform.FoldConstant()]
        passes += cpu.library_dispatch_passes(target) + cpu.legalize_passes(target)
        return tvm.transform.Sequential(passes)(mod), layout


@dataclass(frozen=True)
class Scheduled:
    mod: object
    functions: int  # PrimFuncs in the fused module
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

    functions = [gv for gv, f in fused.functions_items() if isinstance(f, tirx.PrimFunc)]
    open_before = [gv for gv in functions if not _scheduled(fused[gv.name_hint])]
    mod = fused
    with target:
        if database is not None:
            with database:
                mod = relax.transform.MetaScheduleApplyDatabase()(mod)
        # the pass marks what it applied (tirx.is_scheduled): count only what it changed
        from_database = sum(1 for gv in open_before if _scheduled(mod[gv.name_hint]))
        mod = apply_default_schedules()(mod)
    return Scheduled(mod, len(functions), from_database)


def build(scheduled_mod, target):
    """Lower the scheduled module to an executable (no further scheduling passes)."""
    import tvm
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    @tvm.transform.module_pass(opt_level=0)
    def lower(mod, _ctx):
        with target:
            return tvm.transform.Sequential(cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target))(mod)

    return tvm.compile(scheduled_mod, target=target, relax_pipeline=lower)
