"""ONNX Runtime, CPUExecutionProvider, graph optimisation ORT_ENABLE_ALL."""

from __future__ import annotations

import numpy as np

from harness.backends.base import Backend


class OrtCompiled:
    label = "CPUExecutionProvider, ORT_ENABLE_ALL"

    def __init__(self, session, input_names, threads):
        self.session = session
        self.input_names = input_names
        self.threads = threads

    def run(self, inputs):
        return self.session.run(None, dict(zip(self.input_names, inputs)))

    def prepare(self, inputs):
        feeds = dict(zip(self.input_names, [np.ascontiguousarray(x) for x in inputs]))
        session = self.session
        return lambda: session.run(None, feeds)

    def thread_info(self):
        opts = self.session.get_session_options()
        return {
            "ort_intra_op_num_threads": opts.intra_op_num_threads,
            "ort_inter_op_num_threads": opts.inter_op_num_threads,
        }


class OnnxRuntime(Backend):
    name = "ort"
    module = "onnxruntime"
    thread_key = "ort_intra_op_num_threads"

    def version(self):
        import onnxruntime

        return onnxruntime.__version__

    def compile(self, model, target, threads, example):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        session = ort.InferenceSession(model.onnx_model().SerializeToString(), opts, providers=["CPUExecutionProvider"])
        compiled = OrtCompiled(session, [i.name for i in session.get_inputs()], threads)
        compiled.run(example)  # first run allocates arenas: keep it out of the timings
        return compiled
