"""The host's NVIDIA GPUs and which runtimes can use them, found without importing any runtime
(the pytest process decides which cuda cells run before any worker starts).

- GPUs: ``nvidia-smi --query-gpu`` (its CSV: index, name, driver, memory, compute capability,
  uuid), once per process; none where nvidia-smi is missing or fails (no driver, no device).
  nvidia-smi numbers GPUs in PCI bus order, CUDA by default fastest first: workers run with
  ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (harness.run.launcher), so that ``cuda:N`` is the same GPU
  for both, and ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs) selects and renumbers them here as
  CUDA does (``visible``).
- torch: a CUDA build says so in ``torch/version.py`` (``cuda = '12.8'``; None in a CPU build),
  read as text.
- onnxruntime: its CUDA execution provider is a library beside its binding
  (``capi/libonnxruntime_providers_cuda.so``), shipped by onnxruntime-gpu only.
- TVM: the PyPI wheel ships ``lib/libtvm_runtime_cuda.so``; it loads where the driver does. Its
  CUDA runtime compiles the kernels with NVRTC, which needs the CUDA headers: ``cuda_toolkit``
  finds them (a system toolkit, or the CUDA lock's wheels) where TVM's own search would not.

The fp32 peak of a known GPU (dense, no sparsity; vendor datasheets) gives a cuda cell its
"% of peak"; an unknown GPU has none (None), never a guess."""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

QUERY = "index,name,driver_version,memory.total,compute_cap,uuid"
NVIDIA_SMI_TIMEOUT_S = 10
DEFAULT_CUDA_ROOT = Path("/usr/local/cuda")  # where CUDA's installers put the toolkit

# dense fp32 and TF32 tensor-core peaks in GFLOP/s, from NVIDIA's datasheets (SXM parts where
# a name covers several; TF32 without structured sparsity). Matched on the name nvidia-smi prints.
PEAK_GFLOPS = {
    "H200": {"fp32": 67_000, "tf32": 494_700},
    "H100 80GB HBM3": {"fp32": 67_000, "tf32": 494_700},  # SXM
    "H100 PCIe": {"fp32": 51_200, "tf32": 378_000},
    "H100 NVL": {"fp32": 60_000, "tf32": 417_500},
    "A100": {"fp32": 19_500, "tf32": 156_000},
    "L40S": {"fp32": 91_600, "tf32": 183_000},
    "L40": {"fp32": 90_500, "tf32": 90_500},
    "L4": {"fp32": 30_300, "tf32": 60_000},
    "A10": {"fp32": 31_200, "tf32": 62_500},
    "T4": {"fp32": 8_100, "tf32": None},  # Turing: no TF32
    "V100": {"fp32": 15_700, "tf32": None},  # Volta: no TF32
}


@dataclass(frozen=True)
class Gpu:
    index: int  # its CUDA ordinal (cuda:N) in the harness's workers
    name: str
    driver: str
    memory_mib: int | None
    compute_capability: str  # "9.0"
    uuid: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def peak_gflops(self, precision: str = "fp32") -> float | None:
        """The datasheet peak of this GPU at ``precision`` (fp32, tf32); None where not known."""
        for key in sorted(PEAK_GFLOPS, key=len, reverse=True):  # "H100 PCIe" before "H100"
            if key in self.name:
                return PEAK_GFLOPS[key].get(precision)
        return None


def parse_query(text: str) -> list[Gpu]:
    """nvidia-smi's ``--query-gpu=QUERY --format=csv,noheader,nounits`` output, one GPU a line."""
    gpus = []
    for line in text.strip().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(QUERY.split(",")) or not fields[0].isdigit():
            continue
        index, name, driver, memory, capability, uuid = fields
        gpus.append(Gpu(int(index), name, driver, int(memory) if memory.isdigit() else None, capability, uuid))
    return gpus


