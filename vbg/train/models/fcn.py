"""FCN-8s (Long et al. 2015): a VGG-style encoder whose class scores at
strides 32, 16 and 8 are fused coarse-to-fine: score32 is up-sampled 2x and
added to score16, that sum 2x and added to score8, then 8x to the input.

Up-sampling is ``transpose`` (learned, initialised to bilinear, as the
paper) or ``bilinear`` (fixed). Widths are smaller than VGG-16's by
default so it trains on a CPU; ``widths=(64, 128, 256, 512, 512)`` gives
the original.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBNAct, init_weights


def bilinear_kernel(channels: int, k: int) -> torch.Tensor:
    f = (k + 1) // 2
    c = f - 1 if k % 2 == 1 else f - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt = 1 - (og - c).abs() / f
    w2 = filt[:, None] * filt[None, :]
    w = torch.zeros(channels, channels, k, k)
    for i in range(channels):
        w[i, i] = w2
    return w


class Up(nn.Module):
    def __init__(self, channels: int, factor: int, mode: str) -> None:
        super().__init__()
        self.mode, self.factor = mode, factor
        if mode == "transpose":
            k = 2 * factor
            self.conv = nn.ConvTranspose2d(channels, channels, k, stride=factor, padding=factor // 2, bias=False)
            with torch.no_grad():
                self.conv.weight.copy_(bilinear_kernel(channels, k))
        elif mode != "bilinear":
            raise ValueError("FCN up-sampling is 'transpose' or 'bilinear'")

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        if self.mode == "transpose":
            y = self.conv(x)
            if y.shape[-2] < size[0] or y.shape[-1] < size[1]:  # odd sizes: pad, then crop below
                y = F.pad(y, (0, max(0, size[1] - y.shape[-1]), 0, max(0, size[0] - y.shape[-2])), mode="replicate")
            return y[..., : size[0], : size[1]]
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class FCN8s(nn.Module):
    def __init__(self, num_classes: int = 1, in_channels: int = 3,
                 widths: Sequence[int] = (32, 64, 128, 256, 256), convs: Sequence[int] = (2, 2, 3, 3, 3),
                 fc_channels: int = 512, up: str = "transpose", dropout: float = 0.3) -> None:
        super().__init__()
        stages, cin = [], in_channels
        for w, n in zip(widths, convs):
            layers: list[nn.Module] = [ConvBNAct(cin if i == 0 else w, w, 3) for i in range(n)]
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.ModuleList(stages)
        # fc6/fc7 as convolutions, as in the paper (7x7 shrunk to 3x3)
        self.fc = nn.Sequential(ConvBNAct(cin, fc_channels, 3), nn.Dropout2d(dropout),
                                ConvBNAct(fc_channels, fc_channels, 1), nn.Dropout2d(dropout))
        self.score32 = nn.Conv2d(fc_channels, num_classes, 1)
        self.score16 = nn.Conv2d(widths[3], num_classes, 1)
        self.score8 = nn.Conv2d(widths[2], num_classes, 1)
        init_weights(self)
        self.up32 = Up(num_classes, 2, up)
        self.up16 = Up(num_classes, 2, up)
        self.up8 = Up(num_classes, 8, up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        s8, s16 = feats[2], feats[3]
        y = self.score32(self.fc(x))
        y = self.up32(y, s16.shape[-2:]) + self.score16(s16)
        y = self.up16(y, s8.shape[-2:]) + self.score8(s8)
        return self.up8(y, size)
