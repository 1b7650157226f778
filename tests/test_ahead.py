"""io.ahead.Ahead: the producer thread behind a bounded queue (the decoder and the batch model stage)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from vbg.io import ahead as ahead_mod
from vbg.io.ahead import Ahead


def _count(n: int, made: list[int]) -> Iterator[int]:
    for i in range(n):
        made.append(i)
        yield i


def test_items_in_order_and_bounded_ahead() -> None:
    made: list[int] = []
    a = Ahead(_count(100, made), size=2, name="t-ahead")
    it = iter(a)
    assert next(it) == 0
    time.sleep(0.2)
    assert len(made) <= 1 + 2 + 1  # the one taken, the queue, and one waiting to be put
    assert [0, *it] == list(range(100))
    a.close()


def test_a_producer_error_reaches_the_consumer_and_close_ends_the_thread() -> None:
    def bad() -> Iterator[int]:
        yield 1
        raise ValueError("broken input")

    a = Ahead(bad(), size=1, name="t-ahead-bad")
    with pytest.raises(ValueError, match="broken input"):
        list(a)
    a.close()
    assert not any(t.name == "t-ahead-bad" for t in threading.enumerate())


@pytest.mark.parametrize("launched", [False, True])
def test_a_signal_inside_thread_start_leaves_close_working(monkeypatch: pytest.MonkeyPatch, launched: bool) -> None:
    # CI hit this: SIGTERM landed while Thread.start() waited for the new thread, and close() then
    # raised "cannot join thread before it is started" instead of cleaning up
    class Interrupted(threading.Thread):
        def start(self) -> None:
            if launched:
                super().start()
            raise KeyboardInterrupt

    monkeypatch.setattr(ahead_mod.threading, "Thread", Interrupted)
    made: list[int] = []
    a = Ahead(_count(10_000, made), size=1, name="t-ahead-sig")
    with pytest.raises(KeyboardInterrupt):
        next(iter(a))
    a.close()  # no RuntimeError
    monkeypatch.undo()
    deadline = time.monotonic() + 2
    while any(t.name == "t-ahead-sig" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.name == "t-ahead-sig" for t in threading.enumerate())  # a launched producer stops too
    assert len(made) < 10  # it stopped at once, not after making everything


def test_a_stalled_producer_is_a_timeout_and_close_gives_up_when_asked() -> None:
    def stalled() -> Iterator[int]:
        yield 1
        time.sleep(3)  # a decoder stuck on a file
        yield 2

    a = Ahead(stalled(), size=1, name="t-ahead-stall", wait=0.3)
    it = iter(a)
    assert next(it) == 1
    with pytest.raises(TimeoutError, match="t-ahead-stall"):
        next(it)
    t0 = time.monotonic()
    a.close(timeout=0.5)
    assert time.monotonic() - t0 < 1.5  # bounded, though the producer is still inside its sleep


def test_a_producer_stopped_half_way_releases_what_it_holds() -> None:
    released = threading.Event()

    def holding() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            released.set()  # a `with` around a file, say

    a = Ahead(holding(), size=1, name="t-ahead-hold")
    assert next(iter(a)) == 0
    a.close()
    assert released.is_set()
