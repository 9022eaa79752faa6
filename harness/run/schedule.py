"""In which order worker processes run: every cell's processes interleaved across the run.

Round 1 runs every cell's first worker (which also checks parity), round 2 every cell's second,
and so on. Machine states here last for seconds to minutes (three consecutive processes once all
ran 30% slow); interleaving spreads a cell's processes over the whole run, so one slow stretch
cannot shift all of them. A cell whose worker fails gets no further processes."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace

from harness.compare.percentiles import DEFAULT_STATISTIC
from harness.plan.cell import Cell
from harness.run.launcher import DEFAULT_TIMEOUT_S, build_request, run_in_process, run_inline
from harness.run.protocol import CellResult, Request

Progress = Callable[[Hashable, Cell, int, int, CellResult], None]


@dataclass(frozen=True)
class PlannedCell:
    key: Hashable  # the caller's name for it (the plugin uses the test's node id)
    cell: Cell
    processes: int = 1  # worker processes whose timings are pooled (the first pass)
    request: dict = field(default_factory=dict)  # build_request keyword arguments (timing, parity, measure)
    threshold: float | None = None  # the cell's regression threshold (what --until-decided judges with)
    statistic: str = DEFAULT_STATISTIC  # what its verdict judges of each process (harness.compare.percentiles)


def build_requests(plan: list[PlannedCell]) -> dict[Hashable, Request]:
    return {p.key: build_request(p.cell, **p.request) for p in plan}


def run_rounds(
    requests: dict[Hashable, Request],
    results: dict[Hashable, CellResult],
    done: dict[Hashable, int],
    targets: dict[Hashable, int],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: Progress | None = None,
    start: Callable[[Request, float], CellResult] = run_in_process,
    after_round: Callable[[int], None] | None = None,
    keep_going: Callable[[], bool] = lambda: True,
) -> None:
    """Bring each cell's worker processes up to ``targets[key]`` (``done[key]`` so far; both updated
    in place), interleaved: each pass gives every cell one more process, in the order of ``targets``.
    A cell's first process checks parity; a cell whose worker failed gets no more. ``after_round(i)``
    runs between passes; ``keep_going()`` is asked before each process (a budget)."""
    passes = max((targets[k] - done.get(k, 0) for k in targets), default=0)
    for index in range(1, passes + 1):
        if index > 1 and after_round:
            after_round(index - 1)
        for key, target in targets.items():
            have = done.get(key, 0)
            if have >= target or (have and not results[key].ok) or not keep_going():
                continue
            request = requests[key]
            if have == 0:
                results[key] = start(request, timeout_s)
            elif request.measure:
                later = start(replace(request, check_parity=False), timeout_s)
                results[key] = results[key].merge(later, have + 1, target)
            else:
                continue
            done[key] = have + 1
            if progress:
                progress(key, request.cell, have + 1, target, results[key])


def run_cells(
    plan: list[PlannedCell],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: Progress | None = None,
    start: Callable[[Request, float], CellResult] = run_in_process,
    after_round: Callable[[int], None] | None = None,
) -> dict[Hashable, CellResult]:
    """Run the plan's worker processes interleaved (see the module docstring); key -> result.
    ``start`` runs one worker process (replaceable to test the order without processes);
    ``after_round(index)`` runs between rounds (the drift control), not after the last one."""
    results: dict[Hashable, CellResult] = {}
    targets = {p.key: p.processes for p in plan}
    run_rounds(build_requests(plan), results, {}, targets, timeout_s, progress, start, after_round)
    return results


def run_cell(
    cell: Cell, launcher: str = "process", timeout_s: float = DEFAULT_TIMEOUT_S, processes: int = 1, **request_kwargs
) -> CellResult:
    """Run one cell; with ``processes`` > 1 (process launcher) the timing is repeated in that many
    fresh workers (pyperf-style) so between-process variance is measured. The first worker also
    checks parity; any worker failing fails the cell."""
    if launcher == "inline":
        return run_inline(build_request(cell, **request_kwargs))
    return run_cells([PlannedCell(0, cell, processes, request_kwargs)], timeout_s)[0]
