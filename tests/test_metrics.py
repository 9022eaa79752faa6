"""Verdicts beyond latency: the pure rules on synthetic per-process values (false alarms, detection,
floors, like cache state with like, size, accuracy drift), their display and ``compare --fail-on``
on crafted results, and end to end: three misbehaving backends, each flagged on its own metric and
nowhere else, and ``--fail-on`` choosing what fails the run."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.compare.metrics import (
    DEFAULT_THRESHOLDS,
    ERROR_FLOOR,
    METRICS,
    NOT_COMPARED,
    PROCESS_METRICS,
    MetricNameError,
    MetricVerdict,
    cache_state,
    judge_metrics,
    parse_metric_thresholds,
)
from harness.report.tables import metric_mark
from tests.test_cli import crafted

ROOT = Path(__file__).resolve().parent.parent
ALPHA = 0.01
SPECS = {spec.metric: spec for spec in PROCESS_METRICS}
PROCESS_METRIC_NAMES = ("compile", "first-inference", "memory")


def info(metric: str | None = None, values=(), states=None, **extra) -> dict:
    """A cell's extra_info with one per-process list (others absent) and what else is given."""
    data = dict(extra)
    if metric is not None:
        lists = {SPECS[metric].key: list(values)}
        if states is not None:
            lists["compile_cache"] = list(states)
        data["process_metrics"] = lists
    return data


def judged(metric, base, cur, base_states=None, cur_states=None, thresholds=None) -> MetricVerdict:
    return judge_metrics(info(metric, base, base_states), info(metric, cur, cur_states), ALPHA, thresholds)[metric]


# -- across processes ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "metric, level, spread", [("compile", 2.0, 0.1), ("first-inference", 0.02, 0.1), ("memory", 200.0, 0.02)]
)
@pytest.mark.parametrize("processes", [3, 5, 10])
def test_identical_distributions_are_rarely_a_regression(metric, level, spread, processes):
    """A/A: 400 seeded pairs of runs of the same per-process distribution (lognormal spread): a
    regression (minor included) about alpha/2 of the time, never far more."""
    rng = np.random.default_rng(processes)
    verdicts = [judged(metric, *(level * np.exp(rng.normal(0, spread, (2, processes))))).verdict for _ in range(400)]
    false_alarms = sum(v in ("regression", "minor regression") for v in verdicts)
    assert false_alarms <= 6, verdicts  # 2 expected at alpha/2 = 0.5%
    assert verdicts.count("regression") <= 1
    if processes == 10:  # resolved inside the no-change band (25%, 10% for memory) most of the time
        assert verdicts.count("unchanged") > 300, verdicts


@given(st.integers(0, 2**32 - 1), st.floats(0.005, 0.03), st.integers(3, 10))
@settings(max_examples=60)
def test_a_doubled_compile_time_is_a_regression(seed, spread, processes):
    """Any draw, with the spread of cache hits seen here (a few %): 3 processes a side suffice."""
    rng = np.random.default_rng(seed)
    base, cur = 1.5 * np.exp(rng.normal(0, spread, (2, processes)))
    v = judged("compile", base, 2 * cur)
    assert v.verdict == "regression", v
    assert v.low > 1 and 1.4 < v.ratio < 2.9 and v.processes == (processes, processes)
    assert v.note == f"no compile cache, {processes} vs {processes} processes"
    improved = judged("compile", 2 * base, cur)
    assert improved.verdict == "improvement" and improved.high < 1


def test_a_doubled_compile_time_through_noisy_processes_is_found_or_inconclusive():
    """15% spread per process (cold builds): 10 processes a side find a doubling every time; 3 about
    half the time, and otherwise say inconclusive, never unchanged."""
    rng = np.random.default_rng(7)
    for processes, least in ((10, 200), (3, 80)):
        draws = 1.5 * np.exp(rng.normal(0, 0.15, (200, 2, processes)))
        verdicts = [judged("compile", base, 2 * cur).verdict for base, cur in draws]
        assert verdicts.count("regression") >= least, (processes, verdicts)
        assert set(verdicts) <= {"regression", "minor regression", "inconclusive"}


