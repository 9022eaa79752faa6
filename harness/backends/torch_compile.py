"""torch.compile with the inductor backend on CPU (default mode).

Compile cache: inductor's own (FX graph cache), pointed at ``<compile cache>/inductor`` so worker
processes 2..N and later runs reuse it; off with the harness's cache. Inductor's cache pickles
internally: that is torch's own format in a directory we own, never a file of ours.

``compile`` makes one call: torch.compile is lazy and compiles the graph on its first call, so that
call *is* its compile (inside ``compile_s``); the worker's ``first_inference_s`` is the call after.
No ``artifact_bytes``: inductor's generated code for one graph is spread over its cache directory
(shared by every graph and process) under names that cannot be tied to this graph cheaply.

``profile_ops`` (a per-operator profile, harness.compare.op_profile): inductor's generated C++
kernels are invisible to torch.profiler unless compiled with ``cpp.enable_kernel_profile``, so the
module is compiled once more with it (a copy for profiling: the timed one is untouched; inductor
caches it apart, its config being part of the key) and profiled as eager torch is. A kernel
``graph_0_cpp_fused_add_native_layer_norm_3`` is typed ``inductor:native_layer_norm`` (its aten ops,
which inductor joins in sorted order, read as harness.compare.op_profile ``fused_op_type``: the
anchor, else the first), with its name as the node; extern kernels keep their op (``aten::addmm``,
``mkldnn::_linear_pointwise``); the compiled graph's and region's own time (Python wrapper, guards)
are ``inductor:wrapper`` and ``torch.compile:region``."""

from __future__ import annotations

import os
import re

from harness.backends.compile_cache import cache_root
from harness.backends.torch_eager import (
    TorchEager,
    TorchModuleRunner,
    module_on,
    place_on,
    profile_calls,
    set_torch_threads,
    torch_cuda_reason,
)
from harness.compare.op_profile import fused_op_type

KERNEL_PROFILE = {"cpp.enable_kernel_profile": True}  # inductor records each C++ kernel it generates
_KERNEL = re.compile(r"^(?:graph_\d+_)?cpp_fused_(?P<ops>.*?)(?:_\d+)?$")
WRAPPER = "## Call CompiledFxGraph "  # the compiled graph's call (inductor's own record)
REGION = "Torch-Compiled Region"  # dynamo's frame: guards and wrappers


def aten_names() -> frozenset[str]:
    """Every registered aten op's name without ``aten::`` and overload (``native_layer_norm``)."""
    import torch

    return frozenset(
        name.split("::", 1)[1].split(".")[0]
        for name in torch._C._dispatch_get_all_op_names()
        if name.startswith("aten::")
    )


def inductor_op(known: frozenset[str]):
    """``op_and_node`` for a module compiled with KERNEL_PROFILE (see the module's docstring)."""

    def op_and_node(key: str, shapes: str) -> tuple[str, str]:
        kernel = _KERNEL.match(key)
        if kernel:
            return f"inductor:{fused_op_type(kernel['ops'], known)}", key
        if key.startswith(WRAPPER):
            return "inductor:wrapper", key[len(WRAPPER) :].rstrip("# ")
        if key.startswith(REGION):
            return "torch.compile:region", key[len(REGION) :].lstrip(": ")
        return key, shapes

    return op_and_node


class CompiledModuleRunner(TorchModuleRunner):
    """A torch.compile'd module's runner: runs as eager's does; profiles a copy with kernels recorded."""

    def profile_ops(self, inputs, runs):
        """Per-operator profile of ``runs`` calls (after one unprofiled call) of the module compiled
        again with KERNEL_PROFILE: self CPU time by op and generated kernel."""
        import numpy as np
        import torch

        original = getattr(self.module, "_orig_mod", self.module)
        profiled = TorchModuleRunner(
            torch.compile(original, backend="inductor", dynamic=False, options=KERNEL_PROFILE), ""
        )
        profiled.run(inputs)  # its compile
        tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs]
        return profile_calls(profiled._call, tensors, runs, inductor_op(aten_names()))


class TorchCompile(TorchEager):
    name = "torch-compile"

    def device_runtime_reason(self, target):
        """Inductor generates Triton kernels for a GPU: torch's CUDA build and Triton."""
        import importlib.util

        if importlib.util.find_spec("triton") is None:
            return torch_cuda_reason() or "torch.compile on cuda generates Triton kernels: triton is not installed"
        return torch_cuda_reason()

    def compile(self, model, target, threads, example):
        import torch
        from torch._dynamo.utils import counters

        set_torch_threads(threads)
        import torch._inductor.config as inductor_config

        root = cache_root()
        if root is None:  # the environment variable is read at import: too late here
            inductor_config.force_disable_caches = True
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / "inductor")  # read by inductor when it caches
        device = place_on(target)
        compiled = torch.compile(module_on(model.torch_module(), device), backend="inductor", dynamic=False)
        label = "inductor, mode=default"
        if device != "cpu":
            label = f"inductor (Triton), mode=default, on {device}, {target.precision_label()}"
        runner = CompiledModuleRunner(compiled, label, device)
        runner.run(example)  # torch.compile is lazy: this call is its compile (inside compile_s)
        hits, misses = counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]
        runner.build = {
            "compile_cache": "off" if root is None else ("hit" if hits and not misses else "miss"),
            "artifact_bytes": None,
            "artifact": "none: inductor's code for this graph is not located in its shared cache",
        }
        return runner
