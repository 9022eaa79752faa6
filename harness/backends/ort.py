"""ONNX Runtime, CPUExecutionProvider, graph optimisation ORT_ENABLE_ALL.

Threads: ORT has its own pool and reads no thread environment variable; only the session options
size it. Left at 0 it takes one thread per physical core of the process's affinity and pins them
(an explicit count turns that pinning off: the harness pins through
``session.intra_op_thread_affinities`` when the cell is pinned).

``compile`` creates the session and runs nothing: the first run (arena allocation) is the worker's
``first_inference_s``. Artifact (``build_info``'s ``artifact_bytes``): the optimised graph file ORT
wrote (ORT_ENABLE_ALL, the compile cache's ``OPTIMISED``), or, with the cache off, the serialized
ONNX graph the session was made from (``artifact`` says which: sizes of the two are not compared).

``profile_ops`` (a per-operator profile, harness.compare.op_profile): ORT profiles a session only
when its options asked at creation, so a second session is made from what the timed one was made
from (the graph as ORT keeps it, the same options, profiling on), run once (its events dropped: arena
allocation) and ``runs`` times; ``end_profiling``'s JSON gives each node's kernel time and op type.

On a cuda target (onnxruntime-gpu): the CUDA execution provider on ``cuda:N`` (``device_id``),
``use_tf32`` as the target says, the CPU provider behind it for nodes CUDA has no kernel for; a
session whose first provider is not CUDA's (ORT falls back silently when the provider cannot load)
is an error, not a CPU timing under a GPU label. Inputs are bound on the device through
``io_binding`` (outputs left there), so a timed call copies nothing; ``run_with_iobinding``
returns after ORT has synchronised its stream, and the clock synchronises the bound outputs once
more before reading the host timer. No compile cache on a device: ORT's saved optimised graph is
provider-specific. ORT's Python API reports no device memory (``device_peak_mb`` None)."""

from __future__ import annotations

import numpy as np

from harness.backends.base import Backend
from harness.machine.threads import ThreadSettings


def session_config(settings: ThreadSettings) -> dict[str, str]:
    """ORT session config entries for spinning and pinning. Affinities are 1-based logical CPU
    numbers, one entry per pool thread: ``count`` - 1 entries (the calling thread is the first)."""
    config = {}
    if not settings.spin:
        config["session.intra_op.allow_spinning"] = "0"
        config["session.inter_op.allow_spinning"] = "0"
    if settings.cpus and settings.count and settings.count > 1:
        pool = [settings.cpus[i % len(settings.cpus)] + 1 for i in range(1, settings.count)]
        config["session.intra_op_thread_affinities"] = ";".join(map(str, pool))
    return config


OPTIMISED = "model.onnx"  # the session's optimised graph (ORT_ENABLE_ALL), as ORT saves it


CUDA_PROVIDER = "CUDAExecutionProvider"


def providers_for(target) -> tuple[list[str], list[dict]]:
    """ORT's providers and their options for a target: the CPU's, or CUDA's (then the CPU's)."""
    if not target.on_device:
        return ["CPUExecutionProvider"], [{}]
    cuda = {"device_id": str(target.index), "use_tf32": "1" if target.tf32 else "0"}
    return [CUDA_PROVIDER, "CPUExecutionProvider"], [cuda, {}]


