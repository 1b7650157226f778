"""U-Net: an encoder that halves the resolution stage by stage, a decoder
that climbs back up, and skip connections that hand each decoder stage the
encoder's detail at the same scale.

Two encoders share one decoder:

* ``classic``: two 3x3 conv + BN + ReLU per stage, 2x2 max-pool between
  stages (Ronneberger et al. 2015, with batch norm and padding so the output
  has the input's size).
* ``light``: the real-time variant. A stride-2 stem, then MobileNetV2-style
  depthwise-separable inverted-residual stages; the decoder uses separable
  convolutions. A few million multiply-adds per 256x144 frame instead of
  tens of billions.

Up-sampling in the decoder (the four ways from the FCN notes): ``transpose``
(learned 2x2 transposed conv), ``bilinear``, ``nearest``, or ``unpool``
(max-unpooling with the encoder's pooling indices, SegNet style; classic
encoder only).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBNAct, InvertedResidual, SeparableConv, init_weights

UPSAMPLING = ("transpose", "bilinear", "nearest", "unpool")


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(ConvBNAct(cin, cout, 3), ConvBNAct(cout, cout, 3))


class ClassicEncoder(nn.Module):
    """Features at strides 1, 2, 4, ... (one per entry of ``channels``)."""

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.channels = list(channels)
        self.stages = nn.ModuleList()
        cin = in_channels
        for c in channels:
            self.stages.append(DoubleConv(cin, c))
            cin = c
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True, return_indices=True)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        feats, indices = [], []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x, idx = self.pool(x)
                indices.append(idx)
            x = stage(x)
            feats.append(x)
        return feats, indices


class LightEncoder(nn.Module):
    """Stride-2 stem, then inverted-residual stages at strides 4, 8, 16, 32.

    ``channels[0]`` is the stem (stride 2); each later entry is one stage
    that halves the resolution. ``depths`` gives the blocks per stage.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], depths: Sequence[int],
                 expand: int = 4) -> None:
        super().__init__()
        self.channels = list(channels)
        # one plain conv at full resolution: a second one there costs as much as a stage
        self.stem = ConvBNAct(in_channels, channels[0], 3, stride=2)
        self.stages = nn.ModuleList()
        for cin, cout, n in zip(channels[:-1], channels[1:], depths):
            blocks = [InvertedResidual(cin, cout, 2, expand)]
            blocks += [InvertedResidual(cout, cout, 1, expand) for _ in range(n - 1)]
            self.stages.append(nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        x = self.stem(x)
        feats = [x]
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats, []


class PoolContext(nn.Module):
    """Global-context gate on the deepest features (as in LR-ASPP): cheap
    image-level information, which helps tell a person from a poster."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(c, c, 1)
        self.gate = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate(F.adaptive_avg_pool2d(x, 1)))
        return self.conv(x) * g


def max_unpool(x: torch.Tensor, idx: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.max_unpool2d`` as a scatter: each value goes back to the place its
    max-pool came from (per-plane flat ``idx``), zeros elsewhere.

    The ONNX exporter has no ``max_unpool2d``; ScatterElements runs in ONNX
    Runtime and TensorRT alike.
    """
    n, c = x.shape[:2]
    out = x.new_zeros(n, c, size[0] * size[1])
    out = out.scatter(2, idx.flatten(2), x.flatten(2))
    return out.view(n, c, size[0], size[1])


class UpBlock(nn.Module):
    """Up-sample the deeper features to the skip's size, concatenate, fuse."""

    def __init__(self, cin: int, cskip: int, cout: int, mode: str, separable: bool) -> None:
        super().__init__()
        self.mode = mode
        if mode == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(cin, cin, 2, stride=2)
        elif mode == "unpool":
            # max-unpool needs the pooled tensor's channel count
            self.up = ConvBNAct(cin, cskip, 1)
            cin = cskip
        else:
            self.up = nn.Identity()
        fuse = SeparableConv if separable else (lambda a, b: DoubleConv(a, b))
        self.fuse = fuse(cin + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        size = skip.shape[-2:]
        if self.mode == "transpose":
            x = self.up(x)
            x = x[..., : size[0], : size[1]]  # odd sizes: ceil-mode pooling made one extra row
        elif self.mode == "unpool":
            x = max_unpool(self.up(x), idx, (int(size[0]), int(size[1])))
        elif self.mode == "nearest":
            x = F.interpolate(x, size=size, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], 1))


