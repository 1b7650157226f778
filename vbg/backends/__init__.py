"""Inference backends behind one protocol (see ``base.Backend``).

``--backend`` names (``vbg.settings.BACKENDS``):

* ``cpu``: ONNX Runtime on the CPU (the default where nothing better is here);
* ``tensorrt``: vbg's own TensorRT FP16 engine (``build_engine.py``);
* ``cuda``, ``ort-tensorrt``, ``directml``, ``coreml``, ``openvino``, ``rocm``:
  ONNX Runtime with that execution provider, for NVIDIA, AMD, Intel and
  Apple GPUs, each with its sensible options (FP16 where the provider does
  it, an engine cache for ORT's TensorRT);
* ``auto``: the best of these that is available here, in the order of ``AUTO_ORDER``.

Asking for a provider that is not installed is a one-line error naming
what is available and the package that brings the one asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VbgError
from ..settings import BACKENDS, canonical_backend
from ..spec import ModelSpec
from . import tensorrt as trt_backend
from .base import Backend
from .onnxruntime import OnnxRuntimeBackend

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "Backend", "Choice", "choose_backend", "create_backend", "PROVIDERS"]


@dataclass(frozen=True)
class Provider:
    ort_names: tuple[str, ...]  # ONNX Runtime provider names, preferred first
    package: str  # what brings it
    options: dict[str, Any] = field(default_factory=dict)


def _ort_providers() -> list[str]:
    import onnxruntime as ort  # here, not at the top: ``vbg --help`` needn't load it

    return list(ort.get_available_providers())


def _engines_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "engines"


# backend name -> the ONNX Runtime execution provider behind it
PROVIDERS: dict[str, Provider] = {
    "cpu": Provider(("CPUExecutionProvider",), "onnxruntime"),
    "cuda": Provider(("CUDAExecutionProvider",), "onnxruntime-gpu", {"cudnn_conv_algo_search": "HEURISTIC"}),
    "ort-tensorrt": Provider(("TensorrtExecutionProvider",), "onnxruntime-gpu and the TensorRT libraries",
                             {"trt_fp16_enable": "True", "trt_engine_cache_enable": "True",
                              "trt_timing_cache_enable": "True"}),
    "directml": Provider(("DmlExecutionProvider",), "onnxruntime-directml (Windows)", {"device_id": "0"}),
    "coreml": Provider(("CoreMLExecutionProvider",), "onnxruntime on macOS (CoreML is built in there)",
                       {"ModelFormat": "MLProgram", "MLComputeUnits": "ALL"}),  # MLProgram runs FP16 on GPU/ANE
    # OpenVINO's GPU plugin computes in FP16 by default; AUTO falls back to the CPU
    "openvino": Provider(("OpenVINOExecutionProvider",), "onnxruntime-openvino", {"device_type": "AUTO:GPU,CPU"}),
    "rocm": Provider(("MIGraphXExecutionProvider", "ROCMExecutionProvider"), "onnxruntime-migraphx (AMD ROCm)",
                     {"migraphx_fp16_enable": "1"}),
}

# auto: the first available; our own engine first, the CPU last
AUTO_ORDER = ("tensorrt", "ort-tensorrt", "cuda", "rocm", "directml", "coreml", "openvino", "cpu")


@dataclass(frozen=True)
class Choice:
    backend: str  # a name of BACKENDS, never "auto"
    why: str  # for -v and the GUI readout


def _provider_available(name: str, available: list[str]) -> str | None:
    """The ORT provider name that serves backend ``name`` here, or None."""
    for p in PROVIDERS[name].ort_names:
        if p in available:
            return p
    return None


# listed by every onnxruntime build, but no local accelerator
NOT_HARDWARE = {"AzureExecutionProvider"}


def choose_backend(spec: ModelSpec, name: str = "auto", available: list[str] | None = None) -> Choice:
    """Which backend ``name`` means here; raises a one-line VbgError when the one asked for is missing."""
    name = canonical_backend(name)
    avail = [p for p in (_ort_providers() if available is None else available) if p not in NOT_HARDWARE]
    if name == "tensorrt" or (name == "auto" and trt_backend.available()):
        engine = trt_backend.find_engine(spec) if trt_backend.available() else None
        if engine is not None:
            return Choice("tensorrt", f"TensorRT engine {engine.name}")
        if name == "tensorrt":
            raise trt_backend.why_unavailable(spec)
    if name != "auto":
        if _provider_available(name, avail) is None:
            have = ", ".join(p.replace("ExecutionProvider", "") for p in avail) or "none"
            raise VbgError(f"backend {name} needs ONNX Runtime's {PROVIDERS[name].ort_names[0]}, which is not "
                           f"installed (available here: {have})",
                           f"install {PROVIDERS[name].package} instead of onnxruntime, or use --backend auto")
        return Choice(name, f"{name} (asked for)")
    for cand in AUTO_ORDER:
        if cand != "tensorrt" and _provider_available(cand, avail):
            why = "the only provider here" if cand == "cpu" and len(avail) <= 1 else \
                f"the best of {', '.join(p.replace('ExecutionProvider', '') for p in avail)}"
            return Choice(cand, why)
    return Choice("cpu", "no provider listed")  # pragma: no cover - ORT always has the CPU


def create_backend(spec: ModelSpec, name: str = "auto", *, threads: int | None = None) -> Backend:
    """Open the backend ``name`` (``auto``: see ``choose_backend``) for a model."""
    choice = choose_backend(spec, name)
    log.info("backend %s: %s", choice.backend, choice.why)
    if choice.backend == "tensorrt":
        engine = trt_backend.find_engine(spec)
        assert engine is not None
        return trt_backend.TensorRTBackend(spec, engine)
    provider = PROVIDERS[choice.backend]
    ort_name = _provider_available(choice.backend, _ort_providers()) or "CPUExecutionProvider"
    options = dict(provider.options)
    if choice.backend == "ort-tensorrt":
        options["trt_engine_cache_path"] = str(_engines_dir() / "ort-trt-cache")
    providers: list[str | tuple[str, dict[str, Any]]] = [(ort_name, options) if options else ort_name]
    if ort_name != "CPUExecutionProvider":
        providers.append("CPUExecutionProvider")  # for any operator the accelerator lacks
    backend = OnnxRuntimeBackend(spec, threads=threads, providers=providers)
    backend.choice = choice  # type: ignore[attr-defined]
    return backend