def test_a_cache_hit_is_never_compared_with_a_miss():
    # the baseline built everything (misses, 3 s), the current run loaded it (hits, 0.2 s): no verdict
    v = judged("compile", [3.0, 3.1, 2.9], [0.2, 0.21, 0.19], ["miss"] * 3, ["hit"] * 3)
    assert v.verdict == NOT_COMPARED and v.ratio is None
    assert v.note == (
        "no compile-cache state in common (baseline 3 miss; current 3 hit): a hit is never compared with a miss"
    )
    # the usual run: the first process misses, the others hit; hits are compared with hits
    states = ["miss", "hit", "hit"]
    v = judged("compile", [3.0, 0.2, 0.21], [9.0, 0.2, 0.2], states, ["rebuilt (model.so missing)", "hit", "hit"])
    assert v.verdict in ("unchanged", "inconclusive") and v.processes == (2, 2)
    assert v.note.startswith("cache hit, 2 vs 2 processes (left out: miss 1 vs 1)")
    # where misses are all a side has in common with the other, 1 vs 1: inconclusive, saying why
    v = judged("compile", [3.0, 0.2, 0.2], [3.0, 3.1, 3.2], states, ["miss", "off", "off"])
    assert v.verdict == "inconclusive" and v.processes == (1, 1) and v.baseline == 3.0
    assert v.note.startswith("cache miss, 1 vs 1 process (left out: hit 2 vs 0, off 0 vs 2); fewer than 2 processes")
    # memory and first inference compare like with like too: a process that built holds the compiler's
    # memory (measured: 159 MiB for a TVM miss, 11 MiB for a hit)
    v = judged("memory", [11.0, 11.2, 11.1, 11.0], [159.0, 11.1, 11.0, 11.2], ["hit"] * 4, ["miss"] + ["hit"] * 3)
    assert v.processes == (4, 3) and v.verdict == "unchanged"
    assert v.note == "cache hit, 4 vs 3 processes (left out: miss 0 vs 1); values below 16 MiB count as 16"
    assert [cache_state(s) for s in ("hit", "off (cache directory x is writable)", None, "miss, not stored: E")] == [
        "hit",
        "off",
        "no cache",
        "miss",
    ]


def test_memory_floors():
    # 2 MiB -> 3 MiB is not +50%: below the absolute floor both count as 16 MiB
    v = judged("memory", [2.0, 2.0, 2.0], [3.0, 3.0, 3.0])
    assert v.verdict == "unchanged" and v.ratio == 1.0 and "values below 16 MiB count as 16" in v.note
    assert (v.baseline, v.current) == (2.0, 3.0)  # shown as measured
    # identical values: a non-zero interval (1 MiB of least spread per process), inside the band
    v = judged("memory", [100.0] * 3, [100.0] * 3)
    assert v.verdict == "unchanged" and v.low < 1 < v.high and v.high < 1.1
    # a 128 MiB leak on a 9 MiB model; +30% of a 100 MiB model
    assert judged("memory", [9.1, 9.2, 9.1], [137.1, 137.2, 137.1]).verdict == "regression"
    v = judged("memory", [100.0, 101.0, 100.5], [130.0, 131.0, 130.5])
    assert v.verdict == "regression" and v.ratio == pytest.approx(1.3, rel=0.01)
    # +3% measured precisely: significant, below 10%
    assert judged("memory", [100.0, 100.2, 100.1] * 3, [103.0, 103.2, 103.1] * 3).verdict == "minor regression"
    # negative (the process gave memory back) counts as the floor
    assert judged("memory", [-3.0, 1.0, 2.0], [4.0, 5.0, 3.0]).verdict == "unchanged"


def test_sub_floor_times_are_not_ratios():
    # eager torch "compiles" in ~0.1 ms; twice that is not a regression (floor 50 ms)
    assert judged("compile", [1e-4, 1.1e-4, 0.9e-4], [2e-4, 2.2e-4, 1.9e-4]).verdict == "unchanged"
    # a first inference of 0.3 ms against 0.6 ms (floor 1 ms)
    assert judged("first-inference", [3e-4] * 3, [6e-4] * 3).verdict == "unchanged"
    assert judged("first-inference", [0.02, 0.021, 0.02], [0.05, 0.052, 0.051]).verdict == "regression"


