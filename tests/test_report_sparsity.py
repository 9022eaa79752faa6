"""The sparsity report, from cell results: speed-ups over the same backend's dense cell and over
the best dense cell, break-even sparsities, and the files written."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.plan.cell import Cell
from harness.report.sparsity import break_even, sparsity_table, terminal_lines, to_markdown, write_report
from harness.run.protocol import CellResult, ThreadReport
from harness.run.timing import Samples


def _result(backend, sparsity, ms, pruning="unstructured", model="bert"):
    cell = Cell(model, backend, sparsity=sparsity, threads="2", pruning=pruning)
    return CellResult(
        cell, ThreadReport("2", 2), samples=[Samples([ms * 1e-3] * 50, 1)], measured_sparsity=sparsity, label="x"
    )


RESULTS = [
    _result("ort", 0.0, 10.0),
    _result("ort", 0.9, 10.2),
    _result("tvm", 0.0, 20.0),
    _result("tvm-sparse", 0.0, 20.0),
    _result("tvm-sparse", 0.7, 25.0),
    _result("tvm-sparse", 0.8, 16.0),
    _result("tvm-sparse", 0.9, 8.0),
    _result("tvm-sparse", 0.9, 5.0, pruning="block:16x1"),
    _result("other-model-ort", 0.0, 1.0, model="lonely"),  # no pruned cell: no group
]


def test_speedups_against_own_and_best_dense():
    [(key, points)] = sparsity_table(RESULTS).items()
    assert key[0] == "bert"
    by = {(p.cell.backend, p.cell.pruning, p.cell.sparsity): p for p in points}
    assert by[("tvm-sparse", "unstructured", 0.9)].speedup == pytest.approx(2.5)
    assert by[("tvm-sparse", "unstructured", 0.9)].vs_best_dense == pytest.approx(1.25)
    assert by[("tvm-sparse", "block:16x1", 0.9)].speedup == pytest.approx(4.0)
    assert by[("ort", "unstructured", 0.9)].speedup == pytest.approx(10 / 10.2)
    assert {p.best_dense_backend for p in points} == {"ort"}


def test_break_even_in_the_report():
    md = to_markdown(sparsity_table(RESULTS))
    # tvm-sparse unstructured: 0.8x at 70%, 1.25x at 80% -> crosses 1.0 at 70% + 0.2/0.45 * 10% = 74%
    assert "| tvm-sparse | unstructured | 74% | 86% |" in md
    assert "| ort | unstructured | none | none |" in md
    assert "Best dense cell: **ort** 10.000 ms" in md
    lines = terminal_lines(sparsity_table(RESULTS))
    assert (
        "bert (llvm, 2 threads) tvm-sparse block:16x1: vs own dense sp90 4.00x; vs best dense (ort) sp90 2.00x" in lines
    )


def test_a_sparse_backend_without_its_own_dense_cell_is_shown_against_the_best():
    # the smoke run: test_latency's dense cells, sparse backends only pruned
    results = [_result("ort", 0.0, 10.0), _result("torch-sparse", 0.9, 8.0, pruning="block:16x1")]
    lines = terminal_lines(sparsity_table(results))
    assert lines == ["bert (llvm, 2 threads) torch-sparse block:16x1: vs best dense (ort) sp90 1.25x"]
    assert "| torch-sparse | block:16x1 | - | < 90% |" in to_markdown(sparsity_table(results))


@pytest.mark.parametrize(
    "ys,expected", [([0.5, 2.0], "57%"), ([1.5, 2.0], "< 50%"), ([1.5, 0.9], "none"), ([1.2, 0.8, 3.0], "72%")]
)
def test_break_even_cases(ys, expected):
    assert break_even([0.5, 0.7, 0.9][: len(ys)] if len(ys) == 3 else [0.5, 0.7], ys) == expected


@given(st.lists(st.floats(0.1, 10), min_size=2, max_size=6))
def test_break_even_lies_between_the_measured_points(ys):
    xs = [0.5 + 0.08 * i for i in range(len(ys))]
    text = break_even(xs, ys)
    if ys[-1] < 1:
        assert text == "none"
    elif all(y >= 1 for y in ys):
        assert text.startswith("<")
    else:
        assert xs[0] - 0.005 <= float(text.rstrip("%")) / 100 <= xs[-1] + 0.005


def test_report_files(tmp_path):
    written = write_report(sparsity_table(RESULTS), tmp_path)
    assert {p.name for p in written} == {"sparsity.md", "sparsity.png"}
    assert (tmp_path / "sparsity.png").read_bytes()[:4] == b"\x89PNG"
    assert "![speed-up vs sparsity](sparsity.png)" in (tmp_path / "sparsity.md").read_text()
