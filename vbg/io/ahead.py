"""``Ahead``: a generator run in its own thread, a bounded number of items ahead of its consumer.

The batch converter's decoder (``io.decode.VideoDecoder``), its model stage
(``apps.batch``) and the looping video background (``stages.backgrounds``) work this way: the producer fills a bounded queue (which
bounds memory), the consumer iterates, an error in the producer is raised in
the consumer, and ``close`` stops the producer even when the consumer gives up
half way (errors, Ctrl-C).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()


@dataclass
class _Failure:
    exc: BaseException


class Ahead(Generic[T]):
    """Iterate ``items`` in a thread named ``name``, at most ``size`` items ahead of the caller.

    The thread starts on the first iteration. ``stop`` is set by ``close``; a
    producer that can spend a while between items (skipping packets, say) may
    check it too. ``close`` waits for the item being made, then for the thread
    (at most ``timeout`` seconds, if given: the thread is a daemon). ``wait``:
    the longest the consumer waits for one item before ``TimeoutError`` (a
    stalled producer); ``None`` waits for ever.
    """

    def __init__(self, items: Iterator[T], *, size: int, name: str, stop: threading.Event | None = None,
                 wait: float | None = None) -> None:
        self._items = items
        self._name = name
        self._wait = wait
        self._q: queue.Queue[object] = queue.Queue(maxsize=max(1, size))
        self.stop = stop if stop is not None else threading.Event()
        self._thread: threading.Thread | None = None

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_Failure(exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:  # a generator stopped half way releases what it holds (files) here
                close()

    def __iter__(self) -> Iterator[T]:
        if self._thread is None:
            t = threading.Thread(target=self._run, name=self._name, daemon=True)
            # kept only once started: a signal landing inside start() leaves nothing for close() to join
            # (join() refuses a thread that has not said it started); one that did launch ends at its
            # next item, since close() sets stop
            t.start()
            self._thread = t
        while True:
            try:
                item = self._q.get(timeout=self._wait)
            except queue.Empty:
                raise TimeoutError(f"no item from {self._name} in {self._wait:g} s") from None
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]

    def close(self, timeout: float | None = None) -> None:
        self.stop.set()
        if self._thread is not None:
            end = None if timeout is None else time.monotonic() + timeout
            while self._thread.is_alive() and (end is None or time.monotonic() < end):
                with contextlib.suppress(queue.Empty):  # unblock a put
                    self._q.get(timeout=0.05)
            self._thread.join(None if end is None else max(0.0, end - time.monotonic()))
