"""Eager PyTorch with sparse linear layers: every ``nn.Linear`` whose weight has at least
``SPARSE_MIN`` zeros (harness.backends.sparse_weights) runs as torch CSR sparse x dense
(``torch.sparse.addmm(bias, W_csr, x.T).T``), the rest of the model as eager fp32.

CSR only: torch's CPU BSR matmul goes through MKL, which refuses non-square blocks (16x1, 4x1)
and was slower than CSR on square ones (8x8 blocks at 90%: 0.73x dense, CSR 1.7x; 768x3072
weight, 128 rows, 2 threads). ``F.linear`` with a CSR weight was 3-8x slower than CSR ``mm``."""

from __future__ import annotations

import copy

from harness.backends.sparse_weights import describe, eligible
from harness.backends.torch_eager import TorchEager, TorchModuleRunner, set_torch_threads


def _sparse_linear_class():
    import torch

    class SparseLinear(torch.nn.Module):
        """y = x W^T + b with W as a CSR tensor (rows are outputs)."""

        def __init__(self, linear: torch.nn.Linear):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.weight = linear.weight.detach().to_sparse_csr()
            bias = linear.bias.detach() if linear.bias is not None else torch.zeros(self.out_features)
            self.bias = bias.reshape(-1, 1)

        def forward(self, x):
            flat = x.reshape(-1, self.in_features)
            out = torch.sparse.addmm(self.bias, self.weight, flat.T).T
            return out.reshape(*x.shape[:-1], self.out_features)

    return SparseLinear


def sparsify_linears(module) -> tuple[object, int, int]:
    """A copy of ``module`` with its eligible Linear layers as CSR: (copy, converted, linear layers).
    The model's own module stays dense (its float64 reference runs on it)."""
    import warnings

    import torch

    sparse_linear = _sparse_linear_class()
    module = copy.deepcopy(module)
    linears = [(name, m) for name, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
    converted = 0
    for name, linear in linears:
        if eligible(linear.weight.detach().numpy()):
            parent_name, _, child = name.rpartition(".")
            with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
                warnings.simplefilter("ignore", UserWarning)
                replacement = sparse_linear(linear)
            setattr(module.get_submodule(parent_name) if parent_name else module, child, replacement)
            converted += 1
    return module, converted, len(linears)


class TorchSparse(TorchEager):
    name = "torch-sparse"
    targets = frozenset({"llvm"})  # CSR kernels on the CPU

    def compile(self, model, target, threads, example):
        set_torch_threads(threads)
        module, converted, linears = sparsify_linears(model.torch_module())
        runner = TorchModuleRunner(module, f"eager fp32, {describe(converted, linears, 'CSR', 'linear weights')}")
        runner.build = {
            "sparse_weights": converted,
            "sparse_candidates": linears,
            "sparse_format": "csr",
            "artifact_bytes": None,
            "artifact": "none: eager PyTorch runs the (sparsified) module as it is",
        }
        return runner