def test_too_few_processes_or_no_values():
    v = judged("compile", [2.0], [4.0, 4.1, 4.0])
    assert v.verdict == "inconclusive" and "fewer than 2 processes on a side" in v.note and v.ratio is None
    v = judge_metrics({}, info("compile", [1.0, 1.0]), ALPHA)["compile"]
    assert (
        v.verdict == NOT_COMPARED
        and v.note == "no per-process compile_s in the baseline (saved before they were recorded)"
    )
    v = judged("memory", [None, None, None], [10.0, 10.0])  # a remote device has no host memory figure
    assert v.verdict == NOT_COMPARED and v.note.startswith("no process of the baseline measured model_rss_mb")


def test_thresholds_are_per_metric_and_overridable():
    assert DEFAULT_THRESHOLDS == {
        "throughput": 0.05,
        "compile": 0.25,
        "first-inference": 0.25,
        "memory": 0.1,
        "size": 0.05,
        "accuracy": 9.0,
    }
    base, cur = [2.0, 2.01, 2.02] * 3, [2.4, 2.41, 2.42] * 3  # +20%, precisely
    assert judged("compile", base, cur).verdict == "minor regression"
    v = judged("compile", base, cur, thresholds={"compile": 0.1})
    assert v.verdict == "regression" and v.threshold == 0.1
    assert list(judge_metrics({}, {}, ALPHA)) == [m for m in METRICS if m != "latency"]


@given(
    st.dictionaries(
        st.sampled_from(sorted(DEFAULT_THRESHOLDS)),
        st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
        min_size=1,
    )
)
def test_metric_thresholds_parse_what_they_print(thresholds):
    text = ", ".join(f"{name} = {value!r}" for name, value in thresholds.items())
    assert parse_metric_thresholds(text) == thresholds
    assert parse_metric_thresholds(None) == {}


@pytest.mark.parametrize(
    "text, message",
    [
        ("latency=0.1", "'latency' is not a metric with a threshold (latency's is --regression-threshold"),
        ("speed=0.1", "'speed' is not a metric with a threshold; use NAME=FRACTION with NAME one of throughput,"),
        ("memory", "'memory' is not NAME=FRACTION with a fraction >= 0 (e.g. memory=0.5: 50% worse; default 0.1)"),
        ("compile=-0.1", "'compile=-0.1' is not NAME=FRACTION"),
        ("compile=nan", "'compile=nan' is not NAME=FRACTION"),
        ("size=inf", "'size=inf' is not NAME=FRACTION"),
        ("compile=fast", "'compile=fast' is not NAME=FRACTION"),
        ("memory=0.1,memory=5", "memory is given twice; give each metric once"),
        (" , ", "empty; use e.g. compile=0.5,memory=0.2"),
    ],
)
def test_bad_metric_thresholds_name_the_entry(text, message):
    with pytest.raises(MetricNameError) as raised:
        parse_metric_thresholds(text)
    assert str(raised.value).startswith(f"--metric-thresholds {text!r}: ") and message in str(raised.value)


# -- one value per side ------------------------------------------------------------------------------
ARTIFACT = "TVM Relax library (export_library's shared object)"


@pytest.mark.parametrize(
    "base, cur, verdict",
    [(1000, 1050, "unchanged"), (1000, 1051, "regression"), (1000, 1100, "regression"), (1000, 950, "improvement")],
)
def test_size_is_judged_on_its_ratio(base, cur, verdict):
    v = judge_metrics(info(artifact_bytes=base, artifact=ARTIFACT), info(artifact_bytes=cur, artifact=ARTIFACT), ALPHA)
    assert v["size"].verdict == verdict and v["size"].ratio == cur / base and v["size"].low is None


