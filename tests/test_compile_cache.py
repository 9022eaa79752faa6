"""The compile cache: entries appear whole or not at all, a corrupted or foreign entry is rebuilt and
never loaded, and a cell's second worker process loads what the first one built."""

import json
import os

import pytest

from harness.backends.compile_cache import CACHE_ENV, MANIFEST, OFF_ENV, CompileCache, cache_key, cache_root
from harness.plan.cell import Cell
from harness.run.schedule import run_cell


def _write(content: bytes):
    def write(directory):
        (directory / "artifact.bin").write_bytes(content)

    return write


def test_store_then_hit_with_meta(tmp_path):
    cache = CompileCache(tmp_path)
    key = cache_key(model="m", backend="b")
    assert cache.lookup(key).status == "miss"
    entry = cache.store(key, _write(b"abc"), {"label": "x"})
    found = cache.lookup(key)
    assert found.status == "hit" and found.entry == entry and found.meta == {"label": "x"}
    assert (entry / "artifact.bin").read_bytes() == b"abc"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda e: (e / "artifact.bin").write_bytes(b"abd"), "artifact.bin does not match its digest"),
        (lambda e: (e / "artifact.bin").write_bytes(b""), "artifact.bin does not match its digest"),
        (lambda e: (e / "artifact.bin").unlink(), "artifact.bin missing"),
        (lambda e: (e / MANIFEST).write_text("{trunc"), "manifest unreadable"),
        (lambda e: (e / MANIFEST).write_text(json.dumps({"format": 99, "files": {"a": "b"}})), "another format"),
    ],
)
def test_damaged_entry_is_rebuilt_not_loaded(tmp_path, damage, why):
    cache = CompileCache(tmp_path)
    entry = cache.store("k", _write(b"abc"))
    damage(entry)
    found = cache.lookup("k")
    assert found.entry is None and found.status.startswith("rebuilt (") and why in found.status
    assert not entry.exists()  # removed: the next build stores a fresh one
    cache.store("k", _write(b"abc"))
    assert cache.lookup("k").status == "hit"


def test_failed_write_leaves_nothing_and_says_why(tmp_path):
    cache = CompileCache(tmp_path)

    def broken(directory):
        (directory / "half").write_bytes(b"x")
        raise RuntimeError("cc: not found")

    assert cache.store("k", broken) is None
    assert cache.store_error == "RuntimeError: cc: not found"
    assert cache.lookup("k").status == "miss" and list(tmp_path.iterdir()) == []


def test_key_is_order_independent_and_content_sensitive():
    assert cache_key(a=1, b=[2, 3]) == cache_key(b=[2, 3], a=1)
    assert cache_key(a=1, b=[2, 3]) != cache_key(a=1, b=[3, 2])


def test_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(OFF_ENV, raising=False)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "infer-bench" / "compiled"
    monkeypatch.setenv(OFF_ENV, "1")
    assert cache_root() is None and CompileCache().lookup("k").status == "off"


@pytest.mark.process
def test_tvm_second_process_hits_and_corrupt_library_is_rebuilt(tmp_path, monkeypatch):
    pytest.importorskip("tvm")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))  # inherited by the worker processes
    monkeypatch.delenv(OFF_ENV, raising=False)
    cell = Cell("tiny_mlp", "tvm", threads="1", model_options={"model_factory": "tests.tiny_models:tiny_mlp"})
    timing = {"max_time": 0.05, "min_rounds": 3}
    first = run_cell(cell, processes=2, timing=timing)
    assert first.ok, first.message
    assert [m.compile_cache for m in first.process_metrics] == ["miss", "hit"]
    (library,) = [p for p in tmp_path.glob("*/model.so")]
    assert first.build["artifact_bytes"] == os.path.getsize(library)  # the library's size, by TVM's account
    with open(library, "r+b") as f:  # truncate the shared object: loading it would crash the worker
        f.truncate(os.path.getsize(library) // 2)
    again = run_cell(cell, processes=1, timing=timing)
    assert again.ok and again.build["compile_cache"] == "rebuilt (model.so does not match its digest)"
    assert again.parity["passed"]


def test_cache_root_writable_by_others_is_not_used(tmp_path):
    root = tmp_path / "shared"
    root.mkdir()
    CompileCache(root).store("k", _write(b"abc"))
    root.chmod(0o777)
    cache = CompileCache(root)
    found = cache.lookup("k")
    assert found.entry is None and found.status == f"off (cache directory {root} is writable by group or others)"
    assert cache.store("k2", _write(b"x")) is None and not (root / "k2").exists()


def test_concurrent_store_keeps_the_first_entry(tmp_path):
    first, second = CompileCache(tmp_path), CompileCache(tmp_path)
    first.store("k", _write(b"one"))
    assert second.store("k", _write(b"two")) == tmp_path / "k" and second.store_error is None
    assert (tmp_path / "k" / "artifact.bin").read_bytes() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]
