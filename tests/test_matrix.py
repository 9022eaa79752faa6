import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.plan.cell import Cell, sparsity_label
from harness.plan.matrix import Matrix, MatrixError

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
axis_values = {
    "models": st.lists(names, min_size=1, max_size=3, unique=True),
    "backends": st.lists(
        st.sampled_from(["torch", "torch-compile", "ort", "tvm"]), min_size=1, max_size=4, unique=True
    ),
    "targets": st.lists(st.sampled_from(["llvm", "llvm-generic"]), min_size=1, max_size=2, unique=True),
    "sparsity": st.lists(st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.125]), min_size=1, max_size=3, unique=True),
    "threads": st.lists(st.sampled_from(["1", "2", "4", "auto", "host"]), min_size=1, max_size=3, unique=True),
    "batch": st.lists(st.sampled_from([None, 1, 8]), min_size=1, max_size=2, unique=True),
}


@given(**axis_values)
@settings(max_examples=60, deadline=None)
def test_expansion_is_the_full_product_with_unique_readable_ids(models, backends, targets, sparsity, threads, batch):
    m = Matrix(models=models, backends=backends, targets=targets, sparsity=sparsity, threads=threads, batch=batch)
    cells = m.expand()
    assert len(cells) == math.prod(map(len, (models, backends, targets, sparsity, threads, batch)))
    ids = [c.id for c in cells]
    assert len(set(ids)) == len(ids)
    for c in cells:
        assert re.fullmatch(r"[a-z0-9_]+-[a-z-]+-llvm(-generic)?-sp[0-9.]+-t(\d+|auto|host)(-b\d+)?", c.id), c.id
        assert c.id.startswith(f"{c.cell.model}-{c.cell.backend}-{c.cell.target}-")
        assert c.smoke  # no smoke subset declared: everything is smoke


def test_id_matches_the_documented_example():
    assert Cell("bert_tiny", "ort", "llvm", 0.0, "2").id == "bert_tiny-ort-llvm-sp0-t2"
    assert Cell("mlp", "tvm", "llvm", 0.9, "auto", 8).id == "mlp-tvm-llvm-sp90-tauto-b8"


@given(st.floats(min_value=0, max_value=0.9999, allow_nan=False))
def test_sparsity_label_round_trips_to_percent(s):
    label = sparsity_label(s)
    assert label.startswith("sp")
    assert abs(float(label[2:]) / 100 - s) < 1e-6


@given(axis_values["threads"], axis_values["threads"])
@settings(max_examples=40, deadline=None)
def test_smoke_subset_and_override(threads, smoke_threads):
    m = Matrix(models=["a", "b"], backends=["ort"], threads=threads, smoke={"threads": smoke_threads, "models": ["a"]})
    for c in m.expand():
        assert c.smoke == (c.cell.threads in smoke_threads and c.cell.model == "a")
    # overriding an axis replaces it and lifts its smoke restriction, keeping the others
    o = m.override(threads=["3"])
    assert [c.cell.threads for c in o.expand()] == ["3", "3"]
    assert [c.smoke for c in o.expand()] == [True, False]


def test_unsupported_cells_are_kept_with_their_reason():
    m = Matrix(models=["mlp", "squeezenet"], backends=["torch", "ort"])
    cells = m.expand(lambda cell: "no torch form" if (cell.model, cell.backend) == ("squeezenet", "torch") else None)
    assert [(c.id, c.skip_reason) for c in cells] == [
        ("mlp-torch-llvm-sp0-t1", None),
        ("mlp-ort-llvm-sp0-t1", None),
        ("squeezenet-torch-llvm-sp0-t1", "no torch form"),
        ("squeezenet-ort-llvm-sp0-t1", None),
    ]


@pytest.mark.parametrize(
    "axes, message",
    [
        (dict(threads=["0"]), "at least 1"),
        (dict(threads=["many"]), "not an integer, 'auto' or 'host'"),
        (dict(sparsity=["1.0"]), "[0, 1)"),
        (dict(sparsity=["lots"]), "not a number"),
        (dict(batch=["0"]), "at least 1"),
        (dict(models=["bert-tiny"]), "no '-' in model names"),
        (dict(models=[]), "is empty"),
        (dict(smoke={"thread": ["1"]}), "unknown axes"),
    ],
)
def test_bad_axes_raise_one_line_messages(axes, message):
    base = dict(models=["mlp"], backends=["ort"])
    base.update(axes)
    with pytest.raises(MatrixError, match=re.escape(message)):
        Matrix(**base)


def test_percent_sparsity_and_duplicate_values_are_normalized():
    m = Matrix(models=["mlp"], backends=["ort"], sparsity=["90%", 0.9, "0"], threads=[2, "2", "AUTO"])
    assert m.sparsity == (0.9, 0.0)
    assert m.threads == ("2", "auto")
