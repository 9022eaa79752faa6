"""The scenario axis (harness.plan.scenario) and its load drivers (harness.run.load): ids, parsing,
Poisson arrivals, queueing under a server load, latency from the scheduled arrival, streams for
throughput, the peak search, the worker end to end, and the throughput verdict.

Service times here are sleeps: a sleeping stream does not compete for the CPU, so the queueing
a test checks is the harness's and not the machine's load."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.compare.metrics import judge_metrics
from harness.plan.cell import Cell
from harness.plan.matrix import Matrix, MatrixError
from harness.plan.scenario import ScenarioError, parse_scenario, poisson_arrivals
from harness.run.load import find_peak, p99_of, run_server, run_throughput
from harness.run.protocol import LoadReport
from harness.run.schedule import run_cell
from harness.store.results import extra_info

SERVICE_S = 0.004  # each query sleeps this long: one stream serves at most 250 queries/s


def sleeping_step(seconds: float = SERVICE_S):
    return lambda: time.sleep(seconds)


def test_scenario_ids_and_the_default_leaves_ids_as_they_were():
    assert Cell("mlp", "ort", threads="2").id == "mlp-ort-llvm-sp0-t2"
    assert Cell("mlp", "ort", threads="2", scenario="latency").id == "mlp-ort-llvm-sp0-t2"
    assert Cell("mlp", "ort", threads="1", scenario="throughput").id == "mlp-ort-llvm-sp0-t1-throughput"
    assert Cell("mlp", "ort", scenario="throughput:streams=2").id == "mlp-ort-llvm-sp0-t1-throughput-s2"
    assert Cell("mlp", "ort", scenario="server:qps=200").id == "mlp-ort-llvm-sp0-t1-server-q200"
    assert Cell("mlp", "ort", scenario="server:p99=10ms").id == "mlp-ort-llvm-sp0-t1-server-p99-10ms"
    assert parse_scenario("server:p99=500us").p99_s == pytest.approx(5e-4)
    assert parse_scenario("throughput").statistic == "mean" and parse_scenario("server").statistic == "p99"
    assert parse_scenario("latency").statistic is None


@given(
    st.sampled_from(["throughput", "server"]),
    st.none() | st.integers(1, 64),
    st.none() | st.floats(0.5, 1e5).map(lambda x: float(f"{x:.3g}")),
    st.booleans(),
)
def test_a_scenario_reads_back_from_its_text(kind, streams, qps, oversubscribe):
    parts = [kind]
    if streams:
        parts.append(f"streams={streams}")
    if qps and kind == "server":
        parts.append(f"qps={qps:g}")
    if oversubscribe:
        parts.append("oversubscribe")
    scenario = parse_scenario(":".join(parts))
    assert parse_scenario(scenario.text) == scenario
    assert scenario.text == ":".join(parts)


@pytest.mark.parametrize(
    "text, message",
    [
        ("batch", "the kind is one of latency, throughput, server"),
        ("server:qps=0", "qps='0' must be positive"),
        ("server:qps=10:p99=5ms", r"give qps \(a fixed rate\) or p99"),
        ("throughput:qps=10", "qps and p99 belong to the server scenario"),
        ("throughput:streams=1.5", "streams=1.5 is not a whole number"),
        ("latency:streams=2", "latency is one stream"),
        ("server:rate=3", "unknown setting 'rate=3'"),
    ],
)
def test_a_bad_scenario_is_one_line(text, message):
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(text)
    with pytest.raises(MatrixError, match="axis 'scenario'"):
        Matrix(models=["mlp"], backends=["ort"], scenario=[text])


def test_the_scenario_axis_expands_and_streams_fit_the_cpus():
    cells = Matrix(models=["mlp"], backends=["ort"], threads=["1"], scenario=["latency", "throughput"]).expand()
    assert [c.id for c in cells] == ["mlp-ort-llvm-sp0-t1", "mlp-ort-llvm-sp0-t1-throughput"]
    throughput = parse_scenario("throughput")
    assert throughput.streams_for(1, 2.0) == 2 and throughput.streams_for(2, 2.0) == 1
    assert throughput.streams_for(4, 2.0) == 1
    assert (
        parse_scenario("throughput:streams=4")
        .oversubscription(2, 2.0)
        .startswith("4 streams x 2 threads exceed the 2 effective CPUs")
    )
    assert parse_scenario("throughput:streams=4:oversubscribe").oversubscription(2, 2.0) is None


def test_poisson_arrivals_have_the_rate_and_repeat_with_the_seed():
    times = poisson_arrivals(200.0, 20000, seed=5)
    gaps = [b - a for a, b in zip([0.0] + times, times)]
    assert sum(gaps) / len(gaps) == pytest.approx(1 / 200, rel=0.03)
    assert all(g > 0 for g in gaps)
    assert poisson_arrivals(200.0, 50, seed=5) == times[:50]
    assert poisson_arrivals(200.0, 50, seed=6) != times[:50]


def _mean(values):
    return sum(values) / len(values)


def test_a_server_queues_as_the_offered_rate_nears_capacity():
    """One stream, deterministic service D, Poisson arrivals: an M/D/1 queue, whose mean wait is
    rho D / (2 (1 - rho)) (Pollaczek-Khinchine). p99 grows as the rate nears 1/D."""
    capacity = 1 / SERVICE_S
    stats = {}
    for rho in (0.3, 0.6, 0.85):
        report, latencies = run_server([sleeping_step()], 1, rho * capacity, window_s=2.0, min_queries=200)
        assert report.dropped == 0 and report.queries == len(latencies) >= 200
        assert report.achieved_qps == pytest.approx(rho * capacity, rel=0.25)
        stats[rho] = (_mean(latencies), sorted(latencies)[int(0.99 * len(latencies))])
    for rho in (0.3, 0.6):
        expected = SERVICE_S + rho * SERVICE_S / (2 * (1 - rho))
        # a sleep overshoots under load (longer service, higher utilisation): a generous upper bound
        assert 0.8 * expected < stats[rho][0] < 2.5 * expected, (rho, stats[rho][0], expected)
    assert stats[0.3][1] < stats[0.6][1] < stats[0.85][1]
    assert stats[0.85][1] > 2.5 * stats[0.3][1]


def test_a_stall_counts_for_every_query_scheduled_during_it():
    """No coordinated omission: a 200 ms stall at a 100 QPS offered rate delays about 20 queries,
    each measured from when it was due, not from when the stalled stream got to it."""
    calls = [0]

    def step():
        calls[0] += 1
        time.sleep(0.2 if calls[0] == 50 else 0.001)

    report, latencies = run_server([step], 1, 100.0, window_s=2.0, min_queries=200)
    delayed = [x for x in latencies if x > 0.05]
    assert len(delayed) >= 10  # with coordinated omission only the stalled call would be
    assert max(latencies) >= 0.2


def test_throughput_streams_run_concurrently():
    report, latencies = run_throughput([sleeping_step(), sleeping_step()], batch=8, window_s=1.0, min_queries=100)
    assert report.streams == 2 and report.queries == len(latencies) >= 100
    ideal = 2 * 8 / SERVICE_S  # two streams of 8 samples every 4 ms
    assert 0.55 * ideal < report.samples_per_s <= 1.05 * ideal  # one stream alone would give 0.5 x ideal
    assert report.harness_cpu_s is not None and report.harness_cpu_s >= 0


@pytest.mark.parametrize("kind", ["throughput", "server"])
def test_a_failing_stream_stops_the_others_and_its_error_is_raised(kind):
    calls = []

    def failing():
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        time.sleep(SERVICE_S)

    healthy = sleeping_step()
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="illegal memory access"):
        if kind == "throughput":
            run_throughput([failing, healthy], batch=1, window_s=5.0, min_queries=10_000, max_window_s=10.0)
        else:
            run_server([failing, healthy], batch=1, qps=100.0, window_s=5.0, min_queries=500, max_window_s=10.0)
    assert time.perf_counter() - t0 < 2.0  # not the 5 s window: the healthy stream stopped too


def test_find_peak_lands_below_capacity_under_the_bound():
    report, latencies = find_peak([sleeping_step()], 1, p99_bound_s=10 * SERVICE_S, window_s=1.0, min_queries=100)
    capacity = 1 / SERVICE_S
    assert report.p99_bound_s == pytest.approx(10 * SERVICE_S)
    assert report.peak_qps is not None and 0.4 * capacity < report.peak_qps < capacity
    assert report.target_qps == report.peak_qps
    passed = [t for t in report.tried if t[3]]
    assert passed and all(t[1] <= report.p99_bound_s for t in passed)
    assert any(not t[3] for t in report.tried)  # the search went past the bound somewhere
    assert report.unloaded_median_s == pytest.approx(SERVICE_S, rel=0.5)
    assert report.bound_met == (p99_of(latencies) <= report.p99_bound_s and report.dropped == 0)


def test_a_throughput_cell_end_to_end_inline(monkeypatch):
    monkeypatch.setenv("INFER_BENCH_BACKENDS", "sleeper=tests.fake_backends:Sleeper")
    monkeypatch.setenv("INFER_BENCH_SLEEP_MS", "2")
    cell = Cell("mlp", "sleeper", threads="1", scenario="throughput:streams=2:oversubscribe")  # any machine
    result = run_cell(cell, launcher="inline")
    assert result.ok, result.message
    (report,) = result.load
    assert report.kind == "throughput" and report.streams == 2 and report.batch == 8
    assert result.process_metrics[0].samples_per_s == report.samples_per_s > 0
    info = extra_info(result)
    assert info["process_metrics"]["samples_per_s"][0] == pytest.approx(report.samples_per_s, rel=1e-5)
    assert info["p50_s"] >= 0.002 and info["percentiles"]["of"] == "single calls"
    assert len(result.samples[0].round_s) == report.queries


def test_streams_beyond_the_cpus_are_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("INFER_BENCH_BACKENDS", "sleeper=tests.fake_backends:Sleeper")
    cell = Cell("mlp", "sleeper", threads="2", scenario="throughput:streams=64")
    result = run_cell(cell, launcher="inline")
    assert result.status == "error" and result.stage == "throughput"
    assert "64 streams x 2 threads exceed the" in result.message and "oversubscribe" in result.message


def _info(per_process_samples_per_s):
    return {"process_metrics": {"samples_per_s": per_process_samples_per_s, "compile_cache": [None] * 5}}


def test_a_throughput_fall_is_a_throughput_regression_and_latency_cells_have_none():
    base = _info([1000.0, 1010.0, 990.0, 1005.0, 995.0])
    fell = _info([800.0, 805.0, 795.0, 810.0, 790.0])
    verdict = judge_metrics(base, fell, 0.01)["throughput"]
    assert verdict.verdict == "regression"
    assert verdict.ratio == pytest.approx(0.8, rel=0.01) and verdict.low < verdict.ratio < verdict.high < 1
    assert judge_metrics(base, _info([1200.0, 1210.0, 1190.0, 1205.0, 1195.0]), 0.01)["throughput"].verdict == (
        "improvement"
    )
    latency_cell = judge_metrics({}, {"process_metrics": {"samples_per_s": [None] * 3}}, 0.01)["throughput"]
    assert latency_cell.verdict == "not compared" and latency_cell.note.startswith("latency scenario")


def test_the_runtimes_own_thread_count_takes_every_cpu_per_stream():
    throughput = parse_scenario("throughput")
    assert throughput.streams_for(None, 2.0) == 1
    assert (
        parse_scenario("throughput:streams=2")
        .oversubscription(None, 2.0)
        .startswith("2 streams x 2 threads exceed the 2 effective CPUs")
    )


def test_rates_the_streams_keep_up_with_drop_nothing():
    """The peak search's short windows: a rate at half of capacity serves every arrival."""
    for seed in range(8):
        report, latencies = run_server([sleeping_step(0.001)], 1, 250.0, 0.4, 1, 0.8, seed)
        assert report.dropped == 0 and len(latencies) == report.queries, seed


