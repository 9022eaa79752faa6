"""Container emulation and pinning for worker processes: a CPU quota (a cgroup of the worker's
own, like ``docker --cpus``), a memory limit (the same cgroup, like ``docker --memory``: past it
the kernel's OOM killer ends the worker, and the launcher says so), a CPU set (the worker's
affinity, like ``docker --cpuset-cpus``) and pinning (``compact``, ``spread`` or a CPU list).

Everything is applied to the worker *before* its interpreter starts (``enter``, run by the
launcher between fork and exec): a runtime that sizes its pool at import sees the confined
machine, as it would in a container. The cgroup is removed when the worker is gone, crashed or
killed included (``worker_group``). Where the harness may not create cgroups, ``unavailable``
gives the one-line reason the cells are skipped with: a cell is never timed unconstrained under
a constrained label. Workers run one at a time (harness.run.schedule), so pinned workers never
overlap on a CPU.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from harness.machine.threads import CpuBudget, cpu_budget, own_cgroup, resolve_threads
from harness.machine.topology import Topology, allowed_cpus, format_cpu_list, parse_cpu_list, read_topology

CGROUP_ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000  # the kernel's default CFS period (100 ms), as docker uses
PIN_ORDERS = ("compact", "spread")
MIN_MEMORY = 64 * 2**20  # below this not even the interpreter starts
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_COUNTER = itertools.count()


class ConfinementError(ValueError):
    pass


@dataclass(frozen=True)
class Confinement:
    quota: float | None = None  # CPUs (1.5 = 150 ms of CPU per 100 ms period)
    cpuset: tuple[int, ...] | None = None  # the CPUs a worker may use
    pin: str | None = None  # "compact", "spread" or a CPU list ("0,2")
    memory: int | None = None  # bytes a worker may use (its cgroup's limit; no swap)

    @classmethod
    def parse(
        cls, quota=None, cpuset: str | None = None, pin: str | None = None, memory: str | None = None
    ) -> Confinement:
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
        return cls(quota, tuple(cpus) if cpus else None, pin, parse_memory(memory) if memory is not None else None)

    @property
    def active(self) -> bool:
        return self.quota is not None or self.cpuset is not None or self.pin is not None or self.memory is not None

    @property
    def needs_cgroup(self) -> bool:
        return self.quota is not None or self.memory is not None

    def describe(self) -> str:
        parts = [f"{self.quota:g}-CPU quota" if self.quota is not None else ""]
        parts.append(f"memory limit {format_bytes(self.memory)}" if self.memory is not None else "")
        parts.append(f"cpuset {format_cpu_list(self.cpuset)}" if self.cpuset else "")
        parts.append(f"pinned {self.pin}" if self.pin else "")
        return ", ".join(filter(None, parts)) or "unconfined"

    def to_dict(self) -> dict:
        return {
            "quota": self.quota,
            "cpuset": list(self.cpuset) if self.cpuset else None,
            "pin": self.pin,
            "memory": self.memory,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> Confinement:
        data = data or {}
        cpuset = tuple(data["cpuset"]) if data.get("cpuset") else None
        return cls(data.get("quota"), cpuset, data.get("pin"), data.get("memory"))

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
        if not self.needs_cgroup:
            return None
        try:
            with worker_group(self.quota, self.memory):
                return None
        except OSError as exc:
            options = " and ".join(o for o, v in (("--cpu-quota", self.quota), ("--memory-limit", self.memory)) if v)
            return (
                f"{options} need{'s' if ' and ' not in options else ''} a writable cgroup (v2, or v1 cpu/memory "
                f"under {CGROUP_ROOT}): {exc.strerror or exc}; run as root or in a delegated cgroup"
            )


def parse_memory(text) -> int:
    """'512m', '2g', '1.5GiB', '1073741824' -> bytes (binary units, like docker --memory)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text).lower())
    if not match:
        raise ConfinementError(f"--memory-limit {text!r} is not a size; use e.g. 512m or 2g")
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size < MIN_MEMORY:
        raise ConfinementError(f"--memory-limit {text!r} is below {format_bytes(MIN_MEMORY)}; a worker cannot start")
    return size


def format_bytes(size: int) -> str:
    return f"{size / 2**30:.3g} GiB" if size >= 2**30 else f"{size / 2**20:.4g} MiB"


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


