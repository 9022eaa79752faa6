"""ONNX Runtime, CPUExecutionProvider, graph optimisation ORT_ENABLE_ALL.

Threads: ORT has its own pool and reads no thread environment variable; only the session options
size it. Left at 0 it takes one thread per physical core of the process's affinity and pins them
(an explicit count turns that pinning off: the harness pins through
``session.intra_op_thread_affinities`` when the cell is pinned)."""

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


class OrtCompiled:
    label = "CPUExecutionProvider, ORT_ENABLE_ALL"

    def __init__(self, session, input_names, threads, build_info: dict | None = None):
        self.session = session
        self.input_names = input_names
        self.threads = threads
        self._build_info = build_info or {}

    def build_info(self) -> dict:
        return dict(self._build_info)

    def run(self, inputs):
        return self.session.run(None, dict(zip(self.input_names, inputs)))

    def prepare(self, inputs):
        feeds = dict(zip(self.input_names, [np.ascontiguousarray(x) for x in inputs]))
        session = self.session
        return lambda: session.run(None, feeds)

    def thread_info(self):
        opts = self.session.get_session_options()  # 0 = ORT's default (physical cores)
        return {
            "ort_intra_op_num_threads": opts.intra_op_num_threads,
            "ort_inter_op_num_threads": opts.inter_op_num_threads,
            "ort_execution_mode": opts.execution_mode.name,
        }


class OnnxRuntime(Backend):
    name = "ort"
    module = "onnxruntime"
    onnx_importer = "onnxruntime"
    thread_key = "ort_intra_op_num_threads"

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
        session, status = self._session(model, opts)
        names = [i.name for i in session.get_inputs()]
        compiled = OrtCompiled(session, names, settings.count, {"compile_cache": status})
        compiled.run(example)  # first run allocates arenas: keep it out of the timings
        return compiled

    def _session(self, model, opts):
        """A session from the cached optimised graph (hardware-specific: keyed by the CPU; loaded
        with optimisation off, as ORT's offline mode says), else a fresh one that saves it."""
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
            return ort.InferenceSession(str(found.entry / OPTIMISED), opts, providers=providers), found.status
        graph = model.onnx_model().SerializeToString()
        if not cache.enabled:
            return ort.InferenceSession(graph, opts, providers=providers), found.status
        scratch = Path(tempfile.mkdtemp(prefix="infer-bench-ort-"))
        try:
            opts.optimized_model_filepath = str(scratch / OPTIMISED)
            try:
                session = ort.InferenceSession(graph, opts, providers=providers)
            except Exception as exc:  # noqa: BLE001 - saving failed (e.g. > 2 GB): build without the file
                opts.optimized_model_filepath = ""
                session = ort.InferenceSession(graph, opts, providers=providers)
                return session, f"{found.status}, not stored: {type(exc).__name__}"
            cache.store(key, lambda d: shutil.copy(scratch / OPTIMISED, d / OPTIMISED))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return session, cache.status(found)
