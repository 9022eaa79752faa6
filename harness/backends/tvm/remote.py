"""TVM cells on a device that cannot host the harness, over TVM RPC: ``--rpc-tracker HOST:PORT
--rpc-key KEY`` (tvmc's options), optionally ``--rpc-target "llvm -mtriple=... -mcpu=...
-num-cores=N"`` and ``--rpc-cross-compiler CC``.

- *Which device.* The pytest process asks the device once (``describe``, in a short-lived
  process: the pytest process imports no runtime): its LLVM triple and CPU when ``--rpc-target``
  does not name them (a device with TVM's runtime only cannot tell; then they must be named), and
  its CPU count from ``num-cores`` or, failing that, the size of the remote TVM thread pool by default
  (said so in the profile). The run's machine profile is the *device's*
  (``RemoteDevice.profile``): results are stored and compared under it, never under the host's.
- *Compile here, for there.* The worker builds with the device's triple and ``mcpu`` (target
  ``llvm``; ``llvm-generic`` leaves ``mcpu`` out), exports the library (with the cross-compiler when
  the triple is not the host's), uploads it and loads it in the device's Relax VM.
- *Time there.* ``time_evaluator`` of the VM's ``invoke_stateful`` (inputs set once, outputs left on
  the device) runs the rounds on the device and reports per-round means; they are stored as
  the same per-process rounds (``Samples``) as a local run's. Parity: the device's outputs,
  copied back, against the float64 reference computed here.
- *Threads.* The cell's count is applied to the device's pool through
  ``runtime.config_threadpool(1, n)`` and read back with ``runtime.NumThreads`` (the thread check
  compares them). Over RPC no CPU list can be passed, and mode 1 never grows the pool past the size
  the server started with (``TVM_NUM_THREADS`` of its ``rpc_server``, else half the hardware
  threads on x86): start the server with the threads the cells ask for.

Only ``tvm`` and ``tvm-sparse`` cells run remotely; every other cell of such a run is skipped with
the reason. A loopback tracker and server on 127.0.0.1 (tests/test_rpc.py) prove the plumbing,
not a device: its timings are this machine's."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass

from harness.machine.threads import CpuBudget

REMOTE_BACKENDS = frozenset({"tvm", "tvm-sparse"})
DESCRIBE_TIMEOUT_S = 60.0
SESSION_TIMEOUT_S = 900.0  # how long the tracker lends the device to one worker


class RemoteError(ValueError):
    pass


@dataclass(frozen=True)
class RemoteDevice:
    tracker: str  # host:port
    key: str
    triple: str | None = None
    mcpu: str | None = None
    cpus: int | None = None
    cpus_source: str = "num-cores of --rpc-target"
    cross_compiler: str | None = None

    @classmethod
    def parse(cls, tracker: str, key: str | None, target: str | None = None, cross_compiler: str | None = None):
        """From the command line; RemoteError (one line) for anything malformed."""
        if not re.fullmatch(r"[^\s:]+:\d{1,5}", tracker or ""):
            raise RemoteError(f"--rpc-tracker {tracker!r}: expected HOST:PORT, e.g. 127.0.0.1:9190")
        if not key or not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise RemoteError(f"--rpc-key {key!r}: the key the device's RPC server registered (letters, digits, _.-)")
        attrs = parse_target(target) if target else {}
        return cls(
            tracker, key, attrs.get("mtriple"), attrs.get("mcpu"), attrs.get("num-cores"), cross_compiler=cross_compiler
        )

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.tracker.rpartition(":")
        return host, int(port)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RemoteDevice:
        return cls(**data)

    def budget(self) -> CpuBudget:
        cpus = self.cpus or 1
        return CpuBudget(host_cpus=cpus, affinity_cpus=cpus, quota_cpus=None, effective_cpus=cpus)

    def profile(self) -> dict:
        """The device's machine profile: what identifies the device kind (key, triple, CPU, CPU
        count) makes its id; the packages are the compiling host's (the code the device runs)."""
        from harness.machine.profile import package_versions

        kind = {"key": self.key, "triple": self.triple, "mcpu": self.mcpu, "cpus": self.cpus}
        digest = hashlib.sha256(json.dumps(kind, sort_keys=True).encode()).hexdigest()[:6]
        slug = "-".join(re.sub(r"[^a-z0-9]+", "-", str(v).lower()).strip("-") for v in (self.key, self.mcpu))
        return {
            "profile_id": f"rpc-{slug}-{self.cpus}cpu-{digest}",
            "cpu": {"model": f"{self.mcpu} ({self.triple}), TVM RPC key {self.key}", "isa": []},
            "cpu_budget": self.budget().to_dict(),
            "os": self.triple,
            "python": None,
            "packages": package_versions(),
            "remote": {**kind, "tracker": self.tracker, "cpus_source": self.cpus_source},
        }


