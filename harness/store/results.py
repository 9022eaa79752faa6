"""Saved results: pytest-benchmark JSON with infer-bench's additions, written and read here only.

A saved result is what ``--benchmark-json`` / ``--benchmark-save`` write, plus:

- per benchmark, ``extra_info`` (``extra_info(result)``): the cell, backend and version, threads
  (asked, resolved, thread control, inter-op, spin, what the runtime reports, the threads that ran
  per process, CPU/wall), the confinement (quota, cpuset, pinning), compile_s (the first
  process's, for display), FLOPs, mean, max and calls/s, the percentiles ``p50_s``, ``p90_s``,
  ``p99_s`` (null where the calls do not support one) with ``percentiles`` (what they are of, the
  calls, why any is missing), ``verdict_statistic`` (what the cell's verdict judges), the
  ``scenario`` and, for a throughput or server cell, ``load`` (each process's run: samples/s,
  achieved QPS, drops, the peak search's rates, the harness's own CPU), parity (``max_rel_err`` and
  ``cosine_distance`` against float64, from the first process), the backend's build facts as they
  are (``compile_cache``, ``artifact_bytes`` and ``artifact``: the size on disk of what it built and
  what that is, ...), flags, and the samples *per worker process* (``samples.per_process``: at most
  ``MAX_STORED_SAMPLES`` evenly spaced order statistics of the per-call seconds per process, 6
  significant digits) that verdicts need;
- per benchmark with --profile-ops, ``extra_info.op_profile``: the cell's per-operator profile
  (harness.compare.op_profile, bounded to a few KB), or null with ``op_profile_error`` saying why;
- per benchmark, ``extra_info.process_metrics``: what each worker process measured once
  (harness.run.protocol.ProcessMetrics), one entry per process in each list:
  ``{"compile_s": [...], "compile_cache": [...], "first_inference_s": [...], "model_rss_mb": [...],
  "allocator_mb": [...]}`` (null where a process has no value); the verdicts beyond latency
  (harness.compare.metrics) read these, ``artifact_bytes`` and the parity errors;
- ``machine_info.infer_bench``: the machine profile (harness.machine.profile);
- top-level ``infer_bench``: ``format_version``, the drift control, the measured practical peak
  and the verdicts of that run.

A *compacted* run (``infer_bench.compacted``; ``compact_result``: what the store keeps of runs older
than the newest few of a profile) holds, per benchmark, pytest-benchmark's stats, the per-process
medians (``samples.process_medians``: what verdicts and history read) with the process and round
counts, and the cell's metadata (the medians of the ``process_metrics`` lists as ``compile_s_median`` etc.:
too few values remain for a verdict across processes); per run, the machine profile without its hardware detail, the
drift control and the commit. About 0.4 KB per cell instead of ~20 KB.

``FORMAT_VERSION`` is checked on load; older files are migrated in ``migrate`` (one place), files
from a newer harness are refused with one line. Format 1: the files saved before the version
existed (baselines 0001-0003); format 2 has the same fields plus the version.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import fields
from pathlib import Path

import numpy as np

from harness.compare.op_profile import OpProfile
from harness.compare.percentiles import (
    REPORTED,
    STATISTIC_KEY,
    VERDICT_STATISTICS,
    basis,
    calls_needed,
    quantile,
    supported,
)
from harness.compare.sequential import LOOK_KEY, MAX_LOOKS
from harness.compare.stats import log_process_levels
from harness.machine.peak import gflops
from harness.run.protocol import CellResult, ProcessMetrics
from harness.store.io import read_json

FORMAT_VERSION = 2
MAX_STORED_SAMPLES = 300  # per process, in extra_info (what baselines keep)
PROCESS_METRICS = tuple(f.name for f in fields(ProcessMetrics))  # the lists of extra_info.process_metrics


class ResultFileError(ValueError):
    pass


# -- writing -------------------------------------------------------------------------------------
def significant(value, digits: int = 4):
    """A float rounded to ``digits`` significant digits (what stored timings keep); other values as they are."""
    return float(f"{value:.{digits}g}") if isinstance(value, float) else value


def compact(samples: list[float], keep: int = MAX_STORED_SAMPLES) -> list[float]:
    """At most ``keep`` evenly spaced order statistics (min, median and max included), 6
    significant digits: the distribution a baseline needs for statistics, without 40k floats
    per fast cell. The verdict uses per-process medians, which this preserves."""
    ordered = sorted(samples)
    if len(ordered) > keep:
        idx = [round(i * (len(ordered) - 1) / (keep - 1)) for i in range(keep)]
        ordered = [ordered[i] for i in idx]
    return [significant(float(x), 6) for x in ordered]


def extra_info(result: CellResult) -> dict:
    """A cell result as the ``extra_info`` of its saved benchmark."""
    from harness.run.parity import ParityReport

    cell, threads = result.cell, result.threads
    info = {
        "backend": cell.backend,
        "backend_version": result.backend_version,
        "backend_label": result.label,
        "model": cell.model,
        "model_kind": result.model_kind,
        "target": cell.target,
        "sparsity": cell.sparsity,
        "measured_sparsity": result.measured_sparsity,
        "pruning": result.pruning,
        "scenario": cell.scenario,
        "batch": cell.batch,
        "threads": cell.threads,
        "thread_control": cell.thread_control,
        "interop": cell.interop,
        "spin": cell.spin,
        "threads_resolved": threads.resolved,
        "threads_runtime": threads.runtime,
        "threads_env": threads.env,
        "threads_seen": threads.seen,
        "os_threads": threads.os_threads,
        "threads_ran": [s.threads_ran for s in result.samples],
        "cpu_per_wall": result.cpu_per_wall(),
        "confinement": result.confinement or None,
        "oversubscribed": result.oversubscribed,
        "foreign_load": result.foreign_load,
        "machine_busy": result.busy,
        "cpu_budget": result.cpu_budget.to_dict() if result.cpu_budget else None,
        "compile_s": result.compile_s,
        "flops": result.flops,
        "peak_rss_mb": result.peak_rss_mb,
        "launcher": result.launcher,
        "worker_wall_s": result.wall_s,
        "regression_threshold": result.threshold,
    }
    info.update(result.build)
    if result.device:  # a device target's GPU, versions and clock
        info["device"] = result.device
    if result.gflops() is not None:
        info["gflops_per_s"] = result.gflops()
    if result.mean_s() is not None:
        info.update(mean_s=result.mean_s(), max_s=result.quantile_s(1.0), calls_per_s=result.throughput())
        info.update(percentiles(result))
    info[STATISTIC_KEY] = result.statistic
    if result.process_metrics:
        info["process_metrics"] = {
            name: [significant(getattr(m, name), 6) for m in result.process_metrics] for name in PROCESS_METRICS
        }
    if result.load:  # a throughput or server scenario: each process's run (harness.run.protocol.LoadReport)
        info["load"] = [r.to_dict() for r in result.load]
    if result.op_profile is not None or result.op_profile_error:
        info["op_profile"] = result.op_profile
        info["op_profile_error"] = result.op_profile_error
    if result.parity:
        info.update(ParityReport.from_dict(result.parity).summary())
    groups = result.per_process()
    if groups:
        mean_levels = log_process_levels(groups, "mean")
        info["samples"] = {
            "per_process": [compact(g) for g in groups],
            "iterations": [s.iterations for s in result.samples],
            "rounds_per_process": [len(g) for g in groups],  # before compacting: what percentiles rest on
            # each process's mean and its within-process log variance, from the calls in the order they
            # ran (the stored values are sorted: a mean verdict cannot be made from them)
            "means": [significant(float(x), 6) for x in np.exp(mean_levels[0])],
            "mean_log_variances": [significant(float(v), 4) for v in mean_levels[1]],
            "processes": len(groups),
            "rounds": sum(map(len, groups)),
            "stored": f"up to {MAX_STORED_SAMPLES} order statistics per process",
        }
    return info


def percentiles(result: CellResult) -> dict:
    """``p50_s``, ``p90_s``, ``p99_s`` of the pooled per-call times (None where the calls do not
    support one: harness.compare.percentiles) and ``percentiles``: what they are of, how many
    calls, and why any is missing."""
    pooled = sorted(x for group in result.per_process() for x in group)  # sorted once, for every percentile
    calls = len(pooled)
    values, missing = {}, {}
    for name, q in REPORTED:
        if supported(calls, q):
            values[f"{name}_s"] = quantile(pooled, q)
        else:
            values[f"{name}_s"] = None
            missing[name] = f"{calls} calls; needs {calls_needed(q)}"
    values["percentiles"] = {
        "of": basis([s.iterations for s in result.samples if s.round_s]),
        "calls": calls,
        "not_supported": missing,
    }
    return values


# what a compacted run keeps of each cell's extra_info (the axes are in its id; versions in the profile)
COMPACT_INFO = (
    "backend_label",
    "threads_resolved",
    "compile_s",
    "flops",
    "peak_rss_mb",
    "max_rel_err",
    "cosine_distance",
    "artifact_bytes",
)
# pytest-benchmark's stats a table of an old run shows (ops is refilled on load, from the mean)
COMPACT_STATS = ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "rounds", "iterations")
COMPACT_PROFILE = ("profile_id", "cpu", "cpu_budget", "memory_gib", "os", "python", "packages", "confinement")


def compact_result(data: dict) -> dict:
    """The run as the store keeps it once it is no longer among the newest of its profile."""
    if (data.get("infer_bench") or {}).get("compacted"):
        return data
    benchmarks = []
    for bench in data["benchmarks"]:
        info = bench.get("extra_info") or {}
        groups = process_samples(bench) or []
        slim = {k: significant(info[k]) for k in COMPACT_INFO if info.get(k) is not None}
        for name in PROCESS_METRICS:
            median = process_median(info, name)
            if median is not None:
                slim[f"{name}_median"] = significant(median)
        if info.get("machine_busy"):
            slim["machine_busy"] = True
        slim["samples"] = {
            "process_medians": [significant(statistics.median(g), 5) for g in groups],
            "rounds": (info.get("samples") or {}).get("rounds", sum(map(len, groups))),
        }
        entry = {"fullname": bench["fullname"]}  # pytest-benchmark's compare reads fullname and stats
        entry["stats"] = {k: significant(bench["stats"][k]) for k in COMPACT_STATS if k in bench["stats"]}
        entry["extra_info"] = slim
        benchmarks.append(entry)
    profile = profile_of(data) or {}
    extra = data.get("infer_bench") or {}
    return {
        "machine_info": {"infer_bench": {k: profile[k] for k in COMPACT_PROFILE if k in profile}} if profile else {},
        "commit_info": {k: v for k, v in (data.get("commit_info") or {}).items() if k in ("id", "time", "branch")},
        "datetime": data.get("datetime"),
        "version": data.get("version"),
        "benchmarks": benchmarks,
        "infer_bench": {
            "format_version": extra.get("format_version", FORMAT_VERSION),
            "compacted": True,
            **{k: extra[k] for k in ("control", "peak_fp32_gflops") if k in extra},
        },
    }


def stamp(output_json: dict) -> dict:
    """Mark a result being saved with this harness's format version."""
    output_json.setdefault("infer_bench", {})["format_version"] = FORMAT_VERSION
    return output_json