class UNetDecoder(nn.Module):
    def __init__(self, enc_channels: Sequence[int], dec_channels: Sequence[int], mode: str,
                 separable: bool) -> None:
        super().__init__()
        if len(dec_channels) != len(enc_channels) - 1:
            raise ValueError("decoder needs one width per encoder stage below the deepest")
        blocks = []
        cin = enc_channels[-1]
        for cskip, cout in zip(reversed(enc_channels[:-1]), dec_channels):
            blocks.append(UpBlock(cin, cskip, cout, mode, separable))
            cin = cout
        self.blocks = nn.ModuleList(blocks)

    def forward(self, feats: list[torch.Tensor], indices: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for i, block in enumerate(self.blocks):
            level = len(feats) - 2 - i
            idx = indices[level] if indices else None
            x = block(x, feats[level], idx)
        return x


class SubPixelHead(nn.Conv2d):
    """Four logits per stride-2 cell, one per full-resolution pixel (depth-to-space), added to the
    bilinear up-sampling of the stride-2 logits: the edge can move within a cell, which bilinear
    up-sampling alone cannot place. It starts at zero (``zero_``), so a network grown with it
    (grow.py) first computes what it computed without it."""

    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__(cin, num_classes * 4, 1)
        self.zero_()

    def zero_(self) -> None:
        with torch.no_grad():
            self.weight.zero_()
            self.bias.zero_()  # type: ignore[union-attr]


class UNet(nn.Module):
    """U-Net returning logits ``(N, num_classes, H, W)`` at the input size.

    ``num_classes == 1`` means binary (sigmoid) output. ``subpixel`` (light variant) adds a
    :class:`SubPixelHead`: full-resolution logits for about 5 % more model time.
    """

    def __init__(self, num_classes: int = 1, in_channels: int = 3, variant: str = "light",
                 up: str = "bilinear", enc_channels: Sequence[int] | None = None,
                 dec_channels: Sequence[int] | None = None, depths: Sequence[int] | None = None,
                 expand: int = 4, context: bool = True, subpixel: bool = False) -> None:
        super().__init__()
        if up not in UPSAMPLING:
            raise ValueError(f"up must be one of {UPSAMPLING}")
        self.variant, self.up_mode = variant, up
        if variant == "light":
            if up == "unpool":
                raise ValueError("max-unpooling needs pooling indices: use variant='classic'")
            enc_channels = list(enc_channels or (16, 24, 40, 64, 128))
            depths = list(depths or (1, 2, 3, 3))
            dec_channels = list(dec_channels or (64, 40, 24, 16))
            self.encoder: nn.Module = LightEncoder(in_channels, enc_channels, depths, expand)
            self.out_stride = 2
        elif variant == "classic":
            enc_channels = list(enc_channels or (32, 64, 128, 256, 512))
            dec_channels = list(dec_channels or tuple(reversed(enc_channels[:-1])))
            self.encoder = ClassicEncoder(in_channels, enc_channels)
            self.out_stride = 1
        else:
            raise ValueError("variant must be 'light' or 'classic'")
        self.context = PoolContext(enc_channels[-1]) if context else nn.Identity()
        self.decoder = UNetDecoder(enc_channels, dec_channels, up, separable=variant == "light")
        self.head = nn.Conv2d(dec_channels[-1], num_classes, 1)
        init_weights(self)
        if subpixel and self.out_stride != 2:
            raise ValueError("subpixel needs the light variant (output stride 2)")
        # after init_weights: it starts at zero
        self.subpixel = SubPixelHead(dec_channels[-1], num_classes) if subpixel else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats, indices = self.encoder(x)
        feats[-1] = self.context(feats[-1])
        d = self.decoder(feats, indices)
        y = self.head(d)
        if self.out_stride != 1:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        if self.subpixel is not None:  # odd sizes: the stride-2 map has one more cell, cropped
            y = y + F.pixel_shuffle(self.subpixel(d), 2)[..., : size[0], : size[1]]
        return y
