"""--until-decided in a pytest session, with worker processes replaced by synthetic ones (no
timing, no load dependence): what gets more processes, at which look each verdict is made, the
budget, and what the log and the summary say. The statistics are in tests/test_sequential.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.compare.sequential import look_alpha, look_processes
from harness.plan.cell import Cell
from harness.plugin.options import RunOptions
from harness.plugin.session import BenchSession, Measured
from harness.run.protocol import CellResult, ThreadReport
from harness.run.schedule import PlannedCell
from harness.run.timing import Samples
from harness.store.results import extra_info

CELLS = {
    "suite::clear[a]": 1.5,  # 50% slower: decided at the first look
    "suite::subtle[b]": 1.035,  # a minor change under 2% noise: needs more processes
    "suite::same[c]": 1.0,
}
SPREAD = 0.02


def synthetic_process(key: str, ratio: float, rng) -> CellResult:
    level = 1e-3 * ratio * math.exp(rng.normal(0.0, SPREAD))
    cell = Cell("tiny_mlp", "torch", threads="1")
    samples = Samples(round_s=list(level * np.exp(rng.normal(0.0, 0.01, 20))))
    return CellResult(cell, ThreadReport("1", 1), samples=[samples], wall_s=2.0, nodeid=key)


def baseline(rng) -> dict:
    """A saved run of 10 processes per cell at ratio 1."""
    benchmarks = []
    for key in CELLS:
        result = synthetic_process(key, 1.0, rng)
        for _ in range(9):
            result = result.merge(synthetic_process(key, 1.0, rng), 2, 10)
        benchmarks.append({"fullname": key, "stats": {"median": 1e-3}, "extra_info": extra_info(result)})
    return {"benchmarks": benchmarks, "machine_info": {}, "infer_bench": {"format_version": 2}}


def session(budget_minutes: float, seed: int = 1) -> tuple[BenchSession, list[PlannedCell], dict]:
    rng = np.random.default_rng(seed)
    started: dict[str, int] = {}

    def start(request, timeout_s):
        key = next(k for k in CELLS if request.cell.model_options.get("key") == k)
        started[key] = started.get(key, 0) + 1
        return synthetic_process(key, CELLS[key], rng)

    options = RunOptions(until_decided=True, budget_minutes=budget_minutes, drift_control=False, compare=True)
    bench = BenchSession(options, baseline=baseline(rng), start=start)
    plan = [
        PlannedCell(key, Cell("tiny_mlp", "torch", threads="1", model_options={"key": key}), 3, {}, 0.05)
        for key in CELLS
    ]
    return bench, plan, started


def test_undecided_cells_get_their_next_looks_and_decided_ones_nothing():
    bench, plan, started = session(budget_minutes=60)
    bench.measure(plan)
    log = bench.adaptation
    assert log.first["suite::clear[a]"] == "regression" and started["suite::clear[a]"] == 3
    assert log.first["suite::subtle[b]"] == "inconclusive"
    b = "suite::subtle[b]"
    assert log.added[b] > 0 and log.looks[b] > 1
    assert started[b] == log.processes[b] == look_processes(3)[log.looks[b] - 1]  # the schedule's looks only
    assert log.seconds[b] == pytest.approx(2.0 * log.added[b])
    assert log.final[b] != "inconclusive" or b in log.why
    # the tests then take their results; the verdicts are made at each cell's look, at its share of alpha
    for p in plan:
        bench.take(p.key, p.cell, 3, {}, 0.05)
    comparison = bench.judge([Measured(k, 0.05) for k in CELLS])
    verdicts = {v.name: v for v in comparison.verdicts}
    for key in CELLS:
        assert verdicts[key].look == log.looks[key]
        assert verdicts[key].alpha == pytest.approx(look_alpha(0.01, log.looks[key]))
        assert verdicts[key].processes == (10, log.processes[key])
    assert verdicts["suite::clear[a]"].verdict == "regression"
    saved = bench.saved_extra()["adaptation"]
    assert saved["decided_at_first_look"] == log.decided(log.first) and saved["cells"][b]["added"] == log.added[b]
    lines = dict((title, text) for title, text, _ in bench.summary())["infer-bench until-decided"]
    assert lines[0].startswith("--until-decided: budget 60.0 min") and any("subtle[b]" in line for line in lines)


def test_a_spent_budget_adds_nothing_and_says_so():
    bench, plan, started = session(budget_minutes=1 / 60)  # one second: less than one look of a 2 s process
    bench.measure(plan)
    log = bench.adaptation
    assert started == {key: 3 for key in CELLS}
    assert not log.added
    assert log.why["suite::subtle[b]"].startswith("budget spent")


def test_without_a_baseline_only_the_first_pass_runs():
    bench, plan, started = session(budget_minutes=60)
    bench.baseline = None
    bench.measure(plan)
    assert started == {key: 3 for key in CELLS}
    assert bench.adaptation.note.startswith("nothing to decide: no compared baseline")


def test_compare_judges_a_saved_cell_at_its_look_and_refuses_a_malformed_look(tmp_path):
    import json

    from harness.compare.compare import compare_results
    from harness.compare.sequential import LOOK_KEY
    from harness.store.results import ResultFileError, load_result

    rng = np.random.default_rng(2)
    base, current = baseline(rng), baseline(rng)
    for bench in current["benchmarks"]:
        bench["extra_info"][LOOK_KEY] = 3
    current["benchmarks"][0]["extra_info"].pop(LOOK_KEY)  # measured without --until-decided
    verdicts = compare_results(base, current).verdicts
    assert [v.look for v in verdicts] == [None, 3, 3]
    assert [v.alpha for v in verdicts] == pytest.approx([0.01, look_alpha(0.01, 3), look_alpha(0.01, 3)])
    current["benchmarks"][1]["extra_info"][LOOK_KEY] = 9
    path = tmp_path / "cur.json"
    path.write_text(json.dumps(current))
    with pytest.raises(
        ResultFileError, match=rf"suite::subtle\[b\]: extra_info.{LOOK_KEY} is 9, not a look between 1 and 6"
    ):
        load_result(path)
