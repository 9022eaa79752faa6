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
        (dict(threads=["many"]), "is not a positive integer (or one of auto, host, physical)"),
        (dict(thread_control=["omp"]), "thread control 'omp' is not one of both, env, api, unset"),
        (dict(spin=["never"]), "spin mode 'never' is not one of default, off"),
        (dict(interop=["0"]), "inter-op thread count '0' must be at least 1"),
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


thread_axes = {
    "threads": st.lists(st.sampled_from(["1", "2", "auto", "physical"]), min_size=1, max_size=3, unique=True),
    "thread_control": st.lists(st.sampled_from(["both", "env", "api", "unset"]), min_size=1, max_size=4, unique=True),
    "interop": st.lists(st.sampled_from([1, 2, 4]), min_size=1, max_size=2, unique=True),
    "spin": st.lists(st.sampled_from(["default", "off"]), min_size=1, max_size=2, unique=True),
}


@given(**thread_axes)
@settings(max_examples=80, deadline=None)
def test_thread_axes_expand_to_what_is_applied(threads, thread_control, interop, spin):
    cells = [
        c.cell
        for c in Matrix(
            ["m"], ["ort"], threads=threads, thread_control=thread_control, interop=interop, spin=spin
        ).expand()
    ]
    ids = [c.id for c in cells]
    assert len(set(ids)) == len(ids)
    expected = 0
    for control in thread_control:
        counts = 1 if control == "unset" else len(threads)
        interops = len(interop) if control in ("both", "api") else 1
        expected += counts * interops * len(spin)
    assert len(cells) == expected
    for c in cells:
        if c.thread_control == "unset":  # nothing sets a count: the id says the runtime chose
            assert c.threads == "runtime" and c.interop == 1 and "-truntime" in c.id
        elif c.thread_control == "env":  # no variable sets inter-op threads
            assert c.interop == 1 and c.id.split("-")[5] == "env"
        # the default of every thread axis adds nothing to the id: committed history keeps matching
        defaults = c.thread_control == "both" and c.interop == 1 and c.spin == "default"
        assert defaults == (c.id == f"m-ort-llvm-sp0-t{c.threads}" and c.threads != "runtime")
        assert ("-spinoff" in c.id) == (c.spin == "off") and (f"-i{c.interop}" in c.id) == (c.interop != 1)


def test_thread_axis_ids():
    assert (
        Cell("mlp", "ort", threads="2", thread_control="api", interop=2, spin="off").id
        == "mlp-ort-llvm-sp0-t2-api-i2-spinoff"
    )
    assert Cell("mlp", "torch", threads="runtime", thread_control="unset").id == "mlp-torch-llvm-sp0-truntime"
    assert Cell("mlp", "torch", threads="4", thread_control="both").id == "mlp-torch-llvm-sp0-t4"
