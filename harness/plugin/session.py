"""One pytest run's infer-bench state and what it does with it, free of pytest hooks (the hooks in
harness.plugin.hooks forward here; pytest-benchmark's ``session.py`` is the model).

In the order of a run:

1. ``measure_control("before", cells)`` - the drift control, in fresh processes, at the thread
   counts of the cells;
2. ``measure(plan)`` - every selected cell's worker processes, interleaved (harness.run.schedule),
   the drift control again after each round;
3. ``take(...)`` - each test takes its cell's result (or measures it now: sequential schedule,
   inline launcher) and the result joins ``results``;
4. ``set_baseline(...)`` - pytest-benchmark hands over the compared baseline (any time before 5);
5. ``measure_control("after")`` and ``judge(...)`` - the verdicts, before pytest-benchmark saves;
6. ``saved_extra()`` / ``summary()`` - what goes into the saved JSON and the terminal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.backends import get_backend
from harness.backends.tvm.remote import REMOTE_BACKENDS
from harness.compare.compare import Comparison, compare, profile_mismatch
from harness.compare.op_profile import DEFAULT_RUNS
from harness.compare.percentiles import DEFAULT_STATISTIC
from harness.compare.sequential import DEFAULT_BUDGET_MINUTES, AdaptationLog, Standing, plan_round
from harness.machine.drift import add_sample, measure_control
from harness.machine.profile import measured_peak
from harness.machine.threads import resolve_threads
from harness.models import UserModelError
from harness.plan.cell import Cell
from harness.plan.matrix import Matrix, MatrixCell
from harness.plan.scenario import DEFAULT_SCENARIO, parse_scenario
from harness.plan.shard import assign, recorded_costs
from harness.plan.support import onnx_importers, unsupported_reason
from harness.plugin.options import RunOptions
from harness.report import sparsity as sparsity_report
from harness.report.adaptation import adaptation_lines
from harness.report.tables import cell_lines, verdict_lines
from harness.report.threads import scaling_table, terminal_lines, write_report
from harness.run.launcher import build_request, run_in_process, run_inline
from harness.run.protocol import CellResult, Request
from harness.run.schedule import PlannedCell, Progress, build_requests, run_cell, run_rounds
from harness.run.user_check import vet
from harness.store.baselines import BaselineStore
from harness.store.results import ResultFileError, extra_info, migrate, profile_of


def oversubscription(cell: Cell, confinement) -> str | None:
    """Why a throughput or server cell's streams do not fit this host's CPUs as its worker would
    see them (inside the run's confinement), found before any worker compiles the model (the
    worker checks again: harness.run.worker)."""
    scenario = parse_scenario(cell.scenario)
    if scenario.kind == DEFAULT_SCENARIO:
        return None
    budget, _ = confinement.placement(cell.threads)
    return scenario.oversubscription(resolve_threads(cell.threads, budget), budget.effective_cpus)


@dataclass
class Measured:
    """A test that measured a cell: its node id, regression threshold and verdict statistic."""

    nodeid: str
    threshold: float
    statistic: str = DEFAULT_STATISTIC


@dataclass
class BenchSession:
    options: RunOptions
    root: Path = Path(".")  # where relative report paths are resolved
    results: list[CellResult] = field(default_factory=list)
    control: dict | None = None  # the drift control's measurements (harness.machine.drift)
    control_threads: list[int] = field(default_factory=list)  # thread counts the control runs at
    scheduled: dict[str, CellResult] = field(default_factory=dict)
    baseline: dict | None = None  # the result pytest-benchmark compares against
    current_profile: dict | None = None
    no_verdicts: str | None = None  # why there are no verdicts (another profile, an unreadable format)
    comparison: Comparison | None = None
    refusals: dict = field(default_factory=dict)  # (model, options, importers) -> importers refusing the graph
    broken: dict[str, str] = field(default_factory=dict)  # a suite's model file that failed its check -> why
    save_problems: list[str] = field(default_factory=list)  # results that could not be written where asked
    baseline_notes: list[str] = field(default_factory=list)  # e.g. unreadable runs skipped in the store
    shard_note: str | None = None  # which cells --shard K/N kept, and their recorded cost
    looks: dict = field(default_factory=dict)  # --until-decided: node id -> the look its verdict is made at
    adaptation: AdaptationLog | None = None  # --until-decided: what was spent where
    start: Callable[[Request, float], CellResult] = run_in_process  # runs one worker process (tests replace it)

    # -- planning -------------------------------------------------------------------------
    def cells(self, matrix: Matrix) -> list[MatrixCell]:
        """The suite's matrix with this run's axis overrides and user model, expanded; cells that
        cannot run here carry their skip reason. A suite's model files are checked here, once per
        session (harness.run.user_check): a broken one's cells fail without a worker (``broken``),
        an importer that refuses a graph skips its backends' cells naming the operator."""
        overrides, model_options = dict(self.options.axes), {}
        refused = {}  # model -> {importer: reason}
        if self.options.user_model:
            name, options = self.options.user_model
            overrides["models"], model_options = [name], {name: options}
            refused[name] = self.options.vetted.refused if self.options.vetted else {}
        matrix = matrix.override(**overrides)
        if not self.options.user_model:
            importers = onnx_importers(matrix.backends)
            for name in set(matrix.models) & set(matrix.model_files):
                model_options[name] = matrix.model_files[name].options(self.root)
                refused[name] = self._vet_model_file(name, model_options[name], importers)
        confinement = self.options.confinement
        not_here = confinement.unavailable() if confinement.active else None

        def unsupported(cell: Cell) -> str | None:
            if not_here:  # never time a cell unconfined under a confined label
                return f"{confinement.describe()} cannot be applied here: {not_here}"
            reason = unsupported_reason(cell)
            if reason is None and self.options.remote and cell.backend not in REMOTE_BACKENDS:
                reason = f"runs on this host; with --rpc-key {self.options.remote.key} only tvm cells run (on it)"
            importer = get_backend(cell.backend).onnx_importer
            if reason is None and not self.broken_reason(cell) and importer in refused.get(cell.model, {}):
                reason = refused[cell.model][importer]
            if reason is None and not self.options.remote:
                reason = oversubscription(cell, confinement)
            return reason

        return matrix.expand(unsupported, model_options)

    def _vet_model_file(self, name: str, options: dict, importers: set[str]) -> dict:
        """Check a suite's model file once per session; importer -> reason it refuses the graph.
        A file that cannot be used at all goes to ``broken``."""
        key = (name, json.dumps(options, sort_keys=True), tuple(sorted(importers)))
        if key not in self.refusals:
            try:
                self.refusals[key] = vet(options, importers, f"model file {options['model_file']}").refused
            except UserModelError as exc:
                self.broken[options["model_file"]] = str(exc)
                self.refusals[key] = {}
        return self.refusals[key]

    def broken_reason(self, cell: Cell) -> str | None:
        """Why the cell's model file failed its check (its cells fail, no worker starts), or None."""
        return self.broken.get(cell.model_options.get("model_file", ""))

    def shard(self, nodeids: list[str], store_root: str | Path = "baselines") -> set[str]:
        """The tests of this run's shard (--shard K/N) among ``nodeids``, balanced by the recorded
        costs of the latest saved run of this profile; ``shard_note`` says what was kept."""
        shard = self.options.shard
        run = BaselineStore(store_root, self.profile_id).latest() if self.profile_id else None
        recorded = recorded_costs(run)
        plan = assign({n: recorded.get(n) for n in nodeids}, shard.count)
        mine = [n for n in nodeids if plan[n] == shard.index]
        known = [n for n in mine if n in recorded]
        self.shard_note = (
            f"infer-bench shard {shard}: {len(mine)} of {len(nodeids)} cells"
            + (f", {sum(recorded[n] for n in known):.0f} s recorded for {len(known)}" if known else "")
            + (f" (costs from {run.name})" if recorded else " (no recorded costs: balanced by count)")
        )
        return set(mine)

    # -- measuring ------------------------------------------------------------------------
    def measure_control(self, at: str, cells: list[Cell] | None = None) -> None:
        """Measure the drift control once per thread count of the run's cells (``cells`` given
        with the first call decides them)."""
        if not self.options.drift_control:
            return
        if cells is not None:
            budget = self.options.confinement.budget()
            counts = {resolve_threads(c.threads, budget) or budget.effective_cpus for c in cells}
            self.control_threads = sorted(counts) or [1]
        for threads in self.control_threads:
            self.control = add_sample(self.control, measure_control(threads), threads, at)

    def measure(self, plan: list[PlannedCell], progress: Progress | None = None) -> None:
        """Measure the plan's cells now, interleaved, the drift control between rounds; with
        --until-decided, then give the undecided cells more processes (``adapt``); tests then
        ``take`` their results."""
        if not plan:
            self.scheduled = {}
            return
        requests, done = build_requests(plan), {}
        self.scheduled = {}
        run_rounds(
            requests,
            self.scheduled,
            done,
            {p.key: p.processes for p in plan},
            self.options.cell_timeout,
            progress,
            self.start,
            after_round=lambda i: self.measure_control(f"round {i}"),
        )
        if self.options.until_decided:
            self.adapt(plan, requests, done, progress)
        if self.options.profile_ops:
            for key, result in self.scheduled.items():
                self.profile_ops(requests[key], result)

    def profile_ops(self, request: Request, result: CellResult) -> None:
        """--profile-ops: a measured cell's per-operator profile, from a worker process of its own
        that times nothing (``result.op_profile``, or ``op_profile_error`` saying why there is none)."""
        if not result.ok:
            return
        profiling = replace(request, measure=False, check_parity=False, profile_ops=DEFAULT_RUNS)
        if self.options.launcher == "inline":
            profiled = run_inline(profiling)
        else:
            profiled = self.start(profiling, self.options.cell_timeout)
        if profiled.ok:
            result.op_profile, result.op_profile_error = profiled.op_profile, profiled.op_profile_error
        else:
            result.op_profile_error = f"the profiling process: {profiled.status}: {profiled.message}"

    def adapt(self, plan: list[PlannedCell], requests: dict, done: dict, progress: Progress | None = None) -> None:
        """--until-decided: judge every cell at its look, give the undecided ones their next look
        (harness.compare.sequential.plan_round: closest to a decision per second first) within the
        budget, and judge again, until all are decided or nothing more fits; ``adaptation`` records it."""
        results, alpha = self.scheduled, self.options.regression_alpha
        log = self.adaptation = AdaptationLog(60.0 * (self.options.budget_minutes or DEFAULT_BUDGET_MINUTES))
        self.looks = {p.key: 1 for p in plan}
        if self.baseline is None or self.no_verdicts:
            log.note = (
                "nothing to decide: "
                + (self.no_verdicts or "no compared baseline (--benchmark-compare)")
                + "; only the first pass ran"
            )
            return
        first = {p.key: p.processes for p in plan if results.get(p.key) is not None and results[p.key].ok}
        thresholds, statistics = {p.key: p.threshold for p in plan}, {p.key: p.statistic for p in plan}
        start = time.perf_counter()

        def spent() -> float:
            return time.perf_counter() - start

        while True:
            comparison = self._compare({k: results[k] for k in first}, thresholds, statistics)
            verdicts = {v.name: v for v in comparison.verdicts}
            if not log.first:
                log.first = {k: verdicts[k].verdict for k in first if k in verdicts}
            standings = [
                Standing(k, verdicts[k], self.looks[k], n, done[k], (results[k].wall_s or 0.0) / max(1, done[k]))
                for k, n in first.items()
                if k in verdicts and results[k].ok and verdicts[k].verdict not in ("new", "missing")
            ]
            chosen, log.why = plan_round(standings, alpha, log.budget_s - spent())
            log.why.update(
                {k: f"{v.verdict}: {v.note}" for k, v in verdicts.items() if v.verdict in ("new", "missing")}
            )
            if not chosen:
                break
            log.rounds += 1
            before = {k: (done[k], results[k].wall_s or 0.0) for k, _ in chosen}
            run_rounds(
                requests,
                results,
                done,
                {k: done[k] + add for k, add in chosen},
                self.options.cell_timeout,
                progress,
                self.start,
                keep_going=lambda: spent() < log.budget_s,
            )
            for k, (had, wall) in before.items():
                if done[k] > had:  # a look cut short by the budget is still this cell's next look
                    self.looks[k] += 1
                    log.added[k] = log.added.get(k, 0) + done[k] - had
                    log.seconds[k] = log.seconds.get(k, 0.0) + (results[k].wall_s or 0.0) - wall
            self.measure_control(f"look {log.rounds + 1}")
        log.final = {k: v.verdict for k, v in verdicts.items()}
        log.looks, log.processes, log.spent_s = dict(self.looks), {k: done[k] for k in first}, spent()

    def take(
        self,
        nodeid: str,
        cell: Cell,
        processes: int,
        request: dict,
        threshold: float,
        statistic: str = DEFAULT_STATISTIC,
    ) -> CellResult:
        """The cell's measured result (from the interleaved schedule, or measured now); a cell
        whose model failed its check gets the reason, and no worker."""
        result = self.scheduled.pop(nodeid, None)
        if result is None and self.broken_reason(cell):
            result = CellResult.failed_check(cell, self.broken_reason(cell))
        elif result is None:
            result = run_cell(
                cell,
                launcher=self.options.launcher,
                timeout_s=self.options.cell_timeout,
                processes=processes,
                **request,
            )
            if self.options.profile_ops:
                self.profile_ops(build_request(cell, **request), result)
        result.nodeid, result.threshold, result.statistic = nodeid, threshold, statistic
        self.results.append(result)
        return result

    # -- comparing ------------------------------------------------------------------------
    def set_baseline(self, baseline: dict, machine_info: dict, store_root: str | Path) -> str | None:
        """Remember the compared baseline; returns a warning when verdicts must be withheld: its
        profile is not this machine's (timings from different machines are not comparable) or its
        format is newer than this harness reads."""
        self.current_profile = machine_info.get("infer_bench") or self.current_profile
        store = BaselineStore(store_root, self.profile_id)
        self.baseline_notes = [f"skipped an unreadable saved run: {why}" for _, why in store.unreadable()]
        try:
            self.baseline = migrate(baseline, "the compared baseline")
        except ResultFileError as exc:
            self.no_verdicts = f"{exc}; no verdicts"
            return self.no_verdicts
        mismatch = profile_mismatch(profile_of(baseline), self.current_profile)
        if mismatch is None:
            return None
        theirs, mine = mismatch
        existing = store.describe()
        self.no_verdicts = (
            f"baseline profile {theirs} differs from this machine's profile {mine}: "
            f"no verdicts. Baselines by profile: {existing}. Record one here with "
            f"--benchmark-save=NAME or pass --benchmark-compare=NNNN for a matching run."
        )
        return self.no_verdicts

    @property
    def profile_id(self) -> str | None:
        return (self.current_profile or {}).get("profile_id")

    def judge(self, measured: list[Measured], store_root: str | Path = "baselines") -> Comparison | None:
        """Verdicts for the tests that measured a cell (None without a comparable baseline; when
        --benchmark-compare found no run of this profile, ``no_verdicts`` says how to record one)."""
        if self.baseline is None and self.options.compare and not self.no_verdicts and self.profile_id:
            store = BaselineStore(store_root, self.profile_id)
            self.no_verdicts = (
                f"no saved run of this machine's profile {self.profile_id} in {store.dir}/: record one with "
                f"--benchmark-save=NAME (or python -m harness baseline update); runs of other profiles: "
                f"{store.describe()}"
            )
        if self.baseline is None or self.no_verdicts:
            return None
        results = {r.nodeid: r for r in self.results}
        self.comparison = self._compare(
            {m.nodeid: results.get(m.nodeid) for m in measured},
            {m.nodeid: m.threshold for m in measured},
            {m.nodeid: m.statistic for m in measured},
        )
        for verdict in self.comparison.verdicts:
            result = results.get(verdict.name)
            if verdict.verdict == "missing" and result is not None:
                verdict.note = f"not measured now: {result.status} ({result.message})"
        return self.comparison

    def _compare(
        self,
        current: dict[str, CellResult | None],
        thresholds: dict[str, float | None],
        statistics: dict[str, str] | None = None,
    ) -> Comparison:
        """The verdicts of ``current`` (name -> its result, None when not measured) against the
        baseline; with --until-decided each cell at its look's level (its share of alpha)."""
        return compare(
            self.baseline,
            {n: r.per_process() if r is not None and r.ok else None for n, r in current.items()},
            thresholds,
            alpha=self.options.regression_alpha,
            current_control=self.control,
            current_profile=self.current_profile,
            names=list(current),
            threads={n: r.threads.resolved for n, r in current.items() if r is not None and r.threads},
            current_info={n: extra_info(r) for n, r in current.items() if r is not None and r.ok},
            looks={n: self.looks.get(n, 1) for n in current} if self.options.until_decided else None,
            statistics=statistics,
            metric_thresholds=self.options.metric_thresholds,
        )

    @property
    def failed_on_regression(self) -> bool:
        if not (self.options.fail_on_regression and self.comparison):
            return False
        return bool(self.comparison.failing(self.options.fail_on_minor, self.options.fail_on))

    # -- reporting ------------------------------------------------------------------------
    def saved_extra(self) -> dict:
        """infer-bench's part of the saved result JSON (beside pytest-benchmark's)."""
        extra: dict = {"control": self.control}
        if self.options.shard is not None:  # python -m harness merge checks the shards it joins
            extra["shard"] = str(self.options.shard)
        if self.results and not self.options.remote:  # the practical peak is this host's, not a device's
            extra.update(measured_peak())
        if self.comparison is not None:
            extra["verdicts"] = [v.to_dict() for v in self.comparison.verdicts]
        if self.adaptation is not None:
            extra["adaptation"] = self.adaptation.to_dict()
        return extra

    def summary(self) -> list[tuple[str, list[str], bool]]:
        """(section title, lines, is a warning) for the terminal: cells, thread scaling and
        sparsity (both also written to the report directory), verdicts or why there are none."""
        saving = [("infer-bench results not saved where asked", self.save_problems, True)] if self.save_problems else []
        if not self.results:
            return saving
        sections = [("infer-bench cells", cell_lines(self.results), False)]
        out_dir = Path(self.options.report_dir)
        out_dir = out_dir if out_dir.is_absolute() else self.root / out_dir
        table = scaling_table(self.results, self.options.regression_alpha)
        if table:
            line, failed = _written(lambda: write_report(table, self.results, out_dir))
            sections.append(("infer-bench thread settings", terminal_lines(table) + [line], failed))
        pruned = sparsity_report.sparsity_table(self.results)
        if pruned:
            line, failed = _written(lambda: sparsity_report.write_report(pruned, out_dir))
            sections.append(("infer-bench sparsity", sparsity_report.terminal_lines(pruned) + [line], failed))
        if self.no_verdicts:
            sections.append(("infer-bench verdicts", self.baseline_notes + [self.no_verdicts], True))
        elif self.comparison is not None:
            sections.append(("infer-bench verdicts", self.baseline_notes + verdict_lines(self.comparison), False))
        if self.adaptation is not None:
            sections.append(
                ("infer-bench until-decided", adaptation_lines(self.adaptation), bool(self.adaptation.note))
            )
        return sections + saving


def _written(write) -> tuple[str, bool]:
    """('written: paths', False), or why a report could not be written (a read-only or full
    report directory) and that the table printed above holds the same figures, True."""
    try:
        return f"written: {', '.join(str(p) for p in write())}", False
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"not written ({where}{exc.strerror or exc}); the table above holds the same figures", True
