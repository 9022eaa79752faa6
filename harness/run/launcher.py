"""Where a cell runs: in a fresh worker process (default) or inline (debugging only: thread
settings cannot take effect in an already-running process).

The process launcher sets the thread environment *before* the interpreter starts, gives the
worker its own session (so a timeout kills the whole process group), captures stdout/stderr to
files, and turns a crash, a kill or a timeout into a one-line reason for that cell only."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from harness import PROJECT_ROOT
from harness.machine.confine import Confinement, WorkerGroup, enter, format_bytes, worker_group
from harness.machine.load import LoadSnapshot
from harness.machine.threads import CpuBudget, resolve_threads, worker_environment
from harness.plan.cell import Cell
from harness.run.protocol import CellResult, ProtocolError, Request
from harness.run.timing import TimingOptions
from harness.store.io import read_json, write_json

DEFAULT_TIMEOUT_S = 600.0
GPU_ORDER_ENV = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}  # cuda:N is nvidia-smi's N-th (harness.machine.gpu)
QUOTA_WINDOW_S = 2.0  # under a CPU quota, time windows of at least this long (20 CFS periods)


def build_request(
    cell: Cell,
    timing: TimingOptions | dict | None = None,
    parity: dict | None = None,
    measure: bool = True,
    budget: CpuBudget | None = None,
    confinement: Confinement | None = None,
    remote: dict | None = None,
    profile_ops: int = 0,
    include_transfers: bool = False,
) -> Request:
    """``timing``: TimingOptions or their fields; ``parity``: ParityPolicy overrides; ``budget``
    the machine's CPU budget (measured when None), narrowed by ``confinement``. Under a CPU quota
    (the harness's or the machine's own) the timing window lasts at least QUOTA_WINDOW_S: a quota
    throttles in 100 ms periods, and a shorter window would catch a random share of throttled calls."""
    confinement = confinement or Confinement()
    if remote:  # a TVM RPC device: ``budget`` is the device's, nothing of this host's confines it
        cpus, confinement = None, Confinement()
    else:
        budget, cpus = confinement.placement(cell.threads, budget)
    timing = timing if isinstance(timing, TimingOptions) else TimingOptions(**(timing or {}))
    if budget.quota_cpus is not None:
        timing = replace(timing, min_window_s=max(timing.min_window_s, QUOTA_WINDOW_S))
    return Request(
        cell,
        resolve_threads(cell.threads, budget),
        budget,
        timing,
        dict(parity or {}),
        measure,
        confinement=confinement.to_dict() if confinement.active else {},
        cpus=cpus,
        remote=remote,
        profile_ops=profile_ops,
        include_transfers=include_transfers,
    )


def stderr_tail(path: Path, lines: int = 3) -> str:
    """The last lines a worker printed; for a faulthandler dump (segfault, abort), the lines
    before it, the fatal error and the innermost Python frame instead of the module list."""
    try:
        text = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    fatal = next((i for i, line in enumerate(text) if line.startswith("Fatal Python error")), None)
    if fatal is None:
        return " | ".join(text[-lines:])
    frames = [line for line in text[fatal + 1 :] if line.startswith("File ")]
    picked = text[max(0, fatal - lines) : fatal] + [text[fatal]] + frames[:1]
    return " | ".join(picked)


def describe_exit(
    returncode: int, group: WorkerGroup | None = None, request: Request | None = None, who: str = "worker"
) -> str:
    """'worker killed by SIGSEGV', 'worker exited with code 3', or the OOM killer with the limit."""
    if group is not None and group.oom_kills():
        limit = Confinement.from_dict(request.confinement).memory if request else None
        peak = group.peak_bytes()
        return (
            f"{who} killed by the kernel's OOM killer: it passed its --memory-limit"
            + (f" of {format_bytes(limit)}" if limit else "")
            + (f" (peak {format_bytes(peak)})" if peak else "")
            + "; raise the limit or shrink the cell (batch, model)"
        )
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        extra = " (likely the OOM killer)" if -returncode == signal.SIGKILL else ""
        return f"{who} killed by {name}{extra}"
    return f"{who} exited with code {returncode}"


def worker_env(request: Request, extra_env: dict | None = None) -> dict[str, str]:
    """The worker's environment: the pytest process's, with the cell's thread variables set or
    removed (harness.machine.threads.worker_environment) and ``extra_env`` on top."""
    env = dict(os.environ)
    cell = request.cell
    for name, value in worker_environment(request.threads, cell.thread_control, cell.spin, request.cpus).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env.update(GPU_ORDER_ENV)
    env.update(extra_env or {})
    return env


def run_in_process(request: Request, timeout_s: float = DEFAULT_TIMEOUT_S, extra_env: dict | None = None) -> CellResult:
    """Run one worker process (inside its own cgroup under a CPU quota or a memory limit, bound
    to its CPUs when pinned or given a CPU set) and return its result, or the reason it left none."""
    confinement = Confinement.from_dict(request.confinement)
    with contextlib.ExitStack() as stack:
        group = None
        if confinement.needs_cgroup:
            try:
                group = stack.enter_context(worker_group(confinement.quota, confinement.memory))
            except OSError as exc:  # never run unconfined under a confined label
                return CellResult.crashed(request, f"could not create the worker's cgroup ({exc}); not run")
        preexec = enter(group.procs if group else [], request.cpus) if (group or request.cpus) else None
        return _run_process(request, timeout_s, worker_env(request, extra_env), preexec, group)


def python_env(env: dict) -> dict:
    """``env`` with the project first on PYTHONPATH: how every harness child process starts (from
    PROJECT_ROOT), so that what imports in one (a model factory) imports in the others."""
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    return env


def _run_process(
    request: Request, timeout_s: float, env: dict, preexec, group: WorkerGroup | None = None
) -> CellResult:
    python_env(env)
    env.setdefault("PYTHONFAULTHANDLER", "1")  # a segfaulting worker prints a Python traceback
    with tempfile.TemporaryDirectory(prefix="infer-bench-") as tmp:
        tmpdir = Path(tmp)
        req_path, res_path = tmpdir / "request.json", tmpdir / "result.json"
        out_path, err_path = tmpdir / "stdout.txt", tmpdir / "stderr.txt"
        write_json(req_path, request.to_dict())
        env["INFER_BENCH_PARENT_PID"] = str(os.getpid())
        load = LoadSnapshot.now()
        start = time.perf_counter()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "harness.run.worker", str(req_path), str(res_path)],
                    env=env,
                    stdout=out,
                    stderr=err,
                    cwd=str(PROJECT_ROOT),
                    start_new_session=True,
                    preexec_fn=preexec,
                )
            except (OSError, subprocess.SubprocessError) as exc:  # e.g. the CPU mask was refused
                return CellResult.crashed(request, f"could not start the confined worker ({exc}); not run")
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                tail = stderr_tail(err_path)
                return CellResult.crashed(
                    request,
                    f"timed out after {timeout_s:g}s (per-cell timeout; raise it with "
                    f"--cell-timeout)" + (f"; stderr: {tail}" if tail else ""),
                    wall_s=time.perf_counter() - start,
                    launcher="process",
                )
        wall_s = time.perf_counter() - start
        if returncode != 0 or not res_path.exists():
            tail = stderr_tail(err_path)
            return CellResult.crashed(
                request,
                describe_exit(returncode, group, request) + (f"; stderr: {tail}" if tail else ""),
                returncode=returncode,
                wall_s=wall_s,
                launcher="process",
            )
        try:
            result = CellResult.from_dict(read_json(res_path))
        except (OSError, ValueError, KeyError, TypeError) as exc:  # ProtocolError is a ValueError
            reason = (
                str(exc) if isinstance(exc, ProtocolError) else f"worker result unreadable: {type(exc).__name__}: {exc}"
            )
            return CellResult.crashed(request, reason, wall_s=wall_s, launcher="process")
        result.wall_s, result.launcher = wall_s, "process"
        result.foreign_load = load.foreign_load(wall_s)
        return result


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_inline(request: Request) -> CellResult:
    from harness.run.worker import run_request

    start = time.perf_counter()
    result = run_request(request)
    result.wall_s, result.launcher = time.perf_counter() - start, "inline"
    return result
