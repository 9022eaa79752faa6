"""Every use of pytest-benchmark's private API, in one file.

Cell results become the benchmark fixture's stats (so --benchmark-json, --benchmark-save,
--benchmark-compare and --benchmark-histogram work unchanged) and the rest goes to
``benchmark.extra_info`` (harness.store.results.extra_info). Private API used here:
``config._benchmarksession.options`` (the resolved --benchmark-* timing options),
``benchmark._make_stats`` and ``benchmark._mode`` (recording samples measured elsewhere).
pytest-benchmark's own order matters to the plugin: it captures the compared baseline in a
trylast ``pytest_configure`` and calls ``pytest_benchmark_compare_machine_info`` with it while
the session runs, before the tests report; the plugin's verdicts are computed after the run
loop and before pytest-benchmark writes its JSON at session finish."""

from __future__ import annotations

from harness.run.protocol import CellResult
from harness.run.timing import TimingOptions
from harness.store.results import extra_info


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
        warmup_iterations=int(warmup or 0) or TimingOptions.warmup_iterations,
        calibration_precision=int(options["calibration_precision"]),
        disable_gc=bool(options["disable_gc"]),
    )


def record(benchmark, result: CellResult) -> None:
    """Put the workers' samples into the pytest-benchmark fixture as if it had timed them, and
    keep them per process in extra_info (baselines need them for the verdict statistics)."""
    benchmark.extra_info.update(extra_info(result))
    groups = result.per_process()
    if groups and benchmark.enabled:
        stats = benchmark._make_stats(result.samples[0].iterations)
        for group in groups:
            for per_call in group:
                stats.stats.update(per_call)  # already per call: bypass Metadata's division
    benchmark._mode = "infer-bench worker"
