"""Worker results -> pytest-benchmark: samples become the fixture's stats (so --benchmark-json,
--benchmark-save, --benchmark-compare and --benchmark-histogram work unchanged) and everything
else goes to ``benchmark.extra_info``."""

from __future__ import annotations

import statistics

from .timing import TimingOptions


def timing_options_from(benchmark) -> TimingOptions:
    """Read the user's --benchmark-* timing options off the fixture."""
    return TimingOptions(
        min_rounds=int(benchmark._min_rounds),
        max_time=float(benchmark._max_time),
        min_time=float(benchmark._min_time),
        warmup=bool(benchmark._warmup),
        warmup_iterations=int(benchmark._warmup or 0) or 100000,
        calibration_precision=int(benchmark._calibration_precision),
        disable_gc=bool(benchmark._disable_gc),
    )


def median_s(result: dict) -> float | None:
    samples = result.get("samples")
    if not samples or not samples.get("round_s"):
        return None
    return statistics.median(samples["round_s"]) / samples["iterations"]


def is_oversubscribed(result: dict) -> bool:
    budget = result.get("cpu_budget") or {}
    resolved = (result.get("threads") or {}).get("resolved")
    return bool(budget and resolved and resolved > budget.get("effective_cpus", resolved))


def extra_info(result: dict) -> dict:
    cell = result["cell"]
    info = {
        "backend": cell["backend"],
        "backend_version": result.get("backend_version"),
        "backend_label": result.get("label"),
        "model": cell["model"],
        "model_kind": result.get("model_kind"),
        "target": cell["target"],
        "sparsity": cell["sparsity"],
        "measured_sparsity": result.get("measured_sparsity"),
        "batch": cell["batch"],
        "threads": cell["threads"],
        "threads_resolved": (result.get("threads") or {}).get("resolved"),
        "threads_runtime": (result.get("threads") or {}).get("runtime"),
        "threads_env": (result.get("threads") or {}).get("env"),
        "os_threads": (result.get("threads") or {}).get("os_threads"),
        "oversubscribed": is_oversubscribed(result),
        "cpu_budget": result.get("cpu_budget"),
        "compile_s": result.get("compile_s"),
        "flops": result.get("flops"),
        "peak_rss_mb": result.get("peak_rss_mb"),
        "launcher": result.get("launcher"),
        "worker_wall_s": result.get("wall_s"),
    }
    med = median_s(result)
    if med and result.get("flops"):
        info["gflops_per_s"] = result["flops"] / med / 1e9
    if result.get("parity"):
        from .parity import ParityReport

        info.update(ParityReport.from_dict(result["parity"]).summary())
    return info


def record(benchmark, result: dict) -> None:
    """Put a worker's samples into the pytest-benchmark fixture as if it had timed them."""
    benchmark.extra_info.update(extra_info(result))
    samples = result.get("samples")
    if samples and benchmark.enabled:
        stats = benchmark._make_stats(samples["iterations"])
        for duration in samples["round_s"]:
            stats.update(duration)
    benchmark._mode = "infer-bench worker"
