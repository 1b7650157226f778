"""From the processing thread to the UI thread, without ever blocking either.

``FrameBridge.deliver`` runs on the processing thread: it renders the chosen
view (numpy/OpenCV work stays off the UI thread), scales it to the preview
size and keeps only the newest image. The UI is told through a queued Qt
signal; if it has not painted the previous image yet, that one is replaced
(dropped) rather than queued.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from ...loop import Delivery


def checkerboard(h: int, w: int, cell: int = 16) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    light = ((yy // cell + xx // cell) % 2).astype(bool)
    board = np.empty((h, w, 3), np.uint8)
    board[:] = 96
    board[light] = 160
    return board


def flatten(frame: np.ndarray) -> np.ndarray:
    """BGRA (transparent background) -> BGR over a checkerboard; BGR unchanged."""
    if frame.ndim == 3 and frame.shape[2] == 4:
        a = frame[..., 3:4].astype(np.float32) / 255.0
        board = checkerboard(*frame.shape[:2])
        return (frame[..., :3] * a + board * (1 - a) + 0.5).astype(np.uint8)
    return frame


def render_view(d: Delivery, view: str) -> np.ndarray:
    """The image a preview shows for one delivery, BGR uint8."""
    if view == "original":
        return d.image
    if view == "mask":
        a8 = (d.output.alpha * 255.0 + 0.5).astype(np.uint8)
        return cv2.cvtColor(a8, cv2.COLOR_GRAY2BGR)
    result = flatten(d.output.frame if d.output.frame is not None else d.image)
    if view == "side-by-side":
        return np.hstack([d.image, result])
    return result


def fit(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Scale to fit inside (w, h) keeping the aspect ratio (never upscale much: Qt does that)."""
    if not size:
        return img
    w, h = size
    s = min(w / img.shape[1], h / img.shape[0])
    if s >= 1.0 or w < 8 or h < 8:
        return img
    nw, nh = max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)


def to_qimage(img: np.ndarray) -> QImage:
    """BGR uint8 -> an independent QImage (safe to build off the UI thread)."""
    img = np.ascontiguousarray(img)
    h, w = img.shape[:2]
    return QImage(img.data, w, h, img.strides[0], QImage.Format.Format_BGR888).copy()


class FrameBridge(QObject):
    """Carries the newest rendered frame and session events to the UI thread."""

    frame_ready = Signal()
    ended = Signal(str, bool)
    error = Signal(str)
    kept = Signal(object)  # Settings: a model or backend change failed, these are in force

    def __init__(self, view: str = "result") -> None:
        super().__init__()
        self.view = view  # read per frame: a view switch applies from the next frame
        self.target_size: tuple[int, int] | None = None  # the preview's (w, h), set by the UI
        self.dropped = 0
        self._lock = threading.Lock()
        self._latest: tuple[QImage, np.ndarray, Delivery] | None = None

    # processing thread
    def deliver(self, d: Delivery) -> None:
        img = fit(render_view(d, self.view), self.target_size)
        item = (to_qimage(img), img, d)
        with self._lock:
            notify = self._latest is None
            if not notify:
                self.dropped += 1  # the UI is behind: replace, don't queue
            self._latest = item
        if notify:
            self.frame_ready.emit()

    def on_end(self, reason: str, lost: bool) -> None:
        self.ended.emit(reason, lost)

    def on_error(self, message: str) -> None:
        self.error.emit(message)

    def on_kept(self, settings: object) -> None:
        self.kept.emit(settings)

    # UI thread
    def take(self) -> tuple[QImage, np.ndarray, Delivery] | None:
        with self._lock:
            item, self._latest = self._latest, None
        return item
