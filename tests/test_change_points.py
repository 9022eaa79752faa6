"""Change points over the nightly history: the vendored Otava code is its release's, the detector
finds a 5% step under 3% noise where it happened and stays quiet in noise at the stated rates, the
history rules (busy nights out, splits at package changes, missing nights), the nightly gate fires
once per step, and ``python -m harness history`` / the report show it."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.compare.change_points import DEFAULT_MAX_PVALUE, MIN_NIGHTS, find_steps
from harness.compare.history import analyse, cell_nights, new_change_points

PROFILE = "synthetic-2cpu-24g-000000"
CELL = "suites/test_latency.py::test_latency[{}-ort-llvm-sp0-t2]"


def gaussian(rng, n, noise=0.03):
    return 1 + noise * rng.standard_normal(n)


def bimodal(rng, n):
    """A quarter of the nights 6% slower, 1.5% jitter: the two states this machine's processes show."""
    return (1 + 0.015 * rng.standard_normal(n)) * np.where(rng.random(n) < 0.25, 1.06, 1.0)


def stepped(rng, n=60, at=30, step=0.05):
    values = gaussian(rng, n)
    values[at:] *= 1 + step
    return values


# -- the vendored implementation ---------------------------------------------------------------
def test_the_vendored_otava_files_are_its_release_but_for_the_import_path():
    import harness.third_party.otava as vendored

    folder = Path(vendored.__file__).parent
    old, new = vendored.IMPORT_REWRITE
    records = (folder / "UPSTREAM").read_text().split()
    assert len(records) == 6
    for record in records:
        name, digest, size = record.split(",")
        data = (folder / name.removeprefix("otava/")).read_bytes().replace(new.encode(), old.encode())
        assert len(data) == int(size), name
        assert base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode() == digest[7:], name
    assert (folder / "LICENSE").read_text().startswith("\n                                 Apache License")
    assert "Apache Otava" in (folder / "NOTICE").read_text()


# -- the detector on synthetic series ------------------------------------------------------------
def test_a_5pct_step_under_3pct_noise_is_found_at_its_night():
    """300 seeded 60-night series, the step at night 30 (index 30: the first slower night)."""
    rng = np.random.default_rng(20261122)
    found, where = 0, Counter()
    for _ in range(300):
        steps = find_steps(stepped(rng))
        found += bool(steps)
        where.update(s.index for s in steps)
        assert all(0.9 < s.ratio < 1.2 for s in steps)
    assert found >= 0.95 * 300
    assert where.most_common(1)[0][0] == 30
    assert sum(n for i, n in where.items() if abs(i - 30) <= 2) >= 0.8 * 300


@pytest.mark.parametrize(("noise", "stated"), [(gaussian, 0.003), (bimodal, 0.013)])
def test_pure_noise_raises_a_false_change_point_at_about_the_stated_rate(noise, stated):
    """The module docstring states 0.3% (Gaussian) and 1.3% (bimodal) of 60-night series at the
    default max p-value; 600 seeded series stay within a binomial margin of it."""
    rng = np.random.default_rng(7)
    alarms = sum(bool(find_steps(noise(rng, 60))) for _ in range(600))
    assert alarms / 600 <= stated + 3 * np.sqrt(stated * (1 - stated) / 600) + 1 / 600


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(24, 90),
    at=st.floats(0.25, 0.75),
    step=st.floats(0.15, 0.5) | st.floats(-0.35, -0.15),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_large_step_is_found_within_a_night_in_the_right_direction(n, at, step, seed):
    rng = np.random.default_rng(seed)
    index = round(n * at)
    values = gaussian(rng, n, 0.01)
    values[index:] *= 1 + step
    steps = find_steps(values)
    assert steps, "a step of 15% or more under 1% noise was missed"
    closest = min(steps, key=lambda s: abs(s.index - index))
    assert abs(closest.index - index) <= 1
    assert (closest.ratio > 1) == (step > 0)
    assert closest.pvalue < DEFAULT_MAX_PVALUE


@given(st.lists(st.floats(1e-4, 10), max_size=MIN_NIGHTS - 1))
def test_too_short_or_constant_series_have_no_change_point(values):
    assert find_steps(values) == []
    assert find_steps([0.5] * 40) == []


def test_a_max_pvalue_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="not in"):
        find_steps([1.0] * 10, max_pvalue=1.5)