def test_an_overloaded_server_is_cut_off_at_its_window():
    start = time.perf_counter()
    report, _ = run_server([sleeping_step(0.02)], 1, 500.0, window_s=0.5, min_queries=10, max_window_s=0.5)
    assert time.perf_counter() - start < 1.5  # 250 arrivals of 20 ms would take 5 s
    assert report.dropped > 150 and report.queries + report.dropped == 250


def test_a_saved_non_positive_samples_per_s_is_one_line(tmp_path):
    import json

    from harness.store.results import ResultFileError, load_result

    bench = {"fullname": "s::t[c]", "stats": {"median": 1e-3}, "extra_info": _info([1000.0, 0.0, 990.0])}
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"benchmarks": [bench], "machine_info": {}, "infer_bench": {"format_version": 2}}))
    with pytest.raises(ResultFileError, match=r"samples_per_s\[1\] is 0.0, not a positive number or null"):
        load_result(path)


def test_a_peak_search_is_judged_on_its_peak_not_on_its_latency():
    from harness.compare.compare import compare_results

    def saved(samples_per_s):
        info = _info(samples_per_s)
        info.update(scenario="server", samples={"per_process": [[0.01, 0.011, 0.012]] * 5})
        bench = {"fullname": "s::t[c]", "stats": {"median": 0.011}, "extra_info": info}
        return {"benchmarks": [bench], "machine_info": {}, "infer_bench": {"format_version": 2}}

    before, after = saved([1000.0, 1010.0, 990.0, 1005.0, 995.0]), saved([800.0, 805.0, 795.0, 810.0, 790.0])
    (v,) = compare_results(before, after).verdicts
    assert v.verdict == "inconclusive" and v.note.startswith("a peak search's latency is measured at the rate")
    assert v.metrics["throughput"].verdict == "regression"


