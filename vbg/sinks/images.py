"""Image outputs: single images, PNG sequences, 8-bit masks.

A PNG sequence is a sink (registered for ``.png`` targets: a folder's
``%06d.png``, or ``frame_%04d.png``); single images are written whole by
``write_image``.

Files are encoded in memory (``cv2.imencode``) and written to a temporary
name, then renamed, so a half-written image never appears; this also works
for non-ASCII paths on Windows, where ``cv2.imwrite`` does not.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np

from ..errors import VbgError
from ..io.atomic import atomic_output, check_name
from ..io.files import ALPHA_EXTS, IMAGE_EXTS, is_image
from ..outputs import Output
from .base import SinkContext, SinkKind, register_sink, render

log = logging.getLogger(__name__)

_PATTERN = re.compile(r"%0?\d*d")

__all__ = ["IMAGE_EXTS", "is_image", "check_image_output", "encode_image", "write_image", "sequence_pattern",
           "sequence_regex", "is_frame_pattern", "PngSequenceSink"]


def check_image_output(path: Path, mode: str, pixels_have_alpha: bool) -> None:
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTS:
        raise VbgError(f"unknown image output type {ext or '(none)'} in {path.name}",
                       "use .png, .jpg or .webp")
    if pixels_have_alpha and ext not in ALPHA_EXTS:
        raise VbgError(f"{ext} cannot hold transparency", "use .png or .webp for --output-mode alpha / --bg none")


def encode_image(pixels: np.ndarray, ext: str, *, fast: bool = False) -> bytes:
    ext = ext.lower()
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    elif ext == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1 if fast else 3]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 95]
    ok, buf = cv2.imencode(ext, pixels, params)
    if not ok:  # pragma: no cover - only for exotic encoder failures
        raise VbgError(f"cannot encode a {ext} image", "use .png")
    return buf.tobytes()


def write_image(path: Path, pixels: np.ndarray, *, overwrite: bool = False) -> None:
    """Write one image atomically (temporary name, then rename)."""
    data = encode_image(pixels, path.suffix)
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def sequence_pattern(path: Path) -> tuple[Path, str]:
    """An output naming a PNG sequence -> (folder, printf-style file pattern).

    ``out/`` -> (out, ``%06d.png``); ``out/frame_%04d.png`` -> (out,
    ``frame_%04d.png``); ``out/frame.png`` -> (out, ``frame_%06d.png``).
    """
    if path.suffix.lower() == ".png":
        name = path.name
        bare = name.replace("%%", "")  # a literal % (written %%) is not the number
        if "%" not in bare:
            name = f"{path.stem}_%06d.png"  # a literal %% in the stem stays one
        elif bare.count("%") != 1 or not _PATTERN.search(bare):
            raise VbgError(f"bad frame-number pattern in {name}",
                           "use one printf-style number such as %06d, e.g. frames/frame_%06d.png")
        check_name(path.parent / (name % 1))
        return path.parent, name
    return path, "%06d.png"


def is_frame_pattern(name: str) -> bool:
    """Does a file name hold a printf frame number (``%06d``; ``%%`` is a literal %)?"""
    return bool(_PATTERN.search(name.replace("%%", "")))


def sequence_regex(pattern: str) -> re.Pattern[str]:
    """The file names a ``sequence_pattern`` pattern produces, as a regular expression."""
    head, tail = _PATTERN.split(pattern.replace("%%", "\0"), maxsplit=1)
    return re.compile(re.escape(head.replace("\0", "%")) + r"\d+" + re.escape(tail.replace("\0", "%")))


class PngSequenceSink:
    """Writes numbered PNGs (1, 2, ...) into a folder, usually a temporary one."""

    watched = True

    def __init__(self, folder: Path, pattern: str, mode: str = "composite") -> None:
        self.folder = folder
        self.pattern = pattern
        self.mode = mode
        self.frames = 0

    @classmethod
    def open(cls, path: Path, ctx: SinkContext) -> PngSequenceSink:
        """The registry's entry: ``path`` is ``folder/pattern`` (the folder usually a temporary one)."""
        folder, pattern = sequence_pattern(path)
        return cls(folder, pattern, ctx.mode)

    def write(self, out: Output, pts: int | None = None) -> None:
        self.write_pixels(render(out, self.mode))

    def write_pixels(self, pixels: np.ndarray) -> None:
        self.frames += 1
        name = self.pattern % self.frames
        with open(self.folder / name, "wb") as fh:
            fh.write(encode_image(pixels, ".png", fast=True))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


# every output mode fits a PNG sequence (alpha included): nothing to check
register_sink((".png",), SinkKind("png-sequence", PngSequenceSink.open, "folder"))
