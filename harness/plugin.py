"""The pytest plugin: turns a suite's Matrix into parameters, runs each cell through the
launcher and hands the samples to pytest-benchmark. Kept thin: the library underneath works
without pytest.

A suite module declares ``MATRIX = Matrix(...)`` and a test taking the ``cell`` and
``measure_cell`` fixtures::

    def test_latency(cell, measure_cell):
        measure_cell(cell)
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from .backends import UnknownBackendError, get_backend
from .cell import Cell
from .drift import applied_drift, measure_control
from .launcher import DEFAULT_TIMEOUT_S, run_cell, run_cells
from .matrix import Matrix, MatrixError, normalize_axis, parse_list
from .models import UnknownModelError, UserModelError, is_batchable, model_kind, model_name_for
from .models.user import parse_input_shapes
from .record import is_busy, is_oversubscribed, median_s, per_process, record, timing_options_for
from .report import fmt_or_dash, verdict_lines
from .results import control_of, profile_of
from .targets import TARGETS, UnknownTargetError, get_target
from .verdict import DEFAULT_THRESHOLD, judge_against

RESULTS_KEY = pytest.StashKey[list]()
SESSION_KEY = pytest.StashKey[dict]()  # control, baseline, verdicts, profile notes


def pytest_addoption(parser):
    group = parser.getgroup("infer-bench", "infer-bench matrix and worker options")
    for axis, example in (("models", "mlp,bert_tiny"), ("backends", "ort,tvm"), ("targets", "llvm"),
                          ("sparsity", "0,0.9"), ("threads", "1,2,auto,host"), ("batch", "1,8")):
        group.addoption(f"--{axis}", default=None, metavar="LIST",
                        help=f"comma list replacing the suite's {axis} axis for this run, e.g. {example}")
    group.addoption("--model-file", default=None, metavar="PATH.onnx",
                    help="benchmark this ONNX file instead of the suite's models (input shapes from the file)")
    group.addoption("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224",
                    help="shape for a dynamic input of --model-file (repeatable or comma list)")
    group.addoption("--model-factory", default=None, metavar="package.module:function",
                    help="benchmark a torch model: the function returns (module, example_inputs)")
    group.addoption("--launcher", default="process", choices=("process", "inline"),
                    help="process (default): one fresh worker process per cell, thread settings applied before "
                         "any runtime loads; inline: in the pytest process (debugging; threads cannot change)")
    group.addoption("--schedule", default="interleaved", choices=("interleaved", "sequential"),
                    help="interleaved (default): measure all selected cells before the tests report, worker processes "
                         "round-robin across cells so a slow stretch of the machine cannot shift all of one cell's "
                         "processes; sequential: each test measures its cell when it runs")
    group.addoption("--cell-timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                    help=f"kill a cell's worker after this long (default {DEFAULT_TIMEOUT_S:g})")
    group.addoption("--report-dir", default="reports", metavar="DIR",
                    help="where the thread-scaling report (threads.md, threads.png) is written (default reports/)")
    group.addoption("--processes", type=int, default=None, metavar="N",
                    help="worker processes per cell whose timings are pooled (default: the suite's PROCESSES, else 3); "
                         "verdicts need >= 2 to see between-process noise, 1 is faster for exploration")
    group.addoption("--fail-on-regression", action="store_true",
                    help="exit non-zero when any cell's verdict against the compared baseline is 'regression'")
    group.addoption("--regression-threshold", type=float, default=None, metavar="FRACTION",
                    help="minimum practical effect for a verdict (default 0.05; per suite: REGRESSION_THRESHOLD, "
                         "per test: @pytest.mark.regression_threshold(0.10))")
    group.addoption("--regression-alpha", type=float, default=0.01, metavar="ALPHA",
                    help="significance level; the confidence interval is 1 - alpha (default 0.01)")
    group.addoption("--no-drift-control", action="store_true",
                    help="skip the control workload measured before and after the cells")
    group.addoption("--parity-multiplier", type=float, default=None, metavar="X",
                    help="error budget = X * (fp32 reference error vs float64) + floor (default 10)")


def pytest_configure(config):
    config.addinivalue_line("markers", "smoke: the small default benchmark matrix")
    config.addinivalue_line("markers", "full: cells outside the smoke matrix (nightly)")
    config.addinivalue_line("markers", "regression_threshold(fraction): minimum practical effect for this test's verdicts")
    config.stash[RESULTS_KEY] = []
    config.stash[SESSION_KEY] = {}
    validate_options(config)


CLI_AXES = ("models", "backends", "targets", "sparsity", "threads", "batch")


def cli_axes(config) -> dict[str, list[str]]:
    return {axis: parse_list(config.getoption(axis)) for axis in CLI_AXES if config.getoption(axis)}


def validate_options(config) -> None:
    """Bad command-line values stop the run before collection with one line (exit code 4)."""
    try:
        axes = cli_axes(config)
        for axis, values in axes.items():
            normalize_axis(axis, values)
        for name in axes.get("backends", []):
            get_backend(name)
        for name in axes.get("targets", []):
            get_target(name)
        if _user_model(config) is None:
            for name in axes.get("models", []):
                model_kind(name)
    except (MatrixError, UnknownBackendError, UnknownTargetError, UnknownModelError, UserModelError) as exc:
        raise pytest.UsageError(f"infer-bench: {exc}") from None


def _user_model(config) -> tuple[str, dict] | None:
    path, factory = config.getoption("model_file"), config.getoption("model_factory")
    if path and factory:
        raise UserModelError("--model-file and --model-factory are exclusive: give one")
    shapes = parse_input_shapes(config.getoption("input_shape"))
    if shapes and not path:
        raise UserModelError("--input-shape only applies to --model-file")
    if path:
        if not os.path.isfile(path):
            raise UserModelError(f"--model-file {path}: no such file")
        # workers run in the project root: hand them an absolute path
        return model_name_for(path), {"model_file": os.path.abspath(path), "input_shapes": {k: list(v) for k, v in shapes.items()}}
    if factory:
        return model_name_for(factory), {"model_factory": factory}
    return None


def effective_matrix(matrix: Matrix, config) -> tuple[Matrix, dict]:
    """The suite's matrix with this run's command-line axes (validated in pytest_configure)."""
    overrides, options = cli_axes(config), {}
    user = _user_model(config)
    if user:
        overrides["models"] = [user[0]]
        options = {user[0]: user[1]}
    return matrix.override(**overrides), options


def unsupported_reason(cell: Cell) -> str | None:
    """Why a cell cannot run here, decided without importing any runtime."""
    backend = get_backend(cell.backend)
    if backend.module and importlib.util.find_spec(backend.module) is None:
        return f"backend {cell.backend}: package {backend.module!r} is not installed"
    if cell.target not in TARGETS:
        return f"unknown target {cell.target!r} (known: {', '.join(TARGETS)})"
    reason = backend.unsupported_reason(model_kind(cell.model, cell.model_options), cell.target)
    if reason:
        return reason
    if cell.batch is not None and not is_batchable(cell.model, cell.model_options):
        return f"model {cell.model} has its batch size fixed by its graph; batch {cell.batch} cannot be applied"
    return None


def pytest_generate_tests(metafunc):
    if "cell" not in metafunc.fixturenames:
        return
    where = metafunc.module.__file__
    matrix = getattr(metafunc.module, "MATRIX", None)
    if not isinstance(matrix, Matrix):
        pytest.fail(f"{where}: a test using the 'cell' fixture needs a module-level MATRIX = Matrix(...)", pytrace=False)
    matrix, options = effective_matrix(matrix, metafunc.config)
    try:
        cells = matrix.expand(unsupported_reason, options)
    except (UnknownModelError, UnknownBackendError, MatrixError) as exc:
        pytest.fail(f"{where}: {exc}", pytrace=False)
    params = []
    for mc in cells:
        marks = [pytest.mark.smoke if mc.smoke else pytest.mark.full]
        if mc.skip_reason:
            marks.append(pytest.mark.skip(reason=mc.skip_reason))
        params.append(pytest.param(mc.cell, id=mc.id, marks=marks))
    metafunc.parametrize("cell", params)


def cell_request(item, config) -> dict:
    """What the worker needs besides the cell: timing options and parity policy."""
    parity = {}
    if config.getoption("parity_multiplier") is not None:
        parity["multiplier"] = config.getoption("parity_multiplier")
    return {"timing": timing_options_for(item, config).to_dict(), "parity": parity}


def _cell_of(item) -> Cell | None:
    if "measure_cell" not in getattr(item, "fixturenames", ()):
        return None
    cell = getattr(item, "callspec", None) and item.callspec.params.get("cell")
    return cell if isinstance(cell, Cell) and item.get_closest_marker("skip") is None else None


def run_schedule(session) -> dict:
    """Measure every selected cell before the tests report them, worker processes interleaved
    across cells (see harness.launcher.run_cells); tests then record their cell's result."""
    config = session.config
    plan = [(item.nodeid, cell, processes_for(item, config), cell_request(item, config))
            for item in session.items if (cell := _cell_of(item)) is not None]
    if not plan:
        return {}
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    total = sum(n for _, _, n, _ in plan)
    done = [0]

    def progress(key, cell, index, processes, result):
        done[0] += 1
        if reporter is not None and config.option.verbose >= 0:
            med = median_s(result)
            reporter.write_line(f"[infer-bench {done[0]}/{total}] {cell.id} process {index}/{processes}: {result['status']}"
                                + (f", median {med * 1e3:.3f} ms so far" if med else ""))

    if reporter is not None:
        reporter.write_sep("-", f"infer-bench: measuring {len(plan)} cells, {total} worker processes, interleaved")
    return run_cells(plan, config.getoption("cell_timeout"), progress)


