"""Numerical parity against a float64 ground truth.

Policy (TorchBench's idea): a backend may be as wrong as plain fp32 is, times a multiplier. For
each output, with y64 the float64 ground truth and y32 the plain fp32 reference (eager PyTorch,
or onnx's ReferenceEvaluator for ONNX graphs), evaluated on the same fresh inputs:

    scale   = max |y64|
    ref_err = min(max |y32 - y64|, reference_cap * scale)   (capped: see below)
    floor   = max(abs_floor, rel_floor * scale)              (outputs near zero)
    budget  = multiplier * ref_err + floor
    pass   <=> same shape, every element finite, max |y - y64| <= budget, and the output follows
               the reference's variation (below)

- The shapes must match exactly: an output of the right size in another layout is a shape error,
  not a value error.
- An fp32 reference off by more than ``reference_cap`` (1%) of the output's scale would make the
  budget so wide that all zeros pass: the allowance is capped there and the output is flagged
  (``reference_off``) so the report says the reference itself is unreliable.
- The output must follow float64's variation: its centred error (error minus mean error, L2) may
  exceed neither ``variation_share`` (10%) of the float64 output's own centred norm nor
  ``multiplier`` times the fp32 reference's centred error plus ``abs_floor`` per element
  (root-sum-square) - it fails only when it exceeds both; with an unreliable reference only the
  10% holds. A constant cannot pass on a nearly flat output by hiding under the relative floor;
  an output without variation above ``abs_floor`` is not judged on it.
- A device target that lets fp32 matmuls run in TF32 (``cuda-tf32``: inputs rounded to a 10-bit
  mantissa, unit roundoff 2**-11 = 4.9e-4, against fp32's 6e-8) cannot meet a budget made of fp32
  errors: its relative floor is raised to ``TF32_REL_FLOOR`` (1e-2 of the output's scale: about
  ten times TF32's per-product error of 2**-10, room for the rounding of a dozen layers). Plain
  ``cuda`` runs full fp32 and keeps the fp32 budget (``policy_for``).

Besides the pass/fail, each output reports its errors for the accuracy-drift verdict
(harness.compare.metrics): ``max_rel_err`` (max |y - y64| / (|y64| + floor)) and
``cosine_distance`` (1 - cosine of y with y64, computed as half the squared distance of the unit
vectors: float32-sized errors give distances near 1e-14, which 1 - cos would round away).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class ParityPolicy:
    multiplier: float = 10.0
    rel_floor: float = 1e-5
    abs_floor: float = 1e-7
    reference_cap: float = 0.01
    variation_share: float = 0.1

    def budget(self, ref_err: float, scale: float) -> tuple[float, float]:
        floor = max(self.abs_floor, self.rel_floor * scale)
        return self.multiplier * ref_err + floor, floor


TF32_REL_FLOOR = 1e-2


def policy_for(policy: ParityPolicy, target) -> ParityPolicy:
    """The policy a cell on ``target`` (harness.plan.targets.TargetInfo) is held to."""
    from dataclasses import replace

    if target.tf32:
        return replace(policy, rel_floor=max(policy.rel_floor, TF32_REL_FLOOR))
    return policy


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
    correlation: float | None = None  # centred cosine with float64 (None: output constant or one element)
    reference_off: bool = False  # the fp32 reference's own error exceeded reference_cap of the scale
    cosine_distance: float | None = None  # 1 - cosine with float64, exactly (None: not computed, e.g. non-finite)

    @classmethod
    def unusable(cls, name: str, problem: str) -> OutputParity:
        """An output that cannot be compared at all (wrong shape, missing): fails, with the reason."""
        nan = float("nan")
        return cls(name, False, float("inf"), float("inf"), 0.0, 0.0, 0.0, 0.0, [], nan, nan, 0, problem=problem)

    def describe(self) -> str:
        caveat = " (the fp32 reference itself is off by over 1% of the output's scale)" if self.reference_off else ""
        if self.problem:
            return f"output {self.name!r}: {self.problem}{caveat}"
        idx = ",".join(map(str, self.worst_index))
        if self.nonfinite:
            return (
                f"output {self.name!r}: {self.nonfinite} non-finite value(s), first at [{idx}]: "
                f"got {self.worst_value!r}, float64 expects {self.worst_expected:.9g}"
            )
        return (
            f"output {self.name!r} worst element [{idx}]: got {self.worst_value:.9g}, float64 expects "
            f"{self.worst_expected:.9g}; |err| {self.max_abs_err:.3g} > budget {self.budget:.3g} "
            f"(= {_fmt(self.budget - self.floor)} fp32-reference allowance + floor {self.floor:.3g}){caveat}"
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
            "cosine_distance": max(
                (o.cosine_distance for o in self.outputs if o.cosine_distance is not None), default=None
            ),
            "parity_budget": min((o.budget for o in self.outputs), default=0.0),
            "parity_reference_off": any(o.reference_off for o in self.outputs),
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


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cos(a, b) as |a/|a| - b/|b||^2 / 2: no cancellation for nearly parallel vectors."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0 if na == nb else 1.0
    return float(np.sum((a / na - b / nb) ** 2) / 2)


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cosine of the centred values (Pearson's r); None when either is constant."""
    a, b = a - a.mean(), b - b.mean()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else None


