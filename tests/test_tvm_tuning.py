"""MetaSchedule records end to end: `python -m harness tune` writes a database for a tiny model, the
tvm backend picks it up for its own key (profile, threads, TVM version) or when borrowed, and
never for another thread count. A damaged copy of that database (a line that is not JSON, a
record of the wrong shape, a record naming no workload, a run time that is not a finite time) is
refused with one line naming the file and line, before MetaSchedule reads a byte of it: by a cell,
by ``--tvm-tuning-db``'s check, by a tuning run that would append to it and by ``publish``."""

import base64
import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("tvm")

from harness.backends import get_backend  # noqa: E402
from harness.backends.tvm.tuning import (  # noqa: E402
    BORROW_ENV,
    FILES,
    REFUSED_EXIT,  # noqa: E402
    ROOT_ENV,
    SEARCH,
    TuneSpec,
    TuningDatabase,
    TuningDatabaseError,
    contents_problem,
    database_dir,
    database_problem,
    digest,
    find_database,
    prepare_search,
    publish,
    snapshot,
)
from harness.backends.tvm.tuning import main as tuning_main  # noqa: E402
from harness.machine.profile import current_profile  # noqa: E402
from harness.models import build_model  # noqa: E402
from harness.models.base import INPUT_SEED_PARITY  # noqa: E402
from harness.plan.cell import Cell  # noqa: E402
from harness.plan.targets import get_target  # noqa: E402
from harness.run.parity import check_parity  # noqa: E402
from harness.run.schedule import run_cell  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FACTORY = "tests.tiny_models:tiny_mlp"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("tuning") / "db"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "tune", "--model-factory", FACTORY, "--threads", "1", "--trials", "2"]
        + ["--database", str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tasks tuned" in proc.stdout and "GFLOP/s" in proc.stdout, proc.stdout[-2000:]
    # every task's default schedule is measured and recorded before the search
    assert re.search(r"default schedules measured and recorded for [1-9]\d* tasks", proc.stdout), proc.stdout[-2000:]
    assert all((db / name).stat().st_size > 0 for name in FILES)
    return db


def _compile(threads: int):
    model = build_model("tiny_mlp", {"model_factory": FACTORY})
    x = model.make_inputs(INPUT_SEED_PARITY)
    compiled = get_backend("tvm").compile(model, get_target("llvm"), threads, x)
    y64, y32 = model.reference(x)
    assert check_parity(model.output_names(), compiled.run(x), y64, y32).passed
    return compiled


def test_borrowed_database_is_applied_and_labelled(tuned, monkeypatch):
    monkeypatch.setenv(BORROW_ENV, str(tuned))
    compiled = _compile(1)
    info = compiled.build_info()
    assert info["tuning_coverage"] == 1.0 and info["tuning_db"] == digest(tuned) and info["tuning_db_borrowed"]
    assert compiled.label.startswith(f"MetaSchedule db {digest(tuned)} (borrowed")


def test_own_profile_database_used_only_for_its_thread_count(tuned, tmp_path, monkeypatch):
    import tvm

    monkeypatch.delenv(BORROW_ENV, raising=False)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    own = database_dir(current_profile()["profile_id"], 1, tvm.__version__, root=tmp_path)
    shutil.copytree(tuned, own)
    one = _compile(1)
    assert one.label.startswith(f"MetaSchedule db {digest(own)}") and "borrowed" not in one.label
    assert one.build_info()["tuning_coverage"] == 1.0
    two = _compile(2)  # num-cores 2: the t1 records are not this cell's
    assert two.label == "default schedules" and two.build_info()["tuning_db"] is None


def test_missing_borrowed_database_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(BORROW_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(TuningDatabaseError, match=f"{BORROW_ENV}=.*nowhere: no MetaSchedule database there"):
        find_database(1, "0.27")


def test_digest_needs_both_files(tmp_path):
    (tmp_path / FILES[0]).write_text("{}\n")
    assert digest(tmp_path) is None
    (tmp_path / FILES[1]).write_text("")
    assert digest(tmp_path) is not None


def test_tune_usage_errors_exit_2():
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "tune", "--models", "nope"], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2 and "--models: unknown nope" in proc.stderr


# -- a damaged database is refused before MetaSchedule reads it -----------------------------------

WORKLOAD, RECORDS = FILES


def _copy(tuned: Path, dest: Path, search: bool = False) -> Path:
    """The tuned database's published files (and its search/ if asked) in a directory of its own."""
    dest.mkdir(parents=True)
    for name in FILES:
        shutil.copy(tuned / name, dest / name)
    if search:
        shutil.copytree(tuned / SEARCH, dest / SEARCH)
    return dest


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _replace_line(path: Path, index: int, line: bytes) -> None:
    """Line ``index`` (0-based) of ``path`` replaced, with a complete line after it (not a last line
    cut short, which is no damage)."""
    lines = _lines(path)
    assert index < len(lines) - 1
    lines[index] = line
    _write_lines(path, lines)


def _edit_line(path: Path, index: int, edit) -> None:
    """Line ``index`` re-written as JSON after ``edit`` changed (a copy of) its parsed value."""
    _replace_line(path, index, json.dumps(edit(copy.deepcopy(json.loads(_lines(path)[index])))).encode())


def _with_record(**parts):
    """An edit of a record line: {index, trace, run_secs, target, args_info} replaced by functions of
    their old values."""
    order = ("trace", "run_secs", "target", "args_info")

    def edit(line):
        index, record = line
        if "index" in parts:
            index = parts["index"](index)
        return [index, [parts[k](v) if k in parts else v for k, v in zip(order, record)]]

    return edit


def _undefined_input(trace):
    """The first instruction input that names a random variable renamed to one nothing defines."""
    for inst in trace[0]:
        for i, item in enumerate(inst[1]):
            if isinstance(item, str) and re.fullmatch(r"[blv]\d+", item):
                inst[1][i] = "b999999"
                return trace
    raise AssertionError("no instruction input names a random variable")


@pytest.fixture
def no_metaschedule(monkeypatch):
    """MetaSchedule's JSONDatabase made to fail the test if anything constructs it."""
    from tvm.s_tir import meta_schedule as ms

    def constructed(*args, **kwargs):
        pytest.fail("MetaSchedule's JSONDatabase was constructed for a damaged database")

    monkeypatch.setattr(ms.database, "JSONDatabase", constructed)


def test_databases_metaschedule_wrote_pass_the_check(tuned):
    # two lines at least in each file: line 1 is a middle line below
    assert len(_lines(tuned / WORKLOAD)) >= 2 and len(_lines(tuned / RECORDS)) >= 2
    assert database_problem(tuned) is None and database_problem(tuned / SEARCH) is None


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("damage, line", [("cut in half", 1), ("inserted", 2)])
def test_line_that_is_not_json_is_refused_naming_file_and_line(tuned, tmp_path, name, damage, line):
    db = _copy(tuned, tmp_path / "db")
    lines = _lines(db / name)
    if damage == "cut in half":  # a line written half, then whole lines after it
        lines[0] = lines[0][: len(lines[0]) // 2]
    else:  # a stray line between two records
        lines.insert(1, b'[0, {"oops": ')
    _write_lines(db / name, lines)
    problem = database_problem(db)
    assert problem.startswith(f"{db / name} line {line}: not JSON (") and "\n" not in problem


@pytest.mark.parametrize(
    "name, edit, why",
    [
        (WORKLOAD, lambda v: {"shash": v[0]}, "not a [structural hash, module] pair"),
        (WORKLOAD, lambda v: [int(v[0]), v[1]], "structural hash is not a decimal string"),
        (WORKLOAD, lambda v: [v[0], v[1][:-8] + "!!!!!!!!"], "module is not valid base64"),
        (WORKLOAD, lambda v: [v[0], base64.b64encode(b"not a graph").decode()], "module is not a JSON graph"),
        (RECORDS, lambda v: [v[0], v[1][:3]], "not a [workload index, [trace, run_secs, target, args_info]] record"),
        (RECORDS, _with_record(index=str), "workload index is not an integer"),
        (RECORDS, _with_record(trace=lambda t: [t[0], [[10**6, 1]]]), "trace decision for instruction 1000000, of"),
        (RECORDS, _with_record(trace=lambda t: t[0]), "trace is not [instructions, decisions]"),
        (RECORDS, _with_record(trace=_undefined_input), 'trace input "b999999" names no earlier random variable'),
        (RECORDS, _with_record(target=lambda t: "llvm"), "target is not a target configuration"),
        (RECORDS, _with_record(args_info=lambda a: [["TENSOR", "float32", "2x3"]]), "args_info shape is not a list"),
        (RECORDS, _with_record(args_info=lambda a: [a[0][1:]]), "args_info entry is not [TENSOR, dtype, shape]"),
    ],
)
def test_valid_json_of_the_wrong_shape_is_refused(tuned, tmp_path, name, edit, why):
    db = _copy(tuned, tmp_path / "db")
    _edit_line(db / name, 0, edit)
    assert database_problem(db).startswith(f"{db / name} line 1: {why}")


@pytest.mark.parametrize("index", [2, 99, -1])
def test_record_naming_a_missing_workload_is_refused(tuned, tmp_path, index):
    db = _copy(tuned, tmp_path / "db")
    workloads = len(_lines(db / WORKLOAD))
    _edit_line(db / RECORDS, 0, _with_record(index=lambda i: workloads if index == 2 else index))
    shown = workloads if index == 2 else index
    assert database_problem(db) == (
        f"{db / RECORDS} line 1: workload index {shown} names no workload (the workload file has {workloads} lines)"
    )


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "-1e-06", '"fast"', "true", "null"])
def test_run_time_that_is_not_a_finite_time_is_refused(tuned, tmp_path, value):
    db = _copy(tuned, tmp_path / "db")
    _edit_line(db / RECORDS, 0, _with_record(run_secs=lambda r: [12345.678]))  # a marker, then the raw text
    line = _lines(db / RECORDS)[0].decode()
    _replace_line(db / RECORDS, 0, line.replace("[12345.678]", f"[{value}]").encode())
    assert database_problem(db) == f"{db / RECORDS} line 1: run_secs holds {value}, not a finite time >= 0"


