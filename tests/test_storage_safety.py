"""Saved runs and reports under concurrency, kills and unwritable folders, with real processes and
real filesystems: two runs saving at once get two numbers; a run killed while saving leaves no
partial file and the previous baseline intact; a read-only or full store keeps the results
elsewhere and says where; a saved run that cannot be read is named, never loaded."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.plugin.options import RunOptions
from harness.plugin.session import BenchSession
from harness.store.baselines import NAME, BaselineStore, save_run
from harness.store.results import load_result

ROOT = Path(__file__).resolve().parent.parent
SAVER = """
import os, sys, time
from pathlib import Path
from harness.store.baselines import save_run
folder, writer, count, size, pause = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if pause == "pause":  # stop inside the save, the data written but not yet synced or placed: killed there
    def fsync_then_wait(fd):
        (folder.parent / "writing").touch()
        time.sleep(600)
    os.fsync = fsync_then_wait
(folder.parent / f"ready-{writer}").touch()
deadline = time.monotonic() + 120  # never outlive a test that failed before releasing it
while not (folder.parent / "go").exists():
    if time.monotonic() > deadline:
        sys.exit("never released")
    time.sleep(0.001)
for i in range(count):
    save_run(folder, writer, '{"writer": "%s", "i": %d, "pad": "%s"}' % (writer, i, "x" * size))
"""


def _saver(folder: Path, writer: str, count: int, size: int, pause: bool = False) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [str(folder), writer, str(count), str(size), "pause" if pause else "-"]
    return subprocess.Popen([sys.executable, "-c", SAVER, *args], env=env)


def _wait_for(path: Path, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, f"no {path.name}: the saver ended or hung"
        time.sleep(0.005)


def _runs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if NAME.match(p.name))


def test_runs_saving_at_once_get_distinct_numbers_and_complete_files(tmp_path):
    """Four processes, four different run names (as --benchmark-autosave makes), five saves each,
    released together: twenty numbers, each once, each file complete."""
    folder = tmp_path / "store" / "machine"
    folder.mkdir(parents=True)
    writers = {f"w{k}": _saver(folder, f"w{k}", 5, 200_000) for k in range(4)}
    try:
        for name, writer in writers.items():
            _wait_for(tmp_path / "store" / f"ready-{name}", writer)
        (tmp_path / "store" / "go").touch()
        assert [w.wait(60) for w in writers.values()] == [0, 0, 0, 0]
    finally:
        for writer in writers.values():
            writer.kill()
    runs = _runs(folder)
    assert sorted(int(name[:4]) for name in runs) == list(range(1, 21))
    saved = sorted((d["writer"], d["i"]) for d in (json.loads((folder / name).read_text()) for name in runs))
    assert saved == sorted((f"w{k}", i) for k in range(4) for i in range(5))
    assert all(name[5:] == f"{json.loads((folder / name).read_text())['writer']}.json" for name in runs)
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_a_run_killed_while_saving_leaves_the_previous_baseline_and_no_partial_file(tmp_path):
    folder = tmp_path / "store" / "machine"
    first = save_run(folder, "smoke", '{"benchmarks": []}')
    before = first.read_bytes()
    (tmp_path / "store" / "go").touch()
    writer = _saver(folder, "killed", 1, 5_000_000, pause=True)
    try:
        _wait_for(tmp_path / "store" / "writing", writer)  # inside the save: its data written, not yet placed
    finally:
        writer.send_signal(signal.SIGKILL)
    assert writer.wait(10) == -signal.SIGKILL
    assert _runs(folder) == ["0001_smoke.json"] and first.read_bytes() == before
    [partial] = [p for p in folder.iterdir() if p.name.startswith(".")]  # the killed writer's temporary file
    assert partial.stat().st_size == len('{"writer": "killed", "i": 0, "pad": ""}') + 5_000_000
    second = save_run(folder, "smoke", '{"benchmarks": [1]}')
    assert second.name == "0002_smoke.json" and not partial.exists()


def test_only_dead_writers_temporaries_are_removed(tmp_path):
    from harness.store.io import STALE_AFTER_S, _host, remove_stale_temporaries

    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    mine_dead = tmp_path / f".0001_a.json.tmp-{_host()}-{pid_max + 1}-0123abcd"
    mine_alive = tmp_path / f".0001_b.json.tmp-{_host()}-{os.getpid()}-0123abcd"
    other_host = tmp_path / ".0001_c.json.tmp-elsewhere-1-0123abcd"
    not_a_pid = tmp_path / f".0001_d.json.tmp-{_host()}-99999999999999999999-0123abcd"
    for path in (mine_dead, mine_alive, other_host, not_a_pid):
        path.write_text("{")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([mine_dead, not_a_pid])
    later = time.time() + STALE_AFTER_S + 1  # another host's file only once it is a day old
    assert remove_stale_temporaries(tmp_path, now=later) == [other_host] and mine_alive.exists()


@pytest.fixture
def mount_tmpfs(tmp_path):
    """A real small tmpfs: 'full' (filled to the last byte) or 'read-only'; skipped where mounting is not allowed."""
    mounted = []

    def make(kind: str) -> Path:
        where = tmp_path / kind
        where.mkdir()
        options = "size=64k" + (",ro" if kind == "read-only" else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip() or done.returncode}")
        mounted.append(where)
        if kind == "full":
            with open(where / "filler", "wb", buffering=0) as fh, pytest.raises(OSError):
                while True:
                    fh.write(b"x" * 512)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


SUITE = """
from harness import Matrix

