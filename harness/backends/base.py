"""The backend protocol. A backend is a small class with static facts (what it can run, checked
in the pytest process without importing its runtime) and three calls made inside the worker:
``version()``, ``compile()`` and, on the compiled artifact, ``run()``/``prepare()``. ``compile``
builds and runs nothing (where a runtime compiles lazily, on its first call, that call belongs in
``compile`` and says so): the worker times the first inference itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

import numpy as np

from harness.machine.gpu import no_gpu_reason
from harness.machine.threads import CpuBudget, ThreadSettings
from harness.models.base import Model
from harness.plan.targets import TargetInfo, UnknownTargetError, get_target


class Compiled(Protocol):
    label: str  # honest description of what was built, e.g. "untuned", "inductor default"

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One inference on host arrays, returning host float arrays (used for parity)."""

    def prepare(self, inputs: list[np.ndarray]) -> Callable[[], object]:
        """A zero-argument callable doing one complete inference with inputs already bound;
        this is what the timing loop calls."""

    def thread_info(self) -> dict:
        """Thread settings as the runtime reports them (not as requested)."""

    # optional: ``build_info() -> dict``, facts of the build for extra_info: the tuning database and
    # coverage, ``compile_cache`` (hit, miss, rebuilt (why), off), ``artifact_bytes`` (the size on disk
    # of what was built, None where nothing was) with ``artifact`` (what that is, or why there is none)
    # optional: ``allocator_mb() -> float | None``, the runtime allocator's own figure of the memory it
    # holds, where the runtime exposes one (no built-in backend's does on the CPU)
    # on a device target (cuda), besides:
    # ``clock() -> harness.run.timing.Clock``: how to time a call that returns before its kernels end
    #   (CUDA events, or a synchronise before each clock reading); asked on a device target only (the
    #   worker's host clock times every CPU cell), and a device cell without one is an error
    # ``prepare_with_transfers(inputs)``: a step that also copies the inputs to the device and the
    #   outputs back (``--include-transfers``); ``prepare`` binds inputs already on the device
    # ``device_info() -> dict``: the GPU's name, driver and runtime versions, and the runtime's own
    #   memory peak (``device_peak_mb``), read after timing


class Backend:
    name: ClassVar[str]
    model_kinds: ClassVar[frozenset[str]] = frozenset({"torch", "onnx"})
    targets: ClassVar[frozenset[str]] = frozenset({"llvm"})  # TargetInfo.family names: "llvm", "cuda", ...
    module: ClassVar[str] = ""  # import name of the runtime package (for availability checks)
    onnx_importer: ClassVar[str | None] = None  # "onnxruntime", "tvm": who reads an ONNX graph (harness.run.user_check)
    thread_key: ClassVar[str | None] = None  # the thread_info() key with the intra-op threads the runtime uses

    def expected_threads(self, resolved: int, budget: CpuBudget, control: str = "both") -> int:
        """The intra-op thread count the runtime should report (under ``thread_key``) when given
        ``resolved`` threads under thread control ``control`` (both or api): the same number,
        unless the runtime documents a cap of its own."""
        return resolved

    # optional: ``unsupported_model_reason(model: str, options: dict) -> str | None``, why this backend
    # cannot run that model (e.g. ``ort-opt``: not an encoder), decided without building it

    def unsupported_reason(self, model_kind: str, target: str) -> str | None:
        """Why this backend cannot run a (model kind, target) cell, or None. No imports."""
        if model_kind not in self.model_kinds:
            return f"{self.name} runs {'/'.join(sorted(self.model_kinds))} models; this model is an {model_kind} graph"
        try:
            info = get_target(target)
        except UnknownTargetError as exc:
            return str(exc)
        if info.family not in self.targets:
            return f"{self.name} does not support target {target!r} (supports: {', '.join(sorted(self.targets))})"
        if info.on_device:
            return no_gpu_reason(info.index) or self.device_runtime_reason(info)
        return None

    def device_runtime_reason(self, target: TargetInfo) -> str | None:
        """Why the installed runtime cannot run on ``target``'s device (a CPU-only build, a
        provider missing), decided without importing it (harness.machine.gpu); None: it can."""
        return f"{self.name} has no {target.device} support"

    def version(self) -> str:
        """Imports the runtime; raises ImportError (or anything) when unusable."""
        raise NotImplementedError

    def compile(
        self, model: Model, target: TargetInfo, threads: ThreadSettings | int, example: list[np.ndarray]
    ) -> Compiled:
        """Build the model. ``threads`` is what to apply through the runtime's own API
        (``ThreadSettings.coerce`` turns an int into today's default: that many threads, inter-op
        1): ``count`` None means leave the runtime's default, ``spin`` False stop idle pool threads
        spinning, ``cpus`` bind the pool's threads to those CPUs where the runtime can. Thread
        environment variables are already set (or removed) by the launcher."""
        raise NotImplementedError