@pytest.fixture
def measure_cell(request, benchmark):
    """Record a cell's measurement in pytest-benchmark (measured up front by the interleaved
    schedule, or now with --schedule sequential / --launcher inline); fails or skips the test
    with a one-line reason when the cell could not be measured."""
    config = request.config

    def _measure(cell: Cell) -> dict:
        item = request.node
        result = config.stash[SESSION_KEY].get("scheduled", {}).pop(item.nodeid, None)
        if result is None:
            result = run_cell(cell, launcher=config.getoption("launcher"), timeout_s=config.getoption("cell_timeout"),
                              processes=processes_for(item, config), **cell_request(item, config))
        result["nodeid"] = item.nodeid
        result["threshold"] = regression_threshold(item, config)
        config.stash[RESULTS_KEY].append(result)
        record(benchmark, result)
        status = result["status"]
        if status == "unavailable":
            pytest.skip(result["message"])
        if status != "ok":
            detail = result.get("traceback", "")
            pytest.fail(f"{cell.id}: {result['message']}" + (f"\n{detail}" if detail else ""), pytrace=False)
        return result

    return _measure


DEFAULT_PROCESSES = 3


def processes_for(item, config) -> int:
    """Command line > suite (module PROCESSES) > 3."""
    value = config.getoption("processes")
    if value is None:
        value = getattr(item.module, "PROCESSES", DEFAULT_PROCESSES)
    return max(1, int(value))


