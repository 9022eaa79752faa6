"""Thread counts and thread control: what a cell asks for, what the machine really offers, and
the environment and runtime settings that make a runtime use it.

Most thread settings are read once, when a runtime loads (libgomp reads OMP_NUM_THREADS at
start-up, TVM's pool reads TVM_NUM_THREADS at first use), so they are applied to a *fresh worker
process* before anything is imported (see harness.run.launcher).

Thread control (the ``thread_control`` axis) says which of the two ways a count reaches a runtime:

- ``both`` (default): the environment variables of ``THREAD_ENV_VARS`` *and* the runtime's own call;
- ``env``: the environment variables only (what a container's ``OMP_NUM_THREADS`` does);
- ``api``: the runtime's own call only (ORT ``intra_op_num_threads``, ``torch.set_num_threads``,
  TVM ``runtime.config_threadpool``); the variables are removed from the worker's environment;
- ``unset``: neither: the runtime's own choice (the cell's threads read ``runtime``).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TVM_NUM_THREADS")
# spin=off: libgomp's idle threads sleep instead of spinning; TVM's pool spins 0 times
NO_SPIN_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "TVM_THREAD_POOL_SPIN_COUNT": "0"}
PIN_ENV_VARS = ("OMP_PROC_BIND", "OMP_PLACES")
SYMBOLIC = ("auto", "host", "physical")
RUNTIME_CHOICE = "runtime"  # the threads of a thread_control=unset cell: nothing is set
THREAD_CONTROLS = ("both", "env", "api", "unset")
SPIN_MODES = ("default", "off")


class ThreadSpecError(ValueError):
    pass


def positive_int(value, what: str) -> int:
    """``value`` as an integer >= 1, or ValueError naming ``what``."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a positive integer") from None
    if number < 1:
        raise ValueError(f"{what} {value!r} must be at least 1")
    return number


# -- what the machine offers ------------------------------------------------------------------
def own_cgroup(kind: str, proc_cgroup: str | Path = "/proc/self/cgroup") -> str:
    """This process's cgroup path for a v1 controller (``kind`` 'cpu') or v2 (``kind`` '')."""
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        if line.count(":") < 2:
            continue
        _, controllers, path = line.split(":", 2)
        if (kind == "" and controllers == "") or kind in controllers.split(","):
            return path or "/"
    return "/"


