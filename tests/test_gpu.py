"""GPU targets without a GPU: target names, skip reasons decided in the pytest process (no worker),
the device clocks against a fake device whose calls return before their kernels end, the TF32
parity budget against emulated TF32 matmuls, the thread axis of device cells, the machine profile
with GPUs, and the worker's device path through a fake GPU backend.

What none of this shows: that torch, torch.compile, ORT's CUDA provider or TVM's GPU build run on
a real GPU. Those paths have not run on one (README, "GPU targets")."""

from __future__ import annotations

import importlib.util
import platform
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.backends import get_backend
from harness.backends.base import Backend
from harness.machine import gpu as gpu_module
from harness.machine.gpu import (
    CudaToolkit,
    Gpu,
    cuda_toolkit,
    ort_has_cuda_provider,
    parse_query,
    torch_cuda_version,
    tvm_has_cuda_runtime,
    visible,
)
from harness.machine.profile import profile_id
from harness.plan.cell import Cell
from harness.plan.matrix import Matrix
from harness.plan.support import unsupported_reason
from harness.plan.targets import CUDA, FP32, TF32, UnknownTargetError, get_target
from harness.run.parity import ParityPolicy, check_parity, policy_for
from harness.run.schedule import run_cell
from harness.run.timing import EventClock, HostClock, SyncClock, TimingOptions, measure

WHEEL_ROOTS = gpu_module._wheel_roots
H100 = Gpu(0, "NVIDIA H100 80GB HBM3", "580.65.06", 81559, "9.0", "GPU-1b2c")
SMI_OUTPUT = (
    "0, NVIDIA H100 80GB HBM3, 580.65.06, 81559, 9.0, GPU-1b2c\n"
    "1, NVIDIA A100-SXM4-40GB, 580.65.06, 40960, 8.0, GPU-9f8e\n"
)


@pytest.fixture
def gpus(monkeypatch):
    """Pretend the host has these GPUs (nvidia-smi's answer, cached per process)."""

    def set_gpus(*found):
        monkeypatch.setattr(gpu_module, "host_gpus", lambda: tuple(found))

    return set_gpus


# -- targets -------------------------------------------------------------------------------------
def test_cuda_targets_name_the_device_and_its_matmul_precision():
    cuda = get_target("cuda")
    assert (cuda.device, cuda.index, cuda.matmul_precision, cuda.family) == (CUDA, 0, FP32, "cuda")
    assert cuda.on_device and cuda.torch_device == "cuda:0"
    second = get_target("cuda:1")
    assert (second.name, second.family, second.index, second.torch_device) == ("cuda:1", "cuda", 1, "cuda:1")
    tf32 = get_target("cuda-tf32:2")
    assert (tf32.family, tf32.index, tf32.matmul_precision) == ("cuda-tf32", 2, TF32)
    assert tf32.precision_label() == "fp32 matmuls: TF32 (10-bit mantissa inputs)"
    assert cuda.precision_label() == "fp32 matmuls: full fp32"
    assert not get_target("llvm").on_device and get_target("llvm").precision_label() == ""


@pytest.mark.parametrize("name", ["rocm", "llvm:1", "cuda:x", "cuda:", "cuda:-1", "CUDA"])
def test_unknown_targets_say_which_exist(name):
    with pytest.raises(UnknownTargetError) as err:
        get_target(name)
    assert str(err.value) == f"unknown target {name!r}; known targets: llvm, llvm-generic, cuda[:N], cuda-tf32[:N]"


# -- what the host has, read without importing a runtime ---------------------------------------
def test_nvidia_smi_query_and_datasheet_peaks():
    h100, a100 = parse_query(SMI_OUTPUT + "garbage line\n")
    assert h100 == H100 and a100.index == 1 and a100.compute_capability == "8.0"
    assert h100.peak_gflops("fp32") == 67_000 and h100.peak_gflops("tf32") == 494_700
    assert a100.peak_gflops("fp32") == 19_500  # not A10's
    assert Gpu(0, "NVIDIA H100 PCIe", "", None, "9.0").peak_gflops() == 51_200  # not the SXM part's
    assert Gpu(0, "NVIDIA L40", "", None, "8.9").peak_gflops() == 90_500  # not L4's
    assert Gpu(0, "Tesla T4", "", None, "7.5").peak_gflops("tf32") is None  # Turing has no TF32
    assert Gpu(0, "NVIDIA Unknown X", "", None, "9.0").peak_gflops() is None  # never a guess
    assert parse_query("") == []