# -- reading -------------------------------------------------------------------------------------
def _times(values, where: str) -> None:
    """Timing values must be finite positive numbers; anything else is a one-line error naming where."""
    if not isinstance(values, list):
        raise ResultFileError(f"{where}: expected a list of seconds, found {type(values).__name__}")
    for i, x in enumerate(values):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
            raise ResultFileError(f"{where}[{i}] is {x!r}, not a positive number of seconds")


def _check_process_metrics(lists, where: str) -> None:
    """``extra_info.process_metrics``: an object of per-process lists, each entry null or (the
    compile-cache states) a string or (the rest) a finite number; anything else is one line naming where."""
    if lists is None:
        return
    if not isinstance(lists, dict):
        raise ResultFileError(f"{where} is not an object of per-process lists")
    for key, values in lists.items():
        if not isinstance(values, list):
            raise ResultFileError(f"{where}.{key} is not a list")
        for i, x in enumerate(values):
            if key == "compile_cache":
                ok, what = x is None or isinstance(x, str), "a state"
            else:
                ok = x is None or (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x))
                what = "a number"
                if key == "samples_per_s" and ok and x is not None and x <= 0:  # judged as its inverse
                    ok, what = False, "a positive number"
            if not ok:
                raise ResultFileError(f"{where}.{key}[{i}] is {x!r}, not {what} or null")


