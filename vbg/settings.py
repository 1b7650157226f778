"""One settings model for the CLI, the GUI and the TOML config file.

``Settings`` is a frozen dataclass validated once, in ``__post_init__``; a
change is ``dataclasses.replace(settings, threshold=0.6)``, which validates
again. Bad values raise ``VbgError`` with a one-line fix.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import VbgError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BACKENDS = ("auto", "onnxruntime", "cuda", "tensorrt")
OUTPUT_MODES = ("composite", "alpha", "mask", "green")
VIEWS = ("result", "original", "mask", "side-by-side")


@dataclass(frozen=True)
class BackgroundSpec:
    """A parsed ``--bg`` value.

    Forms: ``PATH`` (image or video, looped), the name of a bundled
    background (``beach``: see ``vbg.backgrounds.bundled_backgrounds``),
    ``blur`` / ``blur:N``, ``color:#RRGGBB`` (or ``color:R,G,B``), ``none``
    (transparent).
    """

    kind: str  # "image" | "video" | "blur" | "color" | "none"
    path: Path | None = None
    blur: float = 25.0
    color_bgr: tuple[int, int, int] = (0, 177, 0)

    @classmethod
    def parse(cls, text: str) -> BackgroundSpec:
        from .backgrounds import VIDEO_EXTS, bundled_backgrounds  # late: avoids a cycle

        t = text.strip()
        low = t.lower()
        if low in ("none", "transparent", "alpha"):
            return cls("none")
        if low == "blur" or low.startswith("blur:"):
            val = low.partition(":")[2] or "25"
            try:
                strength = float(val)
            except ValueError:
                raise VbgError(f"bad blur strength {val!r} in --bg {t}", "use blur:N, N from 1 to 100") from None
            if not 1 <= strength <= 100:
                raise VbgError(f"blur strength {strength:g} out of range", "use blur:N, N from 1 to 100")
            return cls("blur", blur=strength)
        if low.startswith(("color:", "colour:")):
            return cls("color", color_bgr=parse_color(t.partition(":")[2]))
        p = Path(t).expanduser()
        if not p.suffix and not p.exists() and low in (named := bundled_backgrounds()):
            return cls("image", path=named[low])
        kind = "video" if p.suffix.lower() in VIDEO_EXTS else "image"
        return cls(kind, path=p)

    def __str__(self) -> str:
        if self.kind == "blur":
            return f"blur:{self.blur:g}"
        if self.kind == "color":
            b, g, r = self.color_bgr
            return f"color:#{r:02x}{g:02x}{b:02x}"
        if self.kind == "none":
            return "none"
        return str(self.path)


def parse_color(text: str) -> tuple[int, int, int]:
    """'#00b140', '00b140' or '0,177,64' (RGB) -> (B, G, R)."""
    s = text.strip().lstrip("#")
    try:
        if "," in s:
            r, g, b = (int(v) for v in s.split(","))
        elif len(s) == 6:
            r, g, b = int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)
        else:
            raise ValueError
        if not all(0 <= v <= 255 for v in (r, g, b)):
            raise ValueError
    except ValueError:
        raise VbgError(f"bad colour {text!r}", "use color:#RRGGBB or color:R,G,B") from None
    return (b, g, r)


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not (lo <= value <= hi):
        raise VbgError(f"{name.replace('_', '-')} {value:g} out of range",
                       f"use a value from {lo:g} to {hi:g}")


@dataclass(frozen=True)
class Settings:
    # segmentation
    model: str = "default"
    backend: str = "auto"
    # matte
    threshold: float = 0.5
    slope: float = 10.0  # soft-threshold steepness: 1 = soft ramp, 50 = hard cut
    feather: float = 2.0  # pixels
    smoothing: float = 0.5  # 0 = off, 1 = strongest temporal smoothing
    # composite
    bg: str = "blur:25"
    light_wrap: float = 0.0  # 0..1
    # output (batch)
    output_mode: str = "composite"
    quality: int = 20  # x264 CRF: lower is better
    # live
    camera: str = "0"
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    mirror: bool = False
    virtual_cam: bool = True
    view: str = "result"

    def __post_init__(self) -> None:
        _check_range("threshold", self.threshold, 0.0, 1.0)
        _check_range("slope", self.slope, 1.0, 100.0)
        _check_range("feather", self.feather, 0.0, 50.0)
        _check_range("smoothing", self.smoothing, 0.0, 1.0)
        _check_range("light_wrap", self.light_wrap, 0.0, 1.0)
        _check_range("quality", self.quality, 0, 51)
        _check_range("width", self.width, 16, 7680)
        _check_range("height", self.height, 16, 4320)
        _check_range("fps", self.fps, 1.0, 240.0)
        if self.backend not in BACKENDS:
            raise VbgError(f"unknown backend {self.backend!r}", f"use one of {', '.join(BACKENDS)}")
        if self.output_mode not in OUTPUT_MODES:
            raise VbgError(f"unknown output mode {self.output_mode!r}",
                           f"use one of {', '.join(OUTPUT_MODES)}")
        if self.view not in VIEWS:
            raise VbgError(f"unknown view {self.view!r}", f"use one of {', '.join(VIEWS)}")
        object.__setattr__(self, "_background", BackgroundSpec.parse(self.bg))

    @property
    def background(self) -> BackgroundSpec:
        return self._background  # type: ignore[attr-defined,no-any-return]

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    # --- TOML -----------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "config") -> Settings:
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            k = key.replace("-", "_")
            if k not in known:
                raise VbgError(f"unknown setting {key!r} in {source}",
                               f"remove it; known: {', '.join(sorted(known))}")
            default = known[k].default
            try:
                kwargs[k] = type(default)(value) if not isinstance(default, bool) else _as_bool(value)
            except (TypeError, ValueError):
                raise VbgError(f"setting {key!r} in {source} has a bad value {value!r}",
                               f"use a {type(default).__name__}") from None
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path) -> Settings:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise VbgError(f"cannot read config {path}: {exc.strerror}", "check the path") from None
        except tomllib.TOMLDecodeError as exc:
            raise VbgError(f"config {path} is not valid TOML: {exc}", "fix the file") from None
        return cls.from_mapping(data.get("vbg", data), source=str(path))

    def to_toml(self) -> str:
        lines = ["[vbg]"]
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool):
                s = "true" if v else "false"
            elif isinstance(v, (int, float)):
                s = repr(v)
            else:
                s = '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(f"{f.name} = {s}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_toml())
        os.replace(tmp, path)


def _as_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(v, str) and v.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(v)


def config_dir() -> Path:
    """The user's vbg config directory (XDG on Linux, AppData on Windows)."""
    if env := os.environ.get("VBG_CONFIG_DIR"):
        return Path(env)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "vbg"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "vbg"
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "vbg"
