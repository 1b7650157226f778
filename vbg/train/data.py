"""Labelled data: folders of image/mask pairs, a fixed validation split,
and an in-memory cache of decoded images.

Layouts understood by :func:`find_pairs`:

* ``DIR/images/*.jpg`` + ``DIR/masks/*.png`` (same stem), or
* ``DIR/<source>/images`` + ``DIR/<source>/masks`` for several sources
  (``../shared/data/person-seg`` has ``hs``, ``ccp``, ``coco128-person``).

Masks are 8-bit PNGs. Binary: 0 = background, >= 128 = person. Multi-class
(``num_classes > 1``): the pixel value is the class index. A mask smaller
than its image is resized to the image (nearest for class maps).

The validation split is fixed by file name (a hash of ``source/stem``), so
it never moves when files are added and is never trained on.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import VbgError

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class Pair:
    source: str
    image: Path
    mask: Path

    @property
    def key(self) -> str:
        return f"{self.source}/{self.image.stem}"


def is_val(key: str, val_percent: float = 15.0) -> bool:
    """Fixed split: the first 4 bytes of md5(key) as a fraction of 2^32."""
    h = int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "big")
    return h / 2**32 < val_percent / 100.0


def _pairs_in(images: Path, masks: Path, source: str) -> list[Pair]:
    by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    out = []
    for img in sorted(images.iterdir()):
        if img.suffix.lower() in IMAGE_EXTS and img.stem in by_stem:
            out.append(Pair(source, img, by_stem[img.stem]))
    return out


def find_pairs(root: str | Path) -> list[Pair]:
    root = Path(root)
    if (root / "images").is_dir() and (root / "masks").is_dir():
        pairs = _pairs_in(root / "images", root / "masks", root.name)
    elif root.is_dir():
        pairs = []
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            if (sub / "images").is_dir() and (sub / "masks").is_dir():
                pairs += _pairs_in(sub / "images", sub / "masks", sub.name)
    else:
        raise VbgError(f"data folder {root} not found", "pass a folder with images/ and masks/")
    if not pairs:
        raise VbgError(f"no image/mask pairs in {root}",
                       "expect images/*.jpg and masks/*.png with the same names")
    return pairs


def split_pairs(pairs: list[Pair], val_percent: float = 15.0) -> tuple[list[Pair], list[Pair]]:
    train = [p for p in pairs if not is_val(p.key, val_percent)]
    val = [p for p in pairs if is_val(p.key, val_percent)]
    return train, val


def read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise VbgError(f"cannot read image {path}", "check the file")
    return img


def read_mask(path: Path, size: tuple[int, int], num_classes: int = 1) -> np.ndarray:
    """Mask as uint8 at ``size`` (w, h): 0/255 for binary, class ids otherwise."""
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise VbgError(f"cannot read mask {path}", "check the file")
    if num_classes > 1:
        if m.shape[::-1] != size:
            m = cv2.resize(m, size, interpolation=cv2.INTER_NEAREST)
        return m
    if m.shape[::-1] != size:
        m = cv2.resize(m, size, interpolation=cv2.INTER_LINEAR)
    return np.where(m >= 128, 255, 0).astype(np.uint8)


def load_pair(p: Pair, max_side: int | None = None, num_classes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Decoded (image BGR, mask) at the image's size, optionally shrunk so the
    longer side is at most ``max_side`` (training never needs more)."""
    img = read_image(p.image)
    h, w = img.shape[:2]
    mask = read_mask(p.mask, (w, h), num_classes)
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        interp = cv2.INTER_NEAREST if num_classes > 1 else cv2.INTER_AREA
        mask = cv2.resize(mask, size, interpolation=interp)
    return img, mask


@dataclass
class Sample:
    image: np.ndarray  # BGR uint8
    mask: np.ndarray  # uint8: 0..255 person probability (binary) or class ids
    key: str
    soft: bool = False  # a teacher's soft mask, not a label


def load_samples(pairs: list[Pair], max_side: int | None = 400, num_classes: int = 1) -> list[Sample]:
    from tqdm import tqdm

    out = []
    for p in tqdm(pairs, desc="decoding", unit="img", leave=False, mininterval=2.0):
        img, mask = load_pair(p, max_side, num_classes)
        out.append(Sample(img, mask, p.key))
    return out


def video_frames(paths: list[Path], every: int, max_side: int = 400) -> list[tuple[str, np.ndarray]]:
    """Every ``every``-th frame of each video (BGR), shrunk to ``max_side``."""
    import av

    frames = []
    for path in paths:
        with av.open(str(path)) as box:
            for i, f in enumerate(box.decode(video=0)):
                if i % every:
                    continue
                img = f.to_ndarray(format="bgr24")
                h, w = img.shape[:2]
                if max(h, w) > max_side:
                    s = max_side / max(h, w)
                    img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
                frames.append((f"{path.stem}#{i}", img))
    return frames


def distill_samples(video_dirs: list[Path], teacher_spec: Path, every: int = 10) -> list[Sample]:
    """Unlabelled video frames with the teacher model's soft masks as targets."""
    from ..backends.onnxruntime import OnnxRuntimeBackend
    from ..spec import ModelSpec

    vids: list[Path] = []
    for d in video_dirs:
        d = Path(d)
        vids += sorted(p for p in (d.rglob("*") if d.is_dir() else [d])
                       if p.suffix.lower() in (".mkv", ".mp4", ".avi", ".mov", ".webm"))
    if not vids:
        raise VbgError(f"no videos in {', '.join(map(str, video_dirs))}", "check --distill")
    backend = OnnxRuntimeBackend(ModelSpec.load(teacher_spec))
    out = []
    for key, img in video_frames(vids, every):
        prob = backend.infer([img])[0]
        prob = cv2.resize(prob, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
        out.append(Sample(img, np.clip(prob * 255 + 0.5, 0, 255).astype(np.uint8), key, soft=True))
    backend.close()
    log.info("distillation: %d frames from %d videos", len(out), len(vids))
    return out
