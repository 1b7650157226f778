"""Composite stage: blend the frame over the background with the alpha matte."""

from __future__ import annotations

import numpy as np

from .backgrounds import Background


class Compositor:
    def __init__(self, background: Background, light_wrap: float = 0.0) -> None:
        self.background = background
        self.light_wrap = light_wrap

    def __call__(self, frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """-> BGR uint8 (H, W, 3), or BGRA uint8 (H, W, 4) when the background is none."""
        bg = self.background.get(frame)
        if bg is None:
            a8 = (alpha * 255.0 + 0.5).astype(np.uint8)
            return np.dstack([frame, a8])
        a = alpha[..., None]
        out = frame.astype(np.float32) * a + bg.astype(np.float32) * (1 - a)
        return (out + 0.5).astype(np.uint8)
