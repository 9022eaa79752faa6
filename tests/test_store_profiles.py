"""The baseline store by machine profile: runners of different machines saving into one
baselines/ each compare with their own history, a fresh profile is told how to start one, and
runs stored in pytest-benchmark's own layout are moved once."""

import json
import statistics

import pytest

from harness.store.baselines import UNPROFILED, BaselineStore
from tests.test_cli import crafted


def _profile_of(path):
    return json.loads(path.read_text())["machine_info"]["infer_bench"]["profile_id"]


def test_migrate_moves_each_run_to_its_profiles_folder_once_in_order(tmp_path, capsys):
    from harness.cli import main

    legacy = tmp_path / "baselines" / "Linux-CPython-3.11-64bit"
    legacy.mkdir(parents=True)
    crafted(legacy / "0001_smoke.json", {"mlp-ort": 1e-3}, profile={"profile_id": "intel-xeon-2cpu-16g-aaaaaa"})
    crafted(legacy / "0002_smoke.json", {"mlp-ort": 1e-3}, profile={"profile_id": "amd-epyc-2cpu-32g-bbbbbb"})
    crafted(legacy / "0003_nightly.json", {"mlp-ort": 2e-3}, profile={"profile_id": "intel-xeon-2cpu-16g-aaaaaa"})
    unprofiled = json.loads((legacy / "0001_smoke.json").read_text())
    del unprofiled["machine_info"]["infer_bench"]
    (legacy / "0004_old.json").write_text(json.dumps(unprofiled))
    (legacy / "0005_broken.json").write_text('{"benchmarks": [')
    contents = {p.name: p.read_bytes() for p in legacy.iterdir()}
    assert main(["baseline", "migrate", "--store", str(tmp_path / "baselines")]) == 0
    store = BaselineStore(tmp_path / "baselines", "intel-xeon-2cpu-16g-aaaaaa")
    assert {pid: [p.name for p in runs] for pid, runs in store.profiles().items()} == {
        "Linux-CPython-3.11-64bit": ["0005_broken.json"],  # unreadable: left where it was, with a warning
        "amd-epyc-2cpu-32g-bbbbbb": ["0001_smoke.json"],
        "intel-xeon-2cpu-16g-aaaaaa": ["0001_smoke.json", "0002_nightly.json"],  # the order kept
        UNPROFILED: ["0001_old.json"],
    }
    assert (store.dir / "0002_nightly.json").read_bytes() == contents["0003_nightly.json"]  # moved as they were
    out, err = capsys.readouterr()
    assert out.count(" -> ") == 4 and "0005_broken.json: not JSON" in err and "4 runs moved, 1 left in place" in err
    assert main(["baseline", "migrate", "--store", str(tmp_path / "baselines")]) == 0
    assert "0 runs moved" in capsys.readouterr().err


