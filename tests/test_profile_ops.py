"""--profile-ops end to end: a separate worker process profiles each measured cell, the profile is
saved with the cell, and a regression whose sides both have one shows the per-op diff in the
terminal, Markdown and HTML (the profiles themselves: tests/test_op_profile.py)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from harness.compare.compare import compare_results
from harness.compare.op_profile import OpProfile, OpTypeTime
from harness.plan.cell import Cell
from harness.report.markdown import verdict_markdown
from harness.report.tables import verdict_lines
from harness.run.protocol import CellResult, ThreadReport
from harness.run.timing import Samples
from harness.store.results import ResultFileError, extra_info, load_result
from tests.conftest import ROOT


def _profile(gelu_us: float) -> OpProfile:
    rows = (OpTypeTime("aten::linear", 300.0, 6, (("ffn.0", 150.0),)), OpTypeTime("aten::gelu", gelu_us, 2))
    return OpProfile("torch.profiler (self CPU time)", "torch 2.13.0", 10, tuple(sorted(rows, key=lambda r: -r.us)))


def _saved(ratio: float, gelu_us: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    samples = [Samples(round_s=list(1e-3 * ratio * np.exp(rng.normal(0, 0.01, 200)))) for _ in range(5)]
    result = CellResult(Cell("bert_tiny", "torch", threads="1"), ThreadReport("1", 1), samples=samples)
    result.op_profile = _profile(gelu_us).to_dict()
    bench = {"fullname": "suite::t[c]", "stats": {"median": 1e-3}, "extra_info": extra_info(result)}
    return {"benchmarks": [bench], "machine_info": {}, "infer_bench": {"format_version": 2}}


def test_a_regression_with_profiles_on_both_sides_names_the_operator_that_got_slower():
    comparison = compare_results(_saved(1.0, 50.0, 1), _saved(1.6, 650.0, 2))
    (v,) = comparison.verdicts
    assert v.verdict == "regression"
    assert v.op_diff.changes[0].op_type == "aten::gelu" and v.op_diff.changes[0].share_of_slowdown == 1.0
    lines = verdict_lines(comparison)
    title = next(i for i, line in enumerate(lines) if line.startswith("per-op diff of t[c]"))
    assert lines[title + 2].split()[:2] == ["aten::gelu", "50.0"]
    assert "| aten::gelu | 50.0 | 650.0 | 13.00x | 100% |" in verdict_markdown(comparison)
    # an unchanged cell carries no diff, whatever its profiles say
    (same,) = compare_results(_saved(1.0, 50.0, 1), _saved(1.0, 650.0, 3)).verdicts
    assert same.verdict == "unchanged" and same.op_diff is None


def test_a_malformed_saved_profile_is_one_line(tmp_path):
    data = _saved(1.0, 50.0, 1)
    data["benchmarks"][0]["extra_info"]["op_profile"]["runs"] = 0
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultFileError, match=r"run.json: suite::t\[c\]: extra_info.op profile: runs is 0"):
        load_result(path)


SUITE = """
from harness.plan.matrix import Matrix

MATRIX = Matrix(models=["bert_tiny"], backends=["opslowed"], threads=["1"])


def test_latency(cell, measure_cell):
    measure_cell(cell)
"""


@pytest.mark.process
def test_profile_ops_saves_a_profile_and_the_regression_shows_the_slowed_operator(pytester, monkeypatch):
    """A baseline run of eager torch, then one whose GELU modules run 30 times per call: the
    latency regression's per-op diff names aten::gelu first, in the terminal and the saved verdicts."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("INFER_BENCH_BACKENDS", "opslowed=tests.fake_backends:OpSlowed")
    monkeypatch.delenv("INFER_BENCH_SLOW_OP", raising=False)
    pytester.makepyfile(test_op_suite=SUITE)
    common = (
        "-p",
        "harness.plugin.hooks",
        "-p",
        "no:cacheprovider",
        "--processes",
        "5",
        "--regression-alpha",
        "0.1",  # the verdict is not under test here, the diff it carries is: a ~3x slowdown must be called
        "--benchmark-max-time",
        "0.2",
        "--profile-ops",
        "--benchmark-storage",
        f"file://{pytester.path / 'store'}",
    )
    pytester.runpytest_subprocess(*common, "--benchmark-save", "base", "--benchmark-json", "base.json").assert_outcomes(
        passed=1
    )
    base = json.loads((pytester.path / "base.json").read_text())["benchmarks"][0]["extra_info"]
    profile = OpProfile.from_dict(base["op_profile"])
    assert profile.source.startswith("torch.profiler") and "aten::linear" in profile.by_op_type()
    assert base["op_profile_error"] is None
    monkeypatch.setenv("INFER_BENCH_SLOW_OP", "GELU")
    monkeypatch.setenv("INFER_BENCH_SLOW_OP_REPEAT", "30")
    current = pytester.runpytest_subprocess(*common, "--benchmark-compare", "--benchmark-json", "cur.json")
    current.assert_outcomes(passed=1)
    out = current.stdout.str()
    assert "REGRESSION" in out, out[-3000:]
    lines = out.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("per-op diff of test_latency["))
    assert lines[title + 2].split()[0] == "aten::gelu", "\n".join(lines[title : title + 6])
    verdict = json.loads((pytester.path / "cur.json").read_text())["infer_bench"]["verdicts"][0]
    assert verdict["op_diff"]["changes"][0]["op_type"] == "aten::gelu"
