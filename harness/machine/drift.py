"""Drift control: a fixed workload measured several times during a run, interleaved with the cells.

If the machine itself got slower (another tenant, thermal state, a noisy neighbour), the control
slows down too. The control is a float32 matrix multiply (256x256, numpy/OpenBLAS) plus a
pure-Python loop, medians of 31 rounds each, combined as a geometric mean (seconds), measured in a
fresh process with the thread count of the cells it stands for (a noisy neighbour slows a 2-thread
workload more than a 1-thread one): once per distinct thread count before the cells, after each
interleaved round of worker processes, and after the cells.

A run's control is stored as ``{"version": 2, "samples": [{"threads", "at", "control_s", ...}]}``;
files from before version 2 have ``{"before": {...}, "after": {...}}``, measured with 1 thread.
Whether the machine moved between two runs, and by how much with what uncertainty, is statistics:
harness.compare.compare (``drift_estimates``).
"""

from __future__ import annotations

import json
import statistics
import time

from harness.machine.probe import run_module_json
from harness.machine.threads import thread_env

CONTROL_VERSION = 2


def _python_loop() -> None:
    total = 0
    for i in range(20000):
        total += i * i % 7


def control_workload(rounds: int = 31) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256), dtype=np.float32)
    b = rng.standard_normal((256, 256), dtype=np.float32)

    def matmul():
        for _ in range(10):
            a @ b

    out = {}
    for name, fn in (("matmul_s", matmul), ("python_s", _python_loop)):
        fn()
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    out["control_s"] = (out["matmul_s"] * out["python_s"]) ** 0.5
    out["version"] = CONTROL_VERSION
    return out


def measure_control(threads: int = 1, timeout_s: float = 120.0) -> dict | None:
    """Run the control in a fresh process with ``threads`` threads; None if that fails."""
    return run_module_json("harness.machine.drift", thread_env(threads), timeout_s)


def add_sample(control: dict | None, sample: dict | None, threads: int, at: str) -> dict:
    """The run's control with one more measurement (a failed one is left out)."""
    control = control or {"version": CONTROL_VERSION, "samples": []}
    if sample:
        control["samples"].append({"threads": threads, "at": at, **sample})
    return control


def control_samples(control: dict | None) -> dict[int, list[float]]:
    """Thread count -> the control's seconds in the order measured (both storage versions)."""
    if not control:
        return {}
    if "samples" not in control:  # version 1: before/after, one thread
        values = [c["control_s"] for c in (control.get("before"), control.get("after")) if c]
        return {1: values} if values else {}
    out: dict[int, list[float]] = {}
    for sample in control["samples"]:
        out.setdefault(int(sample["threads"]), []).append(float(sample["control_s"]))
    return out


if __name__ == "__main__":
    print(json.dumps(control_workload()))
