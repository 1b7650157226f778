"""FP32 ONNX -> FP16 ONNX, the input of a strongly typed TensorRT build.

TensorRT 11 dropped the builder's FP16 flag: precision now comes from the
ONNX types. We use ONNX Runtime's converter (it ships with onnxruntime, no
torch), keep the graph's inputs and outputs FP32 so every backend feeds the
model the same way, and leave ops that lose accuracy in FP16 (Resize scales
and the like, per the converter's block list) in FP32.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import VbgError
from .device import require_onnx

log = logging.getLogger(__name__)


def initializer_types(path: str | Path) -> dict[str, int]:
    """Count of float initializers by ONNX type name, e.g. {'FLOAT16': 115}."""
    onnx = require_onnx()
    model = onnx.load(str(path), load_external_data=False)
    counts: dict[str, int] = {}
    for t in model.graph.initializer:
        name = onnx.TensorProto.DataType.Name(t.data_type)
        if name in ("FLOAT", "FLOAT16", "BFLOAT16", "DOUBLE"):
            counts[name] = counts.get(name, 0) + 1
    return counts


def is_fp16(path: str | Path) -> bool:
    """True when the model's float weights are FP16 (a model ``vbg export`` wrote as FP16)."""
    t = initializer_types(path)
    return t.get("FLOAT16", 0) > 0 and t.get("FLOAT", 0) == 0


def to_fp16(src: str | Path, dst: str | Path) -> Path:
    """Write an FP16 copy of ``src`` to ``dst`` (FP32 inputs/outputs kept); returns ``dst``."""
    onnx = require_onnx()
    from onnxruntime.transformers.float16 import convert_float_to_float16  # imports onnx: only after the check

    src, dst = Path(src), Path(dst)
    try:
        model = onnx.load(str(src))
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise VbgError(f"cannot read ONNX {src}: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                       "check the model file") from None
    model16 = convert_float_to_float16(model, keep_io_types=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    onnx.save(model16, str(tmp))
    os.replace(tmp, dst)
    log.info("FP16 ONNX %s -> %s", src, dst)
    return dst
