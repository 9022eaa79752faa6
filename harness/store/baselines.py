"""The baseline store: pytest-benchmark's file storage under baselines/<machine id>/, one
``NNNN_<name>.json`` per saved run (pytest-benchmark's own naming, so --benchmark-compare finds
them). Every saved run stays as history; lookups pick the latest run of the current machine
profile. Saving (``save_run``: ``python -m harness baseline update`` and ``pytest
--benchmark-save`` alike) writes the complete file first and then takes the next free number
under the folder's lock (harness.store.io): runs saving at once get distinct numbers whatever
their names, a run killed while saving leaves no partial ``NNNN_*.json``, and older runs are
never touched."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from harness.store.io import folder_lock, place_new, remove_stale_temporaries, sync_folder, write_temporary
from harness.store.results import ResultFileError, load_result, profile_of, stamp

NAME = re.compile(r"^(\d{4,})_(.+)\.json$")  # pytest-benchmark's NNNN_, 5 digits past 9999


def default_machine_id() -> str:
    from pytest_benchmark.utils import get_machine_id

    return get_machine_id()


class BaselineStore:
    def __init__(self, root: str | Path = "baselines", machine_id: str | None = None):
        self.root = Path(root)
        self.machine_id = machine_id or default_machine_id()
        self.dir = self.root / self.machine_id

    def runs(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if NAME.match(p.name))

    def profiles(self) -> dict[str, list[Path]]:
        """profile id -> saved runs (oldest first); 'unknown' for runs without a profile."""
        out: dict[str, list[Path]] = {}
        for path, data, _ in self._loaded():
            pid = (profile_of(data) or {}).get("profile_id", "unknown") if data is not None else "unreadable"
            out.setdefault(pid, []).append(path)
        return out

    def unreadable(self) -> list[tuple[Path, str]]:
        """Saved runs that cannot be used (truncated, not JSON, wrong shape, bad samples): (path, why)."""
        return [(path, why) for path, data, why in self._loaded() if data is None]

    def _loaded(self):
        """(path, the loaded run or None, why it could not be loaded) for every saved run."""
        for path in self.runs():
            try:
                yield path, load_result(path), ""
            except ResultFileError as exc:
                yield path, None, str(exc)

    def latest(self, profile_id: str | None = None) -> Path | None:
        runs = self.profiles().get(profile_id, []) if profile_id else self.runs()
        return runs[-1] if runs else None

    def update(self, result_path: str | Path, name: str = "smoke") -> Path:
        """Store ``result_path`` as the newest baseline run. Validates first; on any failure the
        store is left exactly as it was."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ResultFileError(f"baseline name {name!r}: use letters, digits, '_', '.', '-'")
        data = load_result(result_path)
        if not data["benchmarks"]:
            raise ResultFileError(f"{result_path}: holds no benchmarks; refusing to store an empty baseline")
        return save_run(self.dir, name, json.dumps(stamp(data), indent=2, allow_nan=True))


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