def visible(gpus: list[Gpu], selection: str | None) -> list[Gpu]:
    """The GPUs CUDA shows under ``CUDA_VISIBLE_DEVICES=selection``, numbered as it numbers them:
    all where unset; else the listed ones (nvidia-smi indices or UUID prefixes) in the listed
    order, up to the first entry that names none (CUDA ignores the rest)."""
    if selection is None:
        return list(gpus)
    shown = []
    for entry in (e.strip() for e in selection.split(",")):
        found = [g for g in gpus if (entry.isdigit() and g.index == int(entry)) or (entry and g.uuid.startswith(entry))]
        if len(found) != 1 or found[0] in shown:
            break
        shown.append(found[0])
    return [replace(g, index=ordinal) for ordinal, g in enumerate(shown)]


@lru_cache(maxsize=1)
def host_gpus() -> tuple[Gpu, ...]:
    """The NVIDIA GPUs this process can see (CUDA_VISIBLE_DEVICES aside); () without a driver."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        done = subprocess.run(
            [smi, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if done.returncode != 0:
        return ()
    return tuple(visible(parse_query(done.stdout), os.environ.get("CUDA_VISIBLE_DEVICES")))


def gpu_at(index: int) -> Gpu | None:
    """The host GPU that is ``cuda:index``, or None."""
    return next((g for g in host_gpus() if g.index == index), None)


def no_gpu_reason(index: int) -> str | None:
    """Why ``cuda:index`` is not on this host, or None."""
    gpus = host_gpus()
    if not gpus:
        selection = os.environ.get("CUDA_VISIBLE_DEVICES")
        if selection is not None and shutil.which("nvidia-smi"):
            return f"no NVIDIA GPU visible (CUDA_VISIBLE_DEVICES={selection!r})"
        return "no NVIDIA GPU here (nvidia-smi is missing or lists none)"
    if index not in {g.index for g in gpus}:
        have = ", ".join(f"cuda:{g.index}" for g in gpus)
        return f"cuda:{index} is not on this host (it has {have})"
    return None


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


_TORCH_CUDA = re.compile(r"^cuda\s*(?::\s*[^=]+)?=\s*(?P<value>.+)$", re.M)


def torch_cuda_version(package: Path | None = None) -> str | None:
    """The CUDA version the installed torch was built for, read from its version.py; None for a
    CPU build or no torch."""
    package = package or _package_dir("torch")
    try:
        text = (package / "version.py").read_text() if package else ""
    except OSError:
        return None
    found = _TORCH_CUDA.search(text)
    value = found["value"].strip().strip("'\"") if found else "None"
    return None if value == "None" else value


def ort_has_cuda_provider(package: Path | None = None) -> bool:
    package = package or _package_dir("onnxruntime")
    return bool(package) and any((package / "capi").glob("libonnxruntime_providers_cuda.so*"))


@dataclass(frozen=True)
class CudaToolkit:
    """CUDA headers TVM's NVRTC compile can use: ``root`` is what TVM is given as CUDA_PATH (it reads
    ``root/include`` and ``root/targets/<triple>/include[/cccl]``), ``includes`` the directories it
    would not look in by itself (a pip layout's CCCL), ``found`` where the root came from."""

    root: str
    includes: tuple[str, ...] = ()
    found: str = ""

    def env(self, environ: dict | None = None) -> dict[str, str]:
        """The variables a worker sets before TVM compiles CUDA: CUDA_PATH (a user's own is kept)
        and the include flags TVM_CUDA_NVRTC_EXTRA_OPTS lacks, quoted (TVM shlex-splits it)."""
        environ = os.environ if environ is None else environ
        env = {"CUDA_PATH": environ.get("CUDA_PATH") or self.root}
        existing = environ.get("TVM_CUDA_NVRTC_EXTRA_OPTS", "")
        missing = [f"-I{d}" for d in self.includes if f"-I{d}" not in shlex.split(existing)]
        if missing:
            env["TVM_CUDA_NVRTC_EXTRA_OPTS"] = " ".join([existing.strip(), *map(shlex.quote, missing)]).strip()
        return env


def _target_includes(root: Path) -> list[Path]:
    """``root/targets/<triple>/include`` as TVM probes it (Arm servers' toolkits: sbsa-linux first)."""
    machine, system = platform.machine(), platform.system().lower()
    triples = [f"{machine}-{system}"]
    if system == "linux" and machine.lower() in ("aarch64", "arm64"):
        triples.insert(0, "sbsa-linux")
    return [root / "targets" / triple / "include" for triple in triples]


def _has_cccl(folder: Path) -> bool:
    return (folder / "cuda" / "std" / "cstdint").is_file()


def _toolkit_at(root: Path, found: str, extra: list[Path]) -> CudaToolkit | None:
    """The headers under ``root`` as TVM reads them, with CCCL from ``extra`` where TVM's own places
    lack it; None without ``cuda_runtime.h`` or CCCL's ``cuda/std/cstdint`` (NVRTC's preamble)."""
    target = next((d for d in _target_includes(root) if d.is_dir()), None)  # the first TVM finds
    own = [root / "include"] + ([target, target / "cccl"] if target else [])
    if not any((d / "cuda_runtime.h").is_file() for d in own):
        return None
    if any(_has_cccl(d) for d in own):
        return CudaToolkit(str(root), (), found)
    nearest = sorted(extra, key=lambda d: root.parent not in d.parents)  # a wheel's own site directory first
    cccl = next((d for d in [root / "include" / "cccl", *nearest] if _has_cccl(d)), None)
    return CudaToolkit(str(root), (str(cccl),), found) if cccl else None


def _wheel_roots() -> list[Path]:
    """CUDA header folders of NVIDIA's pip wheels in every site directory: CUDA 13's nvidia/cu13
    (the CUDA lock's: checked), and CUDA 12's nvidia/cuda_runtime (from its wheels' file lists; not
    installed here)."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(site) / name for site in spec.submodule_search_locations for name in ("cu13", "cuda_runtime")]


def cuda_toolkit() -> CudaToolkit | None:
    """The CUDA headers for TVM's NVRTC kernel compiles, or None. CUDA_PATH, where set, is the only
    place looked at (the user chose it). Otherwise the first with the headers of: the toolkit of
    nvcc on PATH (its ``../..``; for a wrapper script that ``exec``s another nvcc, that one's too),
    ``DEFAULT_CUDA_ROOT``, and the CUDA wheels that torch and ``cuda-toolkit[cccl]`` install (the
    CUDA lock). TVM looks only at CUDA_PATH or nvcc's ``../..`` (a wrapper script's own folder), so
    a worker hands it what this found (``CudaToolkit.env``)."""
    wheels = _wheel_roots()
    cccl = [w / "include" / "cccl" for w in wheels]
    cccl += list(dict.fromkeys(w.parent / "cuda_cccl" / "include" for w in wheels))  # CUDA 12's CCCL wheel
    if os.environ.get("CUDA_PATH"):
        return _toolkit_at(Path(os.environ["CUDA_PATH"]), "CUDA_PATH", cccl)
    candidates = [(Path(root), "nvcc on PATH") for root in _nvcc_roots()]
    candidates.append((DEFAULT_CUDA_ROOT, str(DEFAULT_CUDA_ROOT)))
    candidates += [(w, "NVIDIA's CUDA wheels") for w in wheels]
    for root, found in candidates:
        toolkit = _toolkit_at(root, found, cccl)
        if toolkit is not None:
            return toolkit
    return None


def _nvcc_roots() -> list[str]:
    """The toolkit root of nvcc on PATH: ``realpath(nvcc)/../..`` as TVM takes it, and where nvcc is
    a small wrapper script whose ``exec`` line runs another nvcc (a literal path, absolute or
    relative to the script), that one's root too."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return []
    real = os.path.realpath(nvcc)
    roots = [os.path.dirname(os.path.dirname(real))]
    try:
        with open(real, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return roots
    if not head.startswith("#!"):
        return roots
    for line in head.splitlines()[1:]:
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words[:1] != ["exec"]:
            continue
        runs = next((w for w in words[1:] if not w.startswith("-")), "")
        if os.path.basename(runs) == "nvcc" and "$" not in runs:
            other = os.path.realpath(os.path.join(os.path.dirname(real), runs))
            if os.path.isfile(other) and other != real:
                roots.append(os.path.dirname(os.path.dirname(other)))
        break
    return roots


def tvm_has_cuda_runtime(package: Path | None = None) -> bool:
    package = package or _package_dir("tvm")
    return bool(package) and any((package / "lib").glob("libtvm_runtime_cuda.so*"))