def test_size_not_compared_without_sizes_or_across_artifact_kinds():
    eager = "none: eager PyTorch runs the module as it is"
    v = judge_metrics(info(artifact_bytes=None, artifact=eager), info(artifact_bytes=None, artifact=eager), ALPHA)
    assert v["size"].verdict == NOT_COMPARED and v["size"].note == f"no artifact size in the baseline ({eager})"
    onnx, optimised = "serialized ONNX graph", "ORT optimised graph"
    v = judge_metrics(info(artifact_bytes=3000, artifact=onnx), info(artifact_bytes=3400, artifact=optimised), ALPHA)
    assert v["size"].verdict == NOT_COMPARED and v["size"].note.startswith("different artifacts")


@pytest.mark.parametrize(
    "base, cur, verdict",
    [
        (2.7e-7, 3.4e-5, "regression"),  # the drifting backend: ~100x, still inside its parity budget
        (1e-6, 9.9e-6, "unchanged"),  # under the factor of 10
        (1e-6, 1.01e-5, "regression"),
        (1e-9, 1e-7, "unchanged"),  # both below float32's resolution: rounding, not drift
        (1e-9, 1.1e-6, "unchanged"),  # 1100x of a tiny baseline, but under 10x of the floor
        (1e-9, 1.2e-6, "regression"),
        (1e-5, 1e-6, "improvement"),
    ],
)
def test_accuracy_drift_factor_and_floor(base, cur, verdict):
    v = judge_metrics(info(max_rel_err=base), info(max_rel_err=cur), ALPHA)["accuracy"]
    assert v.verdict == verdict
    assert v.ratio == pytest.approx(max(cur, ERROR_FLOOR) / max(base, ERROR_FLOOR))


def test_accuracy_cosine_distance_can_only_add_a_regression():
    same = {"max_rel_err": 1e-6}
    v = judge_metrics(info(**same, cosine_distance=1e-14), info(**same, cosine_distance=3e-11), ALPHA)["accuracy"]
    assert v.verdict == "regression" and "cosine distance grew" in v.note
    v = judge_metrics(info(**same, cosine_distance=1e-14), info(**same, cosine_distance=5e-13), ALPHA)["accuracy"]
    assert v.verdict == "unchanged"  # 50x of a distance is under the squared factor (100x)
    v = judge_metrics(info(max_rel_err=1e-5, cosine_distance=1e-12), info(max_rel_err=1e-6), ALPHA)["accuracy"]
    assert v.verdict == "improvement"
    assert judge_metrics(info(), info(max_rel_err=1e-6), ALPHA)["accuracy"].verdict == NOT_COMPARED


def test_metric_verdicts_serialise_and_show_compactly():
    verdicts = judge_metrics(
        info("compile", [1.0, 1.01, 1.02], max_rel_err=1e-6),
        info("compile", [1.31, 1.32, 1.3], max_rel_err=2e-4),
        ALPHA,
    )
    json.dumps({name: v.to_dict() for name, v in verdicts.items()})
    assert metric_mark(verdicts["compile"]) == "+30% REGRESSION"
    assert metric_mark(verdicts["accuracy"]) == "200x REGRESSION"
    assert metric_mark(verdicts["size"]) == "-" and metric_mark(None) == "-"
    assert metric_mark(MetricVerdict("memory", "unchanged", 1.01)) == "="
    assert metric_mark(MetricVerdict("memory", "improvement", 0.5)) == "-50% improvement"
    assert metric_mark(MetricVerdict("memory", "inconclusive")) == "inconclusive"


# -- compare --fail-on on crafted results ---------------------------------------------------------------
def with_metrics(path, processes: dict) -> Path:
    """Add per-process metrics (metric list name -> values) and parity errors to a crafted result."""
    data = json.loads(path.read_text())
    for bench in data["benchmarks"]:
        extra = {k: v for k, v in processes.items() if k not in ("max_rel_err", "artifact_bytes")}
        bench["extra_info"]["process_metrics"] = extra
        bench["extra_info"].update(
            max_rel_err=processes.get("max_rel_err"), artifact_bytes=processes.get("artifact_bytes"), artifact=ARTIFACT
        )
    path.write_text(json.dumps(data))
    return path


