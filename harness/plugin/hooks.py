"""The pytest plugin: hook wiring only. It turns a suite's Matrix into test parameters and forwards
everything else to ``BenchSession`` (harness.plugin.session); pytest-benchmark's private API is
used in harness.plugin.bridge only. Activated by the root conftest.py (``pytest_plugins``).

A suite module declares ``MATRIX = Matrix(...)`` and a test taking the ``cell`` and
``measure_cell`` fixtures::

    def test_latency(cell, measure_cell):
        measure_cell(cell)
"""

from __future__ import annotations

import pytest

from harness.backends import UnknownBackendError
from harness.compare.metrics import METRIC_THRESHOLDS_KEY
from harness.compare.sequential import LOOK_KEY
from harness.machine.profile import current_profile
from harness.models import UnknownModelError
from harness.plan.cell import Cell
from harness.plan.matrix import Matrix, MatrixError
from harness.plugin.bridge import file_runs_by_profile, record, save_safely, storage_root, timing_options_for
from harness.plugin.options import (
    MARKERS,
    RunOptions,
    add_options,
    processes_for,
    regression_threshold,
    verdict_statistic,
)
from harness.plugin.session import BenchSession, Measured
from harness.run.schedule import PlannedCell
from harness.store.results import stamp

SESSION_KEY = pytest.StashKey[BenchSession]()


def pytest_addoption(parser):
    add_options(parser)


def pytest_configure(config):
    for marker, text in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
    options = RunOptions.from_config(config)
    # a TVM RPC run is the device's: stored and compared under its profile (harness.backends.tvm.remote)
    profile = options.remote.profile() if options.remote else current_profile(options.confinement)
    config.stash[SESSION_KEY] = BenchSession(options, root=config.rootpath, current_profile=profile)
    file_runs_by_profile(profile["profile_id"])  # before pytest-benchmark (trylast) loads the compared run


def pytest_sessionstart(session):
    """pytest-benchmark is configured by now: its saves go through the harness's safe writer."""
    bench = _session(session.config)
    save_safely(session.config, bench.save_problems.append)


def _session(config) -> BenchSession:
    return config.stash[SESSION_KEY]


def pytest_generate_tests(metafunc):
    if "cell" not in metafunc.fixturenames:
        return
    where = metafunc.module.__file__
    matrix = getattr(metafunc.module, "MATRIX", None)
    if not isinstance(matrix, Matrix):
        pytest.fail(
            f"{where}: a test using the 'cell' fixture needs a module-level MATRIX = Matrix(...)", pytrace=False
        )
    try:
        cells = _session(metafunc.config).cells(matrix)
    except (UnknownModelError, UnknownBackendError, MatrixError) as exc:
        pytest.fail(f"{where}: {exc}", pytrace=False)
    params = []
    for mc in cells:
        marks = [pytest.mark.smoke if mc.smoke else pytest.mark.full]
        if mc.skip_reason:
            marks.append(pytest.mark.skip(reason=mc.skip_reason))
        params.append(pytest.param(mc.cell, id=mc.id, marks=marks))
    metafunc.parametrize("cell", params)


def pytest_collection_modifyitems(session, config, items):
    """--shard K/N: keep this shard's cells (harness.plan.shard), deselect the others."""
    bench = _session(config)
    if bench.options.shard is None:
        return
    measuring = [item.nodeid for item in items if _cell(item) is not None]
    others = set(measuring) - bench.shard(measuring, storage_root(config))
    if others:
        config.hook.pytest_deselected(items=[item for item in items if item.nodeid in others])
        items[:] = [item for item in items if item.nodeid not in others]


def pytest_report_collectionfinish(config, start_path, items):
    return _session(config).shard_note or []


def _measures(item) -> bool:
    return "measure_cell" in getattr(item, "fixturenames", ())


def _request(item, config) -> dict:
    """What the worker needs besides the cell: timing options, parity policy, confinement."""
    options = _session(config).options
    request = {
        "timing": timing_options_for(item, config),
        "parity": options.parity,
        "confinement": options.confinement,
        "include_transfers": options.include_transfers,
    }
    if options.remote:  # threads resolve against the device's CPUs
        request.update(remote=options.remote.to_dict(), budget=options.remote.budget())
    return request


def _matrix_cell(item) -> Cell | None:
    """The cell a test is parametrised with (None: it has none)."""
    cell = getattr(item, "callspec", None) and item.callspec.params.get("cell")
    return cell if isinstance(cell, Cell) else None


