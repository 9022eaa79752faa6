"""One writer and one reader for the files the harness writes (asv's write_json/load_json idea).

Every file is first written whole to a temporary file beside its target and fsynced; then

- ``write_atomic`` renames it over the target: a reader (or a later run after a crash or a
  kill) sees the old file or the new one, never half of one (worker results, reports);
- ``write_new`` links it to the first candidate name that does not exist yet, never replacing
  a file: two runs saving at once get two numbers, and a run killed while saving leaves its
  temporary file only, which the next save in that folder removes (``remove_stale_temporaries``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

_TEMPORARY = re.compile(r"^\..+\.tmp(\d+)$")


def _write_temporary(path: Path, data: str | bytes) -> Path:
    """The complete ``data`` in a temporary file beside ``path``; nothing left on failure."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened and synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    path = Path(path)
    tmp = _write_temporary(path, data)
    try:
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_new(candidates: Iterable[Path], data: str | bytes) -> Path:
    """Write ``data`` as the first of ``candidates`` (all in one folder) that does not exist yet,
    atomically and without ever replacing a file (a hard link of the complete temporary file:
    the kernel refuses it when another writer took that name first). Returns the path written."""
    tmp = None
    try:
        for path in candidates:
            if tmp is None:
                tmp = _write_temporary(path, data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                continue
            _sync_folder(path.parent)
            return path
        raise FileExistsError("every candidate name is taken")
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove temporary files left in ``folder`` by writers that no longer run (killed while
    saving); a running writer's temporary file is left alone."""
    removed = []
    for path in Path(folder).iterdir() if Path(folder).is_dir() else []:
        match = _TEMPORARY.match(path.name)
        if match and not _running(int(match.group(1))):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != 0


def write_json(path: str | Path, data, indent: int | None = None) -> Path:
    return write_atomic(path, json.dumps(data, indent=indent, allow_nan=True))


def read_json(path: str | Path):
    """The parsed file; raises OSError / UnicodeDecodeError / ValueError for the caller to word."""
    return json.loads(Path(path).read_text())
