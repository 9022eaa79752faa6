"""Every use of pytest-benchmark's private API, in one file.

Cell results become the benchmark fixture's stats (so --benchmark-json, --benchmark-save,
--benchmark-compare and --benchmark-histogram work unchanged) and the rest goes to
``benchmark.extra_info`` (harness.store.results.extra_info). Private API used here:
``config._benchmarksession.options`` (the resolved --benchmark-* timing options),
``benchmark._make_stats`` and ``benchmark._mode`` (recording samples measured elsewhere),
``BenchmarkSession.storage``/``save_json`` (replaced by ``save_safely``: saves that never leave a
half-written or overwritten file, and a result that is kept somewhere when its folder cannot be
written), ``pytest_benchmark.session.get_machine_id`` (the machine profile's id: ``file_runs_by_profile``).
pytest-benchmark's own order matters to the plugin: it captures the compared baseline in a
trylast ``pytest_configure`` and calls ``pytest_benchmark_compare_machine_info`` with it while
the session runs, before the tests report; the plugin's verdicts are computed after the run
loop and before pytest-benchmark writes its JSON at session finish."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.run.protocol import CellResult
from harness.run.timing import TimingOptions
from harness.store.baselines import BaselineStore
from harness.store.io import write_atomic
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


def _kept_elsewhere(text: str) -> str:
    """Where a result went when its own folder could not be written: a temporary file, or why
    not even that could be written (the same full disk)."""
    fd, name = tempfile.mkstemp(prefix="infer-bench-unsaved-", suffix=".json")
    try:
        with open(fd, "w") as fh:
            fh.write(text)
    except OSError as exc:
        Path(name).unlink(missing_ok=True)
        return f"nowhere: {name} could not be written either ({exc.strerror or exc})"
    return name


def save_safely(config, problem: Callable[[str], None]) -> None:
    """Make pytest-benchmark's --benchmark-save and --benchmark-json write the harness's way:
    the next run number claimed only with the complete file (harness.store.baselines.save_run),
    the JSON replaced atomically; when the folder is read-only or full, the result is written to
    a temporary file instead and ``problem`` gets one line saying where."""
    from pytest_benchmark.storage.file import FileStorage
    from pytest_benchmark.utils import safe_dumps

    def dumps(output_json) -> str:
        return safe_dumps(output_json, ensure_ascii=True, indent=4)

    benchmarksession = config._benchmarksession
    storage = benchmarksession.storage
    if isinstance(storage, FileStorage):

        def save(output_json, name):
            folder = storage.path / storage.default_machine_id if storage.default_machine_id else storage.path
            text = dumps(output_json)
            try:
                path = BaselineStore(folder.parent, folder.name).add(text, name)
            except OSError as exc:
                kept = _kept_elsewhere(text)
                later = f": store it later with python -m harness baseline update --from {kept}"
                problem(
                    f"--benchmark-save: cannot write {folder} ({exc.strerror or exc}); the run is in {kept}"
                    + (later if not kept.startswith("nowhere") else "")
                )
                return
            storage.logger.info(f"Saved benchmark data in: {path}")

        storage.save = save
    target = benchmarksession.json

    def save_json(output_json):
        text = dumps(output_json)
        path = Path(target)
        try:
            write_atomic(path, text)
        except OSError as exc:
            kept = _kept_elsewhere(text)
            problem(f"--benchmark-json: cannot write {path} ({exc.strerror or exc}); the results are in {kept}")
            return
        benchmarksession.logger.info(f"Wrote benchmark data in: {path}", purple=True)

    if target:
        benchmarksession.save_json = save_json


def file_runs_by_profile(profile_id: str) -> None:
    """pytest-benchmark files saved runs under its machine id (OS, Python, bits): make that the
    machine profile's id, so --benchmark-save and --benchmark-compare use
    ``<storage>/<profile id>/`` (harness.store.baselines). Must run before pytest-benchmark's own
    (trylast) pytest_configure creates its session."""
    import pytest_benchmark.session

    pytest_benchmark.session.get_machine_id = lambda: profile_id


def storage_root(config):
    """The folder pytest-benchmark's file storage saves to and compares from (--benchmark-storage)."""
    return getattr(getattr(config, "_benchmarksession", None) and config._benchmarksession.storage, "path", "baselines")
