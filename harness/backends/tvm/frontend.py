"""From a harness model to a Relax module, and the target and thread pool it is built for."""

from __future__ import annotations

from harness.machine.threads import ThreadSettings


def set_tvm_threads(settings: ThreadSettings) -> None:
    """The API part of a cell's thread settings: ``runtime.config_threadpool(mode, n, cpus)``.
    Mode 1 (the 'big' cores, the usual call) never grows the pool past its default size (half the
    hardware threads on x86: asked for 2 on 2 CPUs, it keeps 1), so the harness names the CPUs:
    mode -3 (n threads sharing the allowed CPUs), or -2 (one CPU per thread) when pinned."""
    import os

    import tvm

    if settings.count is None:
        return
    mode, cpus = (-2, settings.cpus) if settings.cpus else (-3, sorted(os.sched_getaffinity(0)))
    tvm.get_global_func("runtime.config_threadpool")(mode, settings.count, [str(c) for c in cpus])


def tvm_target(target_info, threads: int):
    import tvm

    attrs = {"kind": "llvm", "num-cores": threads}
    remote = target_info.remote
    if remote:  # a TVM RPC device: its triple, and its CPU for 'llvm' (harness.backends.tvm.remote)
        attrs["mtriple"] = remote["triple"]
        if target_info.host_isa:
            attrs["mcpu"] = remote["mcpu"]
        return tvm.target.Target(attrs)
    if target_info.host_isa:
        # "-mcpu=native" is ignored with the wheel's conda triple: name the triple and the CPU.
        attrs["mtriple"] = "x86_64-linux-gnu" if tvm.target.codegen.llvm_get_system_cpu() else None
        attrs["mcpu"] = tvm.target.codegen.llvm_get_system_cpu()
        attrs = {k: v for k, v in attrs.items() if v}
    return tvm.target.Target(attrs)


def import_relax(model, example):
    """Relax IRModule for a model: torch models via torch.export, ONNX graphs via from_onnx."""
    from tvm import relax

    if model.kind == "torch":
        import torch
        from tvm.relax.frontend.torch import from_exported_program

        args = tuple(torch.from_numpy(x) for x in example)
        exported = torch.export.export(model.torch_module(), args)
        mod = from_exported_program(exported, keep_params_as_input=False)
    else:
        from tvm.relax.frontend.onnx import from_onnx

        shapes = {spec.name: list(spec.shape) for spec in model.inputs}
        dtypes = {spec.name: spec.dtype for spec in model.inputs}
        graph = sum_as_adds(model.onnx_model())
        mod = from_onnx(graph, shape_dict=shapes, dtype_dict=dtypes, keep_params_in_input=False)
    return remove_dropout(relax.transform.DecomposeOpsForInference()(mod))


def sum_as_adds(graph):
    """A copy of the graph with every n-input ONNX ``Sum`` as a chain of ``Add`` (the same
    broadcasting sum). TVM's frontend imports ``Sum`` as ``sum(stack(...), axis=0)``, a 5-D tensor
    for image activations, on which ``ConvertLayout`` fails (ResNet-50's residual adds)."""
    import onnx

    if not any(node.op_type == "Sum" for node in graph.graph.node):
        return graph
    copy = onnx.ModelProto()
    copy.CopyFrom(graph)
    nodes = []
    for node in copy.graph.node:
        if node.op_type != "Sum" or len(node.input) < 2:
            nodes.append(node)
            continue
        acc = node.input[0]
        for i, term in enumerate(node.input[1:], 1):
            out = node.output[0] if i == len(node.input) - 1 else f"{node.output[0]}__sum{i}"
            nodes.append(onnx.helper.make_node("Add", [acc, term], [out], name=f"{node.name}__add{i}"))
            acc = out
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy


def remove_dropout(mod):
    """Inference dropout is the identity; the ONNX frontend keeps ``nn.dropout`` (a tuple-valued op)
    and ``ConvertLayout`` fails on it ("Expected nested to match tuple")."""
    from tvm import relax
    from tvm.relax.dpl import is_op, is_tuple_get_item, rewrite_call, wildcard

    x = wildcard()
    pattern = is_tuple_get_item(is_op("relax.nn.dropout")(x), 0)
    for gv, func in list(mod.functions_items()):
        if isinstance(func, relax.Function):
            mod[gv] = rewrite_call(pattern, lambda _expr, matches: matches[x], func)
    return relax.transform.DeadCodeElimination()(mod)