def check_output(
    name: str, got: np.ndarray, expected64: np.ndarray, ref32: np.ndarray, policy: ParityPolicy
) -> OutputParity:
    got = np.asarray(got)
    expected64 = np.asarray(expected64, dtype=np.float64)
    if got.shape != expected64.shape:
        layout = " (same number of elements: another layout?)" if got.size == expected64.size else ""
        return OutputParity.unusable(
            name, f"shape {list(got.shape)} but float64 reference has {list(expected64.shape)}{layout}"
        )
    g = got.astype(np.float64)
    scale = float(np.max(np.abs(expected64))) if expected64.size else 0.0
    ref64 = np.asarray(ref32, dtype=np.float64)
    ref_err = float(np.max(np.abs(ref64 - expected64))) if expected64.size else 0.0
    cap = max(policy.reference_cap * scale, policy.abs_floor)
    reference_off = ref_err > cap
    budget, floor = policy.budget(min(ref_err, cap), scale)
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
        return OutputParity(name, True, 0.0, 0.0, 1.0, budget, ref_err, floor, [], 0.0, 0.0, 0, cosine_distance=0.0)
    flat = int(np.argmax(diff))
    idx = [int(i) for i in np.unravel_index(flat, g.shape)] if g.ndim else []
    max_abs = float(diff.ravel()[flat])
    max_rel = float(np.max(diff / (np.abs(expected64) + floor)))
    correlation = _correlation(g.ravel(), expected64.ravel()) if g.size > 1 else None
    err = (g - expected64).ravel()
    ref_dev = (ref64 - expected64).ravel()
    centred_err = float(np.linalg.norm(err - err.mean()))
    floor_l2 = policy.abs_floor * g.size**0.5
    # an unreliable reference earns no allowance here: the output must keep 90% of its variation
    ref_centred = 0.0 if reference_off else float(np.linalg.norm(ref_dev - ref_dev.mean()))
    allowed = policy.multiplier * ref_centred + floor_l2
    variation = float(np.linalg.norm(expected64 - expected64.mean()))
    problem = ""
    if max_abs <= budget and variation > floor_l2 and centred_err > max(allowed, policy.variation_share * variation):
        problem = (
            f"does not follow the float64 output's variation: centred error {centred_err:.3g} > {allowed:.3g} "
            f"({policy.multiplier:g} x the fp32 reference's + floor) and > {policy.variation_share:.0%} of the "
            f"output's own variation {variation:.3g} (centred cosine "
            f"{'undefined: constant output' if correlation is None else f'{correlation:.4f}'}), although "
            f"max |err| {max_abs:.3g} is within the budget {budget:.3g}"
        )
    return OutputParity(
        name,
        max_abs <= budget and not problem,
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
        problem,
        correlation,
        reference_off,
        _cosine_distance(g.ravel(), expected64.ravel()),
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
