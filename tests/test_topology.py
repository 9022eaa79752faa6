"""CPU topology from sysfs, CPU lists, pinning orders, and confinement planning (no cgroups here)."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.machine.confine import Confinement, ConfinementError
from harness.machine.threads import CpuBudget
from harness.machine.topology import Topology, format_cpu_list, parse_cpu_list, read_topology


def fake_sysfs(root, sockets=2, cores=2, smt=2, governor="performance"):
    """CPUs numbered like Linux on a two-socket SMT box: siblings are n and n + physical cores."""
    cpu_root, node_root = root / "cpu", root / "node"
    physical = sockets * cores
    total = physical * smt
    (cpu_root).mkdir(parents=True)
    (cpu_root / "online").write_text(f"0-{total - 1}\n")
    (cpu_root / "isolated").write_text("\n")
    for cpu in range(total):
        core = cpu % physical
        topo = cpu_root / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text(str(core // cores))
        (topo / "core_id").write_text(str(core % cores))
    if governor:
        (cpu_root / "cpu0" / "cpufreq").mkdir()
        (cpu_root / "cpu0" / "cpufreq" / "scaling_governor").write_text(governor + "\n")
    for node in range(sockets):
        (node_root / f"node{node}").mkdir(parents=True)
        cpus = [c for c in range(total) if (c % physical) // cores == node]
        (node_root / f"node{node}" / "cpulist").write_text(format_cpu_list(cpus) + "\n")
    return cpu_root, node_root


@given(st.sets(st.integers(0, 300), min_size=1, max_size=40))
def test_cpu_lists_round_trip(cpus):
    text = format_cpu_list(cpus)
    assert parse_cpu_list(text) == sorted(cpus)
    assert "--" not in text and not text.startswith(",")


@pytest.mark.parametrize("bad", ["a", "3-1", "-1", "1-x"])
def test_bad_cpu_lists_are_refused(bad):
    with pytest.raises(ValueError):
        parse_cpu_list(bad)


def test_two_socket_smt_topology(tmp_path):
    topo = read_topology(*fake_sysfs(tmp_path))
    assert topo.cpus == tuple(range(8)) and topo.sockets == 2
    assert topo.physical_cores() == 4 and topo.physical_cores([0, 4]) == 1 and topo.physical_cores([0, 1]) == 2
    assert topo.smt_siblings == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert topo.numa_nodes == {0: [0, 1, 4, 5], 1: [2, 3, 6, 7]}
    assert topo.governor == "performance" and topo.boost is None and topo.isolated == ()
    # compact fills a core's siblings first; spread takes one CPU per core, alternating sockets
    assert topo.order(range(8), "compact") == [0, 4, 1, 5, 2, 6, 3, 7]
    assert topo.order(range(8), "spread") == [0, 2, 1, 3, 4, 6, 5, 7]
    data = topo.to_dict()
    assert data["physical_cores"] == 4 and data["logical_cpus"] == 8 and data["sockets"] == 2


def test_unreadable_parts_are_unknown(tmp_path):
    cpu_root = tmp_path / "cpu"
    cpu_root.mkdir()
    topo = read_topology(cpu_root, tmp_path / "node")
    assert topo.cpus == tuple(range(os.cpu_count())) and topo.governor is None and topo.boost is None
    assert topo.physical_cores() == os.cpu_count()  # no SMT information: every CPU its own core


def test_this_machine_has_a_topology():
    topo = read_topology()
    assert 1 <= topo.physical_cores() <= len(topo.cpus) == os.cpu_count()


SMT = Topology(tuple(range(8)), {c: (c % 4 // 2, c % 2) for c in range(8)})
BASE = CpuBudget(8, 8, None, 8, 4)


def test_pinning_masks_follow_the_thread_count(monkeypatch):
    monkeypatch.setattr("harness.machine.confine.allowed_cpus", lambda: list(range(8)))
    budget, mask = Confinement(pin="compact").placement("2", BASE, SMT)
    assert mask == [0, 4] and budget.affinity_cpus == 2 and budget.cpuset == "0,4" and budget.physical_cores == 1
    budget, mask = Confinement(pin="spread").placement("2", BASE, SMT)
    assert mask == [0, 2] and budget.physical_cores == 2
    # auto takes every allowed CPU, then resolves to the mask's size
    budget, mask = Confinement(pin="compact").placement("auto", BASE, SMT)
    assert len(mask) == 8 and budget.effective_cpus == 8
    budget, mask = Confinement(cpuset=(1, 2, 3), pin="1,3").placement("auto", BASE, SMT)
    assert mask == [1, 3] and budget.effective_cpus == 2


def test_quota_and_cpuset_narrow_the_budget(monkeypatch):
    monkeypatch.setattr("harness.machine.confine.allowed_cpus", lambda: list(range(8)))
    budget, mask = Confinement(quota=1.5).placement("auto", BASE, SMT)
    assert mask is None and budget.quota_cpus == 1.5 and budget.effective_cpus == 2 and budget.affinity_cpus == 8
    budget, mask = Confinement(quota=3.0, cpuset=(0, 4)).placement("auto", BASE, SMT)
    assert mask == [0, 4] and budget.effective_cpus == 2 and budget.physical_cores == 1 and budget.cpuset == "0,4"


@pytest.mark.parametrize(
    "args, message",
    [
        (dict(quota="one"), "--cpu-quota 'one' is not a number of CPUs"),
        (dict(quota=0), "--cpu-quota 0 must be between 0.01 and"),
        (dict(cpuset="999"), "--cpuset '999': CPUs 999 are not available here"),
        (dict(cpuset="1-0"), "--cpuset '1-0': '1-0' is not a CPU number or an increasing range"),
        (dict(pin="close"), "--pin 'close'"),
    ],
)
def test_bad_confinement_options_are_one_line(args, message):
    with pytest.raises(ConfinementError, match=message.replace("(", r"\(")) as info:
        Confinement.parse(**args)
    assert "\n" not in str(info.value)


def test_missing_cgroup_support_is_a_reason_not_an_unconfined_run(monkeypatch, tmp_path):
    monkeypatch.setattr("harness.machine.confine.CGROUP_ROOT", tmp_path / "no-cgroups")
    reason = Confinement(quota=1.0).unavailable()
    assert reason.startswith("--cpu-quota needs a writable cgroup") and "\n" not in reason
    assert Confinement(cpuset=(0,)).unavailable() is None  # affinity needs no cgroup
