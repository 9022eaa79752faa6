"""MetaSchedule tuning records: where they live, which one a cell uses, and the tuning run itself.

A database is valid for one (machine profile, thread count, TVM version): ``num-cores`` is compiled
into the target and MetaSchedule's look-ups ignore the target, so records from another machine or
thread count would be applied silently. One tree per profile, beside that profile's runs::

    baselines/<profile-id>/tuning/tvm-<version>-t<threads>/database_workload.json
                                                          /database_tuning_record.json

The ``tvm`` backend uses the database of its own key when present (label ``MetaSchedule db
<digest>``); another database only through ``INFER_BENCH_TVM_DB`` (``--tvm-tuning-db``), labelled
``borrowed``. Tuning runs in a worker process (MetaSchedule can segfault: apache/tvm#18424):
``python -m harness tune`` starts ``python -m harness.backends.tvm.tuning SPEC.json``.

A database is checked before MetaSchedule reads it (``database_problem``, ``contents_problem``;
stdlib ``json`` only): every complete line of both files must parse and have the shape
MetaSchedule's JSONDatabase writes (a workload line ``[shash, base64 IRModule JSON graph]``, a
record line ``[workload index, [trace, run_secs, target, args_info]]``), every record's index must
name a workload line, and every run time must be a finite number >= 0. A truncated last line (a
tuner killed while appending) is not damage: a cell reads complete lines only, and a tuning run
cuts it off before resuming. A damaged database is refused, never loaded or repaired:

- a cell (own or borrowed database) fails at its compile stage with ``TuningDatabaseError``, one
  line naming the file and line and what to do. It does not fall back to default schedules: its
  result would stand beside tuned baselines under the same backend and say nothing was wrong;
- ``--tvm-tuning-db DIR`` calls ``database_problem`` and a damaged DIR is a usage error before any
  worker starts;
- ``python -m harness tune`` refuses to append to a damaged ``search/`` (or to resume from a
  damaged published database): the worker prints the line and exits REFUSED_EXIT (3), which the
  command turns into its own exit 2. ``publish`` checks the
  search records it reads and the pruned files it writes, and replaces nothing when either fails."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.run.launcher import PROJECT_ROOT

BORROW_ENV = "INFER_BENCH_TVM_DB"  # an explicit database directory to use instead of this profile's
ROOT_ENV = "INFER_BENCH_TUNING_ROOT"  # the store holding <profile-id>/tuning (default: the project's baselines/)
FILES = ("database_workload.json", "database_tuning_record.json")
SEARCH = "search"  # every measured candidate (resume, cost-model warm start): stays on the tuning machine
DEFAULT_TRIALS = 64  # per task
TRIALS_PER_ITER = 16


def store_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or PROJECT_ROOT / "baselines")


def database_dir(profile_id: str, threads: int, tvm_version: str, root: Path | None = None) -> Path:
    return (root or store_root()) / profile_id / "tuning" / f"tvm-{tvm_version}-t{threads}"


def _complete_lines(data: bytes) -> bytes:
    """The whole lines of a newline-delimited file (a tuner may be appending the last one)."""
    return data[: data.rfind(b"\n") + 1]


def snapshot(path: Path) -> tuple[bytes, bytes] | None:
    """Both files of a database, read once (complete lines only); None when it is not complete."""
    files = [path / name for name in FILES]
    if not all(f.is_file() for f in files):
        return None
    workload, records = (_complete_lines(f.read_bytes()) for f in files)
    return workload, records


# -- checking a database before MetaSchedule reads it ----------------------------------------------


class TuningDatabaseError(ValueError):
    """A database that is refused: the message is one line (what is wrong, and what to do)."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _workload_problem(line) -> str | None:
    """Why a parsed workload line is not ``[shash, base64 of the IRModule's JSON graph]``
    (Workload::AsJSON: the hash as a decimal string; TVM 0.27 prefixes the JSON text with its
    8-byte little-endian length before encoding), or None."""
    if not (isinstance(line, list) and len(line) == 2):
        return "not a [structural hash, module] pair"
    shash, module = line
    if not (isinstance(shash, str) and shash.isascii() and shash.isdigit()):
        return "structural hash is not a decimal string"
    if not (isinstance(module, str) and module):
        return "module is not a base64 string"
    try:
        graph = base64.b64decode(module, validate=True)
    except (binascii.Error, ValueError):
        return "module is not valid base64"
    if len(graph) >= 8 and int.from_bytes(graph[:8], "little") == len(graph) - 8:
        graph = graph[8:]
    try:
        parsed = json.loads(graph)
    except (ValueError, RecursionError):
        return "module is not a JSON graph"
    return None if isinstance(parsed, dict) else "module is not a JSON graph"


