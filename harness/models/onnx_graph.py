"""Helpers on ONNX graphs: materialize placeholder weights, float64 copies, FLOP counts.

The onnx package ships real model graphs (onnx/backend/test/data/light) whose weights are
ConstantOfShape placeholders: every weight is the same constant, so every output is identical
and parity would mean nothing. ``materialize_weights`` turns each placeholder into a seeded
random initializer scaled like He initialisation (std = sqrt(2 / fan_in)).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_WEIGHT_CONSUMERS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


def drop_initializer_inputs(model: onnx.ModelProto) -> None:
    """Old IR versions list initializers in graph.input too; that makes them overridable and
    stops runtimes from folding them. Remove them and raise the IR version accordingly."""
    inits = {init.name for init in model.graph.initializer}
    keep = [_copy(i) for i in model.graph.input if i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    if model.ir_version < 4:
        model.ir_version = 4


def _copy(message):
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


def _fan_in(shape: tuple[int, ...]) -> int:
    if len(shape) <= 1:
        return max(1, shape[0] if shape else 1)
    return int(np.prod(shape[1:]))


def materialize_weights(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """Replace ConstantOfShape(shape-initializer) placeholders with seeded random initializers."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    rng = np.random.default_rng(seed)
    new_nodes, used_shape_inits = [], set()
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in inits:
            shape = tuple(int(d) for d in numpy_helper.to_array(inits[node.input[0]]))
            value = helper.get_attribute_value(node.attribute[0]) if node.attribute else None
            dtype = numpy_helper.to_array(value).dtype if value is not None else np.float32
            if np.issubdtype(dtype, np.floating):
                if len(shape) >= 2:
                    arr = rng.standard_normal(shape) * np.sqrt(2.0 / _fan_in(shape))
                else:  # biases and normalisation parameters (fixed up by role below)
                    arr = 0.1 * rng.standard_normal(shape)
                arr = arr.astype(dtype)
            else:
                arr = np.full(shape, numpy_helper.to_array(value).reshape(-1)[0], dtype=dtype)
            graph.initializer.append(numpy_helper.from_array(arr, node.output[0]))
            used_shape_inits.add(node.input[0])
        else:
            new_nodes.append(_copy(node))  # elements die with `del graph.node[:]`: keep copies
    del graph.node[:]
    graph.node.extend(new_nodes)
    still_used = {name for node in graph.node for name in node.input}
    keep = [_copy(i) for i in graph.initializer if i.name not in used_shape_inits or i.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    inputs = [_copy(i) for i in graph.input if i.name not in used_shape_inits or i.name in still_used]
    del graph.input[:]
    graph.input.extend(inputs)
    drop_initializer_inputs(model)
    _fix_batchnorm_params(model, rng)
    return model


def _fix_batchnorm_params(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    """BatchNormalization needs scale ~1 and a positive variance, or the graph yields NaN."""
    index = {init.name: i for i, init in enumerate(model.graph.initializer)}
    for node in model.graph.node:
        if node.op_type != "BatchNormalization":
            continue
        for pos, low in ((1, 0.5), (4, 0.5)):  # scale, var in [0.5, 1.5)
            name = node.input[pos] if len(node.input) > pos else None
            if name in index:
                old = numpy_helper.to_array(model.graph.initializer[index[name]])
                new = (low + rng.random(old.shape)).astype(old.dtype)
                model.graph.initializer[index[name]].CopyFrom(numpy_helper.from_array(new, name))


def weight_initializers(model: onnx.ModelProto) -> dict[str, bool]:
    """Initializers used as weights of Conv/Gemm/MatMul (what pruning touches): name -> whether
    the weight is stored (inputs, outputs), i.e. transposed against (outputs, inputs): a MatMul's
    second operand, a Gemm's B without transB."""
    inits = {init.name for init in model.graph.initializer}
    found: dict[str, bool] = {}
    for node in model.graph.node:
        idx = _WEIGHT_CONSUMERS.get(node.op_type)
        if idx is not None and len(node.input) > idx and node.input[idx] in inits:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            transposed = node.op_type == "MatMul" or (node.op_type == "Gemm" and not trans_b)
            found.setdefault(node.input[idx], transposed)
    return found


def to_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float64 copy of a float32 graph, for ground truth."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for i, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT:
            graph.initializer[i].CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float64), init.name)
            )
    for vi in list(graph.input) + list(graph.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    del graph.value_info[:]
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.DOUBLE
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float64), attr.t.name))
    return model


def _dims(vi) -> list[int]:
    return [d.dim_value for d in vi.type.tensor_type.shape.dim]


def onnx_flops(model: onnx.ModelProto) -> int:
    """Multiply-add FLOPs (2 per MAC) of Conv, ConvTranspose, Gemm and MatMul nodes, from
    shape inference with the graph's static input shapes. Element-wise ops are not counted."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        vi.name: _dims(vi)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    }
    shapes.update({init.name: list(init.dims) for init in model.graph.initializer})
    total = 0
    for node in inferred.graph.node:
        out = shapes.get(node.output[0])
        if node.op_type == "Conv":  # w: [Cout, Cin/group, kh, kw]: each output element is a dot product
            w = shapes.get(node.input[1])
            if out and w:
                total += 2 * int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type == "ConvTranspose":  # w: [Cin, Cout/group, kh, kw]: each input element scatters
            w, inp = shapes.get(node.input[1]), shapes.get(node.input[0])
            if inp and w:
                total += 2 * int(np.prod(inp)) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a = shapes.get(node.input[0])
            if a and out:
                trans_a = node.op_type == "Gemm" and any(x.name == "transA" and x.i for x in node.attribute)
                total += 2 * int(np.prod(out)) * int(a[0] if trans_a else a[-1])
    return total


_PASS_THROUGH = {
    "Relu",
    "GlobalAveragePool",
    "AveragePool",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Dropout",
    "Identity",
    "MaxPool",
}


def calibrate_logits(model: onnx.ModelProto, feeds: dict[str, np.ndarray], target_std: float = 2.0) -> onnx.ModelProto:
    """Random weights push logits so far apart that Softmax outputs are one-hot, and parity on a
    one-hot vector proves little. Rescale the last linear layer before each Softmax (through
    positively homogeneous ops only) so that its logits have std ``target_std`` on ``feeds``."""
    import onnxruntime as ort

    producers = {out: node for node in model.graph.node for out in node.output}
    inits = {init.name: i for i, init in enumerate(model.graph.initializer)}
    plans = []
    for node in model.graph.node:
        if node.op_type != "Softmax":
            continue
        cur = producers.get(node.input[0])
        while cur is not None and cur.op_type in _PASS_THROUGH:
            cur = producers.get(cur.input[0])
        if cur is not None and cur.op_type in _WEIGHT_CONSUMERS and cur.input[1] in inits:
            plans.append((node.input[0], cur))
    if not plans:
        return model
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    existing = {o.name for o in probe.graph.output}
    for logits, _ in plans:
        if logits not in existing:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(logits))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run([logits for logits, _ in plans], feeds)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for (_, layer), value in zip(plans, values):
        std = float(np.std(value))
        if not np.isfinite(std) or std == 0:
            continue
        scale = target_std / std
        for name in layer.input[1:3]:
            if name in inits:
                init = model.graph.initializer[inits[name]]
                arr = numpy_helper.to_array(init)
                init.CopyFrom(numpy_helper.from_array((arr * scale).astype(arr.dtype), name))
    return model
