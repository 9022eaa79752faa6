"""Verdicts on what a cell costs besides its latency: compile time, first inference, the model's
memory, the compiled artifact's size and its numerical error against float64. Pure functions on two
saved cells' ``extra_info`` (harness.store.results), no I/O.

``METRICS`` are the names ``--fail-on`` takes (latency is judged in harness.compare.verdict; only
a ``regression`` of a metric named there fails a gate, a ``minor regression`` too with
``--fail-on-minor``). Every default below is defined once, in ``DEFAULT_THRESHOLDS`` and the
constants it is built from; ``--metric-thresholds`` (``parse_metric_thresholds``) overrides them.

**Measured once per worker process** (``extra_info.process_metrics``, one value per process):
``throughput`` (a throughput or server scenario's samples/s in that process, harness.run.load;
judged as its inverse, the cost of a sample, so that a fall is the regression, and shown as the
ratio of samples/s; threshold 5% like latency's, no floor, least spread 0.2%; a latency-scenario
cell has none: its latency verdict is its throughput's), ``compile`` (seconds of the backend's
``compile`` call), ``first-inference`` (seconds of one inference right after it) and ``memory``
(the model's resident memory, MiB). These are judged *across processes*, like latency: Welch's t on
the log per-process values (harness.compare.stats ``welch``), the interval at 1 - alpha, and with t
the metric's threshold and (lo, hi) the interval of the ratio current/baseline:

- inconclusive      : fewer than 2 processes with a value on a side (between-process noise unseen)
- regression        : lo > 1 and the ratio >= 1 + t
- minor regression  : lo > 1 and the ratio < 1 + t
- improvement, minor improvement: the mirror image (hi < 1)
- unchanged         : the interval inside (1/(1+t), 1+t)
- inconclusive      : anything else
- not compared      : a side has no values (a result saved before they were recorded), or no
                      compile-cache state in common (below); the note says which

Each has two floors. An *absolute floor*: values below it count as the floor, so that changes
nobody pays for are not ratios (a 2 MiB -> 3 MiB model is not +50%; a 20 us eager "compile" that
takes 40 us is not +100%). A *least per-process spread* (the variance floor of ``welch``): identical
values do not give a zero-width interval.

| metric          | threshold | absolute floor | least spread per process                       |
|-----------------|-----------|----------------|------------------------------------------------|
| compile         | 25%       | 50 ms          | 1% (a one-off timing: scheduling, page cache)  |
| first-inference | 25%       | 1 ms           | 1%                                             |
| memory          | 10%       | 16 MiB         | 0.25 MiB (allocator and page granularity)      |

Floors: a compile under 50 ms is not felt by anyone (eager torch's is 0.1 ms, a cache hit's load
tens of ms, both moving with the page cache); a first inference under 1 ms is lazy-initialisation
noise; under 16 MiB a model's resident memory moves with allocator arenas and lazily loaded
libraries. The processes of one cell differed by up to 0.1 MiB of model memory here (torch, ORT,
TVM on a tiny model), hence 0.25 MiB.

Thresholds: compile and first inference are one-off costs whose process-to-process noise is
larger than a timing loop's (a cache's state, the page cache, lazy initialisation): 25% is a change
a user notices at start-up; memory is steadier, and 10% of a model's memory is worth knowing.

**Like with like.** A process whose compile-cache state (``compile_cache``: hit, miss, off; a
``rebuilt`` entry counts as a miss) differs did different work: a miss builds, a hit loads, and a
process that built also holds the compiler's memory. All three per-process metrics compare only
processes of one state, the state both sides have most processes of (the larger of the two
smaller counts), and the note says which: ``cache hit, 2 vs 2 processes``. A hit is never compared
with a miss; no state in common is ``not compared``.

**One deterministic value per side:**

- ``size``: ``artifact_bytes``, the size on disk of what the backend built (``artifact`` says what
  it is; two different kinds are not compared). Regression when current/baseline > 1 + t
  (default 5%: the same build gives the same bytes, and a library or graph 5% larger is a real
  change in what was generated), improvement when < 1/(1 + t), else unchanged.
- ``accuracy`` (accuracy drift): the max relative error against float64 (``max_rel_err``, from
  parity) moving past ``ACCURACY_FACTOR`` (10) times the baseline's (ratio > 10): a regression even
  while the cell still passes its parity budget (which allows 10x the fp32 reference's error: a
  factor of 10 is what separates a real change of numerics, a new kernel or precision, from the
  run-to-run differences of reduction orders). Both errors are floored at float32's resolution
  (``ERROR_FLOOR``, 1.19e-7): below it an error is rounding, and a tiny baseline would make
  rounding noise a regression. The mirror (a tenth or less) is an improvement. The cosine distance
  to float64 (``cosine_distance``) is checked alike, with the factor squared and the floor
  ``ERROR_FLOOR`` squared over 2 (a cosine distance grows as the square of the error); it can only
  add a regression. ``threshold`` holds the factor as a ratio threshold (factor - 1, default 9).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np

from harness.compare.stats import welch
from harness.compare.verdict import DEFAULT_THRESHOLD, VERDICTS
from harness.store.results import process_median

METRICS = ("latency", "throughput", "compile", "first-inference", "memory", "size", "accuracy")
DEFAULT_FAIL_ON = ("latency", "throughput")
NOT_COMPARED = "not compared"
METRIC_VERDICTS = tuple(v for v in VERDICTS if v not in ("new", "missing")) + (NOT_COMPARED,)

ACCURACY_FACTOR = 10.0  # the error moving past this factor of the baseline's is accuracy drift
ERROR_FLOOR = float(np.finfo(np.float32).eps)  # 1.19e-7: relative errors below are float32 rounding
COSINE_FLOOR = ERROR_FLOOR**2 / 2  # the cosine distance of an error of ERROR_FLOOR
DEFAULT_THRESHOLDS = {
    "throughput": DEFAULT_THRESHOLD,  # as latency's
    "compile": 0.25,
    "first-inference": 0.25,
    "memory": 0.10,
    "size": 0.05,
    "accuracy": ACCURACY_FACTOR - 1,  # as a ratio threshold: current/baseline >= 1 + 9
}
METRIC_THRESHOLDS_KEY = "metric_thresholds"  # a saved cell's extra_info: the --metric-thresholds it ran with
METRIC_THRESHOLDS_HELP = (
    "thresholds of the verdicts beyond latency, overriding the defaults "
    + ",".join(f"{name}={value:g}" for name, value in DEFAULT_THRESHOLDS.items())
    + ", e.g. compile=0.5,memory=0.2 (accuracy's is its error factor less one; latency's is its own option)"
)


@dataclass(frozen=True)
class ProcessMetric:
    """A metric measured once per worker process: the list in ``extra_info.process_metrics`` it is
    read from, its unit, its absolute floor and its least per-process spread (relative, and
    absolute in the unit: the larger applies)."""

    metric: str
    key: str
    unit: str
    floor: float
    relative_sd: float = 0.0
    absolute_sd: float = 0.0
    higher_is_better: bool = False  # throughput: a fall is the regression; ratios stay current/baseline


PROCESS_METRICS = (
    ProcessMetric("throughput", "samples_per_s", "samples/s", floor=0.0, relative_sd=0.002, higher_is_better=True),
    ProcessMetric("compile", "compile_s", "s", floor=0.05, relative_sd=0.01),
    ProcessMetric("first-inference", "first_inference_s", "s", floor=0.001, relative_sd=0.01),
    ProcessMetric("memory", "model_rss_mb", "MiB", floor=16.0, absolute_sd=0.25),
)


class MetricNameError(ValueError):
    pass


def parse_fail_on(text: str | None) -> tuple[str, ...]:
    """'latency,memory' -> ('latency', 'memory'); None -> DEFAULT_FAIL_ON; 'all' -> every metric."""
    if text is None:
        return DEFAULT_FAIL_ON
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return METRICS
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise MetricNameError(
            f"--fail-on {text!r}: {'unknown ' + ', '.join(unknown) if unknown else 'empty'}; "
            f"use a comma list of {', '.join(METRICS)} (or all)"
        )
    return tuple(dict.fromkeys(names))


def parse_metric_thresholds(text: str | None) -> dict[str, float]:
    """'compile=0.5,memory=0.2' -> {'compile': 0.5, 'memory': 0.2}: thresholds that override
    ``DEFAULT_THRESHOLDS`` (None -> none). A value is the ratio's excess as a fraction, as latency's
    (0.5: 50% worse); accuracy's is its error factor less one (9: ten times the baseline's error).
    Latency's threshold has its own option; a bad entry raises MetricNameError, naming it."""
    thresholds: dict[str, float] = {}
    for entry in (e.strip() for e in (text or "").split(",")):
        if not entry:
            continue
        name, equals, value = (part.strip() for part in entry.partition("="))
        if name not in DEFAULT_THRESHOLDS:
            hint = " (latency's is --regression-threshold / compare --threshold)" if name == "latency" else ""
            raise MetricNameError(
                f"--metric-thresholds {text!r}: {name!r} is not a metric with a threshold{hint}; "
                f"use NAME=FRACTION with NAME one of {', '.join(DEFAULT_THRESHOLDS)}"
            )
        if name in thresholds:
            raise MetricNameError(f"--metric-thresholds {text!r}: {name} is given twice; give each metric once")
        try:
            threshold = float(value)
        except ValueError:
            threshold = -1.0
        if not equals or not (math.isfinite(threshold) and threshold >= 0):
            raise MetricNameError(
                f"--metric-thresholds {text!r}: {entry!r} is not NAME=FRACTION with a fraction >= 0 "
                f"(e.g. {name}=0.5: 50% worse; default {DEFAULT_THRESHOLDS[name]:g})"
            )
        thresholds[name] = threshold
    if text is not None and not thresholds:
        raise MetricNameError(f"--metric-thresholds {text!r}: empty; use e.g. compile=0.5,memory=0.2")
    return thresholds


