"""Compilation targets. 'llvm' means the host CPU with its own ISA (TVM gets the host's mcpu);
'llvm-generic' is a baseline x86-64/aarch64 build that only compilers can honour.

'cuda' is an NVIDIA GPU (``cuda:N`` the N-th, as CUDA numbers them; ``cuda`` is ``cuda:0``) with
fp32 matmuls in full fp32: TF32 off (torch's ``allow_tf32`` flags, ORT's ``use_tf32`` 0), so that
parity holds the float64 budget every CPU cell holds. 'cuda-tf32' (``cuda-tf32:N``) lets matmuls
and convolutions round their inputs to TF32 (10-bit mantissa) on tensor cores, as PyTorch's
``set_float32_matmul_precision("high")`` does, with the wider parity budget that rounding needs
(harness.run.parity.TF32_REL_FLOOR). Device kernels use no host thread pool: a cuda cell's
thread axis is the host's launch thread only (harness.plan.matrix)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

CPU, CUDA = "cpu", "cuda"
FP32, TF32 = "fp32", "tf32"  # fp32 matmul precision on a device: full fp32, or inputs rounded to TF32


@dataclass(frozen=True)
class TargetInfo:
    name: str
    device: str  # CPU or CUDA
    host_isa: bool  # True: use the host CPU's full ISA (mcpu=<host>)
    description: str
    remote: dict | None = None  # a TVM RPC device (harness.backends.tvm.remote.RemoteDevice.to_dict()): build for it
    kind: str = ""  # the TARGETS entry this is one of ("cuda" for cuda:1); the name where empty
    index: int = 0  # the device's ordinal on the host (cuda:N)
    matmul_precision: str = FP32  # fp32 matmuls and convolutions on the device: FP32 or TF32

    @property
    def family(self) -> str:
        return self.kind or self.name

    @property
    def tf32(self) -> bool:
        """True: fp32 matmuls and convolutions may round their inputs to TF32."""
        return self.matmul_precision == TF32

    @property
    def on_device(self) -> bool:
        """True: kernels run on an accelerator, not on the host's CPUs."""
        return self.device != CPU

    @property
    def torch_device(self) -> str:
        return f"cuda:{self.index}" if self.device == CUDA else "cpu"

    def precision_label(self) -> str:
        """What the label says of fp32 matmuls on a device ('' on the CPU)."""
        if not self.on_device:
            return ""
        if self.tf32:
            return "fp32 matmuls: TF32 (10-bit mantissa inputs)"
        return "fp32 matmuls: full fp32"


TARGETS = {
    "llvm": TargetInfo("llvm", CPU, True, "host CPU, host ISA (TVM: mcpu from llvm_get_system_cpu)"),
    "llvm-generic": TargetInfo("llvm-generic", CPU, False, "host CPU, generic ISA (no -mcpu)"),
    "cuda": TargetInfo("cuda", CUDA, False, "NVIDIA GPU cuda:N (cuda is cuda:0), fp32 matmuls in full fp32"),
    "cuda-tf32": TargetInfo(
        "cuda-tf32", CUDA, False, "NVIDIA GPU cuda-tf32:N, fp32 matmuls on TF32 tensor cores", matmul_precision=TF32
    ),
}
_INDEXED = re.compile(r"^(?P<kind>[a-z0-9-]+):(?P<index>\d+)$")


class UnknownTargetError(ValueError):
    pass


def get_target(name: str) -> TargetInfo:
    """A target by name: a TARGETS entry, or a device entry with its ordinal (``cuda:1``)."""
    if name in TARGETS:
        return TARGETS[name]
    indexed = _INDEXED.match(name)
    if indexed and indexed["kind"] in TARGETS and TARGETS[indexed["kind"]].on_device:
        base = TARGETS[indexed["kind"]]
        return replace(base, name=name, kind=base.name, index=int(indexed["index"]))
    known = ", ".join(f"{n}[:N]" if t.on_device else n for n, t in TARGETS.items())
    raise UnknownTargetError(f"unknown target {name!r}; known targets: {known}")


def device_of(name: str) -> str:
    """The device a target name runs on; CPU for a name that is not a target (it is skipped with
    its reason elsewhere)."""
    try:
        return get_target(name).device
    except UnknownTargetError:
        return CPU
