"""Small models for harness tests (importable by worker processes as tests.tiny_models)."""


def tiny_mlp():
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    return net, (torch.randn(2, 16),)
