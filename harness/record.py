"""Worker results -> pytest-benchmark: samples become the fixture's stats (so --benchmark-json,
--benchmark-save, --benchmark-compare and --benchmark-histogram work unchanged) and everything
else goes to ``benchmark.extra_info``."""

from __future__ import annotations

import statistics

from .timing import TimingOptions


def timing_options_for(item, config) -> TimingOptions:
    """The user's --benchmark-* timing options for a test, as pytest-benchmark resolves them
    (session options, overridden by a @pytest.mark.benchmark(...) marker)."""
    options = dict(config._benchmarksession.options)
    marker = item.get_closest_marker("benchmark")
    options.update(marker.kwargs if marker else {})
    warmup = options.get("warmup") and options.get("warmup_iterations")
    return TimingOptions(
        min_rounds=int(options["min_rounds"]),
        max_time=float(options["max_time"]),
        min_time=float(options["min_time"]),
        warmup=bool(warmup),
        warmup_iterations=int(warmup or 0) or 100000,
        calibration_precision=int(options["calibration_precision"]),
        disable_gc=bool(options["disable_gc"]),
    )


def per_process(result: dict) -> list[list[float]]:
    """Per-call seconds, one list per worker process."""
    return [[r / s["iterations"] for r in s["round_s"]] for s in result.get("samples") or [] if s.get("round_s")]


def median_s(result: dict) -> float | None:
    """Median per-call time over all processes' rounds (pytest-benchmark's median)."""
    pooled = [x for group in per_process(result) for x in group]
    return statistics.median(pooled) if pooled else None


def is_oversubscribed(result: dict) -> bool:
    budget = result.get("cpu_budget") or {}
    resolved = (result.get("threads") or {}).get("resolved")
    return bool(budget and resolved and resolved > budget.get("effective_cpus", resolved))


BUSY_LOAD = 0.10  # CPUs of foreign work during a cell above which its timing is flagged


def is_busy(result: dict) -> bool:
    return (result.get("foreign_load") or 0.0) > BUSY_LOAD


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
        "foreign_load": result.get("foreign_load"),
        "machine_busy": is_busy(result),
        "cpu_budget": result.get("cpu_budget"),
        "compile_s": result.get("compile_s"),
        "flops": result.get("flops"),
        "peak_rss_mb": result.get("peak_rss_mb"),
        "launcher": result.get("launcher"),
        "worker_wall_s": result.get("wall_s"),
        "regression_threshold": result.get("threshold"),
    }
    med = median_s(result)
    if med and result.get("flops"):
        info["gflops_per_s"] = result["flops"] / med / 1e9
    if result.get("parity"):
        from .parity import ParityReport

        info.update(ParityReport.from_dict(result["parity"]).summary())
    return info


MAX_STORED_SAMPLES = 300  # per process, in extra_info (what baselines keep)


def compact(samples: list[float], keep: int = MAX_STORED_SAMPLES) -> list[float]:
    """At most ``keep`` evenly spaced order statistics (min, median and max included), 6
    significant digits: the distribution a baseline needs for statistics, without 40k floats
    per fast cell. The verdict uses per-process medians, which this preserves."""
    ordered = sorted(samples)
    if len(ordered) > keep:
        idx = [round(i * (len(ordered) - 1) / (keep - 1)) for i in range(keep)]
        ordered = [ordered[i] for i in idx]
    return [float(f"{x:.6g}") for x in ordered]


def record(benchmark, result: dict) -> None:
    """Put the workers' samples into the pytest-benchmark fixture as if it had timed them, and
    keep them per process in extra_info (baselines need them for the verdict statistics)."""
    benchmark.extra_info.update(extra_info(result))
    groups = per_process(result)
    if groups:
        benchmark.extra_info["samples"] = {
            "per_process": [compact(g) for g in groups],
            "iterations": [s["iterations"] for s in result["samples"]],
            "processes": len(groups),
            "rounds": sum(map(len, groups)),
            "stored": f"up to {MAX_STORED_SAMPLES} order statistics per process",
        }
        if benchmark.enabled:
            stats = benchmark._make_stats(result["samples"][0]["iterations"])
            for group in groups:
                for per_call in group:
                    stats.stats.update(per_call)  # already per call: bypass Metadata's division
    benchmark._mode = "infer-bench worker"
