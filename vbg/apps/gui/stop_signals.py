"""Ctrl-C, SIGTERM and SIGHUP while a Qt window runs: they close the window.

Python runs a signal handler only between bytecodes, and an exception raised
inside a Qt slot is printed and dropped by PySide; so the handler closes the
window (ending ``exec()``) and a timer tick lets Python in while Qt waits.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget


@contextlib.contextmanager
def closing_on_signals(win: QWidget) -> Iterator[list[int]]:
    """While inside, SIGINT, SIGTERM and SIGHUP close ``win``; yields the list of the signals caught."""
    caught: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        caught.append(signum)
        win.close()

    stop = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    old = {sig: signal.signal(sig, on_signal) for sig in stop}
    tick = QTimer()
    tick.timeout.connect(lambda: None)
    tick.start(200)
    try:
        yield caught
    finally:
        tick.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
