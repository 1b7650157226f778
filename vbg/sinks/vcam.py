"""Virtual camera sink: processed frames -> pyvirtualcam.

Linux uses a v4l2loopback device, Windows and macOS the OBS Virtual Camera.
Frames go out as BGR (``PixelFormat.BGR``), so no colour conversion happens
here. A missing device is a one-line ``VbgError`` with the setup command.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from ..errors import VbgError

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


class VirtualCamSink:
    """Sends BGR frames of a fixed size to a virtual camera.

    ``camera_factory`` is the pyvirtualcam boundary; tests pass a stand-in.
    """

    def __init__(self, width: int, height: int, fps: float, *, device: str | None = None,
                 camera_factory: CameraFactory | None = None) -> None:
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
        log.info("virtual camera %s: %dx%d @ %.0f fps", self.device, width, height, fps)

    def send(self, frame: np.ndarray) -> None:
        """Send one frame: BGR, or BGRA (flattened onto black: cameras have no alpha)."""
        if frame.ndim == 3 and frame.shape[2] == 4:
            a = frame[..., 3:4].astype(np.uint16)
            frame = (frame[..., :3].astype(np.uint16) * a // 255).astype(np.uint8)
        if frame.shape[1] != self.width or frame.shape[0] != self.height:
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        self._cam.send(np.ascontiguousarray(frame))
        self.frames_sent += 1

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            cam.close()

    def __enter__(self) -> VirtualCamSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
