"""What a benchmarked model is: its inputs, its forms (torch module and/or ONNX graph), its FLOPs
and its float64 ground truth. Models are built inside the worker process, deterministically from
a seed, so nothing heavy crosses a process boundary."""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass

import numpy as np

from harness.models.pruning import DEFAULT_PRUNING, PruneReport, parse_pruning, prune_report, prune_weight

INPUT_SEED_TIMING = 1000  # inputs used for timing
INPUT_SEED_PARITY = 2000  # fresh inputs used for the parity check (never the timing inputs)


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    high: int = 0  # for integer inputs: values drawn from [low, high)
    low: int = 0

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        if self.dtype.startswith("int"):
            return rng.integers(self.low, max(self.low + 1, self.high), size=self.shape, dtype=self.dtype)
        return rng.standard_normal(self.shape).astype(self.dtype)


@dataclass(frozen=True)
class TransformerFacts:
    """What onnxruntime.transformers' optimizer is told about a transformer encoder: its
    architecture by the optimizer's name (``model_type``, e.g. "bert"), attention heads and hidden size."""

    model_type: str
    heads: int
    hidden: int


class Model:
    """Base class: a name, a kind ("torch" or "onnx"), input specs, and the forms and facts each
    subclass owns (``TorchModel``, ``OnnxModel``): FLOPs, float64 reference, pruning."""

    name: str
    kind: str
    inputs: list[InputSpec]
    transformer: TransformerFacts | None = None  # an encoder's facts (the built-in encoders); None: not known

    def make_inputs(self, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [spec.sample(rng) for spec in self.inputs]

    def torch_module(self):
        """A float32 torch.nn.Module in eval mode (torch models only)."""
        raise NotImplementedError(f"model {self.name!r} has no torch form")

    def onnx_model(self):
        """The model as an onnx.ModelProto."""
        raise NotImplementedError

    def output_names(self) -> list[str]:
        return ["output"]

    def flops(self) -> int:
        """FLOPs of one inference (2 per multiply-add of matmuls and convolutions)."""
        raise NotImplementedError

    def reference(self, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(float64 ground truth, plain fp32 reference) outputs for ``inputs``."""
        raise NotImplementedError

    def content_digest(self) -> str:
        """SHA-256 of what decides a compiled artifact: the graph, the weights (after pruning) and
        the input specs. The compile cache's key; the ONNX form unless a subclass has a cheaper one."""
        import hashlib

        h = hashlib.sha256(repr([(s.name, s.shape, s.dtype) for s in self.inputs]).encode())
        h.update(self.onnx_model().SerializeToString(deterministic=True))
        return h.hexdigest()

    def prune(self, sparsity: float, pruning: str = DEFAULT_PRUNING) -> PruneReport:
        """Prune every matmul/convolution weight to ``sparsity`` in the way ``pruning`` names
        (harness.models.pruning); returns what was measured, overall and per layer."""
        raise NotImplementedError


def _to_double(t):
    return t.double() if t.is_floating_point() else t


def _as_list(out):
    if isinstance(out, (tuple, list)):
        return list(out)
    return [out]


class TorchModel(Model):
    """A model defined by a torch module factory (weights seeded). Its ONNX form is exported once
    (torchscript exporter, opset 17) and re-exported after pruning."""

    kind = "torch"

    def __init__(
        self, name: str, factory, inputs: list[InputSpec], seed: int = 0, transformer: TransformerFacts | None = None
    ):
        self.name = name
        self.inputs = inputs
        self.transformer = transformer
        self._factory = factory
        self._seed = seed
        self._module = None
        self._exported = None

    def torch_module(self):
        if self._module is None:
            import torch

            torch.manual_seed(self._seed)
            self._module = self._factory().float().eval()
        return self._module

    def set_module(self, module) -> None:
        self._module = module.float().eval()
        self._exported = None

    def content_digest(self) -> str:
        """What decides the graph torch.export/ONNX export produce, without exporting: the torch
        version, the module tree (repr), every module class's source and the values its methods
        close over (a factory's ``heads`` captured by a nested class), each module's plain
        attributes, and every parameter and buffer (persistent or not)."""
        import hashlib
        import inspect

        import torch

        h = hashlib.sha256(f"{self.name}|{torch.__version__}".encode())
        h.update(repr([(s.name, s.shape, s.dtype) for s in self.inputs]).encode())
        module = self.torch_module()
        h.update(repr(module).encode())
        for cls in sorted({type(m) for m in module.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
            try:
                h.update(inspect.getsource(cls).encode())
            except (OSError, TypeError):  # no source file (built in C, or made at run time)
                h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
            for attr in vars(cls).values():
                for cell in getattr(attr, "__closure__", None) or ():
                    h.update(repr(cell.cell_contents).encode())
        for name, sub in module.named_modules():
            plain = {k: v for k, v in vars(sub).items() if not k.startswith("_") and not isinstance(v, torch.Tensor)}
            h.update(f"{name}:{sorted((k, repr(v)) for k, v in plain.items())}".encode())
        tensors = list(module.named_parameters()) + list(module.named_buffers())
        tensors += [
            (f"{n}.{k}", v)
            for n, sub in module.named_modules()
            for k, v in vars(sub).items()
            if isinstance(v, torch.Tensor)
        ]
        for name, tensor in tensors:
            h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def onnx_model(self):
        if self._exported is None:
            import onnx
            import torch

            example = tuple(torch.from_numpy(x) for x in self.make_inputs(INPUT_SEED_TIMING))
            buffer = io.BytesIO()
            torch.onnx.export(
                self.torch_module(),
                example,
                buffer,
                dynamo=False,
                opset_version=17,
                input_names=[spec.name for spec in self.inputs],
                output_names=self.output_names(),
            )
            self._exported = onnx.load_from_string(buffer.getvalue())
        return self._exported

    def flops(self) -> int:
        """Counted by torch's FlopCounterMode on one forward pass."""
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        args = [torch.from_numpy(x) for x in self.make_inputs(INPUT_SEED_TIMING)]
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            self.torch_module()(*args)
        return int(counter.get_total_flops())

    def reference(self, inputs):
        """The module in double precision, and eager fp32 PyTorch."""
        import torch

        module = self.torch_module()
        with torch.no_grad():
            fp32 = _as_list(module(*[torch.from_numpy(x) for x in inputs]))
            fp64 = _as_list(copy.deepcopy(module).double()(*[_to_double(torch.from_numpy(x)) for x in inputs]))
        return [t.numpy().astype(np.float64) for t in fp64], [t.numpy() for t in fp32]

    def prune(self, sparsity: float, pruning: str = DEFAULT_PRUNING) -> PruneReport:
        """Linear and Conv1d/2d/3d weights, in place; the ONNX form is exported again afterwards."""
        if sparsity == 0:
            return PruneReport(DEFAULT_PRUNING)
        import torch

        mode, layers = parse_pruning(pruning), {}
        with torch.no_grad():
            for name, mod in self.torch_module().named_modules():
                if isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
                    w = prune_weight(mod.weight.detach().numpy(), sparsity, mode, len(layers))
                    mod.weight.copy_(torch.from_numpy(w))
                    layers[name] = w
        self._exported = None  # the exported graph must carry the pruned weights
        return prune_report(mode, sparsity, layers)


class OnnxModel(Model):
    """A model given as an ONNX graph."""

    kind = "onnx"

    def __init__(self, name: str, graph, inputs: list[InputSpec] | None = None):
        self.name = name
        self._graph = graph
        self.inputs = inputs if inputs is not None else graph_inputs(graph)
        self._output_names = [o.name for o in graph.graph.output]

    def onnx_model(self):
        return self._graph

    def output_names(self) -> list[str]:
        return self._output_names

    def flops(self) -> int:
        """From ONNX shape inference (harness.models.onnx_graph.onnx_flops)."""
        from harness.models.onnx_graph import onnx_flops

        return onnx_flops(self._graph)

    def reference(self, inputs):
        """onnx's ReferenceEvaluator on a float64 copy of the graph, and on the fp32 graph."""
        from onnx.reference import ReferenceEvaluator

        from harness.models.onnx_graph import to_float64

        names = [spec.name for spec in self.inputs]
        feeds64 = {n: (x.astype(np.float64) if x.dtype == np.float32 else x) for n, x in zip(names, inputs)}
        fp64 = ReferenceEvaluator(to_float64(self._graph)).run(None, feeds64)
        fp32 = ReferenceEvaluator(self._graph).run(None, dict(zip(names, inputs)))
        return [np.asarray(y, dtype=np.float64) for y in fp64], [np.asarray(y) for y in fp32]

    def prune(self, sparsity: float, pruning: str = DEFAULT_PRUNING) -> PruneReport:
        """The graph's weight initializers (harness.models.onnx_graph.weight_initializers), in place."""
        if sparsity == 0:
            return PruneReport(DEFAULT_PRUNING)
        from onnx import numpy_helper

        from harness.models.onnx_graph import weight_initializers

        weights, mode, layers = weight_initializers(self._graph), parse_pruning(pruning), {}
        for init in self._graph.graph.initializer:
            if init.name in weights:
                w = prune_weight(numpy_helper.to_array(init), sparsity, mode, len(layers), weights[init.name])
                init.CopyFrom(numpy_helper.from_array(w, init.name))
                layers[init.name] = w
        return prune_report(mode, sparsity, layers)


_ONNX_DTYPES = {1: "float32", 7: "int64", 6: "int32", 11: "float64", 9: "bool"}


class ShapeError(ValueError):
    pass


def graph_inputs(graph, overrides: dict[str, tuple[int, ...]] | None = None) -> list[InputSpec]:
    """Input specs from an ONNX graph; dynamic dims must be given in ``overrides``."""
    overrides = overrides or {}
    inits = {init.name for init in graph.graph.initializer}
    specs = []
    for vi in graph.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        if vi.name in overrides:
            shape = tuple(overrides[vi.name])
            declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
            shown = "x".join(str(d) if d else "?" for d in declared)
            if tt.HasField("shape") and len(declared) != len(shape):
                raise ShapeError(
                    f"input {vi.name!r} has rank {len(declared)} ({shown}); --input-shape gives {len(shape)} dims"
                )
            clash = [i for i, (d, s) in enumerate(zip(declared, shape)) if d is not None and d != s]
            if tt.HasField("shape") and clash:
                raise ShapeError(
                    f"input {vi.name!r} is {shown} in the graph; --input-shape changes fixed dim {clash[0]} "
                    f"to {shape[clash[0]]}"
                )
        else:
            dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
            if None in dims:
                shown = "x".join(str(d) if d else "?" for d in dims)
                raise ShapeError(
                    f"input {vi.name!r} has dynamic shape {shown}; give it with "
                    f"--input-shape {vi.name}={'x'.join(str(d or 1) for d in dims)}"
                )
            shape = tuple(dims)
        dtype = _ONNX_DTYPES.get(tt.elem_type)
        if dtype is None:
            raise ShapeError(
                f"input {vi.name!r} has ONNX element type {tt.elem_type}, which the harness cannot generate"
            )
        specs.append(InputSpec(vi.name, shape, dtype, high=2 if dtype == "bool" else 100))
    unknown = set(overrides) - {s.name for s in specs}
    if unknown:
        raise ShapeError(f"--input-shape names {sorted(unknown)} but the graph's inputs are {[s.name for s in specs]}")
    return specs
