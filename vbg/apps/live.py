"""``vbg live``: webcam -> background replacement -> virtual camera, with a preview window.

Settings come from the config file (``--config``, else what ``vbg gui``
saves) and then the flags, as for every command (``vbg.config``). The
preview window needs PySide6 (``vbg[gui]``); without it, or without a
display, ``vbg live`` runs without a window and says so in one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys

from ..config import add_setting_arguments, settings_from_args
from ..errors import VbgError
from ..loop import LiveLoop
from ..sinks.vcam import VirtualCamSink
from .cli import Terminated, say

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Webcam (or a video file standing in for one) -> background replacement -> "
                     "virtual camera, with a preview window. Settings come from --config (default: the file "
                     "'vbg gui' saves), then these options.")
    add_setting_arguments(p, "live")
    p.add_argument("--no-virtual-cam", action="store_true", help="run without a virtual camera device")
    p.add_argument("--device", help="virtual camera device (default: the first free one)")
    p.add_argument("--no-window", action="store_true", help="no preview window")
    p.add_argument("--frames", type=int, help="stop after N frames")
    p.add_argument("--loop", action="store_true", help="loop a video file used as the camera")
    p.add_argument("--always-process", action="store_true",
                   help="keep processing while no application reads the virtual camera (default: pause, "
                        "when there is no preview window)")


def has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def has_qt() -> bool:
    """PySide6 is installed (without importing it: Qt is heavy)."""
    if "PySide6" in sys.modules:
        return sys.modules["PySide6"] is not None
    try:
        return importlib.util.find_spec("PySide6") is not None
    except (ImportError, ValueError):
        return False


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, "live", extra={"virtual_cam": False} if args.no_virtual_cam else None)
    if args.frames is not None and args.frames < 1:
        raise VbgError(f"--frames {args.frames} must be at least 1", "pass a positive count")
    window = not args.no_window and has_display()
    if window and not has_qt():
        print('vbg: no preview window: PySide6 is not installed (pip install "vbg[gui]"); running without one',
              file=sys.stderr)
        window = False
    loop = LiveLoop(settings, loop_file=args.loop, max_frames=args.frames,
                    pause_unwatched=not window and not args.always_process)
    vcam = None
    stopped_by: KeyboardInterrupt | None = None
    try:
        loop.open()
        if settings.virtual_cam:
            w, h = loop.frame_size
            vcam = VirtualCamSink(w, h, loop.source_fps, device=args.device, watch_readers=loop.pause_unwatched)
            loop.add_sink(vcam)
            log.warning("sending to virtual camera %s (%dx%d); select it in your video app", vcam.device, w, h)
        if not args.no_window and not has_display():
            log.warning("no display: running without a preview window (--no-window: no such note)")
        log.info("backend: %s", loop.backend_name)
        loop.start()
        if window:
            from .gui.preview import run_preview  # PySide6: only when a window is wanted

            run_preview(loop)
        else:
            while not loop.wait(0.2):  # short waits keep Ctrl-C responsive
                pass
    except KeyboardInterrupt as exc:  # Ctrl-C is how a live session normally ends
        stopped_by = exc
    finally:
        loop.stop()
        if vcam is not None:
            vcam.close()
    stats = loop.stats()
    say(stats.summary_line())
    if isinstance(stopped_by, Terminated):
        raise stopped_by  # SIGTERM / SIGHUP: the command says so and exits 143 / 129
    log.info("%d frames, %d captured, %d dropped, %d paused; %s", stats.frames, stats.captured, stats.dropped,
             stats.paused, loop.end_reason)
    if loop.lost:
        raise VbgError(f"live session ended: {loop.end_reason}",
                       "check the camera connection and run again")
    if stats.frames == 0 and stats.captured == 0:
        raise VbgError("the camera delivered no frames", "check the camera, or the video file given as --camera")
    return 0