def test_compare_fail_on_chooses_what_fails(tmp_path, capsys):
    cells = {"mlp-tvm": 1e-3}
    common = {"compile_cache": ["hit"] * 3, "first_inference_s": [0.01] * 3, "max_rel_err": 1e-6}
    base = with_metrics(
        crafted(tmp_path / "base.json", cells), dict(common, compile_s=[1.0, 1.02, 1.01], model_rss_mb=[50.0] * 3)
    )
    cur = with_metrics(
        crafted(tmp_path / "cur.json", cells, seed=1),
        dict(common, compile_s=[1.0, 1.01, 1.02], model_rss_mb=[120.0, 121.0, 120.0], artifact_bytes=5000),
    )
    assert main(["compare", str(base), str(cur), "--format", "json"]) == 0  # latency unchanged: the default passes
    out = json.loads(capsys.readouterr().out)
    (verdict,) = out["verdicts"]
    assert verdict["verdict"] == "unchanged" and out["fail_on"] == ["latency", "throughput"] and out["failing"] == []
    metrics = verdict["metrics"]
    assert {name: m["verdict"] for name, m in metrics.items()} == {
        "throughput": NOT_COMPARED,  # a latency cell
        "compile": "unchanged",
        "first-inference": "unchanged",
        "memory": "regression",
        "size": NOT_COMPARED,
        "accuracy": "unchanged",
    }
    assert metrics["memory"]["ratio"] == pytest.approx(120.33 / 50, rel=1e-3) and metrics["memory"]["unit"] == "MiB"
    assert main(["compare", str(base), str(cur), "--fail-on", "memory"]) == 1
    text = capsys.readouterr().out
    header, row = text.splitlines()[:2]
    assert header.split()[-6:] == ["compile", "first-inference", "memory", "size", "accuracy", "note"]
    assert "test_latency[mlp-tvm]" in row and "x REGRESSION" in row and "memory: cache hit, 3 vs 3 processes" in row
    assert "memory: 1 regression" in text
    assert main(["compare", str(base), str(cur), "--fail-on", "latency,compile,size"]) == 0
    # a memory threshold above the +140% seen: a minor regression, which --fail-on memory lets pass
    assert main(["compare", str(base), str(cur), "--fail-on", "memory", "--metric-thresholds", "memory=1.5"]) == 0
    capsys.readouterr()
    assert main(["compare", str(base), str(cur), "--metric-thresholds", "memory=1.5", "--format", "json"]) == 0
    memory = json.loads(capsys.readouterr().out)["verdicts"][0]["metrics"]["memory"]
    assert (memory["verdict"], memory["threshold"]) == ("minor regression", 1.5)
    assert main(["compare", str(base), str(cur), "--fail-on", "memory", "--metric-thresholds", "memory=1.2"]) == 1
    capsys.readouterr()
    for command in (["compare", str(base), str(cur)], ["report", str(cur), "--baseline", str(tmp_path)]):
        assert main([*command, "--metric-thresholds", "latency=0.1"]) == 2  # before any file is read
        assert capsys.readouterr().err.startswith("error: --metric-thresholds 'latency=0.1': 'latency' is not a")
    assert main(["compare", str(base), str(cur), "--fail-on", "all", "--format", "md"]) == 1
    assert "| test_latency[mlp-tvm] | unchanged |" in capsys.readouterr().out
    assert main(["compare", str(base), str(cur), "--fail-on", "memory,speed"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "error: --fail-on 'memory,speed': unknown speed; use a comma list of " + ", ".join(METRICS) + " (or all)\n"
    )


@pytest.mark.parametrize(
    "lists, message",
    [
        ([1.0, 2.0], "extra_info.process_metrics is not an object of per-process lists"),
        ({"compile_s": 1.0}, "extra_info.process_metrics.compile_s is not a list"),
        ({"compile_s": [1.0, "fast"]}, "extra_info.process_metrics.compile_s[1] is 'fast', not a number or null"),
        ({"model_rss_mb": [float("nan")]}, "extra_info.process_metrics.model_rss_mb[0] is nan, not a number or null"),
        ({"compile_cache": ["hit", 1]}, "extra_info.process_metrics.compile_cache[1] is 1, not a state or null"),
    ],
)
def test_a_malformed_process_metric_is_exit_2_with_one_line(tmp_path, capsys, lists, message):
    good = crafted(tmp_path / "good.json", {"mlp-ort": 1e-3})
    data = json.loads(good.read_text())
    data["benchmarks"][0]["extra_info"]["process_metrics"] = lists
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert main(["compare", str(good), str(bad)]) == 2
    assert capsys.readouterr().err == f"error: {bad}: suites/test_latency.py::test_latency[mlp-ort]: {message}\n"


def test_report_shows_the_metric_verdicts(tmp_path):
    cells = {"mlp-tvm": 1e-3}
    base = with_metrics(
        crafted(tmp_path / "base.json", cells), {"compile_s": [1.0, 1.01, 1.02], "model_rss_mb": [50.0] * 3}
    )
    cur = with_metrics(
        crafted(tmp_path / "cur.json", cells, seed=1), {"compile_s": [1.8, 1.818, 1.836], "model_rss_mb": [50.0] * 3}
    )
    history = tmp_path / "history"
    history.mkdir()
    out = tmp_path / "out"
    assert main(["report", str(cur), "--baseline", str(base), "-o", str(out), "--history", str(history)]) == 0
    md = (out / "report.md").read_text()
    assert "| first inference ms | model MiB |" in md and "| 50.0 |" in md
    verdict_row = next(line for line in md.splitlines() if line.startswith("| test_latency[mlp-tvm] | unchanged"))
    assert "| +80% REGRESSION | - | = | - | - |" in verdict_row  # compile, first inference, memory, size, accuracy
    page = (out / "report.html").read_text()
    assert "<th>compile</th><th>first-inference</th><th>memory</th>" in page and "+80% REGRESSION</span>" in page


# -- end to end: the misbehaving backends ------------------------------------------------------------------
SUITE = """
from harness.plan.matrix import Matrix

MATRIX = Matrix(models=["tiny_mlp"], backends=["leaky", "slowcompile", "drifting"], threads=["1"])


def test_latency(cell, measure_cell):
    measure_cell(cell)
"""
FAKES = (
    "leaky=tests.fake_backends:Leaky,slowcompile=tests.fake_backends:SlowCompile,drifting=tests.fake_backends:Drifting"
)
BAD = {"INFER_BENCH_LEAK_MB": "128", "INFER_BENCH_COMPILE_DELAY_S": "1", "INFER_BENCH_DRIFT": "1"}
FLAGGED = {"leaky": "memory", "slowcompile": "compile", "drifting": "accuracy"}


@pytest.mark.process
def test_each_misbehaving_backend_is_flagged_on_its_own_metric_alone(pytester, monkeypatch):
    """A baseline run of the three backends, then a current run with each one's bad behaviour on
    (128 MiB held after compile; +1 s over a 0.1 s compile; outputs off by 100x their error, inside
    the parity budget). Every timed call sleeps 20 ms: latency and first inference are sleep-bound,
    so they stay put however busy the machine is."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("INFER_BENCH_BACKENDS", FAKES)
    monkeypatch.setenv("INFER_BENCH_SLEEP_MS", "20")
    monkeypatch.setenv("INFER_BENCH_CACHE_DIR", str(pytester.path / "cache"))
    pytester.makepyfile(test_metric_suite=SUITE)
    common = (
        "-p",
        "harness.plugin.hooks",
        "-p",
        "no:cacheprovider",
        "--model-factory",
        "tests.tiny_models:tiny_mlp",
        "--processes",
        "3",
        "--benchmark-max-time",
        "0.1",
        "--no-drift-control",  # latency is sleep-bound here: no machine drift to correct for
        "--benchmark-storage",
        f"file://{pytester.path / 'store'}",
    )
    for name in BAD:
        monkeypatch.delenv(name, raising=False)
    pytester.runpytest_subprocess(*common, "--benchmark-save", "base").assert_outcomes(passed=3)
    for name, value in BAD.items():
        monkeypatch.setenv(name, value)
    # regressions of memory, compile and accuracy, none of latency: the default --fail-on latency passes
    current = pytester.runpytest_subprocess(
        *common, "--benchmark-compare", "--fail-on-regression", "--benchmark-json", "cur.json"
    )
    current.assert_outcomes(passed=3)
    assert current.ret == pytest.ExitCode.OK, current.stdout.str()[-3000:]
    saved = json.loads((pytester.path / "cur.json").read_text())
    verdicts = {v["name"].split("-")[1]: v for v in saved["infer_bench"]["verdicts"]}
    assert sorted(verdicts) == sorted(FLAGGED)
    for backend, metric in FLAGGED.items():
        v = verdicts[backend]
        assert v["verdict"] != "regression", (backend, v)
        assert v["metrics"][metric]["verdict"] == "regression", (backend, v["metrics"][metric])
        others = {m: x["verdict"] for m, x in v["metrics"].items() if m != metric}
        assert "regression" not in others.values(), (backend, others)
        assert others["size"] == NOT_COMPARED  # eager torch builds no artifact
    memory = verdicts["leaky"]["metrics"]["memory"]
    assert memory["current"] - memory["baseline"] > 100 and memory["note"].startswith("no compile cache, 3 vs 3")
    assert verdicts["slowcompile"]["metrics"]["compile"]["current"] > 1.0
    assert verdicts["drifting"]["metrics"]["accuracy"]["ratio"] > 10
    infos = {b["extra_info"]["backend"]: b["extra_info"] for b in saved["benchmarks"]}
    assert all(i["parity_passed"] for i in infos.values())
    assert [len(infos["leaky"]["process_metrics"][k]) for k in ("compile_s", "model_rss_mb", "first_inference_s")] == [
        3,
        3,
        3,
    ]
    current.stdout.fnmatch_lines_random(
        ["*test_latency[[]tiny_mlp-leaky-llvm-sp0-t1[]]*x REGRESSION*", "*memory: 1 regression*"]
    )
    # the same memory regression fails the run when --fail-on names memory
    leaky = pytester.runpytest_subprocess(
        *common, "-k", "leaky", "--benchmark-compare", "--fail-on-regression", "--fail-on", "memory"
    )
    leaky.assert_outcomes(passed=1)
    assert leaky.ret == pytest.ExitCode.TESTS_FAILED
    # ... unless its threshold is raised past what it grew by (pytest's --metric-thresholds)
    lenient = pytester.runpytest_subprocess(
        *common, "-k", "leaky", "--benchmark-compare", "--fail-on-regression", "--fail-on", "memory",
        "--metric-thresholds", "memory=1000", "--benchmark-json", "lenient.json",
    )  # fmt: skip
    lenient.assert_outcomes(passed=1)
    assert lenient.ret == pytest.ExitCode.OK, lenient.stdout.str()[-3000:]
    (verdict,) = json.loads((pytester.path / "lenient.json").read_text())["infer_bench"]["verdicts"]
    assert (verdict["metrics"]["memory"]["verdict"], verdict["metrics"]["memory"]["threshold"]) == (
        "minor regression",
        1000,
    )
    bad = pytester.runpytest_subprocess(*common, "--metric-thresholds", "memory=lots")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*infer-bench: --metric-thresholds 'memory=lots': 'memory=lots' is not NAME=FRACTION*"])
    # the saved run keeps them: compare judges it as the run did, and its own option beats them
    saved = pytester.path / "lenient.json"
    assert json.loads(saved.read_text())["benchmarks"][0]["extra_info"]["metric_thresholds"] == {"memory": 1000}
    base = next((pytester.path / "store").rglob("*base.json"))
    assert main(["compare", str(base), str(saved), "--fail-on", "memory"]) == 0
    assert main(["compare", str(base), str(saved), "--fail-on", "memory", "--metric-thresholds", "memory=0.1"]) == 1