class OrtCompiled:
    label = "CPUExecutionProvider, ORT_ENABLE_ALL"

    def __init__(self, session, input_names, threads, build_info: dict | None = None, target=None):
        self.session = session
        self.input_names = input_names
        self.threads = threads
        self._build_info = build_info or {}
        self.target = target
        self._binding = None
        if target is not None and target.on_device:
            self.label = f"{CUDA_PROVIDER} ({target.torch_device}), ORT_ENABLE_ALL, {target.precision_label()}"

    def build_info(self) -> dict:
        return dict(self._build_info)

    def run(self, inputs):
        return self.session.run(None, dict(zip(self.input_names, inputs)))

    def prepare(self, inputs):
        if self.target is not None and self.target.on_device:
            return self._prepare_on_device(inputs)
        return self.prepare_with_transfers(inputs)

    def prepare_with_transfers(self, inputs):
        """A call on host arrays (on a device: ORT copies them in and the outputs back)."""
        feeds = dict(zip(self.input_names, [np.ascontiguousarray(x) for x in inputs]))
        session = self.session
        return lambda: session.run(None, feeds)

    def _prepare_on_device(self, inputs):
        import onnxruntime as ort

        index = self.target.index
        binding = self.session.io_binding()
        for name, x in zip(self.input_names, inputs):
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x), "cuda", index))
        for output in self.session.get_outputs():
            binding.bind_output(output.name, "cuda", index)
        self._binding = binding
        session = self.session
        return lambda: session.run_with_iobinding(binding)

    def clock(self):
        """On a device: the host clock after the bound outputs are synchronised."""
        from harness.run.timing import SyncClock

        return SyncClock(lambda: self._binding.synchronize_outputs() if self._binding is not None else None)

    def device_info(self) -> dict:
        import onnxruntime as ort
        from onnxruntime.capi import build_and_package_info as build

        from harness.machine.gpu import gpu_at

        gpu = gpu_at(self.target.index)
        cuda = f", CUDA {getattr(build, 'cuda_version', '?')}, cuDNN {getattr(build, 'cudnn_version', '?')}"
        return {
            "name": gpu.name if gpu else None,
            "compute_capability": gpu.compute_capability if gpu else None,
            "driver": gpu.driver if gpu else None,
            "runtime": f"onnxruntime {ort.__version__} {CUDA_PROVIDER}{cuda}",
            "device_peak_mb": None,  # not exposed by ORT's Python API
        }

    def profile_ops(self, inputs, runs):
        """Per-operator profile of ``runs`` inferences (after one warm-up run) in a second,
        profiling session: kernel time per node, by op type."""
        import json
        import tempfile
        from pathlib import Path

        import onnxruntime as ort

        from harness.compare.op_profile import aggregate

        session = self.session
        source = session._model_path or session._model_bytes  # what ORT made this session from
        providers = session.get_providers()
        provider_options = [session.get_provider_options().get(p, {}) for p in providers]
        opts = session.get_session_options()  # the timed session's: borrowed, and put back as they were
        kept = {key: getattr(opts, key) for key in PROFILING_OPTIONS}
        feeds = dict(zip(self.input_names, [np.ascontiguousarray(x) for x in inputs]))
        with tempfile.TemporaryDirectory(prefix="infer-bench-ort-profile-") as scratch:
            try:
                opts.optimized_model_filepath = ""  # the graph is saved (or was loaded) already
                opts.enable_profiling = True
                opts.profile_file_prefix = str(Path(scratch) / "ort")
                profiling = ort.InferenceSession(source, opts, providers=providers, provider_options=provider_options)
            finally:
                for key, value in kept.items():
                    setattr(opts, key, value)
            for _ in range(runs + 1):
                profiling.run(None, feeds)
            events = json.loads(Path(profiling.end_profiling()).read_text())
        times = node_times(events)
        return aggregate(times, source=ORT_PROFILER, runtime=f"onnxruntime {ort.__version__}", runs=runs)

    def thread_info(self):
        opts = self.session.get_session_options()  # 0 = ORT's default (physical cores)
        return {
            "ort_intra_op_num_threads": opts.intra_op_num_threads,
            "ort_inter_op_num_threads": opts.inter_op_num_threads,
            "ort_execution_mode": opts.execution_mode.name,
        }


ORT_PROFILER = "onnxruntime session profiler"
PROFILING_OPTIONS = ("optimized_model_filepath", "enable_profiling", "profile_file_prefix")  # set for profiling
KERNEL_TIME = "_kernel_time"  # the suffix of a node event's name that times the node's kernel


