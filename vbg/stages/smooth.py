"""Smooth stage: motion-adaptive temporal smoothing of consecutive low-res masks.

Each pixel of the output is ``w * previous + (1 - w) * mask``. The weight
``w`` is ``strength``'s base weight, cut down to zero where something moves:

* frame motion: the absolute difference of consecutive grey thumbnails at
  the mask's resolution (3x3 blurred, so sensor noise averages out). A real
  movement of the person changes the pixels under the edge, so the edge
  follows at once and leaves no ghost trail;
* mask motion: a large jump of the mask value itself (more than ~0.5) with
  the frame still counts partly as motion too, so a person the frame
  difference misses (same colour as the wall) is not held back for long.

Where nothing moves, the mask's frame-to-frame jitter at a still person's edge
is averaged away (an exponential moving average with time constant of a few
frames). The motion map is dilated by one pixel so the pixels just ahead of
and behind a moving edge update too.

A scene cut (a 64x36 thumbnail whose grey histogram or mean changes a lot)
resets the state, so one shot never bleeds into the next. All the work is at
the mask's resolution (e.g. 256x144): well under a millisecond.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from .preprocess import FramePyramid

log = logging.getLogger(__name__)

THUMB = (64, 36)


class SceneCut:
    """Scene-cut test on consecutive grey frames: a 64x36 thumbnail whose grey
    histogram or mean changes a lot. Shared with the GPU smoother, which runs
    it on the host copy of its luma thumbnail."""

    # Histogram distance (0..1) or mean absolute thumbnail change (levels).
    CUT_HIST = 0.5
    CUT_MEAN = 40.0

    def __init__(self) -> None:
        self._thumb: np.ndarray | None = None
        self._hist: np.ndarray | None = None

    def reset(self) -> None:
        self._thumb = self._hist = None

    def __call__(self, gray: np.ndarray) -> bool:
        thumb = cv2.resize(gray, THUMB, interpolation=cv2.INTER_AREA)
        hist = cv2.calcHist([thumb], [0], None, [32], [0, 256]).ravel()
        hist /= hist.sum()
        cut = False
        if self._thumb is not None and self._hist is not None:
            dist = 0.5 * float(np.abs(hist - self._hist).sum())
            mad = float(cv2.absdiff(thumb, self._thumb).mean())
            cut = dist > self.CUT_HIST or mad > self.CUT_MEAN
            if cut:
                log.debug("scene cut: histogram distance %.2f, mean change %.1f", dist, mad)
        self._thumb, self._hist = thumb, hist
        return cut


# (mask, previous output, grey thumbnail, previous thumbnail or None, largest keep weight) -> output
Blend = Callable[[Any, Any, Any, Any, float], Any]


class TemporalSmoother:
    """Temporal mask smoothing. ``strength`` 0 = off, 1 = strongest; settable live.

    The state rules (scene cuts, the first frame, a size change, strength 0)
    live here once; the arithmetic is ``blend``: OpenCV here by default, a
    CUDA kernel on the GPU path, a NumPy reference in its tests. ``step``
    works on any array type the blend takes (CuPy on the GPU).
    """

    # A grey-level change below NOISE (in the 3x3-blurred thumbnail) is still;
    # NOISE + RAMP and above is full motion.
    NOISE = 3.0
    RAMP = 9.0
    # Largest weight of the previous mask, at strength 1 (time constant ~5 frames).
    MAX_KEEP = 0.85
    # A mask jump over JUMP counts as motion (frame still or not), fully at JUMP + JUMP_RAMP.
    JUMP = 0.5
    JUMP_RAMP = 0.4

    def __init__(self, strength: float = 0.5, blend: Blend | None = None) -> None:
        self.strength = strength
        self.blend: Blend = blend or cpu_blend
        self._prev: Any = None
        self._prev_gray: Any = None
        self._cut = SceneCut()
        self.cuts = 0  # scene cuts seen since construction (for tests and logs)

    def reset(self) -> None:
        """Forget the previous frames (a new clip, a seek, a scene cut)."""
        self._prev = None
        self._prev_gray = None
        self._cut.reset()

    def __call__(self, mask: np.ndarray, frame: np.ndarray | None = None, *,
                 pyramid: FramePyramid | None = None) -> np.ndarray:
        """Smooth ``mask`` (h, w) float32 given this ``frame`` (H, W, 3) BGR.

        Returns a new (h, w) float32 array (never a buffer reused later).
        ``pyramid``: the frame's shared downscales, to avoid a second resize.
        """
        h, w = mask.shape
        gray = None
        if frame is not None:
            gray = (pyramid if pyramid is not None else FramePyramid(frame)).gray((w, h))
        return self.step(np.asarray(mask, np.float32), gray)  # type: ignore[no-any-return]

    def step(self, mask: Any, gray: Any = None, gray_host: np.ndarray | None = None) -> Any:
        """Smooth ``mask`` given the frame's grey thumbnail at the mask's size (None: no frame).

        ``gray_host``: ``gray`` on the host, for the scene-cut test, when ``gray`` is on a device.
        """
        if gray is not None:
            if self._cut(np.asarray(gray if gray_host is None else gray_host)):
                self.cuts += 1
                self._prev = None
        strength = float(self.strength)
        prev, prev_gray = self._prev, self._prev_gray
        if gray is None or prev_gray is None or prev_gray.shape != gray.shape:
            prev_gray = None
        self._prev_gray = gray
        if strength <= 0.0 or prev is None or prev.shape != mask.shape:
            self._prev = mask.copy()
            return mask.copy()
        out = self.blend(mask, prev, gray, prev_gray, self.MAX_KEEP * min(strength, 1.0))
        self._prev = out
        return out.copy()


def cpu_blend(mask: np.ndarray, prev: np.ndarray, gray: np.ndarray | None, prev_gray: np.ndarray | None,
              keep_max: float) -> np.ndarray:
    """``mask + keep * (prev - mask)``, ``keep`` = ``keep_max`` where nothing moves, 0 where it does."""
    t = TemporalSmoother
    # Mask motion: only large jumps count (jitter of a still edge stays below ~0.5).
    dm = cv2.absdiff(mask, prev)
    motion = np.clip((dm - t.JUMP) * (1.0 / t.JUMP_RAMP), 0.0, 1.0)
    if prev_gray is not None:
        df = cv2.absdiff(gray, prev_gray)
        df = cv2.blur(df, (3, 3)).astype(np.float32)
        fm = (df - t.NOISE) * (1.0 / t.RAMP)
        np.maximum(motion, fm, out=motion)
        np.clip(motion, 0.0, 1.0, out=motion)
    motion = cv2.dilate(motion, np.ones((3, 3), np.uint8))
    keep = keep_max * (1.0 - motion)
    return mask + keep * (prev - mask)  # == keep * prev + (1 - keep) * mask
