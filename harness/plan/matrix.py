"""Matrix declaration and expansion.

A suite declares its axes as data; ``Matrix.expand`` yields one ``MatrixCell`` per combination,
each with its pytest id, its marks and, where the backend cannot run it, the reason it is skipped
(skipped cells are kept so that they show up as skips, never silently dropped).

Command-line options (``--models``, ``--backends``, ``--targets``, ``--sparsity``, ``--threads``,
``--batch``, ``--pruning``, ``--scenario`` ...) replace an axis for one run; ``Matrix.smoke`` names
the subset marked ``smoke``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from harness.machine.threads import (
    RUNTIME_CHOICE,
    SPIN_MODES,
    THREAD_CONTROLS,
    normalize_thread_spec,
    positive_int,
    via_api,
)
from harness.models import MODELS
from harness.models.pruning import DEFAULT_PRUNING, PruningError, parse_pruning
from harness.models.user import ModelFile
from harness.plan.cell import Cell
from harness.plan.scenario import DEFAULT_SCENARIO, ScenarioError, parse_scenario
from harness.plan.targets import CPU, device_of

AXES = (
    "models",
    "backends",
    "targets",
    "sparsity",
    "threads",
    "batch",
    "thread_control",
    "interop",
    "spin",
    "pruning",
    "scenario",
)


DEVICE_LAUNCH_THREADS = "1"  # a device cell's host threads: the one that launches its kernels
HOST_THREAD_AXES = ("threads", "thread_control", "interop", "spin")


class MatrixError(ValueError):
    pass


def _parse_sparsity(value) -> float:
    try:
        s = float(str(value).strip().rstrip("%")) / (100.0 if str(value).strip().endswith("%") else 1.0)
    except ValueError:
        raise MatrixError(f"sparsity {value!r} is not a number in [0, 1) (e.g. 0.9 or 90%)") from None
    if not 0.0 <= s < 1.0:
        raise MatrixError(f"sparsity {value!r} must be in [0, 1)")
    return s


def _parse_batch(value) -> int | None:
    if value is None or str(value).strip().lower() in ("", "none", "default"):
        return None
    return positive_int(value, "batch")


def _one_of(choices: tuple[str, ...], what: str):
    def parse(value) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise MatrixError(f"{what} {value!r} is not one of {', '.join(choices)}")
        return text

    return parse


def _parse_pruning(value) -> str:
    try:
        return parse_pruning(value).spec
    except PruningError as exc:
        raise MatrixError(str(exc)) from None


def _parse_scenario(value) -> str:
    try:
        return parse_scenario(value).text
    except ScenarioError as exc:
        raise MatrixError(str(exc)) from None


NORMALIZE = {
    "models": lambda v: str(v).strip(),
    "backends": lambda v: str(v).strip(),
    "targets": lambda v: str(v).strip(),
    "sparsity": _parse_sparsity,
    "threads": lambda v: normalize_thread_spec(v),
    "batch": _parse_batch,
    "thread_control": _one_of(THREAD_CONTROLS, "thread control"),
    "interop": lambda v: positive_int(v, "inter-op thread count"),
    "spin": _one_of(SPIN_MODES, "spin mode"),
    "pruning": _parse_pruning,
    "scenario": _parse_scenario,
}


def normalize_axis(axis: str, values) -> tuple:
    try:
        out = tuple(dict.fromkeys(NORMALIZE[axis](v) for v in values))
    except ValueError as exc:
        raise MatrixError(f"axis {axis!r}: {exc}") from None
    if not out:
        raise MatrixError(f"axis {axis!r} is empty")
    if axis == "models":
        for v in out:
            if not v or "-" in v:  # '-' separates the parts of a cell id
                raise MatrixError(f"axis 'models': {v!r} is not a valid name (no empty names, no '-' in model names)")
    return out


def parse_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


@dataclass(frozen=True)
class MatrixCell:
    cell: Cell
    smoke: bool
    skip_reason: str | None = None

    @property
    def id(self) -> str:
        return self.cell.id


@dataclass(frozen=True)
class Matrix:
    models: tuple
    backends: tuple
    targets: tuple = ("llvm",)
    sparsity: tuple = (0.0,)
    threads: tuple = ("1",)
    batch: tuple = (None,)
    thread_control: tuple = ("both",)
    interop: tuple = (1,)
    spin: tuple = ("default",)
    pruning: tuple = (DEFAULT_PRUNING,)
    scenario: tuple = (DEFAULT_SCENARIO,)
    smoke: dict = field(default_factory=dict)  # axis -> subset; cells inside all subsets are smoke
    host_threads_only: bool = False  # True: a suite of host thread effects, whose device (cuda) cells are skipped
    model_files: dict = field(default_factory=dict)  # name -> ModelFile, from ModelFile entries on the models axis

    def __post_init__(self):
        files = dict(self.model_files)
        for entry in self.models:
            if not isinstance(entry, ModelFile):
                continue
            if entry.name in MODELS:
                raise MatrixError(f"ModelFile({entry.path!r}) is named {entry.name!r} like a built-in; give name=")
            if entry.name in files and files[entry.name].path != entry.path:
                raise MatrixError(
                    f"ModelFile({entry.path!r}) and ModelFile({files[entry.name].path!r}) are both named "
                    f"{entry.name!r}; give one of them name="
                )
            files[entry.name] = entry
        object.__setattr__(self, "model_files", files)
        for axis in AXES:
            object.__setattr__(self, axis, normalize_axis(axis, getattr(self, axis)))
        unknown = set(self.smoke) - set(AXES)
        if unknown:
            raise MatrixError(f"smoke subset names unknown axes {sorted(unknown)}; axes are {', '.join(AXES)}")
        object.__setattr__(self, "smoke", {a: normalize_axis(a, v) for a, v in self.smoke.items()})

    def override(self, **axes) -> Matrix:
        """Replace axes (values None are ignored). An overridden axis no longer limits smoke."""
        given = {a: v for a, v in axes.items() if v is not None}
        unknown = set(given) - set(AXES)
        if unknown:
            raise MatrixError(f"unknown axes {sorted(unknown)}")
        smoke = {a: v for a, v in self.smoke.items() if a not in given}
        return replace(self, **given, smoke=smoke)

    def expand(self, unsupported=None, model_options: dict | None = None) -> list[MatrixCell]:
        """All combinations in axis order. ``unsupported(cell) -> reason | None`` marks skips.

        A thread count and inter-op threads mean nothing where they are not applied: an ``unset``
        cell's threads become ``runtime`` (the runtime's choice), an ``env``/``unset`` cell's inter-op
        1 (no variable sets it); a dense cell (sparsity 0) has no pruning mode; a device target's
        (cuda) kernels use no host thread pool, so its cells take the one host thread that launches
        them (threads 1, thread control both, inter-op 1, default spin); the combinations that then
        coincide give one cell. With ``host_threads_only`` device cells are skipped, saying why."""
        cells, seen = [], set()
        for combo in itertools.product(*(getattr(self, axis) for axis in AXES)):
            values = dict(zip(AXES, combo))
            on_device = device_of(values["targets"]) != CPU
            if on_device:
                values.update(threads=DEVICE_LAUNCH_THREADS, thread_control="both", interop=1, spin="default")
            control = values["thread_control"]
            cell = Cell(
                values["models"],
                values["backends"],
                values["targets"],
                values["sparsity"],
                RUNTIME_CHOICE if control == "unset" else values["threads"],
                values["batch"],
                control,
                values["interop"] if via_api(control) else 1,
                values["spin"],
                values["pruning"] if values["sparsity"] else DEFAULT_PRUNING,
                values["scenario"],
                dict((model_options or {}).get(values["models"], {})),
            )
            if cell.id in seen:
                continue
            seen.add(cell.id)
            # a device cell's thread axes were collapsed: the smoke subset's thread values do not apply
            smoke = all(
                values[a] in subset for a, subset in self.smoke.items() if not (on_device and a in HOST_THREAD_AXES)
            )
            reason = unsupported(cell) if unsupported else None
            if on_device and self.host_threads_only:
                reason = f"{cell.target} runs device kernels: this suite measures host CPU threads, and it has none"
            cells.append(MatrixCell(cell, smoke, reason))
        return cells
