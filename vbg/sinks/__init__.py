"""Sinks: where processed frames go (virtual camera, files, preview).

File sinks (``video``, ``images``) take the pipeline's ``Output`` and an
output mode; ``render`` picks the pixels each mode writes. ``SinkThread``
runs a file sink behind a bounded queue so encoding overlaps inference.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)


def alpha_to_u8(alpha: np.ndarray) -> np.ndarray:
    """float32 [0, 1] (H, W) -> uint8 (H, W), rounded."""
    return cv2.convertScaleAbs(alpha, alpha=255.0)


def render(out: Any, mode: str) -> np.ndarray:
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
