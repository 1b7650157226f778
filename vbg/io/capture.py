"""Capture stage: one thread per source, latest-frame semantics.

A source is a webcam (index ``0`` or device path ``/dev/video2``) or a video
file. Both go through the same ``CaptureThread``; only the reader underneath
differs: ``CameraReader`` (OpenCV, V4L2 on Linux) paces itself, while
``FileReader`` (PyAV) is paced by the thread at the file's own rate so that
a file behaves like a camera (frames arrive in real time, and are dropped
when processing is slower).

The thread keeps only the newest frame. ``wait_next`` hands it out; a frame
replaced before anyone took it counts as dropped. Each frame carries a
sequence number and a ``time.perf_counter()`` capture timestamp, from which
the live loop measures latency.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import av
import cv2
import numpy as np

from ..errors import VbgError
from .decode import VideoFrames

log = logging.getLogger(__name__)


class EndOfStream(Exception):
    """The reader has no more frames (end of a video file)."""


class SourceLost(Exception):
    """The source stopped delivering frames (camera unplugged, file unreadable)."""


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity
class CapturedFrame:
    image: np.ndarray  # BGR uint8 (H, W, 3)
    seq: int  # increases by one per captured frame, never reused by a CaptureThread
    t_capture: float  # time.perf_counter() when the frame arrived


@dataclass(frozen=True)
class Source:
    """A parsed ``--camera`` value: camera index, camera device path, or video file."""

    kind: str  # "camera" | "file"
    index: int | None = None
    path: Path | None = None

    @classmethod
    def parse(cls, text: str | int) -> Source:
        t = str(text).strip()
        if t.isdigit():
            return cls("camera", index=int(t))
        p = Path(t).expanduser()
        if t.startswith("/dev/"):
            return cls("camera", path=p)
        return cls("file", path=p)

    @property
    def is_camera(self) -> bool:
        return self.kind == "camera"

    def __str__(self) -> str:
        return str(self.index) if self.index is not None else str(self.path)


class Reader(Protocol):
    """What the capture thread reads from."""

    paced: bool  # True: the thread sleeps to play frames at their timestamps (files)
    size: tuple[int, int]  # (width, height) of the frames delivered
    fps: float  # the source's frame rate

    def read(self) -> tuple[np.ndarray, float | None]:
        """-> (BGR frame, timestamp in seconds or None). Raises EndOfStream or SourceLost."""
        ...

    def rewind(self) -> None: ...

    def close(self) -> None: ...


# --- readers ---------------------------------------------------------------

class FileReader:
    """A video file through ``VideoFrames`` (PyAV, display rotation applied), with presentation times."""

    paced = True

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise VbgError(f"camera or video file {str(path)!r} not found",
                           "pass a camera index (0, 1, ...), a device path (/dev/video0) or an existing video file")
        self._video = VideoFrames(path, what="camera video file")
        self.size = self._video.size
        self.fps = self._video.fps

    def read(self) -> tuple[np.ndarray, float | None]:
        try:
            return self._video.read()
        except StopIteration:
            raise EndOfStream from None
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceLost(f"video file {self.path} became unreadable: {exc}") from None

    def rewind(self) -> None:
        self.close()
        self._video = VideoFrames(self.path, what="camera video file")  # reopen: more robust than seeking

    def close(self) -> None:
        self._video.close()


class CameraReader:
    """A webcam through OpenCV (V4L2 on Linux). The camera paces itself.

    Read failures are tolerated for ``lost_after`` seconds (a camera may
    hiccup); after that, or when the device node vanishes, the camera counts
    as unplugged.
    """

    paced = False

    def __init__(self, cap: Any, name: str, *, device: Path | None = None, lost_after: float = 1.0) -> None:
        self._cap = cap
        self.name = name
        self.device = device
        self.lost_after = lost_after
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) or 30.0
        self._first: np.ndarray | None = None

    @classmethod
    def open(cls, source: Source, width: int, height: int, fps: float) -> CameraReader:
        linux = sys.platform.startswith("linux")
        device = source.path if source.path is not None else (
            Path(f"/dev/video{source.index}") if linux else None)
        fix_missing = ("plug in a webcam, pick another with --camera N or a device path, "
                       "or pass --camera PATH to a video file")
        if device is not None and linux and not device.exists():
            raise VbgError(f"camera {source} not found: {device} does not exist", fix_missing)
        api = camera_api()
        target: int | str = source.index if source.index is not None else str(source.path)
        cap = cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            if device is None:
                raise VbgError(f"camera {source} not found or busy", fix_missing)
            raise VbgError(f"camera {source} could not be opened",
                           "close other apps using it, or check permissions (Linux: add yourself to the 'video' group)")
        # MJPG: most webcams deliver 720p at 30 fps only compressed.
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a deep driver queue is pure latency
        reader = cls(cap, str(source), device=device)
        # Busy V4L2 devices open fine and fail at stream start: check with a first frame.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            ok, img = cap.read()
            if ok and img is not None:
                reader._first = img
                reader.size = (img.shape[1], img.shape[0])
                break
            time.sleep(0.05)
        else:
            cap.release()
            raise VbgError(f"camera {source} is busy or delivers no frames",
                           "close other apps using it (video calls, browser tabs) and try again")
        if reader.size != (width, height):
            log.info("camera %s delivers %dx%d (asked for %dx%d)", source, *reader.size, width, height)
        return reader

    def read(self) -> tuple[np.ndarray, float | None]:
        if self._first is not None:
            img, self._first = self._first, None
            return img, None
        failing_since: float | None = None
        while True:
            ok, img = self._cap.read()
            if ok and img is not None:
                return img, None
            now = time.monotonic()
            failing_since = failing_since or now
            if (self.device is not None and not self.device.exists()) or now - failing_since > self.lost_after:
                raise SourceLost(f"camera {self.name} stopped delivering frames (unplugged?)")
            time.sleep(0.01)

    def rewind(self) -> None:
        pass

    def close(self) -> None:
        self._cap.release()


@dataclass(frozen=True)
class CameraInfo:
    value: str  # what --camera takes: an index or a device path
    name: str  # what the driver calls it, e.g. "Integrated Camera: Integrated C"
    loopback: bool = False  # a virtual camera (v4l2loopback): an output, not a source


def list_cameras(sysfs: Path = Path("/sys/class/video4linux")) -> list[CameraInfo]:
    """The cameras to offer. Linux: the /dev/video* capture nodes with their driver names (a webcam's
    metadata node, index > 0, is left out); elsewhere indices 0..2, which OpenCV probes when opened."""
    if not sys.platform.startswith("linux"):
        return [CameraInfo(str(i), f"Camera {i}") for i in range(3)]
    out = []
    for node in sorted(sysfs.glob("video[0-9]*"), key=lambda p: int(p.name[5:])):
        try:
            name = (node / "name").read_text().strip()
            index = (node / "index").read_text().strip() if (node / "index").exists() else "0"
        except OSError:
            continue
        if index != "0":
            continue
        driver = ""
        with contextlib.suppress(OSError):
            driver = (node / "device" / "driver").resolve().name if (node / "device" / "driver").exists() else ""
        loop = "loopback" in driver.lower() or "loopback" in name.lower() or name in ("vbg", "OBS Virtual Camera")
        out.append(CameraInfo(f"/dev/{node.name}", name or node.name, loop))
    return out


def camera_api() -> int:
    """OpenCV's capture backend for this platform: V4L2 on Linux, DirectShow on Windows (the one that
    opens most webcams by index quickly), AVFoundation on macOS."""
    if sys.platform.startswith("linux"):
        return cv2.CAP_V4L2
    if sys.platform == "win32":
        return cv2.CAP_DSHOW
    if sys.platform == "darwin":
        return cv2.CAP_AVFOUNDATION
    return cv2.CAP_ANY


def open_reader(source: Source, width: int, height: int, fps: float) -> Reader:
    """Open a source; raises VbgError (not found, busy, unreadable)."""
    if source.is_camera:
        return CameraReader.open(source, width, height, fps)
    assert source.path is not None
    return FileReader(source.path)


# --- the thread ------------------------------------------------------------

class CaptureThread:
    """Reads one source on its own thread and keeps only the newest frame.

    ``open()`` (or ``start()``) opens the source in the caller's thread, so
    opening errors (``VbgError``) reach the caller; then frames flow until ``stop()``, the
    end of a file (unless ``loop``), or the source is lost. ``ended`` tells
    which: ``end_reason`` says why, ``lost`` is True for a vanished source.
    """

    def __init__(self, source: Source | str, *, width: int = 1280, height: int = 720, fps: float = 30.0,
                 mirror: bool = False, loop: bool = False,
                 opener: Callable[[], Reader] | None = None) -> None:
        self.source = source if isinstance(source, Source) else Source.parse(source)
        self.width, self.height, self.fps_requested = width, height, fps
        self.mirror = mirror  # read per frame: toggling needs no restart
        self.loop = loop
        self._opener = opener or (lambda: open_reader(self.source, self.width, self.height, self.fps_requested))
        self._cond = threading.Condition()
        self._latest: CapturedFrame | None = None
        self._taken = True
        self._seq = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: Reader | None = None
        self.captured = 0
        self.dropped = 0
        self.loops = 0
        self.size: tuple[int, int] = (width, height)
        self.fps = fps
        self.end_reason: str | None = None
        self.lost = False

    # -- control ---------------------------------------------------------
    def open(self) -> CaptureThread:
        """Open the source now (raises VbgError: not found, busy); ``start`` does it if needed."""
        if self._reader is None:
            reader = self._opener()
            self._reader = reader
            self.size, self.fps = reader.size, reader.fps
        return self

    def start(self) -> CaptureThread:
        if self.running:
            return self
        self.open()
        reader = self._reader
        assert reader is not None
        with self._cond:
            self._latest, self._taken = None, True
            self.end_reason, self.lost = None, False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(reader,), name=f"vbg-capture-{self.source}",
                                        daemon=True)
        self._thread.start()
        log.debug("capture %s started: %dx%d @ %.1f fps", self.source, *self.size, self.fps)
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            if t.is_alive():  # stuck in a read: it closes the reader itself when the read returns
                log.warning("capture thread for %s did not stop within %.1f s", self.source, timeout)
                return  # keep _thread, so a second stop() cannot take this for "never started"
        elif t is None and self._reader is not None:  # opened, never started
            self._reader.close()
            self._reader = None
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def ended(self) -> bool:
        """True once frames stopped for a reason other than ``stop()``."""
        return self.end_reason is not None

    def __enter__(self) -> CaptureThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- consumer side -----------------------------------------------------
    def wait_next(self, after_seq: int = -1, timeout: float | None = None) -> CapturedFrame | None:
        """The newest frame with ``seq > after_seq``; None on timeout, stop or end."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        with self._cond:
            while self._latest is None or self._latest.seq <= after_seq:
                if self.ended or self._stop.is_set():
                    return None
                remaining = None if deadline is None else deadline - time.perf_counter()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            self._taken = True
            return self._latest

    # -- producer side -----------------------------------------------------
    def _publish(self, image: np.ndarray) -> None:
        t = time.perf_counter()
        with self._cond:
            if not self._taken:
                self.dropped += 1
            self._seq += 1
            self._latest = CapturedFrame(image, self._seq, t)
            self._taken = False
            self.captured += 1
            self._cond.notify_all()

    def _end(self, reason: str, lost: bool = False) -> None:
        with self._cond:
            self.end_reason, self.lost = reason, lost
            self._cond.notify_all()
        (log.warning if lost else log.info)("capture %s ended: %s", self.source, reason)

    def _read(self, reader: Reader) -> tuple[np.ndarray, float | None] | None:
        """The next frame; None after rewinding a looped file; ends the session on failure."""
        try:
            try:
                return reader.read()
            except EndOfStream:
                if not self.loop:
                    self._end("end of file")
                    return None
                reader.rewind()  # VbgError if the file is gone
                self.loops += 1
                return None
        except SourceLost as exc:
            self._end(str(exc), lost=True)
        except VbgError as exc:
            self._end(exc.line(), lost=True)
        except Exception as exc:  # any other reader failure also ends the session, clearly
            log.debug("capture read failed", exc_info=True)
            self._end(f"capture from {self.source} failed: {exc}", lost=True)
        return None

    def _run(self, reader: Reader) -> None:
        base: float | None = None  # perf_counter time of timestamp 0, for paced readers
        period = 1.0 / max(1.0, reader.fps)
        last_pts = 0.0
        try:
            while not self._stop.is_set():
                got = self._read(reader)
                if self.ended:
                    return
                if got is None:  # rewound: the next loop's timestamps restart at 0
                    base = None if base is None else base + last_pts + period  # keep the rhythm
                    continue
                image, pts = got
                if reader.paced:
                    pts = last_pts + period if pts is None else pts
                    last_pts = pts
                    now = time.perf_counter()
                    if base is None:
                        base = now - pts
                    delay = base + pts - now
                    if delay > 0:
                        if self._stop.wait(delay):
                            return
                    elif delay < -0.25:
                        base = now - pts  # fell far behind (busy machine): resync, don't burst
                if self.mirror:
                    image = cv2.flip(image, 1)
                self._publish(image)
        finally:
            reader.close()
            self._reader = None  # a restart reopens the source
