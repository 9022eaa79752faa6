"""--shard K/N: every cell in exactly one shard, the same split everywhere, balanced by recorded cost."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.plan.shard import Shard, ShardError, assign, recorded_costs

costs = st.dictionaries(
    st.text("abcdefgh-[]", min_size=1, max_size=12), st.one_of(st.none(), st.floats(0.1, 600)), max_size=60
)


@given(costs, st.integers(1, 8))
@settings(max_examples=200, deadline=None)
def test_every_cell_is_in_exactly_one_shard_and_the_split_is_balanced(cells, count):
    plan = assign(cells, count)
    assert set(plan) == set(cells) and set(plan.values()) <= set(range(1, count + 1))
    assert assign(dict(reversed(list(cells.items()))), count) == plan  # the order cells come in does not matter
    if cells and all(c is not None for c in cells.values()):
        loads = [sum(c for cell, c in cells.items() if plan[cell] == k) for k in range(1, count + 1)]
        # the longest-processing-time rule: no shard exceeds the average by more than one cell's cost
        assert max(loads) <= sum(loads) / count + max(cells.values()) + 1e-9


def test_recorded_costs_spread_the_expensive_cells():
    cells = {"big1": 100.0, "big2": 90.0, "s1": 10.0, "s2": 10.0, "s3": 10.0, "new": None}
    plan = assign(cells, 2)
    assert plan["big1"] != plan["big2"]
    loads = {k: sum(c or 10.0 for cell, c in cells.items() if plan[cell] == k) for k in (1, 2)}
    assert abs(loads[1] - loads[2]) <= 20


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0"])
def test_bad_shards_are_one_line(text):
    with pytest.raises(ShardError, match="expected K/N with 1 <= K <= N"):
        Shard.parse(text)


def test_costs_come_from_a_saved_runs_worker_wall_time(tmp_path):
    run = tmp_path / "0001_x.json"
    run.write_text(
        json.dumps(
            {
                "benchmarks": [
                    {"fullname": "s.py::t[a]", "stats": {"median": 1e-3}, "extra_info": {"worker_wall_s": 12.5}},
                    {"fullname": "s.py::t[b]", "stats": {"median": 1e-3}, "extra_info": {}},
                ]
            }
        )
    )
    assert recorded_costs(run) == {"s.py::t[a]": 12.5}
    assert recorded_costs(None) == {} and recorded_costs(tmp_path / "missing.json") == {}


SUITE = """
from harness import Matrix

MATRIX = Matrix(models=["tiny_mlp"], backends=["torch", "ort"], threads=["1", "2"], sparsity=[0, 0.5])


def test_latency(cell, measure_cell):
    measure_cell(cell)
"""


@pytest.mark.process
def test_the_shards_of_a_suite_partition_its_cells(pytester, run_plugin):
    pytester.makepyfile(test_suite=SUITE)
    seen = []
    for k in (1, 2, 3):
        out = run_plugin("--model-factory", "tests.tiny_models:tiny_mlp", "--shard", f"{k}/3", "--collect-only", "-q")
        assert out.ret == pytest.ExitCode.OK
        ids = [line for line in out.stdout.lines if line.startswith("test_suite.py::")]
        out.stdout.fnmatch_lines([f"infer-bench shard {k}/3: {len(ids)} of 8 cells (no recorded costs: *"])
        seen += ids
    assert len(seen) == len(set(seen)) == 8
    bad = run_plugin("--shard", "4/3", "--collect-only")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: infer-bench: --shard '4/3': expected K/N with 1 <= K <= N, e.g. 2/4"])
