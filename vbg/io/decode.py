"""Video decoding with PyAV: the one place video files are read.

* ``VideoFrames``: a file's frames in order, upright, with their times. The
  camera file reader (a file standing in for a webcam) and video
  backgrounds use it.
* ``VideoDecoder``: the batch converter's reader, decoding ahead in a thread,
  with audio packets and timestamps for the encoder.

Both apply the display rotation (phone videos) through :func:`upright`.

``VideoDecoder(path)`` opens the file, decodes the first frame at once (so a
corrupt file or a video without frames fails before any output exists),
then a thread decodes ahead into a bounded queue while the caller processes.
Iterating yields, in file order:

* ``DecodedFrame``: upright BGR pixels plus the frame's own timestamp
  (``pts`` in ``info.time_base``), so variable frame rates survive;
* ``av.Packet``: audio and subtitle packets of every such track, untouched,
  for the encoder to copy or re-encode.

Rotation metadata (a display matrix, e.g. from phones) is applied to the
pixels here: the model then sees people upright, and the output needs no
rotation flag to show correctly in every player.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from av.codec.hwaccel import HWAccel

from ..errors import VbgError
from .ahead import Ahead

log = logging.getLogger(__name__)

# counter-clockwise display rotation -> the cv2.rotate code that makes frames upright
_ROTATE = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int  # as displayed, i.e. after rotation
    height: int
    rotation: int  # 0, 90, 180 or 270: counter-clockwise turn applied to stored frames
    rate: Fraction | None  # average frame rate, None when unknown
    time_base: Fraction  # unit of DecodedFrame.pts
    frames: int  # expected frame count, 0 when unknown
    duration: float | None  # seconds
    sample_aspect_ratio: Fraction | None
    color_primaries: int
    color_trc: int
    audio_codec: str | None
    frames_listed: bool = True  # ``frames`` is the container's count, not duration x rate (VFR: a guess)


@dataclass(frozen=True)
class DecodedFrame:
    image: np.ndarray  # BGR uint8 (H, W, 3), upright
    pts: int  # presentation time in VideoInfo.time_base, strictly increasing
    index: int
    decode_ms: float  # decode + colour conversion + rotation for this frame


def open_error(path: Path, exc: BaseException) -> VbgError:
    """Map an exception from opening/reading an input to a one-line error."""
    if isinstance(exc, FileNotFoundError) or not path.exists():
        return VbgError(f"input {path} not found", "check the path")
    if isinstance(exc, PermissionError):
        return VbgError(f"cannot read input {path}: permission denied", "check the file's permissions")
    if isinstance(exc, IsADirectoryError):
        return VbgError(f"input {path} is a folder", "give a video or image file, or a folder of images")
    return VbgError(f"cannot read {path}: not a video, or the file is corrupt",
                    "check that it plays in a video player")


def _normalise_rotation(deg: float) -> int:
    r = int(round(deg / 90.0)) * 90 % 360
    if abs(((deg % 360) - r + 180) % 360 - 180) > 1:
        log.warning("display rotation of %.1f degrees is not a multiple of 90; ignored", deg)
        return 0
    return r


def rotation_of(frame: Any) -> int:
    """The counter-clockwise display rotation of a decoded PyAV frame: 0, 90, 180 or 270."""
    return _normalise_rotation(getattr(frame, "rotation", 0) or 0)


def upright(frame: Any, rotation: int) -> np.ndarray:
    """A decoded PyAV frame as BGR pixels, turned by its display ``rotation``."""
    img = frame.to_ndarray(format="bgr24")
    return cv2.rotate(img, _ROTATE[rotation]) if rotation else img


class VideoFrames:
    """A video file's frames in order: ``read()`` -> (BGR upright, time in seconds or None).

    Opens the file and decodes the first frame at once, so a missing or
    unreadable file fails here with a one-line ``VbgError``, and ``size``
    is the upright size. ``read`` raises ``StopIteration`` at the end, and
    lets PyAV's errors through (the caller knows what they mean to it).
    """

    def __init__(self, path: str | Path, *, what: str = "video") -> None:
        self.path = Path(path)
        try:
            self._container = av.open(str(self.path), metadata_errors="ignore")
        except (OSError, av.FFmpegError, ValueError) as exc:
            err = open_error(self.path, exc)
            raise VbgError(err.what.replace("input", what, 1), err.fix) from None
        try:
            if not self._container.streams.video:
                raise VbgError(f"{what} {self.path} has no video stream", "give a video file")
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threads: 720p decodes well under a frame time
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else 30.0
            self._frames = self._container.decode(stream)
            try:
                first = next(self._frames)
            except StopIteration:
                raise VbgError(f"{what} {self.path} has no frames", "give a video that plays") from None
            except (av.FFmpegError, OSError):
                raise VbgError(f"cannot read {what} {self.path}: not a video, or the file is corrupt",
                               "check that it plays in a video player") from None
            self.rotation = rotation_of(first)
            self._head: tuple[np.ndarray, float | None] | None = (upright(first, self.rotation), first.time)
            h, w = self._head[0].shape[:2]
            self.size = (w, h)
        except BaseException:
            self._container.close()
            raise

    def read(self) -> tuple[np.ndarray, float | None]:
        if self._head is not None:
            item, self._head = self._head, None
            return item
        frame = next(self._frames)
        return upright(frame, self.rotation), frame.time

    def __iter__(self) -> Iterator[tuple[np.ndarray, float | None]]:
        while True:
            try:
                yield self.read()
            except StopIteration:
                return

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoDecoder:
    """Decode a video file ahead of the caller, in a thread.

    Use as a context manager (or call ``close``); closing stops the thread
    even when the caller gives up half way (errors, Ctrl-C).
    """

    def __init__(self, path: str | Path, *, queue_size: int = 8, audio: bool = True, subtitles: bool = True,
                 nvdec: bool = False) -> None:
        self.path = Path(path)
        self.bad_packets = 0
        self.first_pts: int | None = None  # of the first and the newest frame decoded (VideoInfo.time_base)
        self.last_pts: int | None = None
        self.hwaccel = ""  # "cuda" when NVDEC decodes
        self._stop = threading.Event()
        try:
            self._container = self._open(nvdec)
        except (OSError, av.FFmpegError, ValueError) as exc:
            raise open_error(self.path, exc) from None
        try:
            if not self._container.streams.video:
                raise VbgError(f"{self.path} has no video stream", "give a video or an image file")
            self._video = self._container.streams.video[0]
            self._video.thread_type = "AUTO"  # frame + slice threads: decode is rarely the bottleneck then
            c = self._container
            self.audio_streams = list(c.streams.audio) if audio else []
            self.subtitle_streams = list(c.streams.subtitles) if subtitles else []
            self.audio_stream = self.audio_streams[0] if self.audio_streams else None
            # data streams (timecodes, GPS, chapters' tracks): nothing vbg can carry over
            self.dropped_streams = [f"{s.type} #{s.index} ({s.codec_context.name if s.codec_context else '?'})"
                                    for s in c.streams if s.type not in ("video", "audio", "subtitle")]
            self._gen = self._items()
            self._head: list[Any] = []
            first: DecodedFrame | None = None
            for item in self._gen:
                self._head.append(item)
                if isinstance(item, DecodedFrame):
                    first = item
                    break
            if first is None:
                raise VbgError(f"{self.path} has no video frames", "check that it plays in a video player")
            self.info = self._make_info(first)
            self._ahead = Ahead(self._gen, size=queue_size, name="vbg-decode", stop=self._stop)
        except BaseException:
            self._container.close()
            raise

    # -- setup -----------------------------------------------------------
    def _open(self, nvdec: bool) -> Any:
        """The container, decoding on the GPU (NVDEC) when asked and it opens, else in software."""
        if nvdec:
            try:
                c = av.open(str(self.path), metadata_errors="ignore",
                            hwaccel=HWAccel(device_type="cuda", allow_software_fallback=False))
                next(c.decode(video=0))  # only a decoded frame proves the device works
                c.close()
                c = av.open(str(self.path), metadata_errors="ignore",
                            hwaccel=HWAccel(device_type="cuda", allow_software_fallback=True))
                self.hwaccel = "cuda"
                log.info("decoding %s with NVDEC", self.path.name)
                return c
            except Exception as exc:  # no device, no driver, codec not supported: software it is
                log.info("NVDEC unavailable (%s): decoding on the CPU", exc)
        return av.open(str(self.path), metadata_errors="ignore")

    def _make_info(self, first: DecodedFrame) -> VideoInfo:
        v = self._video
        cc = v.codec_context
        rate = v.average_rate or v.guessed_rate or v.base_rate
        rate = Fraction(rate) if rate else None
        duration: float | None = None
        if v.duration and v.time_base:
            duration = float(v.duration * v.time_base)
        elif self._container.duration:
            duration = self._container.duration / 1_000_000
        frames = int(v.frames or 0)
        listed = frames > 0
        if not frames and duration and rate:
            frames = int(round(duration * rate))
        h, w = first.image.shape[:2]
        sar = v.sample_aspect_ratio or cc.sample_aspect_ratio
        return VideoInfo(
            path=self.path, width=w, height=h, rotation=self._rotation, rate=rate,
            time_base=self._time_base, frames=frames, duration=duration,
            sample_aspect_ratio=Fraction(sar) if sar else None,
            color_primaries=int(getattr(cc, "color_primaries", 2) or 2),
            color_trc=int(getattr(cc, "color_trc", 2) or 2),
            audio_codec=self.audio_stream.codec_context.name if self.audio_stream is not None else None,
            frames_listed=listed,
        )

    # -- the decoding generator (runs in the thread after the first frame) --
    def _items(self) -> Iterator[Any]:
        v = self._video
        streams = [v] + self.audio_streams + self.subtitle_streams
        self._time_base = Fraction(v.time_base) if v.time_base else Fraction(1, 1000)
        self._rotation = 0
        rate = v.average_rate or v.guessed_rate
        step = max(1, round(1 / (rate * self._time_base))) if rate else 1
        index, last_pts = 0, None
        size: tuple[int, ...] | None = None
        resized = False
        t0 = time.perf_counter()
        try:
            for packet in self._container.demux(streams):
                if self._stop.is_set():
                    return
                if packet.stream.type != "video":
                    if packet.size:
                        yield packet
                        t0 = time.perf_counter()
                    continue
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:  # damaged packet: skip it, like players do
                    self.bad_packets += 1
                    # the first one says so; the count comes at the end (one line, not one per packet)
                    (log.warning if self.bad_packets == 1 else log.debug)(
                        "%s: skipping a damaged video packet (%s)", self.path.name, exc)
                    continue
                for f in frames:
                    if index == 0:
                        self._rotation = rotation_of(f)
                    img = upright(f, self._rotation)
                    if size is None:
                        size = img.shape[:2]
                    elif img.shape[:2] != size:  # resolution changed mid-stream: scale to the first, like players
                        if not resized:
                            log.warning("%s: the frame size changes at frame %d (%dx%d); scaling to the first "
                                        "frame's %dx%d", self.path.name, index, img.shape[1], img.shape[0],
                                        size[1], size[0])
                        resized = True
                        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                    pts = f.pts
                    if pts is None:
                        pts = index * step if last_pts is None else last_pts + step
                    if last_pts is not None and pts <= last_pts:  # broken timestamps: keep order
                        pts = last_pts + 1
                    last_pts = self.last_pts = pts
                    if self.first_pts is None:
                        self.first_pts = pts
                    item = DecodedFrame(img, int(pts), index, (time.perf_counter() - t0) * 1e3)
                    index += 1
                    yield item
                    t0 = time.perf_counter()
        except av.FFmpegError as exc:
            if index == 0:
                raise open_error(self.path, exc) from None
            log.warning("%s: stopped reading after %d frames: %s", self.path.name, index, exc)

    def __iter__(self) -> Iterator[DecodedFrame | Any]:
        """Yield DecodedFrame and audio av.Packet items in file order."""
        head, self._head = self._head, []
        yield from head
        yield from self._ahead

    def close(self) -> None:
        self._ahead.close()
        self._container.close()

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
