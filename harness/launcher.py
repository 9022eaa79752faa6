"""Where a cell runs: in a fresh worker process (default) or inline (debugging only: thread
settings cannot take effect in an already-running process).

The process launcher sets the thread environment *before* the interpreter starts, gives the
worker its own session (so a timeout kills the whole process group), captures stdout/stderr to
files, and turns a crash, a kill or a timeout into a one-line reason for that cell only."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import SCHEMA_VERSION
from .cell import Cell
from .threads import CpuBudget, cpu_budget, resolve_threads, thread_env

DEFAULT_TIMEOUT_S = 600.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def build_request(cell: Cell, timing: dict | None = None, parity: dict | None = None, measure: bool = True,
                  budget: CpuBudget | None = None) -> dict:
    budget = budget or cpu_budget()
    threads = resolve_threads(cell.threads, budget)
    return {"schema_version": SCHEMA_VERSION, "cell": cell.to_dict(), "threads": threads, "timing": timing or {},
            "parity": parity or {}, "measure": measure, "cpu_budget": budget.to_dict()}


def _tail(path: Path, lines: int = 3) -> str:
    """The last lines a worker printed; for a faulthandler dump (segfault, abort), the lines
    before it, the fatal error and the innermost Python frame instead of the module list."""
    try:
        text = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    fatal = next((i for i, line in enumerate(text) if line.startswith("Fatal Python error")), None)
    if fatal is None:
        return " | ".join(text[-lines:])
    frames = [line for line in text[fatal + 1:] if line.startswith("File ")]
    picked = text[max(0, fatal - lines):fatal] + [text[fatal]] + frames[:1]
    return " | ".join(picked)


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        extra = " (likely the OOM killer)" if -returncode == signal.SIGKILL else ""
        return f"worker killed by {name}{extra}"
    return f"worker exited with code {returncode}"


def failure(cell: Cell, request: dict, message: str, **extra) -> dict:
    return {"schema_version": SCHEMA_VERSION, "cell": cell.to_dict(), "status": "crashed", "message": message,
            "threads": {"requested": cell.threads, "resolved": request["threads"]}, **extra}


def run_in_process(cell: Cell, request: dict, timeout_s: float = DEFAULT_TIMEOUT_S, extra_env: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(thread_env(request["threads"]))
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("PYTHONFAULTHANDLER", "1")  # a segfaulting worker prints a Python traceback
    with tempfile.TemporaryDirectory(prefix="infer-bench-") as tmp:
        tmpdir = Path(tmp)
        req_path, res_path = tmpdir / "request.json", tmpdir / "result.json"
        out_path, err_path = tmpdir / "stdout.txt", tmpdir / "stderr.txt"
        req_path.write_text(json.dumps(request))
        env["INFER_BENCH_PARENT_PID"] = str(os.getpid())
        busy_before, children_before = _busy_cpu_s(), _children_cpu_s()
        start = time.perf_counter()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "harness.worker", str(req_path), str(res_path)],
                                    env=env, stdout=out, stderr=err, cwd=str(PROJECT_ROOT), start_new_session=True)
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                tail = _tail(err_path)
                return failure(cell, request, f"timed out after {timeout_s:g}s (per-cell timeout; raise it with "
                               f"--cell-timeout)" + (f"; stderr: {tail}" if tail else ""), wall_s=time.perf_counter() - start)
        wall_s = time.perf_counter() - start
        if returncode != 0 or not res_path.exists():
            tail = _tail(err_path)
            return failure(cell, request, _describe_exit(returncode) + (f"; stderr: {tail}" if tail else ""),
                           returncode=returncode, wall_s=wall_s)
        try:
            result = json.loads(res_path.read_text())
        except (OSError, ValueError) as exc:
            return failure(cell, request, f"worker result unreadable: {exc}", wall_s=wall_s)
        if result.get("schema_version") != SCHEMA_VERSION:
            return failure(cell, request, f"worker answered schema {result.get('schema_version')}, expected {SCHEMA_VERSION}")
        result["wall_s"] = wall_s
        result["foreign_load"] = foreign_load(busy_before, children_before, wall_s)
        return result


def _busy_cpu_s() -> float | None:
    """CPU seconds all CPUs spent busy since boot (/proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def foreign_load(busy_before, children_before, wall_s) -> float | None:
    """CPUs' worth of work done by *other* processes while a worker ran: machine busy minus the
    worker's own CPU time, over its wall time. A timing taken next to a busy neighbour is suspect."""
    busy_after = _busy_cpu_s()
    if busy_before is None or busy_after is None or wall_s <= 0:
        return None
    foreign = (busy_after - busy_before) - (_children_cpu_s() - children_before)
    return max(0.0, foreign / wall_s)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_inline(cell: Cell, request: dict) -> dict:
    from .worker import run_request

    start = time.perf_counter()
    result = run_request(request)
    result["wall_s"] = time.perf_counter() - start
    result["launcher"] = "inline"
    return result


def _add_process(result: dict, extra: dict, index: int, processes: int) -> dict:
    """Fold a later worker process into a cell's result; a failing process fails the cell."""
    if extra["status"] != "ok":
        extra["message"] = f"worker process {index}/{processes}: {extra.get('message')}"
        extra.update(cpu_budget=result.get("cpu_budget"), launcher="process")
        return extra
    result["samples"].extend(extra["samples"])
    if extra.get("foreign_load") is not None:
        result["foreign_load"] = max(result.get("foreign_load") or 0.0, extra["foreign_load"])
    result["peak_rss_mb"] = max(result.get("peak_rss_mb") or 0, extra.get("peak_rss_mb") or 0)
    result["wall_s"] += extra["wall_s"]
    return result


def run_cells(plan: list[tuple[object, Cell, int, dict]], timeout_s: float = DEFAULT_TIMEOUT_S, progress=None) -> dict:
    """Run several cells' worker processes *interleaved*: round 1 runs every cell's first worker
    (which also checks parity), round 2 every cell's second, and so on. Machine states here last
    for seconds to minutes (three consecutive processes once all ran 30% slow); interleaving spreads
    a cell's processes over the whole run, so one slow stretch cannot shift all of them.

    ``plan``: (key, cell, processes, request kwargs) per cell. Returns key -> result."""
    requests = {key: build_request(cell, **kwargs) for key, cell, _, kwargs in plan}
    results: dict = {}
    for index in range(1, max((n for _, _, n, _ in plan), default=0) + 1):
        for key, cell, processes, _ in plan:
            if index > processes or (index > 1 and results[key]["status"] != "ok"):
                continue
            request = requests[key]
            if index == 1:
                result = run_in_process(cell, request, timeout_s)
                result.setdefault("launcher", "process")
                result["cpu_budget"] = request["cpu_budget"]
                results[key] = result
            elif request.get("measure", True):
                extra = run_in_process(cell, dict(request, check_parity=False), timeout_s)
                results[key] = _add_process(results[key], extra, index, processes)
            if progress:
                progress(key, cell, index, processes, results[key])
    return results


def run_cell(cell: Cell, launcher: str = "process", timeout_s: float = DEFAULT_TIMEOUT_S, processes: int = 1,
             **request_kwargs) -> dict:
    """Run one cell; with ``processes`` > 1 (process launcher) the timing is repeated in that many
    fresh workers (pyperf-style) so between-process variance is measured. The first worker also
    checks parity; any worker failing fails the cell."""
    if launcher == "inline":
        return run_inline(cell, build_request(cell, **request_kwargs))
    return run_cells([(0, cell, processes, request_kwargs)], timeout_s)[0]