def _inputs_problem(inputs, defined: set[str] | None) -> str | None:
    """Why an instruction's inputs (or attributes, ``defined`` None) would not translate
    (Trace::ApplyJSONToSchedule): a string is a quoted literal, a JSON graph ``{...}`` (an IndexMap)
    or the name of a random variable an earlier instruction defined; lists nest."""
    for item in inputs:
        if isinstance(item, list):
            problem = _inputs_problem(item, defined)
            if problem:
                return problem
        elif isinstance(item, str):
            if item[:1] == "{" and item[-1:] == "}":
                try:
                    json.loads(item)
                except (ValueError, RecursionError):
                    return f"trace {'input' if defined is not None else 'attribute'} is not a JSON graph"
            elif defined is not None and not (len(item) >= 2 and item[0] == item[-1] == '"') and item not in defined:
                return f"trace input {json.dumps(item)[:40]} names no earlier random variable"
    return None


def _trace_problem(trace) -> str | None:
    """Why a trace is not Trace::AsJSON's ``[[[kind, inputs, attrs, outputs], ...], [[index,
    decision], ...]]`` whose inputs name random variables defined before them, or None. (A decision
    index out of range is not checked by TVM 0.27's reader: it would write past its vector.)"""
    if not (isinstance(trace, list) and len(trace) == 2 and all(isinstance(t, list) for t in trace)):
        return "trace is not [instructions, decisions]"
    insts, decisions = trace
    defined = {"None"}
    for inst in insts:
        if not (isinstance(inst, list) and len(inst) == 4 and isinstance(inst[0], str) and inst[0]):
            return "trace instruction is not [kind, inputs, attrs, outputs]"
        kind, inputs, attrs, outputs = inst
        if not (isinstance(inputs, list) and isinstance(attrs, list) and isinstance(outputs, list)):
            return f"trace instruction {kind[:40]} is not [kind, inputs, attrs, outputs]"
        problem = _inputs_problem(inputs, defined) or _inputs_problem(attrs, None)
        if problem:
            return problem
        if not all(isinstance(o, str) and o for o in outputs):
            return f"trace instruction {kind[:40]} has an output that is not a name"
        defined.update(outputs)
    for decision in decisions:
        if not (isinstance(decision, list) and len(decision) == 2 and _is_int(decision[0])):
            return "trace decision is not [instruction index, decision]"
        if not 0 <= decision[0] < len(insts):
            return f"trace decision for instruction {decision[0]}, of {len(insts)}"
    return None


def _record_problem(line, workloads: int) -> str | None:
    """Why a parsed tuning-record line is not ``[workload index, [trace, run_secs, target,
    args_info]]`` (JSONDatabase's CommitTuningRecord and TuningRecord::AsJSON; the last three may
    be null), or None."""
    if not (isinstance(line, list) and len(line) == 2 and isinstance(line[1], list) and len(line[1]) == 4):
        return "not a [workload index, [trace, run_secs, target, args_info]] record"
    index, (trace, run_secs, target, args_info) = line
    if not _is_int(index):
        return "workload index is not an integer"
    if not 0 <= index < workloads:
        return f"workload index {index} names no workload (the workload file has {workloads} lines)"
    problem = _trace_problem(trace)
    if problem:
        return problem
    if run_secs is not None:
        if not isinstance(run_secs, list):
            return "run_secs is not a list"
        for value in run_secs:
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                return f"run_secs holds {json.dumps(value)[:40]}, not a finite time >= 0"
    if target is not None and not (isinstance(target, dict) and isinstance(target.get("kind"), str)):
        return "target is not a target configuration"
    if args_info is not None:
        if not isinstance(args_info, list):
            return "args_info is not a list"
        for arg in args_info:
            if not (isinstance(arg, list) and len(arg) == 3 and arg[0] == "TENSOR" and isinstance(arg[1], str)):
                return "args_info entry is not [TENSOR, dtype, shape]"
            if not (isinstance(arg[2], list) and all(_is_int(d) for d in arg[2])):
                return "args_info shape is not a list of integers"
    return None


