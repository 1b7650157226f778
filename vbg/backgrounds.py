"""Background sources for the compositor: image, looping video, blur, colour, none.

``make_background(spec)`` opens one; ``get(frame)`` returns the background
for that frame at its size (BGR uint8; the caller must not modify or keep it)
or None for a transparent background. ``get(frame, out=buf)`` writes it
into ``buf`` instead (the compositor renders straight into its output: one
full-frame copy less). ``dynamic`` says whether it changes from frame to
frame (so derived data cannot be cached).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from pathlib import Path

import cv2
import numpy as np

from .errors import VbgError
from .preprocess import FramePyramid, shrink
from .settings import BackgroundSpec

log = logging.getLogger(__name__)

VIDEO_EXTS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".gif"})


class Background:
    """``get(frame)`` returns the background for this frame at its size, BGR uint8, or None.

    ``stored``: ``get`` without ``out`` hands back an array it already holds (no
    per-frame work; the caller must not write to it), so the compositor reads it
    in place instead of copying it into the output first.
    """

    dynamic = False
    stored = False

    def get(self, frame: np.ndarray, out: np.ndarray | None = None, *,
            pyramid: FramePyramid | None = None) -> np.ndarray | None:
        """The background for ``frame``; written into ``out`` (and returned) when given.

        ``pyramid``: the frame's shared downscales, for backgrounds made from the frame.
        """
        raise NotImplementedError

    def close(self) -> None:
        pass


class ImageBackground(Background):
    """A still image, cover-fit to the frame size once per size (cached)."""

    stored = True

    def __init__(self, path: Path) -> None:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise VbgError(f"cannot read background image {path}", "check the path and that it is a JPEG/PNG/WebP")
        self.image = img
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def get(self, frame: np.ndarray, out: np.ndarray | None = None, *,
            pyramid: FramePyramid | None = None) -> np.ndarray:
        h, w = frame.shape[:2]
        if (w, h) not in self._cache:
            self._cache = {(w, h): cover_fit(self.image, w, h)}
        return _into(self._cache[(w, h)], out)


class BlurBackground(Background):
    """The frame itself, blurred: Gaussian sigma = ``strength`` pixels at 1080p, scaled with the height.

    A big-kernel Gaussian at full resolution costs ~45 ms per 1080p frame;
    blurring a copy shrunk so that sigma is ~3 pixels, then enlarging it
    bilinearly, looks the same and costs ~1 ms.
    """

    dynamic = True

    def __init__(self, strength: float) -> None:
        self.strength = strength
        self._out: np.ndarray | None = None

    def get(self, frame: np.ndarray, out: np.ndarray | None = None, *,
            pyramid: FramePyramid | None = None) -> np.ndarray:
        h, w = frame.shape[:2]
        sigma = float(self.strength) * h / 1080.0
        factor = max(1.0, sigma / 3.0)
        sw, sh = max(1, round(w / factor)), max(1, round(h / factor))
        pyr = pyramid if pyramid is not None else FramePyramid(frame)
        small = cv2.GaussianBlur(pyr.at((sw, sh)), (0, 0), max(0.5, sigma / factor))
        if out is None:
            if self._out is None or self._out.shape != frame.shape:
                self._out = np.empty_like(frame)
            out = self._out
        return cv2.resize(small, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)


class ColorBackground(Background):
    stored = True

    def __init__(self, bgr: tuple[int, int, int]) -> None:
        self.bgr = bgr
        self._cache: np.ndarray | None = None

    def get(self, frame: np.ndarray, out: np.ndarray | None = None, *,
            pyramid: FramePyramid | None = None) -> np.ndarray:
        if out is not None:
            out[:] = self.bgr
            return out
        if self._cache is None or self._cache.shape != frame.shape:
            self._cache = np.empty_like(frame)
            self._cache[:] = self.bgr
        return self._cache


class NoBackground(Background):
    def get(self, frame: np.ndarray, out: np.ndarray | None = None, *,
            pyramid: FramePyramid | None = None) -> None:
        return None


class VideoBackground(Background):
    """A video file played in a loop, one background frame per output frame.

    A thread decodes (PyAV) and cover-fits the frames ahead of time into a
    small queue, so the pipeline only waits when decoding is slower than the
    pipeline. The thread restarts when the frame size changes.
    """

    dynamic = True
    stored = True

    def __init__(self, path: Path, *, ahead: int = 3) -> None:
        import av

        self.path = path
        self.ahead = ahead
        try:
            with av.open(str(path)) as c:
                if not c.streams.video:
                    raise VbgError(f"background {path} has no video stream", "use a video or an image file")
                first = next(iter(c.decode(video=0)), None)
        except VbgError:
            raise
        except (av.error.FFmpegError, OSError, ValueError) as exc:  # noqa: B014 (av errors vary)
            raise VbgError(f"cannot read background video {path}: {exc}",
                           "check that the file is a playable video") from None
        if first is None:
            raise VbgError(f"background video {path} has no frames", "use another video or an image")
        self._size: tuple[int, int] | None = None
        self._q: queue.Queue[np.ndarray | BaseException] | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self.loops = 0  # times playback wrapped around (for tests and logs)

    def get(self, frame: np.ndarray, out: np.ndarray | None = None, *,
            pyramid: FramePyramid | None = None) -> np.ndarray:
        h, w = frame.shape[:2]
        if self._thread is None or self._size != (w, h):
            self._start((w, h))
        assert self._q is not None
        try:
            item = self._q.get(timeout=30)
        except queue.Empty:
            item = TimeoutError("decoding stalled")
        if isinstance(item, BaseException):
            self._stop_thread()
            raise VbgError(f"cannot read background video {self.path}: {item}",
                           "check that the file is a playable video") from None
        return _into(item, out)

    def _start(self, size: tuple[int, int]) -> None:
        self._stop_thread()
        self._size = size
        self._q = queue.Queue(maxsize=max(1, self.ahead))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(size, self._q, self._stop),
                                        name="vbg-bg-video", daemon=True)
        self._thread.start()

    def _run(self, size: tuple[int, int], q: queue.Queue[np.ndarray | BaseException],
             stop: threading.Event) -> None:
        import av

        w, h = size

        def put(item: np.ndarray | BaseException) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            while not stop.is_set():
                n = 0
                with av.open(str(self.path)) as c:
                    stream = c.streams.video[0]
                    stream.thread_type = "AUTO"
                    for fr in c.decode(stream):
                        img = cover_fit(fr.to_ndarray(format="bgr24"), w, h)
                        n += 1
                        if not put(img):
                            return
                if n == 0:
                    raise ValueError("no frames")
                self.loops += 1
        except Exception as exc:  # reported to the caller on its next get()
            put(exc)

    def _stop_thread(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        self._stop = None

    def close(self) -> None:
        self._stop_thread()
        self._q = None


def _into(img: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return img
    np.copyto(out, img)
    return out


def cover_fit(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale to cover (w, h) keeping aspect, centre-crop the excess."""
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih)
    nw, nh = max(w, math.ceil(iw * s - 1e-6)), max(h, math.ceil(ih * s - 1e-6))
    r = shrink(img, (nw, nh)) if s < 1 else cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x, y = (nw - w) // 2, (nh - h) // 2
    return np.ascontiguousarray(r[y:y + h, x:x + w])


def bundled_backgrounds() -> dict[str, Path]:
    """Bundled background images by name (file stem), e.g. ``beach``."""
    from .models import assets_dir  # late: models imports settings

    d = assets_dir() / "backgrounds"
    return {p.stem.lower(): p for p in sorted(d.glob("*.jpg"))} if d.is_dir() else {}


def make_background(spec: BackgroundSpec) -> Background:
    if spec.kind == "blur":
        return BlurBackground(spec.blur)
    if spec.kind == "color":
        return ColorBackground(spec.color_bgr)
    if spec.kind == "none":
        return NoBackground()
    assert spec.path is not None
    if not spec.path.is_file():
        names = "/".join(bundled_backgrounds()) or "blur:N"
        raise VbgError(f"background {spec.path} not found",
                       f"check the path, or use {names}, blur:N or color:#RRGGBB")
    if spec.kind == "video":
        return VideoBackground(spec.path)
    return ImageBackground(spec.path)
