"""On-disk cache of compiled artifacts, shared by a cell's worker processes and by later runs.

An entry is a directory named by the key (a hash of everything that decides the build: the model's
graph and weights, backend and version, target, options, the thread count where it is compiled in,
the tuning database's digest) holding the backend's files and ``manifest.json`` with each file's
SHA-256. An entry is written under a temporary name and renamed into place (never half-visible);
before loading, the directory must belong to this user and every file must match its digest, or the
entry is deleted and rebuilt. A compiled TVM library runs code when loaded: trust comes from that
owned directory and the digest check, and nothing here is unpickled.

Location: ``$INFER_BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/infer-bench/compiled``, else
``~/.cache/infer-bench/compiled``. ``INFER_BENCH_NO_COMPILE_CACHE=1`` (``--no-compile-cache``)
turns it off."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "INFER_BENCH_CACHE_DIR"
OFF_ENV = "INFER_BENCH_NO_COMPILE_CACHE"
MANIFEST = "manifest.json"
FORMAT = 1


def cache_root() -> Path | None:
    """The cache directory, or None when the cache is off."""
    if os.environ.get(OFF_ENV, "") not in ("", "0"):
        return None
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "infer-bench" / "compiled"


def cache_key(**parts) -> str:
    """A key from JSON-serialisable parts (order-independent)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Lookup:
    entry: Path | None  # a verified entry, or None
    status: str  # "hit", "miss", "rebuilt (<why>)" after a rejected entry, "off"
    meta: dict


class CompileCache:
    def __init__(self, root: Path | None = None):
        self.root = root if root is not None else cache_root()
        self.store_error: str | None = None  # why the last store wrote nothing

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def untrusted(self) -> str | None:
        """Why the cache root cannot be trusted (another user could swap an entry after its
        check), or None: it must belong to this user and not be writable by group or others."""
        if self.root is None or not self.root.exists():
            return None
        st = self.root.stat()
        if st.st_uid != os.getuid():
            return f"cache directory {self.root} belongs to another user"
        if st.st_mode & 0o022:
            return f"cache directory {self.root} is writable by group or others"
        return None

    def lookup(self, key: str) -> Lookup:
        if self.root is None:
            return Lookup(None, "off", {})
        distrust = self.untrusted()
        if distrust:
            self.root = None  # neither loaded from nor written to
            return Lookup(None, f"off ({distrust})", {})
        entry = self.root / key
        try:
            problem = self._problem(entry)
            if problem is None:
                manifest = json.loads((entry / MANIFEST).read_text())
                return Lookup(entry, "hit", manifest.get("meta") or {})
        except FileNotFoundError:  # absent, or removed by another process meanwhile
            return Lookup(None, "miss", {})
        shutil.rmtree(entry, ignore_errors=True)
        return Lookup(None, f"rebuilt ({problem})", {})

    def _problem(self, entry: Path) -> str | None:
        """Why an entry must not be loaded, or None (FileNotFoundError when there is none)."""
        if entry.stat().st_uid != os.getuid():
            return "entry owned by another user"
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            return f"manifest unreadable: {type(exc).__name__}"
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not manifest.get("files"):
            return "manifest of another format"
        for name, digest in manifest["files"].items():
            path = entry / name
            if Path(name).name != name or not path.is_file():
                return f"{name} missing"
            if _sha256(path) != digest:
                return f"{name} does not match its digest"
        return None

    def status(self, found: Lookup) -> str:
        """``compile_cache`` as reported: the lookup's status, and why nothing was stored if so."""
        return found.status + (f", not stored: {self.store_error}" if self.store_error else "")

    def store(self, key: str, write: Callable[[Path], None], meta: dict | None = None) -> Path | None:
        """Write an entry: ``write(directory)`` puts the backend's files in a private temporary
        directory, which is renamed into place with its manifest. Returns the entry, or None when
        the cache is off or could not be written (a cache never fails a build)."""
        if self.root is None:
            return None
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))  # private, unique per writer
        try:
            write(tmp)
            files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            (tmp / MANIFEST).write_text(json.dumps({"format": FORMAT, "files": files, "meta": meta or {}}))
            try:
                os.replace(tmp, self.root / key)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another process stored it first: keep theirs
        except Exception as exc:  # noqa: BLE001 - no compiler for export_library, a full disk...
            shutil.rmtree(tmp, ignore_errors=True)
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            self.store_error = f"{type(exc).__name__}: {first}"
            return self.root / key if (self.root / key).exists() else None
        return self.root / key
