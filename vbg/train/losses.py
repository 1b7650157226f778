"""Losses: BCE / cross-entropy, soft Dice, and a boundary-weighted term.

Binary targets are float (N, 1, H, W) in [0, 1] (soft teacher masks
allowed); multi-class targets are long (N, H, W) class ids. An optional
per-pixel weight (N, 1, H, W) in [0, 1] leaves pixels out (0) of every term:
where teachers disagree, the student is taught neither answer.

``sensor_noise`` and ``consistency_loss`` make the noisy-pair stability term:
the same picture with two draws of camera noise should get the same mask,
since a webcam's still background differs between frames only by that noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def boundary_band(target: torch.Tensor, width: int = 5) -> torch.Tensor:
    """1 on a band ``width`` pixels wide around the mask's edges, else 0.

    Dilation minus erosion with max-pooling; works on (N, C, H, W) floats.
    """
    k = 2 * (width // 2) + 1
    dil = F.max_pool2d(target, k, 1, k // 2)
    ero = -F.max_pool2d(-target, k, 1, k // 2)
    return (dil - ero).clamp(0, 1)


def dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice, per image (and class) then averaged, so small people count
    as much as big ones. Images with an empty target are left out: Dice has
    no answer there (any false positive scores ~1, with no gradient), and the
    cross-entropy teaches them.
    """
    dims = tuple(range(2, prob.ndim))
    inter = (prob * target).sum(dims)
    tsum = target.sum(dims)
    union = prob.sum(dims) + tsum
    per = 1 - (2 * inter + eps) / (union + eps)
    has = (tsum >= 1).float()
    return (per * has).sum() / has.sum().clamp(min=1.0)


class SegLoss(nn.Module):
    """``bce_w * CE + dice_w * Dice + boundary_w * CE on the edge band``."""

    def __init__(self, num_classes: int = 1, bce_w: float = 1.0, dice_w: float = 1.0,
                 boundary_w: float = 1.0, band: int = 5, ignore_index: int = 255) -> None:
        super().__init__()
        self.num_classes, self.bce_w, self.dice_w, self.boundary_w = num_classes, bce_w, dice_w, boundary_w
        self.band, self.ignore_index = band, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes == 1:
            ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            prob = torch.sigmoid(logits)
            onehot = target
        else:
            ce = F.cross_entropy(logits, target, reduction="none", ignore_index=self.ignore_index)[:, None]
            prob = logits.softmax(1)
            valid = (target != self.ignore_index)
            onehot = F.one_hot(target.clamp(0, self.num_classes - 1), self.num_classes).permute(0, 3, 1, 2).float()
            onehot = onehot * valid[:, None]
            prob = prob * valid[:, None]
        if weight is None:
            loss = self.bce_w * ce.mean()
        else:
            ce = ce * weight
            loss = self.bce_w * ce.sum() / weight.sum().clamp(min=1.0)
            prob, onehot = prob * weight, onehot * weight
        if self.dice_w:
            loss = loss + self.dice_w * dice_loss(prob, onehot)
        if self.boundary_w:
            band = boundary_band(onehot, self.band).amax(1, keepdim=True)
            if weight is not None:
                band = band * weight
            loss = loss + self.boundary_w * (ce * band).sum() / band.sum().clamp(min=1.0)
        return loss


def sensor_noise(x: torch.Tensor, std: tuple[float, ...], max_sigma: float) -> torch.Tensor:
    """``x`` (normalised, (N, C, H, W)) plus Gaussian noise of a random strength
    per image, up to ``max_sigma`` in 0-255 pixel units, as a camera adds it."""
    sigma = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype) * (max_sigma / 255.0)
    scale = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return x + torch.randn_like(x) * sigma / scale


def consistency_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the two masks' probabilities (sigmoid for one
    channel, softmax over the classes for several): L1, so small disagreements
    at ambiguous pixels (where a mask flips) keep their pull."""
    if logits_a.shape[1] == 1:
        return (torch.sigmoid(logits_a) - torch.sigmoid(logits_b)).abs().mean()
    # per pixel, half the L1 of two distributions: 0 (same) to 1 (disjoint), like the binary case
    diff = (torch.softmax(logits_a, 1) - torch.softmax(logits_b, 1)).abs().sum(1)
    return 0.5 * diff.mean()
