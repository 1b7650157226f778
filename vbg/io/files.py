"""What vbg reads: which files are images or videos, and reading images.

The one place for the extension lists. Images are read through Python
(``np.fromfile`` + ``cv2.imdecode``), never by handing a path to OpenCV:
that works for any path the OS accepts (non-UTF-8 bytes, Windows Unicode),
where ``cv2.imread`` can fail or crash.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..errors import VbgError

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
VIDEO_EXTS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".gif", ".mpg", ".mpeg", ".ts", ".wmv",
                        ".flv", ".3gp"})
# images that can hold an alpha channel
ALPHA_EXTS = frozenset({".png", ".webp", ".tif", ".tiff"})


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS


def check_file(path: Path, what: str, fix: str = "check the path") -> Path:
    """``path`` is an existing regular file, or a one-line VbgError saying what it is instead.

    A pipe or a device would block a reader forever (or stream without end), so only plain files pass.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise VbgError(f"{what} {path} not found", fix) from None
    except OSError as exc:
        raise VbgError(f"cannot read {what} {path}: {exc.strerror}", fix) from None
    if stat.S_ISDIR(st.st_mode):
        raise VbgError(f"{what} {path} is a folder", f"give a file; {fix}")
    if not stat.S_ISREG(st.st_mode):
        raise VbgError(f"{what} {path} is not a regular file (a pipe, socket or device)", "give a file")
    return path


def read_bytes(path: Path, what: str = "input") -> np.ndarray:
    """The file's bytes as uint8, or a one-line VbgError naming ``what`` it was."""
    try:
        return np.fromfile(path, np.uint8)
    except FileNotFoundError:
        raise VbgError(f"{what} {path} not found", "check the path") from None
    except IsADirectoryError:
        raise VbgError(f"{what} {path} is a folder", "give a file") from None
    except PermissionError:
        raise VbgError(f"cannot read {what} {path}: permission denied", "check the file's permissions") from None
    except OSError as exc:
        raise VbgError(f"cannot read {what} {path}: {exc.strerror}", "check the file") from None


def decode_image(data: np.ndarray, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """Encoded bytes -> pixels (EXIF orientation applied), or None when they are not an image."""
    if not data.size:
        return None
    try:
        with _quiet_stderr():  # libpng and libjpeg print their own complaints about damaged files
            return cv2.imdecode(data, flags)
    except cv2.error:
        return None


class _StderrSilencer:
    """Points file descriptor 2 at /dev/null while any thread is inside; restores it when the last leaves.

    fd 2 belongs to the whole process, so this is one shared object with a lock and a count: two threads
    saving and restoring it on their own could leave it pointing at /dev/null for good.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = -1

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                try:
                    saved = os.dup(2)
                except OSError:  # no stderr at all
                    saved = -1
                if saved >= 0:
                    null = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(null, 2)
                    os.close(null)
                self._saved = saved
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved >= 0:
                    os.dup2(self._saved, 2)
                    os.close(self._saved)
                    self._saved = -1


_quiet_stderr = _StderrSilencer()


def read_image(path: Path, what: str = "input") -> np.ndarray:
    """-> BGR uint8 (H, W, 3), EXIF orientation applied; a one-line VbgError if unreadable."""
    img = decode_image(read_bytes(path, what))
    if img is None:
        raise VbgError(f"cannot read {what} {path}: not an image, or the file is corrupt",
                       "check that it opens in an image viewer")
    return img
