"""Sparsity: is pruning this model to X% worth it, on this hardware and backend?

The encoder (bert_base: hidden 768, seq 128, batch 1) and a CNN (MobileNetV2: its pointwise
convolutions are 1x1, the only convolutions a sparse kernel here takes) at sparsity 0 to 95%,
magnitude pruning per element and in 16x1 blocks, on the sparse backends (torch-sparse: CSR linear
layers; tvm-sparse: BSR kernels for matmuls and 1x1 convolutions) and on the dense ones running
the same pruned weights (the control: zeros alone buy nothing). Parity of every cell is against
float64 of the pruned model. At the end of the session the harness writes reports/sparsity.md and
sparsity.png: speed-up over the same backend's dense latency, against the best dense backend, and
the break-even sparsity per backend and mode.

    pytest suites/test_sparsity.py -m smoke     # one sparse cell per sparse backend (bert_tiny)
    pytest suites/test_sparsity.py              # the whole curve (about an hour on 2 cores)
    pytest suites/test_sparsity.py --models bert_base --backends torch,torch-sparse,tvm,tvm-sparse,ort \\
        --sparsity 0,0.9,0.95 --processes 1
"""

from harness import Matrix

MATRIX = Matrix(
    models=["bert_base", "mobilenet_v2", "bert_tiny"],
    backends=["ort", "torch", "torch-sparse", "tvm", "tvm-sparse", "torch-compile"],
    sparsity=[0.0, 0.7, 0.8, 0.9, 0.95],
    pruning=["unstructured", "block:16x1"],
    threads=["2"],
    # the sparse path in the smoke matrix: a regression in it is caught on every run
    smoke={
        "models": ["bert_tiny"],
        "backends": ["torch-sparse", "tvm-sparse"],
        "sparsity": [0.9],
        "pruning": ["block:16x1"],
    },
)


def test_sparsity(cell, measure_cell):
    result = measure_cell(cell)
    assert result.parity["passed"]
