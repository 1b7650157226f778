"""Smooth stage: temporal smoothing of consecutive low-resolution masks."""

from __future__ import annotations

import numpy as np


class TemporalSmoother:
    """Exponential smoothing of masks. ``strength`` 0 = off, 1 = strongest."""

    def __init__(self, strength: float = 0.5) -> None:
        self.strength = strength
        self._prev: np.ndarray | None = None

    def reset(self) -> None:
        self._prev = None

    def __call__(self, mask: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        if self.strength <= 0 or self._prev is None or self._prev.shape != mask.shape:
            self._prev = mask.copy()
            return mask
        a = 0.8 * self.strength
        self._prev = (a * self._prev + (1 - a) * mask).astype(np.float32)
        return self._prev
