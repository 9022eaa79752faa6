"""The CPU topology as Linux exposes it in sysfs: sockets, physical cores and their SMT siblings,
NUMA nodes, isolated CPUs, frequency governor and boost. Every field reads ``unknown`` (None)
where the kernel or the VM does not expose it; nothing here guesses.

Physical cores matter for threads: ONNX Runtime sizes its default pool to the physical cores it
may use, PyTorch to the physical cores too, TVM to half the hardware threads on x86 (see
README "What thread settings do"); ``physical_cores(cpus)`` counts them for a CPU mask."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

SYSFS_CPU = Path("/sys/devices/system/cpu")
SYSFS_NODE = Path("/sys/devices/system/node")


def parse_cpu_list(text: str) -> list[int]:
    """Linux's CPU list format ('0-3,8,10-11') -> sorted CPU numbers; ValueError on anything else."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.strip().split(","))):
        low, sep, high = part.partition("-")
        first, last = int(low), int(high) if sep else int(low)
        if first < 0 or last < first:
            raise ValueError(f"{part!r} is not a CPU number or an increasing range")
        cpus.update(range(first, last + 1))
    return sorted(cpus)


def format_cpu_list(cpus) -> str:
    """Sorted CPU numbers -> Linux's compact list form ('0-3,8')."""
    out, run = [], []
    for cpu in sorted(set(cpus)):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [cpu]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity; every CPU off Linux)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class Topology:
    cpus: tuple[int, ...]  # online logical CPUs
    core_of: dict = field(default_factory=dict)  # cpu -> (socket, core): SMT siblings share one
    numa_nodes: dict = field(default_factory=dict)  # node -> list of CPUs
    isolated: tuple[int, ...] = ()
    governor: str | None = None
    boost: str | None = None  # "on", "off" or None (unknown)

    @property
    def sockets(self) -> int:
        return len({socket for socket, _ in self.core_of.values()}) or 1

    def physical_cores(self, cpus=None) -> int:
        """Distinct physical cores among ``cpus`` (all online CPUs by default)."""
        chosen = self.cpus if cpus is None else cpus
        return len({self.core_of.get(c, ("?", c)) for c in chosen}) or 1

    @property
    def smt_siblings(self) -> list[list[int]]:
        """Groups of logical CPUs sharing a physical core (one CPU per group without SMT)."""
        groups: dict[tuple, list[int]] = {}
        for cpu in self.cpus:
            groups.setdefault(self.core_of.get(cpu, ("?", cpu)), []).append(cpu)
        return sorted(groups.values())

    def order(self, cpus, how: str) -> list[int]:
        """``cpus`` in pinning order: ``compact`` fills a core's SMT siblings before the next core
        (neighbours share caches), ``spread`` takes one CPU per physical core first, alternating
        sockets, then the siblings."""
        allowed = set(cpus)
        groups = [[c for c in g if c in allowed] for g in self.smt_siblings]
        groups = [g for g in groups if g]
        if how == "compact":
            return [c for g in groups for c in g]
        if how != "spread":
            raise ValueError(f"pinning order {how!r}: use compact or spread")
        by_socket: dict = {}
        for g in groups:
            by_socket.setdefault(self.core_of.get(g[0], ("?", g[0]))[0], []).append(g)
        firsts = [
            sock[i]
            for i in range(max(map(len, by_socket.values()), default=0))
            for sock in by_socket.values()
            if i < len(sock)
        ]
        return [g[0] for g in firsts] + [c for g in firsts for c in g[1:]]

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(
            sockets=self.sockets,
            physical_cores=self.physical_cores(),
            logical_cpus=len(self.cpus),
            smt_siblings=self.smt_siblings,
            core_of={str(k): list(v) for k, v in self.core_of.items()},
            numa_nodes={str(k): v for k, v in self.numa_nodes.items()},
        )
        return data


def read_topology(cpu_root: Path = SYSFS_CPU, node_root: Path = SYSFS_NODE) -> Topology:
    """The machine's topology from sysfs (``cpu_root``/``node_root`` replaceable for tests)."""
    try:
        cpus = tuple(parse_cpu_list(_read(cpu_root / "online") or ""))
    except ValueError:
        cpus = ()
    if not cpus:
        cpus = tuple(range(os.cpu_count() or 1))
    core_of = {}
    for cpu in cpus:
        topo = cpu_root / f"cpu{cpu}" / "topology"
        socket, core = _read(topo / "physical_package_id"), _read(topo / "core_id")
        if socket is not None and core is not None:
            core_of[cpu] = (int(socket), int(core))
    nodes = {}
    for node in sorted(node_root.glob("node[0-9]*")) if node_root.is_dir() else []:
        try:
            nodes[int(node.name[4:])] = parse_cpu_list(_read(node / "cpulist") or "")
        except ValueError:
            continue
    try:
        isolated = tuple(parse_cpu_list(_read(cpu_root / "isolated") or ""))
    except ValueError:
        isolated = ()
    governor = _read(cpu_root / f"cpu{cpus[0]}" / "cpufreq" / "scaling_governor")
    boost = _read(cpu_root / "cpufreq" / "boost")
    if boost is None and (no_turbo := _read(cpu_root / "intel_pstate" / "no_turbo")) is not None:
        boost = "0" if no_turbo == "1" else "1"
    return Topology(cpus, core_of, nodes, isolated, governor, {"1": "on", "0": "off"}.get(boost or ""))
