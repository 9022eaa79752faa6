"""How good are the verdicts on the machine this runs on?

Measures pools of worker processes for one cell under three conditions, interleaved so that any
machine drift hits all of them alike: no change (A), a +5% and a +10% slowdown injected by the
test-only ``slowed`` backend (tests/fake_backends.py: a calibrated busy-wait after every call).
Then it draws many comparisons from the pools (disjoint random subsets of processes) and counts:

- false alarms: A vs A comparisons called a ``regression`` (what fails a gate), and A vs A
  comparisons called any significant change (regression, improvement or their minor forms);
- detection: A vs +5% / +10% comparisons called a ``regression`` or ``minor regression`` (for
  pytest-benchmark's rule: called a regression);

for infer-bench's verdict (harness.compare.verdict.judge) and for pytest-benchmark's fixed threshold
(``--benchmark-compare-fail=median:5%``: pooled median ratio > 1.05) on the same data, with one
process per side (how pytest-benchmark is normally run) and with P processes per side.

    python benchmarks/detection_power.py                     # squeezenet on ort, 2 threads
    python benchmarks/detection_power.py --model resnet_tiny --pool 30 --processes 3 5
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.compare.verdict import DEFAULT_ALPHA, DEFAULT_THRESHOLD, judge  # noqa: E402
from harness.plan.cell import Cell  # noqa: E402
from harness.run.launcher import build_request, run_in_process  # noqa: E402
from harness.store.io import write_atomic  # noqa: E402

CONDITIONS = {"A": 0.0, "+5%": 0.05, "+10%": 0.10}


def measure_pools(model: str, backend: str, threads: str, pool: int, seconds: float) -> dict[str, list[np.ndarray]]:
    cell = Cell(model, "slowed", threads=threads)
    request = replace(build_request(cell, timing={"max_time": seconds, "min_rounds": 5}), check_parity=False)
    env = {"INFER_BENCH_BACKENDS": "slowed=tests.fake_backends:Slowed", "INFER_BENCH_SLOW_INNER": backend}
    pools: dict[str, list[np.ndarray]] = {name: [] for name in CONDITIONS}
    for i in range(pool):
        for name, slowdown in CONDITIONS.items():  # interleaved: drift hits every condition alike
            result = run_in_process(request, timeout_s=300, extra_env=dict(env, INFER_BENCH_SLOWDOWN=str(slowdown)))
            if not result.ok:
                raise SystemExit(f"{name} process {i}: {result.message}")
            pools[name].append(np.array(result.per_process()[0]))
        print(
            f"  pool {i + 1}/{pool}: " + ", ".join(f"{n} {np.median(pools[n][-1]) * 1e3:.3f} ms" for n in CONDITIONS),
            file=sys.stderr,
            flush=True,
        )
    return pools


def pytest_benchmark_rule(base: list[np.ndarray], cur: list[np.ndarray], threshold: float) -> bool:
    return float(np.median(np.concatenate(cur))) / float(np.median(np.concatenate(base))) > 1 + threshold


SIGNIFICANT = ("regression", "minor regression", "improvement", "minor improvement")


def rates(pools, processes: int, trials: int, threshold: float, alpha: float, seed: int) -> dict:
    """cond -> (our rate, pytest-benchmark's rate); for A also our rate of any significant call."""
    rng = np.random.default_rng(seed)
    out = {}
    for cond in CONDITIONS:
        ours = theirs = anything = 0
        for t in range(trials):
            if cond == "A":  # two disjoint subsets of the same pool
                idx = rng.permutation(len(pools["A"]))[: 2 * processes]
                base, cur = [pools["A"][i] for i in idx[:processes]], [pools["A"][i] for i in idx[processes:]]
            else:
                base = [pools["A"][i] for i in rng.choice(len(pools["A"]), processes, replace=False)]
                cur = [pools[cond][i] for i in rng.choice(len(pools[cond]), processes, replace=False)]
            verdict = judge("c", base, cur, threshold, alpha, n_boot=200, seed=t).verdict
            ours += verdict == "regression" if cond == "A" else verdict in ("regression", "minor regression")
            anything += verdict in SIGNIFICANT
            theirs += pytest_benchmark_rule(base, cur, threshold)
        out[cond] = (ours / trials, theirs / trials, anything / trials)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="false-alarm and detection rates of the regression verdict")
    parser.add_argument("--model", default="squeezenet")
    parser.add_argument("--backend", default="ort")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--pool", type=int, default=24, help="worker processes measured per condition")
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="timing seconds per worker process (--benchmark-max-time)"
    )
    parser.add_argument("--processes", type=int, nargs="+", default=[3, 5], help="processes per side to evaluate")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("-o", "--output", default=str(ROOT / "reports" / "detection_power.md"))
    parser.add_argument(
        "--save-pools",
        default=str(ROOT / "reports" / "detection_pools.npz"),
        help="where the measured pools are kept (re-evaluate them with --load-pools)",
    )
    parser.add_argument("--load-pools", default=None, help="evaluate previously measured pools instead of measuring")
    args = parser.parse_args()

    started = time.time()
    if args.load_pools:
        with np.load(args.load_pools) as data:
            pools = {
                c: [
                    data[k]
                    for k in sorted(
                        (k for k in data.files if k.startswith(c + "|")), key=lambda k: int(k.split("|")[1])
                    )
                ]
                for c in CONDITIONS
            }
            if "meta_seconds" in data.files:
                args.seconds = float(data["meta_seconds"])
        args.pool = len(pools["A"])
    else:
        print(f"measuring {args.pool} x {len(CONDITIONS)} worker processes ...", file=sys.stderr)
        pools = measure_pools(args.model, args.backend, args.threads, args.pool, args.seconds)
        Path(args.save_pools).parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            meta_seconds=np.array(args.seconds),
            **{f"{c}|{i}": g for c in CONDITIONS for i, g in enumerate(pools[c])},
        )
        write_atomic(args.save_pools, buffer.getvalue())
    medians = {c: statistics.median(float(np.median(g)) for g in pools[c]) * 1e3 for c in CONDITIONS}
    spread = {c: float(np.std(np.log([np.median(g) for g in pools[c]]))) for c in CONDITIONS}
    lines = [
        f"# Detection power: {args.model} on {args.backend}, {args.threads} threads",
        "",
        f"Pools of {args.pool} worker processes per condition, {args.seconds:g} s of timing each (plus warm-up), "
        f"interleaved; {args.trials} comparisons per cell of the table drawn from the pools. "
        f"Threshold {args.threshold:.0%}, alpha {args.alpha}. Measured in {time.time() - started:.0f} s.",
        "",
        "Median of process medians: "
        + ", ".join(f"{c} {m:.3f} ms" for c, m in medians.items())
        + "; between-process spread (std of log process medians): "
        + ", ".join(f"{c} {s:.1%}" for c, s in spread.items()),
        "",
        "| rule | processes per side | measuring s per side | false `regression` (A/A) | any significant "
        "call (A/A) | detected +5% | detected +10% |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in [1] + list(args.processes):
        r = rates(pools, p, args.trials, args.threshold, args.alpha, seed=p)
        lines.append(
            f"| infer-bench verdict | {p} | {p * args.seconds:g} | {r['A'][0]:.1%} | {r['A'][2]:.1%} | "
            f"{r['+5%'][0]:.1%} | {r['+10%'][0]:.1%} |"
        )
        lines.append(
            f"| pytest-benchmark median:{args.threshold:.0%} | {p} | {p * args.seconds:g} | {r['A'][1]:.1%} | - | "
            f"{r['+5%'][1]:.1%} | {r['+10%'][1]:.1%} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