def check_samples(data: dict, source: str | Path) -> None:
    """Every stored sample and control measurement a verdict would read is a positive finite number,
    every per-process metric a number (or null)."""
    for bench in data.get("benchmarks") or []:
        name = bench.get("fullname", "?")
        _check_process_metrics(
            (bench.get("extra_info") or {}).get("process_metrics"), f"{source}: {name}: extra_info.process_metrics"
        )
        look = (bench.get("extra_info") or {}).get(LOOK_KEY)
        if look is not None and (isinstance(look, bool) or not isinstance(look, int) or not 1 <= look <= MAX_LOOKS):
            raise ResultFileError(
                f"{source}: {name}: extra_info.{LOOK_KEY} is {look!r}, not a look between 1 and {MAX_LOOKS}"
            )
        profile = (bench.get("extra_info") or {}).get("op_profile")
        if profile is not None:
            try:
                OpProfile.from_dict(profile)
            except ValueError as exc:
                raise ResultFileError(f"{source}: {name}: extra_info.{exc}") from None
        statistic = (bench.get("extra_info") or {}).get(STATISTIC_KEY)
        if statistic is not None and statistic not in VERDICT_STATISTICS:
            raise ResultFileError(
                f"{source}: {name}: extra_info.{STATISTIC_KEY} is {statistic!r}, not one of "
                f"{', '.join(VERDICT_STATISTICS)}"
            )
        samples = (bench.get("extra_info") or {}).get("samples") or {}
        if samples.get("process_medians") is not None:
            _times(samples["process_medians"], f"{source}: {name}: samples.process_medians")
        per_process = samples.get("per_process")
        if per_process is not None:
            if not isinstance(per_process, list):
                raise ResultFileError(f"{source}: {name}: samples.per_process is not a list")
            for p, group in enumerate(per_process):
                _times(group, f"{source}: {name}: samples.per_process[{p}]")
        raw = (bench.get("stats") or {}).get("data")
        if raw is not None:
            _times(raw, f"{source}: {name}: stats.data")
    control = (data.get("infer_bench") or {}).get("control") or {}
    if not isinstance(control, dict):
        raise ResultFileError(f"{source}: infer_bench.control is not an object")
    samples = control.get("samples", [control.get(k) for k in ("before", "after") if control.get(k)])
    if not isinstance(samples, list):
        raise ResultFileError(f"{source}: infer_bench.control.samples is not a list")
    for i, sample in enumerate(samples):
        if not isinstance(sample, dict):
            raise ResultFileError(f"{source}: infer_bench.control sample {i} is not an object")
        _times([sample.get("control_s")], f"{source}: infer_bench.control sample {i} control_s")


