"""One point of a benchmark matrix: (model, backend, target, sparsity, threads, batch), how its
threads are applied (thread_control, interop, spin), how its weights are pruned (pruning) and how
it is driven while timed (scenario).

A cell's id is its history key: the axes at their defaults (thread control both, interop 1, spin
default, unstructured pruning, the latency scenario) add nothing to it, so ids stay what they were before those axes
existed. Pruning shows after the sparsity: ``sp90-b16x1``, ``sp90-rand``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from harness.models.pruning import DEFAULT_PRUNING, parse_pruning
from harness.plan.scenario import DEFAULT_SCENARIO, parse_scenario


def sparsity_label(sparsity: float) -> str:
    """0.0 -> 'sp0', 0.9 -> 'sp90', 0.125 -> 'sp12.5'."""
    pct = round(sparsity * 100, 4)
    return f"sp{pct:g}"


@dataclass(frozen=True)
class Cell:
    model: str
    backend: str
    target: str = "llvm"
    sparsity: float = 0.0
    threads: str = "1"  # an integer as text, "auto", "host", "physical"; "runtime" with thread_control unset
    batch: int | None = None
    thread_control: str = "both"  # both, env, api, unset (harness.machine.threads)
    interop: int = 1  # inter-op threads, applied through the runtime's API (both, api)
    spin: str = "default"  # default, off: idle pool threads sleep instead of spinning
    pruning: str = DEFAULT_PRUNING  # harness.models.pruning: unstructured, block:RxC, random[:RxC]
    scenario: str = DEFAULT_SCENARIO  # harness.plan.scenario: latency, throughput[:...], server[:...]
    # model options that travel to the worker (user files, factories, shape overrides)
    model_options: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        parts = [self.model, self.backend, self.target, sparsity_label(self.sparsity)]
        if self.sparsity and self.pruning != DEFAULT_PRUNING:
            parts.append(parse_pruning(self.pruning).id_part)
        parts.append(f"t{self.threads}")
        if self.batch is not None:
            parts.append(f"b{self.batch}")
        if self.thread_control in ("env", "api"):
            parts.append(self.thread_control)
        if self.interop != 1:
            parts.append(f"i{self.interop}")
        if self.spin != "default":
            parts.append(f"spin{self.spin}")
        scenario = parse_scenario(self.scenario).id_part
        if scenario:
            parts.append(scenario)
        return "-".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Cell:
        return cls(**data)