@pytest.mark.parametrize("name", FILES)
def test_truncated_last_line_is_accepted_and_left_out(tuned, tmp_path, monkeypatch, name):
    db = _copy(tuned, tmp_path / "db")
    whole = (db / name).read_bytes()
    (db / name).write_bytes(whole + _lines(db / name)[-1][:100])  # a tuner killed while appending a line
    assert database_problem(db) is None and digest(db) == digest(tuned)
    monkeypatch.setenv(BORROW_ENV, str(db))
    database = find_database(1, "0.27")
    assert database.contents == snapshot(tuned) and len(database.open()) == len(_lines(tuned / RECORDS))


def test_database_problem_for_the_command_line_option(tuned, tmp_path):
    assert database_problem(tuned) is None
    assert database_problem(tmp_path / "nowhere") == f"no MetaSchedule database there ({' + '.join(FILES)})"
    db = _copy(tuned, tmp_path / "db")
    _replace_line(db / RECORDS, 0, b"")  # an empty line is not a record either
    assert database_problem(db) == f"{db / RECORDS} line 1: not JSON (Expecting value: column 1)"


@pytest.mark.parametrize("whose", ["borrowed", "own"])
def test_cell_with_damaged_database_fails_with_one_line_and_never_loads_it(
    tuned, tmp_path, monkeypatch, no_metaschedule, whose
):
    import tvm

    store = tmp_path / "store"
    monkeypatch.setenv(ROOT_ENV, str(store))
    if whose == "borrowed":
        db = _copy(tuned, tmp_path / "db")
        monkeypatch.setenv(BORROW_ENV, str(db))
    else:
        monkeypatch.delenv(BORROW_ENV, raising=False)
        db = _copy(tuned, database_dir(current_profile()["profile_id"], 1, tvm.__version__, root=store))
    _edit_line(db / RECORDS, 0, _with_record(run_secs=lambda r: [float("nan")]))
    with pytest.raises(TuningDatabaseError) as refused:
        find_database(1, tvm.__version__)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"MetaSchedule tuning database refused: {db / RECORDS} line 1: run_secs holds NaN")
    if whose == "own":
        assert message.endswith(
            f"delete {db} or re-run `python -m harness tune --threads 1` to rebuild it; or pass --tvm-tuning-db DIR"
        )
    else:
        assert message.endswith(f"repair or replace {db}, or pass another --tvm-tuning-db DIR ({BORROW_ENV}), or none")
    with pytest.raises(TuningDatabaseError, match="line 1: run_secs holds NaN"):  # a TuningDatabase made by hand
        TuningDatabase(db, snapshot(db), borrowed=whose == "borrowed").open()
    cell = Cell("tiny_mlp", "tvm", threads="1", model_options={"model_factory": FACTORY})
    result = run_cell(cell, launcher="inline")
    assert (result.status, result.stage) == ("error", "compile")
    assert result.message == f"compile failed: TuningDatabaseError: {message}"  # not run untuned under a label


