"""Auto-framing: crop and scale each output so the person stays centred, with room above the head.

The crop comes from the person mask's bounding box (at the model's
resolution: cheap), and moves like a camera operator would move it:

* a **dead zone**: a new target that differs from the current one by less than
  ``DEAD`` of the frame (a person breathing, talking, shifting a little) is
  ignored, so a still person gets a still picture, not a jittering one;
* a **critically damped spring** per coordinate (centre x, centre y, crop
  height) towards the target, so moves are smooth, never overshoot, and settle
  in about a second;
* the crop keeps the output's aspect and size (a virtual camera must not
  change size), and at most ``MAX_ZOOM`` times magnification.

Nobody in view: back to the whole frame. The warp is sub-pixel
(``cv2.warpAffine``), so slow moves do not step pixel by pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..outputs import Output


@dataclass(frozen=True)
class Crop:
    """A crop of a ``W`` x ``H`` frame: centre (cx, cy) and height h (the width follows W/H)."""

    cx: float
    cy: float
    h: float

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(x0, y0, w, h) in frame pixels."""
        w = self.h * width / height
        return self.cx - w / 2, self.cy - self.h / 2, w, self.h


class AutoFramer:
    HEAD_ROOM = 0.12  # of the crop's height, above the top of the person
    BOTTOM = 0.05  # below a person who ends inside the frame
    SIDE = 1.35  # the crop is at least this times the person's width
    MAX_ZOOM = 2.5
    DEAD = 0.05  # target moves under this share of the frame height are ignored
    OMEGA = 5.0  # spring stiffness (rad/s): settles in ~0.8 s, no overshoot
    MIN_AREA = 0.003  # of the mask: smaller specks are not a person

    def __init__(self, fps: float = 30.0) -> None:
        self.dt = 1.0 / max(1.0, fps)
        self.reset()

    def reset(self) -> None:
        self.crop: Crop | None = None  # where the camera is now
        self._target: Crop | None = None
        self._v = np.zeros(3)

    def target(self, mask: np.ndarray, width: int, height: int) -> Crop:
        """Where the crop should be for this (low-resolution) person ``mask``."""
        full = Crop(width / 2, height / 2, float(height))
        on = mask >= 0.5
        mh, mw = mask.shape
        if on.sum() < self.MIN_AREA * mask.size:
            return full
        ys, xs = np.nonzero(on)
        sx, sy = width / mw, height / mh
        x0, x1 = xs.min() * sx, (xs.max() + 1) * sx
        y0, y1 = ys.min() * sy, (ys.max() + 1) * sy
        cut_below = y1 >= height - 2 * sy
        h = (y1 - y0) / (1 - self.HEAD_ROOM - (0 if cut_below else self.BOTTOM))
        h = max(h, (x1 - x0) * self.SIDE * height / width, height / self.MAX_ZOOM)
        h = min(h, float(height))
        w = h * width / height
        cx = min(max((x0 + x1) / 2, w / 2), width - w / 2)
        cy = min(max(y0 - self.HEAD_ROOM * h + h / 2, h / 2), height - h / 2)
        return Crop(cx, cy, h)

    def step(self, mask: np.ndarray, width: int, height: int) -> Crop:
        """Move the crop one frame towards where the person is; returns the new crop."""
        new = self.target(mask, width, height)
        old = self._target
        if old is None or max(abs(new.cx - old.cx), abs(new.cy - old.cy), abs(new.h - old.h)) > self.DEAD * height:
            self._target = new
        t = self._target
        assert t is not None
        if self.crop is None:  # the first frame: start framed, not with a zoom-in
            self.crop = t
            return t
        x = np.array([self.crop.cx, self.crop.cy, self.crop.h])
        goal = np.array([t.cx, t.cy, t.h])
        w = self.OMEGA
        self._v += self.dt * (w * w * (goal - x) - 2 * w * self._v)  # semi-implicit Euler: stable at w*dt << 1
        x = x + self.dt * self._v
        if np.abs(goal - x).max() < 0.5 and np.abs(self._v).max() < 2.0:  # arrived: rest exactly, no creep
            x, self._v = goal, np.zeros(3)
        # stay inside the frame
        h = min(max(x[2], height / self.MAX_ZOOM), float(height))
        cw = h * width / height
        cx = min(max(x[0], cw / 2), width - cw / 2)
        cy = min(max(x[1], h / 2), height - h / 2)
        self.crop = Crop(float(cx), float(cy), float(h))
        return self.crop

    @staticmethod
    def matrix(crop: Crop, width: int, height: int) -> np.ndarray:
        x0, y0, w, _ = crop.box(width, height)
        s = width / w
        return np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float32)

    def apply(self, out: Output, crop: Crop) -> Output:
        """The output seen through ``crop``, at the frame's own size."""
        if out.frame is None:
            return Output(None, _FramedAlpha(out, crop), out.mask, out.timings, out.model_ran)
        height, width = out.frame.shape[:2]
        if math.isclose(crop.h, height) and math.isclose(crop.cx, width / 2) and math.isclose(crop.cy, height / 2):
            return out
        m = self.matrix(crop, width, height)
        frame = cv2.warpAffine(out.frame, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return Output(frame, _FramedAlpha(out, crop), out.mask, out.timings, out.model_ran)


class _FramedAlpha:
    """The alpha through a crop, made only when asked for (mask and alpha outputs, the GUI's mask view)."""

    def __init__(self, out: Output, crop: Crop) -> None:
        self._out, self._crop = out, crop
        self._alpha: np.ndarray | None = None

    @property
    def alpha(self) -> np.ndarray:
        if self._alpha is None:
            a = self._out.alpha
            h, w = a.shape
            self._alpha = cv2.warpAffine(a, AutoFramer.matrix(self._crop, w, h), (w, h), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE)
        return self._alpha
