"""Sinks: where processed frames go (video files, PNG sequences, the virtual camera).

``base`` holds the one protocol (``write``, ``close``, ``abort``, ``watched``)
and the registry keyed by extension or URL scheme; each sink module
registers itself there. A new sink is one module plus one ``register_sink``
line, and ``vbg --output`` can write to it.
"""

from __future__ import annotations

from . import images, video  # noqa: F401 (they register their kinds)
from .base import AudioSink, Sink, SinkContext, SinkKind, SinkThread, open_sink, register_sink, render, sink_kind

__all__ = ["AudioSink", "Sink", "SinkContext", "SinkKind", "SinkThread", "open_sink", "register_sink", "render",
           "sink_kind"]
