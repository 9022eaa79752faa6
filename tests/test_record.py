import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from harness.record import compact, extra_info, is_busy, is_oversubscribed, median_s, per_process


@given(st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=2000), st.integers(3, 400))
def test_compact_keeps_extremes_and_the_median(samples, keep):
    out = compact(samples, keep)
    assert len(out) == min(len(samples), keep)
    assert out == sorted(out)
    assert np.isclose(out[0], min(samples), rtol=1e-5) and np.isclose(out[-1], max(samples), rtol=1e-5)
    lo, hi = np.quantile(samples, [0.5 - 1.0 / keep, 0.5 + 1.0 / keep])
    assert lo * (1 - 1e-5) <= np.median(out) <= hi * (1 + 1e-5)


def _result(**kw):
    base = {"cell": {"model": "m", "backend": "ort", "target": "llvm", "sparsity": 0.0, "threads": "4", "batch": None},
            "threads": {"resolved": 4}, "cpu_budget": {"effective_cpus": 2}, "flops": 2e9,
            "samples": [{"round_s": [0.004, 0.002, 0.006], "iterations": 2}, {"round_s": [0.002], "iterations": 1}]}
    base.update(kw)
    return base


def test_samples_per_call_median_and_flags():
    r = _result(foreign_load=0.5)
    assert per_process(r) == [[0.002, 0.001, 0.003], [0.002]]
    assert median_s(r) == 0.002
    assert is_oversubscribed(r) and is_busy(r)
    info = extra_info(r)
    assert info["gflops_per_s"] == 2e9 / 0.002 / 1e9 and info["oversubscribed"] and info["machine_busy"]
    assert not is_busy(_result(foreign_load=0.01)) and not is_oversubscribed(_result(threads={"resolved": 2}))
