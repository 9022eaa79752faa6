"""A multi-layer perceptron (Linear + ReLU stack)."""

from __future__ import annotations

from harness.models.base import InputSpec, TorchModel


def build_mlp(
    name: str, batch: int = 8, features: int = 512, hidden: int = 1024, layers: int = 3, classes: int = 10
) -> TorchModel:
    def factory():
        import torch.nn as nn

        mods, width = [], features
        for _ in range(layers - 1):
            mods += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        mods.append(nn.Linear(width, classes))
        return nn.Sequential(*mods)

    return TorchModel(name, factory, [InputSpec("input", (batch, features))])
