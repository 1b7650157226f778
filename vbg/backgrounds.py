"""Background sources for the compositor: image, looping video, blur, colour, none."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import VbgError
from .settings import BackgroundSpec

VIDEO_EXTS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".gif"})


class Background:
    """``get(frame)`` returns the background for this frame at its size, BGR uint8, or None."""

    def get(self, frame: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ImageBackground(Background):
    def __init__(self, path: Path) -> None:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise VbgError(f"cannot read background image {path}", "check the path and that it is a JPEG/PNG/WebP")
        self.image = img
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def get(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if (w, h) not in self._cache:
            self._cache = {(w, h): cover_fit(self.image, w, h)}
        return self._cache[(w, h)]


class BlurBackground(Background):
    def __init__(self, strength: float) -> None:
        self.strength = strength

    def get(self, frame: np.ndarray) -> np.ndarray:
        k = int(self.strength) | 1
        return cv2.GaussianBlur(frame, (k, k), 0)


class ColorBackground(Background):
    def __init__(self, bgr: tuple[int, int, int]) -> None:
        self.bgr = bgr
        self._cache: np.ndarray | None = None

    def get(self, frame: np.ndarray) -> np.ndarray:
        if self._cache is None or self._cache.shape != frame.shape:
            self._cache = np.empty_like(frame)
            self._cache[:] = self.bgr
        return self._cache


class NoBackground(Background):
    def get(self, frame: np.ndarray) -> None:
        return None


def cover_fit(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale to cover (w, h) keeping aspect, centre-crop the excess."""
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih)
    nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    r = cv2.resize(img, (nw, nh), interpolation=interp)
    x, y = (nw - w) // 2, (nh - h) // 2
    return np.ascontiguousarray(r[y:y + h, x:x + w])


def make_background(spec: BackgroundSpec) -> Background:
    if spec.kind == "blur":
        return BlurBackground(spec.blur)
    if spec.kind == "color":
        return ColorBackground(spec.color_bgr)
    if spec.kind == "none":
        return NoBackground()
    assert spec.path is not None
    if not spec.path.is_file():
        raise VbgError(f"background {spec.path} not found", "check the path, or use blur:N / color:#RRGGBB")
    if spec.kind == "video":
        raise VbgError("video backgrounds are not supported yet", "use an image")
    return ImageBackground(spec.path)
