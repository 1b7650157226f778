"""FC-DenseNet, "the one hundred layers Tiramisu" (Jégou et al. 2017).

A dense block of ``n`` layers: each layer is BN, ReLU, 3x3 conv (``k`` =
growth-rate new maps), dropout, and sees the concatenation of all earlier
maps. Down path: dense block, then transition down (BN, ReLU, 1x1 conv,
dropout, 2x2 max-pool); the block's output is the skip. Up path: transition
up (3x3 transposed conv, stride 2) of only the maps the previous block
*added*, concatenated with the skip, then a dense block. Presets follow the
paper: 56 (4 layers per block, k = 12), 67 (5 layers, k = 16), 103
(4-5-7-10-12 down, 15 in the bottleneck, k = 16). He-uniform init, as the
paper (the design notes train it with RMSProp at 1e-3: ``--optimizer
rmsprop --lr 1e-3``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import init_weights

PRESETS: dict[int, dict[str, object]] = {
    56: {"down": (4, 4, 4, 4, 4), "bottleneck": 4, "growth": 12},
    67: {"down": (5, 5, 5, 5, 5), "bottleneck": 5, "growth": 16},
    103: {"down": (4, 5, 7, 10, 12), "bottleneck": 15, "growth": 16},
}


class DenseLayer(nn.Sequential):
    def __init__(self, cin: int, growth: int, dropout: float) -> None:
        super().__init__(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                         nn.Conv2d(cin, growth, 3, padding=1, bias=True), nn.Dropout2d(dropout))


class DenseBlock(nn.Module):
    """Returns (all maps = input + new, new maps only)."""

    def __init__(self, cin: int, n_layers: int, growth: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList([DenseLayer(cin + i * growth, growth, dropout) for i in range(n_layers)])
        self.out_channels = cin + n_layers * growth

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new = []
        for layer in self.layers:
            y = layer(x)
            x = torch.cat([x, y], 1)
            new.append(y)
        return x, torch.cat(new, 1)


class TransitionDown(nn.Sequential):
    def __init__(self, c: int, dropout: float) -> None:
        super().__init__(nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c, 1), nn.Dropout2d(dropout),
                         nn.MaxPool2d(2, ceil_mode=True))


class TransitionUp(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        y = self.up(x)[..., : skip.shape[-2], : skip.shape[-1]]  # ceil-mode pooling: crop the extra row
        return torch.cat([y, skip], 1)


class FCDenseNet(nn.Module):
    def __init__(self, num_classes: int = 1, in_channels: int = 3, preset: int | None = 103,
                 down: Sequence[int] | None = None, bottleneck: int | None = None, growth: int | None = None,
                 stem_channels: int = 48, dropout: float = 0.2) -> None:
        super().__init__()
        p = dict(PRESETS[preset]) if preset else {}
        down = tuple(down or p["down"])  # type: ignore[arg-type]
        bottleneck = int(bottleneck or p["bottleneck"])  # type: ignore[arg-type]
        growth = int(growth or p["growth"])  # type: ignore[arg-type]
        up = tuple(reversed(down))
        self.stem = nn.Conv2d(in_channels, stem_channels, 3, padding=1)
        c = stem_channels
        self.down_blocks, self.tds = nn.ModuleList(), nn.ModuleList()
        skips = []
        for n in down:
            blk = DenseBlock(c, n, growth, dropout)
            self.down_blocks.append(blk)
            c = blk.out_channels
            skips.append(c)
            self.tds.append(TransitionDown(c, dropout))
        self.bottleneck = DenseBlock(c, bottleneck, growth, dropout)
        prev_new = bottleneck * growth
        self.tus, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for n, cskip in zip(up, reversed(skips)):
            self.tus.append(TransitionUp(prev_new))
            blk = DenseBlock(prev_new + cskip, n, growth, dropout)
            self.up_blocks.append(blk)
            prev_new = n * growth
            c = blk.out_channels
        self.head = nn.Conv2d(c, num_classes, 1)
        init_weights(self, "kaiming_uniform")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for blk, td in zip(self.down_blocks, self.tds):
            x, _ = blk(x)
            skips.append(x)
            x = td(x)
        _, new = self.bottleneck(x)
        out = x
        for tu, blk, skip in zip(self.tus, self.up_blocks, reversed(skips)):
            out, new = blk(tu(new, skip))
        return self.head(out)
