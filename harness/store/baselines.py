"""The baseline store: pytest-benchmark's file storage under baselines/<machine id>/, one
``NNNN_<name>.json`` per saved run (pytest-benchmark's own naming, so --benchmark-compare finds
them). Every saved run stays as history; lookups pick the latest run of the current machine
profile; updates are atomic (temporary file, fsync, rename) and never touch older runs."""

from __future__ import annotations

import re
from pathlib import Path

from harness.store.io import write_json
from harness.store.results import ResultFileError, load_result, profile_of, stamp

NAME = re.compile(r"^(\d{4})_(.+)\.json$")


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
        for path in self.runs():
            try:
                pid = (profile_of(load_result(path)) or {}).get("profile_id", "unknown")
            except ResultFileError:
                pid = "unreadable"
            out.setdefault(pid, []).append(path)
        return out

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
        self.dir.mkdir(parents=True, exist_ok=True)
        numbers = [int(NAME.match(p.name).group(1)) for p in self.runs()]
        target = self.dir / f"{max(numbers, default=0) + 1:04d}_{name}.json"
        return write_json(target, stamp(data), indent=2)