def _lines_problem(path: Path, data: bytes, check) -> tuple[str | None, int]:
    """(why the first bad complete line of ``data`` is bad, naming ``path`` and its 1-based line
    number, or None; how many complete lines there are). ``check(value)`` judges a parsed line."""
    lines = _complete_lines(data).split(b"\n")[:-1]
    for number, raw in enumerate(lines, 1):
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return f"{path} line {number}: not JSON (not UTF-8)", len(lines)
        except (ValueError, RecursionError) as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)[:80]
            where = f": column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            return f"{path} line {number}: not JSON ({why}{where})", len(lines)
        try:
            problem = check(value)
        except RecursionError:
            problem = "nested too deeply"
        if problem:
            return f"{path} line {number}: {problem}", len(lines)
    return None, len(lines)


def contents_problem(path: Path, contents: tuple[bytes, bytes]) -> str | None:
    """Why a database's two files (their bytes, as ``snapshot`` read them from directory ``path``)
    must not be handed to MetaSchedule, one line naming the file and line; None when they may.
    Only complete lines are judged: a last line without its newline is a write in progress."""
    (workload_name, record_name), (workload, records) = FILES, contents
    problem, workloads = _lines_problem(path / workload_name, workload, _workload_problem)
    if problem:
        return problem
    problem, _ = _lines_problem(path / record_name, records, lambda line: _record_problem(line, workloads))
    return problem


def database_problem(path: Path) -> str | None:
    """Why directory ``path`` cannot be used as a MetaSchedule database (``--tvm-tuning-db``):
    not there, or damaged (``contents_problem``); None when it can."""
    contents = snapshot(Path(path))
    if contents is None:
        return f"no MetaSchedule database there ({' + '.join(FILES)})"
    return contents_problem(Path(path), contents)


def _digest_of(contents: tuple[bytes, bytes]) -> str:
    h = hashlib.sha256()
    for data in contents:
        h.update(data)
    return h.hexdigest()[:12]


def digest(path: Path) -> str | None:
    """Content hash of a database (both files), 12 hex digits; None when it is not complete."""
    contents = snapshot(path)
    return _digest_of(contents) if contents is not None else None


@dataclass(frozen=True)
class TuningDatabase:
    """A database as read once: the digest names exactly the bytes that are applied, even while a
    tuning run appends to the files."""

    path: Path
    contents: tuple[bytes, bytes]
    borrowed: bool  # not this cell's (profile, threads, version): named by the user

    @property
    def digest(self) -> str:
        return _digest_of(self.contents)

    def open(self):
        """A MetaSchedule JSONDatabase over a private copy of the snapshot; TuningDatabaseError,
        before MetaSchedule sees a byte, when the snapshot is damaged (and if MetaSchedule still
        fails to read it)."""
        from tvm.s_tir import meta_schedule as ms

        problem = contents_problem(self.path, self.contents)
        if problem:
            raise TuningDatabaseError(refusal(problem, self.path, self.borrowed))
        copy = Path(tempfile.mkdtemp(prefix="infer-bench-db-"))
        for name, data in zip(FILES, self.contents):
            (copy / name).write_bytes(data)
        workload, records = (str(copy / name) for name in FILES)
        try:
            return ms.database.JSONDatabase(path_workload=workload, path_tuning_record=records, allow_missing=False)
        except Exception as exc:  # noqa: BLE001 - what the shape check cannot see (an unknown instruction...)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].replace(str(copy), str(self.path))
            why = f"{self.path}: MetaSchedule cannot read it ({first[:300]})"
            raise TuningDatabaseError(refusal(why, self.path, self.borrowed)) from None

    def describe(self) -> str:
        return f"MetaSchedule db {self.digest}" + (f" (borrowed: {self.path})" if self.borrowed else "")


def refusal(problem: str, path: Path, borrowed: bool, threads: int | None = None) -> str:
    """The one line a refused database is reported with: what is wrong, and what to do."""
    if borrowed:
        todo = f"repair or replace {path}, or pass another --tvm-tuning-db DIR ({BORROW_ENV}), or none"
    else:
        tune = "python -m harness tune" + (f" --threads {threads}" if threads else "")
        todo = f"delete {path} or re-run `{tune}` to rebuild it; or pass --tvm-tuning-db DIR"
    return f"MetaSchedule tuning database refused: {problem}; {todo}"


