"""python -m harness compare / baseline update / report, on crafted result files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.compare.verdict import VERDICTS
from harness.store.baselines import UNPROFILED, BaselineStore
from harness.store.results import ResultFileError, load_result
from tests.headless_chromium import CHROMIUM, NO_CHROMIUM, console_messages, dump_dom

ROOT = Path(__file__).resolve().parent.parent
PROFILE = {
    "profile_id": "test-cpu-2cpu-8g-abc123",
    "cpu": {"model": "Test CPU", "isa": []},
    "cpu_budget": {"effective_cpus": 2, "host_cpus": 2},
}

COMMITTED_PROFILE = "amd-epyc-2cpu-32g-6de625"  # the machine the committed smoke baselines were measured on


def crafted(
    path, cells: dict[str, float], seed=0, profile=PROFILE, control=1e-3, processes=3, noise=0.005, threshold=0.05
):
    """A pytest-benchmark JSON like a real run's: per-process samples around the given medians
    (seconds), each benchmark's own saved regression threshold, the drift control measured four
    times at 2 threads (1% noise)."""
    rng = np.random.default_rng(seed)
    benchmarks = []
    for name, median in cells.items():
        groups = [list(median * np.exp(rng.normal(0, noise, 30))) for _ in range(processes)]
        pooled = sorted(x for g in groups for x in g)
        benchmarks.append(
            {
                "fullname": f"suites/test_latency.py::test_latency[{name}]",
                "name": f"test_latency[{name}]",
                "stats": {"median": float(np.median(pooled)), "min": pooled[0], "data": pooled},
                "extra_info": {
                    "model": name.split("-")[0],
                    "backend": name.split("-")[1],
                    "threads_resolved": 2,
                    "flops": 1e8,
                    "regression_threshold": threshold,
                    "samples": {"per_process": groups, "processes": processes},
                },
            }
        )
    data = {
        "machine_info": {"infer_bench": profile},
        "benchmarks": benchmarks,
        "infer_bench": {
            "control": {
                "version": 2,
                "samples": [
                    {"threads": 2, "at": f"round {i}", "control_s": control * (1 + 0.01 * d)}
                    for i, d in enumerate((-1, 0, 1, 0))
                ],
            },
            "peak_fp32_gflops": 100.0,
            "peak_method": "test",
        },
    }
    Path(path).write_text(json.dumps(data))
    return path


def test_compare_exit_codes(tmp_path, capsys):
    base = crafted(tmp_path / "base.json", {"mlp-ort": 1e-3, "bert-ort": 2e-3})
    same = crafted(tmp_path / "same.json", {"mlp-ort": 1e-3, "bert-ort": 2e-3}, seed=1)
    slow = crafted(tmp_path / "slow.json", {"mlp-ort": 1.3e-3, "bert-ort": 2e-3}, seed=2)
    assert main(["compare", str(base), str(same), "--format", "json"]) == 0
    same_verdicts = [v["verdict"] for v in json.loads(capsys.readouterr().out)["verdicts"]]
    assert same_verdicts == ["unchanged", "unchanged"]
    assert main(["compare", str(base), str(slow), "--format", "json"]) == 1
    verdicts = {v["name"].split("[")[1][:-1]: v["verdict"] for v in json.loads(capsys.readouterr().out)["verdicts"]}
    assert verdicts == {"mlp-ort": "regression", "bert-ort": "unchanged"}
    # the same 30% slowdown passes when the threshold is 50%
    assert main(["compare", str(base), str(slow), "--threshold", "0.5"]) == 0


def test_compare_new_and_missing_cells_and_markdown(tmp_path, capsys):
    base = crafted(tmp_path / "base.json", {"mlp-ort": 1e-3, "gone-ort": 1e-3})
    cur = crafted(tmp_path / "cur.json", {"mlp-ort": 1e-3, "fresh-ort": 1e-3}, seed=3)
    assert main(["compare", str(base), str(cur), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "| test_latency[fresh-ort] | new |" in out and "| test_latency[gone-ort] | MISSING |" in out


def test_drift_corrected_verdict(tmp_path, capsys):
    base = crafted(tmp_path / "base.json", {"mlp-ort": 1e-3}, control=1e-3)
    # everything 30% slower, the control too: the machine, not the model, changed
    cur = crafted(tmp_path / "cur.json", {"mlp-ort": 1.3e-3}, seed=4, control=1.3e-3)
    assert main(["compare", str(base), str(cur), "--format", "json"]) == 0
    (v,) = json.loads(capsys.readouterr().out)["verdicts"]
    assert v["verdict"] in ("unchanged", "inconclusive") and v["drift"] == pytest.approx(1.3)
    assert v["raw_ratio"] == pytest.approx(1.3, rel=0.02) and v["ratio"] == pytest.approx(1.0, abs=0.02)
    assert main(["compare", str(base), str(cur)]) == 0
    out = capsys.readouterr().out
    assert "MACHINE DRIFT at 2 thread(s): the control runs 1.300x" in out and "drift-corrected" in out
    # no drift: the line says so and the ratios are raw
    same = crafted(tmp_path / "same.json", {"mlp-ort": 1.3e-3}, seed=4, control=1e-3)
    assert main(["compare", str(base), str(same)]) == 1
    out = capsys.readouterr().out
    assert "no drift detected, ratios are raw" in out and "drift-corrected" not in out


def test_threshold_precedence_command_line_beats_the_file_and_0_means_0(tmp_path, capsys):
    # real result files carry each benchmark's own threshold (5% here): an 8% change is a
    # regression by the file, but the command line's 20% wins
    base = crafted(tmp_path / "base.json", {"mlp-ort": 1e-3})
    cur = crafted(tmp_path / "cur.json", {"mlp-ort": 1.08e-3}, seed=11)
    assert main(["compare", str(base), str(cur)]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert main(["compare", str(base), str(cur), "--threshold", "0.2", "--format", "json"]) == 0
    (v,) = json.loads(capsys.readouterr().out)["verdicts"]
    assert v["threshold"] == 0.2 and v["verdict"] == "minor regression"
    # the file's own threshold applies when the command line gives none
    loose = crafted(tmp_path / "loose.json", {"mlp-ort": 1.08e-3}, seed=11, threshold=0.1)
    assert main(["compare", str(base), str(loose), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdicts"][0]["threshold"] == 0.1
    # 0 is a threshold, not "use the default": any significant slowdown is a regression
    assert main(["compare", str(base), str(loose), "--threshold", "0", "--format", "json"]) == 1
    (v,) = json.loads(capsys.readouterr().out)["verdicts"]
    assert v["threshold"] == 0.0 and v["verdict"] == "regression"


def test_a_precise_change_below_the_threshold_is_minor_and_passes_unless_asked(tmp_path, capsys):
    # every sample of a real committed smoke result scaled by 1.03: +3% under the 5% threshold
    runs = BaselineStore(ROOT / "baselines", COMMITTED_PROFILE).runs()
    data = json.loads(runs[-1].read_text())
    for bench in data["benchmarks"]:
        samples = bench["extra_info"]["samples"]
        samples["per_process"] = [[x * 1.03 for x in g] for g in samples["per_process"]]
    scaled = tmp_path / "scaled.json"
    scaled.write_text(json.dumps(data))
    assert main(["compare", str(runs[-1]), str(scaled), "--format", "json"]) == 0
    verdicts = json.loads(capsys.readouterr().out)["verdicts"]
    assert {v["verdict"] for v in verdicts} <= {"minor regression", "inconclusive"}
    # (its cells have 3 processes: the precisely measured ones are minor, the others undecided)
    assert any(v["verdict"] == "minor regression" for v in verdicts)
    assert all(v["ratio"] == pytest.approx(1.03, rel=1e-4) for v in verdicts)
    assert main(["compare", str(runs[-1]), str(scaled), "--fail-on-minor"]) == 1
    assert "minor regression" in capsys.readouterr().out


@pytest.mark.parametrize(
    "sample, message",
    [
        ("null", "samples.per_process[0][1] is None, not a positive number of seconds"),
        ('"NaN"', "samples.per_process[0][1] is 'NaN', not a positive number of seconds"),
        ("NaN", "samples.per_process[0][1] is nan, not a positive number of seconds"),
        ("-1", "samples.per_process[0][1] is -1, not a positive number of seconds"),
    ],
)
def test_a_bad_sample_is_exit_2_with_one_line(tmp_path, capsys, sample, message):
    good = crafted(tmp_path / "good.json", {"mlp-ort": 1e-3})
    data = json.loads(good.read_text())
    data["benchmarks"][0]["extra_info"]["samples"]["per_process"][0][1] = "__BAD__"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data).replace('"__BAD__"', sample))
    assert main(["compare", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bad}: suites/test_latency.py::test_latency[mlp-ort]: {message}\n"


@pytest.mark.parametrize(
    "content, message",
    [
        ("{", "not JSON"),
        ('{"benchmarks": 3}', "no 'benchmarks' list"),
        ('{"benchmarks": [{"name": "x"}]}', "benchmark #0 lacks 'fullname' or 'stats'"),
        (
            '{"benchmarks": [], "infer_bench": {"format_version": 99}}',
            "written by a newer infer-bench (result format 99; this one reads up to 2): upgrade infer-bench to read it",
        ),
        (
            '{"benchmarks": [], "infer_bench": {"format_version": "2"}}',
            "'infer_bench.format_version' is '2', not an integer",
        ),
    ],
)
def test_corrupt_file_is_exit_2_with_one_line(tmp_path, capsys, content, message):
    good = crafted(tmp_path / "good.json", {"mlp-ort": 1e-3})
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["compare", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: {message}") and err.count("\n") == 1


def test_missing_file_and_bad_arguments_are_exit_2(tmp_path, capsys):
    good = crafted(tmp_path / "good.json", {"mlp-ort": 1e-3})
    assert main(["compare", str(good), str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["compare", str(good)]) == 2
    assert main(["compare", str(good), str(good), "--threshold", "5"]) == 2


def test_profiles_are_never_compared_silently(tmp_path, capsys):
    base = crafted(tmp_path / "base.json", {"mlp-ort": 1e-3})
    other = crafted(
        tmp_path / "other.json", {"mlp-ort": 1e-3}, profile=dict(PROFILE, profile_id="big-64cpu-512g-fff000")
    )
    assert main(["compare", str(base), str(other)]) == 2
    assert "profiles differ: baseline test-cpu-2cpu-8g-abc123, current big-64cpu-512g-fff000" in capsys.readouterr().err
    assert main(["compare", str(base), str(other), "--allow-profile-mismatch"]) == 0
    assert "warning: compared across profiles" in capsys.readouterr().err
    # the report judges by the same rule
    out = tmp_path / "out"
    assert main(["report", str(other), "--baseline", str(base), "-o", str(out)]) == 2
    assert "profiles differ: baseline test-cpu-2cpu-8g-abc123" in capsys.readouterr().err
    assert not out.exists()
    assert main(["report", str(other), "--baseline", str(base), "-o", str(out), "--allow-profile-mismatch"]) == 0
    assert (
        "**compared across machine profiles** test-cpu-2cpu-8g-abc123 -> big-64cpu-512g-fff000"
        in (out / "report.md").read_text()
    )


@pytest.mark.process
def test_the_module_entry_point_runs(tmp_path):
    base = crafted(tmp_path / "base.json", {"mlp-ort": 1e-3})
    slow = crafted(tmp_path / "slow.json", {"mlp-ort": 2e-3}, seed=5)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "compare", str(base), str(slow)], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 1 and "REGRESSION" in proc.stdout


def test_baseline_update_is_atomic_and_keeps_history(tmp_path, capsys):
    store_dir = tmp_path / "baselines"
    first = crafted(tmp_path / "first.json", {"mlp-ort": 1e-3})
    second = crafted(tmp_path / "second.json", {"mlp-ort": 2e-3}, seed=6)
    assert main(["baseline", "update", "--from", str(first), "--store", str(store_dir)]) == 0
    assert main(["baseline", "update", "--from", str(second), "--store", str(store_dir), "--name", "nightly"]) == 0
    store = BaselineStore(store_dir, "test-cpu-2cpu-8g-abc123")  # filed under the results' own profile
    assert [p.name for p in store.runs()] == ["0001_smoke.json", "0002_nightly.json"]
    source = json.loads(first.read_text())  # format 1 (no version): stored migrated to the current format
    assert json.loads(store.runs()[0].read_text()) == dict(
        source, infer_bench=dict(source["infer_bench"], format_version=2)
    )
    assert store.latest().name == "0002_nightly.json" and list(store.profiles()) == ["test-cpu-2cpu-8g-abc123"]
    # a corrupt source changes nothing and leaves no temporary file behind
    bad = tmp_path / "bad.json"
    bad.write_text('{"benchmarks": [')
    before = sorted(p.name for p in store.dir.iterdir())
    assert main(["baseline", "update", "--from", str(bad), "--store", str(store_dir)]) == 2
    assert sorted(p.name for p in store.dir.iterdir()) == before
    empty = tmp_path / "empty.json"
    empty.write_text('{"benchmarks": []}')
    with pytest.raises(ResultFileError, match="refusing to store an empty baseline"):
        store.update(empty)


def test_baseline_update_survives_a_failed_write(tmp_path, monkeypatch):
    store = BaselineStore(tmp_path / "b", "test-cpu-2cpu-8g-abc123")
    store.update(crafted(tmp_path / "a.json", {"mlp-ort": 1e-3}))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "link", boom)
    with pytest.raises(OSError, match="disk full"):
        store.update(crafted(tmp_path / "b.json", {"mlp-ort": 1e-3}))
    assert [p.name for p in store.dir.iterdir()] == ["0001_smoke.json"]  # no temp file, old run intact


def test_report_writes_markdown_html_and_step_summary(tmp_path, monkeypatch):
    history = tmp_path / "history"
    history.mkdir()
    crafted(history / "0001_smoke.json", {"mlp-ort": 1e-3, "mlp-tvm": 50e-3})
    base = crafted(
        tmp_path / "base.json",
        {"mlp-ort": 1e-3, "mlp-tvm": 50e-3},
        profile=dict(PROFILE, packages={"onnxruntime": "1.30.0"}),
    )
    cur = crafted(
        tmp_path / "cur.json",
        {"mlp-ort": 1.5e-3, "mlp-tvm": 50e-3},
        seed=7,
        profile=dict(PROFILE, packages={"onnxruntime": "1.31.1"}),
    )
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = tmp_path / "out"
    assert main(["report", str(cur), "--baseline", str(base), "-o", str(out), "--history", str(history)]) == 0
    md = (out / "report.md").read_text()
    assert "| test_latency[mlp-ort] | regression |" in md.replace("REGRESSION", "regression")
    assert "- **runtime changed**: onnxruntime 1.30.0 in the baseline, 1.31.1 now" in md
    import re

    # 1e8 FLOPs in ~1.5 ms = ~66.7 GFLOP/s = ~66.7% of the profile's 100 GFLOP/s peak
    # then p90 and p99 ('-': this synthetic result has none) and samples/s ('-': a latency cell)
    assert re.search(
        r"\| test_latency\[mlp-ort\] \| ort \| 2 \| 1\.(49|50)\d \| - \| - \| - \| 66\.\d \| 66\.\d \|", md
    ), md
    assert summary.read_text() == md
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<table id='cells'>" in page
    assert "http://" not in page and "https://" not in page  # self-contained


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_report_renders_in_headless_chromium_without_console_errors(tmp_path):
    base = crafted(tmp_path / "base.json", {"mlp-ort": 1e-3, "bert-tvm": 50e-3})
    cur = crafted(tmp_path / "cur.json", {"mlp-ort": 1.5e-3, "bert-tvm": 40e-3}, seed=8)
    history = tmp_path / "history"
    history.mkdir()
    crafted(history / "0001_smoke.json", {"mlp-ort": 1.1e-3, "bert-tvm": 45e-3}, seed=9)
    out = tmp_path / "out"
    assert main(["report", str(cur), "--baseline", str(base), "-o", str(out), "--history", str(history)]) == 0
    proc = dump_dom(out / "report.html", tmp_path / "profile")
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'data-plots-rendered="3/3"' in dom  # every embedded plot decoded with a non-zero size
    assert dom.count("<tr>") == 3 and "regression" in dom and "improvement" in dom
    assert console_messages(proc.stderr) == []


def test_runtime_upgrades_head_the_verdict_table(tmp_path, capsys):
    packages = {"torch": "2.12.0", "onnxruntime": "1.31.1", "apache-tvm": "0.27.0.post1", "onnx": "1.23.2"}
    base = crafted(tmp_path / "base.json", {"mlp-ort": 1e-3}, profile=dict(PROFILE, packages=packages))
    cur = crafted(
        tmp_path / "cur.json",
        {"mlp-ort": 1e-3},
        seed=6,
        profile=dict(PROFILE, packages=dict(packages, torch="2.13.0", onnx="1.24.0")),
    )
    assert main(["compare", str(base), str(cur)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        "runtime changed: torch 2.12.0 in the baseline, 2.13.0 now: ratios include the effect of this upgrade",
        "runtime changed: onnx 1.23.2 in the baseline, 1.24.0 now: ratios include the effect of this upgrade",
    ]
    assert lines[2].startswith("cell") and not any("onnxruntime" in line for line in lines)
    assert main(["compare", str(base), str(cur), "--format", "json"]) == 0
    assert [c.split()[0] for c in json.loads(capsys.readouterr().out)["runtime_changes"]] == ["torch", "onnx"]
    assert main(["compare", str(base), str(cur), "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("- **runtime changed**: torch 2.12.0 in the baseline, 2.13.0 now")
    # the same versions on both sides: no line; a baseline without versions: says so
    assert main(["compare", str(base), str(base)]) == 0
    assert "runtime changed" not in capsys.readouterr().out
    assert main(["compare", str(crafted(tmp_path / "old.json", {"mlp-ort": 1e-3}, seed=7)), str(cur)]) == 0
    assert capsys.readouterr().out.startswith("runtime changed: the baseline records no runtime versions")


def test_committed_baselines_still_load_and_compare(capsys):
    store = ROOT / "baselines"
    runs = BaselineStore(store, UNPROFILED).runs() + BaselineStore(store, COMMITTED_PROFILE).runs()
    assert [str(p.relative_to(store)) for p in runs] == [
        "unprofiled/0001_smoke.json",  # saved before results carried a machine profile
        f"{COMMITTED_PROFILE}/0001_smoke.json",
        f"{COMMITTED_PROFILE}/0002_smoke.json",
    ]
    for path in runs:  # format 1 (saved before the version field) migrates on load
        assert load_result(path)["infer_bench"]["format_version"] == 2
    assert main(["compare", str(runs[1]), str(runs[2]), "--format", "json"]) in (0, 1)
    verdicts = json.loads(capsys.readouterr().out)["verdicts"]
    names = [{b["fullname"] for b in load_result(path)["benchmarks"]} for path in runs[1:]]
    assert names[0] == names[1] and {v["name"] for v in verdicts} == names[1]
    assert all(v["ratio"] is not None and v["verdict"] in VERDICTS[:6] for v in verdicts)
