"""What a pipeline hands on for each frame: ``Output``."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class HasAlpha(Protocol):
    @property
    def alpha(self) -> np.ndarray: ...


class Output:
    """One processed frame.

    ``frame``: BGR uint8 (H, W, 3), or BGRA (H, W, 4) for a transparent
    background; None when compositing was skipped. ``alpha``: float32 (H, W)
    in [0, 1], made on first use when given as the matte's result (a
    composited-only frame never needs it). ``mask``: the smoothed low-res
    float32 mask. ``timings``: milliseconds per stage. ``model_ran``: False
    when the model was skipped for this frame and its mask reused.
    """

    def __init__(self, frame: np.ndarray | None, alpha: np.ndarray | HasAlpha, mask: np.ndarray,
                 timings: dict[str, float] | None = None, model_ran: bool = True) -> None:
        self.frame = frame
        self._alpha = alpha
        self.mask = mask
        self.timings = {} if timings is None else timings
        self.model_ran = model_ran

    @property
    def alpha(self) -> np.ndarray:
        a = self._alpha
        return a if isinstance(a, np.ndarray) else a.alpha
