"""Convolutional networks: a ResNet-style (basic residual blocks) and a MobileNetV2-style
(inverted residuals, depthwise convolutions) network, both with BatchNorm in eval mode."""

from __future__ import annotations

from harness.models.base import InputSpec, TorchModel


def _randomize_batchnorm(module) -> None:
    """Fresh BatchNorm layers are the identity; give them seeded, non-trivial statistics."""
    import torch
    import torch.nn as nn

    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)


def build_resnet(
    name: str, batch: int = 1, image: int = 64, widths=(16, 32, 64), blocks: int = 1, classes: int = 10
) -> TorchModel:
    def factory():
        import torch.nn as nn

        class Basic(nn.Module):
            def __init__(self, cin, cout, stride):
                super().__init__()
                self.body = nn.Sequential(
                    nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                    nn.BatchNorm2d(cout),
                    nn.ReLU(),
                    nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(cout),
                )
                self.skip = (
                    nn.Identity()
                    if stride == 1 and cin == cout
                    else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                )
                self.relu = nn.ReLU()

            def forward(self, x):
                return self.relu(self.body(x) + self.skip(x))

        layers = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        cin = widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks):
                layers.append(Basic(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
        net = nn.Sequential(*layers)
        _randomize_batchnorm(net)
        return net

    return TorchModel(name, factory, [InputSpec("input", (batch, 3, image, image))])


def build_mobilenet_v2(
    name: str, batch: int = 1, image: int = 224, width: float = 1.0, classes: int = 1000
) -> TorchModel:
    # (expansion, channels, repeats, stride) as in the MobileNetV2 paper
    config = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def factory():
        import torch.nn as nn

        def conv_bn(cin, cout, k, stride, groups=1, act=True):
            mods = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
            return mods + [nn.ReLU6()] if act else mods

        class Inverted(nn.Module):
            def __init__(self, cin, cout, stride, t):
                super().__init__()
                hid = cin * t
                mods = (
                    (conv_bn(cin, hid, 1, 1) if t != 1 else [])
                    + conv_bn(hid, hid, 3, stride, groups=hid)
                    + conv_bn(hid, cout, 1, 1, act=False)
                )
                self.body = nn.Sequential(*mods)
                self.residual = stride == 1 and cin == cout

            def forward(self, x):
                return x + self.body(x) if self.residual else self.body(x)

        cin = int(32 * width)
        layers = conv_bn(3, cin, 3, 2)
        for t, c, n, s in config:
            cout = int(c * width)
            for i in range(n):
                layers.append(Inverted(cin, cout, s if i == 0 else 1, t))
                cin = cout
        last = int(1280 * max(1.0, width))
        layers += conv_bn(cin, last, 1, 1) + [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last, classes)]
        net = nn.Sequential(*layers)
        _randomize_batchnorm(net)
        return net

    return TorchModel(name, factory, [InputSpec("input", (batch, 3, image, image))])