def own_database_dir(threads: int, tvm_version: str) -> Path:
    """Where this machine's records for ``threads`` live (whether or not they exist)."""
    from harness.machine.profile import current_profile

    return database_dir(current_profile()["profile_id"], threads, tvm_version)


def find_database(threads: int, tvm_version: str) -> TuningDatabase | None:
    """The database for this worker: a borrowed one if named, else its own profile's, else None."""
    borrowed = os.environ.get(BORROW_ENV)
    if borrowed:
        path = Path(borrowed)
        contents = snapshot(path)
        if contents is None:
            raise TuningDatabaseError(f"{BORROW_ENV}={borrowed}: no MetaSchedule database there ({' + '.join(FILES)})")
        problem = contents_problem(path, contents)
        if problem:
            raise TuningDatabaseError(refusal(problem, path, True))
        return TuningDatabase(path, contents, borrowed=True)
    path = own_database_dir(threads, tvm_version)
    contents = snapshot(path)
    if contents is None:
        return None
    problem = contents_problem(path, contents)
    if problem:
        raise TuningDatabaseError(refusal(problem, path, False, threads))
    return TuningDatabase(path, contents, borrowed=False)


# -- the tuning run (inside a worker process) ----------------------------------------------------


@dataclass(frozen=True)
class TuneSpec:
    models: list[dict]  # {"name": ..., "options": {...}} as build_model takes them
    threads: int
    database: str  # directory to write
    trials: int = DEFAULT_TRIALS  # per task
    budget_s: float | None = None
    target: str = "llvm"

    @classmethod
    def load(cls, path: str) -> TuneSpec:
        return cls(**json.loads(Path(path).read_text()))

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__))


def fused_modules(spec: TuneSpec, target):
    from harness.backends.tvm.frontend import import_relax
    from harness.backends.tvm.pipeline import fuse
    from harness.models import build_model

    for entry in spec.models:
        model = build_model(entry["name"], entry.get("options") or {})
        yield model.name, fuse(import_relax(model, model.make_inputs(0)), target).mod


def unique_tasks(modules, target):
    """Tasks of every module, deduplicated by structure; weights added up."""
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    tasks: dict[int, list] = {}
    for name, mod in modules:
        for task in ms.relax_integration.extract_tasks(mod, target):
            key = tvm_ffi.structural_hash(task.dispatched[0])
            if key in tasks:
                tasks[key][2] += task.weight
            else:
                tasks[key] = [f"{name}/{task.task_name}", task, task.weight]
    return list(tasks.values())


def _flops(mod) -> float:
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        return float(estimate_tir_flops(mod))
    except Exception:  # noqa: BLE001 - some functions have no countable FLOPs
        return 0.0


def _records(database, mod) -> list:
    """Every valid record of a task's module (none when the database has never seen it)."""
    if not database.has_workload(mod):
        return []
    return database.get_top_k(database.commit_workload(mod), 10**6)


def _has_default(database, mod) -> bool:
    """Whether the task's records include the default schedule's (a trace without sampling)."""
    return any(not any(i.kind.name.startswith("Sample") for i in r.trace.insts) for r in _records(database, mod))


def _best(database, mod):
    """(best seconds, trials) recorded for a task's module."""
    records = _records(database, mod)
    times = [sum(float(x) for x in r.run_secs) / len(r.run_secs) for r in records if r.run_secs]
    return (min(times) if times else None), len(records)


