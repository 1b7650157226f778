"""Architectures by name: ``build_model("unet-lite", num_classes=1)``.

Each preset maps to a class and its keyword arguments; ``options``
override them (e.g. ``up="transpose"``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "unet-lite": ("unet", {"variant": "light"}),
    # twice the parameters in the cheap low-resolution stages: ~1.15x the latency of unet-lite
    "unet-lite-m": ("unet", {"variant": "light", "enc_channels": (16, 24, 48, 80, 160), "depths": (1, 2, 4, 4)}),
    "unet": ("unet", {"variant": "classic"}),
    "unet-small": ("unet", {"variant": "classic", "enc_channels": (16, 32, 64, 128, 256)}),
    "deeplabv3": ("deeplabv3", {}),
    "deeplabv3-os8": ("deeplabv3", {"output_stride": 8}),
    "fcdensenet56": ("fcdensenet", {"preset": 56}),
    "fcdensenet67": ("fcdensenet", {"preset": 67}),
    "fcdensenet103": ("fcdensenet", {"preset": 103}),
    "fcn8s": ("fcn", {}),
}


def build_model(arch: str, num_classes: int = 1, **options: Any) -> nn.Module:
    if arch not in PRESETS:
        raise ValueError(f"unknown architecture {arch!r}: use one of {', '.join(PRESETS)}")
    kind, kwargs = PRESETS[arch]
    kwargs = {**kwargs, **options}
    if kind == "unet":
        from .unet import UNet
        return UNet(num_classes=num_classes, **kwargs)
    if kind == "deeplabv3":
        from .deeplabv3 import DeepLabV3
        return DeepLabV3(num_classes=num_classes, **kwargs)
    if kind == "fcdensenet":
        from .fcdensenet import FCDenseNet
        return FCDenseNet(num_classes=num_classes, **kwargs)
    from .fcn import FCN8s
    return FCN8s(num_classes=num_classes, **kwargs)
