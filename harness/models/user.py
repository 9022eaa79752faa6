"""A user's own model: an ONNX file (--model-file) or a torch factory (--model-factory)."""

from __future__ import annotations

import importlib
import os
import re

from harness.models.base import InputSpec, OnnxModel, ShapeError, TorchModel, graph_inputs


class UserModelError(ValueError):
    pass


def model_name_for(text: str) -> str:
    """A matrix-id-safe name: 'models/My-Net.v2.onnx' -> 'My_Net_v2', 'pkg.mod:make' -> 'make'."""
    base = (
        text.rsplit(":", 1)[-1]
        if ":" in text and not os.path.exists(text)
        else os.path.splitext(os.path.basename(text))[0]
    )
    return re.sub(r"[^A-Za-z0-9_]", "_", base) or "user_model"


def parse_input_shapes(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    """['x=1x3x224x224', 'mask=1x128'] -> {'x': (1, 3, 224, 224), 'mask': (1, 128)}."""
    shapes = {}
    for item in items or []:
        for part in item.split(","):
            name, sep, dims = part.strip().partition("=")
            try:
                if not sep or not name:
                    raise ValueError
                shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
                if not shapes[name] or min(shapes[name]) < 1:
                    raise ValueError
            except ValueError:
                raise UserModelError(
                    f"--input-shape {part!r}: expected NAME=D1xD2x... with positive integers, e.g. input=1x3x224x224"
                ) from None
    return shapes


def user_model(
    model_file: str | None, model_factory: str | None, input_shapes: list[str] | None
) -> tuple[str, dict] | None:
    """(model name, model options for the worker) for --model-file / --model-factory, or None.
    Raises UserModelError with a one-line reason for a bad combination or a missing file."""
    if model_file and model_factory:
        raise UserModelError("--model-file and --model-factory are exclusive: give one")
    shapes = parse_input_shapes(input_shapes)
    if shapes and not model_file:
        raise UserModelError("--input-shape only applies to --model-file")
    if model_file:
        if not os.path.isfile(model_file):
            raise UserModelError(f"--model-file {model_file}: no such file")
        # workers run in the project root: hand them an absolute path
        return model_name_for(model_file), {
            "model_file": os.path.abspath(model_file),
            "input_shapes": {k: list(v) for k, v in shapes.items()},
        }
    if model_factory:
        return model_name_for(model_factory), {"model_factory": model_factory}
    return None


def _fix_shapes(graph, shapes: dict[str, tuple[int, ...]]) -> None:
    for vi in graph.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for d in shapes[vi.name]:
                dims.add().dim_value = d


def build_from_file(path: str, input_shapes: dict[str, tuple[int, ...]] | None = None) -> OnnxModel:
    import onnx
    from onnx import version_converter

    from harness.models.onnx_graph import drop_initializer_inputs

    if not os.path.isfile(path):
        raise UserModelError(f"--model-file {path}: no such file")
    try:
        graph = onnx.load(path)
        onnx.checker.check_model(graph)
    except Exception as exc:  # onnx raises several types for bad files
        raise UserModelError(
            f"--model-file {path}: not a valid ONNX model "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    drop_initializer_inputs(graph)
    try:
        specs = graph_inputs(graph, input_shapes)
    except ShapeError as exc:
        raise UserModelError(f"--model-file {path}: {exc}") from None
    _fix_shapes(graph, {s.name: s.shape for s in specs})
    opset = max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), default=17)
    if opset < 13:  # onnx's reference evaluator (our ground truth) mishandles some old-opset semantics
        try:
            graph = version_converter.convert_version(graph, 17)
        except Exception:
            pass
    return OnnxModel(model_name_for(path), graph, specs)


def build_from_factory(spec: str) -> TorchModel:
    """'package.module:function' returning (torch module, example inputs tuple)."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise UserModelError(f"--model-factory {spec!r}: expected package.module:function")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise UserModelError(f"--model-factory {spec}: cannot import ({exc})") from None
    import torch

    torch.manual_seed(0)
    result = func()
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
        raise UserModelError(
            f"--model-factory {spec}: must return (torch.nn.Module, example_inputs tuple), got {type(result).__name__}"
        )
    module, examples = result
    examples = examples if isinstance(examples, (tuple, list)) else (examples,)
    specs = []
    for i, ex in enumerate(examples):
        dtype = str(ex.dtype).replace("torch.", "")
        high = int(ex.max().item()) + 1 if not ex.is_floating_point() else 0
        specs.append(InputSpec(f"input{i}", tuple(ex.shape), dtype, high=max(high, 2)))
    model = TorchModel(model_name_for(spec), lambda: module, specs)
    model.set_module(module)
    return model