def fake_server(short_limit: float, full_limit: float, full_window_s: float):
    """``run_server`` for a model that holds the bound up to ``short_limit`` qps in a short try and
    only up to ``full_limit`` in a full window (queues build up over a longer run); (the fake, its calls)."""
    calls = []

    def run(steps, batch, qps, window_s=1.0, min_queries=1, max_window_s=30.0, seed=0, window=None):
        full = window_s >= full_window_s
        calls.append((qps, full))
        held = qps <= (full_limit if full else short_limit)
        latencies = [0.001 if held else 1.0] * 100
        report = LoadReport("server", len(steps), batch, window_s, len(latencies), target_qps=qps)
        report.dropped = 0
        return report, latencies

    return run, calls


@pytest.mark.parametrize("full_limit, held", [(75.0, True), (10.0, False)])
def test_find_peak_lowers_the_rate_until_a_full_run_holds_the_bound(monkeypatch, full_limit, held):
    from harness.plan.scenario import CONFIRM_FACTOR, CONFIRM_RUNS
    from harness.run import load

    fake, calls = fake_server(short_limit=100.0, full_limit=full_limit, full_window_s=3.0)
    monkeypatch.setattr(load, "run_server", fake)
    monkeypatch.setattr(load, "unloaded_median", lambda step: 0.01)  # capacity 100 qps
    report, latencies = find_peak([lambda: None], 1, p99_bound_s=0.1, window_s=3.0, min_queries=100)
    short = [qps for qps, full in calls if not full]
    full = [qps for qps, full in calls if full]
    low = max(q for q in short if q <= 100.0)
    assert 90.0 < low <= 100.0  # the short search's peak
    if held:  # 0.85^2 x ~100 = ~72: the third full run holds
        assert full == pytest.approx([low, low * CONFIRM_FACTOR, low * CONFIRM_FACTOR**2])
        assert report.bound_met and report.peak_qps == report.target_qps == full[-1] and max(latencies) < 0.1
    else:  # no full run holds: the peak is the short search's, an upper estimate, and says so
        assert len(full) == CONFIRM_RUNS + 1 and full[-1] == pytest.approx(low * CONFIRM_FACTOR**CONFIRM_RUNS)
        assert not report.bound_met and report.peak_qps == low and report.target_qps == full[-1]
    assert [t[0] for t in report.tried[-len(full) :]] == full  # the full runs are among the tried rates
    assert [t[3] for t in report.tried[-len(full) :]] == [q <= full_limit for q in full]
