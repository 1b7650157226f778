"""Which GPU and which TensorRT this machine has, or a one-line reason why not.

``tensorrt`` and ``cupy`` are imported here, lazily, and nowhere else needs to
guess how to report them missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import sys
from dataclasses import dataclass
from types import ModuleType

from ..errors import VbgError

log = logging.getLogger(__name__)

GPU_EXTRA = 'pip install "vbg[gpu]" --extra-index-url https://pypi.nvidia.com'
NO_GPU_FIX = "check the NVIDIA driver with nvidia-smi, or use --backend onnxruntime"


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str  # as the driver reports it, e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # "9.0"
    memory_mb: int

    @property
    def slug(self) -> str:
        return slugify_gpu(self.name)


def slugify_gpu(name: str) -> str:
    """'NVIDIA GeForce RTX 4090' -> 'geforce-rtx-4090': safe in a file name, no dashes at the ends."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if s.startswith("nvidia-"):
        s = s[len("nvidia-"):]
    return s or "gpu"


def has_module(name: str) -> bool:
    """Installed (importable) without importing it; honours modules already in sys.modules."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or VbgError saying how to install it."""
    try:
        return importlib.import_module("tensorrt")
    except ImportError:
        raise VbgError("TensorRT is not installed", GPU_EXTRA) from None


def tensorrt_version() -> str | None:
    """The installed TensorRT version, None when it is missing."""
    if not has_module("tensorrt"):
        return None
    return str(require_tensorrt().__version__)


def require_onnx() -> ModuleType:
    """The ``onnx`` package (reading and converting ONNX files for TensorRT), or a one-line VbgError."""
    try:
        return importlib.import_module("onnx")
    except ImportError:
        raise VbgError("building an engine needs the onnx package, which is not installed",
                       'pip install "vbg[gpu]" (or pip install onnx)') from None


def require_cupy() -> ModuleType:
    try:
        return importlib.import_module("cupy")
    except ImportError:
        raise VbgError("CuPy is not installed (the GPU path needs it)", GPU_EXTRA) from None


def probe_gpu(index: int = 0) -> GpuInfo:
    """The CUDA device ``index``, or VbgError when CuPy or a usable GPU is missing."""
    cp = require_cupy()
    try:
        count = int(cp.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError: no driver, driver too old, no device
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VbgError(f"no CUDA GPU found ({first})", NO_GPU_FIX) from None
    if count <= index:
        raise VbgError(f"no CUDA GPU found (device {index} of {count})", NO_GPU_FIX)
    props = cp.cuda.runtime.getDeviceProperties(index)
    name = props["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    return GpuInfo(index=index, name=name,
                   compute_capability=f"{props['major']}.{props['minor']}",
                   memory_mb=int(props["totalGlobalMem"]) // (1 << 20))


def gpu_available() -> bool:
    """True when CuPy sees at least one CUDA device; never raises."""
    if not has_module("cupy"):
        return False
    try:
        probe_gpu()
    except VbgError as exc:
        log.debug("GPU unavailable: %s", exc)
        return False
    return True
