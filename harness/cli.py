"""Command line: ``python -m harness compare | history | merge | baseline update|migrate|compact | report | tune``.

Exit codes: 0 = fine (no regression), 1 = regression found (of latency, or of a metric ``compare
--fail-on`` names), 2 = usage or input error (one line on stderr)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.backends.tvm.tuning import DEFAULT_TRIALS
from harness.compare.change_points import DEFAULT_MAX_PVALUE, DEFAULT_WINDOW
from harness.compare.compare import compare_results, profile_mismatch
from harness.compare.metrics import (
    DEFAULT_FAIL_ON,
    METRIC_THRESHOLDS_HELP,
    METRICS,
    MetricNameError,
    parse_fail_on,
    parse_metric_thresholds,
)
from harness.compare.percentiles import DEFAULT_STATISTIC, VERDICT_STATISTICS
from harness.compare.verdict import DEFAULT_ALPHA, DEFAULT_THRESHOLD
from harness.store.baselines import KEEP_SAMPLES
from harness.store.results import ResultFileError, load_result


class UsageProblem(Exception):
    pass


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in (0, 1)")
    return value


def _threshold(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a threshold in [0, 1)")
    return value


def latest_saved_run(store_root: str, current: dict) -> Path:
    """The latest run of ``current``'s profile in a store folder (UsageProblem when it has none)."""
    from harness.store.baselines import BaselineStore, profile_id_of

    store = BaselineStore(store_root, profile_id_of(current))
    latest = store.latest()
    if latest is None:
        raise UsageProblem(
            f"no saved run of profile {store.profile_id} in {store.dir} to compare with; "
            f"profiles with runs: {store.describe()}"
        )
    print(f"baseline: {latest}", file=sys.stderr)
    return latest


def _metric_thresholds(args) -> dict[str, float]:
    """--metric-thresholds, parsed before anything is read (a bad one is a usage error, always)."""
    try:
        return parse_metric_thresholds(args.metric_thresholds)
    except MetricNameError as exc:
        raise UsageProblem(str(exc)) from None


def _judged(args, baseline_path: str, current: dict, metric_thresholds: dict[str, float]):
    """The comparison of a loaded result with a baseline file, under the one rule every judging
    path applies: results from different machine profiles are refused unless asked for."""
    if Path(baseline_path).is_dir():  # a store: the latest saved run of the current result's profile
        baseline_path = latest_saved_run(baseline_path, current)
    comparison = compare_results(
        load_result(baseline_path), current, args.threshold, args.alpha, args.verdict_statistic, metric_thresholds
    )
    mismatch = profile_mismatch(comparison.baseline_profile, comparison.current_profile)
    if mismatch and not args.allow_profile_mismatch:
        raise UsageProblem(
            f"profiles differ: baseline {mismatch[0]}, current {mismatch[1]}; timings from different machines "
            f"are not comparable (override with --allow-profile-mismatch)"
        )
    if mismatch:
        print(f"warning: compared across profiles {mismatch[0]} -> {mismatch[1]}", file=sys.stderr)
    return comparison


def cmd_compare(args) -> int:
    from harness.report.markdown import verdict_markdown
    from harness.report.tables import verdict_lines

    try:
        fail_on = parse_fail_on(args.fail_on)
    except MetricNameError as exc:
        raise UsageProblem(str(exc)) from None
    comparison = _judged(args, args.baseline, load_result(args.current), _metric_thresholds(args))
    failing = comparison.failing(args.fail_on_minor, fail_on)
    if args.format == "json":
        print(
            json.dumps(dict(comparison.to_dict(), fail_on=list(fail_on), failing=[v.name for v in failing]), indent=2)
        )
    elif args.format == "md":
        print(verdict_markdown(comparison))
    else:
        print("\n".join(verdict_lines(comparison)))
    return 1 if failing else 0