def parse_target(text: str) -> dict:
    """'llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -num-cores=4' -> its attributes."""
    words = text.split()
    if not words or words[0] != "llvm":
        raise RemoteError(f"--rpc-target {text!r}: expected 'llvm -mtriple=... -mcpu=... [-num-cores=N]'")
    attrs: dict = {}
    for word in words[1:]:
        name, eq, value = word.lstrip("-").partition("=")
        if not eq or name not in ("mtriple", "mcpu", "num-cores"):
            raise RemoteError(f"--rpc-target {text!r}: {word!r} is not -mtriple=, -mcpu= or -num-cores=")
        attrs[name] = value
    if "num-cores" in attrs:
        if not attrs["num-cores"].isdigit() or int(attrs["num-cores"]) < 1:
            raise RemoteError(f"--rpc-target {text!r}: -num-cores must be a positive integer")
        attrs["num-cores"] = int(attrs["num-cores"])
    return attrs


# -- in a short-lived process (describe) and in workers -------------------------------------------
def connect(device: RemoteDevice, session_timeout: float = SESSION_TIMEOUT_S):
    """A session on the device, lent by the tracker."""
    from tvm import rpc

    host, port = device.address
    return rpc.connect_tracker(host, port).request(device.key, priority=1, session_timeout=session_timeout)


def _ask(session, name: str):
    try:
        return session.get_function(name)()
    except Exception:  # a runtime-only device has no compiler functions
        return None


def _describe_here(device: RemoteDevice) -> RemoteDevice:
    session = connect(device, DESCRIBE_TIMEOUT_S)
    triple = device.triple or _ask(session, "target.llvm_get_system_triple")
    mcpu = device.mcpu or _ask(session, "target.llvm_get_system_cpu")
    missing = [name for name, value in (("-mtriple", triple), ("-mcpu", mcpu)) if not value]
    if missing:
        raise RemoteError(
            f"the device {device.key} cannot tell its {' and '.join(missing)} (a runtime-only TVM): name them with "
            f"--rpc-target 'llvm -mtriple=... -mcpu=... -num-cores=N'"
        )
    triple = "x86_64-linux-gnu" if triple.endswith("-conda-linux-gnu") and triple.startswith("x86_64") else triple
    cpus, source = device.cpus, device.cpus_source
    if cpus is None:
        cpus, source = int(session.get_function("runtime.NumThreads")()), "the remote TVM thread pool's default size"
    return RemoteDevice(device.tracker, device.key, triple, mcpu, cpus, source, device.cross_compiler)


def describe(device: RemoteDevice, timeout_s: float = DESCRIBE_TIMEOUT_S) -> RemoteDevice:
    """The device with its triple, CPU and CPU count filled in, asked in a fresh process;
    RemoteError with one line when the tracker, the key or the device does not answer."""
    from harness import PROJECT_ROOT
    from harness.run.launcher import python_env

    command = [sys.executable, "-m", "harness.backends.tvm.remote", json.dumps(device.to_dict())]
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=str(PROJECT_ROOT),
            env=python_env(dict(os.environ)),
        )
        answer = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    except subprocess.TimeoutExpired:
        raise RemoteError(
            f"--rpc-tracker {device.tracker} --rpc-key {device.key}: no device lent within {timeout_s:.0f} s "
            f"(are the tracker and the device's rpc_server running? python -m tvm.exec.query_rpc_tracker "
            f"--host {device.address[0]} --port {device.address[1]})"
        ) from None
    except ValueError:
        answer = {}
    if "device" in answer:
        return RemoteDevice.from_dict(answer["device"])
    why = answer.get("error") or (proc.stderr.strip().splitlines() or ["no answer"])[-1]
    raise RemoteError(f"--rpc-tracker {device.tracker} --rpc-key {device.key}: {why}")


