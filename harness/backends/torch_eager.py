"""Eager PyTorch fp32: the reference latency.

Threads: PyTorch's intra-op pool (OpenMP here) takes OMP_NUM_THREADS at start-up, else one thread
per physical core; ``torch.set_num_threads`` overrides it; inter-op threads only through
``torch.set_num_interop_threads`` before any parallel work.

Nothing is built: ``compile`` applies the threads and returns the module (``compile_s`` near 0),
and there is no artifact (``artifact_bytes`` None).

On a cuda target the module and the timed inputs live on the GPU (``prepare``; with
``prepare_with_transfers`` each call copies its inputs there and its outputs back), TF32 is set as
the target says (``torch.backends.cuda.matmul.allow_tf32`` and cuDNN's), a call is timed between
two CUDA events on the current stream (``clock``), and ``device_info`` reads the GPU's name and
``torch.cuda.max_memory_allocated``. The host runs one launch thread.

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


def place_on(target) -> str:
    """Put torch on ``target``'s device: its matmul precision there (TF32 or full fp32), and the
    device made current. Returns the torch device name ("cpu" on the CPU, untouched)."""
    if not target.on_device:
        return "cpu"
    import torch

    torch.backends.cuda.matmul.allow_tf32 = target.tf32
    torch.backends.cudnn.allow_tf32 = target.tf32
    torch.cuda.set_device(target.index)
    return target.torch_device


def module_on(module, device: str):
    """``module`` on ``device``: itself on the CPU, else a copy (the model's own module stays on the
    CPU, where its float64 reference runs)."""
    if device == "cpu":
        return module
    import copy

    return copy.deepcopy(module).to(device)


def cuda_device_info(device: str) -> dict:
    """What a cuda cell records of its GPU through torch: name, capability, the CUDA runtime
    torch was built with, the driver (harness.machine.gpu) and the allocator's peak."""
    import torch

    from harness.machine.gpu import gpu_at

    index = torch.device(device).index or 0
    props = torch.cuda.get_device_properties(index)
    gpu = gpu_at(index)
    driver = gpu.driver if gpu else None
    return {
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "multiprocessors": props.multi_processor_count,
        "memory_mib": props.total_memory // 2**20,
        "driver": driver,
        "runtime": f"CUDA {torch.version.cuda} (torch {torch.__version__})",
        "device_peak_mb": torch.cuda.max_memory_allocated(index) / 2**20,
    }


class TorchModuleRunner:
    def __init__(self, module, label: str, device: str = "cpu"):
        self.device = device  # where ``module`` is (harness.backends.torch_eager.module_on)
        self.module = module
        self.label = label
        self.build: dict = {}

    def build_info(self) -> dict:
        return dict(self.build)

    def _call(self, tensors):
        import torch

        with torch.inference_mode():
            return self.module(*tensors)

    def _tensors(self, inputs):
        import torch

        return [torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in inputs]

    def run(self, inputs):
        out = self._call(self._tensors(inputs))
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.detach().cpu().numpy() for o in outs]

    def prepare(self, inputs):
        tensors = self._tensors(inputs)  # resident on the device: no copy is timed
        return lambda: self._call(tensors)

    def prepare_with_transfers(self, inputs):
        """One call with its copies: host inputs to the device, the outputs back to the host."""
        return lambda: self.run(inputs)

    def clock(self):
        """On a device: CUDA events on the current stream (the worker's host clock on the CPU)."""
        import torch

        from harness.run.timing import EventClock

        return EventClock(lambda: torch.cuda.Event(enable_timing=True))

    def device_info(self) -> dict:
        return cuda_device_info(self.device) if self.device != "cpu" else {}

    def thread_info(self):
        return torch_thread_info()

    def profile_ops(self, inputs, runs):
        """Per-operator profile of ``runs`` calls (after one unprofiled call): self CPU time by op."""
        import torch

        return profile_calls(self._call, [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs], runs)


TORCH_TARGETS = frozenset({"llvm", "cuda", "cuda-tf32"})


def torch_cuda_reason() -> str | None:
    """Why the installed torch cannot run on a GPU (a CPU build), without importing it."""
    from importlib.metadata import version

    from harness.machine.gpu import torch_cuda_version

    if torch_cuda_version() is None:
        return f"torch {version('torch')} is a CPU build (torch.version.cuda is None): install a CUDA build of torch"
    return None


class TorchEager(Backend):
    name = "torch"
    model_kinds = frozenset({"torch"})
    module = "torch"
    thread_key = "torch_num_threads"
    targets = TORCH_TARGETS

    def version(self):
        import torch

        return torch.__version__

    def device_runtime_reason(self, target):
        return torch_cuda_reason()

    def compile(self, model, target, threads, example):
        set_torch_threads(threads)
        device = place_on(target)
        label = "eager fp32" if device == "cpu" else f"eager fp32 on {device}, {target.precision_label()}"
        runner = TorchModuleRunner(module_on(model.torch_module(), device), label, device)
        runner.build = {"artifact_bytes": None, "artifact": "none: eager PyTorch runs the module as it is"}
        return runner
