"""Container emulation and pinning for worker processes: a CPU quota (a cgroup of the worker's
own, like ``docker --cpus``), a CPU set (the worker's affinity, like ``docker --cpuset-cpus``)
and pinning (``compact``, ``spread`` or an explicit CPU list).

Everything is applied to the worker *before* its interpreter starts (``enter``, run by the
launcher between fork and exec): a runtime that sizes its pool at import sees the confined
machine, as it would in a container. The cgroup is removed when the worker is gone, crashed or
killed included (``quota_group``). Where the harness may not create cgroups, ``unavailable``
gives the one-line reason the cells are skipped with: a cell is never timed unconstrained under
a constrained label. Workers run one at a time (harness.run.schedule), so pinned workers never
overlap on a CPU.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness.machine.threads import CpuBudget, cpu_budget, resolve_threads
from harness.machine.topology import Topology, allowed_cpus, format_cpu_list, parse_cpu_list, read_topology

CGROUP_ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000  # the kernel's default CFS period (100 ms), as docker uses
PIN_ORDERS = ("compact", "spread")
_COUNTER = itertools.count()


class ConfinementError(ValueError):
    pass


@dataclass(frozen=True)
class Confinement:
    quota: float | None = None  # CPUs (1.5 = 150 ms of CPU per 100 ms period)
    cpuset: tuple[int, ...] | None = None  # the CPUs a worker may use
    pin: str | None = None  # "compact", "spread" or a CPU list ("0,2")

    @classmethod
    def parse(cls, quota=None, cpuset: str | None = None, pin: str | None = None) -> Confinement:
        """From the command line; ConfinementError (one line, naming the option) on bad values."""
        allowed = allowed_cpus()
        if quota is not None:
            try:
                quota = float(quota)
            except ValueError:
                raise ConfinementError(f"--cpu-quota {quota!r} is not a number of CPUs (e.g. 1 or 1.5)") from None
            if not 0.01 <= quota <= len(allowed):
                raise ConfinementError(f"--cpu-quota {quota:g} must be between 0.01 and the {len(allowed)} CPUs here")
        cpus = _cpu_list(cpuset, "--cpuset", allowed) if cpuset else None
        if pin is not None and pin not in PIN_ORDERS:
            _cpu_list(pin, "--pin", cpus or allowed)
        return cls(quota, tuple(cpus) if cpus else None, pin)

    @property
    def active(self) -> bool:
        return self.quota is not None or self.cpuset is not None or self.pin is not None

    def describe(self) -> str:
        parts = [f"{self.quota:g}-CPU quota" if self.quota is not None else ""]
        parts.append(f"cpuset {format_cpu_list(self.cpuset)}" if self.cpuset else "")
        parts.append(f"pinned {self.pin}" if self.pin else "")
        return ", ".join(filter(None, parts)) or "unconfined"

    def to_dict(self) -> dict:
        return {"quota": self.quota, "cpuset": list(self.cpuset) if self.cpuset else None, "pin": self.pin}

    @classmethod
    def from_dict(cls, data: dict | None) -> Confinement:
        data = data or {}
        return cls(data.get("quota"), tuple(data["cpuset"]) if data.get("cpuset") else None, data.get("pin"))

    # -- what a worker gets ----------------------------------------------------------------
    def budget(self, base: CpuBudget | None = None, topology: Topology | None = None) -> CpuBudget:
        """The CPU budget inside the quota and CPU set (pinning narrows it per cell: ``placement``)."""
        base = base or cpu_budget()
        if not (self.quota is not None or self.cpuset):
            return base
        topology = topology or read_topology()
        cpus = list(self.cpuset) if self.cpuset else None
        return base.confined(self.quota, cpus, topology.physical_cores(cpus) if cpus else None)

    def placement(
        self, threads_spec: str, base: CpuBudget | None = None, topology: Topology | None = None
    ) -> tuple[CpuBudget, list[int] | None]:
        """(the cell's CPU budget, the CPUs its worker is bound to or None). Pinned: the mask is an
        explicit list, or the first N CPUs in ``compact``/``spread`` order where N is the cell's
        thread count (``auto`` and ``runtime`` take every CPU of the set); the thread count then
        follows the mask (``auto`` resolves to its size)."""
        topology = topology or read_topology()
        budget = self.budget(base, topology)
        allowed = list(self.cpuset) if self.cpuset else allowed_cpus()
        if self.pin is None:
            return budget, list(self.cpuset) if self.cpuset else None
        if self.pin in PIN_ORDERS:
            wanted = resolve_threads(threads_spec, budget) or budget.effective_cpus
            mask = topology.order(allowed, self.pin)[: max(1, min(wanted, len(allowed)))]
        else:
            mask = parse_cpu_list(self.pin)
        return budget.confined(None, mask, topology.physical_cores(mask)), mask

    # -- cgroups ---------------------------------------------------------------------------
    def unavailable(self) -> str | None:
        """Why workers cannot be confined here (None: they can), found without starting a worker."""
        if self.quota is None:
            return None
        try:
            with quota_group(self.quota):
                return None
        except OSError as exc:
            return (
                f"--cpu-quota needs a writable cgroup (v2 cpu.max or v1 cpu.cfs_quota_us under {CGROUP_ROOT}): "
                f"{exc.strerror or exc}; run as root or in a delegated cgroup"
            )


def _cpu_list(text: str, option: str, allowed: list[int]) -> list[int]:
    try:
        cpus = parse_cpu_list(text)
    except ValueError as exc:
        raise ConfinementError(f"{option} {text!r}: {exc}; use a CPU list like 0-1,3") from None
    outside = sorted(set(cpus) - set(allowed))
    if not cpus or outside:
        raise ConfinementError(
            f"{option} {text!r}: CPUs {format_cpu_list(outside) or 'none'} are not available here "
            f"(this process may use {format_cpu_list(allowed)})"
        )
    return cpus


def _v2_parent() -> Path | None:
    """This process's cgroup v2 directory when the cpu controller can be delegated below it."""
    from harness.machine.threads import own_cgroup

    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        here = mount / own_cgroup("").strip("/")
        try:
            if "cpu" in (here / "cgroup.subtree_control").read_text().split():
                return here
        except OSError:
            continue
    return None


@contextlib.contextmanager
def quota_group(quota: float):
    """A fresh cgroup with ``quota`` CPUs; yields the file a process joins it through
    (``cgroup.procs``); removed on exit, also when its worker was killed. OSError when cgroups
    are not writable here."""
    name = f"infer-bench-{os.getpid()}-{next(_COUNTER)}"
    quota_us = max(1000, round(quota * CFS_PERIOD_US))
    v2 = _v2_parent()
    if v2 is not None:
        group = v2 / name
        group.mkdir()
        settings = {"cpu.max": f"{quota_us} {CFS_PERIOD_US}"}
    else:
        group = CGROUP_ROOT / "cpu" / name
        group.mkdir()
        settings = {"cpu.cfs_period_us": str(CFS_PERIOD_US), "cpu.cfs_quota_us": str(quota_us)}
    try:
        for file, value in settings.items():
            (group / file).write_text(value)
        yield group / "cgroup.procs"
    finally:
        _remove(group)


def _remove(group: Path, attempts: int = 50) -> None:
    """rmdir a cgroup once its processes are gone (a killed worker leaves it a moment later)."""
    for _ in range(attempts):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            for pid in _members(group):
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)
            time.sleep(0.02)


def _members(group: Path) -> list[int]:
    try:
        return [int(p) for p in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def enter(procs_file: Path | None, cpus: list[int] | None):
    """The function the launcher runs in the worker between fork and exec: join the quota's
    cgroup, then bind to ``cpus``. An error here aborts the worker's start (never unconfined)."""

    def _enter():
        if procs_file is not None:
            procs_file.write_text(str(os.getpid()))
        if cpus:
            os.sched_setaffinity(0, cpus)

    return _enter
