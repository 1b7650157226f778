"""Segment stage: frames -> low-resolution person masks, via a backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .backends.base import Backend


class Segmenter:
    """Thin stage over a backend: ``(N, H, W, 3)`` BGR frames -> ``(N, h, w)`` masks."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @property
    def size(self) -> tuple[int, int]:
        return self.backend.spec.size

    def __call__(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        return self.backend.infer(frames)
