"""infer-bench's command-line options, read once into ``RunOptions`` (plain data the session uses),
and the per-test settings whose precedence involves pytest markers and suite modules."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.backends import UnknownBackendError, registered
from harness.backends.tvm.remote import RemoteDevice, RemoteError, describe, needs_cross_compiler
from harness.compare.compare import pick_threshold
from harness.compare.metrics import (
    DEFAULT_FAIL_ON,
    METRIC_THRESHOLDS_HELP,
    METRICS,
    MetricNameError,
    parse_fail_on,
    parse_metric_thresholds,
)
from harness.compare.op_profile import DEFAULT_RUNS
from harness.compare.percentiles import DEFAULT_STATISTIC, VERDICT_STATISTICS, StatisticError, check_statistic
from harness.compare.sequential import DEFAULT_BUDGET_MINUTES
from harness.compare.verdict import DEFAULT_ALPHA, DEFAULT_THRESHOLD
from harness.machine.confine import Confinement, ConfinementError
from harness.models import UnknownModelError, UserModelError
from harness.models.user import user_model
from harness.plan.cell import Cell
from harness.plan.matrix import AXES, MatrixError, parse_list
from harness.plan.scenario import parse_scenario
from harness.plan.shard import Shard, ShardError
from harness.plan.support import check_axis_overrides, onnx_importers
from harness.plan.targets import CPU, UnknownTargetError, device_of
from harness.run.launcher import DEFAULT_TIMEOUT_S
from harness.run.parity import ParityPolicy
from harness.run.user_check import Vetted, vet

DEFAULT_PROCESSES = 3  # worker processes per cell unless the suite (PROCESSES) or --processes says otherwise
DEFAULT_REPORT_DIR = "reports"
AXIS_EXAMPLES = {
    "models": "mlp,bert_tiny",
    "backends": "ort,tvm",
    "targets": "llvm",
    "sparsity": "0,0.9",
    "threads": "1,2,auto,physical,host",
    "batch": "1,8",
    "thread_control": "both,env,api,unset",
    "interop": "1,2",
    "spin": "default,off",
    "pruning": "unstructured,block:16x1,random",
    "scenario": "latency,throughput,server:qps=200,server:p99=10ms",
}
MARKERS = {
    "smoke": "the small default benchmark matrix (minutes on 2 cores)",
    "full": "cells outside the smoke matrix (the nightly matrix)",
    "regression_threshold(fraction)": "minimum practical effect for this test's verdicts",
    "verdict_statistic(name)": f"what this test's verdicts judge of each process: {', '.join(VERDICT_STATISTICS)}",
}


def add_options(parser) -> None:
    group = parser.getgroup("infer-bench", "infer-bench matrix and worker options")
    for axis in AXES:
        group.addoption(
            f"--{axis.replace('_', '-')}",
            dest=axis,
            default=None,
            metavar="LIST",
            help=f"comma list replacing the suite's {axis} axis for this run, e.g. {AXIS_EXAMPLES[axis]}",
        )
    group.addoption(
        "--model-file",
        default=None,
        metavar="PATH.onnx",
        help="benchmark this ONNX file instead of the suite's models (input shapes from the file); it is checked "
        "once before any worker starts: a file that cannot be used is a usage error (exit 4)",
    )
    group.addoption(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME=1x3x224x224",
        help="shape for a dynamic input of --model-file (repeatable or comma list)",
    )
    group.addoption(
        "--model-factory",
        default=None,
        metavar="package.module:function",
        help="benchmark a torch model: the function returns (module, example_inputs)",
    )
    group.addoption(
        "--launcher",
        default="process",
        choices=("process", "inline"),
        help="process (default): one fresh worker process per cell, thread settings applied before "
        "any runtime loads; inline: in the pytest process (debugging; threads cannot change)",
    )
    group.addoption(
        "--schedule",
        default="interleaved",
        choices=("interleaved", "sequential"),
        help="interleaved (default): measure all selected cells before the tests report, worker processes "
        "round-robin across cells so a slow stretch of the machine cannot shift all of one cell's "
        "processes; sequential: each test measures its cell when it runs",
    )
    group.addoption(
        "--cell-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"kill a cell's worker after this long (default {DEFAULT_TIMEOUT_S:g})",
    )
    group.addoption(
        "--report-dir",
        default=DEFAULT_REPORT_DIR,
        metavar="DIR",
        help=f"where the thread-scaling report (threads.md, threads.png) is written (default {DEFAULT_REPORT_DIR}/)",
    )
    group.addoption(
        "--cpu-quota",
        default=None,
        metavar="CPUS",
        help="run each worker in its own cgroup with this CPU quota (like docker --cpus; cgroup v2 cpu.max or v1 "
        "cfs quota; cells are skipped where cgroups are not writable); 'auto' threads resolve within it",
    )
    group.addoption(
        "--memory-limit",
        default=None,
        metavar="SIZE",
        help="run each worker in its own cgroup with this memory limit, swap included (like docker --memory), "
        "e.g. 4g: a worker past it is ended by the kernel's OOM killer and its cell fails saying so",
    )
    group.addoption(
        "--cpuset",
        default=None,
        metavar="LIST",
        help="CPUs each worker may use, set before any import (like docker --cpuset-cpus), e.g. 0 or 0-1",
    )
    group.addoption(
        "--pin",
        default=None,
        metavar="compact|spread|LIST",
        help="bind each worker to CPUs (compact: SMT siblings first; spread: one per core first; or a list) and "
        "each runtime's threads to them (OMP_PLACES, ORT thread affinities; TVM binds its own)",
    )
    group.addoption(
        "--tvm-tuning-db",
        default=None,
        metavar="DIR",
        help="tvm cells use this MetaSchedule database (labelled 'borrowed') instead of the one of their own "
        "machine profile and thread count under baselines/<profile>/tuning/",
    )
    group.addoption(
        "--no-compile-cache",
        action="store_true",
        help="rebuild every compiled artifact (TVM library, ORT optimised graph, inductor cache) instead of "
        "reusing the compile cache (~/.cache/infer-bench/compiled or $INFER_BENCH_CACHE_DIR)",
    )
    group.addoption(
        "--shard",
        default=None,
        metavar="K/N",
        help="run shard K of N of the selected cells: every cell in exactly one shard, balanced by the cells' "
        "worker wall time in the latest saved run of this profile (for N runners or N sequential CI jobs)",
    )
    group.addoption(
        "--rpc-tracker",
        default=None,
        metavar="HOST:PORT",
        help="run the tvm and tvm-sparse cells on a TVM RPC device lent by this tracker (built here for the "
        "device, timed there); results are the device's profile's; other cells are skipped",
    )
    group.addoption("--rpc-key", default=None, metavar="KEY", help="the device key of --rpc-tracker")
    group.addoption(
        "--rpc-target",
        default=None,
        metavar="TARGET",
        help="the device's target, 'llvm -mtriple=... -mcpu=... -num-cores=N' (default: asked from the device)",
    )
    group.addoption(
        "--rpc-cross-compiler",
        default=None,
        metavar="CC",
        help="compiler linking the device's library when its triple is not this host's, e.g. aarch64-linux-gnu-g++",
    )
    group.addoption(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help=f"worker processes per cell whose timings are pooled (default: the suite's PROCESSES, else "
        f"{DEFAULT_PROCESSES}); verdicts need >= 2 to see between-process noise, 1 is faster for exploration",
    )
    group.addoption(
        "--fail-on-regression",
        action="store_true",
        help="exit non-zero when any cell's verdict against the compared baseline is 'regression'",
    )
    group.addoption(
        "--fail-on-minor",
        action="store_true",
        help="with --fail-on-regression: 'minor regression' (significant, but below the threshold) fails too",
    )
    group.addoption(
        "--fail-on",
        default=None,
        metavar="LIST",
        help=f"with --fail-on-regression: the metrics whose regression fails the run, a comma list of "
        f"{', '.join(METRICS)} or all (default {','.join(DEFAULT_FAIL_ON)})",
    )
    group.addoption(
        "--metric-thresholds",
        default=None,
        metavar="LIST",
        help=METRIC_THRESHOLDS_HELP,
    )
    group.addoption(
        "--include-transfers",
        action="store_true",
        help="on a device target (cuda), time each call with its host-to-device input copies and its outputs' copy "
        "back (default: inputs resident on the device, nothing copied)",
    )
    group.addoption(
        "--profile-ops",
        action="store_true",
        help=f"after timing, profile each measured cell per operator in a worker process of its own ({DEFAULT_RUNS} "
        "inferences; profiling never touches the timed samples); a regression then shows which operators got slower",
    )
    group.addoption(
        "--until-decided",
        action="store_true",
        help="after the first pass, give cells whose verdict is inconclusive more worker processes (a sequential "
        "design: each look's verdict at its share of --regression-alpha) until decided or --budget-minutes is spent",
    )
    group.addoption(
        "--budget-minutes",
        type=float,
        default=None,
        metavar="M",
        help=f"with --until-decided: wall time for the processes added after the first pass (default "
        f"{DEFAULT_BUDGET_MINUTES:g})",
    )
    group.addoption(
        "--regression-threshold",
        type=float,
        default=None,
        metavar="FRACTION",
        help=f"minimum practical effect for every verdict, beating per-test @pytest.mark.regression_threshold(0.10), "
        f"then the suite's REGRESSION_THRESHOLD, then the default {DEFAULT_THRESHOLD}; 0 counts any significant change",
    )
    group.addoption(
        "--verdict-statistic",
        default=None,
        choices=VERDICT_STATISTICS,
        help="what every verdict judges of each worker process's calls, beating per-test "
        "@pytest.mark.verdict_statistic('p99'), then the suite's VERDICT_STATISTIC, then the cell's scenario "
        f"(throughput: mean, server: p99), then {DEFAULT_STATISTIC}",
    )
    group.addoption(
        "--regression-alpha",
        type=float,
        default=DEFAULT_ALPHA,
        metavar="ALPHA",
        help=f"significance level; the confidence interval is 1 - alpha (default {DEFAULT_ALPHA})",
    )
    group.addoption(
        "--no-drift-control", action="store_true", help="skip the control workload measured before and after the cells"
    )
    group.addoption(
        "--parity-multiplier",
        type=float,
        default=None,
        metavar="X",
        help=f"error budget = X * (fp32 reference error vs float64) + floor (default {ParityPolicy.multiplier:g})",
    )


@dataclass(frozen=True)
class RunOptions:
    axes: dict = field(default_factory=dict)  # axis -> values replacing the suite's for this run
    user_model: tuple[str, dict] | None = None  # (name, worker model options) of --model-file/--model-factory
    vetted: Vetted | None = None  # what checking the user model found (inputs, importers that refuse it)
    launcher: str = "process"
    schedule: str = "interleaved"
    cell_timeout: float = DEFAULT_TIMEOUT_S
    report_dir: str = DEFAULT_REPORT_DIR
    processes: int | None = None
    fail_on_regression: bool = False
    fail_on_minor: bool = False
    regression_threshold: float | None = None
    regression_alpha: float = DEFAULT_ALPHA
    fail_on: tuple[str, ...] = DEFAULT_FAIL_ON  # metrics whose regression fails the gate
    metric_thresholds: dict[str, float] = field(default_factory=dict)  # --metric-thresholds overrides
    until_decided: bool = False
    budget_minutes: float | None = None  # with until_decided (None: DEFAULT_BUDGET_MINUTES)
    drift_control: bool = True
    parity: dict = field(default_factory=dict)  # ParityPolicy overrides
    confinement: Confinement = field(default_factory=Confinement)  # --cpu-quota, --cpuset, --pin
    compare: bool = False  # pytest-benchmark's --benchmark-compare was given
    shard: Shard | None = None  # --shard K/N
    remote: RemoteDevice | None = None  # --rpc-tracker/--rpc-key: the TVM RPC device, described
    verdict_statistic: str | None = None  # --verdict-statistic: what every verdict judges (None: per test)
    profile_ops: bool = False  # --profile-ops: a per-operator profile of each measured cell
    include_transfers: bool = False  # --include-transfers: a device cell's timed call copies in and out

    @property
    def interleaved(self) -> bool:
        return self.schedule == "interleaved" and self.launcher == "process"

    @classmethod
    def from_config(cls, config) -> RunOptions:
        """Bad values stop the run before collection with one line (pytest's exit code 4)."""
        opt = config.getoption
        try:
            axes = {axis: parse_list(opt(axis)) for axis in AXES if opt(axis)}
            model = user_model(opt("model_file"), opt("model_factory"), opt("input_shape"))
            check_axis_overrides(axes, user_model=model is not None)
            where = f"--model-file {opt('model_file')}" if opt("model_file") else None  # as the user wrote it
            vetted = vet(model[1], onnx_importers(axes.get("backends") or registered()), where) if model else None
            confinement = Confinement.parse(opt("cpu_quota"), opt("cpuset"), opt("pin"), opt("memory_limit"))
            shard = Shard.parse(opt("shard")) if opt("shard") else None
            devices = [t for t in axes.get("targets", []) if device_of(t) != CPU]
            if opt("rpc_tracker") and devices:  # before connecting to the tracker
                raise RemoteError(f"--rpc-tracker runs cells on an RPC device's CPU, not on {', '.join(devices)}")
            remote = remote_device(opt("rpc_tracker"), opt("rpc_key"), opt("rpc_target"), opt("rpc_cross_compiler"))
            fail_on = parse_fail_on(opt("fail_on"))
            metric_thresholds = parse_metric_thresholds(opt("metric_thresholds"))
        except (
            MetricNameError,
            RemoteError,
            MatrixError,
            UnknownBackendError,
            UnknownTargetError,
            UnknownModelError,
            UserModelError,
            ConfinementError,
            ShardError,
        ) as exc:
            raise pytest.UsageError(f"infer-bench: {exc}") from None
        borrowed = opt("tvm_tuning_db")
        if borrowed:
            from harness.backends.tvm.tuning import BORROW_ENV, database_problem

            problem = database_problem(Path(borrowed))  # missing or damaged: never handed to a worker
            if problem:
                raise pytest.UsageError(f"infer-bench: --tvm-tuning-db {borrowed}: {problem}")
            os.environ[BORROW_ENV] = os.path.abspath(borrowed)  # inherited by every worker
        if opt("no_compile_cache"):
            from harness.backends.compile_cache import OFF_ENV

            os.environ[OFF_ENV] = "1"  # inherited by every worker
        if confinement.active and opt("launcher") == "inline":
            raise pytest.UsageError(
                f"infer-bench: {confinement.describe()} applies to worker processes; drop --launcher inline"
            )
        threshold = opt("regression_threshold")
        if threshold is not None and threshold < 0:
            raise pytest.UsageError(f"infer-bench: --regression-threshold {threshold:g} is negative; use 0 or more")
        multiplier = opt("parity_multiplier")
        if opt("until_decided") and (opt("schedule") != "interleaved" or opt("launcher") != "process"):
            raise pytest.UsageError(
                "infer-bench: --until-decided adds worker processes to the interleaved schedule; drop "
                "--schedule sequential / --launcher inline"
            )
        budget = opt("budget_minutes")
        if budget is not None and (budget <= 0 or not opt("until_decided")):
            raise pytest.UsageError(
                f"infer-bench: --budget-minutes {budget:g}: "
                + (
                    "give a positive number of minutes"
                    if budget <= 0
                    else "it is the budget of --until-decided; add it"
                )
            )
        return cls(
            axes,
            model,
            vetted,
            opt("launcher"),
            opt("schedule"),
            opt("cell_timeout"),
            opt("report_dir"),
            opt("processes"),
            opt("fail_on_regression"),
            opt("fail_on_minor"),
            opt("regression_threshold"),
            opt("regression_alpha"),
            fail_on,
            metric_thresholds,
            bool(opt("until_decided")),
            budget,
            not opt("no_drift_control") and remote is None,  # the control measures this host, not a device
            {"multiplier": multiplier} if multiplier is not None else {},
            confinement,
            bool(opt("benchmark_compare", None)),
            shard,
            remote,
            opt("verdict_statistic"),
            bool(opt("profile_ops")),
            bool(opt("include_transfers")),
        )


def remote_device(tracker: str | None, key: str | None, target: str | None, cross: str | None) -> RemoteDevice | None:
    """The described TVM RPC device of --rpc-tracker/--rpc-key, or None; RemoteError on any problem."""
    if not tracker and not key:
        if target or cross:
            raise RemoteError("--rpc-target and --rpc-cross-compiler need --rpc-tracker HOST:PORT --rpc-key KEY")
        return None
    device = describe(RemoteDevice.parse(tracker, key, target, cross))
    problem = needs_cross_compiler(device)
    if problem:
        raise RemoteError(f"--rpc-key {key}: {problem}")
    return device


def processes_for(item, options: RunOptions) -> int:
    """Command line > suite (module PROCESSES) > DEFAULT_PROCESSES."""
    value = options.processes
    if value is None:
        value = getattr(item.module, "PROCESSES", DEFAULT_PROCESSES)
    return max(1, int(value))


def regression_threshold(item, options: RunOptions) -> float:
    """Command line > per test (marker) > per suite (module REGRESSION_THRESHOLD) > DEFAULT_THRESHOLD."""
    marker = item.get_closest_marker("regression_threshold")
    per_test = None
    if marker is not None:
        per_test = marker.args[0] if marker.args else marker.kwargs["fraction"]
    return pick_threshold(options.regression_threshold, per_test, getattr(item.module, "REGRESSION_THRESHOLD", None))


def verdict_statistic(item, options: RunOptions, cell: Cell | None = None) -> str:
    """Command line > per test (marker) > per suite (module VERDICT_STATISTIC) > the cell's scenario
    (harness.plan.scenario) > the median; a name no verdict knows is a usage error naming the test."""
    marker = item.get_closest_marker("verdict_statistic")
    per_test = None
    if marker is not None:
        per_test = marker.args[0] if marker.args else marker.kwargs["name"]
    chosen = (
        options.verdict_statistic
        or per_test
        or getattr(item.module, "VERDICT_STATISTIC", None)
        or (parse_scenario(cell.scenario).statistic if cell is not None else None)
        or DEFAULT_STATISTIC
    )
    try:
        return check_statistic(chosen)
    except StatisticError as exc:
        raise pytest.UsageError(f"infer-bench: {item.nodeid}: {exc}") from None
