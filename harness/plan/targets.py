"""Compilation targets. 'llvm' means the host CPU with its own ISA (TVM gets the host's mcpu);
'llvm-generic' is a baseline x86-64/aarch64 build that only compilers can honour."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetInfo:
    name: str
    device: str  # "cpu" (more devices belong to their own issue)
    host_isa: bool  # True: use the host CPU's full ISA (mcpu=<host>)
    description: str
    remote: dict | None = None  # a TVM RPC device (harness.backends.tvm.remote.RemoteDevice.to_dict()): build for it


TARGETS = {
    "llvm": TargetInfo("llvm", "cpu", True, "host CPU, host ISA (TVM: mcpu from llvm_get_system_cpu)"),
    "llvm-generic": TargetInfo("llvm-generic", "cpu", False, "host CPU, generic ISA (no -mcpu)"),
}


class UnknownTargetError(ValueError):
    pass


def get_target(name: str) -> TargetInfo:
    try:
        return TARGETS[name]
    except KeyError:
        raise UnknownTargetError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}") from None
