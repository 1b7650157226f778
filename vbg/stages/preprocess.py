"""Preprocess: BGR uint8 frames -> the model's input tensor, per its spec.

Also home of the fast downscaler the other stages share (``shrink``,
``FramePyramid``). Resizing happens on uint8 (cheap, OpenCV SIMD); the float
maths then runs on the small model-sized image only.

Why ``shrink`` and not one ``cv2.resize(..., INTER_AREA)``: OpenCV's area
filter is fast only for an exact 2x step; for a ratio like 1920 -> 256 (7.5x)
it takes a generic path that costs ~7 ms per 1080p frame. Plain bilinear is
0.1 ms but samples 2x2 pixels of each 7.5x7.5 block, so texture aliases and
shimmers from frame to frame (RMS error ~7 levels against a true area
average on real photos). A bilinear step to twice the target followed by an
exact 2x area step costs ~0.4 ms and lands within ~1.7 levels
(``benchmarks/bench_stages.py`` measures both).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..spec import ModelSpec


def shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased downscale of ``img`` to ``size`` = (w, h); any dtype OpenCV resizes.

    Exact 2x -> area (fast path); more than 2x -> bilinear to twice the size,
    then an exact 2x area step; otherwise bilinear (also for upscaling).
    """
    w, h = size
    ih, iw = img.shape[:2]
    if (iw, ih) == (w, h):
        return img
    if iw == 2 * w and ih == 2 * h:
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    if iw > 2 * w and ih > 2 * h:
        mid = cv2.resize(img, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(mid, size, interpolation=cv2.INTER_AREA)
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)


def levels_for(width: int, height: int, size: tuple[int, int]) -> int:
    """How many times a ``width`` x ``height`` frame can be halved (sizes rounded
    down) and still be at least ``size`` = (w, h) in both dimensions."""
    w, h = size
    k = 0
    while (width >> (k + 1)) >= w and (height >> (k + 1)) >= h:
        k += 1
    return k


class FramePyramid:
    """Downscaled copies of one frame, made once and shared by the stages.

    ``level(k)`` is the frame halved ``k`` times (an exact 2x2 box average
    per step: OpenCV's fast path, ~0.35 ms for the first step at 1080p and a
    quarter of that for each next one). ``at(size)`` resizes the smallest
    level that is still at least ``size`` (a ratio under 2, so bilinear does
    not alias). The smoother's thumbnail and the matte's guide both come out
    of the same two halvings.
    """

    def __init__(self, frame: np.ndarray) -> None:
        self.frame = frame
        self._levels: list[np.ndarray] = [frame]
        self._sized: dict[tuple[int, int], np.ndarray] = {}
        self._gray: dict[tuple[int, int], np.ndarray] = {}

    def level(self, k: int) -> np.ndarray:
        """The frame halved ``k`` times (sizes rounded down; an odd size drops its last pixel's half)."""
        while len(self._levels) <= k:
            prev = self._levels[-1]
            h, w = prev.shape[:2]
            # INTER_LINEAR at exactly 2x averages each 2x2 block, like INTER_AREA, and also
            # takes a near-2x ratio (odd sizes) without INTER_AREA's slow generic path.
            self._levels.append(cv2.resize(prev, (max(1, w // 2), max(1, h // 2)),
                                           interpolation=cv2.INTER_LINEAR))
        return self._levels[k]

    def levels_for(self, size: tuple[int, int]) -> int:
        """The largest ``k`` whose level is still at least ``size`` in both dimensions."""
        fh, fw = self.frame.shape[:2]
        return levels_for(fw, fh, size)

    def at(self, size: tuple[int, int]) -> np.ndarray:
        """BGR uint8 copy at ``size`` = (w, h) (the frame itself at its own size)."""
        lvl = self._sized.get(size)
        if lvl is None:
            src = self.level(self.levels_for(size))
            lvl = self._sized[size] = shrink(src, size)
        return lvl

    def gray(self, size: tuple[int, int]) -> np.ndarray:
        """uint8 luma at ``size``."""
        g = self._gray.get(size)
        if g is None:
            g = self._gray[size] = cv2.cvtColor(self.at(size), cv2.COLOR_BGR2GRAY)
        return g


class Preprocessor:
    """Turns a batch of frames into one ``float32`` tensor for the model.

    Resize per frame with ``shrink``; then colour swap, normalisation and
    layout in one OpenCV call for the whole batch
    (``cv2.dnn.blobFromImagesWithParams``: about half the time of the same
    maths in NumPy). The input size is the spec's, or its portrait twin for
    portrait frames when ``orientation`` (default: the spec's) is "match";
    the frames of one batch must then share an orientation.
    """

    def __init__(self, spec: ModelSpec, orientation: str | None = None) -> None:
        i = spec.input
        self.spec = spec
        self.size = (i.width, i.height)
        self.orientation = orientation or i.orientation
        # x = (p / scale - mean) / std  ==  (p - mean * scale) * 1 / (scale * std), in spec order
        std = np.asarray(i.std, np.float64)
        mean = np.asarray(i.mean, np.float64)
        mul = 1.0 / (float(i.scale) * std)
        self._swap = i.color != "BGR"  # frames are BGR; constants are in spec order
        self._mul = mul.astype(np.float32)
        self._add = (-mean / std).astype(np.float32)
        self._nchw = i.layout == "NCHW"
        p = cv2.dnn.Image2BlobParams()
        p.scalefactor = (*(float(v) for v in mul), 0.0)
        p.mean = (*(float(v) for v in mean * float(i.scale)), 0.0)
        p.swapRB = self._swap  # applied first: mean and scale are in the output's (spec) order
        p.ddepth = cv2.CV_32F
        p.datalayout = _LAYOUT_NCHW if self._nchw else _LAYOUT_NHWC
        self._blob = p

    def size_for(self, frame: np.ndarray) -> tuple[int, int]:
        """Model input size (w, h) for this frame."""
        return self.spec.size_for(frame.shape[1], frame.shape[0], self.orientation)

    def batch_size_for(self, frames: Sequence[np.ndarray]) -> tuple[int, int]:
        """The one input size (w, h) a batch runs at."""
        sizes = {self.size_for(np.asarray(f)) for f in frames}
        if len(sizes) > 1:
            raise ValueError("frames of one batch must share an orientation for an orientation-matching model")
        return sizes.pop() if sizes else self.size

    def __call__(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        size = self.batch_size_for(frames)
        small = [shrink(np.asarray(f), size) for f in frames]
        return cv2.dnn.blobFromImagesWithParams(small, self._blob)


# cv2.dnn.DataLayout values (not exported as names by the Python bindings).
_LAYOUT_NCHW = 2
_LAYOUT_NHWC = 4


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
