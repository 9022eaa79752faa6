"""Small models for harness tests (importable by worker processes as tests.tiny_models)."""


def tiny_mlp():
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    return net, (torch.randn(2, 16),)


def wide_mlp():
    """Big enough (about 70 MFLOP per call) for every runtime to split it across threads."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 512))
    return net, (torch.randn(32, 512),)


def raises():
    raise RuntimeError("weights not found")


def wrong_types():
    return "not a module", 3


def wrong_inputs():
    import torch

    return torch.nn.Linear(4, 2), ("a string",)


def forward_fails():
    import torch

    return torch.nn.Linear(4, 2), (torch.randn(1, 5),)  # 5 features into a Linear(4, ...)


def segfaults():
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)