def regression_threshold(item, config) -> float:
    """Per test (marker) > command line > per suite (module REGRESSION_THRESHOLD) > 5%."""
    marker = item.get_closest_marker("regression_threshold")
    if marker is not None:
        return float(marker.args[0] if marker.args else marker.kwargs["fraction"])
    if config.getoption("regression_threshold") is not None:
        return config.getoption("regression_threshold")
    return float(getattr(item.module, "REGRESSION_THRESHOLD", DEFAULT_THRESHOLD))


def _measures_cells(session) -> bool:
    return any("measure_cell" in getattr(item, "fixturenames", ()) for item in session.items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session):
    """Drift control before and after the cells, then the verdicts (before pytest-benchmark
    writes its JSON at session finish, so they can go into it)."""
    config = session.config
    state = config.stash[SESSION_KEY]
    measuring = _measures_cells(session) and not config.option.collectonly
    if measuring and not config.getoption("no_drift_control"):
        state["control"] = {"before": measure_control()}
    if measuring and config.getoption("schedule") == "interleaved" and config.getoption("launcher") == "process":
        state["scheduled"] = run_schedule(session)
    yield
    if measuring and "control" in state:
        state["control"]["after"] = measure_control()
    if measuring:
        state["verdicts"] = compute_verdicts(config, session.items)


def compute_verdicts(config, items) -> list | None:
    state = config.stash[SESSION_KEY]
    baseline = state.get("baseline")
    if baseline is None or state.get("profile_mismatch"):
        return None
    results = {r["nodeid"]: r for r in config.stash[RESULTS_KEY]}
    measured = [item for item in items if "measure_cell" in getattr(item, "fixturenames", ())]
    current = {item.nodeid: per_process(results[item.nodeid]) if item.nodeid in results and results[item.nodeid]["status"] == "ok"
               else None for item in measured}
    thresholds = {item.nodeid: regression_threshold(item, config) for item in measured}
    verdicts = judge_against(baseline, current, thresholds, alpha=config.getoption("regression_alpha"),
                             drift=applied_drift(state.get("control"), control_of(baseline)), names=list(current))
    for verdict in verdicts:
        result = results.get(verdict.name)
        if verdict.verdict == "missing" and result is not None:
            verdict.note = f"not measured now: {result['status']} ({result.get('message', '')})"
    return verdicts


