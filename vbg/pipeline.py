"""The per-frame pipeline: segment -> smooth -> matte -> composite.

``Pipeline`` owns one instance of each stage and times each call. Settings
changes (``update``) take effect from the next frame without restarting
anything, so the GUI can drive it from another thread.

Each frame's downscaled copies (``FramePyramid``) are made once and shared by
the model's input, the smoother and the matte; the matte's tile ``Coverage`` goes on to the
compositor so that only edge tiles are blended. Outputs are new arrays every
frame (a writer thread may still hold the previous ones); the big scratch
buffers inside the stages are reused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from .backends.base import Backend
from .backgrounds import Background, make_background
from .composite import Compositor
from .matte import Matte, MatteResult
from .preprocess import FramePyramid
from .segment import Segmenter
from .settings import Settings
from .smooth import TemporalSmoother

STAGES = ("segment", "smooth", "matte", "composite")


class Output:
    """One processed frame.

    ``frame``: BGR uint8 (H, W, 3), or BGRA (H, W, 4) for a ``none``
    background; None when compositing was skipped. ``alpha``: float32 (H, W)
    in [0, 1], made on first use when given as the matte's result (a
    composited-only frame never needs it). ``mask``: the smoothed low-res
    float32 mask. ``timings``: milliseconds per stage.
    """

    def __init__(self, frame: np.ndarray | None, alpha: np.ndarray | MatteResult, mask: np.ndarray,
                 timings: dict[str, float] | None = None) -> None:
        self.frame = frame
        self._alpha = alpha
        self.mask = mask
        self.timings = {} if timings is None else timings

    @property
    def alpha(self) -> np.ndarray:
        a = self._alpha
        return a if isinstance(a, np.ndarray) else a.alpha


class Pipeline:
    def __init__(self, settings: Settings, backend: Backend, *, composite: bool = True) -> None:
        self.segmenter = Segmenter(backend)
        self.smoother = TemporalSmoother(settings.smoothing)
        self.matte = Matte(settings.threshold, settings.slope, settings.feather)
        self.compositor = Compositor(make_background(settings.background), settings.light_wrap)
        self.composite = composite
        self.settings = settings
        self._pending: Settings | None = None
        self._lock = threading.Lock()

    # -- settings ------------------------------------------------------
    def update(self, settings: Settings) -> None:
        """Apply new settings from the next frame on (thread-safe)."""
        with self._lock:
            self._pending = settings

    def _apply_pending(self) -> None:
        with self._lock:
            new, self._pending = self._pending, None
        if new is None:
            return
        old = self.settings
        self.smoother.strength = new.smoothing
        self.matte.threshold, self.matte.slope, self.matte.feather = new.threshold, new.slope, new.feather
        self.compositor.light_wrap = new.light_wrap
        if new.bg != old.bg:
            bg: Background = make_background(new.background)
            self.compositor.background.close()
            self.compositor.background = bg
        self.settings = new

    def reset(self) -> None:
        """Forget temporal state (new clip or scene)."""
        self.smoother.reset()
        self.matte.reset()

    # -- processing ----------------------------------------------------
    def process(self, frame: np.ndarray) -> Output:
        return self.process_batch([frame])[0]

    def process_batch(self, frames: Sequence[np.ndarray]) -> list[Output]:
        """Run a batch through the model at once, then the per-frame stages in order."""
        self._apply_pending()
        t0 = time.perf_counter()
        pyramids = [FramePyramid(f) for f in frames]
        masks = self.segmenter(frames, pyramids)
        seg_ms = (time.perf_counter() - t0) * 1000.0 / max(1, len(frames))
        outs = []
        for frame, pyr, m in zip(frames, pyramids, masks):
            t = {"segment": seg_ms}
            t1 = time.perf_counter()
            m = self.smoother(m, frame, pyramid=pyr)
            t2 = time.perf_counter()
            res = self.matte.compute(m, frame, pyramid=pyr)
            t3 = time.perf_counter()
            out = self.compositor(frame, res, pyramid=pyr) if self.composite else None
            t4 = time.perf_counter()
            t["smooth"], t["matte"], t["composite"] = ((t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3)
            outs.append(Output(out, res, m, t))
        return outs

    def close(self) -> None:
        self.compositor.background.close()
