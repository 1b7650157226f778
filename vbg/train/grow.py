"""Start a deeper network from a trained shallower one (``vbg train --init`` across depths).

A model trained for hours on two CPU cores cannot be re-trained from scratch
every time the network grows. So a deeper U-Net (more inverted-residual
blocks per encoder stage, the same widths) starts out computing exactly
what the trained one computes:

* every tensor of the small network is copied to the same name in the big
  one (a stage's first blocks keep their names, the new blocks are appended
  to the stage);
* every block only the big network has is a residual block (stride 1, same
  width in and out), and its last BatchNorm is set to zero, so the block adds
  nothing: ``x + 0``. Adam moves that scale off zero in the first steps, and
  the block starts to learn (the "zero-init residual" of Goyal et al. 2017);
* a new sub-pixel head (``unet.SubPixelHead``) starts at zero the same way: its full-resolution
  logits add nothing to the up-sampled ones until training moves them.
"""

from __future__ import annotations

import torch
from torch import nn

from .models.blocks import InvertedResidual
from .models.unet import SubPixelHead


class GrowError(ValueError):
    """The two networks are not one network at two depths."""


def _new_blocks(small: nn.Module, big: nn.Module) -> list[InvertedResidual | SubPixelHead]:
    """The residual blocks and sub-pixel heads only ``big`` has; GrowError if it has anything else new."""
    have = {name for name, _ in small.named_modules()}
    added = {name: m for name, m in big.named_modules() if name not in have}
    blocks = {name: m for name, m in added.items() if isinstance(m, (InvertedResidual, SubPixelHead))}
    stray = [n for n in added if n not in blocks and not any(n.startswith(b + ".") for b in blocks)]
    if stray:
        raise GrowError(f"the deeper network has layers that are not new residual blocks or sub-pixel heads: {', '.join(stray[:3])}")
    for name, m in blocks.items():
        if isinstance(m, InvertedResidual) and not m.use_skip:
            raise GrowError(f"new block {name} changes the width or stride, so it cannot start as the identity")
    return list(blocks.values())


def grow_into(small: nn.Module, big: nn.Module) -> int:
    """Copy ``small``'s weights into ``big`` and make ``big``'s extra blocks add nothing.

    Afterwards ``big`` computes ``small``'s function (in eval and training
    mode alike). Returns the number of blocks (and heads) added; raises
    GrowError when ``big`` is not ``small`` with more residual blocks or a
    sub-pixel head.
    """
    blocks = _new_blocks(small, big)
    target = big.state_dict()
    for key, value in small.state_dict().items():
        if key not in target:
            raise GrowError(f"the deeper network has no {key}: it is not the same network with more blocks")
        if target[key].shape != value.shape:
            raise GrowError(f"{key} is {tuple(value.shape)} in the trained network, "
                            f"{tuple(target[key].shape)} in the deeper one: only the depth may differ")
        target[key] = value.clone()
    big.load_state_dict(target)
    with torch.no_grad():
        for block in blocks:
            if isinstance(block, SubPixelHead):
                block.zero_()
                continue
            last_bn = block.body[-1][1]  # ConvBNAct(mid, cout, 1, act=None): conv, BN
            last_bn.weight.zero_()
            last_bn.bias.zero_()
    _check_same_function(small, big)
    return len(blocks)


def _check_same_function(small: nn.Module, big: nn.Module) -> None:
    """Options with no weights of their own (the up-sampling mode) escape the checks above: compare outputs."""
    cin = next(m for m in small.modules() if isinstance(m, nn.Conv2d)).in_channels
    x = torch.randn(2, cin, 64, 64, generator=torch.Generator().manual_seed(0))
    modes = small.training, big.training
    with torch.no_grad():
        ref, out = small.eval()(x), big.eval()(x)
    small.train(modes[0])
    big.train(modes[1])
    if ref.shape != out.shape or float((out - ref).abs().max()) > 1e-4 * (1 + float(ref.abs().max())):
        raise GrowError("the deeper network does not compute what the trained one does: only the depth may differ")
