"""``vbg doctor``: one screen that says what this machine has, and the fix for each missing piece.

The first thing a bug report asks for. Everything is tried, not just listed:
an encoder counts when it opens, NVDEC when it decodes a frame, a camera when
the driver names it.
"""

from __future__ import annotations

import argparse
import io
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import onnxruntime as ort
from av.codec.hwaccel import HWAccel

from .. import __version__
from ..backends import NOT_HARDWARE, PROVIDERS, choose_backend
from ..errors import VbgError
from ..gpu.device import has_module, probe_gpu, tensorrt_version
from ..gpu.engine import status as gpu_status
from ..io.capture import list_cameras
from ..models import list_models, resolve_model
from ..paths import config_path
from ..sinks.vcam import LINUX_SETUP
from ..sinks.video import pick_h264_encoder
from .live import has_display, has_qt

OK, MISSING, INFO = "ok", "missing", "info"


@dataclass(frozen=True)
class Check:
    area: str
    what: str
    state: str  # ok | missing | info
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "missing": "--  ", "info": "    "}[self.state]
        fix = f"\n        fix: {self.fix}" if self.fix else ""
        return f"  {mark}{self.what}: {self.detail}{fix}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("What this machine has for vbg: versions, ONNX Runtime providers, GPU, video codecs, "
                     "cameras, the virtual camera and the GUI, with the fix for each missing piece.")


def _versions() -> list[Check]:
    out = [Check("vbg", "vbg", INFO, f"{__version__} on {platform.system()} {platform.machine()}, "
                                      f"Python {platform.python_version()}"),
           Check("vbg", "libraries", INFO, f"NumPy {np.__version__}, OpenCV {cv2.__version__}, "
                                           f"ONNX Runtime {ort.__version__}, PyAV {av.__version__} "
                                           f"(libavcodec {_ffmpeg_version()})")]
    return out


def _ffmpeg_version() -> str:
    try:
        return ".".join(str(v) for v in av.library_versions["libavcodec"])
    except (AttributeError, KeyError, TypeError):
        return "?"


def _backends(providers: list[str] | None = None) -> list[Check]:
    avail = [p for p in (ort.get_available_providers() if providers is None else providers) if p not in NOT_HARDWARE]
    out = [Check("backends", "ONNX Runtime providers", INFO, ", ".join(p.replace("ExecutionProvider", "")
                                                                       for p in avail))]
    try:
        spec = resolve_model(None)
        choice = choose_backend(spec, "auto", avail)
        out.append(Check("backends", "--backend auto", INFO, f"{choice.backend} ({choice.why})"))
    except VbgError as exc:
        out.append(Check("backends", "--backend auto", MISSING, exc.what, exc.fix))
    for name, prov in PROVIDERS.items():
        if name == "cpu":
            continue
        have = any(p in avail for p in prov.ort_names)
        out.append(Check("backends", f"--backend {name}", OK if have else INFO,
                         "available" if have else f"not here ({prov.ort_names[0]} is missing)",
                         "" if have else f"install {prov.package} for it"))
    trt = tensorrt_version()
    out.append(Check("backends", "--backend tensorrt", OK if trt else INFO,
                     f"TensorRT {trt}" if trt else "TensorRT is not installed",
                     "" if trt else 'pip install "vbg[gpu]" --extra-index-url https://pypi.nvidia.com (NVIDIA GPUs)'))
    return out


def _gpu() -> list[Check]:
    st = gpu_status()
    if not has_module("cupy"):
        return [Check("gpu", "CuPy", INFO, "not installed: the GPU pipeline is off",
                      'pip install "vbg[gpu]" (NVIDIA GPUs)')]
    if st.get("gpu"):
        gpu = probe_gpu()
        return [Check("gpu", "CUDA device", OK, f"{gpu.name}, compute {gpu.compute_capability}, "
                                                f"{gpu.memory_mb} MB")]
    return [Check("gpu", "CUDA device", MISSING, st.get("gpu_error", "none found"),
                  "check the NVIDIA driver with nvidia-smi")]


def _tiny_h264() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 128, 96, "yuv420p"
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.full((96, 128, 3), 40 * i, np.uint8), format="bgr24")
            f.pts, f.time_base = i, Fraction(1, 30)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return buf.getvalue()