def test_what_only_metaschedule_can_see_is_still_a_one_line_refusal(tuned, tmp_path):
    db = _copy(tuned, tmp_path / "db")

    def misspelt(trace):
        trace[0][0][0] += "Typo"
        return trace

    _edit_line(db / RECORDS, 0, _with_record(trace=misspelt))
    assert database_problem(db) is None  # well formed: the instruction names are MetaSchedule's to know
    with pytest.raises(TuningDatabaseError) as refused:
        TuningDatabase(db, snapshot(db), borrowed=True).open()
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"MetaSchedule tuning database refused: {db}: MetaSchedule")
    assert "infer-bench-db-" not in message  # the private copy's path is not shown


def _spec(tmp_path: Path, db: Path) -> str:
    path = tmp_path / "spec.json"
    models = [{"name": "tiny_mlp", "options": {"model_factory": FACTORY}}]
    TuneSpec(models=models, threads=1, database=str(db), trials=2).dump(path)
    return str(path)


def test_tune_refuses_to_append_to_damaged_search_exit_2(tuned, tmp_path, capsys, no_metaschedule):
    db = _copy(tuned, tmp_path / "db", search=True)
    lines = _lines(db / SEARCH / RECORDS)
    lines.insert(1, b"[0, [[[], []], [1e-05], {}, ]]")
    _write_lines(db / SEARCH / RECORDS, lines)
    before = {p: p.read_bytes() for p in sorted(db.rglob("*.json"))}
    assert tuning_main([_spec(tmp_path, db)]) == REFUSED_EXIT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"error: MetaSchedule tuning database refused: {db / SEARCH / RECORDS} line 2: not JSON ("
    )
    assert err.rstrip().endswith(f"; delete {db / SEARCH} and run `python -m harness tune --threads 1` again")
    assert {p: p.read_bytes() for p in sorted(db.rglob("*.json"))} == before  # nothing tuned, published or cut


