"""Percentiles of single calls (harness.compare.percentiles): their definition, when the data
support them, what a cell reports, and verdicts that judge a tail percentile with the same
statistics as the median."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.compare.compare import compare_results
from harness.compare.percentiles import basis, calls_needed, quantile, supported, unsupported_reason
from harness.compare.stats import log_process_levels
from harness.compare.verdict import judge
from harness.plan.cell import Cell
from harness.run.protocol import CellResult, ThreadReport
from harness.run.timing import Samples
from harness.store.results import ResultFileError, extra_info, load_result


@given(st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=400), st.floats(0.01, 1.0))
def test_a_percentile_is_a_call_with_the_share_q_at_or_below_it(values, q):
    ordered = sorted(values)
    x = quantile(ordered, q)
    assert x in ordered
    assert sum(v <= x for v in ordered) >= q * len(ordered) - 1e-9  # at least a share q at or below it
    assert sum(v < x for v in ordered) < q * len(ordered) + 1e-9  # and it is the smallest such call


def test_the_calls_that_support_a_percentile():
    assert calls_needed(0.9) == 50 and calls_needed(0.99) == 500
    assert supported(500, 0.99) and not supported(499, 0.99)
    assert supported(3, 0.5)  # the median of any calls
    assert basis([1, 1]) == "single calls"
    assert basis([1, 40]).startswith("round means of up to 40 calls")


def _cell_result(per_process: list[list[float]], iterations: int = 1) -> CellResult:
    cell = Cell("mlp", "ort", threads="2")
    return CellResult(
        cell, ThreadReport("2", 2), samples=[Samples(round_s=list(g), iterations=iterations) for g in per_process]
    )


def test_a_cell_reports_p50_p90_p99_of_its_calls_and_says_which_it_cannot():
    calls = [i * 1e-3 for i in range(1, 1001)]  # 1..1000 ms, two processes
    info = extra_info(_cell_result([calls[:500], calls[500:]]))
    assert info["p50_s"] == pytest.approx(0.5) and info["p90_s"] == pytest.approx(0.9)
    assert info["p99_s"] == pytest.approx(0.99)
    assert info["percentiles"] == {"of": "single calls", "calls": 1000, "not_supported": {}}
    assert info["samples"]["rounds_per_process"] == [500, 500]

    few = extra_info(_cell_result([calls[:100]]))
    assert few["p90_s"] == pytest.approx(0.09) and few["p99_s"] is None
    assert few["percentiles"]["not_supported"] == {"p99": "100 calls; needs 500"}


def test_percentiles_of_round_means_say_so():
    info = extra_info(_cell_result([[1e-6] * 600], iterations=20))
    assert info["percentiles"]["of"].startswith("round means of up to 20 calls")


def test_a_process_p99_is_its_order_statistic_with_a_sampling_variance():
    rng = np.random.default_rng(0)
    groups = [np.exp(rng.normal(0, 0.1, 1000)) * 1e-3 for _ in range(3)]
    levels, floors = log_process_levels(groups, "p99")
    expected = [np.log(np.quantile(g, 0.99, method="inverted_cdf")) for g in groups]
    assert levels == pytest.approx(expected)
    assert (floors > 0).all() and (floors < 0.01).all()
    with pytest.raises(ValueError, match="verdict statistic 'p42'"):
        log_process_levels(groups, "p42")


def _processes(rng, n: int, calls: int, tail: float, tail_share: float = 0.03, spread: float = 0.02) -> list:
    """Per-process calls: lognormal around 1 ms (``spread`` between processes), a share of slow calls at ``tail``x."""
    out = []
    for _ in range(n):
        level = 1e-3 * np.exp(rng.normal(0, spread))
        x = level * np.exp(rng.normal(0, 0.03, calls))
        slow = rng.random(calls) < tail_share
        x[slow] *= tail * np.exp(rng.normal(0, 0.05, slow.sum()))
        out.append(x)
    return out


def test_a_tail_that_grew_is_a_p99_regression_while_the_median_is_unchanged():
    rng = np.random.default_rng(1)
    base, cur = _processes(rng, 10, 1000, 2.0, spread=0.01), _processes(rng, 10, 1000, 3.0, spread=0.01)
    median = judge("cell", base, cur)
    p99 = judge("cell", base, cur, statistic="p99")
    assert median.verdict == "unchanged" and median.statistic == "median"
    assert p99.verdict == "regression" and p99.statistic == "p99"
    assert 1.3 < p99.ratio < 1.7  # 3x over 2x of the slow calls


def test_identical_code_rarely_gets_a_p99_verdict():
    """A/A with the p99 statistic: false regressions and improvements stay near alpha (1%)."""
    rng = np.random.default_rng(2)
    trials, wrong = 150, 0
    for _ in range(trials):
        v = judge("cell", _processes(rng, 5, 600, 2.0), _processes(rng, 5, 600, 2.0), statistic="p99")
        wrong += v.verdict not in ("unchanged", "inconclusive")
    assert wrong / trials <= 0.03


def test_a_p99_the_calls_do_not_support_is_inconclusive_with_the_reason():
    rng = np.random.default_rng(3)
    base, cur = _processes(rng, 5, 100, 2.0), _processes(rng, 5, 100, 3.0)
    v = judge("cell", base, cur, statistic="p99")
    assert v.verdict == "inconclusive" and v.ratio is None
    assert v.note.startswith("baseline: p99 needs 500 calls per worker process (5 beyond it), a process here has 100")
    assert "--benchmark-max-time" in v.note
    # stored samples are compacted: the counts of calls that were timed decide, not the values kept
    assert unsupported_reason("p99", [2000, 2000]) is None
    counted = judge("cell", base, cur, statistic="p99", calls=([2000] * 5, [2000] * 5))
    assert "needs 500 calls" not in counted.note and counted.ratio is not None


def _saved(per_process, statistic: str | None) -> dict:
    result = _cell_result(per_process)
    if statistic:
        result.statistic = statistic
    return {
        "benchmarks": [{"fullname": "suite::t[c]", "stats": {"median": 1e-3}, "extra_info": extra_info(result)}],
        "machine_info": {},
        "infer_bench": {"format_version": 2},
    }


def test_compare_judges_the_statistic_the_current_run_saved_unless_told(tmp_path):
    rng = np.random.default_rng(4)
    base = _saved(_processes(rng, 8, 1000, 2.0), None)
    cur = _saved(_processes(rng, 8, 1000, 3.0), "p99")
    (v,) = compare_results(base, cur).verdicts
    assert (v.statistic, v.verdict) == ("p99", "regression")
    (v,) = compare_results(base, cur, statistic="median").verdicts
    assert (v.statistic, v.verdict) == ("median", "unchanged")

    cur["benchmarks"][0]["extra_info"]["verdict_statistic"] = "p42"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cur))
    with pytest.raises(ResultFileError, match=r"bad.json: suite::t\[c\]: extra_info.verdict_statistic is 'p42'"):
        load_result(path)


def test_a_compacted_baseline_is_judged_on_its_medians_only():
    from harness.store.results import compact_result

    rng = np.random.default_rng(5)
    base = compact_result(_saved(_processes(rng, 8, 1000, 2.0), None))
    cur = _saved(_processes(rng, 8, 1000, 3.0), "p99")
    (v,) = compare_results(base, cur).verdicts
    assert v.verdict == "inconclusive" and v.statistic == "p99" and v.ratio is None
    assert v.note.startswith("the baseline is a compacted run (it keeps its processes' medians only): no p99")
    (median,) = compare_results(base, cur, statistic="median").verdicts
    assert median.ratio is not None


def test_a_saved_mean_is_the_mean_of_the_calls_in_the_order_they_ran():
    """Stored samples are sorted order statistics: the mean verdict reads the means saved beside
    them, so a saved result is judged as the raw calls are."""
    rng = np.random.default_rng(6)
    raw_base, raw_cur = _processes(rng, 6, 1000, 2.0), _processes(rng, 6, 1000, 2.0)
    for g in raw_cur:
        g *= 1.2
    from_raw = judge("cell", raw_base, raw_cur, statistic="mean")
    (saved,) = compare_results(_saved(raw_base, "mean"), _saved(raw_cur, "mean")).verdicts
    assert saved.statistic == "mean" and saved.verdict == from_raw.verdict == "regression"
    assert saved.ratio == pytest.approx(from_raw.ratio, rel=1e-4)
    assert saved.high - saved.low == pytest.approx(from_raw.high - from_raw.low, rel=0.01)
