"""The one way in for settings: defaults < config file < command-line flags.

Every command (``vbg`` convert, ``live``, ``gui``) declares its setting
flags with :func:`add_setting_arguments` from the one table ``FLAGS`` and
turns them into ``Settings`` with :func:`settings_from_args`. The config
file is ``--config FILE``, else the user's ``config.toml`` (what ``vbg gui``
saves) when it exists, read the same way by every command. Values are
parsed here with one-line errors (not argparse's usage dump), and
validated once by ``Settings``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import VbgError
from .io.files import check_file
from .paths import config_path
from .settings import BACKENDS, OUTPUT_MODES, VIEWS, Settings

COMMANDS = ("convert", "live", "gui")
ALL = frozenset(COMMANDS)
LIVE = frozenset({"live", "gui"})


@dataclass(frozen=True)
class Flag:
    setting: str  # the Settings field
    flag: str
    kind: str  # "float" | "int" | "str" | "bool" | "size"
    metavar: str | None
    help: str
    commands: frozenset[str] = ALL
    group: str = "matte"


FLAGS: tuple[Flag, ...] = (
    Flag("model", "--model", "str", "NAME", "model name (see 'vbg models') or a spec .json path", group="model"),
    Flag("backend", "--backend", "str", "NAME", f"inference: {', '.join(BACKENDS)} (auto)", group="model"),
    Flag("model_every", "--model-every", "str", "N|auto",
         "run the model every N frames, or auto: when the picture changes, at least twice a second (auto)",
         group="model"),
    Flag("threshold", "--threshold", "float", "0..1", "person/background cut-off (0.5)"),
    Flag("slope", "--slope", "float", "1..100", "edge hardness: 1 soft, 100 hard cut (10)"),
    Flag("feather", "--feather", "float", "PX", "edge feathering in pixels, 0..50 (2)"),
    Flag("smoothing", "--smoothing", "float", "0..1", "temporal smoothing, 0 = off (0.5)"),
    Flag("light_wrap", "--light-wrap", "float", "0..1", "background light spilling over the edges (0)"),
    Flag("bg", "--bg", "str", "BG", "background: IMAGE, VIDEO (looped), a bundled name (beach, office, "
         "bookshelf), blur:N, color:#RRGGBB, or none (blur:25)", group="background"),
    Flag("frame", "--frame", "str", "off|auto",
         "auto-framing: auto crops and scales to keep the person centred (off)", group="background"),
    Flag("output_mode", "--output-mode", "str", "MODE",
         f"one of {', '.join(OUTPUT_MODES)}: alpha writes transparency (.webm VP9, .mov ProRes 4444, or PNGs); "
         "mask writes the matte in grey; green composites over chroma green", frozenset({"convert"}), "output"),
    Flag("quality", "--quality", "int", "CRF",
         "H.264 CRF 0..51, lower is better and bigger (20); VP9 is scaled to match", frozenset({"convert"}), "output"),
    Flag("camera", "--camera", "str", "CAM",
         "camera index (0, 1, ...), device path (/dev/video2) or a video file standing in for one", LIVE, "camera"),
    Flag("width", "--size", "size", "WxH", "camera resolution to ask for (1280x720)", LIVE, "camera"),
    Flag("fps", "--fps", "float", "FPS", "camera frame rate to ask for (30)", LIVE, "camera"),
    Flag("max_fps", "--max-fps", "float", "FPS", "process at most this many frames a second, 0 = all (0)", LIVE,
         "camera"),
    Flag("mirror", "--mirror", "bool", None, "flip left-right", LIVE, "camera"),
    Flag("view", "--view", "str", "VIEW", f"preview: {', '.join(VIEWS)} (result)", frozenset({"gui"}), "camera"),
)

GROUPS = {"model": "model", "matte": "matte (edges)", "background": "background", "output": "output",
          "camera": "camera"}


def add_setting_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The setting flags ``command`` takes, and ``--config``."""
    groups: dict[str, Any] = {}
    for f in FLAGS:
        if command not in f.commands:
            continue
        g = groups.get(f.group) or groups.setdefault(f.group, parser.add_argument_group(GROUPS[f.group]))
        dest = f.flag[2:].replace("-", "_")
        if f.kind == "bool":
            g.add_argument(f.flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=f.help)
        else:
            g.add_argument(f.flag, dest=dest, metavar=f.metavar, help=f.help)
    parser.add_argument("--config", metavar="FILE.toml",
                        help=f"settings file ([vbg] table); default {config_path()} when it exists. "
                             "Flags override it")


def _parse(f: Flag, raw: Any) -> dict[str, Any]:
    if f.kind == "bool":
        return {f.setting: bool(raw)}
    text = str(raw).strip()
    try:
        if f.kind == "float":
            return {f.setting: float(text)}
        if f.kind == "int":
            return {f.setting: int(text)}
        if f.kind == "size":
            w, _, h = text.lower().partition("x")
            return {"width": int(w), "height": int(h)}
    except ValueError:
        example = {"float": "0.5", "int": "20", "size": "1280x720"}[f.kind]
        what = {"float": "a number", "int": "a whole number", "size": "WIDTHxHEIGHT"}[f.kind]
        raise VbgError(f"{f.flag} expects {what}, got {text!r}", f"e.g. {f.flag} {example}") from None
    return {f.setting: text}


def load_config(path: str | Path | None, skip: Iterable[str] = ()) -> Settings:
    """Settings from ``path``, or from the user's config when ``path`` is None and it exists; else defaults.

    ``skip``: settings the flags give, left out of the file unchecked (a flag mends a bad value there).
    """
    if path is not None:
        p = Path(path).expanduser()
        return Settings.load(check_file(p, "config", "check the --config path"), skip)
    user = config_path()
    if not user.is_file():
        return Settings()
    try:
        return Settings.load(user, skip)
    except VbgError as exc:  # read by every command: say how to get past it
        raise VbgError(exc.what, f"{exc.fix}. Or delete {user}, or read another file with --config FILE") from None


def settings_from_args(args: argparse.Namespace, command: str, base: Settings | None = None,
                       extra: dict[str, Any] | None = None) -> Settings:
    """Defaults < config file < the flags given; validated once by ``Settings``.

    ``base``: start from these settings instead of the config file. ``extra``:
    settings a command's own flags give (``--no-virtual-cam``), applied as flags are.
    """
    changes: dict[str, Any] = dict(extra or {})
    for f in FLAGS:
        if command not in f.commands:
            continue
        raw = getattr(args, f.flag[2:].replace("-", "_"), None)
        if raw is not None:
            changes.update(_parse(f, raw))
    if base is None:
        base = load_config(getattr(args, "config", None), skip=changes)
    return base.replace(**changes) if changes else base


__all__ = ["FLAGS", "add_setting_arguments", "load_config", "settings_from_args"]
