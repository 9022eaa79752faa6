"""One writer and one reader for the files the harness writes (asv's write_json/load_json idea).

Every file is first written whole to a temporary file beside its target and fsynced
(``write_temporary``); then

- ``write_atomic`` renames it over the target: a reader (or a later run after a crash or a
  kill) sees the old file or the new one, never half of one (worker results, reports);
- a numbered run (harness.store.baselines.save_run) takes the next free number under the
  folder's lock (``folder_lock``) and is placed there without replacing anything
  (``place_new``): runs saving at once get distinct numbers, whatever their names.

A writer killed before its file is placed leaves only its temporary file (``.NAME.tmp-HOST-PID-
TOKEN``), which the next save in that folder removes (``remove_stale_temporaries``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import socket
import time
from pathlib import Path

_TEMPORARY = re.compile(r"^\..+\.tmp-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}$")
STALE_AFTER_S = 24 * 3600  # a temporary file of another host (a shared folder) is stale only after this long
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def write_temporary(path: str | Path, data: str | bytes) -> Path:
    """The complete ``data``, fsynced, in a temporary file beside ``path``; nothing left on failure."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{_host()}-{os.getpid()}-{secrets.token_hex(4)}")
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


def sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened and synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    path = Path(path)
    tmp = write_temporary(path, data)
    try:
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


@contextlib.contextmanager
def folder_lock(folder: Path):
    """An exclusive lock on ``folder`` itself (flock on its descriptor: no lock file to leave
    behind or commit), held while a writer picks a name and places its file."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def place_new(tmp: Path, target: Path) -> bool:
    """Put the complete temporary file at ``target`` unless something is there (False). A hard
    link never replaces a file, even one written by a writer that ignores the folder lock; where
    the filesystem has no hard links, a rename after the check (the caller holds the lock)."""
    try:
        os.link(tmp, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS or target.exists():
            raise
        os.replace(tmp, target)
        return True


def remove_stale_temporaries(folder: str | Path, now: float | None = None) -> list[Path]:
    """Remove temporary files left in ``folder`` by writers that no longer run: of this host when
    their process is gone, of another host (a shared folder) after STALE_AFTER_S. A running
    writer's temporary file is left alone."""
    now = time.time() if now is None else now
    removed = []
    for path in Path(folder).iterdir() if Path(folder).is_dir() else []:
        match = _TEMPORARY.match(path.name)
        if not match:
            continue
        try:
            if match.group("host") == _host():
                stale = not _running(int(match.group("pid")))
            else:  # another host's writer (a shared folder): its process cannot be asked
                stale = now - path.stat().st_mtime > STALE_AFTER_S
            if stale:
                path.unlink()
                removed.append(path)
        except OSError:  # gone meanwhile, or not ours to remove
            continue
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's process
        return True
    except (ProcessLookupError, OverflowError, ValueError):  # gone, or not a process id at all
        return False
    return pid > 0


def write_json(path: str | Path, data, indent: int | None = None) -> Path:
    return write_atomic(path, json.dumps(data, indent=indent, allow_nan=True))


def read_json(path: str | Path):
    """The parsed file; raises OSError / UnicodeDecodeError / ValueError for the caller to word."""
    return json.loads(Path(path).read_text())