def cmd_baseline_update(args) -> int:
    from harness.store.baselines import BaselineStore

    source = args.source
    if source is None:  # measure the smoke matrix now
        tmp = Path(tempfile.mkdtemp(prefix="infer-bench-")) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "suites/",
            "-m",
            "smoke",
            f"--benchmark-json={tmp}",
            "-p",
            "no:cacheprovider",
        ]
        print("running:", " ".join(cmd), file=sys.stderr)
        rc = subprocess.call(cmd)
        if rc != 0:
            raise UsageProblem(f"the smoke run failed (pytest exit code {rc}); the baseline was not changed")
        source = tmp
    store = BaselineStore(args.store)  # update files the run under the run's own profile
    try:
        path = store.update(source, args.name)
    except OSError as exc:
        raise UsageProblem(f"cannot write under {store.root} ({exc.strerror or exc}); nothing was stored") from None
    print(f"baseline written: {path} (previous runs of that profile kept in {path.parent})")
    return 0


def cmd_baseline_compact(args) -> int:
    """Compact every profile's runs older than the newest --keep (also done on every save)."""
    from harness.store.baselines import BaselineStore

    store = BaselineStore(args.store)
    total = 0
    for pid in store.profiles():
        try:
            changed = BaselineStore(args.store, pid).compact(args.keep)
        except OSError as exc:
            raise UsageProblem(f"cannot rewrite runs of {pid} ({exc.strerror or exc})") from None
        for path, before, after in changed:
            print(f"{path}: {before / 1024:.1f} KB -> {after / 1024:.1f} KB")
        total += len(changed)
    print(f"{total} runs compacted", file=sys.stderr)
    return 0


def cmd_baseline_migrate(args) -> int:
    """Move runs stored outside their profile's folder (pytest-benchmark's OS-and-Python folders)
    into baselines/<profile id>/, once; commit the moves."""
    from harness.store.baselines import BaselineStore

    try:
        moved, left = BaselineStore(args.store).migrate()
    except OSError as exc:
        raise UsageProblem(f"cannot move runs under {args.store} ({exc.strerror or exc})") from None
    for source, target in moved:
        print(f"{source} -> {target}")
    for line in left:
        print(f"warning: {line}", file=sys.stderr)
    print(f"{len(moved)} runs moved" + (f", {len(left)} left in place" if left else ""), file=sys.stderr)
    return 0


def history_runs(args) -> tuple[str, list[tuple[str, dict]]]:
    """(profile id, its saved runs oldest first, then --current as the newest 'current' run); every
    unreadable run is named on stderr and left out."""
    from harness.store.baselines import BaselineStore, profile_id_of

    current = load_result(args.current) if args.current else None
    profile = args.profile or (profile_id_of(current) if current else None)
    store = BaselineStore(args.store, profile)
    runs, problems = store.history()
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)
    if current is not None:
        runs.append(("current", current))
    if not runs:
        raise UsageProblem(
            f"no saved runs of profile {store.profile_id} in {store.dir}; profiles with runs: {store.describe()} "
            "(choose one with --profile)"
        )
    return store.profile_id, runs


def cmd_history(args) -> int:
    """Change points per cell over a profile's saved runs; exit 1 with --fail-on-new-regression
    when the newest run brought a change point that is a regression beyond the threshold."""
    from harness.compare.history import analyse, new_change_points
    from harness.report.markdown import history_markdown
    from harness.report.tables import history_lines

    profile, runs = history_runs(args)
    cells = [c for part in args.cell or [] for c in part.split(",") if c]
    histories = analyse(runs, cells, args.max_pvalue, args.window)
    if cells and not histories:
        raise UsageProblem(f"--cell {','.join(cells)}: no cell of profile {profile} matches")
    new = new_change_points(runs, cells, args.max_pvalue, args.window, now=histories)
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    failing = [cp for cp in new if cp.is_regression(threshold)]
    points = [cp for h in histories.values() for cp in h.change_points]
    if args.format == "json":
        print(
            json.dumps(
                {
                    "profile": profile,
                    "runs": [name for name, _ in runs],
                    "max_pvalue": args.max_pvalue,
                    "change_points": [cp.to_dict() | {"new": cp in new} for cp in points],
                    "new_regressions": [cp.to_dict() for cp in failing],
                },
                indent=2,
            )
        )
    elif args.format == "md":
        print(f"### Change points, profile {profile}, {len(runs)} runs\n")
        print(history_markdown(histories, new))
    else:
        print(
            f"change points of profile {profile} over {len(runs)} runs ({runs[0][0]} .. {runs[-1][0]}): "
            f"E-divisive means with Apache Otava's t-test, max p-value {args.max_pvalue:g}"
        )
        print("\n".join(history_lines(histories, new)))
    if args.fail_on_new_regression and failing:
        names = ", ".join(f"{cp.cell.split('::')[-1]} {cp.ratio - 1:+.1%} at {cp.night.run}" for cp in failing)
        print(f"gate: {len(failing)} new change points slower by more than {threshold:.0%}: {names}", file=sys.stderr)
        return 1
    return 0


