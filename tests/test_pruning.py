import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.models import build_model
from harness.models.pruning import prune_array


@given(arrays(np.float32, st.integers(1, 500), elements=st.floats(-10, 10, width=32)), st.floats(0, 0.99))
def test_prune_array_zeroes_the_smallest_exact_fraction(w, s):
    out = prune_array(w, s)
    k = int(np.floor(s * w.size))
    zeroed = np.flatnonzero((out == 0) & (w != 0))
    assert np.count_nonzero(out == 0) >= k
    kept = np.abs(w[out != 0])
    if zeroed.size and kept.size:
        assert np.abs(w[zeroed]).max() <= kept.min()
    np.testing.assert_array_equal(out[out != 0], w[out != 0])


def test_prune_rejects_bad_sparsity():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        prune_array(np.ones(3), 1.0)


@pytest.mark.parametrize("name", ["mlp", "squeezenet"])
def test_prune_reaches_the_target_on_torch_and_onnx_models(name):
    m = build_model(name)
    before = m.reference(m.make_inputs(0))[0][0]
    measured = m.prune(0.9).measured
    assert measured == pytest.approx(0.9, abs=0.005)
    assert not np.allclose(before, m.reference(m.make_inputs(0))[0][0])
