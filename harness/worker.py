"""The worker: builds one cell's model, compiles it, checks parity, times it.

Runs either inside a fresh process (``python -m harness.worker REQUEST.json RESULT.json``, started
by harness.launcher with the thread environment already set) or inline for debugging. Messages in
both directions are plain versioned JSON; the result file is written atomically at the very end,
so a worker that dies half-way leaves no result behind.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback

from . import SCHEMA_VERSION
from .cell import Cell
from .threads import THREAD_ENV_VARS


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def os_thread_count() -> int | None:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def run_request(request: dict) -> dict:
    """Execute one cell. Never raises for cell-level problems: they become status 'error'."""
    from .backends import get_backend
    from .models import build_model
    from .models.base import INPUT_SEED_PARITY, INPUT_SEED_TIMING
    from .parity import ParityPolicy, check_parity
    from .pruning import apply_sparsity
    from .targets import get_target
    from .timing import TimingOptions, measure

    cell = Cell.from_dict(request["cell"])
    threads = int(request["threads"])
    result: dict = {"schema_version": SCHEMA_VERSION, "cell": cell.to_dict(), "status": "ok", "pid": os.getpid(),
                    "threads": {"requested": cell.threads, "resolved": threads,
                                "env": {k: os.environ.get(k) for k in THREAD_ENV_VARS}}}
    stage = "start"
    try:
        stage = "load backend"
        backend = get_backend(cell.backend)
        try:
            result["backend_version"] = backend.version()
        except ImportError as exc:  # missing or broken runtime: the cell is skipped, not failed
            result.update(status="unavailable", stage=stage, message=f"{cell.backend} cannot be imported: {_first_line(exc)}")
            return _finish(result)
        stage = "build model"
        model = build_model(cell.model, cell.model_options, cell.batch)
        result["model_kind"] = model.kind
        result["measured_sparsity"] = apply_sparsity(model, cell.sparsity)
        first = request.get("check_parity", True)  # later processes of a cell only add samples
        if first:
            result["flops"] = model.flops()
        timing_inputs = model.make_inputs(INPUT_SEED_TIMING)
        stage = "compile"
        t0 = time.perf_counter()
        compiled = backend.compile(model, get_target(cell.target), threads, timing_inputs)
        result["compile_s"] = time.perf_counter() - t0
        result["label"] = compiled.label
        passed = True
        if first:
            stage = "parity"
            parity_inputs = model.make_inputs(INPUT_SEED_PARITY)
            expected64, ref32 = model.reference(parity_inputs)
            got = compiled.run(parity_inputs)
            policy = ParityPolicy(**request.get("parity", {}))
            report = check_parity(model.output_names(), got, expected64, ref32, policy)
            result["parity"] = report.to_dict()
            passed = report.passed
            if not passed:
                result["status"] = "parity_failed"
                result["message"] = report.message
        if passed and request.get("measure", True):
            stage = "timing"
            samples = measure(compiled.prepare(timing_inputs), TimingOptions(**request.get("timing", {})))
            result["samples"] = [samples.to_dict()]  # one entry per worker process
        result["threads"]["runtime"] = compiled.thread_info()
    except Exception as exc:  # a broken cell reports, it does not crash the suite
        result["status"] = "error"
        result["stage"] = stage
        result["message"] = f"{stage} failed: {type(exc).__name__}: {_first_line(exc)}"
        result["traceback"] = traceback.format_exc(limit=8)[-4000:]
    return _finish(result)


def _finish(result: dict) -> dict:
    result["threads"]["os_threads"] = os_thread_count()
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def write_json_atomic(path: str, data: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(data, fh, allow_nan=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def die_with_parent() -> None:
    """A worker must not outlive the harness that started it (a killed pytest would leave it
    running and loading the CPU under the next measurements): ask Linux to SIGKILL it when its
    parent dies, and leave at once if that already happened."""
    parent = os.environ.get("INFER_BENCH_PARENT_PID")
    if not parent:
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != int(parent):
        os._exit(3)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    die_with_parent()
    if len(argv) != 2:
        print("usage: python -m harness.worker REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        request = json.load(fh)
    if request.get("schema_version") != SCHEMA_VERSION:
        print(f"worker speaks schema {SCHEMA_VERSION}, request has {request.get('schema_version')}", file=sys.stderr)
        return 2
    write_json_atomic(argv[1], run_request(request))
    return 0


if __name__ == "__main__":
    sys.exit(main())