def cmd_merge(args) -> int:
    """Join shard results of one profile and commit into one run (harness.store.merge)."""
    from harness.store.io import write_atomic
    from harness.store.merge import merge_results

    merged, notes = merge_results([(path, load_result(path)) for path in args.results])
    for line in notes:
        print(f"warning: {line}", file=sys.stderr)
    try:
        write_atomic(Path(args.output), json.dumps(merged, indent=2, allow_nan=True))
    except OSError as exc:
        raise UsageProblem(f"cannot write {args.output} ({exc.strerror or exc})") from None
    shards = merged["infer_bench"]["merged"]["shards"]
    print(
        f"{args.output}: {len(merged['benchmarks'])} cells from {len(args.results)} results"
        + (f" (shards {', '.join(shards)})" if shards else "")
    )
    return 0


def cmd_report(args) -> int:
    from harness.report.html import write_reports

    metric_thresholds = _metric_thresholds(args)
    current = load_result(args.result)
    comparison = None
    if args.baseline:
        try:
            comparison = _judged(args, args.baseline, current, metric_thresholds)
        except UsageProblem as exc:
            if not Path(args.baseline).is_dir():
                raise
            print(f"warning: {exc}; the report has no verdicts", file=sys.stderr)  # a profile's first run
    try:
        written = write_reports(current, comparison, Path(args.output), history_dir=args.history)
    except OSError as exc:
        where = exc.filename or args.output
        raise UsageProblem(f"cannot write the report: {where}: {exc.strerror or exc}") from None
    for path in written:
        print(path)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        md = next(p for p in written if p.suffix == ".md")
        with open(summary, "a") as fh:
            fh.write(md.read_text())
    return 0


def _judging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        help=f"minimum practical effect for every cell, beating each result's own (its test's marker or suite "
        f"when it ran); default: those, else {DEFAULT_THRESHOLD}. 0 counts any significant change",
    )
    parser.add_argument(
        "--metric-thresholds",
        default=None,
        metavar="LIST",
        help=METRIC_THRESHOLDS_HELP,
    )
    parser.add_argument(
        "--alpha", type=_fraction, default=DEFAULT_ALPHA, help=f"significance level (default {DEFAULT_ALPHA})"
    )
    parser.add_argument(
        "--verdict-statistic",
        choices=VERDICT_STATISTICS,
        default=None,
        help="what every verdict judges of each worker process's calls, beating each result's own (its suite's, "
        f"marker's or scenario's when it ran); default: those, else {DEFAULT_STATISTIC}",
    )
    parser.add_argument(
        "--allow-profile-mismatch",
        action="store_true",
        help="judge results from different machine profiles anyway (their timings are not comparable)",
    )


def _smoke_models(suite: str) -> list[str]:
    import runpy

    try:
        matrix = runpy.run_path(suite)["MATRIX"]
    except (OSError, KeyError) as exc:
        raise UsageProblem(f"--suite {suite}: cannot read its MATRIX ({exc}); name models with --models") from None
    return list(matrix.smoke.get("models") or matrix.models)