@pytest.mark.parametrize(
    "selection, shown",
    [
        (None, [("NVIDIA H100 80GB HBM3", 0), ("NVIDIA A100-SXM4-40GB", 1)]),
        ("1", [("NVIDIA A100-SXM4-40GB", 0)]),  # renumbered: the only visible GPU is cuda:0
        ("1,0", [("NVIDIA A100-SXM4-40GB", 0), ("NVIDIA H100 80GB HBM3", 1)]),
        ("GPU-9f", [("NVIDIA A100-SXM4-40GB", 0)]),  # a UUID prefix
        ("0,7,1", [("NVIDIA H100 80GB HBM3", 0)]),  # CUDA stops at the first entry naming none
        ("", []),
    ],
)
def test_cuda_visible_devices_selects_and_renumbers_as_cuda_does(selection, shown):
    assert [(g.name, g.index) for g in visible(parse_query(SMI_OUTPUT), selection)] == shown


@pytest.mark.parametrize(
    "text, expected",
    [
        ("cuda: Optional[str] = None\n", None),
        ("cuda: Optional[str] = '12.8'\n", "12.8"),
        ("cuda = '11.8'\n", "11.8"),
        ("__version__ = '2.13.0+cpu'\n", None),
    ],
)
def test_torch_cuda_build_is_read_from_its_version_file(tmp_path, text, expected):
    (tmp_path / "version.py").write_text("from typing import Optional\n" + text)
    assert torch_cuda_version(tmp_path) == expected


def test_runtime_cuda_libraries_are_found_by_file(tmp_path):
    (tmp_path / "capi").mkdir()
    (tmp_path / "lib").mkdir()
    assert not ort_has_cuda_provider(tmp_path) and not tvm_has_cuda_runtime(tmp_path)
    (tmp_path / "capi" / "libonnxruntime_providers_cuda.so").touch()
    (tmp_path / "lib" / "libtvm_runtime_cuda.so").touch()
    assert ort_has_cuda_provider(tmp_path) and tvm_has_cuda_runtime(tmp_path)


# -- skip reasons, in the pytest process -------------------------------------------------------
def test_without_a_gpu_every_cuda_cell_is_skipped_saying_so(gpus):
    gpus()
    for backend in ("torch", "torch-compile", "ort", "tvm"):
        assert unsupported_reason(Cell("mlp", backend, "cuda")) == (
            "no NVIDIA GPU here (nvidia-smi is missing or lists none)"
        )
    assert unsupported_reason(Cell("mlp", "ort", "llvm")) is None


def test_a_gpu_index_the_host_lacks_is_named(gpus):
    gpus(H100)
    assert unsupported_reason(Cell("mlp", "ort", "cuda:1")) == "cuda:1 is not on this host (it has cuda:0)"


def test_with_a_gpu_the_installed_runtimes_decide(gpus, monkeypatch):
    gpus(H100)
    # packages as on this project's CPU lock: torch's CPU build, onnxruntime without its CUDA provider
    monkeypatch.setattr(gpu_module, "torch_cuda_version", lambda package=None: None)
    monkeypatch.setattr(gpu_module, "ort_has_cuda_provider", lambda package=None: False)
    assert unsupported_reason(Cell("mlp", "torch", "cuda")).startswith("torch 2.")
    assert unsupported_reason(Cell("mlp", "torch", "cuda")).endswith(
        "is a CPU build (torch.version.cuda is None): install a CUDA build of torch"
    )
    assert unsupported_reason(Cell("mlp", "ort", "cuda-tf32")) == (
        "onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu provides it, in place of onnxruntime)"
    )
    # a CUDA build of torch without Triton: torch runs, torch.compile cannot
    monkeypatch.setattr(gpu_module, "torch_cuda_version", lambda package=None: "12.8")
    assert unsupported_reason(Cell("mlp", "torch", "cuda")) is None
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "triton" else object())
    assert unsupported_reason(Cell("mlp", "torch-compile", "cuda")) == (
        "torch.compile on cuda generates Triton kernels: triton is not installed"
    )


