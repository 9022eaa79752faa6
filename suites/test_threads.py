"""Thread settings: what OMP_NUM_THREADS, each runtime's own knob and the runtime's own choice
really do.

Every cell runs in a fresh worker whose environment is set before any runtime loads. At the end
of the session the harness writes reports/threads.md, threads.html and threads.png (latency with
intervals over processes, parallel efficiency, threads that ran, fastest or tied) and prints the
table. The container pitfall: add ``--cpu-quota 1`` (README "Containers").

    pytest suites/test_threads.py -m smoke     # ORT/torch/TVM on a CNN and the encoder
    pytest suites/test_threads.py              # every smoke model on every backend
    pytest suites/test_threads.py --thread-control both,env,api,unset --threads 1,2
"""

from harness import Matrix
from harness.backends import get_backend
from harness.machine.threads import via_api

# Three worker processes per point: the report's intervals, and its "fastest" or "tied", need them.
PROCESSES = 3

MATRIX = Matrix(
    models=["squeezenet", "bert_tiny", "resnet_tiny", "mlp"],
    backends=["ort", "torch", "tvm", "torch-compile"],
    threads=["1", "2", "4", "auto", "physical", "host"],
    thread_control=["both", "unset"],  # unset: the runtime's own choice, one cell per model and backend
    # torch-compile is left out of smoke: inductor recompiles in every fresh worker (5-20 s each)
    smoke={"models": ["squeezenet", "bert_tiny"], "backends": ["ort", "torch", "tvm"], "threads": ["1", "auto", "4"]},
    host_threads_only=True,  # --targets cuda: device kernels have no host threads to sweep
)


def test_thread_scaling(cell, measure_cell):
    result = measure_cell(cell)
    backend = get_backend(cell.backend)
    reported = result.threads.runtime.get(backend.thread_key) if backend.thread_key else None
    if reported is not None and via_api(cell.thread_control):  # the runtime took the count it was given
        expected = backend.expected_threads(result.threads.resolved, result.cpu_budget, cell.thread_control)
        asked = result.threads.resolved
        assert reported == expected, f"{backend.thread_key}={reported}, expected {expected} for {asked} threads"
