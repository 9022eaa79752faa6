"""One point of a benchmark matrix: (model, backend, target, sparsity, threads, batch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
    threads: str = "1"  # an integer as text, "auto" or "host" (see harness.machine.threads)
    batch: int | None = None
    # model options that travel to the worker (user files, factories, shape overrides)
    model_options: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        parts = [self.model, self.backend, self.target, sparsity_label(self.sparsity), f"t{self.threads}"]
        if self.batch is not None:
            parts.append(f"b{self.batch}")
        return "-".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Cell:
        return cls(**data)
