"""The machine profile saved with every result (through pytest-benchmark's
``pytest_benchmark_update_machine_info`` hook): CPU budget, ISA flags, memory and the versions
of every runtime, read from package metadata so nothing heavy is imported in the pytest process.
(The harness commit is already in pytest-benchmark's commit_info.)"""

from __future__ import annotations

import platform
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .threads import cpu_budget

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


def machine_profile() -> dict:
    return {
        "cpu": cpu_info(),
        "cpu_budget": cpu_budget().to_dict(),
        "memory_gib": memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": package_versions(),
    }
