"""ONNX Runtime after onnxruntime.transformers' optimizer (``ort-opt``): an encoder's attention,
LayerNorm and GELU subgraphs fused into ORT's contrib operators (Attention, SkipLayerNormalization,
BiasGelu, ...), then the session ``ort`` makes (CPUExecutionProvider, ORT_ENABLE_ALL, the same thread
settings and compile cache: harness.backends.ort).

The optimizer is told the model type, heads and hidden size by the model (``Model.transformer``:
the built-in encoders have them); any other model (the MLP, the CNNs, the ONNX graphs, a user's
model) is skipped with that reason in the pytest process (``unsupported_model_reason``). Its pass is
part of ``compile`` (``compile_s`` includes it; ``transformers_optimizer_s`` is its share, None when
the compile cache held the session graph): ``optimize_model`` at ``OPT_LEVEL`` 0, its Python fusions
alone on the exported (already constant-folded) graph, ORT's own optimisations all following in the
session. Not its default for bert, level 1: that runs ORT's basic pass first, whose MatMul+Add to
Gemm rewrite hides the bias from the BiasGelu fusion (measured on bert_tiny: the session graph came
out as plain ``ort``'s; level 0 gave BiasGelu x2, and the same session graph as level 2).

Attention is fused on the encoders in Hugging Face's layout (``bert_*_hf``: separate Q, K and V
MatMul, Add, Reshape, Transpose, and an attention mask; measured on bert_tiny_hf: Attention x2,
BiasGelu x2, SkipLayerNormalization x4). It is not on the other ``bert_*`` (onnxruntime 1.31.1):
their one QKV projection, reshaped and split, is not a path FusionAttention matches; their label
says so.

What it fused is counted, never assumed: ``build_info``'s ``fused_ops`` are the op types of the
optimizer's own statistics (``get_fused_operator_statistics``) that its pass added to the graph
(the exported graph's LayerNormalization nodes are not counted as fused), and the label names them,
or says that attention or anything at all was not fused. The counts travel in the optimised graph's
metadata (``FUSED_OPS_KEY``), which ORT keeps in the graph it saves, so a compile cache hit (the
session graph as ``ort`` caches it, keyed by this backend's name: ``ort`` and ``ort-opt`` never
share an entry) runs no optimizer and still says what was fused."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict

from harness.backends.ort import OnnxRuntime
from harness.models import transformer_facts
from harness.models.base import Model, TransformerFacts

OPT_LEVEL = 0  # optimize_model's ORT pass before its fusions: none (the session's ORT_ENABLE_ALL follows them)
FUSED_OPS_KEY = "infer-bench.fused_ops"  # the optimised graph's metadata entry: op type -> nodes the pass added
ATTENTION_OPS = ("Attention", "MultiHeadAttention")


class UnknownTransformerError(ValueError):
    pass


def optimise(graph, transformer: TransformerFacts):
    """The optimizer's graph for ``graph``, with what it fused in its metadata. The optimizer
    rewrites the graph it is given: it is given a copy."""
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    before = Counter(node.op_type for node in graph.graph.node)
    work = onnx.ModelProto()
    work.CopyFrom(graph)
    optimizer = optimize_model(
        work,
        model_type=transformer.model_type,
        num_heads=transformer.heads,
        hidden_size=transformer.hidden,
        opt_level=OPT_LEVEL,
    )
    after = optimizer.get_fused_operator_statistics()
    fused = {op: count - before[op] for op, count in after.items() if count > before[op]}
    entry = optimizer.model.metadata_props.add()
    entry.key, entry.value = FUSED_OPS_KEY, json.dumps(fused)
    return optimizer.model


class FusedGraph:
    """What ``ort``'s session builder reads of a model (``content_digest``, ``onnx_model``), with
    the optimizer's graph in place of the model's; the optimizer runs the first time the graph is
    asked for (never on a compile cache hit)."""

    def __init__(self, model: Model, transformer: TransformerFacts):
        self.model, self.transformer = model, transformer
        self.optimizer_s: float | None = None  # how long the optimizer took; None: it did not run
        self._graph = None

    def content_digest(self) -> str:
        facts = f"{self.model.content_digest()}|{self.transformer}|opt_level {OPT_LEVEL}"
        return hashlib.sha256(facts.encode()).hexdigest()

    def onnx_model(self):
        if self._graph is None:
            t0 = time.perf_counter()
            self._graph = optimise(self.model.onnx_model(), self.transformer)
            self.optimizer_s = time.perf_counter() - t0
        return self._graph


def describe(transformer: TransformerFacts, fused: dict[str, int]) -> str:
    """The label's account of the optimizer's pass, e.g. ``transformers optimizer (bert, 2 heads,
    hidden 128): fused Attention x2, SkipLayerNormalization x4``."""
    what = f"transformers optimizer ({transformer.model_type}, {transformer.heads} heads, hidden {transformer.hidden})"
    if not fused:
        return f"{what}: fused nothing"
    ops = ", ".join(f"{op} x{count}" for op, count in fused.items())
    missing = "" if any(op in fused for op in ATTENTION_OPS) else "; attention not fused"
    return f"{what}: fused {ops}{missing}"


class OnnxRuntimeOptimized(OnnxRuntime):
    name = "ort-opt"
    targets = frozenset({"llvm"})  # the optimizer's GPU fusions (use_gpu) are not wired yet
    onnx_importer = None  # a user's graph is never run here (no transformer facts): nothing to vet it for

    def unsupported_model_reason(self, model: str, options: dict) -> str | None:
        """Why this backend cannot run ``model`` (no imports): it is not a transformer encoder whose
        architecture, heads and hidden size the harness knows."""
        if transformer_facts(model, options) is None:
            return f"{self.name} optimises the transformer encoders the harness knows (bert_*); {model} is not one"
        return None

    def compile(self, model, target, threads, example):
        if model.transformer is None:
            raise UnknownTransformerError(
                f"{self.name}: model {model.name!r} has no transformer facts (model type, heads, hidden size); "
                "run it on ort, or use a built-in bert_* model"
            )
        compiled = super().compile(model, target, threads, example)
        compiled.label = f"{compiled.label}, {describe(model.transformer, compiled.build_info()['fused_ops'])}"
        return compiled

    def _session(self, model, opts):
        """``ort``'s session (and its compile cache) over the optimizer's graph, with build facts:
        ``transformer``, ``fused_ops`` (read back from the graph the session was made from) and
        ``transformers_optimizer_s``."""
        fused = FusedGraph(model, model.transformer)
        session, info = super()._session(fused, opts)
        recorded = session.get_modelmeta().custom_metadata_map.get(FUSED_OPS_KEY)
        if recorded is None:  # a cached graph this module did not write
            raise RuntimeError(
                f"{self.name}: the session graph of {model.name!r} does not record what was fused ({FUSED_OPS_KEY}); "
                "run with --no-compile-cache, or clear the compile cache"
            )
        facts = {"transformer": asdict(model.transformer), "fused_ops": json.loads(recorded)}
        return session, {**info, **facts, "transformers_optimizer_s": fused.optimizer_s}