@dataclass
class MetricVerdict:
    metric: str
    verdict: str  # one of METRIC_VERDICTS
    ratio: float | None = None  # current / baseline as judged (floored values; medians for one value per side)
    low: float | None = None  # its interval at 1 - alpha (None: one deterministic value per side)
    high: float | None = None
    baseline: float | None = None  # the baseline's median, in ``unit`` (as measured, not floored)
    current: float | None = None
    unit: str = ""
    threshold: float = 0.0  # the practical effect: 1 + threshold is the ratio a regression must reach (pass)
    note: str = ""
    processes: tuple[int, int] | None = None  # processes judged (baseline, current)
    p_value: float | None = None  # Welch's two-sided, across processes

    def to_dict(self) -> dict:
        return asdict(self)


def cache_state(status: str | None) -> str:
    """A process's compile-cache state, for comparing like with like: hit, miss (a rebuilt entry
    was built, like a miss), off, or 'no cache' (a backend without one)."""
    if not status:
        return "no cache"
    word = re.match(r"[a-z]+", status)
    state = word.group() if word else status
    return "miss" if state == "rebuilt" else state


def _processes(n: int) -> str:
    return f"{n} process" + ("" if n == 1 else "es")


def _per_process(info: dict, spec: ProcessMetric) -> list[tuple[str, float]] | None:
    """(cache state, value) of each process with a finite value; None when the side has no list."""
    lists = info.get("process_metrics")
    values = lists.get(spec.key) if isinstance(lists, dict) else None
    if not isinstance(values, list):
        return None
    states = lists.get("compile_cache")
    states = states if isinstance(states, list) and len(states) == len(values) else [None] * len(values)
    return [
        (cache_state(s if isinstance(s, str) else None), float(v))
        for s, v in zip(states, values)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]


