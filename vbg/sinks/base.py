"""The sink protocol, the registry of sink kinds, and the helpers every sink shares.

A sink takes the pipeline's ``Output`` for each frame (``write``), then is
either finished (``close``: flush, write the index) or given up (``abort``:
no complete output). ``watched`` is False only when it is known that nobody
consumes the frames (a virtual camera no application has open), so live
processing can pause. ``render`` picks the pixels an output mode writes.
``SinkThread`` runs a sink behind a bounded queue so writing overlaps inference.

Kinds are registered by extension (``.mp4``) or URL scheme (``rtmp:``):
``sink_kind(target)`` finds one, and says whether the target is a file
(written under a temporary name, renamed when complete), a folder (the
same, for a folder) or a stream (written in place: devices, URLs).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from ..errors import VbgError
from ..outputs import Output

log = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    watched: bool

    def write(self, out: Output, pts: int | None = None) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@runtime_checkable
class AudioSink(Sink, Protocol):
    """A sink that also muxes the input's audio packets, in file order."""

    def write_audio(self, packet: Any) -> None: ...


@dataclass(frozen=True)
class SinkContext:
    """What a sink may need to open: the output mode and the input's video properties."""

    mode: str = "composite"
    width: int = 0
    height: int = 0
    rate: Fraction | None = None
    time_base: Fraction = Fraction(1, 30)
    quality: int = 20
    preset: str = "superfast"
    sample_aspect_ratio: Fraction | None = None
    color_primaries: int = 2
    color_trc: int = 2
    audio_in: Any = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SinkKind:
    name: str
    open: Callable[[Path, SinkContext], Sink]
    output: str  # "file" | "folder" | "stream": how batch makes it safe (see the module docstring)
    check: Callable[[Path, str], None] | None = None  # refuse a target / output mode pair before any work


_KINDS: dict[str, SinkKind] = {}


def register_sink(keys: tuple[str, ...], kind: SinkKind) -> None:
    """Register ``kind`` under extensions (``.mp4``) or URL schemes (``rtmp:``)."""
    for k in keys:
        _KINDS[k.lower()] = kind


def sink_kind(target: str | Path) -> SinkKind | None:
    """The kind for an output: by URL scheme, then by extension, else None."""
    text = str(target)
    scheme, sep, _ = text.partition(":")
    if sep and len(scheme) > 1 and scheme.isalnum() and f"{scheme.lower()}:" in _KINDS:  # not C:\
        return _KINDS[f"{scheme.lower()}:"]
    return _KINDS.get(Path(text).suffix.lower())


def open_sink(target: str | Path, ctx: SinkContext) -> Sink:
    kind = sink_kind(target)
    if kind is None:
        raise VbgError(f"no sink writes {target}", f"use one of {', '.join(sorted(_KINDS))}")
    return kind.open(Path(target), ctx)


def alpha_to_u8(alpha: np.ndarray) -> np.ndarray:
    """float32 [0, 1] (H, W) -> uint8 (H, W), rounded."""
    return cv2.convertScaleAbs(alpha, alpha=255.0)


def render(out: Output, mode: str) -> np.ndarray:
    """The pixels an output mode writes for one pipeline ``Output``.

    ``mask``: 8-bit grey alpha (H, W). ``alpha``: BGRA (H, W, 4).
    ``composite`` / ``green``: BGR (H, W, 3).
    """
    if mode == "mask":
        return alpha_to_u8(out.alpha)
    frame = out.frame
    if mode == "alpha" and frame.shape[2] == 3:  # composited elsewhere: attach the matte
        return np.dstack([frame, alpha_to_u8(out.alpha)])
    return frame


_DONE = object()


class SinkThread:
    """Runs ``write(*args)`` calls of a sink in a thread behind a bounded queue.

    ``submit`` blocks while the queue is full (this bounds memory) and
    re-raises an error from the thread. ``finish`` drains the queue, calls
    ``close_fn`` in the thread and re-raises any error; ``abort`` stops
    without draining and calls ``abort_fn``. Per-call milliseconds of frame
    writes are kept (the newest ``keep``) for the stage timings.
    """

    def __init__(self, close_fn: Callable[[], None], abort_fn: Callable[[], None], *,
                 maxsize: int = 8, name: str = "vbg-encode", keep: int = 4096) -> None:
        self._close_fn = close_fn
        self._abort_fn = abort_fn
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, maxsize))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.frame_ms: deque[float] = deque(maxlen=keep)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    item = self._q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _DONE:
                    self._close_fn()
                    return
                fn, args, timed = item
                t0 = time.perf_counter()
                fn(*args)
                if timed:
                    self.frame_ms.append((time.perf_counter() - t0) * 1e3)
        except BaseException as exc:  # re-raised in the caller's thread
            self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, fn: Callable[..., None], *args: Any, timed: bool = True) -> None:
        while True:
            self._raise_error()
            if not self._thread.is_alive():
                raise RuntimeError("the writer thread has stopped")
            try:
                self._q.put((fn, args, timed), timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        while self._thread.is_alive():
            self._raise_error()
            try:
                self._q.put(_DONE, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise_error()

    def abort(self) -> None:
        self._stop.set()
        self._thread.join()
        self._abort_fn()
