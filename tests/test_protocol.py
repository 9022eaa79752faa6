"""The cell result: its derived numbers and flags, the JSON it crosses processes in (schema 1
included), merging later worker processes, and what a saved result keeps of it."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.machine.peak import gflops
from harness.machine.threads import CpuBudget
from harness.plan.cell import Cell
from harness.run.protocol import SCHEMA_VERSION, CellResult, ProcessMetrics, ProtocolError, Request, ThreadReport
from harness.run.timing import Samples, TimingOptions
from harness.store.results import compact, compact_result, extra_info, process_median

# a worker's answer as the first harness wrote it (schema 1: an untyped dict)
SCHEMA_1 = {
    "schema_version": 1,
    "status": "ok",
    "pid": 123,
    "backend_version": "1.31.1",
    "model_kind": "torch",
    "cell": {
        "model": "m",
        "backend": "ort",
        "target": "llvm",
        "sparsity": 0.0,
        "threads": "4",
        "batch": None,
        "model_options": {},
    },
    "threads": {
        "requested": "4",
        "resolved": 4,
        "env": {"OMP_NUM_THREADS": "4"},
        "runtime": {"ort_intra_op_num_threads": 4},
        "os_threads": 9,
    },
    "cpu_budget": {"host_cpus": 2, "affinity_cpus": 2, "quota_cpus": None, "effective_cpus": 2},
    "flops": 2e9,
    "samples": [
        {"round_s": [0.004, 0.002, 0.006], "iterations": 2, "warmup_rounds": 0},
        {"round_s": [0.002], "iterations": 1, "warmup_rounds": 3},
    ],
    "compile_s": 0.1,
    "peak_rss_mb": 100.0,
    "wall_s": 1.5,
    "launcher": "process",
    "label": "CPUExecutionProvider",
}


def _result(**kw) -> CellResult:
    return CellResult.from_dict(dict(SCHEMA_1, **kw))


@given(st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=2000), st.integers(3, 400))
def test_compact_keeps_extremes_and_the_median(samples, keep):
    out = compact(samples, keep)
    assert len(out) == min(len(samples), keep)
    assert out == sorted(out)
    assert np.isclose(out[0], min(samples), rtol=1e-5) and np.isclose(out[-1], max(samples), rtol=1e-5)
    lo, hi = np.quantile(samples, [0.5 - 1.0 / keep, 0.5 + 1.0 / keep])
    assert lo * (1 - 1e-5) <= np.median(out) <= hi * (1 + 1e-5)


def test_a_schema_1_result_reads_with_its_numbers_and_flags():
    r = _result(foreign_load=0.5)
    assert r.per_process() == [[0.002, 0.001, 0.003], [0.002]]
    assert r.median_s() == 0.002 and r.gflops() == 1000.0  # 2e9 FLOPs in 2 ms
    assert r.oversubscribed and r.busy  # 4 threads on 2 effective CPUs; 0.5 CPUs of foreign load
    assert r.threads == ThreadReport("4", 4, {"OMP_NUM_THREADS": "4"}, {"ort_intra_op_num_threads": 4}, 9)
    assert not _result(foreign_load=0.01).busy
    assert not _result(threads={"requested": "2", "resolved": 2}).oversubscribed
    info = extra_info(r)
    assert info["gflops_per_s"] == 1000.0 and info["oversubscribed"] and info["machine_busy"]
    assert info["samples"]["per_process"] == [[0.001, 0.002, 0.003], [0.002]] and info["samples"]["iterations"] == [
        2,
        1,
    ]


def test_round_trip_through_json_keeps_every_field():
    r = _result(
        foreign_load=0.25,
        nodeid="suite.py::test[x]",
        threshold=0.1,
        parity={"passed": True, "outputs": [{"max_rel_err": 2e-6}, {"max_rel_err": 5e-6}], "policy": {}},
    )
    again = CellResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r and again.to_dict()["schema_version"] == SCHEMA_VERSION
    assert again.max_rel_err == 5e-6


@pytest.mark.parametrize(
    "change, message",
    [
        ({"schema_version": 7}, "worker answered schema 7, expected 2"),
        ({"status": "fine"}, "worker answered status 'fine'; known: ok, error, unavailable, parity_failed, crashed"),
    ],
)
def test_unknown_schema_or_status_is_refused(change, message):
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(")):
        CellResult.from_dict(dict(SCHEMA_1, **change))


def test_merge_adds_samples_and_keeps_the_worst_load_and_memory():
    first, later = (
        _result(foreign_load=0.02, peak_rss_mb=100.0, wall_s=1.0),
        _result(foreign_load=0.3, peak_rss_mb=80.0, wall_s=2.0),
    )
    merged = first.merge(later, 2, 3)
    assert merged is first and len(merged.samples) == 4
    assert merged.foreign_load == 0.3 and merged.peak_rss_mb == 100.0 and merged.wall_s == 3.0


def test_merge_keeps_each_process_metrics_and_the_store_keeps_them_per_process():
    first = _result(process_metrics=[ProcessMetrics(2.0, "miss", 0.01, 50.0).to_dict()], compile_s=2.0)
    later = _result(process_metrics=[ProcessMetrics(0.2, "hit", 0.004, 20.0).to_dict()], compile_s=0.2)
    merged = first.merge(later, 2, 3).merge(_result(process_metrics=[ProcessMetrics(0.3, "hit").to_dict()]), 3, 3)
    assert [m.compile_cache for m in merged.process_metrics] == ["miss", "hit", "hit"]
    assert merged.compile_s == 2.0 and merged.process_median("compile_s") == 0.3
    assert merged.process_median("first_inference_s") == (0.01 + 0.004) / 2  # the process without one left out
    assert CellResult.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged
    info = extra_info(merged)
    assert info["process_metrics"] == {
        "compile_s": [2.0, 0.2, 0.3],
        "compile_cache": ["miss", "hit", "hit"],
        "first_inference_s": [0.01, 0.004, None],
        "model_rss_mb": [50.0, 20.0, None],
        "allocator_mb": [None, None, None],
        "samples_per_s": [None, None, None],  # a latency cell
        "device_peak_mb": [None, None, None],  # a CPU cell
    }
    assert info["compile_s"] == 2.0  # the first process's, for display
    bench = {"fullname": "t", "stats": {"median": 0.002}, "extra_info": info}
    slim = compact_result({"benchmarks": [bench]})["benchmarks"][0]["extra_info"]
    assert slim["compile_s_median"] == 0.3 and slim["model_rss_mb_median"] == 35.0
    assert process_median(slim, "model_rss_mb") == 35.0 and process_median(slim, "allocator_mb") is None


def test_a_failing_later_process_fails_the_cell_and_says_which():
    first = _result()
    crashed = CellResult.crashed(Request(first.cell, 4, first.cpu_budget), "worker killed by SIGABRT")
    merged = first.merge(crashed, 2, 3)
    assert merged.status == "crashed" and merged.message == "worker process 2/3: worker killed by SIGABRT"
    assert merged.cpu_budget == first.cpu_budget and merged.samples == []
    assert crashed.oversubscribed  # a crashed first worker still shows 4 threads on 2 CPUs


def test_request_round_trip_and_version_check():
    req = Request(
        Cell("m", "ort", threads="auto"), 2, CpuBudget(4, 2, 1.5, 2), TimingOptions(max_time=0.5), {"multiplier": 20}
    )
    assert Request.from_dict(json.loads(json.dumps(req.to_dict()))) == req
    with pytest.raises(ProtocolError, match="request has schema 1, this worker speaks 2"):
        Request.from_dict(dict(req.to_dict(), schema_version=1))


def test_gflops_needs_both_numbers():
    assert gflops(4e9, 2.0) == 2.0 and gflops(None, 2.0) is None and gflops(4e9, None) is None
    assert Samples([0.004], 4).per_call_s == [0.001]