def migrate(data: dict, source: str | Path) -> dict:
    """Bring a loaded result to FORMAT_VERSION (in place), or refuse one from a newer harness;
    its samples are checked (``check_samples``) so that no verdict reads a null or NaN."""
    extra = data.get("infer_bench") or {}
    if not isinstance(extra, dict):
        raise ResultFileError(f"{source}: 'infer_bench' is not an object")
    version = extra.get("format_version", 1)
    if not isinstance(version, int):
        raise ResultFileError(f"{source}: 'infer_bench.format_version' is {version!r}, not an integer")
    if version > FORMAT_VERSION:
        raise ResultFileError(
            f"{source}: written by a newer infer-bench (result format {version}; this one reads up to "
            f"{FORMAT_VERSION}): upgrade infer-bench to read it"
        )
    if version == 1:  # format 2 added only the version field
        data.setdefault("infer_bench", {})["format_version"] = 2
    check_samples(data, source)
    return data


def load_result(path: str | Path) -> dict:
    """A saved result, validated and migrated; every problem is a one-line ResultFileError."""
    path = Path(path)
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(f"{path}: cannot read ({exc})") from None
    except ValueError as exc:
        raise ResultFileError(
            f"{path}: not JSON ({exc}); expected a pytest-benchmark result (--benchmark-json)"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ResultFileError(f"{path}: no 'benchmarks' list; expected a pytest-benchmark result (--benchmark-json)")
    for i, bench in enumerate(data["benchmarks"]):
        if not isinstance(bench, dict) or "fullname" not in bench or not isinstance(bench.get("stats"), dict):
            raise ResultFileError(f"{path}: benchmark #{i} lacks 'fullname' or 'stats'")
    return migrate(data, path)


def process_samples(bench: dict) -> list[list[float]] | None:
    """Per-process per-call samples: infer-bench's extra_info (a compacted run: each process's
    median, all the verdict statistics use of a process), else pytest-benchmark's raw data
    (--benchmark-save-data) as one process, else None."""
    samples = (bench.get("extra_info") or {}).get("samples") or {}
    if samples.get("per_process"):
        return [list(map(float, g)) for g in samples["per_process"] if g]
    if samples.get("process_medians"):
        return [[float(m)] for m in samples["process_medians"]]
    data = bench["stats"].get("data")
    return [list(map(float, data))] if data else None


def process_mean_levels(bench: dict) -> tuple[list[float], list[float]] | None:
    """A saved cell's per-process (log mean, its within-process log variance), computed from the
    calls in the order they ran; None where not saved (a compacted run, or one saved before)."""
    samples = (bench.get("extra_info") or {}).get("samples") or {}
    means, variances = samples.get("means"), samples.get("mean_log_variances")
    numbers = (means or []) + (variances or [])
    if not means or not isinstance(variances, list) or len(means) != len(variances):
        return None
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers):
        return None
    if min(means) <= 0 or min(variances) < 0:
        return None
    return [math.log(m) for m in means], [float(v) for v in variances]


