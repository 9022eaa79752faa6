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
