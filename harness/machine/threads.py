"""Thread counts: what a cell asks for, what the machine really offers, and the environment
that makes a runtime use it.

Most thread settings are read once, when a runtime loads (libgomp reads OMP_NUM_THREADS at
start-up, TVM's pool reads TVM_NUM_THREADS at first use), so they are applied to a *fresh worker
process* before anything is imported (see harness.run.launcher).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TVM_NUM_THREADS")
SYMBOLIC = ("auto", "host")


class ThreadSpecError(ValueError):
    pass


def _cgroup_v2_quota(root: Path) -> float | None:
    cpu_max = root / "cpu.max"
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return int(quota) / int(period)


def _cgroup_v1_quota(root: Path) -> float | None:
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def cpu_quota(cgroup_root: str | Path = "/sys/fs/cgroup") -> float | None:
    """CPU quota in CPUs (cgroup v2 cpu.max, else v1 cfs quota); None when unlimited."""
    root = Path(cgroup_root)
    quota = _cgroup_v2_quota(root)
    return quota if quota is not None else _cgroup_v1_quota(root)


@dataclass(frozen=True)
class CpuBudget:
    host_cpus: int  # os.cpu_count(): what a container-unaware runtime uses
    affinity_cpus: int  # len(os.sched_getaffinity(0))
    quota_cpus: float | None  # cgroup quota in CPUs, None = unlimited
    effective_cpus: int  # min(affinity, ceil(quota)), at least 1

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_budget(cgroup_root: str | Path = "/sys/fs/cgroup") -> CpuBudget:
    host = os.cpu_count() or 1
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = host
    quota = cpu_quota(cgroup_root)
    effective = affinity if quota is None else min(affinity, max(1, math.ceil(quota)))
    return CpuBudget(host, affinity, quota, max(1, effective))


def resolve_threads(spec: str | int, budget: CpuBudget | None = None) -> int:
    """'auto' -> effective CPUs, 'host' -> os.cpu_count(), '4' -> 4."""
    text = str(spec).strip().lower()
    budget = budget or cpu_budget()
    if text == "auto":
        return budget.effective_cpus
    if text == "host":
        return budget.host_cpus
    try:
        value = int(text)
    except ValueError:
        raise ThreadSpecError(f"thread count {spec!r} is not an integer, 'auto' or 'host'") from None
    if value < 1:
        raise ThreadSpecError(f"thread count {spec!r} must be at least 1")
    return value


def normalize_thread_spec(spec: str | int) -> str:
    """Validate a thread axis value and return its canonical text form."""
    text = str(spec).strip().lower()
    if text in SYMBOLIC:
        return text
    return str(resolve_threads(text, CpuBudget(1, 1, None, 1)))


def thread_env(threads: int) -> dict[str, str]:
    """Environment that every runtime we know reads at load time."""
    return {name: str(threads) for name in THREAD_ENV_VARS}