def test_baseline_update_files_a_result_under_its_own_profile(tmp_path, capsys):
    from harness.cli import main

    result = crafted(tmp_path / "r.json", {"mlp-ort": 1e-3}, profile={"profile_id": "intel-xeon-2cpu-16g-aaaaaa"})
    assert main(["baseline", "update", "--from", str(result), "--store", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "intel-xeon-2cpu-16g-aaaaaa" / "0001_smoke.json").is_file()


SUITE = """
from harness import Matrix

MATRIX = Matrix(models=["tiny_mlp"], backends=["torch"], threads=["1"])


def test_latency(cell, measure_cell):
    measure_cell(cell)
"""


@pytest.mark.process
def test_two_runners_in_one_store_each_compare_with_their_own_history(pytester, run_plugin):
    """Runner A (the whole machine) and runner B (--cpuset 0: another CPU budget, so another profile)
    save into one baselines/; each compares with its own latest run, never the other's; runner C
    (--cpuset 1), with no history, gets the one line on how to start one."""
    pytester.makepyfile(test_suite=SUITE)
    store = pytester.path / "baselines"
    common = ("--model-factory", "tests.tiny_models:tiny_mlp", "--processes", "2", "--benchmark-max-time", "0.02")
    common += (f"--benchmark-storage=file://{store}", "--no-drift-control")

    def run(*args):
        out = run_plugin(*common, *args)
        assert out.ret == pytest.ExitCode.OK, out.stdout.str()[-3000:]
        return out

    run("--benchmark-save=a")
    run("--cpuset", "0", "--benchmark-save=b")
    profiles = BaselineStore(store).profiles()
    assert len(profiles) == 2 and sorted(len(runs) for runs in profiles.values()) == [1, 1]
    ((a, [a_run]), (b, [b_run])) = sorted(profiles.items(), key=lambda item: item[1][0].name)
    assert _profile_of(a_run) == a and _profile_of(b_run) == b
    for args, mine in (((), a_run), (("--cpuset", "0"), b_run)):
        out = run(*args, "--benchmark-compare", "--benchmark-save=again")
        text = out.stdout.str()
        assert f"Comparing against benchmarks from: {mine.parent.name}/{mine.name}" in out.stderr.str()
        assert "infer-bench verdicts" in text and "no verdicts" not in text and "differs from" not in text
        assert "tiny_mlp-torch-llvm-sp0-t1" in text.split("infer-bench verdicts")[1]
    fresh = run("--cpuset", "1", "--benchmark-compare")
    fresh.stdout.fnmatch_lines(
        [
            "no saved run of this machine's profile * in */baselines/*/: record one with --benchmark-save=NAME (or "
            "python -m harness baseline update); runs of other profiles: * (2 runs), * (2 runs)"
        ]
    )


def test_a_compacted_run_keeps_process_medians_counts_and_metadata_and_gives_the_same_verdicts(tmp_path):
    from harness.compare.compare import compare_results
    from harness.store.results import compact_result, load_result, process_samples

    cells = {"mlp-ort": 1e-3, "mlp-tvm": 2e-3, "bert-ort": 5e-3}
    base = load_result(crafted(tmp_path / "base.json", cells, processes=5))
    slow = load_result(crafted(tmp_path / "slow.json", {**cells, "mlp-tvm": 2.4e-3}, seed=3, processes=5))
    compacted = compact_result(base)
    (tmp_path / "compacted.json").write_text(json.dumps(compacted, separators=(",", ":")))
    reread = load_result(tmp_path / "compacted.json")
    for full, small in zip(base["benchmarks"], reread["benchmarks"]):
        medians = [statistics.median(g) for g in process_samples(full)]
        assert [g[0] for g in process_samples(small)] == pytest.approx(medians, rel=1e-4)
        assert small["stats"]["median"] == pytest.approx(full["stats"]["median"], rel=1e-3)
    before = {v.name: v.verdict for v in compare_results(base, slow, None, 0.01).verdicts}
    after = {v.name: v.verdict for v in compare_results(reread, slow, None, 0.01).verdicts}
    assert after == before and "regression" in before.values()
    assert reread["infer_bench"]["compacted"] is True
    assert compact_result(compacted) is compacted  # compacting twice changes nothing


def test_a_committed_smoke_run_compacts_to_under_20_kb():
    from pathlib import Path

    from harness.store.results import compact_result, load_result

    path = Path(__file__).resolve().parent.parent / "baselines" / "amd-epyc-2cpu-32g-6de625" / "0002_smoke.json"
    data = load_result(path)
    text = json.dumps(compact_result(data), separators=(",", ":"))
    assert len(data["benchmarks"]) == 39 and len(text) <= 20 * 1024 < path.stat().st_size / 20


def test_each_save_compacts_the_runs_older_than_the_newest_few(tmp_path, capsys):
    from harness.cli import main
    from harness.store.baselines import KEEP_SAMPLES
    from harness.store.results import load_result

    pid = "intel-xeon-2cpu-16g-aaaaaa"
    store = BaselineStore(tmp_path, pid)
    for night in range(KEEP_SAMPLES + 2):
        result = crafted(tmp_path / f"n{night}.json", {"mlp-ort": 1e-3 * (1 + night / 100)}, seed=night)
        store.add(result.read_text(), "nightly")
    flags = [bool(load_result(p)["infer_bench"].get("compacted")) for p in store.runs()]
    assert flags == [True, True] + [False] * KEEP_SAMPLES
    assert main(["baseline", "compact", "--keep", "1", "--store", str(tmp_path)]) == 0
    assert [bool(load_result(p)["infer_bench"].get("compacted")) for p in store.runs()] == [True] * 6 + [False]
    assert capsys.readouterr().err.strip() == "4 runs compacted"
