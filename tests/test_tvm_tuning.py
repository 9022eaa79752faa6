"""MetaSchedule records end to end: `python -m harness tune` writes a database for a tiny model, the
tvm backend picks it up for its own key (profile, threads, TVM version) or when borrowed, and
never for another thread count."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tvm")

from harness.backends import get_backend  # noqa: E402
from harness.backends.tvm.tuning import (  # noqa: E402
    BORROW_ENV,
    FILES,
    ROOT_ENV,
    TuningDatabaseError,
    database_dir,
    digest,
    find_database,
)
from harness.machine.profile import current_profile  # noqa: E402
from harness.models import build_model  # noqa: E402
from harness.models.base import INPUT_SEED_PARITY  # noqa: E402
from harness.plan.targets import get_target  # noqa: E402
from harness.run.parity import check_parity  # noqa: E402

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
