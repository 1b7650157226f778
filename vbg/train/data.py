"""Labelled data: folders of image/mask pairs, a fixed validation split,
and an in-memory cache of decoded images.

Layouts understood by :func:`find_pairs`:

* ``DIR/images/*.jpg`` + ``DIR/masks/*.png`` (same stem), or
* ``DIR/<source>/images`` + ``DIR/<source>/masks`` for several sources
  (``../shared/data/person-seg`` has ``hs``, ``ccp``, ``coco128-person``).

Masks are 8-bit PNGs. Binary: 0 = background, >= 128 = person. Multi-class
(``num_classes > 1``): the pixel value is the class index. A mask smaller
than its image is resized to the image (nearest for class maps).

Splits are fixed by file name (hashes of ``source/stem``), so they never move
when files are added. Three parts (:func:`split_of`):

* ``test``: only ever reported, never chosen on (not the checkpoint, size,
  weights, threshold or augmentation). Its hash is salted, so it is
  independent of the validation split that earlier models were chosen on.
* ``val``: what choices are made on.
* ``train``: the rest.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import VbgError
from ..io.files import IMAGE_EXTS

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Pair:
    source: str
    image: Path
    mask: Path

    @property
    def key(self) -> str:
        return f"{self.source}/{self.image.stem}"


SPLITS = ("train", "val", "test")
# the labelled split every tool uses unless told otherwise (benchmarks assume it)
VAL_PERCENT = 15.0
TEST_PERCENT = 15.0


def _fraction(text: str) -> float:
    """The first 4 bytes of md5(text) as a fraction of 2^32."""
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:4], "big") / 2**32


def is_val(key: str, val_percent: float = VAL_PERCENT) -> bool:
    """The validation hash alone (before the test split takes its share)."""
    return _fraction(key) < val_percent / 100.0


def split_of(key: str, val_percent: float = VAL_PERCENT, test_percent: float = TEST_PERCENT) -> str:
    """``"test"``, ``"val"`` or ``"train"`` for a sample key.

    The test share is drawn first, from a salted hash; the validation share
    is the unsalted hash (the split every earlier model was validated on)
    less what went to test.
    """
    if _fraction("test:" + key) < test_percent / 100.0:
        return "test"
    return "val" if is_val(key, val_percent) else "train"


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


def split_pairs(pairs: list[Pair], val_percent: float = VAL_PERCENT,
                test_percent: float = TEST_PERCENT) -> dict[str, list[Pair]]:
    """``{"train": [...], "val": [...], "test": [...]}`` by :func:`split_of`."""
    out: dict[str, list[Pair]] = {k: [] for k in SPLITS}
    for p in pairs:
        out[split_of(p.key, val_percent, test_percent)].append(p)
    return out


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
    weight: np.ndarray | None = None  # uint8 0/255 per pixel: 0 = not taught (teachers disagree)

    @property
    def source(self) -> str:
        return self.key.split("/", 1)[0]


def load_samples(pairs: list[Pair], max_side: int | None = 400, num_classes: int = 1,
                 progress: bool = True) -> list[Sample]:
    from tqdm import tqdm

    out = []
    for p in tqdm(pairs, desc="decoding", unit="img", leave=False, mininterval=2.0, disable=not progress):
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
                frames.append((f"{path.parent.name}/{path.stem}#{i}", img))
    return frames
