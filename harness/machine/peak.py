"""The machine's practical fp32 peak: the best of a few large single-precision matrix multiplies
(2048x2048, ONNX Runtime's MLAS and torch.mm, the faster of the two, on all effective CPUs), in a
fresh process with the thread environment set. (Measured on the dev machine, one thread: MLAS
217 GFLOP/s, torch.mm 101 GFLOP/s.)
Used for "% of peak" in reports; the nominal estimate from clock x SIMD width is kept beside it
because a VM's reported clock is often the base clock, not the boost clock."""

from __future__ import annotations

import json
import os
import time

from harness.machine.probe import run_module_json
from harness.machine.threads import cpu_budget, thread_env


def gflops(flops: float | None, seconds: float | None) -> float | None:
    """GFLOP/s of ``flops`` FLOPs done in ``seconds``; None when either is unknown (the one formula
    behind cell results, saved benchmarks and the peak itself)."""
    return flops / seconds / 1e9 if flops and seconds else None


def _best(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    import numpy as np

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    flops, results = 2 * n**3, []
    x = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            "sgemm",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
            [numpy_helper.from_array(x, "w")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        results.append(gflops(flops, _best(lambda: session.run(None, {"x": x}), repeats)))
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(threads)
        a = torch.from_numpy(x)
        results.append(gflops(flops, _best(lambda: torch.mm(a, a), repeats)))
    except ImportError:
        pass
    return max(results)


def measure_peak_gflops(timeout_s: float = 120.0) -> float | None:
    data = run_module_json("harness.machine.peak", thread_env(cpu_budget().effective_cpus), timeout_s)
    value = (data or {}).get("sgemm_gflops")
    return float(value) if isinstance(value, (int, float)) else None


if __name__ == "__main__":
    print(json.dumps({"sgemm_gflops": sgemm_gflops()}))
