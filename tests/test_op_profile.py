"""Per-operator profiles: the bounded aggregation by op type, the saved form and its validation, the
diff by op type, its three renderings, every built-in backend's ``profile_ops`` on a tiny model, and
the diff naming the operator a test backend slowed on purpose."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.backends import get_backend
from harness.backends.ort import PROFILING_OPTIONS
from harness.compare.op_profile import (
    MAX_JSON_BYTES,
    NAME_CHARS,
    NODES_PER_OP_TYPE,
    OTHER,
    TOP_OP_TYPES,
    NodeTime,
    OpProfile,
    OpTypeTime,
    aggregate,
    clean_name,
    op_diff,
)
from harness.models import build_model
from harness.models.base import INPUT_SEED_PARITY
from harness.models.mlp import build_mlp
from harness.plan.targets import get_target
from harness.report.html import html_text
from harness.report.markdown import markdown_text
from harness.report.op_profile import OP_DIFF_HEADER, op_diff_html, op_diff_lines, op_diff_markdown, op_diff_rows
from tests.test_report_escaping import HOSTILE, TAG_START, commonmark_text, markdown_tables

NAMES = st.text(st.characters(codec="ascii"), max_size=60)
NODE_TIMES = st.lists(
    st.builds(
        NodeTime,
        op_type=st.sampled_from([f"Op{i}" for i in range(30)]) | NAMES,
        node=NAMES,
        us=st.floats(0, 1e6),
        calls=st.integers(1, 5),
    ),
    max_size=200,
)


def _profile(source="onnxruntime session profiler", runtime="onnxruntime 1.31.1", runs=10, **ops):
    """A profile of op types with the given microseconds per inference, one node each."""
    rows = [OpTypeTime(op, us, 1.0, ((f"{op}_node", us),)) for op, us in ops.items()]
    return OpProfile(source, runtime, runs, tuple(sorted(rows, key=lambda r: -r.us)))


@given(NODE_TIMES, st.integers(1, 20), st.integers(1, 25), st.integers(0, 4))
def test_aggregation_keeps_the_total_within_its_bounds(times, runs, top, nodes):
    profile = aggregate(times, source="s", runtime="r", runs=runs, top=top, nodes=nodes)
    total = sum(t.us for t in times) / runs
    assert profile.total_us == pytest.approx(total, rel=1e-9, abs=0.005 * (top + 1))  # OTHER holds the rest
    assert sum(r.calls for r in profile.rows) == pytest.approx(
        sum(t.calls for t in times) / runs, abs=0.005 * (top + 1)
    )
    if profile.total_us > 0:
        assert sum(profile.share(r) for r in profile.rows) == pytest.approx(1.0)
    assert len(profile.rows) <= top + 1
    types = {clean_name(t.op_type) or "(unnamed)" for t in times}  # as aggregate names them: "" and " " are one
    assert (OTHER in profile.by_op_type()) == (len(types) > top + 1 and OTHER not in types)
    named = [r for r in profile.rows if r.op_type != OTHER]
    assert [r.us for r in named] == sorted((r.us for r in named), reverse=True)
    for row in profile.rows:
        assert len(row.nodes) <= nodes
        for name in [row.op_type] + [n for n, _ in row.nodes]:
            assert len(name) <= NAME_CHARS and name == name.strip() and "\n" not in name and "\x00" not in name
    assert OpProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_other_row_names_what_it_folded_and_the_slowest_nodes_are_kept():
    times = [NodeTime(f"Op{i:02d}", f"n{i}", 100.0 * (i + 1)) for i in range(20)]
    times += [NodeTime("Op19", f"n19_{k}", 1.0) for k in range(5)]
    profile = aggregate(times, source="s", runtime="r", runs=2)
    assert len(profile.rows) == TOP_OP_TYPES + 1
    assert profile.rows[0].op_type == "Op19" and profile.rows[0].us == pytest.approx((2000 + 5) / 2)
    assert profile.rows[0].calls == 3.0 and len(profile.rows[0].nodes) == NODES_PER_OP_TYPE
    assert profile.rows[0].nodes[0] == ("n19", 1000.0)
    other = profile.rows[-1]
    assert other.op_type == OTHER and other.us == pytest.approx(sum(100.0 * (i + 1) for i in range(8)) / 2)
    assert [n for n, _ in other.nodes] == ["Op07", "Op06", "Op05"]


def test_the_saved_profile_stays_small_at_its_largest():
    long = "x" * 200
    times = [NodeTime(f"{long}{i}", f"{long}{i}-{k}", 1e9 + 0.123 + i) for i in range(100) for k in range(10)]
    profile = aggregate(times, source="onnxruntime session profiler", runtime="onnxruntime 1.31.1", runs=3)
    assert len(json.dumps(profile.to_dict())) < MAX_JSON_BYTES
    assert all(len(r.op_type) == NAME_CHARS and r.op_type.endswith("...") for r in profile.rows[:-1])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: [], "op profile is a list, not an object"),
        (lambda d: {**d, "version": 99}, "op profile format version 99; this harness reads 1"),
        (lambda d: {**d, "source": None}, "op profile: source is None, not a string"),
        (lambda d: {**d, "runs": 0}, "op profile: runs is 0, not a positive integer"),
        (lambda d: {**d, "runs": True}, "op profile: runs is True, not a positive integer"),
        (lambda d: {**d, "ops": {}}, "op profile: ops is dict, not a list"),
        (lambda d: {**d, "ops": [3]}, r"op profile: ops\[0\] is a int, not an object"),
        (lambda d: {**d, "ops": [{**d["ops"][0], "us": "fast"}]}, r"ops\[0\].us is 'fast', not a finite number >= 0"),
        (lambda d: {**d, "ops": [{**d["ops"][0], "us": -1}]}, r"ops\[0\].us is -1, not a finite number >= 0"),
        (lambda d: {**d, "ops": [{**d["ops"][0], "calls": float("nan")}]}, r"ops\[0\].calls is nan, not a finite"),
        (lambda d: {**d, "ops": [{**d["ops"][0], "op": 7}]}, r"op profile: ops\[0\]: op is 7, not a string"),
        (
            lambda d: {**d, "ops": [{**d["ops"][0], "nodes": [["a"]]}]},
            r"ops\[0\].nodes\[0\] is \['a'\], not \[name, mic",
        ),
        (lambda d: {**d, "ops": [{**d["ops"][0], "nodes": "a"}]}, r"ops\[0\].nodes is str, not a list"),
    ],
)
def test_a_malformed_saved_profile_is_one_line_naming_the_field(change, message):
    good = _profile(MatMul=10.0).to_dict()
    with pytest.raises(ValueError, match=message) as raised:
        OpProfile.from_dict(change(good))
    assert "\n" not in str(raised.value)


def test_the_diff_matches_op_types_and_orders_by_contribution_to_the_slowdown():
    baseline = _profile(MatMul=100.0, Gelu=20.0, Softmax=30.0, Transpose=10.0)
    current = _profile(MatMul=130.0, Gelu=80.0, Softmax=25.0, FusedGemm=10.0)  # Transpose fused away
    diff = op_diff(baseline, current)
    assert [c.op_type for c in diff.changes] == ["Gelu", "MatMul", "FusedGemm", "Softmax", "Transpose"]
    gelu, matmul, gemm, softmax, transpose = diff.changes
    assert diff.slowdown_us == 60.0 + 30.0 + 10.0
    assert (gelu.change_us, gelu.ratio, gelu.share_of_slowdown) == (60.0, 4.0, 0.6)
    assert (matmul.ratio, matmul.share_of_slowdown) == (1.3, 0.3)
    assert gemm.status == "new" and gemm.baseline_us is None and gemm.ratio is None and gemm.share_of_slowdown == 0.1
    assert (
        transpose.status == "vanished"
        and transpose.change_us == -10.0
        and transpose.nodes == (("Transpose_node", 10.0),)
    )
    assert softmax.share_of_slowdown == pytest.approx(-0.05)  # won back 5% of the slowdown
    assert [c.op_type for c in diff.slower()] == ["Gelu", "MatMul", "FusedGemm"]
    assert (diff.baseline_total_us, diff.current_total_us) == (160.0, 245.0)
    assert diff.notes == ()


def test_a_type_folded_on_one_side_takes_other_s_figure_for_it():
    times = [NodeTime(f"Op{i:02d}", "n", 100.0 * (i + 1)) for i in range(20)]
    baseline = aggregate(times, source="s", runtime="r", runs=1)  # Op07..Op00 in OTHER, its detail Op07..Op05
    slower = [NodeTime("Op07", "n", 5000.0), NodeTime("Op00", "n", 9000.0)]
    current = aggregate(times[1:7] + slower, source="s", runtime="r", runs=1)  # 8 types: nothing folded
    by = {c.op_type: c for c in op_diff(baseline, current).changes}
    assert (by["Op07"].status, by["Op07"].baseline_us, by["Op07"].ratio) == ("in other (baseline)", 800.0, 6.25)
    assert (by["Op00"].status, by["Op00"].baseline_us, by["Op00"].change_us) == ("in other (baseline)", None, 9000.0)
    assert (by["Op19"].status, by["Op19"].current_us, by["Op01"].baseline_us) == ("vanished", None, None)
    last = op_diff(current, baseline).changes[-1]
    assert (last.op_type, last.status, last.current_us, last.change_us) == ("Op00", "in other (now)", None, -9000.0)


def test_the_diff_notes_another_profiler_or_runtime_and_nothing_slower():
    ort = _profile(MatMul=100.0)
    newer = _profile(runtime="onnxruntime 1.32.0", MatMul=90.0)
    diff = op_diff(ort, newer)
    assert diff.notes == (
        "runtime onnxruntime 1.31.1 in the baseline, onnxruntime 1.32.0 now: fused op types may differ",
    )
    assert diff.slower() == [] and diff.changes[0].share_of_slowdown is None
    assert "no op type got slower in the profiles" in op_diff_lines(diff)[-2]
    other = op_diff(ort, _profile(source="torch.profiler (self CPU time)", runtime="torch 2.13.0", MatMul=100.0))
    assert other.notes[0].startswith("profiled by onnxruntime session profiler in the baseline, torch.profiler")


def test_the_renderings_show_the_top_contributors_and_escape_names():
    baseline = _profile(**{f"Op{i}": 10.0 for i in range(8)}, **{name: 10.0 for name in HOSTILE})
    current = _profile(**{f"Op{i}": 10.0 + i for i in range(8)}, **{name: 100.0 for name in HOSTILE})
    diff = op_diff(baseline, current)
    lines = op_diff_lines(diff, cell="bert_tiny-ort")
    assert lines[0] == (
        "per-op diff of bert_tiny-ort (onnxruntime session profiler, 10 runs): 140.0 -> 708.0 us per inference (+406%)"
    )
    assert lines[1].split() == "op type baseline us current us ratio share of the slowdown nodes".split()
    first = sorted(HOSTILE)[0]
    assert op_diff_rows(diff)[0] == [first, "10.0", "100.0", "10.00x", f"{90 / 568:.0%}", f"{first}_node"]
    assert lines[2].startswith(f"  {first}  ") and lines[2].endswith(f"  {first}_node")
    assert len(lines) == 2 + 5 + 1 and lines[-1] == "  8 more op types got slower, by 118.0 us in all"

    md = op_diff_markdown(diff, markdown_text, cell="bert_tiny-ort")
    assert not TAG_START.search(md)
    (table,) = markdown_tables(md)
    assert table[0] == OP_DIFF_HEADER and len(table) == 2 + 5
    assert [commonmark_text(row[0]) for row in table[2:]] == sorted(HOSTILE)[:5]
    assert all(len(row) == len(OP_DIFF_HEADER) for row in table)

    page = op_diff_html(diff, html_text)
    assert "<script>" not in page and "<img" not in page and "&lt;script&gt;" in page
    assert page.count("<tr>") == 1 + 5


@pytest.fixture(scope="module")
def tiny():
    return build_mlp("tiny", batch=2, features=16, hidden=32, layers=2, classes=4)


SOURCES = {
    "torch": "torch.profiler (self CPU time)",
    "torch-compile": "torch.profiler (self CPU time)",
    "ort": "onnxruntime session profiler",
    "tvm": "TVM Relax VM instrument (wall time per call)",
    "tvm-untuned": "TVM Relax VM instrument (wall time per call)",
}


@pytest.mark.parametrize(
    "name, op",
    [
        ("torch", "aten::addmm"),
        ("torch-compile", "inductor:relu"),
        ("ort", "Gemm"),
        ("tvm", "matmul"),
        ("tvm-untuned", "matmul"),
    ],
)
def test_each_backend_profiles_its_operators_and_its_timed_artifact_is_left_as_it_was(name, op, tiny):
    x = tiny.make_inputs(INPUT_SEED_PARITY)
    backend = get_backend(name)
    compiled = backend.compile(tiny, get_target("llvm"), 1, x)
    kept = {k: getattr(compiled.session.get_session_options(), k) for k in PROFILING_OPTIONS} if name == "ort" else {}
    profile = compiled.profile_ops(x, 5)
    assert (profile.source, profile.runtime, profile.runs) == (
        SOURCES[name],
        f"{backend.module} {backend.version()}",
        5,
    )
    assert op in profile.by_op_type() and profile.total_us > 0, profile
    assert sum(profile.share(r) for r in profile.rows) == pytest.approx(1.0)
    assert all(r.calls > 0 and r.nodes for r in profile.rows), profile
    assert OpProfile.from_dict(json.loads(profile.to_json())) == profile
    eager = get_backend("torch").compile(tiny, get_target("llvm"), 1, x).run(x)
    np.testing.assert_allclose(compiled.run(x)[0], eager[0], rtol=1e-5, atol=1e-6)
    if name == "ort":  # the options it borrowed from the timed session are put back
        options = compiled.session.get_session_options()
        assert {k: getattr(options, k) for k in PROFILING_OPTIONS} == kept and not options.enable_profiling


def test_the_diff_names_the_operator_a_backend_slowed(monkeypatch):
    monkeypatch.setenv("INFER_BENCH_BACKENDS", "opslowed=tests.fake_backends:OpSlowed")
    model = build_model("bert_tiny")
    x = model.make_inputs(INPUT_SEED_PARITY)
    backend = get_backend("opslowed")
    monkeypatch.delenv("INFER_BENCH_SLOW_OP", raising=False)
    plain = backend.compile(model, get_target("llvm"), 1, x)
    monkeypatch.setenv("INFER_BENCH_SLOW_OP", "GELU")
    monkeypatch.setenv("INFER_BENCH_SLOW_OP_REPEAT", "30")
    slowed = backend.compile(model, get_target("llvm"), 1, x)
    np.testing.assert_array_equal(slowed.run(x)[0], plain.run(x)[0])
    diff = op_diff(plain.profile_ops(x, 5), slowed.profile_ops(x, 5))
    top = diff.slower()[0]
    assert top.op_type == "aten::gelu" and top.ratio > 2 and top.share_of_slowdown > 0.5, op_diff_lines(diff)
    assert top.nodes[0][0] == "[[1,128,512],[]]"  # its input shapes (the approximate= string is [])
    assert "aten::gelu" in op_diff_lines(diff)[2]
    monkeypatch.setenv("INFER_BENCH_SLOW_OP", "Conv2d")
    with pytest.raises(ValueError, match="opslowed: bert_tiny has no Conv2d module .INFER_BENCH_SLOW_OP.: name one"):
        backend.compile(model, get_target("llvm"), 1, x)
