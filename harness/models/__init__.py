"""Model registry: built-in models by name, ONNX light graphs, and user models.

``model_kind`` answers without building anything (it runs at collection time in the pytest
process); ``build_model`` runs inside the worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from harness.models.base import Model, TransformerFacts
from harness.models.cnn import build_mobilenet_v2, build_resnet
from harness.models.encoder import HF_SUFFIX, SIZES, build_encoder, encoder_facts
from harness.models.mlp import build_mlp
from harness.models.onnx_light import LIGHT_GRAPHS, build_light
from harness.models.user import UserModelError, build_from_factory, build_from_file, model_name_for


@dataclass(frozen=True)
class ModelEntry:
    kind: str  # "torch" or "onnx"
    builder: Callable[..., Model]
    description: str
    batchable: bool = True  # False: the batch size is fixed by the graph
    transformer: TransformerFacts | None = None  # an encoder's facts, known before it is built


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry("torch", partial(build_mlp, "mlp"), "MLP 512-1024-1024-10, batch 8"),
    "resnet_tiny": ModelEntry(
        "torch", partial(build_resnet, "resnet_tiny"), "ResNet-style, 3 stages 16/32/64, 64x64 input"
    ),
    "resnet18ish": ModelEntry(
        "torch",
        partial(build_resnet, "resnet18ish", image=224, widths=(64, 128, 256, 512), blocks=2, classes=1000),
        "ResNet-18-like, 224x224",
    ),
    "mobilenet_v2": ModelEntry("torch", partial(build_mobilenet_v2, "mobilenet_v2"), "MobileNetV2, width 1.0, 224x224"),
}
for _name, (_l, _h, _a, _s, _v) in SIZES.items():
    MODELS[_name] = ModelEntry(
        "torch",
        partial(build_encoder, _name, layers=_l, hidden=_h, heads=_a, seq=_s, vocab=_v),
        f"BERT-style encoder: {_l} layers, hidden {_h}, {_a} heads, seq {_s}",
        transformer=encoder_facts(_h, _a),
    )
    MODELS[_name + HF_SUFFIX] = ModelEntry(
        "torch",
        partial(build_encoder, _name + HF_SUFFIX, layers=_l, hidden=_h, heads=_a, seq=_s, vocab=_v, hf_layout=True),
        f"BERT-style encoder in Hugging Face's layout (separate Q/K/V, attention_mask): {_l} layers, hidden {_h}, "
        f"{_a} heads, seq {_s}",
        transformer=encoder_facts(_h, _a),
    )
for _name in LIGHT_GRAPHS:
    MODELS[_name] = ModelEntry(
        "onnx", partial(build_light, _name), f"onnx light graph {_name} (seeded random weights)", batchable=False
    )


class UnknownModelError(ValueError):
    pass


def model_kind(name: str, options: dict | None = None) -> str:
    options = options or {}
    if options.get("model_file"):
        return "onnx"
    if options.get("model_factory"):
        return "torch"
    if name not in MODELS:
        raise UnknownModelError(
            f"unknown model {name!r}; built-in models: {', '.join(sorted(MODELS))} "
            f"(or use --model-file / --model-factory)"
        )
    return MODELS[name].kind


def is_batchable(name: str, options: dict | None = None) -> bool:
    options = options or {}
    if options.get("model_file") or options.get("model_factory"):
        return False
    return MODELS[name].batchable


def transformer_facts(name: str, options: dict | None = None) -> TransformerFacts | None:
    """A built-in encoder's transformer facts, without building it; None for any other model and
    for a user's model (its heads and hidden size are not known to the harness)."""
    options = options or {}
    if options.get("model_file") or options.get("model_factory"):
        return None
    model_kind(name)  # raises for unknown names
    return MODELS[name].transformer


def build_model(name: str, options: dict | None = None, batch: int | None = None) -> Model:
    options = options or {}
    if options.get("model_file"):
        shapes = {k: tuple(v) for k, v in (options.get("input_shapes") or {}).items()}
        return build_from_file(options["model_file"], shapes)
    if options.get("model_factory"):
        return build_from_factory(options["model_factory"])
    model_kind(name)  # raises for unknown names
    entry = MODELS[name]
    return entry.builder(batch=batch) if batch is not None else entry.builder()


__all__ = [
    "MODELS",
    "Model",
    "UnknownModelError",
    "UserModelError",
    "build_model",
    "is_batchable",
    "model_kind",
    "model_name_for",
    "transformer_facts",
]
