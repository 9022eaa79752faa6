"""``python -m harness merge``: shard results of one profile and commit become one run; mixed
profiles, overlapping cells, mixed commits or splits are refused with one line; a missing shard is
named, not fatal; the merged run is compared and stored like any other."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.compare.compare import compare_results
from harness.store.merge import MergeError, merge_results
from harness.store.results import load_result
from tests.test_cli import PROFILE, crafted


def shard_file(path, cells, shard=None, seed=0, profile=PROFILE, commit="c0ffee" * 6, control=1e-3):
    crafted(path, cells, seed=seed, profile=profile, control=control)
    data = json.loads(path.read_text())
    data["commit_info"] = {"id": commit}
    data["datetime"] = f"2026-11-22T0{seed}:00:00"
    if shard:
        data["infer_bench"]["shard"] = shard
        data["infer_bench"]["verdicts"] = [{"name": "a part's verdict"}]
    path.write_text(json.dumps(data))
    return path


def test_two_shards_become_one_run_judged_like_an_unsharded_one(tmp_path, capsys):
    a = shard_file(tmp_path / "a.json", {"mlp-ort": 1e-3, "mlp-torch": 2e-3}, "1/2", seed=1)
    b = shard_file(tmp_path / "b.json", {"bert-ort": 5e-3}, "2/2", seed=2, control=1.1e-3)
    out = tmp_path / "merged.json"
    assert main(["merge", str(a), str(b), "-o", str(out)]) == 0
    assert f"{out}: 3 cells from 2 results (shards 1/2, 2/2)" in capsys.readouterr().out
    merged = load_result(out)
    names = [bench["fullname"].split("[")[1][:-1] for bench in merged["benchmarks"]]
    assert names == ["bert-ort", "mlp-ort", "mlp-torch"]
    extra = merged["infer_bench"]
    assert extra["merged"] == {"from": [str(a), str(b)], "shards": ["1/2", "2/2"]}
    assert "verdicts" not in extra and "shard" not in extra
    assert [s["at"] for s in extra["control"]["samples"]] == [f"shard {a}"] * 4 + [f"shard {b}"] * 4
    assert extra["peak_fp32_gflops"] == 100.0 and merged["datetime"] == "2026-11-22T02:00:00"
    assert merged["machine_info"] == load_result(a)["machine_info"]
    # the same cells measured unsharded: every merged cell has its verdict
    whole = shard_file(tmp_path / "whole.json", {"mlp-ort": 1e-3, "mlp-torch": 2e-3, "bert-ort": 5e-3}, seed=3)
    verdicts = compare_results(load_result(whole), merged).verdicts
    assert sorted(v.verdict for v in verdicts) == ["unchanged"] * 3


def test_refusals_are_one_line_naming_the_files(tmp_path, capsys):
    a = shard_file(tmp_path / "a.json", {"mlp-ort": 1e-3}, "1/2")
    other = dict(PROFILE, profile_id="intel-xeon-2cpu-32g-123456")
    cases = {
        "different profiles": shard_file(tmp_path / "p.json", {"bert-ort": 1e-3}, "2/2", profile=other),
        "overlap": shard_file(tmp_path / "o.json", {"mlp-ort": 1e-3}, "2/2"),
        "different commits": shard_file(tmp_path / "c.json", {"bert-ort": 1e-3}, "2/2", commit="beef" * 10),
        "different splits": shard_file(tmp_path / "s.json", {"bert-ort": 1e-3}, "2/3"),
        "given twice": shard_file(tmp_path / "t.json", {"bert-ort": 1e-3}, "1/2"),
        "not a shard": shard_file(tmp_path / "n.json", {"bert-ort": 1e-3}, "3/2"),
    }
    expected = {
        "different profiles": "results of different machine profiles cannot be one run: "
        f"{PROFILE['profile_id']} ({a}), intel-xeon-2cpu-32g-123456 ({tmp_path / 'p.json'})",
        "overlap": f"suites/test_latency.py::test_latency[mlp-ort] is in both {a} and {tmp_path / 'o.json'}: "
        "shards must not overlap",
        "different commits": f"results of different commits cannot be one run: c0ffeec0ffee ({a}), beefbeefbeef",
        "different splits": "results of different shard splits cannot be one run "
        f"({a}: 1/2, {tmp_path / 's.json'}: 2/3)",
        "given twice": "shard 1/2 is given twice",
        "not a shard": f"{tmp_path / 'n.json'}: infer_bench.shard is '3/2', not K/N",
    }
    for case, other_file in cases.items():
        out = tmp_path / f"{case}.json"
        assert main(["merge", str(a), str(other_file), "-o", str(out)]) == 2, case
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert expected[case] in err, (case, err)
        assert not out.exists()
    with pytest.raises(MergeError, match="nothing to merge"):
        merge_results([])


def test_a_missing_shard_is_named_and_the_rest_merged(tmp_path, capsys):
    a = shard_file(tmp_path / "a.json", {"mlp-ort": 1e-3}, "1/3")
    c = shard_file(tmp_path / "c.json", {"bert-ort": 1e-3}, "3/3")
    out = tmp_path / "merged.json"
    assert main(["merge", str(a), str(c), "-o", str(out)]) == 0
    assert "warning: shards missing: 2/3; their cells are not in this run" in capsys.readouterr().err
    assert load_result(out)["infer_bench"]["merged"]["shards"] == ["1/3", "3/3"]


SUITE = """
from harness import Matrix

MATRIX = Matrix(models=["tiny_mlp"], backends=["torch", "ort"], threads=["1"])


def test_latency(cell, measure_cell):
    measure_cell(cell)
"""


@pytest.mark.process
def test_shards_of_a_real_run_merge_and_store_as_one_run(pytester, run_plugin):
    """Both shards of a two-cell suite, run as two CI jobs would, merged and stored: the store's
    newest run of the profile holds both cells; the history command reads it."""
    pytester.makepyfile(test_suite=SUITE)
    common = ["--model-factory", "tests.tiny_models:tiny_mlp", "--processes", "1", "--benchmark-max-time", "0.05"]
    for k in (1, 2):
        out = run_plugin(*common, "--shard", f"{k}/2", f"--benchmark-json=shard{k}.json")
        assert out.ret == pytest.ExitCode.OK, out.stdout.str()
        assert json.loads((pytester.path / f"shard{k}.json").read_text())["infer_bench"]["shard"] == f"{k}/2"
    shards = [str(pytester.path / f"shard{k}.json") for k in (1, 2)]
    merged = pytester.path / "merged.json"
    assert main(["merge", *shards, "-o", str(merged)]) == 0
    assert len(load_result(merged)["benchmarks"]) == 2
    store = pytester.path / "baselines"
    assert main(["baseline", "update", "--from", str(merged), "--name", "nightly", "--store", str(store)]) == 0
    (profile,) = [p for p in store.iterdir() if p.is_dir()]
    (saved,) = profile.glob("0001_nightly.json")
    assert {b["fullname"] for b in load_result(saved)["benchmarks"]} == {
        b["fullname"] for s in shards for b in load_result(s)["benchmarks"]
    }
    assert main(["history", "--store", str(store), "--profile", profile.name]) == 0
