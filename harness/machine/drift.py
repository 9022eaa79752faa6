"""Drift control: a fixed workload measured before and after the cells of a run.

If the machine itself got slower (another tenant, thermal state, a noisy neighbour), the control
slows down too; comparisons then show drift-corrected ratios beside raw ones. The control is a
single-threaded float32 matrix multiply (256x256, numpy/OpenBLAS) plus a pure-Python loop,
measured in a fresh process with one thread, median of 31 rounds each, combined as a geometric
mean (seconds).

The control has noise of its own (a few percent between processes here), and dividing every
ratio by a noisy factor would blur every verdict, so a drift correction is applied only when the
control moved by more than ``DRIFT_TOLERANCE``; the factor is shown either way."""

from __future__ import annotations

import json
import statistics
import time

from harness.machine.probe import run_module_json
from harness.machine.threads import thread_env

CONTROL_VERSION = 1
DRIFT_TOLERANCE = 0.10


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


def measure_control(timeout_s: float = 120.0) -> dict | None:
    """Run the control in a fresh single-threaded process; None if that fails."""
    return run_module_json("harness.machine.drift", thread_env(1), timeout_s)


def run_control(control: dict | None) -> float | None:
    """One number for a run: mean of the before/after control seconds."""
    if not control:
        return None
    values = [c["control_s"] for c in (control.get("before"), control.get("after")) if c]
    return sum(values) / len(values) if values else None


def drift_factor(current_control: dict | None, baseline_control: dict | None) -> float | None:
    """control(now) / control(baseline), or None when either run has no control."""
    cur, base = run_control(current_control), run_control(baseline_control)
    return cur / base if cur and base else None


def applied_drift(
    current_control: dict | None, baseline_control: dict | None, tolerance: float = DRIFT_TOLERANCE
) -> float | None:
    """The drift factor to divide ratios by: only when the control moved beyond its own noise."""
    factor = drift_factor(current_control, baseline_control)
    return factor if factor is not None and abs(factor - 1) > tolerance else None


def within_run_drift(control: dict | None) -> float | None:
    """after / before of the control inside one run (1.0 = steady machine)."""
    if not control or not control.get("before") or not control.get("after"):
        return None
    return control["after"]["control_s"] / control["before"]["control_s"]


if __name__ == "__main__":
    print(json.dumps(control_workload()))
