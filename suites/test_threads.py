"""Thread scaling: what OMP_NUM_THREADS and each runtime's own knob really do.

Every cell runs in a fresh worker whose environment is set before any runtime loads. At the end
of the session the harness writes reports/threads.md and reports/threads.png (latency and
parallel efficiency vs threads per backend, oversubscribed points marked) and prints the table.

    pytest suites/test_threads.py -m smoke     # ORT/torch/TVM on a CNN and the encoder
    pytest suites/test_threads.py              # every smoke model on every backend
"""

from harness import Matrix
from harness.backends import get_backend
from harness.machine.threads import via_api

# One worker process per cell: a sweep looks for 2x effects, not 5% regressions, and it has many
# cells (use --processes 3 for verdict-grade samples).
PROCESSES = 1

MATRIX = Matrix(
    models=["squeezenet", "bert_tiny", "resnet_tiny", "mlp"],
    backends=["ort", "torch", "tvm", "torch-compile"],
    threads=["1", "2", "4", "auto", "host"],
    # torch-compile is left out of smoke: inductor recompiles in every fresh worker (5-20 s each)
    smoke={"models": ["squeezenet", "bert_tiny"], "backends": ["ort", "torch", "tvm"]},
)


def test_thread_scaling(cell, measure_cell):
    result = measure_cell(cell)
    backend = get_backend(cell.backend)
    reported = result.threads.runtime.get(backend.thread_key) if backend.thread_key else None
    if reported is not None and via_api(cell.thread_control):  # the runtime took the count it was given
        expected = backend.expected_threads(result.threads.resolved, result.cpu_budget)
        asked = result.threads.resolved
        assert reported == expected, f"{backend.thread_key}={reported}, expected {expected} for {asked} threads"
