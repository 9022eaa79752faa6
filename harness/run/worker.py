"""The worker: builds one cell's model, compiles it, runs it once, checks parity, times it.

Once per process, before parity and timing, it measures what a cell costs besides its latency
(``ProcessMetrics``): the backend's ``compile`` call alone, one complete inference right after it
(the first call of the prepared step the timing loop then uses), and the resident memory this added
to the process since just before the model was built.

Runs either inside a fresh process (``python -m harness.run.worker REQUEST.json RESULT.json``, started
by harness.run.launcher with the thread environment already set) or inline for debugging. Messages in
both directions are plain versioned JSON; the result file is written atomically at the very end,
so a worker that dies half-way leaves no result behind.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import traceback
from dataclasses import replace

from harness.machine.threads import NO_SPIN_ENV, PIN_ENV_VARS, THREAD_ENV_VARS, cpu_quota
from harness.run.protocol import CellResult, ProcessMetrics, ProtocolError, Request, ThreadReport
from harness.store.io import read_json, write_json


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def current_rss_mb() -> float | None:
    """Resident memory of this process now (not its peak): /proc/self/statm's resident pages times
    the page size, in MiB; None where there is no /proc."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE_BYTES / 2**20
    except (OSError, IndexError, ValueError):
        return None


def os_thread_count() -> int | None:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def seen_confinement() -> dict:
    """The worker's own view of its CPUs: its affinity and its cgroup's quota."""
    from harness.machine.topology import allowed_cpus, format_cpu_list

    return {"affinity": format_cpu_list(allowed_cpus()), "quota_cpus": cpu_quota()}


def confinement_problem(request: Request, seen: dict) -> str | None:
    """Why this worker is not confined as its request says (None: it is)."""
    from harness.machine.topology import format_cpu_list

    quota = request.confinement.get("quota")
    if quota is not None and (seen["quota_cpus"] is None or abs(seen["quota_cpus"] - quota) > 0.01):
        return f"the worker sees a CPU quota of {seen['quota_cpus']}, not the {quota:g} asked for"
    if request.cpus and seen["affinity"] not in (None, format_cpu_list(request.cpus)):
        return f"the worker may use CPUs {seen['affinity']}, not {format_cpu_list(request.cpus)}"
    return None