def _like_with_like(base: list[tuple[str, float]], cur: list[tuple[str, float]]) -> tuple[str | None, str]:
    """The cache state to compare (both sides have it; the most processes on the smaller side,
    then in all) and the note saying so; None with the reason when no state is common."""
    count_b, count_c = ({s: sum(1 for t, _ in side if t == s) for s, _ in side} for side in (base, cur))
    common = sorted(set(count_b) & set(count_c))
    if not common:
        have = "; ".join(
            f"{name} " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            for name, counts in (("baseline", count_b), ("current", count_c))
        )
        return None, f"no compile-cache state in common ({have}): a hit is never compared with a miss"
    state = max(common, key=lambda s: (min(count_b[s], count_c[s]), count_b[s] + count_c[s]))
    left = [
        f"{s} {count_b.get(s, 0)} vs {count_c.get(s, 0)}" for s in sorted(set(count_b) | set(count_c)) if s != state
    ]
    where = "no compile cache" if state == "no cache" else f"cache {state}"
    note = f"{where}, {count_b[state]} vs {_processes(count_c[state])}"
    return state, note + (f" (left out: {', '.join(left)})" if left else "")


def judge_process_metric(
    spec: ProcessMetric, baseline_info: dict, current_info: dict, alpha: float, threshold: float
) -> MetricVerdict:
    """One per-process metric of two cells, across processes (see the module docstring)."""
    verdict = MetricVerdict(spec.metric, NOT_COMPARED, unit=spec.unit, threshold=threshold)
    base, cur = _per_process(baseline_info, spec), _per_process(current_info, spec)
    for name, side in (("baseline", base), ("current result", cur)):
        if side is None:
            verdict.note = f"no per-process {spec.key} in the {name} (saved before they were recorded)"
            return verdict
        if not side:
            verdict.note = f"no process of the {name} measured {spec.key} (none is measured on an RPC device)"
            return verdict
    state, note = _like_with_like(base, cur)
    if state is None:
        verdict.note = note
        return verdict
    b = np.array([v for s, v in base if s == state])
    c = np.array([v for s, v in cur if s == state])
    verdict.baseline, verdict.current = float(np.median(b)), float(np.median(c))
    verdict.processes = (b.size, c.size)
    notes = [note]
    if min(b.size, c.size) < 2:
        verdict.verdict = "inconclusive"
        notes.append("fewer than 2 processes on a side: between-process noise unseen; use --processes 3 or more")
        verdict.note = "; ".join(notes)
        return verdict
    fb, fc = np.maximum(b, spec.floor), np.maximum(c, spec.floor)
    if (b < spec.floor).any() or (c < spec.floor).any():
        notes.append(f"values below {spec.floor:g} {spec.unit} count as {spec.floor:g}")

    def least_variance(x: np.ndarray) -> float:
        return max(spec.relative_sd, spec.absolute_sd / float(np.median(x))) ** 2

    if spec.higher_is_better:  # judged as the cost per sample (1 / throughput): its rise is the regression
        fb, fc = 1.0 / fb, 1.0 / fc
    interval = welch(np.log(fb), np.log(fc), 1 - alpha, (least_variance(fb), least_variance(fc)))
    up = math.log1p(threshold)
    if interval.low > 0:
        verdict.verdict = "regression" if interval.diff >= up else "minor regression"
    elif interval.high < 0:
        verdict.verdict = "improvement" if interval.diff <= -up else "minor improvement"
    elif -up < interval.low and interval.high < up:
        verdict.verdict = "unchanged"
    else:
        verdict.verdict = "inconclusive"
    verdict.ratio, verdict.low, verdict.high = interval.ratio
    if spec.higher_is_better:
        verdict.ratio, verdict.low, verdict.high = 1 / verdict.ratio, 1 / verdict.high, 1 / verdict.low
    verdict.p_value = interval.p_value
    allocator = [process_median(info, "allocator_mb") for info in (baseline_info, current_info)]
    if spec.metric == "memory" and None not in allocator:
        notes.append(f"runtime allocator {allocator[0]:.1f} -> {allocator[1]:.1f} MiB")
    verdict.note = "; ".join(notes)
    return verdict


