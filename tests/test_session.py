"""BenchSession without pytest: which baselines it judges against, and why it withholds verdicts."""

from harness.plugin.options import RunOptions
from harness.plugin.session import BenchSession, Measured

PROFILE = {"profile_id": "test-cpu-2cpu-8g-abc123"}


def _baseline(**infer_bench):
    bench = {
        "fullname": "suite.py::test[x]",
        "stats": {"median": 1e-3},
        "extra_info": {"samples": {"per_process": [[1e-3, 1.1e-3], [1.05e-3]]}},
    }
    return {"machine_info": {"infer_bench": PROFILE}, "benchmarks": [bench], "infer_bench": infer_bench}


def test_a_baseline_of_this_profile_is_judged_and_migrated(tmp_path):
    session = BenchSession(RunOptions(drift_control=False))
    assert session.set_baseline(_baseline(), {"infer_bench": PROFILE}, tmp_path) is None
    assert session.baseline["infer_bench"]["format_version"] == 2  # format 1 (no version) migrated
    comparison = session.judge([Measured("suite.py::test[x]", 0.05)])
    [verdict] = comparison.verdicts  # in the baseline, not measured in this session
    assert verdict.name == "suite.py::test[x]" and verdict.verdict == "missing"


def test_another_profile_or_a_newer_format_withholds_verdicts(tmp_path):
    other = BenchSession(RunOptions(drift_control=False))
    warning = other.set_baseline(_baseline(), {"infer_bench": {"profile_id": "big-64cpu-512g-fff000"}}, tmp_path)
    assert warning.startswith("baseline profile test-cpu-2cpu-8g-abc123 differs from this machine's profile big-64cpu")
    assert other.judge([Measured("suite.py::test[x]", 0.05)]) is None
    newer = BenchSession(RunOptions(drift_control=False))
    warning = newer.set_baseline(_baseline(format_version=3), {"infer_bench": PROFILE}, tmp_path)
    assert warning == (
        "the compared baseline: written by a newer infer-bench (result format 3; this one reads up to 2): "
        "upgrade infer-bench to read it; no verdicts"
    )
    assert newer.judge([Measured("suite.py::test[x]", 0.05)]) is None
    assert newer.summary() == []  # nothing measured: no sections


def test_summary_writes_the_thread_report_once_per_run(tmp_path):
    from harness.machine.threads import CpuBudget
    from harness.plan.cell import Cell
    from harness.run.protocol import CellResult, ThreadReport
    from harness.run.timing import Samples

    session = BenchSession(RunOptions(drift_control=False, report_dir="out"), root=tmp_path)
    for threads, median in (("1", 2e-3), ("2", 1e-3)):
        cell = Cell("m", "ort", threads=threads)
        session.results.append(
            CellResult(
                cell,
                ThreadReport(threads, int(threads)),
                samples=[Samples([median] * 3, 1)],
                cpu_budget=CpuBudget(2, 2, None, 2),
                nodeid=f"s.py::t[{cell.id}]",
            )
        )
    titles = [title for title, _, _ in session.summary()]
    assert titles == ["infer-bench cells", "infer-bench thread settings"]
    [(_, lines, _)] = [s for s in session.summary() if s[0] == "infer-bench thread settings"]
    assert lines[0].split() == "model backend control threads ran latency ms CI speed-up".split() + [
        "efficiency",
        "CPU/wall",
        "p99",
        "ms",
        "max",
        "ms",
        "calls/s",
        "processes",
        "note",
    ]
    assert lines[2].split()[:9] == ["m", "ort", "both", "2", "-", "1.000", "(median)", "-", "2.00"]
    out = tmp_path / "out"
    assert lines[-1] == f"written: {out / 'threads.png'}, {out / 'threads.md'}, {out / 'threads.html'}"


def test_a_corrupt_baseline_sample_withholds_verdicts_with_one_line(tmp_path):
    bad = _baseline()
    bad["benchmarks"][0]["extra_info"]["samples"]["per_process"][1][0] = None
    session = BenchSession(RunOptions(drift_control=False))
    warning = session.set_baseline(bad, {"infer_bench": PROFILE}, tmp_path)
    assert warning == (
        "the compared baseline: suite.py::test[x]: samples.per_process[1][0] is None, not a positive number of "
        "seconds; no verdicts"
    )


def test_the_control_runs_at_each_thread_count_of_the_cells(monkeypatch):
    from harness.plan.cell import Cell
    from harness.plugin import session as session_module

    calls = []
    monkeypatch.setattr(
        session_module, "measure_control", lambda threads: calls.append(threads) or {"control_s": 1e-3 * threads}
    )
    session = BenchSession(RunOptions())
    session.measure_control("before", [Cell("mlp", "ort", threads="1"), Cell("mlp", "ort", threads="2")] * 2)
    session.measure_control("round 1")
    assert calls == [1, 2, 1, 2]
    assert [(s["threads"], s["at"]) for s in session.control["samples"]] == [
        (1, "before"),
        (2, "before"),
        (1, "round 1"),
        (2, "round 1"),
    ]
    off = BenchSession(RunOptions(drift_control=False))
    off.measure_control("before", [Cell("mlp", "ort", threads="1")])
    assert off.control is None and calls == [1, 2, 1, 2]  # --no-drift-control measures nothing


def test_a_minor_regression_fails_the_run_only_when_asked():
    from harness.compare.compare import Comparison
    from harness.compare.verdict import Verdict

    comparison = Comparison([Verdict("a", "minor regression"), Verdict("b", "improvement")])
    for options, fails in (
        (RunOptions(fail_on_regression=True), False),
        (RunOptions(fail_on_regression=True, fail_on_minor=True), True),
        (RunOptions(fail_on_minor=True), False),  # --fail-on-minor only widens --fail-on-regression
    ):
        session = BenchSession(options)
        session.comparison = comparison
        assert session.failed_on_regression is fails
    session = BenchSession(RunOptions(fail_on_regression=True))
    session.comparison = Comparison([Verdict("a", "regression")])
    assert session.failed_on_regression is True