def run_request(request: Request) -> CellResult:
    """Execute one cell. Never raises for cell-level problems: they become status 'error'."""
    from harness.backends import get_backend
    from harness.models import build_model
    from harness.models.base import INPUT_SEED_PARITY, INPUT_SEED_TIMING
    from harness.plan.scenario import DEFAULT_SCENARIO, ScenarioError, parse_scenario
    from harness.plan.targets import get_target
    from harness.run.load import batch_of, drive
    from harness.run.parity import ParityPolicy, check_parity, policy_for
    from harness.run.timing import HostClock, measure

    cell = request.cell
    result = CellResult(
        cell,
        ThreadReport(
            cell.threads,
            request.threads,
            {k: os.environ.get(k) for k in THREAD_ENV_VARS + tuple(NO_SPIN_ENV) + PIN_ENV_VARS},
            seen=seen_confinement(),
        ),
        pid=os.getpid(),
        cpu_budget=request.cpu_budget,
        confinement=dict(request.confinement),
    )
    stage = "start"
    problem = confinement_problem(request, result.threads.seen)
    if problem:  # never time an unconfined worker under a confined label
        result.status, result.stage, result.message = "error", "confine", f"not confined: {problem}"
        return _finish(result)
    try:
        stage = "load backend"
        backend = get_backend(cell.backend)
        try:
            result.backend_version = backend.version()
        except ImportError as exc:  # missing or broken runtime: the cell is skipped, not failed
            result.status, result.stage = "unavailable", stage
            result.message = f"{cell.backend} cannot be imported: {_first_line(exc)}"
            return _finish(result)
        rss_before = current_rss_mb()  # the runtime is imported: what follows is the model's
        stage = "build model"
        model = build_model(cell.model, cell.model_options, cell.batch)
        result.model_kind = model.kind
        pruned = model.prune(cell.sparsity, cell.pruning)
        result.measured_sparsity, result.pruning = pruned.measured, pruned.to_dict()
        timing_inputs = model.make_inputs(INPUT_SEED_TIMING)
        target = get_target(cell.target)
        if request.remote:  # built here, run and timed on a TVM RPC device
            target = replace(target, remote=request.remote)
        settings = request.settings()
        stage = "compile"
        t0 = time.perf_counter()
        compiled = backend.compile(model, target, settings, timing_inputs)
        metrics = ProcessMetrics(compile_s=time.perf_counter() - t0)
        result.compile_s = metrics.compile_s
        result.label = compiled.label
        result.build = getattr(compiled, "build_info", dict)()
        metrics.compile_cache = result.build.get("compile_cache")
        step = None
        clock = device_clock(compiled, target) if target.on_device else HostClock()
        if not hasattr(compiled, "measure"):  # a remote device ran once when deployed, inside compile
            stage = "first inference"
            step = device_step(compiled, target, timing_inputs, request.include_transfers)
            started = clock.start()
            step()
            metrics.first_inference_s = clock.stop(started)
            rss_after = current_rss_mb()
            if rss_before is not None and rss_after is not None and not target.on_device:
                metrics.model_rss_mb = rss_after - rss_before
            allocator = getattr(compiled, "allocator_mb", None)
            metrics.allocator_mb = allocator() if allocator else None
        result.process_metrics = [metrics]
        if request.profile_ops:  # a process of its own: nothing else runs in it
            stage = "profile ops"
            profiler = getattr(compiled, "profile_ops", None)
            if step is None or profiler is None or target.on_device:
                where = "on an RPC device" if step is None else f"in the {cell.backend} backend"
                where = f"on {cell.target} (device kernels are not profiled yet)" if target.on_device else where
                result.op_profile_error = f"no per-operator profiler {where}"
            else:
                result.op_profile = profiler(timing_inputs, request.profile_ops).to_dict()
            result.threads.runtime = compiled.thread_info()
            return _finish(result)
        if request.check_parity:  # later processes of a cell only add samples
            result.flops = model.flops()  # counted after the memory figure: counting may trace the model
            stage = "parity"
            parity_inputs = model.make_inputs(INPUT_SEED_PARITY)
            expected64, ref32 = model.reference(parity_inputs)
            report = check_parity(
                model.output_names(),
                compiled.run(parity_inputs),
                expected64,
                ref32,
                policy_for(ParityPolicy(**request.parity), target),
            )
            result.parity = report.to_dict()
            if not report.passed:
                result.status, result.message = "parity_failed", report.message
        scenario = parse_scenario(cell.scenario)
        if result.ok and request.measure and scenario.kind != DEFAULT_SCENARIO:
            stage = scenario.kind
            if step is None or target.on_device:
                where = f"a {target.device} device" if target.on_device else "an RPC device"
                raise ScenarioError(f"the {scenario.kind} scenario drives this host's CPU, not {where}")
            problem = scenario.oversubscription(request.threads, request.cpu_budget.effective_cpus)
            if problem:
                raise ScenarioError(problem)
            steps = [step]  # each stream its own compiled instance (session, VM, module), built as the first was
            for _ in range(scenario.streams_for(request.threads, request.cpu_budget.effective_cpus) - 1):
                steps.append(backend.compile(model, target, settings, timing_inputs).prepare(timing_inputs))
                steps[-1]()  # its first inference, outside the window
            report, samples = drive(scenario, steps, batch_of(timing_inputs))
            result.load = [report]
            result.samples = [samples]
            metrics.samples_per_s = report.samples_per_s
        elif result.ok and request.measure:
            stage = "timing"
            if step is None:  # timed where it runs (a remote device's own evaluator)
                result.samples = [compiled.measure(timing_inputs, request.timing)]
            else:
                result.samples = [measure(step, timing_for(request.timing, target), clock=clock)]  # one per process
        if target.on_device:
            stage = "device info"
            result.device = {
                **compiled.device_info(),
                "clock": clock.describe(),
                "warmup": DEVICE_WARMUP,
                "transfers": "included" if request.include_transfers else "excluded: inputs resident on the device",
                "peak_gflops": device_peak_gflops(target),
            }
            metrics.device_peak_mb = result.device.pop("device_peak_mb", None)
        result.threads.runtime = compiled.thread_info()
    except Exception as exc:  # a broken cell reports, it does not crash the suite
        result.status, result.stage = "error", stage
        result.message = f"{stage} failed: {type(exc).__name__}: {_first_line(exc)}"
        result.traceback = traceback.format_exc(limit=8)[-4000:]
    return _finish(result)


DEVICE_WARMUP = (
    "on: a device cell always warms up (pytest-benchmark's default is off) - library heuristics, lazy kernel "
    "loading and the caching allocator settle in its first calls"
)


def timing_for(timing, target):
    """The timing options a cell runs with: a device cell's warm up whatever was asked (DEVICE_WARMUP)."""
    return replace(timing, warmup=True) if target.on_device else timing


def device_clock(compiled, target):
    """How a device cell's calls are timed: the backend's clock (events, or a synchronise before
    each reading). A device backend without one cannot be timed honestly: an error, not a guess."""
    clock = getattr(compiled, "clock", None)
    if clock is None:
        raise NotImplementedError(f"{type(compiled).__name__} has no clock for {target.name}: its calls return early")
    return clock()


def device_peak_gflops(target) -> float | None:
    """The datasheet peak of the target's GPU at its matmul precision (harness.machine.gpu)."""
    from harness.machine.gpu import gpu_at

    gpu = gpu_at(target.index)
    return gpu.peak_gflops(target.matmul_precision) if gpu else None


def device_step(compiled, target, inputs, include_transfers: bool):
    """The call the timing loop makes: inputs bound where the model runs (``prepare``), or on a
    device target with ``include_transfers``, each call copying its inputs in and its outputs back."""
    if not (target.on_device and include_transfers):
        return compiled.prepare(inputs)
    with_transfers = getattr(compiled, "prepare_with_transfers", None)
    if with_transfers is None:
        raise NotImplementedError(f"{type(compiled).__name__} cannot time its host-device copies (--include-transfers)")
    return with_transfers(inputs)


def _finish(result: CellResult) -> CellResult:
    result.threads.os_threads = os_thread_count()
    result.peak_rss_mb = peak_rss_mb()
    return result


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
        print("usage: python -m harness.run.worker REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    try:
        request = Request.from_dict(read_json(argv[0]))
    except ProtocolError as exc:
        print(exc, file=sys.stderr)
        return 2
    write_json(argv[1], run_request(request).to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
