"""Real model graphs shipped with the onnx package (onnx/backend/test/data/light/*.onnx).

Their weights are ConstantOfShape placeholders; we materialize seeded random weights, convert
the graph to opset 17 (onnx's ReferenceEvaluator gets old-opset Softmax wrong: measured on
squeezenet, opset 9 gave all-ones where ORT and the opset-17 graph agree) and calibrate the
classifier so Softmax outputs are not one-hot."""

from __future__ import annotations

import os

from harness.models.base import INPUT_SEED_TIMING, OnnxModel

LIGHT_GRAPHS = (
    "squeezenet",
    "resnet50",
    "shufflenet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "bvlc_alexnet",
    "vgg19",
    "zfnet512",
)
OPSET = 17


def light_dir() -> str:
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def prepare_graph(graph, seed: int):
    """Materialize placeholder weights, upgrade the opset, calibrate logits, check the result."""
    import onnx
    from onnx import version_converter

    from harness.models.onnx_graph import calibrate_logits, materialize_weights

    graph = materialize_weights(graph, seed)
    if graph.opset_import and max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) < OPSET:
        graph = version_converter.convert_version(graph, OPSET)
    onnx.checker.check_model(graph)
    probe = OnnxModel("probe", graph)
    feeds = {spec.name: x for spec, x in zip(probe.inputs, probe.make_inputs(INPUT_SEED_TIMING))}
    return calibrate_logits(graph, feeds)


def build_light(name: str, seed: int = 0) -> OnnxModel:
    import onnx

    path = os.path.join(light_dir(), f"light_{name}.onnx")
    return OnnxModel(name, prepare_graph(onnx.load(path), seed))
