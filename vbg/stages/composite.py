"""Composite stage: blend the frame over the background with the alpha matte.

The blend is ``frame * alpha + background * (1 - alpha)``, rounded, with
``cv2.blendLinear`` (uint8 images, float32 weights, one SIMD pass; the fastest
of the alternatives in ``benchmarks/bench_stages.py``), but only on the tiles
where the alpha is neither 0 nor 1 (``matte.Coverage``), with the weights
the matte left there (its edge patches: the full alpha array is not needed).
Elsewhere the frame or the background is copied. A background held ready
(an image, a colour, a video frame) is read in place and copied tile by
tile; one made per frame (blur) is rendered straight into the output, and
the person's tiles are copied over it.

Light wrap (``light_wrap`` 0..1) lets the new background's light bleed onto
the person's edge, as a camera would see it: near the edge, on the person's
side, the output is pulled towards the background colours around that point.
It is worked out at the matte's low resolution and applied on edge tiles.
"""

from __future__ import annotations

import cv2
import numpy as np

from .backgrounds import Background
from .matte import BG, EDGE, FG, Coverage, MatteResult, tile_any
from .preprocess import FramePyramid, shrink


def upsample_rect(low: np.ndarray, full: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """The (y0:y1, x0:x1) part of ``cv2.resize(low, full_size, INTER_LINEAR)``, computed alone.

    (warpAffine's 1/32-pixel interpolation grid: fine for the smooth maps it is used on.)
    """
    H, W = full
    h, w = low.shape[:2]
    sx, sy = w / W, h / H
    m = np.array([[sx, 0.0, (x0 + 0.5) * sx - 0.5], [0.0, sy, (y0 + 0.5) * sy - 0.5]])
    return cv2.warpAffine(low, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


class Compositor:
    """``(frame, alpha) -> output``; ``background`` and ``light_wrap`` settable live."""

    WRAP_WIDTH = 0.012  # light-wrap reach (Gaussian sigma) as a fraction of the frame height

    def __init__(self, background: Background, light_wrap: float = 0.0) -> None:
        self.background = background
        self.light_wrap = light_wrap
        self._bg_low_key: tuple[int, tuple[int, int]] | None = None
        self._bg_low: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, alpha: np.ndarray | MatteResult, coverage: Coverage | None = None, *,
                 pyramid: FramePyramid | None = None) -> np.ndarray:
        """-> a new BGR uint8 (H, W, 3), or BGRA uint8 (H, W, 4) when the background is none.

        ``alpha``: the matte's result (its tiles and edge patches: no full
        alpha needed), or an (H, W) float32 alpha with, optionally, its
        ``coverage`` (worked out from the alpha when not given; slower).
        ``pyramid``: the frame's shared downscales (for a blurred background).
        """
        res = alpha if isinstance(alpha, MatteResult) else None
        if res is not None:
            coverage = res.coverage
        H, W = frame.shape[:2]
        if coverage is None or coverage.shape != (H, W):
            coverage = Coverage.from_alpha(_full(alpha))
        stored = self.background.stored  # read in place: no copy into the output first
        if stored:
            bg = self.background.get(frame, pyramid=pyramid)
            out = np.empty_like(frame)
            base = None
        else:
            base = BG if coverage.area(BG) >= coverage.area(FG) else FG
            if base == BG:  # the background straight into the output
                out = np.empty_like(frame)
                bg = self.background.get(frame, out, pyramid=pyramid)
            else:
                bg = self.background.get(frame, pyramid=pyramid)
                out = frame.copy()
        if bg is None:
            out = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
            cv2.mixChannels([cv2.convertScaleAbs(_full(alpha), alpha=255.0)], [out], [0, 3])
            return out

        wrap = self._wrap(bg, coverage) if self.light_wrap > 0 and coverage.lowres is not None else None
        if wrap is None:
            runs = coverage.runs()
        else:
            grid = coverage.grid.copy()
            grid[wrap[2] & (grid == FG)] = EDGE
            runs = coverage.runs(grid)
        # The edge rectangles (EDGE runs grown by the feather's reach) and their alpha.
        if res is not None and wrap is None:
            edges = res.patches
        else:
            a_full = _full(alpha)
            edges = []
            for y0, y1, x0, x1, kind in runs:
                if kind == EDGE:
                    y0, y1, x0, x1 = coverage.grow(y0, y1, x0, x1)
                    edges.append((y0, y1, x0, x1, a_full[y0:y1, x0:x1]))
        if stored:
            # Every pixel from its source, then the blends straight into the output
            # (they read the frame and the stored background, never the output).
            for y0, y1, x0, x1, kind in runs:
                if kind == FG:
                    out[y0:y1, x0:x1] = frame[y0:y1, x0:x1]
                elif kind == BG:
                    out[y0:y1, x0:x1] = bg[y0:y1, x0:x1]
            for y0, y1, x0, x1, a in edges:
                o = out[y0:y1, x0:x1]
                cv2.blendLinear(frame[y0:y1, x0:x1], bg[y0:y1, x0:x1], a, 1.0 - a, dst=o)
                if wrap is not None:
                    o[:] = self._glow(o, wrap, (H, W), y0, y1, x0, x1)
            return out
        # ``out`` holds the background (base BG) or the frame (base FG): blend the edge
        # rectangles first, since neighbouring ones overlap and must read the original.
        blends = []
        for y0, y1, x0, x1, a in edges:
            o = cv2.blendLinear(frame[y0:y1, x0:x1], bg[y0:y1, x0:x1], a, 1.0 - a)
            if wrap is not None:
                o = self._glow(o, wrap, (H, W), y0, y1, x0, x1)
            blends.append((y0, y1, x0, x1, o))
        for y0, y1, x0, x1, kind in runs:
            if kind == FG and base == BG:
                out[y0:y1, x0:x1] = frame[y0:y1, x0:x1]
            elif kind == BG and base == FG:
                out[y0:y1, x0:x1] = bg[y0:y1, x0:x1]
        for y0, y1, x0, x1, o in blends:
            out[y0:y1, x0:x1] = o
        return out

    @staticmethod
    def _glow(o: np.ndarray, wrap: tuple[np.ndarray, np.ndarray, np.ndarray], full: tuple[int, int],
              y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The light wrap on one blended rectangle."""
        k = upsample_rect(wrap[0], full, y0, y1, x0, x1)
        glow = upsample_rect(wrap[1], full, y0, y1, x0, x1)
        return cv2.blendLinear(o, glow, 1.0 - k, k)

    def _wrap(self, bg: np.ndarray, cov: Coverage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Light-wrap maps at low res: weight k (float32), glow colour (uint8 BGR), tiles it touches."""
        low = cov.lowres
        assert low is not None
        H, W = cov.shape
        h, w = low.shape
        key = (id(self.background), (w, h))
        if self._bg_low is None or self._bg_low_key != key or self.background.dynamic:
            self._bg_low = shrink(bg, (w, h)).astype(np.float32)
            self._bg_low_key = key
        inv = 1.0 - low
        sigma = max(1.0, self.WRAP_WIDTH * H) * h / H  # in low-res pixels
        spread = cv2.GaussianBlur(inv, (0, 0), sigma)  # how much background is around
        k = (float(min(self.light_wrap, 1.0)) * low * spread).astype(np.float32)
        glow = cv2.GaussianBlur(self._bg_low * inv[..., None], (0, 0), sigma)
        glow /= (spread + 1e-3)[..., None]  # the mean background colour around each point
        glow8 = np.clip(glow + 0.5, 0, 255).astype(np.uint8)
        tiles = tile_any(k > 1.0 / 512.0, (H, W), cov.tile)
        return k, glow8, tiles


def _full(alpha: np.ndarray | MatteResult) -> np.ndarray:
    return alpha.alpha if isinstance(alpha, MatteResult) else alpha
