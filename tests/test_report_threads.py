"""The thread report, from cell results: statistics per point, fastest vs tied, the quota headline,
and the files written."""

import numpy as np
import pytest

from harness.machine.threads import CpuBudget
from harness.plan.cell import Cell
from harness.report.threads import quota_headlines, scaling_table, terminal_lines, to_markdown, write_report
from harness.run.protocol import CellResult, ThreadReport
from harness.run.timing import Samples

BUDGET = CpuBudget(host_cpus=2, affinity_cpus=2, quota_cpus=None, effective_cpus=2, physical_cores=2)
QUOTA = CpuBudget(host_cpus=2, affinity_cpus=2, quota_cpus=1.0, effective_cpus=1, physical_cores=2)


def _result(threads, resolved, seconds, processes=1, control="both", budget=BUDGET, spread=0.02, ran=None, **kw):
    """``seconds``: the per-call time, or a list of per-call times repeated in every process."""
    model, backend, test = kw.get("model", "m"), kw.get("backend", "ort"), kw.get("test", "suite.py::test_t")
    cell = Cell(model, backend, threads=threads, thread_control=control)
    rng = np.random.default_rng(len(cell.id) + processes)
    calls = seconds if isinstance(seconds, list) else [seconds] * 200
    samples = [
        Samples([c * (1 + spread * rng.standard_normal()) for c in calls], 1, threads_ran=ran, cpu_s=1.0, window_s=1.0)
        for _ in range(processes)
    ]
    return CellResult(
        cell,
        ThreadReport(threads, resolved),
        kw.get("status", "ok"),
        samples=samples,
        cpu_budget=budget,
        nodeid=f"{test}[{cell.id}]",
        confinement={"quota": budget.quota_cpus} if budget.quota_cpus else {},
    )


def test_speedup_efficiency_order_and_oversubscription():
    results = [_result("auto", 2, 0.6e-3), _result("4", 4, 2.0e-3), _result("1", 1, 1.0e-3), _result("2", 2, 0.5e-3)]
    [(key, points)] = scaling_table(results).items()
    assert key[:2] == ("m", "ort")
    assert [p.label for p in points] == ["1", "2", "4", "auto(2)"]
    assert [p.speedup for p in points] == pytest.approx([1.0, 2.0, 0.5, 1 / 0.6], rel=0.03)
    assert [p.efficiency for p in points] == pytest.approx([1.0, 1.0, 0.125, 1 / 1.2], rel=0.03)
    assert ["oversubscribed" in p.note for p in points] == [False, False, True, False]
    assert all(p.statistic == "median" for p in points)
    # one process per point: no interval, so nothing is called fastest
    assert not any("fastest" in p.note or "tied" in p.note for p in points)


def test_fastest_only_when_distinguishable_else_tied():
    clear = [_result("1", 1, 1.0e-3, processes=4), _result("2", 2, 0.5e-3, processes=4)]
    [points] = scaling_table(clear).values()
    assert [p.note for p in points] == ["", "fastest"]
    assert all(p.interval is not None and p.processes == 4 for p in points)
    close = [_result("1", 1, 1.0e-3, processes=3, spread=0.1), _result("2", 2, 0.99e-3, processes=3, spread=0.1)]
    [points] = scaling_table(close).values()
    assert [p.note for p in points] == ["tied", "tied"]


def test_groups_need_two_settings_and_never_mix_tests_or_failed_cells():
    results = [
        _result("1", 1, 1e-3),
        _result("2", 2, 0.5e-3, test="other.py::test_x"),
        _result("1", 1, 1e-3, backend="tvm"),
        _result("2", 2, 0.5e-3, backend="tvm", status="crashed"),
    ]
    assert scaling_table(results) == {}


def test_under_a_quota_the_mean_is_judged_and_the_headline_names_the_cost():
    # the runtime's choice: most calls fast, one in ten throttled for 50 ms; auto: steady 4 ms
    throttled = ([2e-3] * 9 + [52e-3]) * 20
    results = [
        _result("auto", 1, 4e-3, processes=3, budget=QUOTA, ran=1),
        _result("runtime", None, throttled, processes=3, budget=QUOTA, control="unset", ran=2, spread=0.01),
    ]
    [points] = scaling_table(results).values()
    auto, unset = points
    assert auto.statistic == unset.statistic == "mean"
    assert unset.result.median_s() < auto.result.median_s()  # the median gets it backwards ...
    assert unset.latency_ms > auto.latency_ms  # ... the mean does not
    assert auto.note == "fastest" and "oversubscribed" in unset.note
    [headline] = quota_headlines(scaling_table(results))
    assert headline.startswith("m ort: in a 1-CPU quota the runtime's default ran 2 threads: throughput ")
    assert "% lower (CI " in headline and "times higher than threads=auto (1 thread)" in headline
    throughput_drop = 1 - unset.result.throughput() / auto.result.throughput()
    assert f"throughput {throughput_drop * 100:.0f}% lower" in headline
    md = to_markdown(scaling_table(results), results)
    assert f"**{headline}**" in md and "cgroup quota 1 CPUs" in md
    assert terminal_lines(scaling_table(results))[0] == headline


def test_report_files(tmp_path):
    results = [_result("1", 1, 1e-3, processes=2), _result("2", 2, 0.6e-3, processes=2)]
    written = write_report(scaling_table(results), results, tmp_path)
    assert sorted(p.name for p in written) == ["threads.html", "threads.md", "threads.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["threads.html", "threads.md", "threads.png"]
    assert (tmp_path / "threads.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "threads.html").read_text()
    assert page.count("<tr>") == 3 and "data:image/png;base64," in page
    assert (tmp_path / "threads.md").read_text().startswith("# Thread settings")