# -- histories from saved runs ---------------------------------------------------------------------
def night_run(night: int, values: dict[str, float], busy=(), onnxruntime="1.22.0") -> dict:
    """A compacted saved run (what the store keeps of old runs), three processes per cell."""
    return {
        "benchmarks": [
            {
                "fullname": CELL.format(cell),
                "stats": {"median": value},
                "extra_info": {
                    "samples": {"process_medians": [value * f for f in (0.999, 1.0, 1.001)], "rounds": 30},
                    **({"machine_busy": True} if cell in busy else {}),
                },
            }
            for cell, value in values.items()
        ],
        "machine_info": {"infer_bench": {"profile_id": PROFILE, "packages": {"onnxruntime": onnxruntime}}},
        "commit_info": {"id": f"{night:04d}" + "ab" * 18},
        "datetime": f"2026-09-01T02:{night:02d}:00",
        "infer_bench": {"format_version": 2, "compacted": True},
    }


def nightly_runs(nights=60, seed=5, step_at=30, busy_at=(), upgrade_at=None, missing=()) -> list[tuple[str, dict]]:
    """Cell 'mlp' steps 5% slower at ``step_at`` (3% noise), 'bert' is noise only; optional busy
    nights (mlp 30% slower and flagged), an onnxruntime upgrade, and nights missing mlp."""
    rng = np.random.default_rng(seed)
    runs = []
    for night in range(nights):
        mlp = 1e-3 * (1 + 0.03 * rng.standard_normal()) * (1.05 if step_at is not None and night >= step_at else 1)
        bert = 20e-3 * (1 + 0.03 * rng.standard_normal())
        values = {"bert": bert} if night in missing else {"mlp": mlp * (1.3 if night in busy_at else 1), "bert": bert}
        upgraded = upgrade_at is not None and night >= upgrade_at
        run = night_run(
            night, values, busy=("mlp",) if night in busy_at else (), onnxruntime="1.23.0" if upgraded else "1.22.0"
        )
        runs.append((f"{night + 1:04d}_nightly", run))
    return runs


def save_store(root: Path, runs) -> Path:
    folder = root / PROFILE
    folder.mkdir(parents=True)
    for name, run in runs:
        (folder / f"{name}.json").write_text(json.dumps(run))
    return root


def test_the_history_finds_the_injected_step_in_60_nights_and_nothing_in_the_noise_cell():
    histories = analyse(nightly_runs())
    mlp, bert = histories[CELL.format("mlp")], histories[CELL.format("bert")]
    assert bert.change_points == []
    (cp,) = mlp.change_points  # injected at index 30, run 0031 (the location is exact in ~half of such series)
    night = int(cp.night.run[:4]) - 1
    assert abs(night - 30) <= 2 and int(cp.previous.run[:4]) == night
    assert cp.night.commit == f"{night:04d}" + "ab" * 4
    assert 1.02 < cp.ratio < 1.08 and cp.pvalue < DEFAULT_MAX_PVALUE
    assert cp.to_dict()["change_percent"] == pytest.approx((cp.ratio - 1) * 100)


def test_busy_nights_are_left_out_and_missing_nights_tolerated():
    """Six busy nights 30% slower in a flat series: no change point (they are left out, and listed);
    nights where the cell is missing just are not in its series."""
    runs = nightly_runs(step_at=None, busy_at=range(40, 46), missing=(10, 11, 12))
    mlp = analyse(runs)[CELL.format("mlp")]
    assert mlp.change_points == []
    assert [n.run for n in mlp.left_out] == [f"{n + 1:04d}_nightly" for n in range(40, 46)]
    assert len(mlp.nights) == 57
    unflagged = [
        (name, json.loads(json.dumps(run).replace('"machine_busy": true', '"machine_busy": false')))
        for name, run in runs
    ]
    assert analyse(unflagged)[CELL.format("mlp")].change_points, "the same nights counted would be a change point"


def test_the_series_is_split_where_a_runtime_package_changed():
    """A 5% step on the night onnxruntime was upgraded is not a change point of the series (its cause
    is known; the verdict of that night judged it); the split is reported with the packages."""
    histories = analyse(nightly_runs(upgrade_at=30))
    mlp = histories[CELL.format("mlp")]
    assert mlp.change_points == []
    ((night, why),) = mlp.splits
    assert night.run == "0031_nightly" and why == ["onnxruntime 1.22.0 -> 1.23.0"]
    # and a step inside one part is still found
    (cp,) = analyse(nightly_runs(upgrade_at=15))[CELL.format("mlp")].change_points
    assert abs(int(cp.night.run[:4]) - 31) <= 2