def _one_value(info: dict, key: str) -> float | None:
    value = info.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _by_ratio(verdict: MetricVerdict, ratio: float, threshold: float) -> MetricVerdict:
    """One value per side: regression past 1 + threshold, improvement below its inverse."""
    verdict.ratio = ratio
    if ratio > 1 + threshold:
        verdict.verdict = "regression"
    elif ratio < 1 / (1 + threshold):
        verdict.verdict = "improvement"
    else:
        verdict.verdict = "unchanged"
    return verdict


def judge_size(baseline_info: dict, current_info: dict, threshold: float) -> MetricVerdict:
    """``artifact_bytes`` of two cells (see the module docstring)."""
    verdict = MetricVerdict("size", NOT_COMPARED, unit="bytes", threshold=threshold)
    b, c = _one_value(baseline_info, "artifact_bytes"), _one_value(current_info, "artifact_bytes")
    verdict.baseline, verdict.current = b, c
    kinds = [info.get("artifact") for info in (baseline_info, current_info)]
    if b is None or c is None or b <= 0 or c <= 0:
        side, kind = ("baseline", kinds[0]) if b is None or b <= 0 else ("current result", kinds[1])
        verdict.note = f"no artifact size in the {side}" + (f" ({kind})" if kind else "")
        return verdict
    if None not in kinds and kinds[0] != kinds[1]:
        verdict.note = f"different artifacts: {kinds[0]} in the baseline, {kinds[1]} now"
        return verdict
    verdict.note = kinds[1] or kinds[0] or ""
    return _by_ratio(verdict, c / b, threshold)


