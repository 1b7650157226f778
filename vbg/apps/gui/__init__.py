"""``vbg gui``: the tuning window (``app``), and the ``vbg live`` preview (``preview``).

This module is the command: its options need no PySide6, so ``vbg gui
--help`` works on a base install; the window is imported when it opens.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ...config import add_setting_arguments, settings_from_args
from ...errors import VbgError
from ...paths import config_path
from ...settings import Settings
from ..live import has_display, has_qt


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("The tuning window: a live preview beside the sliders and pickers. Settings are restored "
                     f"from and saved to --config (default {config_path()}); the options below override them "
                     "at start.")
    add_setting_arguments(p, "gui")
    p.add_argument("--screenshot", type=Path, metavar="PNG",
                   help="save a picture of the window once frames show, then quit (for docs)")


def run(args: argparse.Namespace) -> int:
    if not has_qt():
        raise VbgError("'vbg gui' needs PySide6, which is not installed", 'pip install "vbg[gui]"')
    if not has_display() and not os.environ.get("QT_QPA_PLATFORM"):  # a chosen Qt platform (offscreen) is fine
        raise VbgError("'vbg gui' needs a display, and there is none (no DISPLAY or WAYLAND_DISPLAY)",
                       "run it in a desktop session, or use 'vbg live --no-window'")
    config = Path(args.config).expanduser() if args.config else config_path()
    note = None
    if not config.is_file():  # nothing saved yet: the window will save its settings there
        settings = settings_from_args(args, "gui", base=Settings())
    else:
        try:
            settings = settings_from_args(args, "gui")
        except VbgError as exc:
            if args.config:
                raise
            # the saved file is unusable: start from the defaults (and the flags), and say so in the window
            note = f"ignored saved settings: {exc.what} (the file is kept as {config.name}.bad when the window saves)"
            settings = settings_from_args(args, "gui", base=Settings())
    from .app import open_window  # PySide6: only once the window is wanted

    return open_window(settings, config=config, note=note, screenshot=args.screenshot,
                       config_unusable=note is not None)
