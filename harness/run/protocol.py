"""What crosses the process boundary, and the only shape a measurement has afterwards.

The parent sends a ``Request`` to a worker process as JSON; the worker answers with a
``CellResult`` as JSON (written atomically at its very end: a worker that dies leaves nothing
half-written, and the parent never unpickles anything). The same ``CellResult`` then flows through
the launcher (later worker processes are ``merge``d in), the pytest plugin, the stored result and
the reports. Both messages carry ``SCHEMA_VERSION``; ``CellResult.from_dict`` is the one place that
reads older messages.

Import-light on purpose: the worker imports this before any runtime loads.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Literal, get_args

from harness.compare.percentiles import DEFAULT_STATISTIC, quantile
from harness.machine.load import BUSY_LOAD
from harness.machine.peak import gflops
from harness.machine.threads import CpuBudget, ThreadSettings, via_api
from harness.plan.cell import Cell
from harness.run.timing import Samples, TimingOptions

SCHEMA_VERSION = 2  # 1: the untyped dict of the first harness (same keys; read by from_dict)

Status = Literal["ok", "error", "unavailable", "parity_failed", "crashed"]
STATUSES: tuple[str, ...] = get_args(Status)
# ok: measured; error: the cell failed inside its worker (stage + message + traceback);
# unavailable: the backend's runtime cannot be imported (the test is skipped, not failed);
# parity_failed: outputs differ from float64 beyond the budget (not timed);
# crashed: the worker process died, was killed or timed out (message says which).


class ProtocolError(ValueError):
    pass


@dataclass(frozen=True)
class Request:
    """What a worker needs for one cell: everything else it builds itself."""

    cell: Cell
    threads: int | None  # resolved thread count (None: thread_control unset, the runtime decides)
    cpu_budget: CpuBudget  # the cell's view: inside its quota, CPU set and pinning mask
    timing: TimingOptions = field(default_factory=TimingOptions)
    parity: dict = field(default_factory=dict)  # ParityPolicy overrides, e.g. {"multiplier": 20}
    measure: bool = True  # False: compile and check parity only
    check_parity: bool = True  # False for a cell's later worker processes: they only add samples
    confinement: dict = field(default_factory=dict)  # Confinement.to_dict() (quota, cpuset, pin)
    cpus: list[int] | None = None  # the CPUs the worker is bound to (cpuset or pinning), in order
    remote: dict | None = None  # a TVM RPC device the cell runs on (harness.backends.tvm.remote)
    profile_ops: int = 0  # > 0: profile this many inferences per operator, time and check nothing
    include_transfers: bool = False  # a device cell's timed call copies its inputs in and outputs back

    def settings(self) -> ThreadSettings:
        """What the backend applies through its own API for this cell's thread control."""
        cell = self.cell
        api = via_api(cell.thread_control)
        return ThreadSettings(
            self.threads if api else None,
            cell.interop if api else None,
            cell.spin != "off",
            tuple(self.cpus) if self.cpus and self.confinement.get("pin") else None,
        )

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "cell": self.cell.to_dict(),
            "threads": self.threads,
            "cpu_budget": self.cpu_budget.to_dict(),
            "timing": self.timing.to_dict(),
            "parity": dict(self.parity),
            "measure": self.measure,
            "check_parity": self.check_parity,
            "confinement": dict(self.confinement),
            "cpus": self.cpus,
            "remote": self.remote,
            "profile_ops": self.profile_ops,
            "include_transfers": self.include_transfers,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Request:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ProtocolError(f"request has schema {data.get('schema_version')}, this worker speaks {SCHEMA_VERSION}")
        return cls(
            Cell.from_dict(data["cell"]),
            None if data["threads"] is None else int(data["threads"]),
            CpuBudget(**data["cpu_budget"]),
            TimingOptions(**data.get("timing", {})),
            dict(data.get("parity", {})),
            bool(data.get("measure", True)),
            bool(data.get("check_parity", True)),
            dict(data.get("confinement") or {}),
            data.get("cpus"),
            data.get("remote"),
            int(data.get("profile_ops") or 0),
            bool(data.get("include_transfers", False)),
        )


@dataclass
class ThreadReport:
    requested: str  # the axis value: "2", "auto", "host", "physical", "runtime"
    resolved: int | None  # the count it resolved to on this machine (None: the runtime's choice)
    env: dict = field(default_factory=dict)  # the thread variables the worker saw
    runtime: dict = field(default_factory=dict)  # what the runtime itself reports (not what was asked)
    os_threads: int | None = None  # OS threads in the worker at the end
    seen: dict = field(default_factory=dict)  # the worker's own view: affinity CPUs, cgroup quota


