"""Eager PyTorch fp32: the reference latency.

Threads: PyTorch's intra-op pool (OpenMP here) takes OMP_NUM_THREADS at start-up, else one thread
per physical core; ``torch.set_num_threads`` overrides it; inter-op threads only through
``torch.set_num_interop_threads`` before any parallel work.

Nothing is built: ``compile`` applies the threads and returns the module (``compile_s`` near 0),
and there is no artifact (``artifact_bytes`` None).

``profile_ops`` (a per-operator profile, harness.compare.op_profile): torch.profiler's self CPU
time per op (an op's own time, its callees' excluded: aten::linear's is in aten::addmm), grouped by
op and input shapes (the shapes are the detail), over ``runs`` calls after one unprofiled call."""

from __future__ import annotations

import numpy as np

from harness.backends.base import Backend
from harness.machine.threads import ThreadSettings


def torch_thread_info() -> dict:
    import torch

    return {"torch_num_threads": torch.get_num_threads(), "torch_num_interop_threads": torch.get_num_interop_threads()}


def set_torch_threads(threads: ThreadSettings | int) -> None:
    """Apply the API part of a cell's thread settings (nothing where they say leave the default)."""
    import torch

    settings = ThreadSettings.coerce(threads)
    if settings.count is not None:
        torch.set_num_threads(settings.count)
    if settings.interop is not None:
        try:
            torch.set_num_interop_threads(settings.interop)
        except RuntimeError:  # only settable before any parallel work has started
            pass


TORCH_PROFILER = "torch.profiler (self CPU time)"


def aten_op(key: str, shapes: str) -> tuple[str, str]:
    """An eager op's type and node: its name (``aten::addmm``) and its input shapes."""
    return key, shapes


def profile_calls(call, tensors, runs: int, op_and_node=aten_op):
    """The op profile of ``runs`` calls of ``call(tensors)`` after one unprofiled call: torch.profiler's
    ``key_averages(group_by_input_shape=True)``, each entry with time of its own (self CPU time) typed
    by ``op_and_node(key, input shapes)``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from harness.compare.op_profile import NodeTime, aggregate

    call(tensors)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(runs):
            call(tensors)
    times = [
        NodeTime(*op_and_node(a.key, str(a.input_shapes).replace(" ", "")), float(a.self_cpu_time_total), int(a.count))
        for a in prof.key_averages(group_by_input_shape=True)
        if a.self_cpu_time_total > 0
    ]
    return aggregate(times, source=TORCH_PROFILER, runtime=f"torch {torch.__version__}", runs=runs)


class TorchModuleRunner:
    def __init__(self, module, label: str):
        self.module = module
        self.label = label
        self.build: dict = {}

    def build_info(self) -> dict:
        return dict(self.build)

    def _call(self, tensors):
        import torch

        with torch.inference_mode():
            return self.module(*tensors)

    def run(self, inputs):
        import torch

        out = self._call([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.detach().numpy() for o in outs]

    def prepare(self, inputs):
        import torch

        tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs]
        return lambda: self._call(tensors)

    def thread_info(self):
        return torch_thread_info()

    def profile_ops(self, inputs, runs):
        """Per-operator profile of ``runs`` calls (after one unprofiled call): self CPU time by op."""
        import torch

        return profile_calls(self._call, [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs], runs)


class TorchEager(Backend):
    name = "torch"
    model_kinds = frozenset({"torch"})
    module = "torch"
    thread_key = "torch_num_threads"

    def version(self):
        import torch

        return torch.__version__

    def compile(self, model, target, threads, example):
        set_torch_threads(threads)
        runner = TorchModuleRunner(model.torch_module(), "eager fp32")
        runner.build = {"artifact_bytes": None, "artifact": "none: eager PyTorch runs the module as it is"}
        return runner
