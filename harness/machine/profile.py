"""The machine profile saved with every result (through pytest-benchmark's
``pytest_benchmark_update_machine_info`` hook): CPU budget, ISA flags, memory and the versions
of every runtime, read from package metadata so nothing heavy is imported in the pytest process.
(The harness commit is already in pytest-benchmark's commit_info.)"""

from __future__ import annotations

import math
import platform
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from harness.machine import gpu
from harness.machine.confine import Confinement
from harness.machine.topology import read_topology

PACKAGES = ("torch", "onnxruntime", "apache-tvm", "apache-tvm-ffi", "onnx", "numpy", "pytest-benchmark")
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "neon", "sve")


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


@lru_cache(maxsize=1)
def cpu_info() -> dict:
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key in ("flags", "Features"):
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"model": model, "isa": [f for f in ISA_FLAGS if f in flags]}


def memory_gib() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return None


def cpu_mhz() -> float | None:
    try:
        import psutil

        freq = psutil.cpu_freq()
        if freq and (freq.max or freq.current):
            return float(freq.max or freq.current)
    except (ImportError, OSError, NotImplementedError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    except (OSError, ValueError):
        pass
    return None


NOMINAL_PEAK_METHOD = (
    "effective CPUs x clock (cpufreq max, else /proc/cpuinfo MHz) x fp32 FMA lanes (16 with AVX-512, "
    "8 with AVX2/FMA, 4 otherwise) x 2 FLOP per FMA x 2 FMA pipes per core; an upper bound (cores "
    "that split 512-bit ops, like Zen 4, reach half of it)"
)


def peak_gflops(isa: list[str], effective_cpus: int, mhz: float | None) -> float | None:
    if not mhz:
        return None
    lanes = 16 if "avx512f" in isa else 8 if ("avx2" in isa or "fma" in isa) else 4
    return effective_cpus * mhz / 1000 * lanes * 2 * 2


PEAK_METHOD = (
    "best of 5 fp32 2048x2048 matmuls (ORT MLAS or torch.mm, the faster) on all effective CPUs "
    "(harness/machine/peak.py)"
)


def measured_peak() -> dict:
    """The practical fp32 peak, measured now (a few seconds). Kept out of the profile itself: it
    varies from run to run, and pytest-benchmark warns whenever machine_info differs."""
    from harness.machine.peak import measure_peak_gflops

    return {"peak_fp32_gflops": measure_peak_gflops(), "peak_method": PEAK_METHOD}


def machine_profile(confinement: Confinement | None = None) -> dict:
    """The machine as the run's workers see it: inside ``confinement`` (--cpu-quota, --cpuset) the
    CPU budget is the confined one, and the confinement is recorded."""
    confinement = confinement or Confinement()
    budget = confinement.budget()
    mhz = cpu_mhz()
    profile = {
        "nominal_peak_fp32_gflops": peak_gflops(cpu_info()["isa"], budget.effective_cpus, mhz),
        "nominal_peak_method": NOMINAL_PEAK_METHOD,
        "cpu_mhz": mhz,
        "cpu": cpu_info(),
        "cpu_budget": budget.to_dict(),
        "topology": read_topology().to_dict(),
        "confinement": confinement.to_dict() if confinement.active else None,
        "memory_gib": memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": package_versions(),
    }
    gpus = gpu.host_gpus()
    if gpus:  # absent on a CPU-only machine: its profile (and id) stays what it was
        profile["gpus"] = [g.to_dict() for g in gpus]
    return profile


def profile_key(profile: dict) -> dict:
    """The part of a profile that makes timings comparable: hardware, CPU budget, OS, Python.
    Runtime versions are recorded but deliberately not part of the key: comparing across a
    library upgrade is exactly what the harness is for."""
    budget = profile.get("cpu_budget") or {}
    key = {
        "cpu": (profile.get("cpu") or {}).get("model"),
        "isa": sorted((profile.get("cpu") or {}).get("isa") or []),
        "effective_cpus": budget.get("effective_cpus"),
        "host_cpus": budget.get("host_cpus"),
        # nearest power of two: 23.5 GiB on one VM and 24.2 on the next are the same machine kind
        "memory_gib": 2 ** round(math.log2(profile["memory_gib"])) if profile.get("memory_gib") else None,
        "os": (profile.get("os") or "").split()[0] if profile.get("os") else None,
        "python": ".".join((profile.get("python") or "").split(".")[:2]) or None,
    }
    # a quota or a CPU set makes another machine; absent, the key (and every existing id) is unchanged
    if budget.get("quota_cpus") is not None:
        key["quota_cpus"] = budget["quota_cpus"]
    if budget.get("cpuset"):
        key["cpuset"] = budget["cpuset"]
    if profile.get("gpus"):  # the GPUs make the machine too (their driver does not: a version, like a runtime's)
        key["gpus"] = sorted(g["name"] for g in profile["gpus"])
    return key


def profile_id(profile: dict) -> str:
    """A readable, stable id, e.g. 'amd-epyc-2cpu-24g-3f9a1c'."""
    import hashlib
    import json
    import re

    key = profile_key(profile)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:6]
    cpu = re.sub(r"[^a-z0-9]+", "-", (key["cpu"] or "cpu").lower()).strip("-")
    cpu = "-".join(w for w in cpu.split("-") if w not in ("processor", "cpu", "with", "radeon", "graphics"))[:24].strip(
        "-"
    )
    gpus = ""
    if key.get("gpus"):  # e.g. "-1xh100": how many of the first GPU's kind
        short = re.sub(r"[^a-z0-9]+", "-", key["gpus"][0].lower().removeprefix("nvidia").strip()).split("-")[0]
        gpus = f"-{len(key['gpus'])}x{short}"
    return f"{cpu}-{key['effective_cpus']}cpu-{key['memory_gib']}g{gpus}-{digest}"


def version_changes(baseline: dict | None, current: dict | None) -> list[str]:
    """One line per runtime package whose version differs between the baseline's profile and the
    current one, for the head of every verdict table: a "regression" right after a dependency bump
    must be visibly attributable to it."""
    before = (baseline or {}).get("packages")
    now = (current or {}).get("packages") or {}
    if not before:
        return ["the baseline records no runtime versions: a change may come from a dependency upgrade"] if now else []
    return [
        f"{name} {before.get(name) or 'not installed'} in the baseline, {now.get(name) or 'not installed'} now: "
        f"ratios include the effect of this upgrade"
        for name in PACKAGES
        if before.get(name) != now.get(name)
    ]


def current_profile(confinement: Confinement | None = None) -> dict:
    profile = machine_profile(confinement)
    profile["profile_id"] = profile_id(profile)
    return profile
