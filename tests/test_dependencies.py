"""The environment is the project's own: every third-party module the project imports is declared in
pyproject.toml, pinned in the lock, and installed; pyproject's ranges admit the lock's pins; inside a
virtual environment nothing is loaded from the machine's own site-packages.

Two locks: the CPU lock, and a GPU runner's CUDA lock (pyproject plus requirements/cuda.in, with
onnxruntime-gpu in place of onnxruntime). The installed one is judged against its own lock: the
CUDA lock's where torch is a CUDA build.

A module missing from the lock fails here by name (CI installs from the lock alone), instead of as
an ImportError in some worker process halfway through a benchmark run."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from importlib.util import find_spec
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "linux-x86_64-cpu.txt"
CUDA_LOCK = ROOT / "requirements" / "linux-x86_64-cuda.txt"
CUDA_IN = ROOT / "requirements" / "cuda.in"
REPLACED_IN_CUDA_LOCK = {"onnxruntime": "onnxruntime-gpu"}  # pyproject's name -> what the CUDA lock pins
OWN = {"harness", "tests", "suites", "benchmarks", "conftest"}
DELIBERATELY_MISSING = {
    "package_that_does_not_exist"
}  # tests/fake_backends.py: the 'missing' backend's import must fail


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules() -> dict[str, str]:
    """Top-level module -> first file importing it, for every absolute import in the project."""
    found: dict[str, str] = {}
    files = sorted(ROOT.glob("conftest.py")) + sorted(p for d in sorted(OWN) for p in (ROOT / d).rglob("*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return {
        m: f
        for m, f in found.items()
        if m not in sys.stdlib_module_names and m not in OWN and m not in DELIBERATELY_MISSING and m != "__future__"
    }


def installed_lock() -> Path:
    """The lock this environment was installed from: the CUDA lock's torch is a CUDA build."""
    from harness.machine.gpu import torch_cuda_version

    return CUDA_LOCK if torch_cuda_version() else LOCK


def declared(lock: Path = LOCK) -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for extra in project.get("optional-dependencies", {}).values() for r in extra]
    if lock == CUDA_LOCK:
        lines = (line.split("#")[0].strip() for line in CUDA_IN.read_text().splitlines())
        reqs += [Requirement(line) for line in lines if line]
    return {canonical(r.name): r for r in reqs}


def locked(lock: Path = LOCK) -> dict[str, Version]:
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock.read_text(), re.M)
    return {canonical(name): Version(v) for name, v in pins}


def test_the_scan_sees_the_project_imports():
    modules = imported_modules()
    assert {"torch", "onnx", "onnxruntime", "tvm", "numpy", "scipy", "pytest", "hypothesis", "psutil"} <= set(modules)
    assert "json" not in modules and "harness" not in modules


def test_every_imported_module_is_installed_declared_and_locked():
    dists = packages_distributions()
    lock = installed_lock()
    declared_here, locked_here = declared(lock), locked(lock)
    problems = []
    for module, where in sorted(imported_modules().items()):
        owners = [canonical(d) for d in dists.get(module, [])]
        if not owners:
            problems.append(
                f"{module} (imported in {where}) is not installed: declare its distribution in "
                f"pyproject.toml, run bash requirements/refresh and reinstall"
            )
            continue
        if not any(o in declared_here for o in owners):
            where_declared = "pyproject.toml" + (f" or {CUDA_IN.name}" if lock == CUDA_LOCK else "")
            problems.append(
                f"{module} (imported in {where}) comes from {'/'.join(owners)}, which {where_declared} does not declare"
            )
        if not any(o in locked_here for o in owners):
            problems.append(
                f"{module} (imported in {where}) comes from {'/'.join(owners)}, which {lock.name} does not pin: "
                f"run bash requirements/refresh" + (" --cuda" if lock == CUDA_LOCK else "")
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lock", [LOCK, CUDA_LOCK], ids=["cpu", "cuda"])
def test_pyproject_ranges_admit_the_lock(lock):
    pins = locked(lock)
    refresh = "bash requirements/refresh" + (" --cuda" if lock == CUDA_LOCK else "")
    for name, req in declared(lock).items():
        pinned = REPLACED_IN_CUDA_LOCK.get(name, name) if lock == CUDA_LOCK else name
        assert pinned in pins, f"{req} is declared but not in {lock.name}: run {refresh}"
        assert req.specifier.contains(pins[pinned], prereleases=True), (
            f"{lock.name} pins {pinned}=={pins[pinned]}, outside the declared '{req}': run {refresh}"
        )
    if lock == CUDA_LOCK:
        assert not set(REPLACED_IN_CUDA_LOCK) & set(pins), "the CUDA lock pins a package it replaces"
        assert not pins["torch"].local, "the CUDA lock's torch must be PyPI's CUDA build"


def test_lock_takes_the_cpu_torch_build():
    assert locked()["torch"].local == "cpu", "the lock's torch must be the CPU build (PyPI's Linux torch is CUDA)"


def test_nothing_leaks_in_from_the_machines_site_packages():
    if sys.prefix == sys.base_prefix:
        pytest.skip("not in a virtual environment: the machine's site-packages are the environment")
    outside = []
    for module in imported_modules():
        spec = find_spec(module)
        origin = (
            spec.origin
            if spec and spec.origin not in (None, "namespace")
            else (
                next(iter(spec.submodule_search_locations), None) if spec and spec.submodule_search_locations else None
            )
        )
        if origin and not Path(origin).resolve().is_relative_to(Path(sys.prefix).resolve()):
            outside.append(f"{module} from {origin}")
    assert not outside, f"loaded from outside the virtual environment {sys.prefix}: {', '.join(outside)}"