def test_the_gate_fires_once_for_a_step_on_the_first_night_it_is_found():
    """Evaluated night after night as a nightly job would, the new-regression gate names the mlp step
    once, within a few nights of it, and never the noise cell."""
    runs = nightly_runs()
    fired = {}
    for n in range(10, len(runs) + 1):
        for cp in new_change_points(runs[:n]):
            if cp.is_regression(0.02):
                fired.setdefault(cp.cell, []).append((n, cp.night.run))
    assert list(fired) == [CELL.format("mlp")]
    ((night, at),) = fired[CELL.format("mlp")]
    assert 31 <= night <= 40 and at in {f"{i:04d}_nightly" for i in range(29, 34)}


def test_cell_nights_value_is_the_median_of_process_medians():
    full = {
        "fullname": "x",
        "stats": {"median": 9.0},
        "extra_info": {"samples": {"per_process": [[1, 2, 9], [3, 4, 5], [2, 2, 2]]}},
    }
    (night,) = cell_nights([("0001_a", {"benchmarks": [full]})])["x"]
    assert night.value == 2.0 and night.commit is None


# -- the command and the report ------------------------------------------------------------------
def test_history_command_prints_each_change_point_with_run_commit_step_and_pvalue(tmp_path, capsys):
    store = save_store(tmp_path / "baselines", nightly_runs())
    assert main(["history", "--store", str(store), "--profile", PROFILE]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("test_latency[mlp")]
    run, commit, change, before, after, pvalue = row.split()[1:7]
    (cp,) = analyse(nightly_runs())[CELL.format("mlp")].change_points
    assert (run, commit) == (cp.night.run, cp.night.commit)
    assert change.startswith("+") and change.endswith("%") and float(pvalue) < DEFAULT_MAX_PVALUE
    assert float(after) > float(before)
    assert "1 change points in 1 of 2 cells (up to 60 nights each)" in out
    assert main(["history", "--store", str(store), "--profile", PROFILE, "--cell", "bert", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["change_points"] == [] and len(data["runs"]) == 60


def test_history_gate_fails_on_a_new_regression_and_not_on_an_old_one(tmp_path, capsys):
    runs = nightly_runs()
    first = next(n for n in range(10, 61) if new_change_points(runs[:n]))
    store = save_store(tmp_path / "baselines", runs[: first - 1])
    current = tmp_path / "tonight.json"
    current.write_text(json.dumps(runs[first - 1][1]))
    argv = ["history", "--store", str(store), "--current", str(current), "--fail-on-new-regression"]
    assert main(argv + ["--threshold", "0.02"]) == 1
    captured = capsys.readouterr()
    assert "gate: 1 new change points slower by more than 2%: test_latency[mlp-ort-llvm-sp0-t2]" in captured.err
    assert "NEW" in captured.out
    assert main(argv + ["--threshold", "0.2"]) == 0  # not beyond a 20% threshold
    full = save_store(tmp_path / "all", runs)
    assert main(["history", "--store", str(full), "--profile", PROFILE, "--fail-on-new-regression"]) == 0


def test_history_command_one_line_errors(tmp_path, capsys):
    store = save_store(tmp_path / "baselines", nightly_runs(nights=8))
    assert main(["history", "--store", str(store), "--profile", "other-profile"]) == 2
    assert (
        f"no saved runs of profile other-profile in {store / 'other-profile'}; profiles with runs: {PROFILE} (8 runs)"
        in (capsys.readouterr().err)
    )
    assert main(["history", "--store", str(store), "--profile", PROFILE, "--cell", "resnet"]) == 2
    assert "--cell resnet: no cell of profile" in capsys.readouterr().err
    (store / PROFILE / "0009_broken.json").write_text("{")
    assert main(["history", "--store", str(store), "--profile", PROFILE]) == 0
    assert "0009_broken.json: not JSON" in capsys.readouterr().err


def test_report_marks_change_points_in_the_trend_and_lists_them(tmp_path):
    runs = nightly_runs(upgrade_at=50, busy_at=(45,))
    store = save_store(tmp_path / "baselines", runs)
    result = store / PROFILE / "0060_nightly.json"
    out = tmp_path / "report"
    assert main(["report", str(result), "-o", str(out), "--history", str(store / PROFILE)]) == 0
    md = (out / "report.md").read_text()
    assert "## Change points over the saved runs" in md
    (cp,) = analyse(runs)[CELL.format("mlp")].change_points
    assert f"| test_latency[mlp-ort-llvm-sp0-t2] | {cp.night.run} | {cp.night.commit} | {cp.ratio - 1:+.1%} |" in md
    assert "series split at 0051_nightly: onnxruntime 1.22.0 -&gt; 1.23.0" in md
    page = (out / "report.html").read_text()
    assert "<table id='change-points'>" in page and f"<td>{cp.night.run}</td>" in page
    assert "left out (machine busy): 0046_nightly (1 cell)" in page
    assert "alt='Trend over saved runs'" in page