def test_tvm_needs_its_cuda_runtime_and_a_kernel_compiler(gpus, monkeypatch):
    gpus(H100)
    tvm = get_backend("tvm")
    monkeypatch.delenv("TVM_CUDA_COMPILE_MODE", raising=False)
    monkeypatch.setattr(gpu_module, "tvm_has_cuda_runtime", lambda package=None: False)
    assert tvm.device_runtime_reason(get_target("cuda")) == (
        "the installed TVM has no CUDA runtime (tvm/lib/libtvm_runtime_cuda.so)"
    )
    monkeypatch.setattr(gpu_module, "tvm_has_cuda_runtime", lambda package=None: True)
    monkeypatch.setattr(gpu_module, "cuda_toolkit", lambda: CudaToolkit("/usr/local/cuda"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name.startswith("cuda") else real_find_spec(name, *a)
    )
    assert tvm.device_runtime_reason(get_target("cuda")) == (
        "TVM compiles CUDA kernels with NVRTC: install cuda-bindings (or set TVM_CUDA_COMPILE_MODE=nvcc)"
    )
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object())  # cuda-bindings there
    assert tvm.device_runtime_reason(get_target("cuda")) is None
    monkeypatch.setattr(gpu_module, "cuda_toolkit", lambda: None)  # a driver, no headers: NVRTC cannot compile
    monkeypatch.delenv("CUDA_PATH", raising=False)
    assert tvm.device_runtime_reason(get_target("cuda")) == (
        "TVM's NVRTC compiles need the CUDA headers: install a CUDA toolkit, or the CUDA lock's "
        "cuda-toolkit[cccl] wheels (or set CUDA_PATH)"
    )
    monkeypatch.setenv("CUDA_PATH", "/opt/empty")
    assert tvm.device_runtime_reason(get_target("cuda")) == (
        "CUDA_PATH=/opt/empty lacks the headers TVM's NVRTC compiles need (cuda_runtime.h, CCCL's cuda/std): "
        "point it at a toolkit that has them, or unset it to use nvcc's, /usr/local/cuda or the CUDA lock's wheels"
    )
    monkeypatch.setenv("TVM_CUDA_COMPILE_MODE", "nvcc")  # nvcc finds its own headers
    monkeypatch.setenv("PATH", "/nonexistent")
    assert tvm.device_runtime_reason(get_target("cuda")) == "TVM_CUDA_COMPILE_MODE=nvcc, but no nvcc is on PATH"


def cuda_tree(root: Path, headers: str = "include", cccl: str | None = "include") -> Path:
    """A CUDA header tree: cuda_runtime.h under ``root/headers``, CCCL's cuda/std/cstdint under
    ``root/cccl`` (None: no CCCL)."""
    (root / headers).mkdir(parents=True, exist_ok=True)
    (root / headers / "cuda_runtime.h").write_text("")
    if cccl is not None:
        (root / cccl / "cuda" / "std").mkdir(parents=True, exist_ok=True)
        (root / cccl / "cuda" / "std" / "cstdint").write_text("")
    return root


@pytest.fixture
def no_cuda(monkeypatch, tmp_path):
    """A host with no CUDA headers anywhere (this machine's own toolkit and wheels hidden)."""
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(gpu_module, "DEFAULT_CUDA_ROOT", tmp_path / "no-usr-local-cuda")
    monkeypatch.setattr(gpu_module, "_wheel_roots", lambda: [])
    return tmp_path


def test_cuda_headers_are_found_where_tvm_reads_them(no_cuda, monkeypatch):
    tmp = no_cuda
    assert cuda_toolkit() is None
    # a system toolkit: CCCL under targets/<triple>/include/cccl, which TVM looks in itself
    triple = f"{platform.machine()}-{platform.system().lower()}"
    system = cuda_tree(tmp / "cuda-13.0", cccl=f"targets/{triple}/include/cccl")
    monkeypatch.setattr(gpu_module, "DEFAULT_CUDA_ROOT", system)
    assert cuda_toolkit() == CudaToolkit(str(system), (), str(system))
    # CUDA_PATH is the only place looked at once set: one without headers is none
    monkeypatch.setenv("CUDA_PATH", str(tmp / "elsewhere"))
    assert cuda_toolkit() is None
    monkeypatch.setenv("CUDA_PATH", str(cuda_tree(tmp / "elsewhere", cccl="include/cccl")))
    found = cuda_toolkit()  # CCCL in include/cccl, where TVM does not look: passed as an include
    assert found == CudaToolkit(str(tmp / "elsewhere"), (str(tmp / "elsewhere" / "include" / "cccl"),), "CUDA_PATH")
    # headers but no CCCL: NVRTC's preamble includes cuda/std/cstdint, so no toolkit
    monkeypatch.setenv("CUDA_PATH", str(cuda_tree(tmp / "no-cccl", cccl=None)))
    assert cuda_toolkit() is None


