"""Does the harness's timing loop distort fast models?

For each cell, in one process and on one compiled artifact, alternate the harness's loop
(harness.run.timing.measure, as the worker runs it) with a bare ``time.perf_counter()`` loop, several
times, and compare medians. Target: within 3% for cells of 1 ms or more.

    python benchmarks/overhead.py                       # default cells, 2 threads
    python benchmarks/overhead.py --cells squeezenet:ort mlp:torch --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bare_loop(step, seconds: float) -> float:
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cells",
        nargs="*",
        default=["squeezenet:ort", "bert_tiny:torch", "resnet_tiny:ort", "mlp:ort"],
        help="model:backend pairs",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="alternations of harness loop and bare loop")
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per loop")
    args = parser.parse_args()

    from harness.machine.threads import thread_env

    os.environ.update(thread_env(args.threads))  # before any runtime is imported
    from harness.backends import get_backend
    from harness.models import build_model
    from harness.models.base import INPUT_SEED_TIMING
    from harness.plan.targets import get_target
    from harness.run.timing import TimingOptions, measure

    options = TimingOptions(max_time=args.seconds)
    print("| cell | harness median ms | bare loop median ms | harness / bare |")
    print("|---|---:|---:|---:|")
    for spec in args.cells:
        model_name, backend_name = spec.split(":")
        model = build_model(model_name)
        x = model.make_inputs(INPUT_SEED_TIMING)
        step = get_backend(backend_name).compile(model, get_target("llvm"), args.threads, x).prepare(x)
        harness, bare = [], []
        for _ in range(args.repeats):
            s = measure(step, options)
            harness.append(statistics.median(s.per_call_s))
            bare.append(bare_loop(step, args.seconds))
        h, b = statistics.median(harness), statistics.median(bare)
        print(
            f"| {model_name}-{backend_name}-t{args.threads} | {h * 1e3:.4f} | {b * 1e3:.4f} | {h / b:.3f} |", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
