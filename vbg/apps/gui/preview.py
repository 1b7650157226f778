"""The simple preview window of ``vbg live``: the result, nothing to tune.

Closing the window (or Esc / Q) ends the session; the session ending closes
the window. For tuning, use ``vbg gui``.
"""

from __future__ import annotations

import signal
import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent, QPixmap
from PySide6.QtWidgets import QApplication, QLabel

from ...loop import LiveLoop
from ..cli import Terminated
from .bridge import FrameBridge
from .stop_signals import closing_on_signals


class PreviewWindow(QLabel):
    def __init__(self, loop: LiveLoop) -> None:
        super().__init__("waiting for frames…")
        self.loop = loop
        self.setWindowTitle("vbg live — close to stop")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(320, 180)
        self.bridge = FrameBridge("result")
        w, h = loop.frame_size
        self.bridge.target_size = (min(w, 960), min(h, 540))
        self.resize(*self.bridge.target_size)
        q = Qt.ConnectionType.QueuedConnection
        self.bridge.frame_ready.connect(self._show, q)
        self.bridge.ended.connect(lambda *_: self.close(), q)
        loop.on_end = self.bridge.on_end
        loop.on_delivery = self.bridge.deliver  # read per frame: attaching mid-session is fine
        if loop.wait(0):  # ended before on_end was attached (a short clip, --frames): close at once
            self.bridge.on_end(loop.end_reason or "ended", loop.lost)

    def _show(self) -> None:
        item = self.bridge.take()
        if item is not None:
            pm = QPixmap.fromImage(item[0])
            self.setPixmap(pm.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event: object) -> None:  # noqa: N802 (Qt name)
        self.bridge.target_size = (self.width(), self.height())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt name)
        if event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_Q):
            self.close()


def run_preview(loop: LiveLoop) -> None:
    """Show the result until the window closes or the session ends.

    Ctrl-C, SIGTERM and SIGHUP close the window and are then raised here (``KeyboardInterrupt``,
    ``Terminated``), as without a window: raised inside a Qt slot, PySide would print and drop them.
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = PreviewWindow(loop)
    win.show()
    try:
        with closing_on_signals(win) as caught:
            app.exec()
    finally:
        loop.on_delivery = None
    if caught:
        raise KeyboardInterrupt() if caught[0] == signal.SIGINT else Terminated(caught[0])
