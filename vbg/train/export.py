"""Export a trained checkpoint to ONNX + its JSON spec, and FP16 for TensorRT.

The ONNX takes ``input`` (N, 3, H, W) float32, RGB normalised as the spec
says, and returns ``mask``: (N, 1, H, W) logits for binary models, or
(N, C, H, W) class logits (``softmax_logits``) for multi-class ones.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VbgError
from ..spec import InputSpec, ModelSpec, OutputSpec

log = logging.getLogger(__name__)

OPSET = 17


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def export_onnx(model: Any, path: str | Path, size: tuple[int, int], opset: int = OPSET,
                dynamic_batch: bool = True, dynamic_size: bool = False) -> Path:
    """torch module -> ONNX at input ``size`` (w, h); written atomically.

    ``dynamic_size`` leaves the spatial axes open (for orientation "match")."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    w, h = size
    x = torch.randn(1, 3, h, w)
    tmp = _tmp(path)
    axes: dict[str, dict[int, str]] = {"input": {}, "mask": {}}
    for k in axes:
        if dynamic_batch:
            axes[k][0] = "N"
        if dynamic_size:
            axes[k].update({2: "H", 3: "W"})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the TorchScript exporter gives plain, small graphs that every runtime reads
            torch.onnx.export(model, (x,), str(tmp), input_names=["input"], output_names=["mask"],
                              opset_version=opset, dynamic_axes=axes if axes["input"] else None,
                              do_constant_folding=True, dynamo=False)
        import onnx

        m = onnx.load(str(tmp))
        onnx.checker.check_model(m)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def to_fp16(src: str | Path, dst: str | Path) -> Path:
    """FP32 ONNX -> FP16 weights and maths, float32 input/output kept (so the
    same spec and preprocessing work), for TensorRT or CUDA."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    half = convert_float_to_float16(model, keep_io_types=True)
    tmp = _tmp(dst)
    try:
        onnx.save(half, str(tmp))
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def write_spec(onnx_path: Path, name: str, size: tuple[int, int], num_classes: int,
               mean: tuple[float, ...], std: tuple[float, ...], description: str = "",
               extra: dict[str, Any] | None = None, orientation: str = "fixed") -> Path:
    w, h = size
    spec = ModelSpec(
        name=name, onnx=Path(onnx_path.name), description=description,
        input=InputSpec(name="input", width=w, height=h, layout="NCHW", color="RGB", scale=255.0,
                        mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),  # type: ignore[arg-type]
                        orientation=orientation),
        output=OutputSpec(name="mask", kind="logits" if num_classes == 1 else "softmax_logits",
                          layout="NCHW", person_channel=0),
        extra=dict(extra or {}))
    js = onnx_path.with_suffix(".json")
    tmp = _tmp(js)
    spec.save(tmp)
    tmp.replace(js)
    return js


def torch_onnx_gap(model: Any, onnx_path: Path, x: Any) -> tuple[float, bool]:
    """(max |torch - onnxruntime| on the input tensor ``x``, whether that is within 1e-3 of the logits' scale)."""
    import onnxruntime as ort
    import torch

    with torch.no_grad():
        ref = model.eval()(x).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.contiguous().numpy()})[0]
    err = float(np.abs(ref - got).max())
    return err, err <= 1e-3 * max(1.0, float(np.abs(ref).max()))


def check_export(model: Any, onnx_path: Path, size: tuple[int, int], seed: int = 0) -> float:
    """Max |torch - onnxruntime| on a random input (raises when they disagree)."""
    import torch

    w, h = size
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((2, 3, h, w)).astype(np.float32))
    err, ok = torch_onnx_gap(model, onnx_path, x)
    if not ok:
        raise VbgError(f"exported ONNX differs from PyTorch by {err:.3g}", "report this export bug")
    return err


def export_checkpoint(ckpt: str | Path | list[str | Path], out: str | Path, size: tuple[int, int] | None = None,
                      name: str | None = None, description: str = "", default: bool = False,
                      fp16: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Checkpoint -> ``out`` (.onnx) + ``out`` .json (+ ``.fp16.onnx``).

    A list of checkpoints exports their weight average (``load_average``)."""
    from .trainer import load_average

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        out = out.with_suffix(".onnx")
    ckpts = list(ckpt) if isinstance(ckpt, list | tuple) else [ckpt]
    model, cfg = load_average(ckpts)
    size = tuple(size or cfg.get("val_size") or (256, 144))  # type: ignore[assignment]
    orientation = str(cfg.get("orientation") or "fixed")
    match = orientation == "match" and size[0] != size[1]
    export_onnx(model, out, size, dynamic_size=match)  # type: ignore[arg-type]
    err = check_export(model, out, size)  # type: ignore[arg-type]
    if match:  # the portrait twin runs through the same graph
        err = max(err, check_export(model, out, (size[1], size[0])))
    info = {"arch": cfg["arch"], "arch_options": cfg.get("arch_options", {}), "seed": cfg.get("seed"),
            "num_classes": cfg["num_classes"], **(extra or {})}
    meta = cfg.get("meta") or {}
    if "val_percent" in meta and "test_percent" in meta:  # benchmarks must score it on the same split
        info["split"] = {"val_percent": float(meta["val_percent"]), "test_percent": float(meta["test_percent"])}
    if len(ckpts) > 1:
        info["averaged_checkpoints"] = len(ckpts)
    ex: dict[str, Any] = {"training": info}
    if default:
        ex = {"default": True, **ex}
    js = write_spec(out, name or out.stem, size, cfg["num_classes"], cfg["mean"], cfg["std"],  # type: ignore[arg-type]
                    description, ex, orientation="match" if match else "fixed")
    result: dict[str, Any] = {"onnx": str(out), "spec": str(js), "max_abs_diff": err,
                              "bytes": out.stat().st_size}
    if fp16:
        half = to_fp16(out, out.with_name(out.stem + ".fp16.onnx"))
        result["fp16"] = str(half)
    return result
