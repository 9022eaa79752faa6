"""The interleaved order of worker processes, with the process start replaced by a recorder."""

from harness.plan.cell import Cell
from harness.run.protocol import CellResult, ThreadReport
from harness.run.schedule import PlannedCell, run_cells
from harness.run.timing import Samples


def _recorder(fail: set[tuple[str, int]] = frozenset()):
    started: list[tuple[str, bool]] = []

    def start(request, timeout_s):
        started.append((request.cell.model, request.check_parity))
        index = sum(m == request.cell.model for m, _ in started)
        crashed = (request.cell.model, index) in fail
        return CellResult(
            request.cell,
            ThreadReport(request.cell.threads, request.threads),
            "crashed" if crashed else "ok",
            "boom" if crashed else "",
            samples=[] if crashed else [Samples([1e-3 * index], 1)],
        )

    return started, start


def _plan(**processes):
    return [PlannedCell(name, Cell(name, "ort"), n, {"timing": {"max_time": 0.01}}) for name, n in processes.items()]


def test_processes_are_round_robin_and_only_the_first_checks_parity():
    started, start = _recorder()
    progress = []
    results = run_cells(
        _plan(a=2, b=3, c=1), progress=lambda key, cell, i, n, r: progress.append((key, i, n)), start=start
    )
    assert started == [("a", True), ("b", True), ("c", True), ("a", False), ("b", False), ("b", False)]
    assert progress == [("a", 1, 2), ("b", 1, 3), ("c", 1, 1), ("a", 2, 2), ("b", 2, 3), ("b", 3, 3)]
    assert [len(results[k].samples) for k in "abc"] == [2, 3, 1]
    assert results["b"].per_process() == [[1e-3], [2e-3], [3e-3]]


def test_a_failed_cell_gets_no_more_processes_and_others_go_on():
    started, start = _recorder(fail={("a", 2)})
    results = run_cells(_plan(a=3, b=3), start=start)
    assert started == [("a", True), ("b", True), ("a", False), ("b", False), ("b", False)]
    assert results["a"].status == "crashed" and results["a"].message == "worker process 2/3: boom"
    assert results["b"].ok and len(results["b"].samples) == 3


def test_compile_only_cells_run_one_process():
    started, start = _recorder()
    plan = [PlannedCell("a", Cell("a", "ort"), 3, {"measure": False})]
    run_cells(plan, start=start)
    assert started == [("a", True)]


def test_the_drift_control_runs_between_rounds():
    started, start = _recorder()
    events: list = []

    def record(request, timeout_s):
        events.append(request.cell.model)
        return start(request, timeout_s)

    run_cells(_plan(a=3, b=2), start=record, after_round=lambda i: events.append(f"control {i}"))
    assert events == ["a", "b", "control 1", "a", "b", "control 2", "a"]
