"""Inference backends behind one protocol (see ``base.Backend``)."""

from __future__ import annotations

import logging

from ..errors import VbgError
from ..spec import ModelSpec
from .base import Backend

log = logging.getLogger(__name__)

__all__ = ["Backend", "create_backend"]


def create_backend(spec: ModelSpec, name: str = "auto", **kwargs: object) -> Backend:
    """Build the named backend for a model.

    ``auto``: TensorRT when an engine for this model and GPU exists, else ONNX
    Runtime's CUDA provider when onnxruntime-gpu is installed, else ONNX
    Runtime on the CPU.
    """
    if name in ("auto", "tensorrt"):
        try:
            from . import tensorrt as trt_backend
        except ImportError:
            trt_backend = None  # type: ignore[assignment]
        if trt_backend is not None:
            engine = trt_backend.find_engine(spec) if trt_backend.available() else None
            if engine is not None:
                return trt_backend.TensorRTBackend(spec, engine, **kwargs)  # type: ignore[arg-type]
            if name == "tensorrt":
                raise trt_backend.why_unavailable(spec)
        elif name == "tensorrt":
            raise VbgError("TensorRT backend is not available", 'pip install "vbg[gpu]"')
    from .onnxruntime import OnnxRuntimeBackend

    if name in ("auto", "cuda"):
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            return OnnxRuntimeBackend(spec, providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
                                      **kwargs)  # type: ignore[arg-type]
        if name == "cuda":
            raise VbgError("ONNX Runtime has no CUDA provider here", "pip install onnxruntime-gpu, or use --backend onnxruntime")
    return OnnxRuntimeBackend(spec, **kwargs)  # type: ignore[arg-type]