def judge_accuracy(baseline_info: dict, current_info: dict, threshold: float) -> MetricVerdict:
    """Accuracy drift of two cells: ``max_rel_err``, and ``cosine_distance`` for regressions (see
    the module docstring)."""
    verdict = MetricVerdict("accuracy", NOT_COMPARED, unit="max rel err", threshold=threshold)
    b, c = _one_value(baseline_info, "max_rel_err"), _one_value(current_info, "max_rel_err")
    verdict.baseline, verdict.current = b, c
    if b is None or c is None:
        verdict.note = f"no parity error in the {'baseline' if b is None else 'current result'}"
        return verdict
    notes = []
    if min(b, c) < ERROR_FLOOR:
        notes.append(f"errors below float32's resolution {ERROR_FLOOR:.3g} count as it")
    _by_ratio(verdict, max(c, ERROR_FLOOR) / max(b, ERROR_FLOOR), threshold)
    cb, cc = _one_value(baseline_info, "cosine_distance"), _one_value(current_info, "cosine_distance")
    if cb is not None and cc is not None:
        cosine_ratio = max(cc, COSINE_FLOOR) / max(cb, COSINE_FLOOR)
        notes.append(f"cosine distance {cb:.3g} -> {cc:.3g}")
        if verdict.verdict != "regression" and cosine_ratio >= (1 + threshold) ** 2:
            verdict.verdict = "regression"
            notes.append(f"the cosine distance grew {cosine_ratio:.3g}x, past {(1 + threshold) ** 2:g}x")
    verdict.note = "; ".join(notes)
    return verdict


def judge_metrics(
    baseline_info: dict, current_info: dict, alpha: float, thresholds: dict[str, float] | None = None
) -> dict[str, MetricVerdict]:
    """Every metric but latency, of two cells' ``extra_info``, in ``METRICS`` order. ``thresholds``
    (metric -> threshold) override ``DEFAULT_THRESHOLDS``."""
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    verdicts = {
        spec.metric: judge_process_metric(spec, baseline_info, current_info, alpha, limits[spec.metric])
        for spec in PROCESS_METRICS
        if spec.metric != "throughput" or process_median(current_info, spec.key) is not None
    }
    verdicts.setdefault(
        "throughput",
        MetricVerdict(
            "throughput",
            NOT_COMPARED,
            unit="samples/s",
            threshold=limits["throughput"],
            note="latency scenario (one stream): its latency verdict is its throughput's",
        ),
    )
    verdicts["size"] = judge_size(baseline_info, current_info, limits["size"])
    verdicts["accuracy"] = judge_accuracy(baseline_info, current_info, limits["accuracy"])
    return {name: verdicts[name] for name in METRICS if name in verdicts}
