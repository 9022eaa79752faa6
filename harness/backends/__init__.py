"""Backend registry.

Built-in backends are listed below as "module:Class" strings so that nothing is imported until a
backend is used. In-house runtimes register the same way, from outside the harness:

- a package entry point in the group ``harness.backends`` (``name = "package.module:Class"``), or
- the environment variable ``INFER_BENCH_BACKENDS="name=package.module:Class,..."`` (read by the
  pytest process and inherited by every worker process).
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from harness.backends.base import Backend, Compiled

BUILTIN = {
    "torch": "harness.backends.torch_eager:TorchEager",
    "torch-compile": "harness.backends.torch_compile:TorchCompile",
    "torch-sparse": "harness.backends.torch_sparse:TorchSparse",
    "ort": "harness.backends.ort:OnnxRuntime",
    "ort-opt": "harness.backends.ort_opt:OnnxRuntimeOptimized",
    "tvm": "harness.backends.tvm:Tvm",
    "tvm-untuned": "harness.backends.tvm:TvmUntuned",
    "tvm-sparse": "harness.backends.tvm:TvmSparse",
}
ENV_VAR = "INFER_BENCH_BACKENDS"


class UnknownBackendError(ValueError):
    pass


def registered() -> dict[str, str]:
    """name -> "module:Class" for built-in, entry-point and environment backends."""
    found = dict(BUILTIN)
    for ep in entry_points(group="harness.backends"):
        found[ep.name] = ep.value
    for item in filter(None, (s.strip() for s in os.environ.get(ENV_VAR, "").split(","))):
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            raise UnknownBackendError(f"{ENV_VAR}: {item!r} is not name=package.module:Class")
        found[name.strip()] = target.strip()
    return found


def get_backend(name: str) -> Backend:
    table = registered()
    if name not in table:
        raise UnknownBackendError(f"unknown backend {name!r}; registered backends: {', '.join(table)}")
    module_name, _, cls_name = table[name].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    backend = cls()
    if getattr(backend, "name", None) != name:
        backend.name = name
    return backend


__all__ = ["BUILTIN", "Backend", "Compiled", "ENV_VAR", "UnknownBackendError", "get_backend", "registered"]