@dataclass
class ProcessMetrics:
    """What one worker process measured once (not per call), before parity and timing:

    - ``compile_s``: seconds of the backend's ``compile`` call (perf_counter around it alone);
    - ``compile_cache``: that call's compile-cache state by the backend's account (``hit``, ``miss``,
      ``rebuilt (why)``, ``off (why)``; None for a backend without a cache);
    - ``first_inference_s``: one complete inference right after compile (the prepared call the timing
      loop makes, its first time: lazy initialisation, arena and thread-pool start-up); None on an RPC
      device, whose first run happens when the library is deployed (inside ``compile_s``);
    - ``model_rss_mb``: resident memory (``/proc/self/statm``, now, not the peak) after compile and
      the first inference, minus the same just before the model was built (the backend's runtime
      already imported): the model, its compiled form and what the first inference kept, plus
      whatever building the model imported (an ORT or TVM cell of a torch model: torch's exporter).
      None on an RPC device (this host's memory is not the device's) and on a GPU (the CUDA context
      and its libraries would be most of it: ``device_peak_mb`` is the model's there);
    - ``allocator_mb``: the runtime allocator's own figure, where the runtime exposes one on the CPU
      (``Compiled.allocator_mb``). None for every built-in backend: ONNX Runtime's Python API has no
      allocator statistics, torch reports allocator statistics for accelerators only (cuda, mps,
      xpu), and TVM's CPU runtime exposes none (its global functions only clear the VM's memory
      manager);
    - ``device_peak_mb``: on a device target, the runtime's own peak of device memory over the
      process (``torch.cuda.max_memory_allocated``; ``Compiled.device_info``), read after timing;
    - ``samples_per_s``: a throughput or server scenario's samples per second in this process
      (``LoadReport.samples_per_s``); None in the latency scenario, whose latency verdict is its
      throughput's.
    """

    compile_s: float | None = None
    compile_cache: str | None = None
    first_inference_s: float | None = None
    model_rss_mb: float | None = None
    allocator_mb: float | None = None
    samples_per_s: float | None = None
    device_peak_mb: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LoadReport:
    """One worker process's run of a throughput or server scenario. Times in seconds.

    - ``samples_per_s``: completed queries x ``batch`` over the window (throughput: what the
      streams sustained back to back; server: what was served at the offered rate, or at the peak
      rate found);
    - ``target_qps`` (server): the offered Poisson rate, as given or as found; ``achieved_qps``:
      completed queries over the window; ``dropped``: arrivals not served within ``max_window_s``;
    - ``p99_bound_s`` and ``tried`` (find-peak): the bound and each tried rate as
      ``[qps, p99_s, queries, passed]``, the short search's, then the full runs'; ``peak_qps``: the
      rate whose full run held the bound, else the short search's highest passing rate (None: none did);
    - ``bound_met`` (find-peak): whether the found rate's full run kept its p99 under the bound
      (a short try can pass a rate whose longer run queues more; LoadGen would call that run invalid);
    - ``unloaded_median_s``: one stream's median call, unloaded (what find-peak starts from);
    - ``harness_cpu_s``: the stream threads' CPU outside their calls (the load generator's cost).
    """

    kind: str
    streams: int
    batch: int
    window_s: float = 0.0
    queries: int = 0
    samples_per_s: float | None = None
    target_qps: float | None = None
    achieved_qps: float | None = None
    dropped: int = 0
    p99_bound_s: float | None = None
    peak_qps: float | None = None
    tried: list = field(default_factory=list)
    unloaded_median_s: float | None = None
    harness_cpu_s: float | None = None
    bound_met: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CellResult:
    """One cell's measurement. Each field has one meaning:

    - ``compile_s``: seconds of the backend's ``compile`` call in the first worker process (what the
      cells table shows); every process's own is in ``process_metrics``. The call builds a runnable
      artifact and runs nothing, with two exceptions that say so: torch.compile, lazy, compiles in its
      first call (made inside ``compile``: that call is its compile), and a TVM RPC device's first run
      (made when the library is deployed).
    - ``process_metrics``: one ``ProcessMetrics`` per worker process that compiled and ran once: its
      ``compile_s``, ``compile_cache`` state, ``first_inference_s`` and the model's memory; measured
      once per process, so compared across processes (harness.compare.metrics).
    - ``samples``: one ``Samples`` per worker process (rounds of ``iterations`` calls each; with
      ``iterations`` 1, as for any call above 5 us, a round is one call), each with what ran
      during its rounds: ``threads_ran``, ``cpu_s``, ``window_s``. In a throughput or server
      scenario (harness.plan.scenario) a round is one query under that load, its latency counted
      from its scheduled arrival for a server.
    - ``load``: one ``LoadReport`` per worker process of a throughput or server scenario.
    - ``op_profile``: the per-operator profile (harness.compare.op_profile ``OpProfile.to_dict()``)
      of a separate worker process that timed nothing (--profile-ops), or None with
      ``op_profile_error`` saying why there is none.
    - ``confinement``: the quota, CPU set and pinning the workers ran under (``{}``: none).
    - ``flops``: FLOPs of one inference (2 per multiply-add), counted by the first worker.
    - ``peak_rss_mb``: the largest peak RSS of the cell's worker processes (imports, compile,
      float64 reference and timing included; ``ProcessMetrics.model_rss_mb`` is the model's share).
    - ``wall_s``: wall time of all the cell's worker processes, start-up and compile included.
    - ``foreign_load``: the largest CPU load of other processes seen during any of its workers (CPUs).
    - ``parity``: ``ParityReport.to_dict()`` from the first worker (None when not checked).
    - ``nodeid``, ``threshold`` and ``statistic``: the pytest test that recorded it, its regression
      threshold and the statistic of each process its verdict judges (harness.compare.percentiles).
    - ``build``: facts of what the backend built, by its own account (``Compiled.build_info``) in the
      first process, e.g. TVM's ``tuning_db`` digest and ``tuning_coverage``, ``compile_cache`` (hit,
      miss, rebuilt (why), off), ``artifact_bytes`` with ``artifact`` (what was measured, or why
      nothing was); stored in extra_info as they are.
    - ``device``: on a device target, the GPU (name, compute capability, driver, runtime versions:
      ``Compiled.device_info``) and how calls were timed (``clock``, ``transfers``); {} on the CPU.
    """

    cell: Cell
    threads: ThreadReport
    status: Status = "ok"
    message: str = ""
    stage: str | None = None  # where it failed: load backend, build model, compile, first inference, parity, timing
    traceback: str | None = None
    backend_version: str | None = None
    label: str | None = None  # the backend's honest description of what it built
    model_kind: str | None = None
    measured_sparsity: float | None = None  # zeros / elements over the pruned layers
    pruning: dict | None = None  # harness.models.pruning.PruneReport.to_dict(): mode, per-layer sparsity
    flops: int | None = None
    compile_s: float | None = None
    parity: dict | None = None
    samples: list[Samples] = field(default_factory=list)
    process_metrics: list[ProcessMetrics] = field(default_factory=list)
    load: list[LoadReport] = field(default_factory=list)
    op_profile: dict | None = None
    op_profile_error: str | None = None
    pid: int | None = None
    peak_rss_mb: float | None = None
    wall_s: float | None = None
    foreign_load: float | None = None
    returncode: int | None = None
    launcher: str | None = None  # "process" or "inline"
    cpu_budget: CpuBudget | None = None
    nodeid: str | None = None
    threshold: float | None = None
    statistic: str = DEFAULT_STATISTIC
    confinement: dict = field(default_factory=dict)
    build: dict = field(default_factory=dict)
    device: dict = field(default_factory=dict)  # a device cell's GPU and how it was timed (first process)

    # -- reading --------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def per_process(self) -> list[list[float]]:
        """Per-call seconds, one list per worker process."""
        return [s.per_call_s for s in self.samples if s.round_s]

    def median_s(self) -> float | None:
        """Median per-call time over all processes' rounds (pytest-benchmark's median)."""
        pooled = [x for group in self.per_process() for x in group]
        return statistics.median(pooled) if pooled else None

    def gflops(self) -> float | None:
        return gflops(self.flops, self.median_s())

    def mean_s(self) -> float | None:
        """Total time over calls, all processes: what throughput sees (a throttled call counts)."""
        timed = [(sum(s.round_s), len(s.round_s) * s.iterations) for s in self.samples if s.round_s]
        calls = sum(n for _, n in timed)
        return sum(t for t, _ in timed) / calls if calls else None

    def quantile_s(self, q: float) -> float | None:
        """The q-quantile of the per-call times, all processes pooled (of round means where a round
        holds several calls; harness.compare.percentiles says when the calls support it)."""
        pooled = sorted(x for group in self.per_process() for x in group)
        return quantile(pooled, q) if pooled else None

    def throughput(self) -> float | None:
        """Inferences per second, back to back, one stream."""
        mean = self.mean_s()
        return 1.0 / mean if mean else None

    def threads_ran(self) -> int | None:
        """The most threads seen running in any process's timed window."""
        return max((s.threads_ran for s in self.samples if s.threads_ran is not None), default=None)

    def cpu_per_wall(self) -> float | None:
        """CPU time over wall time of the timed windows, all processes."""
        windows = [(s.cpu_s, s.window_s) for s in self.samples if s.cpu_s is not None and s.window_s]
        return sum(c for c, _ in windows) / sum(w for _, w in windows) if windows else None

    @property
    def quota_cpus(self) -> float | None:
        return self.cpu_budget.quota_cpus if self.cpu_budget else None

    @property
    def oversubscribed(self) -> bool:
        """More threads than the effective CPUs (cgroup quota and affinity): asked for, or, where the
        runtime chose, seen running."""
        threads = self.threads.resolved or self.threads_ran()
        return bool(self.cpu_budget and threads and threads > self.cpu_budget.effective_cpus)

    @property
    def busy(self) -> bool:
        """Other processes used more than BUSY_LOAD CPUs while a worker of this cell ran."""
        return (self.foreign_load or 0.0) > BUSY_LOAD

    def process_median(self, metric: str) -> float | None:
        """The median over worker processes of one ``ProcessMetrics`` field (None where none has it)."""
        values = [v for m in self.process_metrics if (v := getattr(m, metric)) is not None]
        return statistics.median(values) if values else None

    @property
    def max_rel_err(self) -> float | None:
        outputs = (self.parity or {}).get("outputs") or []
        return max((o["max_rel_err"] for o in outputs), default=None)

    # -- combining ------------------------------------------------------------------------
    def merge(self, later: CellResult, index: int, processes: int) -> CellResult:
        """Fold a later worker process of the same cell in; a failing process fails the cell (the
        failure is returned, naming which process it was)."""
        if not later.ok:
            later.message = f"worker process {index}/{processes}: {later.message}"
            later.cpu_budget, later.launcher, later.confinement = self.cpu_budget, self.launcher, self.confinement
            return later
        self.samples.extend(later.samples)
        self.process_metrics.extend(later.process_metrics)  # each process's own: the first misses, later ones hit
        self.load.extend(later.load)
        if later.foreign_load is not None:
            self.foreign_load = max(self.foreign_load or 0.0, later.foreign_load)
        self.peak_rss_mb = max(self.peak_rss_mb or 0.0, later.peak_rss_mb or 0.0)
        self.wall_s = (self.wall_s or 0.0) + (later.wall_s or 0.0)
        return self

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(
            schema_version=SCHEMA_VERSION,
            cell=self.cell.to_dict(),
            threads=asdict(self.threads),
            samples=[s.to_dict() for s in self.samples],
            process_metrics=[m.to_dict() for m in self.process_metrics],
            load=[r.to_dict() for r in self.load],
            cpu_budget=self.cpu_budget.to_dict() if self.cpu_budget else None,
        )
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CellResult:
        """Read a worker's message, of this schema or schema 1 (the first harness's untyped dict:
        the same keys, some of them absent)."""
        version = data.get("schema_version")
        if version not in (1, SCHEMA_VERSION):
            raise ProtocolError(f"worker answered schema {version}, expected {SCHEMA_VERSION}")
        if data.get("status") not in STATUSES:
            raise ProtocolError(f"worker answered status {data.get('status')!r}; known: {', '.join(STATUSES)}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        threads = dict(data.get("threads") or {})
        values["cell"] = Cell.from_dict(data["cell"])
        values["threads"] = ThreadReport(
            str(threads.get("requested", values["cell"].threads)),
            None if threads.get("resolved") is None else int(threads["resolved"]),
            threads.get("env") or {},
            threads.get("runtime") or {},
            threads.get("os_threads"),
            threads.get("seen") or {},
        )
        values["samples"] = [Samples(**s) for s in data.get("samples") or []]
        values["process_metrics"] = [ProcessMetrics(**m) for m in data.get("process_metrics") or []]
        values["load"] = [LoadReport(**r) for r in data.get("load") or []]
        values["cpu_budget"] = CpuBudget(**data["cpu_budget"]) if data.get("cpu_budget") else None
        values["message"] = data.get("message") or ""
        values["confinement"] = data.get("confinement") or {}
        values["build"] = data.get("build") or {}
        values["device"] = data.get("device") or {}
        return cls(**values)

    @classmethod
    def failed_check(cls, cell: Cell, message: str) -> CellResult:
        """The parent's result for a cell it never started a worker for (its model failed the check)."""
        return cls(cell, ThreadReport(cell.threads, None), "error", message, stage="check model")

    @classmethod
    def crashed(cls, request: Request, message: str, **extra) -> CellResult:
        """The parent's result for a worker that left no answer (killed, timed out, unreadable)."""
        return cls(
            request.cell,
            ThreadReport(request.cell.threads, request.threads),
            "crashed",
            message,
            cpu_budget=request.cpu_budget,
            confinement=dict(request.confinement),
            **extra,
        )
