"""The sequential design behind ``--until-decided``: when to look again, at which level, and which
cells get the budget. Pure functions, no I/O; harness.plugin.session runs the processes.

**Looks.** A cell's first look is after the first pass (``first`` worker processes on the current
side: the suite's count); look k+1 comes after ``ceil(GROWTH * n_k)`` processes, at most ``MAX_LOOKS``
looks (3, 5, 8, 12, 18, 27 from 3). The schedule is fixed before any sample is seen: the data decide
only whether a cell goes on (it stops once decided) and in which order cells get the budget. Only
the current side grows: the baseline is a saved run.

**Error rate.** The verdict at look k is made at level ``alpha_k = alpha * SPENDING[k] / sum(SPENDING)``
(harness.compare.verdict.judge with that alpha). A wrong claim at look k needs that look's interval
to miss the true ratio, which happens with probability at most alpha_k whatever happened at the
looks before (each look's interval is valid for its own number of processes, and that number does
not depend on this cell's samples: the schedule, or the budget running out, which other cells'
decisions drive). Over all looks the probability of any wrong claim is therefore at most
sum(alpha_k) = alpha: Bonferroni's union bound, which needs no model of the correlation between looks
and holds whenever the run stops. Its price against an exact group-sequential boundary (Pocock's
for 6 equal looks at alpha = 0.01 is about 3.0 standard errors, against 3.1-3.3 here) is a few percent of
interval width. ``SPENDING`` gives later looks, which have more processes, a larger share. The error
rates and the power are simulated in tests/test_sequential.py (and the README's table).

**Priority.** An undecided cell's *projected look* is the first later look whose interval,
projected from the spread seen (Welch's half-width at the look's level; the baseline's processes fixed),
would be narrow enough to decide: clear 1, or fit inside the no-change band, whichever is nearer.
The interval projected is the one that keeps the verdict undecided (``Verdict.projection``): the
steady state's, or, where the steady state is unchanged but the share of slow-state processes is
not settled (identical code under bimodal noise), the interval over all processes, with its spread.
Cells are served in order of the seconds of worker time that projection costs (closest to a decision
per second first; cells not projected to decide last), one look at a time. A cell whose baseline is
too noisy to ever decide (the projection fails even with unlimited current processes, and the
baseline has too few processes for machine states to be told apart later) gets nothing, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from harness.compare.stats import MIN_PROCESSES_FOR_STATES, welch_half_width
from harness.compare.verdict import Verdict

DEFAULT_BUDGET_MINUTES = 10.0
LOOK_KEY = "until_decided_look"  # a saved cell's extra_info: the look its verdict is made at
MAX_LOOKS = 6
GROWTH = 1.5
SPENDING = (1, 1, 2, 2, 3, 3)  # relative share of alpha at looks 1..MAX_LOOKS
MIN_SPREAD = 0.005  # the least between-process sd (log) a projection assumes


def look_processes(first: int, looks: int = MAX_LOOKS) -> list[int]:
    """Current-side processes at each look: ``first``, then x GROWTH (rounded up, at least +1)."""
    counts = [max(1, int(first))]
    while len(counts) < looks:
        counts.append(max(counts[-1] + 1, math.ceil(GROWTH * counts[-1])))
    return counts


def look_alpha(alpha: float, look: int) -> float:
    """The significance level of look ``look`` (1-based): its share of ``alpha``."""
    if not 1 <= look <= MAX_LOOKS:
        raise ValueError(f"look {look} is outside 1..{MAX_LOOKS}")
    return alpha * SPENDING[look - 1] / sum(SPENDING)


DECIDED = frozenset({"regression", "minor regression", "improvement", "minor improvement", "unchanged"})


@dataclass(frozen=True)
class Standing:
    """One cell after a look."""

    key: object
    verdict: Verdict  # judged at this look's level
    look: int
    first: int  # processes of the first look (the schedule's start)
    processes: int  # current-side processes so far
    cost_s: float  # wall seconds per worker process (measured)

    @property
    def decided(self) -> bool:
        return self.verdict.verdict in DECIDED


def projection(s: Standing, alpha: float) -> tuple[int | None, str]:
    """(the first later look projected to decide, or None; why not). From the interval that keeps
    the verdict undecided (``Verdict.projection``: the steady state's, or the mixture's when the
    steady state is unchanged but the share of slow-state processes is unsettled), the spread each
    side showed in it, the share of processes it uses kept on the current side, and the baseline's
    processes fixed."""
    v = s.verdict
    p = v.projection
    if p is None or min(p.counts) < 2:
        return None, "too few steady processes to project from"
    margin = p.margin(v.threshold)
    if p.interval == "mixture" and margin <= 0:
        return None, "over all processes the ratio lies outside the no-change band: no look narrows it into it"
    if margin < 1e-3:
        return None, "the estimate sits on a decision boundary"
    kb, share = p.counts[0], p.share[1]
    spread = tuple(max(x, MIN_SPREAD) for x in p.spread)  # two equal medians are not a noiseless side
    counts = look_processes(s.first)
    for look in range(s.look + 1, MAX_LOOKS + 1):
        kept_c = max(2, int(counts[look - 1] * share))
        half = float(welch_half_width(spread, (np.array([kb]), np.array([kept_c])), 1 - look_alpha(alpha, look))[0])
        if half < margin:
            return look, ""
    limit = float(welch_half_width(spread, (np.array([kb]), np.array([10**6])), 1 - look_alpha(alpha, MAX_LOOKS))[0])
    # with fewer baseline processes than machine states need, the spread seen is the one every later
    # look will use; with more, later looks may split states and see a smaller one
    if limit >= margin and p.processes[0] < MIN_PROCESSES_FOR_STATES:
        return None, (
            f"the baseline's {kb} processes alone leave ±{math.expm1(limit):.0%}: no number of current "
            f"processes decides it; record the baseline with more processes (--processes or --until-decided)"
        )
    what = "the share of slow-state processes" if p.interval == "mixture" else "it"
    return None, f"not projected to decide {what} by the last look ({counts[-1]} processes)"


def plan_round(standings: list[Standing], alpha: float, budget_s: float) -> tuple[list[tuple[object, int]], dict]:
    """The next round: (key, processes to add) for the undecided cells whose next look fits in
    ``budget_s``, closest to a decision per second first; and key -> why a cell gets nothing."""
    ranked, why = [], {}
    for s in standings:
        if s.decided:
            continue
        if s.look >= MAX_LOOKS:
            why[s.key] = f"undecided at the last look ({s.processes} processes)"
            continue
        target, reason = projection(s, alpha)
        if target is None and "baseline" in reason:
            why[s.key] = reason
            continue
        counts = look_processes(s.first)
        add = counts[s.look] - s.processes
        to_decision = (counts[(target or MAX_LOOKS) - 1] - s.processes) * s.cost_s
        # projected-to-decide cells first, each group by the seconds to its projected decision
        ranked.append(((target is None, to_decision), s.key, add, s.cost_s, reason))
    if any(not unprojected for (unprojected, _), *_ in ranked):  # the budget goes where a decision is projected
        for (unprojected, _), key, *_ in ranked:
            if unprojected:
                why[key] = "waiting: cells projected to decide go first"
        ranked = [r for r in ranked if not r[0][0]]
    plan, spent = [], 0.0
    for _, key, add, cost, reason in sorted(ranked, key=lambda r: r[0]):
        if spent + add * cost > budget_s:
            why[key] = "budget spent" + (f" ({reason})" if reason else "")
            continue
        plan.append((key, add))
        spent += add * cost
    return plan, why


@dataclass
class AdaptationLog:
    """What ``--until-decided`` did: per cell (by key), the verdict at the first look and at its
    last, the looks, processes and worker seconds it was given, and why it stayed undecided."""

    budget_s: float
    spent_s: float = 0.0
    rounds: int = 0
    note: str = ""  # why nothing was adapted, when nothing could be
    first: dict = field(default_factory=dict)  # key -> verdict at look 1
    final: dict = field(default_factory=dict)  # key -> verdict at its last look
    looks: dict = field(default_factory=dict)  # key -> its last look
    processes: dict = field(default_factory=dict)  # key -> current-side processes at the end
    added: dict = field(default_factory=dict)  # key -> processes added after the first pass
    seconds: dict = field(default_factory=dict)  # key -> wall seconds of those processes
    why: dict = field(default_factory=dict)  # key -> why it is still undecided

    def decided(self, which: dict) -> int:
        return sum(v in DECIDED for v in which.values())

    def to_dict(self) -> dict:
        return {
            "budget_s": self.budget_s,
            "spent_s": self.spent_s,
            "rounds": self.rounds,
            "note": self.note,
            "decided_at_first_look": self.decided(self.first),
            "decided_at_end": self.decided(self.final),
            "cells": {
                str(key): {
                    "first": self.first.get(key),
                    "final": self.final.get(key),
                    "look": self.looks.get(key),
                    "processes": self.processes.get(key),
                    "added": self.added.get(key, 0),
                    "seconds": self.seconds.get(key, 0.0),
                    "undecided_because": self.why.get(key),
                }
                for key in self.first
            },
        }
