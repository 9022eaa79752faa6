"""A user's own model: an ONNX file (--model-file) or a torch factory (--model-factory)."""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from harness.models.base import InputSpec, OnnxModel, ShapeError, TorchModel, graph_inputs


class UserModelError(ValueError):
    pass


@dataclass(frozen=True)
class ModelFile:
    """A suite's own ONNX file on a matrix's models axis::

        MATRIX = Matrix(models=["mlp", ModelFile("models/acme.onnx", {"x": (1, 3, 224, 224)})], ...)

    ``path`` is relative to the project root (pytest's rootdir) unless absolute; ``input_shapes``
    gives dynamic dims like --input-shape; ``name`` (default: from the file name) is the model's
    part of the cell ids. A file that fails the check (harness.run.user_check) fails its own cells,
    each with the one-line reason, and starts no worker; the other models run."""

    path: str
    input_shapes: dict = field(default_factory=dict, hash=False)
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "name", self.name or model_name_for(self.path))

    def __str__(self) -> str:
        return self.name

    def options(self, root: str | Path) -> dict:
        """The worker's model options (as ``user_model`` gives them for --model-file)."""
        path = Path(self.path) if os.path.isabs(self.path) else Path(root) / self.path
        return {
            "model_file": str(path.resolve()),
            "input_shapes": {k: [int(d) for d in v] for k, v in self.input_shapes.items()},
        }


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


def _all_tensors(graph):
    """Every tensor of a graph that can hold external data: initializers, sparse initializers'
    values and indices, and attribute tensors, in subgraphs too."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sparse in [attr.sparse_tensor] * attr.HasField("sparse_tensor") + list(attr.sparse_tensors):
                yield sparse.values
                yield sparse.indices
            for sub in [attr.g] * attr.HasField("g") + list(attr.graphs):
                yield from _all_tensors(sub)


def external_data_problem(model, folder: Path) -> str | None:
    """Why the model's external-data locations are unsafe or missing (None: fine). Read from the
    protobuf only; nothing outside ``folder`` is opened. A tensor naming its location twice is
    refused (readers differ on which one counts)."""
    from onnx import TensorProto

    root = folder.resolve()
    for tensor in _all_tensors(model.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        locations = [e.value for e in tensor.external_data if e.key == "location"]
        if len(locations) != 1:
            return f"tensor {tensor.name!r}: {len(locations)} external data locations (expected one); refused"
        location = locations[0]
        if not location or os.path.isabs(location) or PureWindowsPath(location).drive or "\\" in location:
            return f"tensor {tensor.name!r}: external data location {location!r} is not a relative path; refused"
        target = (folder / location).resolve()  # follows symlinks
        if root not in target.parents:
            return (
                f"tensor {tensor.name!r}: external data location {location!r} leads outside the model's folder "
                f"({target}); refused"
            )
        if not target.is_file():
            return f"tensor {tensor.name!r}: external data file {location!r} is missing beside the model"
    return None


def has_external_data(model) -> bool:
    from onnx import TensorProto

    return any(t.data_location == TensorProto.EXTERNAL for t in _all_tensors(model.graph))


def first_line(exc: BaseException) -> str:
    """'ValueError: the first line of its message'."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def load_onnx_file(path: str, where: str | None = None):
    """(the checked onnx.ModelProto, its ai.onnx opset) of a user's file; UserModelError with one
    line starting with ``where`` (default ``--model-file PATH``) for a missing, empty, truncated or
    foreign file, an external-data location outside the model's folder (refused before anything
    reads it), an IR version or opset newer than onnx knows, or a graph onnx.checker refuses.
    A model with external data is checked from its path (the form for models past protobuf's 2 GB)."""
    import onnx

    where = where or f"--model-file {path}"
    file = Path(path)
    if not file.is_file():
        raise UserModelError(f"{where}: no such file")
    if file.stat().st_size == 0:
        raise UserModelError(f"{where}: the file is empty")
    try:
        model = onnx.load(str(file), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and others
        raise UserModelError(
            f"{where}: not an ONNX model (truncated, or another format: {first_line(exc)}); export it again"
        ) from None
    if not model.HasField("graph") or not model.graph.node:
        raise UserModelError(f"{where}: holds no ONNX graph (not an ONNX model, or an empty one)")
    unsafe = external_data_problem(model, file.parent)
    if unsafe:
        raise UserModelError(f"{where}: {unsafe}")
    if model.ir_version > onnx.IR_VERSION:
        raise UserModelError(
            f"{where}: ONNX IR version {model.ir_version} is newer than onnx {onnx.__version__} reads "
            f"({onnx.IR_VERSION}); upgrade onnx or export with an older one"
        )
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset > onnx.defs.onnx_opset_version():
        raise UserModelError(
            f"{where}: opset {opset} is newer than onnx {onnx.__version__} knows ({onnx.defs.onnx_opset_version()})"
        )
    try:
        if has_external_data(model):
            onnx.checker.check_model(str(file))
            onnx.load_external_data_for_model(model, str(file.parent))
        else:
            onnx.checker.check_model(model)
    except Exception as exc:  # the checker raises ValidationError, others for odd files
        raise UserModelError(f"{where}: fails onnx.checker ({first_line(exc)})") from None
    return model, opset


def read_model_file(path: str, input_shapes: dict[str, tuple[int, ...]] | None = None, where: str | None = None):
    """(graph, opset, input specs) of a user's file: ``load_onnx_file``, initializers taken out of
    the inputs, and the inputs with ``input_shapes`` applied (UserModelError for a bad shape)."""
    from harness.models.onnx_graph import drop_initializer_inputs

    graph, opset = load_onnx_file(path, where)
    drop_initializer_inputs(graph)
    try:
        return graph, opset, graph_inputs(graph, input_shapes)
    except ShapeError as exc:
        raise UserModelError(f"{where or f'--model-file {path}'}: {exc}") from None


def build_from_file(path: str, input_shapes: dict[str, tuple[int, ...]] | None = None) -> OnnxModel:
    from onnx import version_converter

    graph, opset, specs = read_model_file(path, input_shapes)
    _fix_shapes(graph, {s.name: s.shape for s in specs})
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
    except Exception as exc:  # ImportError, AttributeError, or whatever the module raises on import
        raise UserModelError(f"--model-factory {spec}: cannot import ({first_line(exc)})") from None
    import torch

    torch.manual_seed(0)
    try:
        result = func()
    except Exception as exc:  # the user's code
        raise UserModelError(f"--model-factory {spec}: the factory raised {first_line(exc)}") from None
    expected = "must return (torch.nn.Module, example inputs: a tensor or a tuple of tensors)"
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
        raise UserModelError(f"--model-factory {spec}: {expected}, got {type(result).__name__}")
    module, examples = result
    examples = examples if isinstance(examples, (tuple, list)) else (examples,)
    wrong = [type(ex).__name__ for ex in examples if not isinstance(ex, torch.Tensor)]
    if wrong or not examples:
        raise UserModelError(f"--model-factory {spec}: {expected}, got inputs of type {', '.join(wrong) or 'none'}")
    specs = []
    for i, ex in enumerate(examples):
        dtype = str(ex.dtype).replace("torch.", "")
        high = int(ex.max().item()) + 1 if not ex.is_floating_point() else 0
        specs.append(InputSpec(f"input{i}", tuple(ex.shape), dtype, high=max(high, 2)))
    model = TorchModel(model_name_for(spec), lambda: module, specs)
    model.set_module(module)
    return model
