"""Numerical parity against a float64 ground truth.

Policy (TorchBench's idea): a backend may be as wrong as plain fp32 is, times a multiplier. For
each output, with y64 the float64 ground truth and y32 the plain fp32 reference (eager PyTorch,
or onnx's ReferenceEvaluator for ONNX graphs), evaluated on the same fresh inputs:

    ref_err = max |y32 - y64|
    floor   = max(abs_floor, rel_floor * max |y64|)         (outputs near zero)
    budget  = multiplier * ref_err + floor
    pass   <=> every element finite and max |y - y64| <= budget
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class ParityPolicy:
    multiplier: float = 10.0
    rel_floor: float = 1e-5
    abs_floor: float = 1e-7

    def budget(self, ref_err: float, scale: float) -> tuple[float, float]:
        floor = max(self.abs_floor, self.rel_floor * scale)
        return self.multiplier * ref_err + floor, floor


@dataclass
class OutputParity:
    name: str
    passed: bool
    max_abs_err: float
    max_rel_err: float
    cosine: float
    budget: float
    ref_err: float
    floor: float
    worst_index: list[int]
    worst_value: float
    worst_expected: float
    nonfinite: int
    problem: str = ""

    @classmethod
    def unusable(cls, name: str, problem: str) -> OutputParity:
        """An output that cannot be compared at all (wrong shape, missing): fails, with the reason."""
        nan = float("nan")
        return cls(name, False, float("inf"), float("inf"), 0.0, 0.0, 0.0, 0.0, [], nan, nan, 0, problem=problem)

    def describe(self) -> str:
        if self.problem:
            return f"output {self.name!r}: {self.problem}"
        idx = ",".join(map(str, self.worst_index))
        if self.nonfinite:
            return (
                f"output {self.name!r}: {self.nonfinite} non-finite value(s), first at [{idx}]: "
                f"got {self.worst_value!r}, float64 expects {self.worst_expected:.9g}"
            )
        return (
            f"output {self.name!r} worst element [{idx}]: got {self.worst_value:.9g}, float64 expects "
            f"{self.worst_expected:.9g}; |err| {self.max_abs_err:.3g} > budget {self.budget:.3g} "
            f"(= {_fmt(self.budget - self.floor)} fp32-reference allowance + floor {self.floor:.3g})"
        )


def _fmt(x: float) -> str:
    return f"{x:.3g}"


@dataclass
class ParityReport:
    passed: bool
    outputs: list[OutputParity] = field(default_factory=list)
    policy: dict = field(default_factory=dict)

    @property
    def message(self) -> str:
        bad = [o.describe() for o in self.outputs if not o.passed]
        return "; ".join(bad) if bad else "parity ok"

    def summary(self) -> dict:
        """Worst-case metrics over outputs, for benchmark extra_info."""
        return {
            "parity_passed": self.passed,
            "max_abs_err": max((o.max_abs_err for o in self.outputs), default=0.0),
            "max_rel_err": max((o.max_rel_err for o in self.outputs), default=0.0),
            "cosine": min((o.cosine for o in self.outputs), default=1.0),
            "parity_budget": min((o.budget for o in self.outputs), default=0.0),
        }

    def to_dict(self) -> dict:
        return {"passed": self.passed, "outputs": [asdict(o) for o in self.outputs], "policy": self.policy}

    @classmethod
    def from_dict(cls, data: dict) -> ParityReport:
        return cls(data["passed"], [OutputParity(**o) for o in data["outputs"]], data.get("policy", {}))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def check_output(
    name: str, got: np.ndarray, expected64: np.ndarray, ref32: np.ndarray, policy: ParityPolicy
) -> OutputParity:
    got = np.asarray(got)
    expected64 = np.asarray(expected64, dtype=np.float64)
    if got.shape != expected64.shape:
        got = got.reshape(expected64.shape) if got.size == expected64.size else got
    if got.shape != expected64.shape:
        return OutputParity.unusable(
            name, f"shape {list(got.shape)} but float64 reference has {list(expected64.shape)}"
        )
    g = got.astype(np.float64)
    scale = float(np.max(np.abs(expected64))) if expected64.size else 0.0
    ref_err = float(np.max(np.abs(np.asarray(ref32, dtype=np.float64) - expected64))) if expected64.size else 0.0
    budget, floor = policy.budget(ref_err, scale)
    finite = np.isfinite(g)
    nonfinite = int(g.size - np.count_nonzero(finite))
    if nonfinite:
        flat = int(np.flatnonzero(~finite.ravel())[0])
        idx = list(np.unravel_index(flat, g.shape)) if g.ndim else []
        return OutputParity(
            name,
            False,
            float("inf"),
            float("inf"),
            float("nan"),
            budget,
            ref_err,
            floor,
            [int(i) for i in idx],
            float(g.ravel()[flat]),
            float(expected64.ravel()[flat]),
            nonfinite,
        )
    diff = np.abs(g - expected64)
    if g.size == 0:
        return OutputParity(name, True, 0.0, 0.0, 1.0, budget, ref_err, floor, [], 0.0, 0.0, 0)
    flat = int(np.argmax(diff))
    idx = [int(i) for i in np.unravel_index(flat, g.shape)] if g.ndim else []
    max_abs = float(diff.ravel()[flat])
    max_rel = float(np.max(diff / (np.abs(expected64) + floor)))
    return OutputParity(
        name,
        max_abs <= budget,
        max_abs,
        max_rel,
        _cosine(g.ravel(), expected64.ravel()),
        budget,
        ref_err,
        floor,
        idx,
        float(g.ravel()[flat]),
        float(expected64.ravel()[flat]),
        0,
    )


def check_parity(
    names: list[str],
    got: list[np.ndarray],
    expected64: list[np.ndarray],
    ref32: list[np.ndarray],
    policy: ParityPolicy | None = None,
) -> ParityReport:
    policy = policy or ParityPolicy()
    if len(got) != len(expected64):
        missing = OutputParity.unusable("*", f"backend returned {len(got)} outputs, the reference {len(expected64)}")
        return ParityReport(False, [missing], asdict(policy))
    names = list(names) + [f"output{i}" for i in range(len(names), len(got))]
    outputs = [check_output(n, g, e, r, policy) for n, g, e, r in zip(names, got, expected64, ref32)]
    return ParityReport(all(o.passed for o in outputs), outputs, asdict(policy))
