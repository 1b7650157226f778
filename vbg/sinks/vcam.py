"""Virtual camera sink: processed frames -> pyvirtualcam.

Linux uses a v4l2loopback device, Windows and macOS the OBS Virtual Camera.
Frames go out as BGR (``PixelFormat.BGR``), so no colour conversion happens
here. A missing device is a one-line ``VbgError`` with the setup command.

On Linux the sink can tell whether any application is reading the device
(``watched``): a thread looks, once a second, for other processes holding it
open in ``/proc/*/fd``. ``vbg live`` pauses processing while nobody watches.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from ..errors import VbgError
from ..outputs import Output

log = logging.getLogger(__name__)

LINUX_SETUP = "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=vbg"

# (width, height, fps, device) -> an object with send(frame), close() and device
CameraFactory = Callable[[int, int, float, "str | None"], Any]


def setup_hint() -> str:
    if sys.platform.startswith("linux"):
        return f"run: {LINUX_SETUP}; or use --no-virtual-cam"
    return "install OBS Studio and start its Virtual Camera once; or use --no-virtual-cam"


def pyvirtualcam_camera(width: int, height: int, fps: float, device: str | None) -> Any:
    try:
        import pyvirtualcam
    except ImportError:
        raise VbgError("the virtual camera needs pyvirtualcam", 'pip install "vbg[vcam]"') from None
    return pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.BGR, device=device)


def device_readers(device: str, *, exclude_pid: int | None = None) -> int | None:
    """How many processes other than ``exclude_pid`` (default: this one) hold ``device`` open.

    None where that cannot be known: not Linux, no such path, or no ``/proc``.
    Processes of other users are invisible without privileges; a video app
    runs as the same user as vbg.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        target = os.path.realpath(device)
        os.stat(target)
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    me = os.getpid() if exclude_pid is None else exclude_pid
    n = 0
    for pid in pids:
        if pid == me:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone meanwhile, or not ours to read
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    n += 1
                    break
            except OSError:
                continue
    return n


class ReaderWatch:
    """Keeps ``readers`` (see :func:`device_readers`) up to date from a daemon thread.

    A thread, because one scan of ``/proc`` takes milliseconds that the
    processing thread should not spend.
    """

    def __init__(self, device: str, interval: float = 1.0) -> None:
        self.device = device
        self.interval = interval
        self.readers: int | None = device_readers(device)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vbg-vcam-readers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.readers = device_readers(self.device)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


class VirtualCamSink:
    """Sends BGR frames of a fixed size to a virtual camera.

    ``camera_factory`` is the pyvirtualcam boundary; tests pass a stand-in.
    ``watch_readers``: keep track of whether an application reads the
    device (``watched``).
    """

    def __init__(self, width: int, height: int, fps: float, *, device: str | None = None,
                 camera_factory: CameraFactory | None = None, watch_readers: bool = False) -> None:
        self.width, self.height, self.fps = width, height, fps
        factory = camera_factory or pyvirtualcam_camera
        try:
            self._cam = factory(width, height, fps, device)
        except RuntimeError as exc:  # pyvirtualcam: every backend failed
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if device is None or "no v4l2 loopback device" in msg.lower() or "not installed" in msg.lower():
                raise VbgError("no virtual camera device found", setup_hint()) from None
            raise VbgError(f"virtual camera {device} could not be opened: {msg}",
                           f"check the device, or {setup_hint()}") from None
        self.frames_sent = 0
        self.device = str(getattr(self._cam, "device", device or "virtual camera"))
        self._watch = ReaderWatch(self.device) if watch_readers else None
        log.info("virtual camera %s: %dx%d @ %.0f fps", self.device, width, height, fps)

    @property
    def watched(self) -> bool:
        """False only when it is known that no application reads the device."""
        return self._watch is None or self._watch.readers != 0

    def write(self, out: Output, pts: int | None = None) -> None:
        """Send one processed frame (the composite, or the camera frame when compositing was skipped)."""
        if out.frame is not None:
            self.send(out.frame)

    def abort(self) -> None:
        self.close()

    def send(self, frame: np.ndarray) -> None:
        """Send one frame: BGR, or BGRA (flattened onto black: cameras have no alpha)."""
        if frame.ndim == 3 and frame.shape[2] == 4:
            a = frame[..., 3:4].astype(np.uint16)
            frame = (frame[..., :3].astype(np.uint16) * a // 255).astype(np.uint8)
        if frame.shape[1] != self.width or frame.shape[0] != self.height:
            frame = self._fit(frame)
        self._cam.send(np.ascontiguousarray(frame))
        self.frames_sent += 1

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        """A frame of another size (the camera or its resolution changed after the device opened): scaled
        to fit inside the device's size, keeping its proportions, with black bars; never stretched."""
        h, w = frame.shape[:2]
        scale = min(self.width / w, self.height / h)
        fw, fh = max(1, round(w * scale)), max(1, round(h * scale))
        inter = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        out = np.zeros((self.height, self.width, 3), np.uint8)
        x, y = (self.width - fw) // 2, (self.height - fh) // 2
        out[y:y + fh, x:x + fw] = cv2.resize(frame, (fw, fh), interpolation=inter)
        return out

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        cam, self._cam = self._cam, None
        if cam is not None:
            cam.close()

    def __enter__(self) -> VirtualCamSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
