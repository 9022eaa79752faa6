"""Foreign CPU load: how much of the machine other processes used while a worker ran.

The machine's busy CPU time (/proc/stat) minus the CPU time of our own worker (RUSAGE_CHILDREN),
over the worker's wall time, in CPUs. Measured on the 2-core dev machine: one spinning neighbour
1.0 CPU, an idle machine 0.01. A timing taken beside a busy neighbour is suspect, so a cell whose
foreign load exceeds ``BUSY_LOAD`` is flagged (``machine_busy``), not hidden."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

BUSY_LOAD = 0.10  # CPUs of foreign work during a cell above which its timing is flagged


def busy_cpu_s() -> float | None:
    """CPU seconds all CPUs spent busy since boot (/proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class LoadSnapshot:
    busy_s: float | None
    children_s: float

    @classmethod
    def now(cls) -> LoadSnapshot:
        return cls(busy_cpu_s(), children_cpu_s())

    def foreign_load(self, wall_s: float) -> float | None:
        """CPUs' worth of work done by *other* processes since this snapshot, over ``wall_s``."""
        busy_after = busy_cpu_s()
        if self.busy_s is None or busy_after is None or wall_s <= 0:
            return None
        foreign = (busy_after - self.busy_s) - (children_cpu_s() - self.children_s)
        return max(0.0, foreign / wall_s)
