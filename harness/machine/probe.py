"""Run a measuring module in a fresh process and read the JSON it prints.

The drift control and the practical-peak measurement must run with their own thread environment
(read once by the runtimes at load) and must not disturb, or be disturbed by, the state of the
pytest process: each runs as ``python -m <module>`` with the given environment and prints one JSON
object. Any failure (exit code, timeout, no JSON) gives None: these numbers annotate a run, they
never fail it."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def run_module_json(module: str, env: dict[str, str], timeout_s: float = 120.0) -> dict | None:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", module],
            env=dict(os.environ, **env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        data = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (subprocess.SubprocessError, ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None