MATRIX = Matrix(models=["tiny_mlp"], backends=["torch"], threads=["1"])


def test_latency(cell, measure_cell):
    measure_cell(cell)
"""


@pytest.fixture
def run_suite(pytester, run_plugin):
    pytester.makepyfile(test_suite=SUITE)
    return lambda *args: run_plugin(
        "--model-factory",
        "tests.tiny_models:tiny_mlp",
        "--processes",
        "1",
        "--benchmark-max-time",
        "0.02",
        "--no-drift-control",
        *args,
    )


@pytest.mark.process
@pytest.mark.parametrize("kind, why", [("full", "No space left on device"), ("read-only", "Read-only file system")])
def test_an_unwritable_store_keeps_the_results_elsewhere_and_fails_the_run(run_suite, mount_tmpfs, kind, why):
    store = mount_tmpfs(kind)
    out = run_suite(
        f"--benchmark-storage=file://{store}", "--benchmark-save=nightly", f"--benchmark-json={store}/o.json"
    )
    assert out.ret == pytest.ExitCode.TESTS_FAILED
    out.stdout.fnmatch_lines_random(
        [
            "*infer-bench results not saved where asked*",
            f"--benchmark-save: cannot write {store}/* ({why}); the run is in *infer-bench-unsaved-*.json: store it "
            "later with python -m harness baseline update --from *",
            f"--benchmark-json: cannot write {store}/o.json ({why}); the results are in *infer-bench-unsaved-*.json",
        ]
    )
    kept = [line.rsplit(" ", 1)[-1] for line in out.stdout.lines if line.startswith("--benchmark-save: cannot")]
    data = load_result(kept[0])
    assert [b["param"] for b in data["benchmarks"]] == ["tiny_mlp-torch-llvm-sp0-t1"]
    assert "Traceback" not in out.stdout.str() + out.stderr.str()
    os.unlink(kept[0])


@pytest.mark.process
def test_benchmark_save_claims_a_number_and_clears_a_killed_runs_leftovers(run_suite, pytester):
    store = pytester.path / "store"
    out = run_suite(f"--benchmark-storage=file://{store}", "--benchmark-save=nightly")
    assert out.ret == pytest.ExitCode.OK
    [folder] = [p for p in store.iterdir() if p.is_dir()]
    from harness.store.io import _host

    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    leftover = folder / f".nightly.json.tmp-{_host()}-{pid_max + 1}-0123abcd"  # a writer that no longer runs
    leftover.write_text('{"benchmarks": [')
    assert run_suite(f"--benchmark-storage=file://{store}", "--benchmark-save=nightly").ret == pytest.ExitCode.OK
    assert _runs(folder) == ["0001_nightly.json", "0002_nightly.json"] and not leftover.exists()
    assert all(load_result(folder / name)["benchmarks"] for name in _runs(folder))


def test_unreadable_saved_runs_are_named_beside_the_verdicts(tmp_path):
    """pytest-benchmark skips a saved run it cannot parse and compares with an older one: the
    verdict section names each skipped file and why, and the older run is judged as it is."""
    store = BaselineStore(tmp_path)
    store.dir.mkdir()
    (store.dir / "0001_smoke.json").write_text('{"benchmarks": [')
    (store.dir / "0002_smoke.json").write_text('{"nothing": 1}')
    session = BenchSession(RunOptions(drift_control=False))
    assert session.set_baseline({"benchmarks": []}, {}, tmp_path) is None
    first, second = session.baseline_notes
    assert first.startswith(f"skipped an unreadable saved run: {store.dir / '0001_smoke.json'}: not JSON (")
    assert second == (
        f"skipped an unreadable saved run: {store.dir / '0002_smoke.json'}: no 'benchmarks' list; expected a "
        "pytest-benchmark result (--benchmark-json)"
    )


def test_a_report_folder_that_cannot_be_written_keeps_the_table_and_says_why(tmp_path):
    from harness.machine.threads import CpuBudget
    from harness.plan.cell import Cell
    from harness.run.protocol import CellResult, ThreadReport
    from harness.run.timing import Samples

    (tmp_path / "reports").write_text("a file where the folder should be")
    session = BenchSession(RunOptions(drift_control=False, report_dir="reports/run"), root=tmp_path)
    for threads, median in (("1", 2e-3), ("2", 1e-3)):
        cell = Cell("m", "ort", threads=threads)
        result = CellResult(cell, ThreadReport(threads, int(threads)), samples=[Samples([median] * 3, 1)])
        result.cpu_budget, result.nodeid = CpuBudget(2, 2, None, 2), f"s.py::t[{cell.id}]"
        session.results.append(result)
    [(title, lines, warning)] = [s for s in session.summary() if s[0] == "infer-bench thread settings"]
    assert warning and lines[2].split()[:3] == ["m", "ort", "both"]  # the table is still printed
    assert lines[-1].startswith(f"not written ({tmp_path / 'reports' / 'run'}: ")
    assert lines[-1].endswith("; the table above holds the same figures")


def test_report_command_into_an_unwritable_folder_is_one_line(tmp_path, capsys):
    from harness.cli import main
    from tests.test_cli import crafted

    result = crafted(tmp_path / "r.json", {"mlp-ort": 1e-3})
    (tmp_path / "taken").write_text("a file where the folder should be")
    assert main(["report", str(result), "-o", str(tmp_path / "taken" / "out"), "--history", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot write the report: {tmp_path / 'taken' / 'out'}: ")
