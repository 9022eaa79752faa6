"""TVM Relax: from_onnx / from_exported_program, target llvm with the host's mcpu, Relax VM.

``tvm``: what a TVM user ships (pipeline.py): NHWC convolutions, fused operators, MetaSchedule
records of this machine profile and thread count where they exist (tuning.py), default CPU
schedules (schedules.py) for every other function. Its label says which, with the database's digest;
``build_info`` adds ``tuning_coverage`` and ``tuning_db``.
``tvm-sparse``: ``tvm`` with the matmuls (and 1x1 convolutions) whose constant weight is sparse
as block-sparse kernels (sparse.py); its label and ``build_info`` say how many weights ran sparse.
``tvm-untuned``: TVM's ``default_build`` pipeline, no fusion, no schedule: naive serial loops, the
floor a schedule is measured against.

Threads: TVM's pool reads TVM_NUM_THREADS, then OMP_NUM_THREADS, else half the hardware threads
on x86, and binds its workers itself (TVM_BIND_THREADS); its API is ``runtime.config_threadpool``.

``compile`` builds (or loads from the compile cache) and runs nothing locally: the first run is the
worker's ``first_inference_s``. On an RPC device the deployed library is run once inside
``compile``: it is timed by the device's own evaluator, and the worker measures no first inference
there.
Artifact (``build_info``'s ``artifact_bytes``): the size of the exported library (``LIBRARY``):
the compile cache's file, or, where nothing on disk has it (``tvm-untuned``, the cache off or not
written), an export to a temporary directory made when ``build_info`` is first asked, outside
``compile``.
Per-operator profile (``TvmCompiled.profile_ops``): the VM's instrument times every call of a
compiled function (op_profile.py); none on an RPC device."""

from __future__ import annotations

import os

import numpy as np

from harness.backends.base import Backend
from harness.backends.sparse_weights import describe
from harness.backends.tvm.frontend import import_relax, remove_dropout, set_tvm_threads, tvm_target
from harness.backends.tvm.remote import RemoteDevice, RemoteError, deploy, export_library
from harness.machine.threads import ThreadSettings

__all__ = [
    "Tvm",
    "TvmCompiled",
    "TvmSparse",
    "TvmUntuned",
    "import_relax",
    "remove_dropout",
    "set_tvm_threads",
    "tvm_target",
]


LIBRARY = "model.so"  # a compiled Relax executable, export_library's shared object
ARTIFACT = "TVM Relax library (export_library's shared object)"


def library_facts(library) -> dict:
    """``artifact_bytes`` and ``artifact`` of an exported library file (None: not on disk)."""
    if library is None or not library.is_file():
        return {"artifact_bytes": None, "artifact": "none: not exported (compile cache off or not written)"}
    return {"artifact_bytes": library.stat().st_size, "artifact": ARTIFACT}


