"""Teacher labels for unlabelled images and video frames (training only).

An ensemble of teacher models (any spec: an ONNX model through vbg's ONNX
Runtime backend, or a ``.tflite`` file through ``ai-edge-litert``) labels
each image. The target is the teachers' mean probability; a pixel where the
teachers fall on different sides of 0.5 gets weight 0, so the student is
not taught either answer there.

The runtime never imports this module: teachers are training tooling.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import VbgError
from ..io.files import IMAGE_EXTS, VIDEO_EXTS
from ..spec import ModelSpec
from ..stages.preprocess import Preprocessor, decode_output
from .data import Sample, read_image, video_frames

log = logging.getLogger(__name__)



class TfliteTeacher:
    """A ``.tflite`` model behind the backend interface (``infer``), CPU only."""

    name = "tflite"

    def __init__(self, spec: ModelSpec, threads: int = 2) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise VbgError(f"teacher {spec.name} is a .tflite model", "pip install ai-edge-litert") from None
        if not spec.onnx.is_file():
            raise VbgError(f"teacher model {spec.onnx} not found", "see assets/models/README.md for how to get it")
        self.spec = spec
        self.interp = Interpreter(model_path=str(spec.onnx), num_threads=threads)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        self.out = self.interp.get_output_details()[0]["index"]
        self.pre = Preprocessor(spec)

    def infer(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        outs = []
        for f in frames:  # tflite models here have batch 1
            self.interp.set_tensor(self.inp, self.pre([f]))
            self.interp.invoke()
            outs.append(self.interp.get_tensor(self.out))
        return decode_output(self.spec, np.concatenate(outs))

    def close(self) -> None:
        self.interp = None  # type: ignore[assignment]


def open_teacher(spec_path: str | Path, threads: int = 2):  # type: ignore[no-untyped-def]
    spec = ModelSpec.load(spec_path)
    if spec.onnx.suffix.lower() == ".tflite":
        return TfliteTeacher(spec, threads)
    from ..backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(spec, threads=threads)


def ensemble_label(teachers: Sequence, img: np.ndarray, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(soft mask uint8, weight uint8 0/255) at the image's size.

    The weight is 0 where the teachers disagree: some say person (p >= 0.5 +
    margin) and some background (p < 0.5 - margin).
    """
    h, w = img.shape[:2]
    probs = [cv2.resize(t.infer([img])[0], (w, h), interpolation=cv2.INTER_LINEAR) for t in teachers]
    p = np.mean(probs, axis=0)
    yes = np.any([q >= 0.5 + margin for q in probs], axis=0)
    no = np.any([q < 0.5 - margin for q in probs], axis=0)
    weight = np.where(yes & no, 0, 255).astype(np.uint8)
    return np.clip(p * 255 + 0.5, 0, 255).astype(np.uint8), weight


def unlabelled_images(sources: Sequence[Path], every: int, max_side: int = 400) -> list[tuple[str, np.ndarray]]:
    """(key, BGR image) for every image under the sources and every ``every``-th video frame.

    A source is a folder, a file, or a glob of file names (``streets/part_B-*``).
    """
    out: list[tuple[str, np.ndarray]] = []
    for src in sources:
        src = Path(src)
        if not src.exists() and any(c in src.name for c in "*?["):  # a glob: streets/part_B-*
            files = sorted(p for p in src.parent.glob(src.name) if p.is_file())
            src = src.parent
        elif not src.exists():
            raise VbgError(f"unlabelled source {src} not found", "check --distill")
        else:
            files = sorted(p for p in (src.rglob("*") if src.is_dir() else [src]) if p.is_file())
        videos = [p for p in files if p.suffix.lower() in VIDEO_EXTS]
        for p in files:
            if p.suffix.lower() in IMAGE_EXTS:
                img = read_image(p)
                h, w = img.shape[:2]
                if max(h, w) > max_side:
                    s = max_side / max(h, w)
                    img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
                out.append((f"{src.name}/{p.stem}", img))
        out += video_frames(videos, every, max_side)
    return out


def teacher_samples(sources: Sequence[Path], teacher_specs: Sequence[Path], every: int = 3,
                    max_side: int = 400) -> list[Sample]:
    """Unlabelled images and video frames, labelled by the teachers' ensemble."""
    if not teacher_specs:
        raise VbgError("--distill needs --teacher SPEC.json", "name one or more teacher specs")
    images = unlabelled_images(sources, every, max_side)
    if not images:
        raise VbgError(f"no images or videos in {', '.join(map(str, sources))}", "check --distill")
    teachers = [open_teacher(s) for s in teacher_specs]
    out, ignored = [], 0.0
    try:
        for key, img in images:
            mask, weight = ensemble_label(teachers, img)
            ignored += float((weight == 0).mean())
            out.append(Sample(img, mask, key, soft=True, weight=weight))
    finally:
        for t in teachers:
            t.close()
    log.warning("teacher labels: %d images from %d teachers, %.1f %% of pixels ignored (teachers disagree)",
                len(out), len(teachers), 100 * ignored / len(out))
    return out