def build_candidate(mod, target, _params):
    """MetaSchedule's default_build without its ``import tvm.s_tir.tensor_intrin``: that import
    registers every GPU intrinsic and takes 33 s (measured), longer than the builder's 30 s timeout,
    in every fresh builder process, so every candidate failed to build."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def default_schedule_record(task, target, builder, runner, database) -> float | None:
    """Measure the task's default schedule (schedules.py) like any candidate and commit it as a
    record: the database's best for a task is then never worse than what ``tvm`` runs untuned (a
    short search alone can end above it). Returns its seconds, or None if it did not build or run."""
    from tvm.s_tir import meta_schedule as ms

    from harness.backends.tvm.schedules import default_schedule_rules

    mod = task.dispatched[0]
    func = mod["main"]
    for rule in default_schedule_rules():
        sch = rule.apply(func, target, False)
        if sch is not None:
            break
    else:
        return None
    sch = sch[0] if isinstance(sch, list) else sch
    (built,) = builder.build([ms.builder.BuilderInput(sch.mod, target)])
    if built.error_msg:
        return None
    args_info = ms.arg_info.ArgInfo.from_prim_func(func)
    (future,) = runner.run([ms.runner.RunnerInput(built.artifact_path, "cpu", args_info)])
    result = future.result()
    if result.error_msg or not result.run_secs:
        return None
    run_secs = [float(x) for x in result.run_secs]
    workload = database.commit_workload(mod)
    database.commit_tuning_record(ms.database.TuningRecord(sch.trace, workload, run_secs, target, args_info))
    return sum(run_secs) / len(run_secs)


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _tune_refusal(problem: str, delete: Path, threads: int) -> str:
    tune = f"python -m harness tune --threads {threads}"
    return f"MetaSchedule tuning database refused: {problem}; delete {delete} and run `{tune}` again"


def prepare_search(db_dir: Path, threads: int, out=sys.stdout) -> Path:
    """``db_dir/search``, checked, for MetaSchedule to append to: started from the published
    database when it has none (resume), with a last line cut short by a killed run removed (it
    would fail MetaSchedule's reader, and the next record would be appended to it).
    TuningDatabaseError when what would be resumed from is damaged."""
    search = db_dir / SEARCH
    files = [search / name for name in FILES]
    published = snapshot(db_dir)
    if not all(f.exists() for f in files) and published is not None:  # a published db only
        problem = contents_problem(db_dir, published)
        if problem:
            raise TuningDatabaseError(_tune_refusal(problem, db_dir, threads))
        search.mkdir(parents=True, exist_ok=True)
        for f, data in zip(files, published):
            f.write_bytes(data)
        return search
    search.mkdir(parents=True, exist_ok=True)
    data = [f.read_bytes() if f.exists() else b"" for f in files]
    problem = contents_problem(search, (data[0], data[1]))
    if problem:
        raise TuningDatabaseError(_tune_refusal(problem, search, threads))
    for f, old in zip(files, data):
        whole = _complete_lines(old)
        if whole != old:
            with open(f, "r+b") as handle:
                handle.truncate(len(whole))
            print(f"{f}: removed an unfinished last line ({len(old) - len(whole)} bytes)", file=out)
    return search


def run_tuning(spec: TuneSpec, out=sys.stdout) -> int:
    """Tune every task of the spec's models, heaviest first, until each has ``trials`` records
    or the budget is spent; resumes from what the database already holds. Returns 0;
    TuningDatabaseError (before any tuning) when what it would resume from is damaged."""
    from tvm.s_tir import meta_schedule as ms

    from harness.backends.tvm.frontend import tvm_target
    from harness.plan.targets import get_target

    start = time.monotonic()
    target = tvm_target(get_target(spec.target), spec.threads)
    db_dir = Path(spec.database)
    search = prepare_search(db_dir, spec.threads, out)
    database = ms.database.JSONDatabase(*(str(search / name) for name in FILES), allow_missing=True)
    tasks = unique_tasks(fused_modules(spec, target), target)
    tasks.sort(key=lambda t: -_flops(t[1].dispatched[0]) * t[2])
    print(f"tuning {len(tasks)} tasks, {spec.trials} trials each, {spec.threads} threads -> {db_dir}", file=out)
    scratch = Path(tempfile.mkdtemp(prefix="infer-bench-tune-"))
    # one builder and runner pool for all tasks: a second LocalBuilder's workers time out (measured)
    builder = ms.builder.LocalBuilder(f_build=build_candidate)
    runner = ms.runner.LocalRunner(ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=20))
    seeded = sum(
        default_schedule_record(task, target, builder, runner, database) is not None
        for _, task, _ in tasks
        if not _has_default(database, task.dispatched[0])
    )
    print(f"default schedules measured and recorded for {seeded} tasks (what a search must beat)", file=out)
    done = 0
    for index, (name, task, _weight) in enumerate(tasks, 1):
        mod = task.dispatched[0]
        _, have = _best(database, mod)
        left = None if spec.budget_s is None else spec.budget_s - (time.monotonic() - start)
        if left is not None and left <= 0:
            print(f"budget spent: {len(tasks) - index + 1} tasks not tuned (run again to resume)", file=out)
            break
        if have >= spec.trials:
            done += 1
            print(f"[{index}/{len(tasks)}] {name}: {have} records, skipped (resume)", file=out, flush=True)
            continue
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            [task], str(scratch), num_threads=spec.threads, seed=index
        )
        if not contexts:
            continue
        ms.tune.tune_tasks(
            tasks=contexts,
            task_weights=weights,
            work_dir=str(scratch),
            max_trials_global=spec.trials - have,
            num_trials_per_iter=min(TRIALS_PER_ITER, spec.trials - have),
            database=database,
            builder=builder,
            runner=runner,
        )
        done += 1
        best, have = _best(database, mod)
        flops = _flops(mod)
        rate = f"{flops / best / 1e9:.1f} GFLOP/s" if best and flops else "n/a"
        clock = "" if spec.budget_s is None else f", {_clock(spec.budget_s - (time.monotonic() - start))} left"
        best_ms = f"{best * 1e3:.3f} ms" if best else "no valid record"
        print(f"[{index}/{len(tasks)}] {name}: best {best_ms}, {rate}, {have} records{clock}", file=out, flush=True)
    print_summary(tasks, database, out)
    print(f"{done}/{len(tasks)} tasks tuned; database {db_dir} digest {publish(db_dir)}", file=out)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


def publish(db_dir: Path) -> str | None:
    """Write the best record of every task (MetaSchedule's ``dump_pruned``) from ``db_dir/search``
    to ``db_dir``: what cells apply and what is committed (the smoke models' 1800 searched records
    were 8 MB; their best ones, one per task, are what a build uses). Each file is replaced whole.
    TuningDatabaseError, and nothing replaced, when the search records or the pruned files are
    damaged."""
    from tvm.s_tir import meta_schedule as ms

    contents = snapshot(db_dir / SEARCH)
    problem = f"{db_dir / SEARCH}: no MetaSchedule database there ({' + '.join(FILES)})" if contents is None else None
    problem = problem or contents_problem(db_dir / SEARCH, contents)
    if problem:
        raise TuningDatabaseError(
            f"MetaSchedule tuning database not published: {problem}; delete {db_dir / SEARCH} and tune again"
        )
    search = TuningDatabase(db_dir / SEARCH, contents, borrowed=False).open()  # a copy of its complete lines
    staging = Path(tempfile.mkdtemp(prefix=".publish-", dir=db_dir))
    try:
        search.dump_pruned(ms.database.JSONDatabase(*(str(staging / name) for name in FILES), allow_missing=True))
        pruned = snapshot(staging)
        problem = contents_problem(staging, pruned) if pruned is not None else f"{staging}: nothing written"
        if problem:  # MetaSchedule wrote what this check refuses: the check or TVM's format changed
            raise TuningDatabaseError(f"MetaSchedule tuning database not published: pruned records: {problem}")
        for name in FILES:
            os.replace(staging / name, db_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return digest(db_dir)


def print_summary(tasks, database, out=sys.stdout) -> None:
    """Per task: weight, FLOPs, best latency, GFLOP/s, records; and the weighted total."""
    print(f"{'task':60} {'weight':>6} {'MFLOP':>9} {'best ms':>9} {'GFLOP/s':>8} {'trials':>6}", file=out)
    total = 0.0
    for name, task, weight in tasks:
        mod = task.dispatched[0]
        best, have = _best(database, mod)
        flops = _flops(mod)
        total += (best or 0.0) * weight
        rate = f"{flops / best / 1e9:8.1f}" if best and flops else f"{'-':>8}"
        best_ms = f"{best * 1e3:9.3f}" if best else f"{'-':>9}"
        print(f"{name[:60]:60} {weight:6g} {flops / 1e6:9.2f} {best_ms} {rate} {have:6d}", file=out)
    print(f"weighted total of tuned tasks: {total * 1e3:.3f} ms", file=out)


REFUSED_EXIT = 3  # the tuning worker's exit code for a refused database (it printed the one line)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run_tuning(TuneSpec.load(argv[0]))
    except TuningDatabaseError as exc:  # a damaged database: one line, nothing tuned or published
        print(f"error: {exc}", file=sys.stderr)
        return REFUSED_EXIT


if __name__ == "__main__":
    sys.exit(main())