def is_compacted(bench: dict) -> bool:
    """The saved cell keeps only its processes' medians (harness.store.results ``compact_result``)."""
    samples = (bench.get("extra_info") or {}).get("samples") or {}
    return not samples.get("per_process") and bool(samples.get("process_medians"))


def process_rounds(bench: dict) -> list[int] | None:
    """Per-process counts of the timed rounds (one call each, as for any call above 5 us) a saved
    cell's stored samples summarise; None where not recorded (the stored values then count)."""
    counts = ((bench.get("extra_info") or {}).get("samples") or {}).get("rounds_per_process")
    if isinstance(counts, list) and counts and all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        return counts
    return None


def process_median(info: dict, key: str) -> float | None:
    """The median over worker processes of one ``process_metrics`` list of a saved cell's
    extra_info (a compacted run's ``<key>_median``); None where no process has a number."""
    lists = info.get("process_metrics")
    values = lists.get(key) if isinstance(lists, dict) else None
    if not isinstance(values, list):
        kept = info.get(f"{key}_median")
        return float(kept) if isinstance(kept, (int, float)) and not isinstance(kept, bool) else None
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return float(statistics.median(numbers)) if numbers else None


def bench_gflops(bench: dict) -> float | None:
    """GFLOP/s of a saved benchmark at its median."""
    return gflops((bench.get("extra_info") or {}).get("flops"), bench["stats"].get("median"))


def profile_of(result: dict | None) -> dict | None:
    return ((result or {}).get("machine_info") or {}).get("infer_bench") or None


def peak_of(result: dict) -> tuple[float | None, str]:
    """(practical fp32 peak GFLOP/s, how it was measured) saved with a run."""
    extra = result.get("infer_bench") or {}
    return extra.get("peak_fp32_gflops"), extra.get("peak_method", "not measured")


def cell_peak(extra_info: dict, run_peak: float | None) -> float | None:
    """The peak GFLOP/s a cell's GFLOP/s is a share of: its GPU's datasheet peak at its matmul
    precision on a device target (``device.peak_gflops``, None for a GPU not in the table), else
    the run's measured CPU peak."""
    device = extra_info.get("device")
    return device.get("peak_gflops") if device else run_peak


def control_of(result: dict | None) -> dict | None:
    return ((result or {}).get("infer_bench") or {}).get("control")


def by_name(result: dict) -> dict[str, dict]:
    return {b["fullname"]: b for b in result["benchmarks"]}