class RemoteCompiled:
    """A Relax executable loaded on the device: runs there, timed there."""

    def __init__(self, session, vm, device, label: str, build_info: dict):
        self.session, self.vm, self.device = session, vm, device
        self.label, self._build_info = label, build_info

    def build_info(self) -> dict:
        return dict(self._build_info)

    def _to_device(self, inputs):
        import numpy as np
        import tvm

        return [tvm.runtime.tensor(np.ascontiguousarray(x), self.device) for x in inputs]

    def _fetch(self, out) -> list:
        """Host arrays of a (possibly nested) output left on the device."""
        if hasattr(out, "numpy"):
            return [out.numpy()]
        size, item = self.session.get_function("ffi.ArraySize"), self.session.get_function("ffi.ArrayGetItem")
        return [x for i in range(int(size(out))) for x in self._fetch(item(out, i))]

    def run(self, inputs):
        return self._fetch(self.vm["main"](*self._to_device(inputs)))

    def prepare(self, inputs):
        raise NotImplementedError("a remote module is timed on the device (measure), not by a local loop")

    def measure(self, inputs, options):
        """Rounds timed on the device by the runtime's time_evaluator, as local Samples: calls per
        round calibrated so that a round lasts at least ``min_time``, rounds as many as fill
        ``max_time`` (at least ``min_rounds``), as the local timing loop does; the evaluator's
        first call, and the probe's, are warm-up."""
        import math

        from harness.run.timing import Samples

        self.vm.set_input("main", *self._to_device(inputs))
        probe = self.vm.time_evaluator("invoke_stateful", self.device, number=1, repeat=3)("main")
        per_call = max(min(probe.results), 1e-9)
        number = max(1, math.ceil(options.min_time / per_call))
        rounds = max(options.min_rounds, math.ceil(options.max_time / (per_call * number)))
        result = self.vm.time_evaluator("invoke_stateful", self.device, number=number, repeat=rounds)("main")
        return Samples(round_s=[float(mean) * number for mean in result.results], iterations=number, warmup_rounds=3)

    def thread_info(self):
        return {"tvm_num_threads": int(self.session.get_function("runtime.NumThreads")())}


def export_library(module, path, device: RemoteDevice | None) -> None:
    """Write ``module`` as a shared library at ``path``, linked for ``device`` (its cross-compiler,
    when it has one) or for this host."""
    if device is not None and device.cross_compiler:
        from tvm.support import cc

        module.export_library(str(path), fcompile=cc.cross_compiler(device.cross_compiler))
    else:
        module.export_library(str(path))


def deploy(module, device: RemoteDevice, settings, label: str, build_info: dict) -> RemoteCompiled:
    """Upload ``module`` (built for the device; or the path of its library, from the compile cache),
    load it in the device's VM and apply the cell's threads there."""
    import tempfile
    from pathlib import Path

    from tvm import relax

    session = connect(device)
    with tempfile.TemporaryDirectory(prefix="infer-bench-rpc-") as tmp:
        if isinstance(module, Path):
            library = module
        else:
            library = Path(tmp) / "model.so"
            export_library(module, library, device)
        session.upload(str(library), target="model.so")
    if settings.count is not None:  # RPC passes no arrays: mode 1 without a CPU list (see the docstring)
        session.get_function("runtime.config_threadpool")(1, settings.count)
    dev = session.cpu()
    vm = relax.VirtualMachine(session.load_module("model.so"), dev)
    info = dict(build_info, remote_key=device.key, remote_target=f"{device.triple} {device.mcpu}")
    label = f"{label}; on RPC device {device.key} ({device.mcpu})"
    return RemoteCompiled(session, vm, dev, label, info)


def needs_cross_compiler(device: RemoteDevice) -> str | None:
    """Why the device's library cannot be linked here (another triple and no --rpc-cross-compiler)."""
    import platform

    host = f"{platform.machine()}-linux-gnu"
    if device.triple and device.triple != host and not device.cross_compiler:
        return (
            f"the device's triple {device.triple} is not this host's ({host}): give --rpc-cross-compiler "
            f"(e.g. {device.triple}-g++)"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.backends.tvm.remote DEVICE_JSON``: print the described device as JSON."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        device = _describe_here(RemoteDevice.from_dict(json.loads(argv[0])))
        print(json.dumps({"device": device.to_dict()}))
    except Exception as exc:  # one line for the user, whatever the RPC layer raised
        text = str(exc).strip().splitlines()
        print(json.dumps({"error": f"{type(exc).__name__}: {text[-1] if text else ''}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