def _v2_parent(controllers: set[str]) -> Path | None:
    """This process's cgroup v2 directory when ``controllers`` can be delegated below it."""
    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        here = mount / own_cgroup("").strip("/")
        try:
            if controllers <= set((here / "cgroup.subtree_control").read_text().split()):
                return here
        except OSError:
            continue
    return None


@dataclass
class WorkerGroup:
    """The cgroup(s) of one worker: the files it joins them through and where the memory
    controller keeps its OOM-kill count and peak."""

    procs: list[Path]
    memory_dir: Path | None = None
    v2: bool = False

    def oom_kills(self) -> int:
        """How many processes of the group the kernel's OOM killer ended (0 without a memory limit)."""
        if self.memory_dir is None:
            return 0
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            for line in (self.memory_dir / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def peak_bytes(self) -> int | None:
        if self.memory_dir is None:
            return None
        try:
            return int((self.memory_dir / ("memory.peak" if self.v2 else "memory.max_usage_in_bytes")).read_text())
        except (OSError, ValueError):
            return None


@contextlib.contextmanager
def worker_group(quota: float | None = None, memory: int | None = None):
    """A fresh cgroup with ``quota`` CPUs and/or a limit of ``memory`` bytes (swap included);
    yields its WorkerGroup. Removed on exit, also when its worker was killed. OSError when cgroups
    are not writable here. Under cgroup v1 the CPU and memory controllers are separate
    hierarchies: one group in each that is needed."""
    name = f"infer-bench-{os.getpid()}-{next(_COUNTER)}"
    wanted = {c for c, v in (("cpu", quota), ("memory", memory)) if v is not None}
    settings: dict[Path, list[tuple[str, str]]] = {}
    v2 = _v2_parent(wanted)
    if v2 is not None:
        group = v2 / name
        settings[group] = []
        if quota is not None:
            settings[group].append(("cpu.max", f"{max(1000, round(quota * CFS_PERIOD_US))} {CFS_PERIOD_US}"))
        if memory is not None:  # oom.group: the whole worker (its children too) goes at once
            settings[group] += [("memory.max", str(memory)), ("memory.swap.max", "0"), ("memory.oom.group", "1")]
        memory_dir = group if memory is not None else None
    else:
        memory_dir = None
        if quota is not None:
            settings[CGROUP_ROOT / "cpu" / name] = [
                ("cpu.cfs_period_us", str(CFS_PERIOD_US)),
                ("cpu.cfs_quota_us", str(max(1000, round(quota * CFS_PERIOD_US)))),
            ]
        if memory is not None:
            mount = CGROUP_ROOT / "memory"
            own = mount / own_cgroup("memory").strip("/")  # in a container the mount may already be its own group
            memory_dir = (own if own.is_dir() else mount) / name
            settings[memory_dir] = [
                ("memory.limit_in_bytes", str(memory)),
                ("memory.memsw.limit_in_bytes", str(memory)),
            ]
    made: list[Path] = []
    try:
        for group, values in settings.items():
            group.mkdir()
            made.append(group)
            for file, value in values:
                if file in _SWAP_FILES and not (group / file).exists():
                    if swap_total() > 0:  # the worker would swap instead of being killed at its limit
                        raise OSError(errno.ENOTSUP, f"swap is on and {file} is missing: the limit cannot include swap")
                    continue
                if file == "memory.oom.group" and not (group / file).exists():
                    continue
                (group / file).write_text(value)
        yield WorkerGroup([g / "cgroup.procs" for g in made], memory_dir, v2 is not None)
    finally:
        for group in made:
            _remove(group)


_SWAP_FILES = ("memory.memsw.limit_in_bytes", "memory.swap.max")


def swap_total() -> int:
    """Bytes of swap on the machine (/proc/meminfo SwapTotal); 0 when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("SwapTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


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


def enter(procs_files: list[Path], cpus: list[int] | None):
    """The function the launcher runs in the worker between fork and exec: join its cgroups,
    then bind to ``cpus``. An error here aborts the worker's start (never unconfined)."""

    def _enter():
        for procs_file in procs_files:
            procs_file.write_text(str(os.getpid()))
        if cpus:
            os.sched_setaffinity(0, cpus)

    return _enter