def pytest_benchmark_update_machine_info(config, machine_info):
    from .machine_profile import current_profile

    machine_info["infer_bench"] = current_profile()


def pytest_benchmark_compare_machine_info(config, benchmarksession, machine_info, compared_benchmark):
    """Remember the baseline for the verdicts, and never compare across profiles silently."""
    from .baselines import BaselineStore

    state = config.stash[SESSION_KEY]
    from .machine_profile import version_changes

    state["baseline"] = compared_benchmark
    state["version_changes"] = version_changes(profile_of(compared_benchmark), machine_info.get("infer_bench"))
    mine = (machine_info.get("infer_bench") or {}).get("profile_id")
    theirs = (profile_of(compared_benchmark) or {}).get("profile_id")
    if mine != theirs:
        store = BaselineStore(getattr(benchmarksession.storage, "path", "baselines"))
        existing = ", ".join(f"{pid} ({len(runs)} runs)" for pid, runs in store.profiles().items()) or "none"
        state["profile_mismatch"] = (f"baseline profile {theirs or 'unknown'} differs from this machine's profile {mine}: "
                                     f"no verdicts. Baselines by profile: {existing}. Record one here with "
                                     f"--benchmark-save=NAME or pass --benchmark-compare=NNNN for a matching run.")
        benchmarksession.logger.warning(state["profile_mismatch"])


def pytest_benchmark_update_json(config, benchmarks, output_json):
    state = config.stash[SESSION_KEY]
    extra = output_json.setdefault("infer_bench", {})
    extra["control"] = state.get("control")
    if config.stash[RESULTS_KEY]:
        from .machine_profile import measured_peak

        extra.update(measured_peak())
    if state.get("verdicts") is not None:
        extra["verdicts"] = [v.to_dict() for v in state["verdicts"]]


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    verdicts = config.stash[SESSION_KEY].get("verdicts") or []
    if config.getoption("fail_on_regression") and any(v.verdict == "regression" for v in verdicts):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    results = config.stash.get(RESULTS_KEY, [])
    if not results:
        return
    tr = terminalreporter
    tr.section("infer-bench cells")
    header = f"{'cell':<44} {'status':<13} {'median ms':>10} {'GFLOP/s':>8} {'compile s':>9} {'max rel err':>11} {'threads (runtime)':<28}"
    tr.write_line(header)
    for r in sorted(results, key=lambda r: r["nodeid"]):
        med = median_s(r)
        gf = r["flops"] / med / 1e9 if med and r.get("flops") else None
        runtime = (r.get("threads") or {}).get("runtime") or {}
        parity = r.get("parity") or {}
        rel = max((o["max_rel_err"] for o in parity.get("outputs", [])), default=None)
        flag = (" oversubscribed" if is_oversubscribed(r) else "") + (
            f" BUSY MACHINE ({r['foreign_load']:.2f} CPUs used by other processes)" if is_busy(r) else "")
        tr.write_line(f"{Cell.from_dict(r['cell']).id:<44} {r['status']:<13} {fmt_or_dash(med and med * 1e3, '.3f'):>10} {fmt_or_dash(gf, '.2f'):>8} "
                      f"{fmt_or_dash(r.get('compile_s'), '.2f'):>9} {fmt_or_dash(rel, '.2e'):>11} "
                      f"{','.join(f'{k}={v}' for k, v in runtime.items()):<28}{flag}")
    _thread_report(tr, config, results)
    _verdict_report(tr, config)


def _verdict_report(tr, config):
    state = config.stash[SESSION_KEY]
    control = state.get("control")
    if state.get("profile_mismatch"):
        tr.section("infer-bench verdicts")
        tr.write_line(state["profile_mismatch"], yellow=True)
        return
    if state.get("verdicts") is None:
        return
    tr.section("infer-bench verdicts")
    for line in verdict_lines(state["verdicts"], control, (state.get("baseline") or {}).get("infer_bench", {}).get("control"),
                              state.get("version_changes", [])):
        tr.write_line(line)


def _thread_report(tr, config, results):
    from pathlib import Path

    from .report_threads import scaling_table, to_markdown, write_report

    table = scaling_table(results)
    if not table:
        return
    out_dir = Path(config.getoption("report_dir"))
    if not out_dir.is_absolute():
        out_dir = Path(config.rootpath) / out_dir
    written = write_report(results, out_dir)
    tr.section("infer-bench thread scaling")
    for line in to_markdown(table).splitlines()[2:]:
        tr.write_line(line)
    if written:
        tr.write_line(f"written: {', '.join(str(p) for p in written if p)}")