def _cell(item) -> Cell | None:
    """The cell a selected test will measure (None: it measures nothing, is skipped, or its model
    failed its check)."""
    cell = getattr(item, "callspec", None) and item.callspec.params.get("cell")
    if not _measures(item) or not isinstance(cell, Cell) or item.get_closest_marker("skip") is not None:
        return None
    return None if _session(item.config).broken_reason(cell) else cell


def _planned(item, config) -> PlannedCell | None:
    cell = _cell(item)
    if cell is None:
        return None
    options = _session(config).options
    return PlannedCell(
        item.nodeid,
        cell,
        processes_for(item, options),
        _request(item, config),
        regression_threshold(item, options),
        verdict_statistic(item, options, cell),
    )


def _measure_planned(session, bench: BenchSession) -> None:
    """Measure every selected cell up front, worker processes interleaved, one progress line each."""
    config = session.config
    plan = [p for item in session.items if (p := _planned(item, config)) is not None]
    total, done = sum(p.processes for p in plan), [0]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and plan:
        reporter.write_sep("-", f"infer-bench: measuring {len(plan)} cells, {total} worker processes, interleaved")

    def progress(key, cell, index, processes, result):
        done[0] += 1
        if reporter is not None and config.option.verbose >= 0:
            med = result.median_s()
            where = f"{done[0]}/{total}" if done[0] <= total else f"until-decided +{done[0] - total}"
            reporter.write_line(
                f"[infer-bench {where}] {cell.id} process {index}/{processes}: {result.status}"
                + (f", median {med * 1e3:.3f} ms so far" if med else "")
            )

    bench.measure(plan, progress)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session):
    """Drift control before and after the cells, the interleaved measurement before the tests,
    then the verdicts (before pytest-benchmark writes its JSON at session finish, so they go in)."""
    config = session.config
    bench = _session(config)
    measuring = any(_measures(item) for item in session.items) and not config.option.collectonly
    if measuring:
        bench.measure_control("before", [c for item in session.items if (c := _cell(item)) is not None])
    if measuring and bench.options.interleaved:
        _measure_planned(session, bench)
    yield
    if measuring:
        bench.measure_control("after")
        bench.judge(
            [
                Measured(
                    item.nodeid,
                    regression_threshold(item, bench.options),
                    verdict_statistic(item, bench.options, _matrix_cell(item)),
                )
                for item in session.items
                if _measures(item)
            ],
            storage_root(config),
        )


@pytest.fixture
def measure_cell(request, benchmark):
    """Record a cell's measurement in pytest-benchmark (measured up front by the interleaved
    schedule, or now with --schedule sequential / --launcher inline); fails or skips the test
    with a one-line reason when the cell could not be measured."""
    config = request.config
    bench = _session(config)

    def _measure(cell: Cell):
        item = request.node
        result = bench.take(
            item.nodeid,
            cell,
            processes_for(item, bench.options),
            _request(item, config),
            regression_threshold(item, bench.options),
            verdict_statistic(item, bench.options, cell),
        )
        record(benchmark, result)
        if bench.options.metric_thresholds:  # compare and report judge the saved run by them too
            benchmark.extra_info[METRIC_THRESHOLDS_KEY] = dict(bench.options.metric_thresholds)
        if bench.adaptation is not None and not bench.adaptation.note:  # compare judges it at this look's level too
            benchmark.extra_info[LOOK_KEY] = bench.looks.get(item.nodeid, 1)
        if result.status == "unavailable":
            pytest.skip(result.message)
        if not result.ok:
            pytest.fail(
                f"{cell.id}: {result.message}" + (f"\n{result.traceback}" if result.traceback else ""), pytrace=False
            )
        return result

    return _measure


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["infer_bench"] = _session(config).current_profile


def pytest_benchmark_compare_machine_info(config, benchmarksession, machine_info, compared_benchmark):
    """Remember the baseline for the verdicts, and never compare across profiles silently."""
    warning = _session(config).set_baseline(
        compared_benchmark, machine_info, getattr(benchmarksession.storage, "path", "baselines")
    )
    if warning:
        benchmarksession.logger.warning(warning)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    stamp(output_json)["infer_bench"].update(_session(config).saved_extra())


def pytest_sessionfinish(session, exitstatus):
    """Runs after pytest-benchmark has saved (its hook wraps this one): a regression under
    --fail-on-regression, or results that could not be saved where asked, fail the run."""
    bench = _session(session.config)
    if bench.failed_on_regression or bench.save_problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for title, lines, warning in _session(config).summary():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line, yellow=warning)
