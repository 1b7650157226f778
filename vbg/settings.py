"""One settings model for the CLI, the GUI and the TOML config file.

``Settings`` is a frozen dataclass validated once, in ``__post_init__``; a
change is ``settings.replace(threshold=0.6)``, which validates again. Bad
values raise ``VbgError`` with a one-line fix. ``vbg.config`` turns flags
and config files into ``Settings``; nothing else does.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from .errors import VbgError
from .stages.backgrounds import BackgroundSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# auto: the best available here (vbg.backends.choose_backend)
BACKENDS = ("auto", "cpu", "cuda", "tensorrt", "ort-tensorrt", "directml", "coreml", "openvino", "rocm")
BACKEND_ALIASES = {"onnxruntime": "cpu"}  # the name before the providers were split out
OUTPUT_MODES = ("composite", "alpha", "mask", "green")
VIEWS = ("result", "original", "mask", "side-by-side")
FRAMING = ("off", "auto")


def _range(lo: float, hi: float) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if not (lo <= value <= hi):
            raise VbgError(f"{name.replace('_', '-')} {value:g} out of range", f"use a value from {lo:g} to {hi:g}")
    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise VbgError(f"unknown {name.replace('_', ' ')} {value!r}", f"use one of {', '.join(choices)}")
    return check


def canonical_backend(name: str) -> str:
    n = BACKEND_ALIASES.get(name, name)
    if n not in BACKENDS:
        raise VbgError(f"unknown backend {name!r}", f"use one of {', '.join(BACKENDS)}")
    return n


def _model_every(name: str, value: Any) -> None:
    if value == "auto":
        return
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if not 1 <= n <= 1000 or str(n) != str(value).strip():
        raise VbgError(f"model-every {value!r} is not auto or a whole number of frames",
                       "use auto, or 1 (every frame) up to 1000")


@dataclass(frozen=True)
class Settings:
    # segmentation
    model: str = "default"
    backend: str = "auto"
    model_every: str = "auto"  # run the model every N frames ("1") or when the picture changes ("auto")
    # matte
    threshold: float = 0.5
    slope: float = 10.0  # edge hardness: 1 = soft ramp, 100 = hard cut
    feather: float = 2.0  # pixels
    smoothing: float = 0.5  # 0 = off, 1 = strongest temporal smoothing
    # composite
    bg: str = "blur:25"
    light_wrap: float = 0.0  # 0..1
    frame: str = "off"  # auto-framing: "auto" keeps the person centred
    # output (batch)
    output_mode: str = "composite"
    quality: int = 20  # x264 CRF: lower is better
    # live
    camera: str = "0"
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    max_fps: float = 0.0  # 0 = as fast as the camera delivers
    mirror: bool = False
    virtual_cam: bool = True
    view: str = "result"

    def __post_init__(self) -> None:
        for f in fields(self):  # types first: the Python API can pass anything
            value = getattr(self, f.name)
            try:
                typed = _typed(f.default, os.fspath(value) if isinstance(value, os.PathLike) else value)
            except (TypeError, ValueError):
                raise VbgError(f"setting {f.name} has a bad value {value!r}",
                               f"use {_KIND[type(f.default)]}") from None
            if typed is not value:
                object.__setattr__(self, f.name, typed)
        for name, check in CHECKS.items():
            check(name, getattr(self, name))
        object.__setattr__(self, "backend", canonical_backend(self.backend))
        object.__setattr__(self, "_background", BackgroundSpec.parse(self.bg))

    @property
    def background(self) -> BackgroundSpec:
        return self._background  # type: ignore[attr-defined,no-any-return]

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (validated); unchanged values keep their origin."""
        out = dataclasses.replace(self, **changes)
        origins = {k: v for k, v in getattr(self, "_origins", {}).items() if k not in changes}
        object.__setattr__(out, "_origins", origins)
        return out

    def differs(self, other: Settings, keys: Iterable[str]) -> bool:
        """Whether any of ``keys`` has another value in ``other``."""
        return any(getattr(self, k) != getattr(other, k) for k in keys)

    # --- TOML -----------------------------------------------------------
    def origin(self, name: str) -> str | None:
        """The config file a setting's value came from, or None (a default, a flag, the GUI)."""
        return getattr(self, "_origins", {}).get(name)

    @contextmanager
    def blame(self, name: str) -> Iterator[None]:
        """Re-raise a ``VbgError`` from opening what setting ``name`` names, saying which file it came from."""
        try:
            yield
        except VbgError as exc:
            src = self.origin(name)
            if src is None:
                raise
            raise VbgError(f"{exc.what} (from {name.replace('_', '-')} in {src})", exc.fix) from None

    # --- TOML -----------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "config", base: Path | None = None,
                     skip: Iterable[str] = ()) -> Settings:
        """Settings from a ``[vbg]`` table. Every error names ``source`` and the key.

        A relative file path (camera file, background, model spec) is taken
        relative to ``base``, the folder of the file it came from, where it exists there.
        Keys in ``skip`` (settings a flag gives anyway) are left out unchecked.
        """
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            k = key.replace("-", "_")
            if k not in known:
                raise VbgError(f"unknown setting {key!r} in {source}",
                               f"remove it; known: {', '.join(sorted(known))}")
            if k in skip:
                continue
            default = known[k].default
            try:
                v = _typed(default, value)
            except (TypeError, ValueError):
                raise VbgError(f"setting {key!r} in {source} has a bad value {value!r}",
                               f"use {_KIND[type(default)]}") from None
            if base is not None and k in PATH_KEYS and isinstance(v, str) and v.strip():
                p = Path(v.strip()).expanduser()
                if not p.is_absolute() and not (k == "camera" and v.strip().isdigit()) and (base / p).exists():
                    v = str((base / p).resolve())
            try:  # one key at a time: the error can say which
                cls(**{k: v})
            except VbgError as exc:
                raise VbgError(f"{exc.what} (from {key} in {source})", exc.fix) from None
            kwargs[k] = v
        out = cls(**kwargs)
        object.__setattr__(out, "_origins", {k: source for k in kwargs})
        return out

    @classmethod
    def load(cls, path: str | Path, skip: Iterable[str] = ()) -> Settings:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))  # TOML is UTF-8 whatever the locale
        except OSError as exc:
            raise VbgError(f"cannot read config {path}: {exc.strerror}", "check the path") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise VbgError(f"config {path} is not valid TOML: {exc}", "fix the file") from None
        table = data.get("vbg", data)
        if not isinstance(table, dict):
            raise VbgError(f"config {path}: [vbg] is not a table", "write the settings under a [vbg] heading")
        return cls.from_mapping(table, source=str(path), base=path.resolve().parent, skip=skip)

    def to_toml(self) -> str:
        return tomli_w.dumps({"vbg": {f.name: getattr(self, f.name) for f in fields(self)}})

    def save(self, path: str | Path) -> None:
        """Write atomically: a crash mid-save leaves the old file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(self.to_toml(), encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


CHECKS: dict[str, Callable[[str, Any], None]] = {
    "threshold": _range(0.0, 1.0),
    "slope": _range(1.0, 100.0),
    "feather": _range(0.0, 50.0),
    "smoothing": _range(0.0, 1.0),
    "light_wrap": _range(0.0, 1.0),
    "quality": _range(0, 51),
    "width": _range(16, 7680),
    "height": _range(16, 4320),
    "fps": _range(1.0, 240.0),
    "max_fps": _range(0.0, 240.0),
    "backend": lambda name, value: canonical_backend(value) and None,  # raises for an unknown name
    "output_mode": _one_of(OUTPUT_MODES),
    "view": _one_of(VIEWS),
    "frame": _one_of(FRAMING),
    "model_every": _model_every,
}

_KIND = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}

# settings that may hold a file path
PATH_KEYS = ("camera", "bg", "model")


def settings_or_default(value: Any, fix: str) -> Settings:
    """``value`` when it is ``Settings`` (None: the defaults), else a one-line VbgError with ``fix``."""
    if value is None:
        return Settings()
    if not isinstance(value, Settings):
        raise VbgError(f"settings must be vbg.Settings, got {type(value).__name__}", fix)
    return value


def _typed(default: Any, value: Any) -> Any:
    """``value`` as ``default``'s type, refusing what only looks convertible (true as 1.0, 20.7 as 20)."""
    if isinstance(default, bool):
        return _as_bool(value)
    if isinstance(value, (bool, np.bool_)):  # numpy's bool too
        raise TypeError(value)
    if isinstance(default, int):
        if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) \
                and float(value).is_integer():
            return int(value)
        if not isinstance(value, numbers.Integral):
            raise TypeError(value)
        return int(value)  # numpy integers too
    if isinstance(default, float):
        if not isinstance(value, numbers.Real):
            raise TypeError(value)
        return float(value)
    if not isinstance(value, (str, int, float)):  # a camera index may be written as a number
        raise TypeError(value)
    return str(value)


def _as_bool(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(v, str) and v.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(v)
