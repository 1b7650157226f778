"""Matte stage: low-res mask -> frame-size alpha (upsample, threshold, feather)."""

from __future__ import annotations

import cv2
import numpy as np


class Matte:
    def __init__(self, threshold: float = 0.5, slope: float = 10.0, feather: float = 2.0) -> None:
        self.threshold = threshold
        self.slope = slope
        self.feather = feather

    def __call__(self, mask: np.ndarray, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        up = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        a = np.clip((up - self.threshold) * self.slope + 0.5, 0.0, 1.0)
        if self.feather > 0:
            k = int(self.feather) * 2 + 1
            a = cv2.GaussianBlur(a, (k, k), 0)
        return a.astype(np.float32)
