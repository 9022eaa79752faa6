"""MetaSchedule tuning records: where they live, which one a cell uses, and the tuning run itself.

A database is valid for one (machine profile, thread count, TVM version): ``num-cores`` is compiled
into the target and MetaSchedule's look-ups ignore the target, so records from another machine or
thread count would be applied silently. One tree per profile, beside that profile's runs::

    baselines/<profile-id>/tuning/tvm-<version>-t<threads>/database_workload.json
                                                          /database_tuning_record.json

The ``tvm`` backend uses the database of its own key when present (label ``MetaSchedule db
<digest>``); another database only through ``INFER_BENCH_TVM_DB`` (``--tvm-tuning-db``), labelled
``borrowed``. Tuning runs in a worker process (MetaSchedule can segfault: apache/tvm#18424):
``python -m harness tune`` starts ``python -m harness.backends.tvm.tuning SPEC.json``."""

from __future__ import annotations

import hashlib
import json
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
        """A MetaSchedule JSONDatabase over a private copy of the snapshot."""
        from tvm.s_tir import meta_schedule as ms

        copy = Path(tempfile.mkdtemp(prefix="infer-bench-db-"))
        for name, data in zip(FILES, self.contents):
            (copy / name).write_bytes(data)
        workload, records = (str(copy / name) for name in FILES)
        return ms.database.JSONDatabase(path_workload=workload, path_tuning_record=records, allow_missing=False)

    def describe(self) -> str:
        return f"MetaSchedule db {self.digest}" + (f" (borrowed: {self.path})" if self.borrowed else "")


class TuningDatabaseError(ValueError):
    pass


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
        return TuningDatabase(path, contents, borrowed=True)
    path = own_database_dir(threads, tvm_version)
    contents = snapshot(path)
    return TuningDatabase(path, contents, borrowed=False) if contents is not None else None


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


def run_tuning(spec: TuneSpec, out=sys.stdout) -> int:
    """Tune every task of the spec's models, heaviest first, until each has ``trials`` records
    or the budget is spent; resumes from what the database already holds. Returns 0."""
    from tvm.s_tir import meta_schedule as ms

    from harness.backends.tvm.frontend import tvm_target
    from harness.plan.targets import get_target

    start = time.monotonic()
    target = tvm_target(get_target(spec.target), spec.threads)
    db_dir = Path(spec.database)
    search = db_dir / SEARCH
    search.mkdir(parents=True, exist_ok=True)
    if not all((search / name).exists() for name in FILES) and digest(db_dir):  # a published db only
        for name in FILES:
            shutil.copy(db_dir / name, search / name)
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
    were 8 MB; their best ones, one per task, are what a build uses). Each file is replaced whole."""
    from tvm.s_tir import meta_schedule as ms

    search = ms.database.JSONDatabase(*(str(db_dir / SEARCH / name) for name in FILES), allow_missing=False)
    staging = Path(tempfile.mkdtemp(prefix=".publish-", dir=db_dir))
    try:
        search.dump_pruned(ms.database.JSONDatabase(*(str(staging / name) for name in FILES), allow_missing=True))
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_tuning(TuneSpec.load(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
