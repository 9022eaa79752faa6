"""torch.compile with the inductor backend on CPU (default mode).

Compile cache: inductor's own (FX graph cache), pointed at ``<compile cache>/inductor`` so worker
processes 2..N and later runs reuse it; off with the harness's cache. Inductor's cache pickles
internally: that is torch's own format in a directory we own, never a file of ours.

``compile`` makes one call: torch.compile is lazy and compiles the graph on its first call, so that
call *is* its compile (inside ``compile_s``); the worker's ``first_inference_s`` is the call after.
No ``artifact_bytes``: inductor's generated code for one graph is spread over its cache directory
(shared by every graph and process) under names that cannot be tied to this graph cheaply."""

from __future__ import annotations

import os

from harness.backends.compile_cache import cache_root
from harness.backends.torch_eager import TorchEager, TorchModuleRunner, set_torch_threads


class TorchCompile(TorchEager):
    name = "torch-compile"

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
        compiled = torch.compile(model.torch_module(), backend="inductor", dynamic=False)
        runner = TorchModuleRunner(compiled, "inductor, mode=default")
        runner.run(example)  # torch.compile is lazy: this call is its compile (inside compile_s)
        hits, misses = counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]
        runner.build = {
            "compile_cache": "off" if root is None else ("hit" if hits and not misses else "miss"),
            "artifact_bytes": None,
            "artifact": "none: inductor's code for this graph is not located in its shared cache",
        }
        return runner