def test_an_nvcc_wrapper_script_leads_to_its_toolkit(no_cuda, monkeypatch):
    """As on a machine with /usr/local/bin/nvcc = 'exec /usr/local/cuda-13.0/bin/nvcc "$@"': TVM takes
    /usr/local for the toolkit (it has no headers); the script's nvcc leads to the real one."""
    tmp = no_cuda
    real = cuda_tree(tmp / "cuda-13.0")
    (real / "bin").mkdir()
    (real / "bin" / "nvcc").write_text("")
    bin_dir = tmp / "usr-local" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "nvcc").touch(mode=0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    found = CudaToolkit(str(real), (), "nvcc on PATH")
    for script in (
        f'exec {real}/bin/nvcc "$@"',
        f'# CUDA 13\nexec "{real}/bin/nvcc" "$@"',  # quoted
        'exec ../../cuda-13.0/bin/nvcc "$@"',  # relative to the script, not to the working directory
    ):
        (bin_dir / "nvcc").write_text(f"#!/bin/sh\n{script}\n")
        assert cuda_toolkit() == found, script
    for script in (
        "echo not a wrapper",  # names no nvcc
        'exec "${CUDA_HOME}/bin/nvcc" "$@"',  # a variable: not followed
        'exec /nonexistent/bin/nvcc "$@"',  # an nvcc that is not there
    ):
        (bin_dir / "nvcc").write_text(f"#!/bin/sh\n{script}\n")
        assert cuda_toolkit() is None, script


def test_the_cuda_wheels_headers_serve_when_no_toolkit_is_installed(no_cuda, monkeypatch):
    """The CUDA lock's layout: nvidia/cu13/include (cuda_runtime.h) and nvidia/cu13/include/cccl in a
    site directory; a worker hands TVM the root and the CCCL folder, keeping flags the user set."""
    monkeypatch.setattr(gpu_module, "_wheel_roots", WHEEL_ROOTS)  # the real search, over a site of our own
    monkeypatch.delitem(sys.modules, "nvidia", raising=False)
    site = no_cuda / "site-packages"
    wheel = cuda_tree(site / "nvidia" / "cu13", cccl="include/cccl")
    monkeypatch.syspath_prepend(str(site))
    found = cuda_toolkit()
    assert found == CudaToolkit(str(wheel), (str(wheel / "include" / "cccl"),), "NVIDIA's CUDA wheels")
    assert found.env({}) == {"CUDA_PATH": str(wheel), "TVM_CUDA_NVRTC_EXTRA_OPTS": f"-I{wheel}/include/cccl"}
    # a user's own flags are kept; ours are added once however often a worker asks
    mine = {"CUDA_PATH": "/mine", "TVM_CUDA_NVRTC_EXTRA_OPTS": "-lineinfo"}
    mine.update(found.env(mine))
    mine.update(found.env(mine))
    assert mine == {"CUDA_PATH": "/mine", "TVM_CUDA_NVRTC_EXTRA_OPTS": f"-lineinfo -I{wheel}/include/cccl"}
    # a folder with a space survives TVM's shlex split
    spaced = CudaToolkit("/r", ("/my env/cccl",))
    assert shlex.split(spaced.env({})["TVM_CUDA_NVRTC_EXTRA_OPTS"]) == ["-I/my env/cccl"]
    # CUDA 12's wheels: headers in nvidia/cuda_runtime/include, CCCL in nvidia/cuda_cccl/include
    shutil.rmtree(wheel)
    runtime = cuda_tree(site / "nvidia" / "cuda_runtime", cccl=None)
    cuda_tree(site / "nvidia" / "cuda_cccl", headers="other", cccl="include")
    assert cuda_toolkit() == CudaToolkit(
        str(runtime), (str(site / "nvidia" / "cuda_cccl" / "include"),), "NVIDIA's CUDA wheels"
    )


def test_an_ort_session_that_fell_back_to_the_cpu_is_an_error(monkeypatch):
    """The installed onnxruntime has no CUDA provider here (the CPU lock), as onnxruntime-gpu has none
    loadable on a host without a driver: ORT warns and runs on the CPU; the cell must not."""
    import onnxruntime

    from harness.models import build_model

    if ort_has_cuda_provider() and gpu_module.host_gpus():
        pytest.skip("onnxruntime-gpu and a GPU here: ORT would run on it, not fall back")
    preloaded = []
    monkeypatch.setattr(onnxruntime, "preload_dlls", lambda: preloaded.append(True), raising=False)
    model = build_model("mlp")
    with pytest.raises(RuntimeError) as raised:
        get_backend("ort").compile(model, get_target("cuda"), 1, model.make_inputs(0))
    assert str(raised.value) == (
        "ort: the session runs on CPUExecutionProvider, not CUDAExecutionProvider (ORT could not load it: "
        "check the CUDA and cuDNN libraries onnxruntime-gpu needs)"
    )
    assert preloaded == [True]  # the wheels' CUDA libraries are loaded before the session


def _tvm_cuda_compile_reason() -> str | None:
    """Why TVM's CUDA kernels cannot be built and NVRTC-compiled here: the tvm backend's own cuda skip
    reason, GPU aside (none where the CUDA lock is installed: it needs no GPU)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TVM_CUDA_COMPILE_MODE", raising=False)  # NVRTC, as the test compiles
        return get_backend("tvm").device_runtime_reason(get_target("cuda"))


TVM_CUDA_COMPILE_REASON = _tvm_cuda_compile_reason()


@pytest.mark.skipif(TVM_CUDA_COMPILE_REASON is not None, reason=str(TVM_CUDA_COMPILE_REASON))
@pytest.mark.parametrize("model_name", ["mlp", "bert_tiny"])
def test_tvm_builds_cuda_kernels_that_nvrtc_compiles_for_an_h100(model_name, monkeypatch):
    """What runs without a GPU of a tvm cuda cell: the backend's GPU build for sm_90 (the H100's,
    named here: ``Target.from_device`` needs the device), then the CUDA source it carries compiled
    by the callback TVM's CUDA runtime calls when it loads the kernels, with the headers the worker
    hands TVM (``CudaToolkit.env``). The cubin is not loaded or run."""
    from tvm.support import nvcc

    from harness.backends.tvm.frontend import import_relax
    from harness.backends.tvm.pipeline import build_for_gpu, gpu_target
    from harness.models import build_model

    for name, value in cuda_toolkit().env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TVM_CUDA_COMPILE_MODE", raising=False)  # NVRTC, TVM's default
    model = build_model(model_name)
    target = gpu_target({"kind": "cuda", "arch": "sm_90", "max_threads_per_block": 1024, "thread_warp_size": 32})
    executable = build_for_gpu(import_relax(model, model.make_inputs(0)), target)
    (cuda,) = [m for m in executable.mod.imports[0].imports if m.kind == "cuda"]
    source = cuda.inspect_source("")
    assert source.count("__global__") >= 5
    with target:
        cubin = bytes(nvcc.tvm_callback_cuda_compile(source))
    assert cubin[:4] == b"\x7fELF" and len(cubin) > 10_000


@pytest.mark.parametrize(
    "backend, target, supports",
    [
        ("tvm", "cuda-tf32", "cuda, llvm, llvm-generic"),  # DLight's fp32 kernels use no tensor cores
        ("tvm-sparse", "cuda", "llvm, llvm-generic"),
        ("tvm-untuned", "cuda", "llvm, llvm-generic"),
        ("torch-sparse", "cuda", "llvm"),
        ("ort-opt", "cuda", "llvm"),
    ],
)
def test_backends_without_a_device_build_say_so(gpus, backend, target, supports):
    gpus(H100)
    model = "bert_tiny" if backend == "ort-opt" else "mlp"
    reason = unsupported_reason(Cell(model, backend, target))
    assert reason == f"{backend} does not support target {target!r} (supports: {supports})"


# -- the clocks: a device call returns before its kernels end ---------------------------------
class FakeDevice:
    """A host clock and a device queue: a launch costs the host ``launch_s``, its kernel runs
    ``kernel_s`` on the device after the work already queued."""

    def __init__(self, launch_s: float, kernel_s: float):
        self.host = 0.0
        self.device_free = 0.0  # when the device finishes what is queued
        self.launch_s, self.kernel_s = launch_s, kernel_s

    def timer(self) -> float:
        self.host += 1e-9
        return self.host

    def step(self):
        self.host += self.launch_s
        self.device_free = max(self.device_free, self.host) + self.kernel_s

    def sync(self):
        self.host = max(self.host, self.device_free)

    def event(self):
        device = self

        class Event:
            def record(self):
                self.at = max(device.device_free, device.host)  # after the queued work

            def synchronize(self):
                device.host = max(device.host, self.at)

            def elapsed_time(self, end) -> float:
                return (end.at - self.at) * 1e3  # ms, as CUDA's

        return Event()


@given(launch=st.floats(1e-6, 2e-5), kernel=st.floats(1e-4, 5e-3))
@settings(max_examples=30, deadline=None)
def test_device_clocks_time_the_kernels_and_the_host_clock_only_the_launches(launch, kernel):
    options = TimingOptions(max_time=0.05, min_rounds=5, warmup=False)

    def per_call(clock_of):
        device = FakeDevice(launch, kernel)
        samples = measure(device.step, options, timer=device.timer, clock=clock_of(device))
        return np.median(samples.per_call_s)

    # an idle device starts the kernel once it is launched: a call's latency is launch + kernel
    assert per_call(lambda d: EventClock(d.event)) == pytest.approx(launch + kernel, rel=1e-6)
    assert per_call(lambda d: SyncClock(d.sync, d.timer)) == pytest.approx(launch + kernel, rel=1e-4)
    host_only = per_call(lambda d: HostClock(d.timer))  # the lie a host clock tells about a GPU
    assert host_only == pytest.approx(launch, rel=1e-3) and host_only < kernel / 4


# -- parity under TF32 -------------------------------------------------------------------------
def tf32(x: np.ndarray) -> np.ndarray:
    """fp32 values rounded to TF32 (10 mantissa bits, round to nearest), as tensor cores read them."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


