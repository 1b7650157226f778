"""Small building blocks shared by the architectures."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Sequential):
    """Conv -> BatchNorm -> activation (ReLU by default, None for linear)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1,
                 groups: int = 1, act: type[nn.Module] | None = nn.ReLU) -> None:
        pad = dilation * (k - 1) // 2
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation,
                                             groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.Hardswish) else act())
        super().__init__(*layers)


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1: ~k*k times cheaper than a full conv."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1,
                 act: type[nn.Module] | None = nn.ReLU) -> None:
        super().__init__(
            ConvBNAct(cin, cin, 3, stride, dilation, groups=cin, act=act),
            ConvBNAct(cin, cout, 1, act=act),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, depthwise 3x3, 1x1 linear project (+ skip)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 4, dilation: int = 1) -> None:
        super().__init__()
        mid = cin * expand
        self.use_skip = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, mid, 1, act=nn.ReLU6))
        layers += [ConvBNAct(mid, mid, 3, stride, dilation, groups=mid, act=nn.ReLU6),
                   ConvBNAct(mid, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.use_skip else y


def init_weights(module: nn.Module, mode: str = "kaiming_normal") -> None:
    """He initialisation for convolutions (uniform for the Tiramisu, as in its paper)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if mode == "kaiming_uniform":
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