def exported_facts(module) -> dict:
    """``library_facts`` of ``module`` exported to a temporary directory (None with the reason when
    it cannot be exported here, e.g. no C compiler)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="infer-bench-tvm-") as tmp:
        try:
            export_library(module, Path(tmp) / LIBRARY, None)
        except Exception as exc:  # noqa: BLE001 - e.g. no compiler: the size is unknown, the build fine
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            return {"artifact_bytes": None, "artifact": f"none: export failed: {type(exc).__name__}: {first}"}
        return library_facts(Path(tmp) / LIBRARY)


CPU_TARGETS = frozenset({"llvm", "llvm-generic"})  # what tvm-sparse and tvm-untuned build for (CPU only)


class TvmCompiled:
    def __init__(self, vm, device, label: str, build_info: dict | None = None, unexported=None):
        self.vm = vm
        self.device = device
        self.label = label
        self._build_info = build_info or {}
        self._unexported = unexported  # a module whose library size build_info measures once

    def build_info(self) -> dict:
        if self._unexported is not None:
            self._build_info.update(exported_facts(self._unexported))
            self._unexported = None
        return dict(self._build_info)

    def _to_device(self, inputs):
        import tvm

        return [tvm.runtime.tensor(np.ascontiguousarray(x), self.device) for x in inputs]

    def run(self, inputs):
        out = self.vm["main"](*self._to_device(inputs))
        return [o.numpy() for o in _flatten(out)]

    def prepare(self, inputs):
        args = self._to_device(inputs)
        main = self.vm["main"]
        return lambda: main(*args)

    def prepare_with_transfers(self, inputs):
        """A call that copies its inputs to the device and its outputs back."""
        return lambda: self.run(inputs)

    def clock(self):
        """On a device: the host clock after the device has finished its queued kernels."""
        from harness.run.timing import SyncClock

        return SyncClock(self.device.sync)

    def device_info(self) -> dict:
        import tvm

        from harness.machine.gpu import gpu_at

        gpu = gpu_at(self.device.index)
        return {
            "name": self.device.device_name,
            "compute_capability": self.device.compute_version,
            "driver": gpu.driver if gpu else self.device.driver_version,
            "runtime": f"TVM {tvm.__version__} CUDA runtime, CUDA API {self.device.api_version}",
            "device_peak_mb": None,  # TVM's runtime exposes no allocator statistics
        }

    def thread_info(self):
        import tvm

        return {"tvm_num_threads": tvm.runtime.num_threads()}

    def profile_ops(self, inputs, runs):
        """Per-operator profile of ``runs`` calls (after one warm-up call), timed by the VM's
        instrument (harness.backends.tvm.op_profile); the instrument is removed afterwards."""
        from harness.backends.tvm.op_profile import profile_vm

        return profile_vm(self.vm, self._to_device(inputs), runs)


def _flatten(out):
    if isinstance(out, (list, tuple)) or type(out).__name__ in ("Array", "ADT"):
        items = []
        for o in out:
            items.extend(_flatten(o))
        return items
    return [out]


class Tvm(Backend):
    name = "tvm"
    module = "tvm"
    onnx_importer = "tvm"
    thread_key = "tvm_num_threads"
    sparse = False  # tvm-sparse: sparse constant matmuls as BSR kernels (sparse.py)

    def expected_threads(self, resolved, budget, control="both"):
        """TVM's pool never has more workers than the CPUs it may use: ThreadGroup::Configure caps
        the count (apache/tvm, src/runtime/threading_backend.cc). Measured in a worker on 2 CPUs:
        4 asked through TVM_NUM_THREADS and config_threadpool, or config_threadpool alone, gave 2."""
        return min(resolved, budget.affinity_cpus)

    targets = CPU_TARGETS | {"cuda"}  # not cuda-tf32: DLight's fp32 kernels use no tensor cores

    def version(self):
        import tvm

        return tvm.__version__

    def device_runtime_reason(self, target):
        """TVM runs CUDA through its wheel's CUDA runtime library, which compiles the kernels TVM
        generated when it loads them: with NVRTC (the cuda-bindings package), which needs the CUDA
        headers (harness.machine.gpu.cuda_toolkit), or with TVM_CUDA_COMPILE_MODE=nvcc, nvcc."""
        import importlib.util
        import shutil

        from harness.machine import gpu

        if not gpu.tvm_has_cuda_runtime():
            return "the installed TVM has no CUDA runtime (tvm/lib/libtvm_runtime_cuda.so)"
        if os.environ.get("TVM_CUDA_COMPILE_MODE") == "nvcc":
            return None if shutil.which("nvcc") else "TVM_CUDA_COMPILE_MODE=nvcc, but no nvcc is on PATH"
        if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
            return "TVM compiles CUDA kernels with NVRTC: install cuda-bindings (or set TVM_CUDA_COMPILE_MODE=nvcc)"
        if gpu.cuda_toolkit() is None:
            where = os.environ.get("CUDA_PATH")
            return (
                f"CUDA_PATH={where} lacks the headers TVM's NVRTC compiles need (cuda_runtime.h, CCCL's "
                f"cuda/std): point it at a toolkit that has them, or unset it to use nvcc's, {gpu.DEFAULT_CUDA_ROOT} "
                "or the CUDA lock's wheels"
                if where
                else "TVM's NVRTC compiles need the CUDA headers: install a CUDA toolkit, or the CUDA lock's "
                "cuda-toolkit[cccl] wheels (or set CUDA_PATH)"
            )
        return None

    def compile(self, model, target, threads, example):
        import tvm
        from tvm import relax

        from harness.backends.compile_cache import CompileCache, cache_key
        from harness.backends.tvm.tuning import find_database

        settings = ThreadSettings.coerce(threads)
        set_tvm_threads(settings)
        if target.on_device:
            if target.remote:
                raise RemoteError(f"{self.name}: {target.name} is a local GPU; an RPC device runs CPU targets")
            return self._compile_on_device(model, target, example)
        count = settings.count or tvm.runtime.num_threads()
        tvm_tgt = tvm_target(target, count)
        # a remote device has no records of this profile's (tuning over RPC is not supported yet)
        database = find_database(count, self.version()) if target.host_isa and not target.remote else None
        cache = CompileCache()
        key = cache_key(
            backend=self.name,
            tvm=self.version(),
            build_code=_build_code_digest(),
            target=str(tvm_tgt),
            threads=count,
            model=model.content_digest(),
            tuning_db=database.digest if database else None,
        )
        remote = RemoteDevice.from_dict(target.remote) if target.remote else None
        found = cache.lookup(key)
        if found.entry is not None:  # a device's library is uploaded as it is, never loaded here
            library = found.entry / LIBRARY
            module = tvm.runtime.load_module(str(library)) if remote is None else library
            facts = found.meta
        else:
            module, facts = self._build(model, example, tvm_tgt, database)
            entry = cache.store(key, lambda d: export_library(module, d / LIBRARY, remote), facts)
            library = entry / LIBRARY if entry is not None else None
        label, info = _describe(database, facts, count)
        if self.sparse:
            info.update(facts["sparse"])
            converted, candidates = facts["sparse"]["sparse_weights"], facts["sparse"]["sparse_candidates"]
            label = f"{label}; {describe(converted, candidates, 'BSR', 'matmul/1x1-conv weights')}"
        info["compile_cache"] = cache.status(found)
        info.update(library_facts(library))
        if remote is not None:
            compiled = deploy(module, remote, settings, label, info)
            compiled.run(example)  # no local first inference on a device: its first run stays in compile
            return compiled
        device = tvm.cpu()
        unexported = module if library is None else None
        return TvmCompiled(relax.VirtualMachine(module, device), device, label, info, unexported)

    def _compile_on_device(self, model, target, example):
        """TVM's own GPU build (``pipeline.build_for_gpu``) for the device's own architecture
        (``Target.from_device``). Untuned, uncached."""
        import tvm
        from tvm import relax

        from harness.backends.tvm.pipeline import build_for_gpu, gpu_target
        from harness.machine.gpu import cuda_toolkit

        device = tvm.cuda(target.index)
        if not device.exist:
            raise RuntimeError(f"{self.name}: TVM's CUDA runtime sees no {target.name}")
        toolkit = cuda_toolkit()
        if toolkit is not None:  # TVM's NVRTC compile reads them (this worker process's environment)
            os.environ.update(toolkit.env())
        tvm_tgt = gpu_target(tvm.target.Target.from_device(device))
        executable = build_for_gpu(import_relax(model, example), tvm_tgt)
        label = f"Relax default GPU pipeline (DLight rules), untuned, on {target.name} ({tvm_tgt.attrs.get('arch')})"
        info = {
            "compile_cache": "off: device builds are not cached yet",
            "target": str(tvm_tgt),
            "artifact_bytes": None,
            "artifact": "none: a device build is not exported",
            "cuda_headers": f"{toolkit.root} ({toolkit.found})" if toolkit else None,
        }
        # the VirtualMachine loads the kernels, compiling their CUDA source (NVRTC): part of compile_s
        return TvmCompiled(relax.VirtualMachine(executable, device), device, label, info)

    def _build(self, model, example, tvm_tgt, database):
        """(executable, build facts: functions, functions scheduled from the database, convolution
        layout, and for tvm-sparse what the BSR rewrite converted)"""
        from harness.backends.tvm import pipeline

        fused = pipeline.fuse(import_relax(model, example), tvm_tgt, sparse=self.sparse)
        scheduled = pipeline.schedule(fused.mod, tvm_tgt, database.open() if database else None)
        facts = {"functions": scheduled.functions, "from_database": scheduled.from_database, "layout": fused.layout}
        if fused.sparse is not None:
            facts["sparse"] = fused.sparse.to_dict()
        return pipeline.build(scheduled.mod, tvm_tgt), facts


def _describe(database, facts: dict, threads: int) -> tuple[str, dict]:
    """The label and build facts, from the database in use now (a cached library built with the
    same database bytes carries only its function counts)."""
    import tvm

    from harness.backends.tvm.tuning import own_database_dir

    functions, from_database, layout = int(facts["functions"]), int(facts["from_database"]), str(facts["layout"])
    if database is None:
        label = "default schedules"
    else:
        label = f"{database.describe()}, {from_database}/{functions} functions"
    info = {
        # which key the cell used: <profile-id>/tuning/tvm-<version>-t<threads> (where records would be)
        "tuning_db_key": _store_relative(database.path if database else own_database_dir(threads, tvm.__version__)),
        "tuning_db": database.digest if database else None,
        "tuning_db_borrowed": database.borrowed if database else None,
        "tuning_coverage": (from_database / functions if functions else None) if database else 0.0,
        "conv_layout": layout,
    }
    return label, info


def _store_relative(path) -> str:
    from harness.backends.tvm.tuning import store_root

    try:
        return str(path.resolve().relative_to(store_root().resolve()))
    except ValueError:  # a borrowed database elsewhere: its full path
        return str(path)


def _build_code_digest() -> str:
    """The harness's own TVM build code (pipeline, schedules, import): a cached library built by
    an older version of it is never loaded."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


class TvmSparse(Tvm):
    """``tvm`` with matmuls whose constant weight has >= SPARSE_MIN zeros run by a BSR kernel."""

    name = "tvm-sparse"
    targets = CPU_TARGETS
    sparse = True


class TvmUntuned(Tvm):
    """TVM's default_build pipeline: no fusion, no schedules (serial scalar loops)."""

    name = "tvm-untuned"
    targets = CPU_TARGETS

    def compile(self, model, target, threads, example):
        import tvm
        from tvm import relax

        settings = ThreadSettings.coerce(threads)
        set_tvm_threads(settings)
        mod = import_relax(model, example)
        executable = tvm.compile(mod, target=tvm_target(target, settings.count or tvm.runtime.num_threads()))
        device = tvm.cpu()
        vm = relax.VirtualMachine(executable, device)
        return TvmCompiled(vm, device, "untuned (default_build pipeline)", unexported=executable)