def mlp_outputs(seed: int, round_inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float64, fp32, fp32 with every matmul's inputs rounded by ``round_inputs``) of a 4-layer MLP."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 256))
    weights = [rng.standard_normal((256, 256)) / 16 for _ in range(4)]

    def forward(dtype, rounding=lambda a: a):
        h = x.astype(dtype)
        for w in weights:
            h = np.maximum(rounding(h) @ rounding(w.astype(dtype)), 0) if w is not weights[-1] else h @ w.astype(dtype)
        return h

    return forward(np.float64), forward(np.float32), forward(np.float32, round_inputs)


@given(seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_tf32_matmuls_pass_the_tf32_budget_and_full_fp32_holds_the_fp32_one(seed):
    y64, y32, y_tf32 = mlp_outputs(seed, tf32)
    fp32_policy, tf32_policy = ParityPolicy(), policy_for(ParityPolicy(), get_target("cuda-tf32"))
    assert policy_for(ParityPolicy(), get_target("cuda")) == fp32_policy  # plain cuda: full fp32
    assert check_parity(["y"], [y_tf32], [y64], [y32], tf32_policy).passed
    assert not check_parity(["y"], [y_tf32], [y64], [y32], fp32_policy).passed  # TF32 is not fp32
    assert check_parity(["y"], [y32], [y64], [y32], fp32_policy).passed


def test_the_tf32_budget_still_catches_a_wrong_output():
    y64, y32, y_tf32 = mlp_outputs(1, tf32)
    wrong = y_tf32.copy()
    wrong[0] += 0.05 * np.abs(y64).max()  # 5% of the scale: five times the TF32 floor
    assert not check_parity(["y"], [wrong], [y64], [y32], policy_for(ParityPolicy(), get_target("cuda-tf32"))).passed


# -- the thread axis of device cells -----------------------------------------------------------
def test_device_cells_take_one_launch_thread_and_keep_their_smoke_mark():
    matrix = Matrix(
        models=["mlp"],
        backends=["torch"],
        targets=["llvm", "cuda"],
        threads=["1", "2", "auto"],
        thread_control=["both", "unset"],
        smoke={"threads": ["2"]},
    )
    cells = matrix.expand()
    cpu = [c for c in cells if c.cell.target == "llvm"]
    (cuda,) = [c for c in cells if c.cell.target == "cuda"]
    assert len(cpu) == 4  # 1, 2, auto under both; the runtime's choice under unset
    assert (cuda.cell.threads, cuda.cell.thread_control, cuda.cell.interop) == ("1", "both", 1)
    assert cuda.id == "mlp-torch-cuda-sp0-t1"
    assert cuda.smoke and [c.cell.threads for c in cpu if c.smoke] == ["2"]


def test_a_host_thread_suite_leaves_device_cells_out():
    matrix = Matrix(models=["mlp"], backends=["ort"], targets=["llvm", "cuda:1"], threads=["1", "2"])
    left_out = [c for c in matrix.override().expand() if c.cell.target == "cuda:1"]
    assert [c.skip_reason for c in left_out] == [None]
    thread_suite = Matrix(
        models=["mlp"], backends=["ort"], targets=["llvm", "cuda:1"], threads=["1", "2"], host_threads_only=True
    )
    (cuda,) = [c for c in thread_suite.expand(lambda cell: None) if c.cell.target == "cuda:1"]
    assert cuda.skip_reason == "cuda:1 runs device kernels: this suite measures host CPU threads, and it has none"


# -- the machine profile -----------------------------------------------------------------------
def test_gpus_make_another_machine_and_a_cpu_only_id_is_unchanged():
    profile = {
        "cpu": {"model": "AMD EPYC 9654", "isa": ["avx2"]},
        "cpu_budget": {"effective_cpus": 16, "host_cpus": 16},
        "memory_gib": 128,
        "os": "Linux 6.8",
        "python": "3.11.7",
    }
    cpu_only = profile_id(profile)
    assert cpu_only.startswith("amd-epyc-9654-16cpu-128g-") and len(cpu_only.split("-")[-1]) == 6
    one = profile_id({**profile, "gpus": [H100.to_dict()]})
    other_driver = profile_id({**profile, "gpus": [{**H100.to_dict(), "driver": "590.1"}]})
    two = profile_id({**profile, "gpus": [H100.to_dict(), H100.to_dict()]})
    assert one.startswith("amd-epyc-9654-16cpu-128g-1xh100-") and two.startswith("amd-epyc-9654-16cpu-128g-2xh100-")
    assert one == other_driver and len({cpu_only, one, two}) == 3


def test_the_profile_lists_the_gpus_only_where_there_are_some(gpus):
    from harness.machine.profile import machine_profile

    gpus()
    assert "gpus" not in machine_profile()
    gpus(H100)
    assert machine_profile()["gpus"] == [H100.to_dict()]


# -- the worker's device path, through a fake GPU backend ---------------------------------------
LAUNCH_S, KERNEL_S, COPY_S = 2e-5, 2e-3, 5e-4


class FakeGpuCompiled:
    """An MLP evaluated with numpy, whose timed call queues its 'kernel' on a FakeDevice."""

    def __init__(self, model, target):
        self.model, self.target = model, target
        self.device = FakeDevice(LAUNCH_S, KERNEL_S)
        self.label = f"fake kernels on {target.name}, {target.precision_label()}"
        self.prepared = None

    def run(self, inputs):
        return self.model.reference(inputs)[1]  # fp32 outputs

    def prepare(self, inputs):
        self.prepared = "resident"
        return self.device.step

    def prepare_with_transfers(self, inputs):
        self.prepared = "with transfers"

        def step():  # the copies in and out hold the host, then the kernel runs
            self.device.sync()
            self.device.host += COPY_S
            self.device.step()
            self.device.sync()
            self.device.host += COPY_S

        return step

    def clock(self):
        return EventClock(self.device.event)

    def thread_info(self):
        return {}

    def device_info(self):
        return {"name": "Fake GPU", "driver": "0", "runtime": "fake", "device_peak_mb": 12.5, "prepared": self.prepared}


class FakeGpu(Backend):
    name = "fakegpu"
    module = ""
    targets = frozenset({"llvm", "cuda"})

    def version(self):
        return "test"

    def compile(self, model, target, threads, example):
        return FakeGpuCompiled(model, target)


@pytest.mark.parametrize("include_transfers", [False, True])
def test_the_worker_times_a_device_cell_with_its_clock_and_records_the_device(monkeypatch, include_transfers):
    monkeypatch.setenv("INFER_BENCH_BACKENDS", "fakegpu=tests.test_gpu:FakeGpu")
    timing = {"max_time": 0.05, "min_rounds": 5, "warmup": False}
    cell = Cell("mlp", "fakegpu", "cuda")
    result = run_cell(cell, launcher="inline", timing=timing, include_transfers=include_transfers)
    assert result.status == "ok", result.message
    # the device's time for a call (launch + kernel), not the 20 us the host spends launching it;
    # with transfers, the copies in and out too
    call_s = LAUNCH_S + KERNEL_S + (2 * COPY_S if include_transfers else 0.0)
    assert np.median(result.samples[0].per_call_s) == pytest.approx(call_s, rel=1e-6)
    assert result.process_metrics[0].first_inference_s == pytest.approx(call_s, rel=1e-6)
    assert result.process_metrics[0].model_rss_mb is None  # mostly the CUDA context on a GPU: not the model
    assert result.process_metrics[0].device_peak_mb == 12.5
    assert result.device["name"] == "Fake GPU" and "device_peak_mb" not in result.device
    assert result.device["clock"] == "device events recorded on the stream before and after each round"
    assert result.samples[0].warmup_rounds > 0 and result.device["warmup"].startswith("on: a device cell always")
    assert result.device["prepared"] == ("with transfers" if include_transfers else "resident")
    resident = "excluded: inputs resident on the device"
    assert result.device["transfers"] == ("included" if include_transfers else resident)
    assert result.label == "fake kernels on cuda, fp32 matmuls: full fp32"


def test_device_cells_run_no_scenario_and_no_op_profile(monkeypatch):
    monkeypatch.setenv("INFER_BENCH_BACKENDS", "fakegpu=tests.test_gpu:FakeGpu")
    timing = {"max_time": 0.01, "min_rounds": 3, "warmup": False}
    served = run_cell(Cell("mlp", "fakegpu", "cuda", scenario="throughput"), launcher="inline", timing=timing)
    assert served.status == "error"
    assert served.message == (
        "throughput failed: ScenarioError: the throughput scenario drives this host's CPU, not a cuda device"
    )
    profiled = run_cell(Cell("mlp", "fakegpu", "cuda"), launcher="inline", timing=timing, profile_ops=5)
    assert profiled.op_profile is None
    assert profiled.op_profile_error == "no per-operator profiler on cuda (device kernels are not profiled yet)"


@pytest.mark.parametrize("backend", ["ort", "torch", "tvm"])
def test_cpu_cells_are_timed_by_the_host_clock_and_record_no_device(backend):
    timing = {"max_time": 0.01, "min_rounds": 3, "warmup": False}
    result = run_cell(Cell("mlp", backend, "llvm"), launcher="inline", timing=timing)
    assert result.status == "ok", result.message
    assert result.device == {} and result.samples[0].warmup_rounds == 0
    assert result.process_metrics[0].device_peak_mb is None and result.process_metrics[0].model_rss_mb is not None


def test_a_baseline_timed_with_other_transfers_is_not_judged():
    from harness.compare.compare import compare_results

    def saved(transfers, seconds):
        info = {"device": {"transfers": transfers}, "samples": {"per_process": [[seconds, seconds * 1.01]] * 5}}
        bench = {"fullname": "s::t[c]", "stats": {"median": seconds}, "extra_info": info}
        return {"benchmarks": [bench], "machine_info": {}, "infer_bench": {"format_version": 2}}

    resident = "excluded: inputs resident on the device"
    (same,) = compare_results(saved(resident, 0.001), saved(resident, 0.002)).verdicts
    assert same.verdict == "regression"  # twice as slow, timed alike
    (other,) = compare_results(saved(resident, 0.001), saved("included", 0.002)).verdicts
    assert other.verdict == "inconclusive"
    assert other.note == (
        "host-device copies were excluded: inputs resident on the device in the baseline and included now: "
        "time both the same way (--include-transfers)"
    )


def test_workers_number_gpus_as_nvidia_smi_does():
    from harness.run.launcher import build_request, worker_env

    env = worker_env(build_request(Cell("mlp", "torch", "cuda:1")))
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # not CUDA's default, fastest first
