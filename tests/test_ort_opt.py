"""ort-opt: onnxruntime.transformers' optimizer on the encoders, then ORT's session. What it fused
is read from the session's own graph; parity through the real worker; non-encoders are skipped
in the pytest process with the reason; its compile cache entries are never ort's."""

import json
from collections import Counter

import onnx
import pytest

from harness.backends import get_backend
from harness.backends.ort import OPTIMISED
from harness.backends.ort_opt import FUSED_OPS_KEY, FusedGraph, UnknownTransformerError, describe
from harness.models import build_model, transformer_facts
from harness.models.base import INPUT_SEED_TIMING, TransformerFacts
from harness.models.mlp import build_mlp
from harness.plan.cell import Cell
from harness.plan.support import unsupported_reason
from harness.plan.targets import get_target
from harness.run.schedule import run_cell

FAST = {"max_time": 0.05, "min_rounds": 3, "warmup": False}
FUSED_IN_BERT_TINY = {"BiasGelu": 2, "SkipLayerNormalization": 4}  # 2 layers: per layer 1 and 2; no Attention
FUSED_IN_BERT_TINY_HF = {"Attention": 2, **FUSED_IN_BERT_TINY}  # separate Q, K, V: attention too


@pytest.fixture(scope="module")
def bert_tiny():
    return build_model("bert_tiny")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("INFER_BENCH_NO_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("INFER_BENCH_CACHE_DIR", str(tmp_path / "compiled"))
    return tmp_path / "compiled"


def _compile(backend: str, model):
    return get_backend(backend).compile(model, get_target("llvm"), 1, model.make_inputs(INPUT_SEED_TIMING))


def _entries(cache_dir) -> set:
    return set(cache_dir.glob("[!.]*"))  # not a writer's temporary directory


def _ops(graph) -> Counter:
    return Counter(node.op_type for node in graph.graph.node)


@pytest.mark.parametrize("model", ["mlp", "resnet_tiny", "squeezenet"])
def test_models_it_cannot_optimise_are_skipped_with_the_reason_without_a_worker(model):
    assert unsupported_reason(Cell(model, "ort-opt")) == (
        f"ort-opt optimises the transformer encoders the harness knows (bert_*); {model} is not one"
    )
    assert unsupported_reason(Cell(model, "ort")) is None  # ort itself is unchanged


def test_encoders_and_user_models():
    assert unsupported_reason(Cell("bert_tiny", "ort-opt")) is None
    assert unsupported_reason(Cell("bert_base", "ort-opt", threads="2", batch=8)) is None
    assert transformer_facts("bert_base") == TransformerFacts("bert", 12, 768)
    user = Cell("mine", "ort-opt", model_options={"model_file": "mine.onnx"})
    assert unsupported_reason(user).endswith("(bert_*); mine is not one")


def test_a_model_without_transformer_facts_fails_to_compile_in_one_line():
    tiny = build_mlp("tiny", batch=2, features=16, hidden=32, layers=2, classes=4)
    with pytest.raises(UnknownTransformerError) as err:
        _compile("ort-opt", tiny)
    assert str(err.value) == (
        "ort-opt: model 'tiny' has no transformer facts (model type, heads, hidden size); "
        "run it on ort, or use a built-in bert_* model"
    )


def test_the_label_names_what_was_fused_and_what_was_not():
    facts = TransformerFacts("bert", 2, 128)
    assert describe(facts, {"Attention": 2, "BiasGelu": 2}) == (
        "transformers optimizer (bert, 2 heads, hidden 128): fused Attention x2, BiasGelu x2"
    )
    assert describe(facts, FUSED_IN_BERT_TINY) == (
        "transformers optimizer (bert, 2 heads, hidden 128): fused BiasGelu x2, SkipLayerNormalization x4; "
        "attention not fused"
    )
    assert describe(facts, {}) == "transformers optimizer (bert, 2 heads, hidden 128): fused nothing"


def test_the_optimizer_fuses_bert_tiny_and_counts_only_what_it_added(bert_tiny):
    exported = _ops(bert_tiny.onnx_model())
    optimised = FusedGraph(bert_tiny, bert_tiny.transformer).onnx_model()
    ops = _ops(optimised)
    assert exported["LayerNormalization"] == 5 and exported["Erf"] == 2  # opset 17 export: LayerNorm is one op
    assert ops["SkipLayerNormalization"] == 4 and ops["LayerNormalization"] == 1  # the embeddings' stays
    assert ops["BiasGelu"] == 2 and ops["Erf"] == 0
    assert ops["Softmax"] == 2 and ops["Attention"] == ops["MultiHeadAttention"] == 0
    recorded = {p.key: p.value for p in optimised.metadata_props}[FUSED_OPS_KEY]
    assert json.loads(recorded) == FUSED_IN_BERT_TINY
    assert _ops(bert_tiny.onnx_model()) == exported  # the optimizer rewrote a copy


def test_the_session_runs_the_fused_graph_and_the_label_says_what_was_fused(bert_tiny, cache_dir):
    compiled = _compile("ort-opt", bert_tiny)
    info = compiled.build_info()
    (entry,) = _entries(cache_dir)
    ops = _ops(onnx.load(str(entry / OPTIMISED)))  # the graph the session runs
    # ORT_ENABLE_ALL adds the embeddings' Add + LayerNorm to the optimizer's 4 (plain ort fuses it too)
    assert ops["BiasGelu"] == 2 and ops["SkipLayerNormalization"] == 5
    assert ops["Gelu"] == ops["Erf"] == ops["Attention"] == 0
    assert info["fused_ops"] == FUSED_IN_BERT_TINY
    assert compiled.label == (
        "CPUExecutionProvider, ORT_ENABLE_ALL, transformers optimizer (bert, 2 heads, hidden 128): "
        "fused BiasGelu x2, SkipLayerNormalization x4; attention not fused"
    )
    assert info["transformer"] == {"model_type": "bert", "heads": 2, "hidden": 128}
    assert info["compile_cache"] == "miss" and info["transformers_optimizer_s"] > 0
    assert info["artifact_bytes"] == (entry / OPTIMISED).stat().st_size


def test_ort_and_ort_opt_never_share_a_compile_cache_entry(bert_tiny, cache_dir):
    plain = _compile("ort", bert_tiny).build_info()
    (ort_entry,) = _entries(cache_dir)
    first = _compile("ort-opt", bert_tiny)
    again = _compile("ort-opt", bert_tiny)
    entries = _entries(cache_dir)
    assert plain["compile_cache"] == "miss" and first.build_info()["compile_cache"] == "miss"
    assert len(entries) == 2 and ort_entry in entries
    ort_graph = onnx.load(str(ort_entry / OPTIMISED))
    assert FUSED_OPS_KEY not in {p.key for p in ort_graph.metadata_props}
    # a hit runs no optimizer and still says what was fused, from the cached session graph
    hit = again.build_info()
    assert hit["compile_cache"] == "hit" and hit["transformers_optimizer_s"] is None
    assert hit["fused_ops"] == FUSED_IN_BERT_TINY and again.label == first.label


def test_the_hf_layout_encoder_gets_fused_attention(cache_dir):
    """Separate Q, K, V projections and an attention mask, as Hugging Face's BERT exports: the
    optimizer fuses each layer's attention into one Attention node, and the session runs it."""
    hf = build_model("bert_tiny_hf")
    optimised = FusedGraph(hf, hf.transformer).onnx_model()
    ops = _ops(optimised)
    assert ops["Attention"] == 2 and ops["Softmax"] == 0
    assert json.loads({p.key: p.value for p in optimised.metadata_props}[FUSED_OPS_KEY]) == FUSED_IN_BERT_TINY_HF
    compiled = _compile("ort-opt", hf)
    (entry,) = _entries(cache_dir)
    session_ops = _ops(onnx.load(str(entry / OPTIMISED)))
    assert session_ops["Attention"] == 2 and session_ops["Softmax"] == 0
    assert session_ops["MatMul"] == 2 * 3  # per layer the output projection and the FFN's two; Q, K, V are fused
    assert compiled.build_info()["fused_ops"] == FUSED_IN_BERT_TINY_HF
    assert compiled.label.endswith(
        "transformers optimizer (bert, 2 heads, hidden 128): fused Attention x2, BiasGelu x2, SkipLayerNormalization x4"
    )


def test_parity_through_the_worker(cache_dir):
    result = run_cell(Cell("bert_tiny", "ort-opt"), launcher="inline", timing=FAST)
    assert result.status == "ok", result.message
    assert result.parity["passed"]
    (output,) = result.parity["outputs"]
    assert output["max_rel_err"] < 1e-4, output
    assert result.build["fused_ops"] == FUSED_IN_BERT_TINY
    assert result.label.endswith("fused BiasGelu x2, SkipLayerNormalization x4; attention not fused")
    assert result.samples


def test_fused_attention_keeps_parity_through_the_worker(cache_dir):
    result = run_cell(Cell("bert_tiny_hf", "ort-opt", batch=2), launcher="inline", timing=FAST)
    assert result.status == "ok", result.message
    (output,) = result.parity["outputs"]
    assert result.parity["passed"] and output["max_rel_err"] < 1e-4, output
    assert result.build["fused_ops"] == FUSED_IN_BERT_TINY_HF