def node_times(events: list) -> list:
    """``NodeTime`` of each node kernel event in an ORT profile (chrome trace events: ``cat`` Node,
    ``name`` the node's name + KERNEL_TIME, ``dur`` microseconds, ``args.op_name``) after the first
    ``model_run`` (the warm-up run: its events are dropped)."""
    from harness.compare.op_profile import NodeTime

    runs = sorted(
        (e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    after = runs[0][1] if runs else float("-inf")
    return [
        NodeTime(e["args"]["op_name"], e["name"][: -len(KERNEL_TIME)], float(e["dur"]))
        for e in events
        if e.get("cat") == "Node" and e.get("name", "").endswith(KERNEL_TIME) and e["ts"] >= after
    ]


class OnnxRuntime(Backend):
    name = "ort"
    module = "onnxruntime"
    onnx_importer = "onnxruntime"
    thread_key = "ort_intra_op_num_threads"
    targets = frozenset({"llvm", "cuda", "cuda-tf32"})

    def device_runtime_reason(self, target):
        from harness.machine.gpu import ort_has_cuda_provider

        if not ort_has_cuda_provider():
            return f"onnxruntime has no {CUDA_PROVIDER} (onnxruntime-gpu provides it, in place of onnxruntime)"
        return None

    def version(self):
        import onnxruntime

        return onnxruntime.__version__

    def compile(self, model, target, threads, example):
        import onnxruntime as ort

        settings = ThreadSettings.coerce(threads)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        for key, value in session_config(settings).items():
            opts.add_session_config_entry(key, value)
        if settings.count is not None:
            opts.intra_op_num_threads = settings.count
        if settings.interop is not None:
            opts.inter_op_num_threads = settings.interop
            parallel = settings.interop > 1
            opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
        if target.on_device:
            session, info = self._device_session(model, opts, target)
        else:
            session, info = self._session(model, opts)
        names = [i.name for i in session.get_inputs()]
        return OrtCompiled(session, names, settings.count, info, target)

    def _device_session(self, model, opts, target):
        """A session on the target's device, built from the graph (no compile cache), that really
        runs there (ORT does not fail when its CUDA provider cannot load: it falls back to the CPU).
        The CUDA and cuDNN libraries that onnxruntime-gpu[cuda,cudnn] installs are loaded first
        (``preload_dlls``): its provider library finds them only once loaded, by torch or so."""
        import onnxruntime as ort

        providers, options = providers_for(target)
        if hasattr(ort, "preload_dlls"):  # since ORT 1.21 (the lock has 1.31): a user's older onnxruntime-gpu lacks it
            ort.preload_dlls()  # the nvidia-* wheels' CUDA and cuDNN are not on the loader's path
        graph = model.onnx_model().SerializeToString()
        session = ort.InferenceSession(graph, opts, providers=providers, provider_options=options)
        if session.get_providers()[0] != CUDA_PROVIDER:
            raise RuntimeError(
                f"{self.name}: the session runs on {', '.join(session.get_providers())}, not {CUDA_PROVIDER} "
                "(ORT could not load it: check the CUDA and cuDNN libraries onnxruntime-gpu needs)"
            )
        return session, _facts("off: ORT's optimised graph is provider-specific", len(graph), ONNX_GRAPH_ON_DEVICE)

    def _session(self, model, opts):
        """A session from the cached optimised graph (hardware-specific: keyed by the CPU; loaded
        with optimisation off, as ORT's offline mode says), else a fresh one that saves it; with
        build facts: ``compile_cache``, ``artifact_bytes`` and ``artifact``."""
        import shutil
        import tempfile
        from pathlib import Path

        import onnxruntime as ort

        from harness.backends.compile_cache import CompileCache, cache_key
        from harness.machine.profile import cpu_info

        providers = ["CPUExecutionProvider"]
        cache = CompileCache()
        cpu = cpu_info()
        key = cache_key(
            backend=self.name, ort=self.version(), cpu=[cpu.get("model"), cpu.get("isa")], model=model.content_digest()
        )
        found = cache.lookup(key)
        if found.entry is not None:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            session = ort.InferenceSession(str(found.entry / OPTIMISED), opts, providers=providers)
            return session, _facts(found.status, (found.entry / OPTIMISED).stat().st_size, OPTIMISED_GRAPH)
        graph = model.onnx_model().SerializeToString()
        if not cache.enabled:
            return ort.InferenceSession(graph, opts, providers=providers), _facts(found.status, len(graph), ONNX_GRAPH)
        scratch = Path(tempfile.mkdtemp(prefix="infer-bench-ort-"))
        try:
            opts.optimized_model_filepath = str(scratch / OPTIMISED)
            try:
                session = ort.InferenceSession(graph, opts, providers=providers)
            except Exception as exc:  # noqa: BLE001 - saving failed (e.g. > 2 GB): build without the file
                opts.optimized_model_filepath = ""
                session = ort.InferenceSession(graph, opts, providers=providers)
                status = f"{found.status}, not stored: {type(exc).__name__}"
                return session, _facts(status, None, f"none: ORT could not save its optimised graph ({status})")
            size = (scratch / OPTIMISED).stat().st_size
            cache.store(key, lambda d: shutil.copy(scratch / OPTIMISED, d / OPTIMISED))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return session, _facts(cache.status(found), size, OPTIMISED_GRAPH)


OPTIMISED_GRAPH = "ORT optimised graph (ORT_ENABLE_ALL, saved by ORT)"
ONNX_GRAPH = "serialized ONNX graph (compile cache off: ORT's optimised graph is not saved)"
ONNX_GRAPH_ON_DEVICE = "serialized ONNX graph (a device session: ORT's optimised graph is not saved)"


def _facts(status: str, size: int | None, artifact: str) -> dict:
    return {"compile_cache": status, "artifact_bytes": size, "artifact": artifact}