def _levels(root: Path, path: str) -> list[Path]:
    """root/path and each of its parents up to root (a quota anywhere above applies too)."""
    parts = [p for p in path.strip("/").split("/") if p]
    return [root.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _cgroup_v2_quota(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _cgroup_v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cpu_quota(
    cgroup_root: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup"
) -> float | None:
    """CPU quota in CPUs of this process's own cgroup (cgroup v2 cpu.max, else v1 cfs quota; the
    smallest along the path to the root); None when unlimited."""
    root = Path(cgroup_root)
    found = [
        q
        for q in [_cgroup_v2_quota(d) for d in _levels(root, own_cgroup("", proc_cgroup))]
        + [_cgroup_v1_quota(d) for d in _levels(root / "cpu", own_cgroup("cpu", proc_cgroup))]
        if q is not None
    ]
    return min(found) if found else None


@dataclass(frozen=True)
class CpuBudget:
    host_cpus: int  # os.cpu_count(): what a container-unaware runtime uses
    affinity_cpus: int  # len(os.sched_getaffinity(0))
    quota_cpus: float | None  # cgroup quota in CPUs, None = unlimited
    effective_cpus: int  # min(affinity, ceil(quota)), at least 1
    physical_cores: int | None = None  # physical cores among the affinity CPUs (ORT's default pool)
    cpuset: str | None = None  # the affinity CPUs when narrower than the online CPUs ('0-1'), else None

    def to_dict(self) -> dict:
        return asdict(self)

    def confined(
        self, quota: float | None = None, cpus: list[int] | None = None, physical: int | None = None
    ) -> CpuBudget:
        """This budget inside a narrower CPU set and/or a CPU quota (a container's view)."""
        from harness.machine.topology import format_cpu_list

        affinity = len(cpus) if cpus else self.affinity_cpus
        quotas = [q for q in (self.quota_cpus, quota) if q is not None]
        q = min(quotas) if quotas else None
        effective = affinity if q is None else min(affinity, max(1, math.ceil(q)))
        return CpuBudget(
            self.host_cpus,
            affinity,
            q,
            max(1, effective),
            physical if physical is not None else self.physical_cores,
            format_cpu_list(cpus) if cpus else self.cpuset,
        )


def cpu_budget(cgroup_root: str | Path = "/sys/fs/cgroup") -> CpuBudget:
    from harness.machine.topology import allowed_cpus, format_cpu_list, read_topology

    host = os.cpu_count() or 1
    allowed = allowed_cpus()
    topology = read_topology()
    quota = cpu_quota(cgroup_root)
    effective = len(allowed) if quota is None else min(len(allowed), max(1, math.ceil(quota)))
    narrower = set(allowed) != set(topology.cpus)
    return CpuBudget(
        host,
        len(allowed),
        quota,
        max(1, effective),
        topology.physical_cores(allowed),
        format_cpu_list(allowed) if narrower else None,
    )


def resolve_threads(spec: str | int, budget: CpuBudget | None = None) -> int | None:
    """'auto' -> effective CPUs, 'host' -> os.cpu_count(), 'physical' -> physical cores of the
    affinity CPUs, '4' -> 4, 'runtime' -> None (the runtime decides)."""
    text = str(spec).strip().lower()
    if text == RUNTIME_CHOICE:
        return None
    budget = budget or cpu_budget()
    if text == "auto":
        return budget.effective_cpus
    if text == "host":
        return budget.host_cpus
    if text == "physical":
        return budget.physical_cores or budget.affinity_cpus
    try:
        return positive_int(text, "thread count")
    except ValueError as exc:
        raise ThreadSpecError(f"{exc} (or one of {', '.join(SYMBOLIC)})") from None


def normalize_thread_spec(spec: str | int) -> str:
    """Validate a thread axis value and return its canonical text form."""
    text = str(spec).strip().lower()
    if text in SYMBOLIC:
        return text
    return str(resolve_threads(text, CpuBudget(1, 1, None, 1)))


def thread_env(threads: int) -> dict[str, str]:
    """Environment that every runtime we know reads at load time."""
    return {name: str(threads) for name in THREAD_ENV_VARS}


# -- what a worker applies ---------------------------------------------------------------------
@dataclass(frozen=True)
class ThreadSettings:
    """What a backend applies through its own API when compiling (the environment is the
    launcher's): ``count`` intra-op threads (None: leave the runtime's default), ``interop``
    inter-op threads (None: leave it), ``spin`` False to stop idle workers spinning, ``cpus`` the
    pinned CPUs in order (the runtime binds its threads to them where it can)."""

    count: int | None = None
    interop: int | None = None
    spin: bool = True
    cpus: tuple[int, ...] | None = None

    @classmethod
    def coerce(cls, threads: ThreadSettings | int | None) -> ThreadSettings:
        """An int is today's default control: that count, inter-op 1."""
        if isinstance(threads, ThreadSettings):
            return threads
        return cls(threads, 1 if threads is not None else None)


def via_api(control: str) -> bool:
    return control in ("both", "api")


def via_env(control: str) -> bool:
    return control in ("both", "env")


def worker_environment(
    threads: int | None, control: str = "both", spin: str = "default", cpus: list[int] | None = None
) -> dict[str, str | None]:
    """The variables to set in a worker's environment (value None: remove an inherited one)."""
    env: dict[str, str | None] = {name: None for name in THREAD_ENV_VARS + PIN_ENV_VARS}
    if via_env(control) and threads is not None:
        env.update(thread_env(threads))
    env.update(NO_SPIN_ENV if spin == "off" else dict.fromkeys(NO_SPIN_ENV))
    if cpus:  # libgomp binds its threads one per listed CPU, in order (TVM binds its own pool)
        env.update(OMP_PROC_BIND="close", OMP_PLACES=",".join(f"{{{c}}}" for c in cpus))
    return env
