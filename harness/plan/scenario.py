"""The scenario axis: how a cell's model is driven while it is timed (after MLPerf LoadGen's
SingleStream, Offline and Server).

- ``latency`` (the default; adds nothing to a cell id): one stream, one call after another; the
  samples are single calls (harness.run.timing).
- ``throughput`` (id ``throughput``, ``throughput-s4``): ``streams`` concurrent streams, each its
  own compiled instance (session, VM, module) driven by its own thread, back to back over the
  cell's batch for a timed window; reports samples/s. Streams default to the effective CPUs
  divided by the cell's threads (at least 1); more streams than that (threads x streams above
  the effective CPUs) are refused unless the scenario says ``oversubscribe``.
- ``server`` (id ``server-q200``, ``server-p99-10ms``, ``server``): queries arrive as a Poisson
  process; each stream takes the next query once it is free and runs it, no earlier than its
  arrival. Latency is counted from the query's *scheduled* arrival (a query that waits behind a
  slow one waits on the clock: no coordinated omission). ``qps=N`` holds a target rate and
  reports the achieved rate and p99; without ``qps`` it finds the highest rate whose p99 stays
  under the bound (``p99=10ms``, or ``BOUND_FACTOR`` times the unloaded median), like LoadGen's
  FindPeakPerformance.

Text form: ``kind[:key=value[:key=value]]`` (colons: a comma separates axis values), keys
``streams``, ``qps``, ``p99`` (with ms or us), ``oversubscribe``. ``Scenario.statistic`` is what
a verdict judges by default: the per-process mean latency under load for throughput (a
process's samples/s is its streams times the batch over that mean), p99 for a server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("latency", "throughput", "server")
DEFAULT_SCENARIO = "latency"
BOUND_FACTOR = 5.0  # server without p99=: the p99 bound is this many unloaded medians
# timing windows (harness.run.load): LoadGen asks for 10 s and 100 (SingleStream 1024, Server 270k)
# queries for submissions; a nightly matrix of 100+ cells on 2 cores cannot. A window of
# WINDOW_S and at least MIN_QUERIES queries gives a p99 supported by 5 calls beyond it
# (harness.compare.percentiles) for any model faster than WINDOW_S / MIN_QUERIES = 6 ms; slower
# ones run until MIN_QUERIES, at most MAX_WINDOW_S, and say when p99 is not supported.
WINDOW_S = 3.0
MIN_QUERIES = 500
MAX_WINDOW_S = 30.0
PEAK_STEPS = 6  # FindPeakPerformance: rates tried by bisection after the bracketing
PEAK_WINDOW_S = 1.0  # each tried rate's window (the found rate then runs the full window)
CONFIRM_RUNS = 3  # find-peak: full runs at lower rates after the found rate's full run missed the bound
CONFIRM_FACTOR = 0.85  # each such run's rate, times the last


class ScenarioError(ValueError):
    pass


def _number(key: str, text: str) -> float:
    units = {"ms": 1e-3, "us": 1e-6, "s": 1.0} if key == "p99" else {}
    scale = 1.0
    for unit, factor in units.items():
        if text.endswith(unit):
            text, scale = text[: -len(unit)], factor
            break
    try:
        value = float(text) * scale
    except ValueError:
        raise ScenarioError(f"scenario {key}={text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ScenarioError(f"scenario {key}={text!r} must be positive")
    return value


@dataclass(frozen=True)
class Scenario:
    kind: str = DEFAULT_SCENARIO
    streams: int | None = None  # None: effective CPUs // threads, at least 1
    qps: float | None = None  # server: the target rate; None: find the peak under p99_s
    p99_s: float | None = None  # server find-peak bound; None: BOUND_FACTOR x the unloaded median
    oversubscribe: bool = False

    def _settings(self) -> list[tuple[str, str]]:
        """(text, id part) of each setting given, in one order."""
        settings = []
        if self.streams is not None:
            settings.append((f"streams={self.streams}", f"s{self.streams}"))
        if self.qps is not None:
            settings.append((f"qps={self.qps:g}", f"q{self.qps:g}"))
        if self.p99_s is not None:
            settings.append((f"p99={self.p99_s * 1e3:g}ms", f"p99-{self.p99_s * 1e3:g}ms"))
        if self.oversubscribe:
            settings.append(("oversubscribe", "over"))
        return settings

    @property
    def text(self) -> str:
        return ":".join([self.kind, *(text for text, _ in self._settings())])

    @property
    def id_part(self) -> str | None:
        """What the scenario adds to a cell id (None for the default: ids stay as they were)."""
        if self.kind == DEFAULT_SCENARIO:
            return None
        return "-".join([self.kind, *(part for _, part in self._settings())])

    @property
    def statistic(self) -> str | None:
        """The verdict statistic this scenario defaults to (None: the harness's default)."""
        return {"throughput": "mean", "server": "p99"}.get(self.kind)

    def streams_for(self, threads: int | None, effective_cpus: float) -> int:
        """Streams to run: as asked, or as many as the CPUs hold at ``threads`` each (``threads``
        None: the runtime's own choice, taken to be every effective CPU)."""
        if self.streams is not None:
            return self.streams
        return max(1, int(effective_cpus // _per_stream(threads, effective_cpus)))

    def oversubscription(self, threads: int | None, effective_cpus: float) -> str | None:
        """Why these streams oversubscribe the CPUs (None: they fit, or the scenario allows it)."""
        streams, each = self.streams_for(threads, effective_cpus), _per_stream(threads, effective_cpus)
        if self.oversubscribe or streams * each <= effective_cpus + 1e-9:
            return None
        return (
            f"{streams} streams x {each:g} threads exceed the {effective_cpus:g} effective CPUs; "
            f"use fewer streams or threads, or add ':oversubscribe' to the scenario"
        )


def _per_stream(threads: int | None, effective_cpus: float) -> float:
    """The CPUs one stream's threads take: its count, or every effective CPU where the runtime chooses."""
    return max(1, threads) if threads is not None else max(1.0, effective_cpus)


def parse_scenario(text: str | Scenario) -> Scenario:
    """``latency``, ``throughput[:streams=N][:oversubscribe]``, ``server[:qps=R|:p99=Xms][:streams=N]``."""
    if isinstance(text, Scenario):
        return text
    kind, _, rest = str(text).strip().lower().partition(":")
    if kind not in KINDS:
        raise ScenarioError(f"scenario {text!r}: the kind is one of {', '.join(KINDS)}")
    values: dict = {}
    for item in filter(None, (p.strip() for p in rest.split(":"))):
        key, sep, value = item.partition("=")
        if key == "oversubscribe" and not sep:
            values["oversubscribe"] = True
        elif key == "streams" and sep:
            streams = _number(key, value)
            if streams != int(streams):
                raise ScenarioError(f"scenario {text!r}: streams={value} is not a whole number")
            values["streams"] = int(streams)
        elif key == "qps" and sep:
            values["qps"] = _number(key, value)
        elif key == "p99" and sep:
            values["p99_s"] = _number(key, value)
        else:
            raise ScenarioError(
                f"scenario {text!r}: unknown setting {item!r} (streams=N, qps=R, p99=Xms, oversubscribe)"
            )
    if kind == "latency" and values:
        raise ScenarioError(f"scenario {text!r}: latency is one stream, one call at a time; it takes no settings")
    if kind == "throughput" and ({"qps", "p99_s"} & set(values)):
        raise ScenarioError(f"scenario {text!r}: qps and p99 belong to the server scenario")
    if kind == "server" and "qps" in values and "p99_s" in values:
        raise ScenarioError(f"scenario {text!r}: give qps (a fixed rate) or p99 (find the peak under it), not both")
    return Scenario(kind, **values)


def poisson_arrivals(qps: float, count: int, seed: int = 0) -> list[float]:
    """``count`` arrival times (seconds from the start) of a Poisson process of rate ``qps``: the
    same schedule for the same seed, so two runs offer the same load."""
    import random

    rng = random.Random(seed)
    t, times = 0.0, []
    for _ in range(count):
        t += rng.expovariate(qps)
        times.append(t)
    return times
