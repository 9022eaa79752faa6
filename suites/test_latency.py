"""Latency of every (model, backend, target, sparsity, threads) cell, with a parity gate.

pytest suites/ -m smoke --benchmark-compare      # the smoke matrix against baselines/
pytest suites/test_latency.py                    # the full nightly matrix
"""

from harness import Matrix

MATRIX = Matrix(
    models=[
        "mlp",
        "bert_tiny",
        "resnet_tiny",
        "squeezenet",
        "bert_mini",
        "bert_base",
        "mobilenet_v2",
        "resnet18ish",
        "resnet50",
        "shufflenet",
        "densenet121",
    ],
    backends=["torch", "torch-compile", "ort", "tvm"],
    targets=["llvm"],
    sparsity=[0.0, 0.9],
    threads=["1", "2"],
    smoke={"models": ["mlp", "bert_tiny", "resnet_tiny", "squeezenet"], "sparsity": [0.0], "threads": ["2"]},
)


def test_latency(cell, measure_cell):
    result = measure_cell(cell)
    assert result.parity["passed"]