def _nvdec() -> tuple[bool, str]:
    try:
        with av.open(io.BytesIO(_tiny_h264()), hwaccel=HWAccel(device_type="cuda",
                                                                allow_software_fallback=False)) as c:
            next(c.decode(video=0))
        return True, "decodes H.264 on the GPU"
    except Exception as exc:  # no device, no driver, no NVDEC engine
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:80]
        return False, f"does not open here, so FFmpeg decodes on the CPU ({first})"


def _nvidia_present() -> bool:
    """Is an NVIDIA driver with a device here at all (before probing codecs that need one)?"""
    if sys.platform.startswith("linux"):
        return (Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))
                or Path("/dev/dxg").exists())  # WSL2 passes the GPU through /dev/dxg
    return shutil.which("nvidia-smi") is not None


def _codecs() -> list[Check]:
    if not _nvidia_present():
        return [Check("codecs", "h264_nvenc", INFO, "no NVIDIA GPU here: libx264 encodes on the CPU"),
                Check("codecs", "NVDEC", INFO, "no NVIDIA GPU here: FFmpeg decodes on the CPU")]
    enc = pick_h264_encoder(1280, 720)
    out = [Check("codecs", "h264_nvenc", OK if enc == "h264_nvenc" else INFO,
                 "opens: the GPU path encodes with it" if enc == "h264_nvenc" else
                 "does not open here: libx264 encodes on the CPU (H100/H200-class GPUs have no NVENC)")]
    ok, detail = _nvdec()
    out.append(Check("codecs", "NVDEC", OK if ok else INFO, detail))
    return out


def _cameras() -> list[Check]:
    cams = [c for c in list_cameras() if not c.loopback]
    if not sys.platform.startswith("linux"):
        return [Check("cameras", "cameras", INFO, "indices 0, 1, 2 are tried when opened (--camera N)")]
    if not cams:
        return [Check("cameras", "cameras", MISSING, "none found in /sys/class/video4linux",
                      "plug in a webcam; a video file also works: --camera clip.mp4")]
    return [Check("cameras", c.value, OK, c.name) for c in cams]


def _virtual_camera() -> list[Check]:
    out = []
    vcam = has_module("pyvirtualcam")
    out.append(Check("vcam", "pyvirtualcam", OK if vcam else MISSING, "installed" if vcam else "not installed",
                     "" if vcam else 'pip install "vbg[vcam]"'))
    if sys.platform.startswith("linux"):
        loaded = Path("/sys/module/v4l2loopback").is_dir()
        devices = [c for c in list_cameras() if c.loopback]
        detail = ("loaded" + (f", devices: {', '.join(f'{c.value} ({c.name})' for c in devices)}" if devices else "")
                  if loaded else "the v4l2loopback module is not loaded")
        out.append(Check("vcam", "v4l2loopback", OK if loaded else MISSING, detail, "" if loaded else LINUX_SETUP))
    else:
        out.append(Check("vcam", "OBS Virtual Camera", INFO, "vbg sends to it on Windows and macOS",
                         "install OBS Studio and start its Virtual Camera once"))
    return out


def _gui() -> list[Check]:
    qt = has_qt()
    out = [Check("gui", "PySide6", OK if qt else MISSING, "installed" if qt else "not installed: no vbg gui, and "
                 "vbg live runs without a window", "" if qt else 'pip install "vbg[gui]"')]
    out.append(Check("gui", "display", OK if has_display() else INFO,
                     "present" if has_display() else "none (no DISPLAY or WAYLAND_DISPLAY): vbg live runs headless"))
    return out


def _setup() -> list[Check]:
    cfg = config_path()
    out = [Check("setup", "config", INFO, f"{cfg}" + ("" if cfg.is_file() else " (none yet; vbg gui saves it)"))]
    models = ", ".join(e.spec.name + (" (default)" if e.default else "") for e in list_models()) or "none"
    out.append(Check("setup", "models", OK if models != "none" else MISSING, models,
                     "" if models != "none" else "reinstall vbg"))
    return out


SECTIONS: list[tuple[str, Callable[[], list[Check]]]] = [
    ("versions", _versions), ("inference backends", _backends), ("GPU", _gpu), ("video codecs", _codecs),
    ("cameras", _cameras), ("virtual camera", _virtual_camera), ("window", _gui), ("setup", _setup)]


def report() -> str:
    lines = []
    for title, fn in SECTIONS:
        lines.append(f"{title}:")
        try:
            lines += [c.line() for c in fn()]
        except Exception as exc:  # a doctor must not fail: say what could not be checked
            lines.append(f"  ??  could not check: {type(exc).__name__}: {exc}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(report())
    return 0
