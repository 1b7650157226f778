"""DeepLabV3 (Chen et al. 2017): a backbone whose last stages trade stride
for dilation (atrous convolution), so features stay at output stride 16
or 8, then Atrous Spatial Pyramid Pooling and a bilinear up-sample.

ASPP: a 1x1 branch, three 3x3 atrous branches and an image-pooling branch,
each conv + BN + ReLU, concatenated and projected by a 1x1 conv.

Backbones (both from scratch, no downloaded weights):

* ``mobilenet``: MobileNetV2-style inverted residuals (light, the shipped variant)
* ``resnet``: ResNet-18-style basic blocks (heavier, more accurate per epoch)

Rates default to the paper's (6, 12, 18) at output stride 16 and double at
8; for small inputs (a 256x144 frame is 16x9 at stride 16) pass smaller
``rates`` so the atrous taps stay inside the feature map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBNAct, InvertedResidual, init_weights


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(cin, cout, 3, stride, dilation),
                                  ConvBNAct(cout, cout, 3, 1, dilation, act=None))
        self.short = (nn.Identity() if stride == 1 and cin == cout
                      else ConvBNAct(cin, cout, 1, stride, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


class DilatedBackbone(nn.Module):
    """Stride-2 stem, then stages at strides 4, 8, 16, 32; once the wanted
    output stride is reached, later stages keep the resolution and dilate."""

    def __init__(self, kind: str = "mobilenet", output_stride: int = 16, in_channels: int = 3,
                 channels: Sequence[int] | None = None, depths: Sequence[int] | None = None) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError("output_stride must be 8 or 16")
        if kind == "mobilenet":
            channels = list(channels or (16, 24, 32, 64, 128))
            depths = list(depths or (2, 3, 4, 3))
            block = lambda cin, cout, s, d: InvertedResidual(cin, cout, s, 4, d)  # noqa: E731
        elif kind == "resnet":
            channels = list(channels or (32, 64, 128, 256, 512))
            depths = list(depths or (2, 2, 2, 2))
            block = BasicBlock
        else:
            raise ValueError("backbone must be 'mobilenet' or 'resnet'")
        self.out_channels = channels[-1]
        self.stem = ConvBNAct(in_channels, channels[0], 3, stride=2)
        stages, stride, dilation = [], 2, 1
        for cin, cout, n in zip(channels[:-1], channels[1:], depths):
            if stride < output_stride:
                s, stride = 2, stride * 2
            else:
                s, dilation = 1, dilation * 2  # atrous instead of striding
            blocks = [block(cin, cout, s, max(1, dilation // 2) if s == 1 else 1)]
            blocks += [block(cout, cout, 1, dilation) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class ImagePooling(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.adaptive_avg_pool2d(x, 1))
        return y.expand(-1, -1, x.shape[-2], x.shape[-1])  # broadcast back (ONNX: Expand)


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int = 128, rates: Sequence[int] = (6, 12, 18), dropout: float = 0.1) -> None:
        super().__init__()
        if len(rates) != 3:
            raise ValueError("ASPP takes three atrous rates")
        self.branches = nn.ModuleList([ConvBNAct(cin, cout, 1)]
                                      + [ConvBNAct(cin, cout, 3, dilation=r) for r in rates]
                                      + [ImagePooling(cin, cout)])
        self.project = nn.Sequential(ConvBNAct(5 * cout, cout, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], 1))


class DeepLabV3(nn.Module):
    """Returns logits ``(N, num_classes, H, W)`` at the input size."""

    def __init__(self, num_classes: int = 1, in_channels: int = 3, backbone: str = "mobilenet",
                 output_stride: int = 16, rates: Sequence[int] | None = None, aspp_channels: int = 128,
                 channels: Sequence[int] | None = None, depths: Sequence[int] | None = None) -> None:
        super().__init__()
        self.backbone = DilatedBackbone(backbone, output_stride, in_channels, channels, depths)
        rates = tuple(rates or ((6, 12, 18) if output_stride == 16 else (12, 24, 36)))
        self.aspp = ASPP(self.backbone.out_channels, aspp_channels, rates)
        self.head = nn.Sequential(ConvBNAct(aspp_channels, aspp_channels, 3), nn.Conv2d(aspp_channels, num_classes, 1))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        y = self.head(self.aspp(self.backbone(x)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)
