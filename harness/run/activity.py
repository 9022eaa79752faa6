"""What ran during a timed window, runtime-agnostic: the worker's OS threads that used CPU
(from ``/proc/self/task``) and the process's CPU time over wall time.

A runtime reports the thread count it was *asked* for (ORT's session options read back what was
set); the kernel's per-thread CPU time shows what really ran. A thread counts as running when it
used at least ``RAN_SHARE`` of the window on a CPU: pool threads that work or spin through the
calls count (they burn CPU); a housekeeping thread that woke once, or another pool's threads
spinning down for a few milliseconds after the parity check (libgomp spins ~300k iterations
before it sleeps), do not."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

RAN_SHARE = 0.05  # a thread "ran" when it was on a CPU for >= 5% of the window


def thread_cpu_s() -> dict[int, float]:
    """CPU seconds per thread of this process: schedstat (ns) where the kernel has it, else the
    utime+stime clock ticks of /proc/self/task/TID/stat."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        base = f"/proc/self/task/{tid}"
        try:
            with open(f"{base}/schedstat") as fh:
                out[int(tid)] = int(fh.read().split()[0]) / 1e9
            continue
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open(f"{base}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            continue
    return out


@dataclass(frozen=True)
class Activity:
    threads_ran: int | None  # threads on a CPU for >= RAN_SHARE of the window (None: /proc unreadable)
    cpu_s: float  # the process's CPU time in the window (all threads)
    window_s: float  # the window's wall time

    @property
    def cpu_per_wall(self) -> float | None:
        """Average CPUs busy during the window (2.0 = two CPUs' worth of work throughout)."""
        return self.cpu_s / self.window_s if self.window_s > 0 else None


class ActivityWindow:
    """``with ActivityWindow() as window: ...``; then ``window.activity``."""

    activity: Activity | None = None

    def __enter__(self) -> ActivityWindow:
        self._threads = thread_cpu_s()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._wall
        cpu = time.process_time() - self._cpu
        after = thread_cpu_s()
        ran = None
        if after:
            ran = sum(1 for tid, t in after.items() if t - self._threads.get(tid, 0.0) >= RAN_SHARE * wall)
        self.activity = Activity(ran, cpu, wall)
