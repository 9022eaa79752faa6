"""One writer and one reader for the files the harness writes (asv's write_json/load_json idea).

``write_atomic`` writes a temporary file beside the target, fsyncs it and renames it over the
target: a reader (or a later run after a crash or a kill) sees the old file or the new one, never
half of one. Used for worker results, stored baselines and reports alike."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_json(path: str | Path, data, indent: int | None = None) -> Path:
    return write_atomic(path, json.dumps(data, indent=indent, allow_nan=True))


def read_json(path: str | Path):
    """The parsed file; raises OSError / UnicodeDecodeError / ValueError for the caller to word."""
    return json.loads(Path(path).read_text())
