"""In which order worker processes run: every cell's processes interleaved across the run.

Round 1 runs every cell's first worker (which also checks parity), round 2 every cell's second,
and so on. Machine states here last for seconds to minutes (three consecutive processes once all
ran 30% slow); interleaving spreads a cell's processes over the whole run, so one slow stretch
cannot shift all of them. A cell whose worker fails gets no further processes."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace

from harness.plan.cell import Cell
from harness.run.launcher import DEFAULT_TIMEOUT_S, build_request, run_in_process, run_inline
from harness.run.protocol import CellResult, Request

Progress = Callable[[Hashable, Cell, int, int, CellResult], None]


@dataclass(frozen=True)
class PlannedCell:
    key: Hashable  # the caller's name for it (the plugin uses the test's node id)
    cell: Cell
    processes: int = 1  # worker processes whose timings are pooled
    request: dict = field(default_factory=dict)  # build_request keyword arguments (timing, parity, measure)


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
    requests = {p.key: build_request(p.cell, **p.request) for p in plan}
    results: dict[Hashable, CellResult] = {}
    rounds = max((p.processes for p in plan), default=0)
    for index in range(1, rounds + 1):
        if index > 1 and after_round:
            after_round(index - 1)
        for p in plan:
            if index > p.processes or (index > 1 and not results[p.key].ok):
                continue
            request = requests[p.key]
            if index == 1:
                results[p.key] = start(request, timeout_s)
            elif request.measure:
                later = start(replace(request, check_parity=False), timeout_s)
                results[p.key] = results[p.key].merge(later, index, p.processes)
            if progress:
                progress(p.key, p.cell, index, p.processes, results[p.key])
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
