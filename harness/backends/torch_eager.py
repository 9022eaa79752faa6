"""Eager PyTorch fp32: the reference latency.

Threads: PyTorch's intra-op pool (OpenMP here) takes OMP_NUM_THREADS at start-up, else one thread
per physical core; ``torch.set_num_threads`` overrides it; inter-op threads only through
``torch.set_num_interop_threads`` before any parallel work.

Nothing is built: ``compile`` applies the threads and returns the module (``compile_s`` near 0),
and there is no artifact (``artifact_bytes`` None)."""

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
