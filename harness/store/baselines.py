"""The baseline store: one folder per machine profile, ``baselines/<profile id>/NNNN_<name>.json``
(pytest-benchmark's file naming, so ``--benchmark-compare`` finds them; the plugin files
pytest-benchmark's runs under the profile id instead of its OS-and-Python machine id). A runner
compares with the latest run *of its own profile*; runners of other machines saving into the same
``baselines/`` never blind each other. The profile's tuning databases live beside its runs
(``<profile id>/tuning/``).

Every saved run stays as history. Saving (``save_run``: ``python -m harness baseline update``
and ``pytest --benchmark-save`` alike) writes the complete file first and then takes the next
free number under the folder's lock (harness.store.io): runs saving at once get distinct numbers
whatever their names, a run killed while saving leaves no partial ``NNNN_*.json``, and older runs
are never touched except to compact them: the newest KEEP_SAMPLES runs of a profile keep their
samples (verdicts read them), older ones keep per-cell process medians, counts and metadata
(``compact``, run on every save). ``migrate`` moves runs stored under any other folder (the OS-and-Python
folders of pytest-benchmark's own layout) to their profile's folder, once."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from harness.store.io import (
    folder_lock,
    place_new,
    remove_stale_temporaries,
    sync_folder,
    write_atomic,
    write_temporary,
)
from harness.store.results import ResultFileError, compact_result, load_result, profile_of, stamp

KEEP_SAMPLES = 5  # the newest runs of a profile that keep their samples; older ones are compacted on save
NAME = re.compile(r"^(\d{4,})_(.+)\.json$")  # pytest-benchmark's NNNN_, 5 digits past 9999
UNPROFILED = "unprofiled"  # the folder of runs saved before results carried a machine profile


def current_profile_id() -> str:
    from harness.machine.profile import current_profile

    return current_profile()["profile_id"]


def run_files(folder: Path) -> list[Path]:
    """The saved runs in ``folder``, oldest (lowest number) first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def profile_id_of(data: dict) -> str:
    return (profile_of(data) or {}).get("profile_id") or UNPROFILED


class BaselineStore:
    def __init__(self, root: str | Path = "baselines", profile_id: str | None = None):
        self.root = Path(root)
        self._profile_id = profile_id  # None: this machine's, measured when first needed

    @property
    def profile_id(self) -> str:
        if self._profile_id is None:
            self._profile_id = current_profile_id()
        return self._profile_id

    @property
    def dir(self) -> Path:
        return self.root / self.profile_id

    def runs(self) -> list[Path]:
        """This profile's saved runs, oldest first."""
        return run_files(self.dir)

    def profiles(self) -> dict[str, list[Path]]:
        """profile id -> its saved runs (oldest first), for every profile with runs in the store."""
        folders = sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
        return {folder.name: runs for folder in folders if (runs := run_files(folder))}

    def unreadable(self) -> list[tuple[Path, str]]:
        """This profile's saved runs that cannot be used (truncated, not JSON, wrong shape, bad
        samples): (path, why)."""
        found = []
        for path in self.runs():
            try:
                load_result(path)
            except ResultFileError as exc:
                found.append((path, str(exc)))
        return found

    def history(self) -> tuple[list[tuple[str, dict]], list[str]]:
        """This profile's readable runs as (name, result), oldest first, and one line per run that
        cannot be read (left out of the history)."""
        runs, problems = [], []
        for path in self.runs():
            try:
                runs.append((path.stem, load_result(path)))
            except ResultFileError as exc:
                problems.append(f"{exc}; left out of the history")
        return runs, problems

    def latest(self) -> Path | None:
        runs = self.runs()
        return runs[-1] if runs else None

    def describe(self) -> str:
        """'amd-...-a7f943 (2 runs), intel-...-9b1c00 (14 runs)' or 'none'."""
        return ", ".join(f"{pid} ({len(runs)} runs)" for pid, runs in self.profiles().items()) or "none"

    def update(self, result_path: str | Path, name: str = "smoke") -> Path:
        """Store ``result_path`` as the newest run of *its* machine profile. Validates first; on any
        failure the store is left exactly as it was."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ResultFileError(f"baseline name {name!r}: use letters, digits, '_', '.', '-'")
        data = load_result(result_path)
        if not data["benchmarks"]:
            raise ResultFileError(f"{result_path}: holds no benchmarks; refusing to store an empty baseline")
        text = json.dumps(stamp(data), indent=2, allow_nan=True)
        return BaselineStore(self.root, profile_id_of(data)).add(text, name)

    def add(self, text: str, name: str, keep: int = KEEP_SAMPLES) -> Path:
        """Save a run's JSON text as this profile's newest run, then compact what is now older
        than the newest ``keep``."""
        path = save_run(self.dir, name, text)
        self.compact(keep)
        return path

    def compact(self, keep: int = KEEP_SAMPLES) -> list[tuple[Path, int, int]]:
        """Compact this profile's runs older than the newest ``keep`` (harness.store.results.
        compact_result), each replaced atomically; [(path, bytes before, bytes after)] of those
        changed. Unreadable runs are left as they are."""
        changed = []
        for path in self.runs()[: -keep or None] if keep > 0 else self.runs():
            try:
                data = load_result(path)
            except ResultFileError:
                continue
            if (data.get("infer_bench") or {}).get("compacted"):
                continue
            before = path.stat().st_size
            write_atomic(path, json.dumps(compact_result(data), separators=(",", ":"), allow_nan=True))
            changed.append((path, before, path.stat().st_size))
        return changed

    def migrate(self) -> tuple[list[tuple[Path, Path]], list[str]]:
        """Move every run stored outside its profile's folder into it (oldest first, numbered after
        what is there); ([(from, to)], [runs left in place and why]). Running it again moves nothing."""
        moved, left = [], []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []:
            for path in run_files(folder):
                try:
                    pid = profile_id_of(load_result(path))
                except ResultFileError as exc:
                    left.append(f"{exc}; left in place")
                    continue
                if pid == folder.name:
                    continue
                name = NAME.match(path.name).group(2)
                target = save_run(self.root / pid, name, path.read_text())
                path.unlink()
                moved.append((path, target))
            if not any(folder.iterdir()):
                folder.rmdir()
        return moved, left


def save_run(folder: str | Path, name: str, text: str, max_runs: int = 10**6) -> Path:
    """Store a run's JSON text as the next ``NNNN_<name>.json`` in ``folder`` (created if needed).
    The file is written whole first (outside the lock: it may be large), then placed under the
    folder's lock at the number after the highest there. OSError when the folder cannot be
    written (read-only, full)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    tmp = write_temporary(folder / f"{name}.json", text)
    try:
        with folder_lock(folder):
            for _ in range(max_runs):
                numbers = [int(m.group(1)) for p in os.listdir(folder) if (m := NAME.match(p))]
                target = folder / f"{max(numbers, default=0) + 1:04d}_{name}.json"
                if place_new(tmp, target):
                    sync_folder(folder)
                    return target
        raise FileExistsError(f"{folder}: no free run number for {name}")
    finally:
        if tmp.exists():
            tmp.unlink()
