"""Preprocess: BGR uint8 frames -> the model's input tensor, per its spec.

Resizing happens on uint8 (cheap, OpenCV SIMD); the float maths then runs on
the small model-sized image only.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .spec import ModelSpec


class Preprocessor:
    """Turns a batch of frames into one ``float32`` tensor for the model."""

    def __init__(self, spec: ModelSpec) -> None:
        i = spec.input
        self.spec = spec
        self.size = (i.width, i.height)
        # x = (p / scale - mean) / std  ==  p * mul + add, folded once
        std = np.asarray(i.std, np.float32)
        mean = np.asarray(i.mean, np.float32)
        mul = 1.0 / (float(i.scale) * std)
        add = -mean / std
        if i.color == "BGR":  # frames are BGR; constants are in spec order
            self._swap = False
        else:
            self._swap = True
        self._mul = mul.astype(np.float32)
        self._add = add.astype(np.float32)
        self._nchw = i.layout == "NCHW"

    def resize(self, frame: np.ndarray) -> np.ndarray:
        """Frame (H, W, 3) uint8 -> (h, w, 3) uint8 at model size, spec colour order."""
        h, w = frame.shape[:2]
        interp = cv2.INTER_AREA if (w > 2 * self.size[0] or h > 2 * self.size[1]) else cv2.INTER_LINEAR
        small = cv2.resize(frame, self.size, interpolation=interp)
        if self._swap:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        return small

    def normalise(self, small: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Stack of (h, w, 3) uint8 -> float32 tensor in the spec's layout."""
        x = np.asarray(small, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        x *= self._mul
        x += self._add
        if self._nchw:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x

    def __call__(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        return self.normalise([self.resize(f) for f in frames])


def decode_output(spec: ModelSpec, raw: np.ndarray) -> np.ndarray:
    """Model output -> (N, h, w) float32 person probability in [0, 1]."""
    o = spec.output
    x = np.asarray(raw, dtype=np.float32)
    if x.ndim == 3:  # (N, h, w): a single implicit channel
        x = x[:, None] if o.layout == "NCHW" else x[..., None]
    if o.layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if o.kind == "probability":
        p = x[:, o.person_channel]
    elif o.kind == "logits":
        z = x[:, o.person_channel]
        p = 1.0 / (1.0 + np.exp(-z))
    elif o.kind == "softmax":
        p = x[:, o.person_channel]
    else:  # softmax_logits
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e[:, o.person_channel] / e.sum(axis=1)
    return np.clip(p, 0.0, 1.0, out=np.empty_like(p, dtype=np.float32))
