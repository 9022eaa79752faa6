"""The thread-scaling table and report files, from cell results."""

import pytest

from harness.machine.threads import CpuBudget
from harness.plan.cell import Cell
from harness.report.threads import scaling_table, to_markdown, write_report
from harness.run.protocol import CellResult, ThreadReport
from harness.run.timing import Samples

BUDGET = CpuBudget(host_cpus=2, affinity_cpus=2, quota_cpus=None, effective_cpus=2)


def _result(
    threads: str, resolved: int, median_s: float, model="m", backend="ort", test="suite.py::test_t", status="ok"
):
    cell = Cell(model, backend, threads=threads)
    return CellResult(
        cell,
        ThreadReport(threads, resolved),
        status,
        samples=[Samples([median_s] * 5, 1)],
        cpu_budget=BUDGET,
        nodeid=f"{test}[{cell.id}]",
    )


def test_speedup_efficiency_order_and_oversubscription():
    results = [_result("auto", 2, 0.6e-3), _result("4", 4, 2.0e-3), _result("1", 1, 1.0e-3), _result("2", 2, 0.5e-3)]
    [(key, points)] = scaling_table(results).items()
    assert key[:2] == ("m", "ort")
    assert [p.label for p in points] == ["1", "2", "4", "auto(2)"]
    assert [p.speedup for p in points] == pytest.approx([1.0, 2.0, 0.5, 1 / 0.6])
    assert [p.efficiency for p in points] == pytest.approx([1.0, 1.0, 0.125, 1 / 1.2])
    assert [p.oversubscribed for p in points] == [False, False, True, False]
    md = to_markdown(scaling_table(results), BUDGET.to_dict())
    assert "| m | ort | 2 | 0.500 | 2.00 | 1.00 | fastest |" in md
    assert "| m | ort | 4 | 2.000 | 0.50 | 0.12 | oversubscribed |" in md


def test_groups_need_two_thread_settings_and_never_mix_tests_or_failed_cells():
    results = [
        _result("1", 1, 1e-3),
        _result("2", 2, 0.5e-3, test="other.py::test_x"),
        _result("1", 1, 1e-3, backend="tvm"),
        _result("2", 2, 0.5e-3, backend="tvm", status="crashed"),
    ]
    assert scaling_table(results) == {}


def test_without_a_one_thread_point_there_is_no_efficiency(tmp_path):
    results = [_result("2", 2, 0.5e-3), _result("4", 4, 1e-3)]
    [points] = scaling_table(results).values()
    assert [p.efficiency for p in points] == [None, None]
    md_path, png = write_report(scaling_table(results), results, tmp_path)
    assert md_path.read_text().startswith("# Thread scaling") and png.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["threads.md", "threads.png"]  # no temporary files left