def test_tune_refuses_to_resume_from_damaged_published_database(tuned, tmp_path, capsys, no_metaschedule):
    db = _copy(tuned, tmp_path / "db")  # no search/: a tuning run would start from the published records
    _edit_line(db / RECORDS, 0, _with_record(index=lambda i: 7))
    assert tuning_main([_spec(tmp_path, db)]) == REFUSED_EXIT
    err = capsys.readouterr().err
    assert f"{db / RECORDS} line 1: workload index 7 names no workload" in err and f"; delete {db} and run" in err
    assert not (db / SEARCH).exists()


def test_publish_never_publishes_a_damaged_search(tuned, tmp_path, no_metaschedule):
    db = _copy(tuned, tmp_path / "db", search=True)
    _edit_line(db / SEARCH / RECORDS, 0, _with_record(run_secs=lambda r: [-1.0]))
    before = [(db / name).read_bytes() for name in FILES]
    with pytest.raises(TuningDatabaseError, match=r"not published: .*line 1: run_secs holds -1\.0"):
        publish(db)
    assert [(db / name).read_bytes() for name in FILES] == before
    assert sorted(p.name for p in db.iterdir()) == sorted([*FILES, SEARCH])  # no staging left behind


def test_tune_resume_cuts_an_unfinished_last_line_then_publishes(tuned, tmp_path):
    from tvm.s_tir import meta_schedule as ms

    db = _copy(tuned, tmp_path / "db", search=True)
    records = db / SEARCH / RECORDS
    whole = records.read_bytes()
    records.write_bytes(whole + _lines(records)[-1][:100])  # the last run was killed mid-line
    out = io.StringIO()
    assert prepare_search(db, 1, out) == db / SEARCH
    assert records.read_bytes() == whole and "removed an unfinished last line (100 bytes)" in out.getvalue()
    searched = ms.database.JSONDatabase(*(str(db / SEARCH / name) for name in FILES), allow_missing=False)
    assert len(searched) == len(_lines(records))
    assert publish(db) == digest(db) and database_problem(db) is None


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(FILES),
    line=st.integers(0, 1000),
    where=st.floats(0, 1, exclude_max=True),
    byte=st.integers(0, 255),
)
def test_one_corrupted_byte_is_refused_at_its_line_or_harmless(tuned, tmp_path_factory, name, line, where, byte):
    """A byte changed anywhere in a line is refused naming that file and line, or leaves records that
    still have MetaSchedule's shape: MetaSchedule then loads them, or refuses them in one line (a
    misspelt instruction or type name), and never crashes."""
    contents = dict(zip(FILES, snapshot(tuned)))
    lines = contents[name].split(b"\n")[:-1]
    index = line % len(lines)
    damaged = bytearray(lines[index])
    damaged[int(where * len(damaged))] = byte
    lines[index] = bytes(damaged)
    contents[name] = b"".join(x + b"\n" for x in lines)
    damaged_contents = (contents[WORKLOAD], contents[RECORDS])
    problem = contents_problem(tuned, damaged_contents)
    try:
        json.loads(lines[index].decode())
    except ValueError:  # not JSON (or not UTF-8) any more: always caught by the check
        assert problem is not None
    if problem is not None:
        assert problem.startswith(f"{tuned / name} line {index + 1}: ") and "\n" not in problem
        return
    scratch, tempfile.tempdir = tempfile.tempdir, str(tmp_path_factory.mktemp("copies"))
    try:
        TuningDatabase(tuned, damaged_contents, borrowed=True).open()
    except TuningDatabaseError as exc:
        assert "\n" not in str(exc) and "MetaSchedule cannot read it" in str(exc)
    finally:
        tempfile.tempdir = scratch
