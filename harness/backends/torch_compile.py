"""torch.compile with the inductor backend on CPU (default mode)."""

from __future__ import annotations

from harness.backends.torch_eager import TorchEager, TorchModuleRunner, set_torch_threads


class TorchCompile(TorchEager):
    name = "torch-compile"

    def compile(self, model, target, threads, example):
        import torch

        set_torch_threads(threads)
        compiled = torch.compile(model.torch_module(), backend="inductor", dynamic=False)
        runner = TorchModuleRunner(compiled, "inductor, mode=default")
        runner.run(example)  # torch.compile is lazy: trigger compilation inside compile_s
        return runner
