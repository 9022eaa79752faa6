"""Sharding a matrix across N runners or N sequential CI jobs (``--shard K/N``).

Every cell goes to exactly one shard, the same one on every runner that sees the same cells and
costs: cells are taken from the most to the least expensive (ties by id) and each is given to the
shard with the least cost so far (ties to the lower index), the longest-processing-time rule, whose
largest shard is within 4/3 of the best possible. A test's cost is its cell's worker wall time in
the latest saved run of the machine's profile (``recorded_costs``); a test never measured there costs the
median of the known ones (1 when none is known), so a new cell spreads like an average one.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path


class ShardError(ValueError):
    pass


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as written on the command line
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
            raise ShardError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/4")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def assign(costs: dict[str, float | None], count: int) -> dict[str, int]:
    """test -> shard index (1-based) for ``count`` shards, balancing the costs (None: unknown)."""
    known = [c for c in costs.values() if c is not None and c > 0]
    default = statistics.median(known) if known else 1.0
    filled = {cell: (c if c is not None and c > 0 else default) for cell, c in costs.items()}
    loads = [0.0] * count
    out = {}
    for cell in sorted(filled, key=lambda c: (-filled[c], c)):
        shard = min(range(count), key=lambda i: (loads[i], i))
        loads[shard] += filled[cell]
        out[cell] = shard + 1
    return out


def recorded_costs(run: Path | None) -> dict[str, float]:
    """test node id (pytest-benchmark's fullname) -> its cell's worker wall seconds in a saved run;
    {} when there is none or it cannot be read."""
    from harness.store.results import ResultFileError, load_result

    if run is None:
        return {}
    try:
        data = load_result(run)
    except ResultFileError:
        return {}
    costs = {}
    for bench in data["benchmarks"]:
        wall = (bench.get("extra_info") or {}).get("worker_wall_s")
        if isinstance(wall, (int, float)) and wall > 0:
            costs[bench["fullname"]] = float(wall)
    return costs
