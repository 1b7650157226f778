"""Segment stage: frames -> low-resolution person masks, via a backend; and when the model need not run."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..backends.base import Backend
from .preprocess import FramePyramid


class Segmenter:
    """Thin stage over a backend: ``(N, H, W, 3)`` BGR frames -> ``(N, h, w)`` masks.

    Given the frames' ``FramePyramid``s, the backend gets each frame already
    shrunk to its input size from the pyramid the later stages use anyway:
    that saves the backend its own full-frame downscale (~0.4 ms per 1080p
    frame), and the model's input is as antialiased (a 2x2 box average per
    halving, then a bilinear step under 2x). Same IoU on the validation photos
    to 1e-4 (0.90130 against 0.90123 with the backend's own resize).
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def input_size(self, frame: np.ndarray) -> tuple[int, int]:
        """The model's input size (w, h) for this frame (the spec's portrait twin where it says so)."""
        return self.backend.spec.size_for(frame.shape[1], frame.shape[0])

    def __call__(self, frames: Sequence[np.ndarray],
                 pyramids: Sequence[FramePyramid] | None = None) -> np.ndarray:
        if pyramids is not None:
            frames = [p.at(self.input_size(p.frame)) for p in pyramids]
        return self.backend.infer(frames)


class ChangeGate:
    """Decides, frame by frame, whether the model must run or its last mask still holds.

    ``every``: ``"auto"``, or N (the model runs on every N-th frame; 1 = always).
    With ``auto`` the model runs when the picture has changed since the frame
    it last ran on: more than ``SHARE`` of the pixels of the colour thumbnail
    (the model's input, 3x3 blurred so sensor noise averages out) changed by
    more than ``LEVEL`` in some channel. Colour, not luma: a red jumper
    against a green wall can have the wall's brightness. Comparing with the last run's frame,
    not the previous frame, lets slow drift add up. It also runs at least
    every ``max_gap`` frames (about half a second at 30 fps), and at once on
    a scene cut (a cut changes most pixels).

    ``still`` says whether the frame also matches the one before it, which
    lets the later stages reuse their work.
    """

    LEVEL = 10.0  # levels: under this a pixel is noise, not motion
    SHARE = 0.001  # of the thumbnail's pixels: a hand's edge moving a few pixels is more than this
    MAX_GAP_S = 0.5  # seconds
    MAX_GAP = 15  # frames, at 30 fps

    def __init__(self, every: str | int = "auto", max_gap: int = MAX_GAP) -> None:
        self.every = 0 if str(every) == "auto" else max(1, int(every))
        self.max_gap = max_gap
        self.reset()

    def reset(self) -> None:
        self._ref: np.ndarray | None = None  # the blurred thumbnail the model last ran on
        self._prev: np.ndarray | None = None
        self._gap = 0
        self.still = False

    @classmethod
    def changed(cls, a: np.ndarray, b: np.ndarray) -> bool:
        if a.shape != b.shape:
            return True
        diff = cv2.absdiff(a, b)
        if diff.ndim == 3:  # the largest change over the channels, in OpenCV: NumPy's max over an axis of
            planes = cv2.split(diff)  # length 3 took 1.2 ms here, twice a frame
            diff = planes[0]
            for q in planes[1:]:
                diff = cv2.max(diff, q)
        return int(np.count_nonzero(diff > cls.LEVEL)) > cls.SHARE * diff.size

    def needs(self, thumb: np.ndarray) -> bool:
        """True when the model must run on this frame (its uint8 thumbnail: BGR, or grey)."""
        g = cv2.blur(thumb, (3, 3))
        self.still = self._prev is not None and not self.changed(g, self._prev)
        self._prev = g
        self._gap += 1
        if self.every:
            run = self._ref is None or self._gap >= self.every
        else:
            run = self._ref is None or self._gap >= self.max_gap or self.changed(g, self._ref)
        if run:
            self._ref, self._gap = g, 0
        return run
