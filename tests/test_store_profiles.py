"""The baseline store by machine profile: runners of different machines saving into one
baselines/ each compare with their own history, a fresh profile is told how to start one, and
runs stored in pytest-benchmark's own layout are moved once."""

import json

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