def cmd_tune(args) -> int:
    """Tune the TVM tasks of the chosen models in a worker process; records go to this machine
    profile's database for the thread count (or to --database)."""
    from harness import PROJECT_ROOT
    from harness.backends.tvm.tuning import REFUSED_EXIT, TuneSpec, database_dir
    from harness.machine.profile import current_profile
    from harness.machine.threads import resolve_threads
    from harness.models import MODELS
    from harness.models.user import UserModelError, user_model
    from harness.run.launcher import python_env
    from harness.run.user_check import vet

    try:
        user = user_model(args.model_file, args.model_factory, args.input_shape)
        threads = resolve_threads(args.threads)
        if user:  # checked before the tuning worker starts; the message names the file as given
            where = f"--model-file {args.model_file}" if args.model_file else None
            refused = vet(user[1], {"tvm"}, where).refused
            if refused:
                raise UserModelError(f"{args.model_file or args.model_factory}: {refused['tvm']}")
    except (UserModelError, ValueError) as exc:
        raise UsageProblem(str(exc)) from None
    if user:
        models = [{"name": user[0], "options": user[1]}]
    else:
        names = [m.strip() for m in args.models.split(",")] if args.models else _smoke_models(args.suite)
        unknown = [m for m in names if m not in MODELS]
        if unknown:
            raise UsageProblem(f"--models: unknown {', '.join(unknown)}; known: {', '.join(MODELS)}")
        models = [{"name": m} for m in names]
    if threads is None or args.trials < 1:
        raise UsageProblem("tune needs a thread count (--threads N|auto|physical) and --trials >= 1")
    import tvm

    profile_id = current_profile()["profile_id"]
    db = Path(args.database) if args.database else database_dir(profile_id, threads, tvm.__version__)
    spec = TuneSpec(
        models=models,
        threads=threads,
        database=str(db.resolve()),
        trials=args.trials,
        budget_s=args.budget_minutes * 60 if args.budget_minutes else None,
    )
    spec_path = Path(tempfile.mkdtemp(prefix="infer-bench-tune-")) / "spec.json"
    spec.dump(spec_path)
    env = python_env(dict(os.environ, TVM_NUM_THREADS=str(threads), PYTHONFAULTHANDLER="1"))
    command = [sys.executable, "-m", "harness.backends.tvm.tuning", str(spec_path)]
    rc = subprocess.call(command, env=env, cwd=str(PROJECT_ROOT))
    if rc == REFUSED_EXIT:  # a damaged database, refused: the worker printed the one line
        return 2
    if rc != 0:
        why = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
        print(f"error: the tuning worker failed ({why}); records written so far are kept in {db}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description="infer-bench: compare, baselines, reports")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="verdicts for CURRENT against BASELINE (pytest-benchmark JSON files)")
    c.add_argument("baseline", help="a saved result, or a store folder (its latest run of CURRENT's profile)")
    c.add_argument("current")
    _judging_options(c)
    c.add_argument(
        "--fail-on-minor",
        action="store_true",
        help="exit 1 on 'minor regression' too (significant, below the threshold)",
    )
    c.add_argument(
        "--fail-on",
        default=None,
        metavar="LIST",
        help=f"the metrics whose regression exits 1, a comma list of {', '.join(METRICS)} or all "
        f"(default {','.join(DEFAULT_FAIL_ON)})",
    )
    c.add_argument("--format", choices=("text", "md", "json"), default="text")
    c.set_defaults(func=cmd_compare)
    b = sub.add_parser("baseline", help="manage the committed baselines")
    bsub = b.add_subparsers(dest="action", required=True)
    u = bsub.add_parser("update", help="store a result as the newest baseline (atomic; older runs kept)")
    u.add_argument(
        "--from", dest="source", default=None, help="result JSON to store (default: run the smoke matrix now)"
    )
    u.add_argument("--name", default="smoke", help="run name in the file name NNNN_NAME.json (default smoke)")
    u.add_argument("--store", default="baselines", help="baseline directory (default baselines/)")
    u.set_defaults(func=cmd_baseline_update)
    m = bsub.add_parser("migrate", help="move runs into baselines/<profile id>/ (from pytest-benchmark's own layout)")
    m.add_argument("--store", default="baselines", help="baseline directory (default baselines/)")
    m.set_defaults(func=cmd_baseline_migrate)
    k = bsub.add_parser("compact", help="keep only process medians and metadata of runs older than the newest --keep")
    k.add_argument("--keep", type=int, default=KEEP_SAMPLES, help=f"runs per profile keeping samples ({KEEP_SAMPLES})")
    k.add_argument("--store", default="baselines", help="baseline directory (default baselines/)")
    k.set_defaults(func=cmd_baseline_compact)
    h = sub.add_parser("history", help="change points per cell over a profile's saved runs (the nightly gate)")
    h.add_argument("--store", default="baselines", help="baseline directory (default baselines/)")
    h.add_argument("--profile", default=None, help="profile id (default: --current's, else this machine's)")
    h.add_argument("--current", default=None, help="a result not yet saved, taken as the newest run")
    h.add_argument("--cell", action="append", default=None, help="only cells whose name contains this (repeatable)")
    h.add_argument(
        "--max-pvalue",
        type=_fraction,
        default=DEFAULT_MAX_PVALUE,
        help=f"significance of a change point (default {DEFAULT_MAX_PVALUE:g})",
    )
    h.add_argument("--window", type=int, default=DEFAULT_WINDOW, help=f"E-divisive window, nights ({DEFAULT_WINDOW})")
    h.add_argument(
        "--fail-on-new-regression",
        action="store_true",
        help="exit 1 when the newest run brought a change point slower by more than --threshold",
    )
    h.add_argument(
        "--threshold", type=_threshold, default=None, help=f"the gate's practical effect (default {DEFAULT_THRESHOLD})"
    )
    h.add_argument("--format", choices=("text", "md", "json"), default="text")
    h.set_defaults(func=cmd_history)
    g = sub.add_parser("merge", help="join shard results (pytest --shard K/N --benchmark-json) into one run")
    g.add_argument("results", nargs="+", help="the shards' result JSON files")
    g.add_argument("-o", "--output", required=True, help="where to write the merged run")
    g.set_defaults(func=cmd_merge)
    r = sub.add_parser("report", help="Markdown + self-contained HTML report of a result")
    r.add_argument("result")
    r.add_argument("--baseline", default=None, help="a saved result, or a store folder (its latest run of the profile)")
    r.add_argument("-o", "--output", default="reports")
    r.add_argument(
        "--history",
        default=None,
        help="directory of saved runs for the trend plot (default: baselines/<the result's profile id>)",
    )
    _judging_options(r)
    r.set_defaults(func=cmd_report)
    t = sub.add_parser("tune", help="MetaSchedule records for the tvm backend on this machine profile")
    t.add_argument("--models", default=None, help="comma-separated model names (default: the suite's smoke models)")
    t.add_argument("--suite", default="suites/test_latency.py", help="suite whose smoke models are the default")
    t.add_argument("--model-file", default=None, help="an ONNX file to tune instead")
    t.add_argument("--model-factory", default=None, help="module:function building a torch model to tune instead")
    t.add_argument("--input-shape", action="append", default=None, help="NAME=D1,D2,... for --model-file")
    t.add_argument("--threads", default="auto", help="threads the records are for (num-cores; default auto)")
    t.add_argument("--trials", type=int, default=DEFAULT_TRIALS, help=f"trials per task (default {DEFAULT_TRIALS})")
    t.add_argument("--budget-minutes", type=float, default=None, help="stop starting tasks after this long")
    t.add_argument("--database", default=None, help="write here instead of baselines/<profile>/tuning/...")
    t.set_defaults(func=cmd_tune)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return args.func(args)
    except (ResultFileError, UsageProblem) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
