"""Backgrounds for the compositor: image, looping video, blur, colour, none.

``BackgroundSpec.parse(text)`` reads a ``--bg`` value (syntax only, opens
nothing); ``open_background(spec)`` opens it through ``KINDS``, the
registry from kind to class, once per run. ``get(frame)`` returns the
background for that frame at its size (BGR uint8; the caller must not
modify or keep it) or None for a transparent background. ``get(frame,
out=buf)`` writes it into ``buf`` instead (the compositor renders straight
into its output: one full-frame copy less).

A new kind of background is one class with ``kind`` and ``open(spec)``,
and one line in ``KINDS``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import av
import cv2
import numpy as np

from ..assets import bundled_backgrounds
from ..errors import VbgError
from ..io.ahead import Ahead
from ..io.decode import VideoFrames
from ..io.files import IMAGE_EXTS, VIDEO_EXTS, check_file, decode_image, read_bytes
from .preprocess import FramePyramid, shrink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackgroundSpec:
    """A parsed ``--bg`` value.

    Forms: ``PATH`` (image or video, looped), the name of a bundled
    background (``beach`` or ``beach.jpg``), ``blur`` / ``blur:N``,
    ``color:#RRGGBB`` (or ``color:R,G,B``), ``none`` (transparent).
    """

    kind: str  # a key of KINDS: "image" | "video" | "blur" | "color" | "none"
    path: Path | None = None
    blur: float = 25.0
    color_bgr: tuple[int, int, int] = (0, 177, 0)

    @classmethod
    def parse(cls, text: str) -> BackgroundSpec:
        t = text.strip()
        low = t.lower()
        if not t:
            raise VbgError("the background is empty", "give an image or video, beach, blur:N, color:#RRGGBB or none")
        if low in ("none", "transparent", "alpha"):
            return cls("none")
        if low == "blur" or low.startswith("blur:"):
            val = low.partition(":")[2] or "25"
            try:
                strength = float(val)
            except ValueError:
                raise VbgError(f"bad blur strength {val!r} in --bg {t}", "use blur:N, N from 1 to 100") from None
            if not 1 <= strength <= 100:
                raise VbgError(f"blur strength {strength:g} out of range", "use blur:N, N from 1 to 100")
            return cls("blur", blur=strength)
        if low.startswith(("color:", "colour:")):
            return cls("color", color_bgr=parse_color(t.partition(":")[2]))
        p = Path(t).expanduser()
        named = bundled_backgrounds()
        stem = p.stem.lower() if p.suffix.lower() in IMAGE_EXTS else low
        if not p.exists() and p.parent == Path(".") and stem in named:
            return cls("image", path=named[stem])  # 'beach' or 'beach.jpg': the bundled one
        kind = "video" if p.suffix.lower() in VIDEO_EXTS else "image"
        return cls(kind, path=p)

    def __str__(self) -> str:
        if self.kind == "blur":
            return f"blur:{self.blur:g}"
        if self.kind == "color":
            b, g, r = self.color_bgr
            return f"color:#{r:02x}{g:02x}{b:02x}"
        if self.kind == "none":
            return "none"
        return str(self.path)


def parse_color(text: str) -> tuple[int, int, int]:
    """'#00b140', '00b140' or '0,177,64' (RGB) -> (B, G, R)."""
    s = text.strip().lstrip("#")
    try:
        if "," in s:
            r, g, b = (int(v) for v in s.split(","))
        elif len(s) == 6:
            r, g, b = int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)
        else:
            raise ValueError
        if not all(0 <= v <= 255 for v in (r, g, b)):
            raise ValueError
    except ValueError:
        raise VbgError(f"bad colour {text!r}", "use color:#RRGGBB or color:R,G,B") from None
    return (b, g, r)


class Background:
    """``get(frame)`` returns the background for this frame at its size, BGR uint8, or None.

    ``transparent``: there is no background (``get`` returns None); outputs
    carry alpha instead. ``dynamic``: it changes from frame to frame (so
    derived data cannot be cached). ``stored``: ``get`` without ``out`` hands
    back an array it already holds (no per-frame work; the caller must not
    write to it), so the compositor reads it in place instead of copying it
    into the output first.
    """

    kind: ClassVar[str] = ""
    transparent: ClassVar[bool] = False
    dynamic: ClassVar[bool] = False
    stored: ClassVar[bool] = False

    @classmethod
    def open(cls, spec: BackgroundSpec) -> Background:
        raise NotImplementedError

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

    kind = "image"
    stored = True

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def open(cls, spec: BackgroundSpec) -> Background:
        assert spec.path is not None
        path = _existing_file(spec.path)
        img = decode_image(read_bytes(path, "background"))
        if img is None:
            if spec.path.suffix.lower() not in IMAGE_EXTS:  # maybe a video with an unusual name
                return VideoBackground.open(BackgroundSpec("video", path=path))
            raise VbgError(f"background {path} is not an image or video vbg can read",
                           "use a JPEG, PNG or WebP image, or a video such as MP4")
        return cls(img)

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

    kind = "blur"
    dynamic = True

    def __init__(self, strength: float) -> None:
        self.strength = strength
        self._out: np.ndarray | None = None

    @classmethod
    def open(cls, spec: BackgroundSpec) -> Background:
        return cls(spec.blur)

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
    kind = "color"
    stored = True

    def __init__(self, bgr: tuple[int, int, int]) -> None:
        self.bgr = bgr
        self._cache: np.ndarray | None = None

    @classmethod
    def open(cls, spec: BackgroundSpec) -> Background:
        return cls(spec.color_bgr)

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
    kind = "none"
    transparent = True

    @classmethod
    def open(cls, spec: BackgroundSpec) -> Background:
        return cls()

    def get(self, frame: np.ndarray, out: np.ndarray | None = None, *,
            pyramid: FramePyramid | None = None) -> None:
        return None


class VideoBackground(Background):
    """A video file played in a loop, one background frame per output frame.

    A thread decodes (``VideoFrames``: PyAV, display rotation applied) and
    cover-fits the frames ahead of time into a small queue, so the pipeline
    only waits when decoding is slower than the pipeline. The thread
    restarts when the frame size changes.
    """

    kind = "video"
    dynamic = True
    stored = True

    def __init__(self, path: Path, *, ahead: int = 3) -> None:
        self.path = path
        self.ahead = ahead
        self._size: tuple[int, int] | None = None
        self._reader: Ahead[np.ndarray] | None = None
        self._frames: Iterator[np.ndarray] | None = None
        self.loops = 0  # times playback wrapped around (for tests and logs)

    @classmethod
    def open(cls, spec: BackgroundSpec) -> Background:
        assert spec.path is not None
        path = _existing_file(spec.path)
        try:
            VideoFrames(path, what="background").close()  # fails now, in one line, if unreadable
        except VbgError as exc:
            if "not a video" in exc.what or "no video stream" in exc.what:
                raise VbgError(f"background {path} is not a video or image vbg can read",
                               "use a video such as MP4, or a JPEG, PNG or WebP image") from None
            raise
        return cls(path)

    def get(self, frame: np.ndarray, out: np.ndarray | None = None, *,
            pyramid: FramePyramid | None = None) -> np.ndarray:
        h, w = frame.shape[:2]
        if self._frames is None or self._size != (w, h):
            self._start((w, h))
        assert self._frames is not None
        try:
            item = next(self._frames)
        except (VbgError, av.FFmpegError, OSError, TimeoutError) as exc:  # TimeoutError: decoding stalled
            self._stop_thread()
            raise VbgError(f"cannot read background video {self.path}: {exc}",
                           "check that the file is a playable video") from None
        return _into(item, out)

    def _start(self, size: tuple[int, int]) -> None:
        self._stop_thread()
        self._size = size
        stop = threading.Event()
        self._reader = Ahead(self._looped(size, stop), size=self.ahead, name="vbg-bg-video", stop=stop, wait=30.0)
        self._frames = iter(self._reader)

    def _looped(self, size: tuple[int, int], stop: threading.Event) -> Iterator[np.ndarray]:
        w, h = size
        while not stop.is_set():  # (a file that yields no frames would otherwise spin here)
            with VideoFrames(self.path, what="background") as video:
                for img, _ in video:
                    yield cover_fit(img, w, h)
            self.loops += 1

    def _stop_thread(self) -> None:
        if self._reader is not None:
            self._reader.close(timeout=5)
        self._reader = self._frames = None

    def close(self) -> None:
        self._stop_thread()


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


def _existing_file(path: Path) -> Path:
    if path.is_dir():
        raise VbgError(f"background {path} is a folder",
                       "give an image or video file, a bundled name (" + ", ".join(bundled_backgrounds())
                       + "), blur:N, color:#RRGGBB or none")
    names = ", ".join(bundled_backgrounds()) or "blur:N"
    return check_file(path, "background", f"check the path, or use {names}, blur:N, color:#RRGGBB or none")


# kind -> class: the registry BackgroundSpec.kind is looked up in
KINDS: dict[str, type[Background]] = {
    cls.kind: cls for cls in (ImageBackground, VideoBackground, BlurBackground, ColorBackground, NoBackground)
}


def open_background(spec: BackgroundSpec | str) -> Background:
    """Open a background (a spec, or a ``--bg`` text); one-line VbgError when it cannot be read."""
    if isinstance(spec, str):
        spec = BackgroundSpec.parse(spec)
    return KINDS[spec.kind].open(spec)
