"""Dataset formats -> (train samples, validation samples).

* ``folder``: image/mask pairs (see :mod:`vbg.train.data`).
* ``pet``: Oxford-IIIT Pet: ``images/*.jpg`` and ``annotations/trimaps/*.png``
  with 1 = pet, 2 = background, 3 = border; mapped to classes 0 = pet,
  1 = background, 2 = border.
* ``coco``: COCO-style instances JSON; every ``person`` polygon of an image
  is rasterised into one binary mask.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..errors import VbgError
from .data import (
    SPLITS,
    TEST_PERCENT,
    VAL_PERCENT,
    Pair,
    Sample,
    find_pairs,
    load_samples,
    read_image,
    split_of,
    split_pairs,
)


def _shrink(img: np.ndarray, mask: np.ndarray, max_side: int | None, nearest: bool) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
    return img, mask


def pet_pairs(root: Path) -> list[Pair]:
    images, trimaps = root / "images", root / "annotations" / "trimaps"
    if not images.is_dir() or not trimaps.is_dir():
        raise VbgError(f"{root} is not an Oxford-IIIT Pet folder", "expect images/ and annotations/trimaps/")
    by_stem = {p.stem: p for p in trimaps.glob("*.png") if not p.name.startswith("._")}
    return [Pair("pet", p, by_stem[p.stem]) for p in sorted(images.glob("*.jpg")) if p.stem in by_stem]


def load_pet(pairs: list[Pair], max_side: int | None) -> list[Sample]:
    out = []
    for p in pairs:
        img = read_image(p.image)
        tri = cv2.imread(str(p.mask), cv2.IMREAD_GRAYSCALE)
        if tri is None:
            raise VbgError(f"cannot read trimap {p.mask}", "check the file")
        if tri.shape != img.shape[:2]:
            tri = cv2.resize(tri, img.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        cls = np.clip(tri.astype(np.int16) - 1, 0, 2).astype(np.uint8)  # 1,2,3 -> 0,1,2
        img, cls = _shrink(img, cls, max_side, nearest=True)
        out.append(Sample(img, cls, p.key))
    return out


def coco_person_masks(ann_file: Path, images_dir: Path, category: str = "person") -> list[tuple[Path, list]]:
    """(image path, list of polygons) for every image with a ``category`` instance."""
    data = json.loads(Path(ann_file).read_text())
    cat_ids = {c["id"] for c in data.get("categories", []) if c.get("name") == category}
    polys: dict[int, list] = {}
    for a in data.get("annotations", []):
        if a.get("category_id") in cat_ids and isinstance(a.get("segmentation"), list):
            polys.setdefault(a["image_id"], []).extend(a["segmentation"])
    out = []
    for im in data.get("images", []):
        if im["id"] in polys:
            out.append((images_dir / im["file_name"], polys[im["id"]]))
    return out


def rasterise(polygons: list, w: int, h: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    pts = [np.round(np.asarray(p, np.float64).reshape(-1, 2)).astype(np.int32) for p in polygons if len(p) >= 6]
    if pts:
        cv2.fillPoly(mask, pts, 255)
    return mask


def load_coco(root: Path, ann_file: Path | None, max_side: int | None) -> list[Sample]:
    if ann_file is None:
        cands = sorted(root.glob("*.json")) + sorted((root / "annotations").glob("instances*.json"))
        if not cands:
            raise VbgError(f"no COCO annotation JSON in {root}", "pass --coco-json")
        ann_file = cands[0]
    images_dir = root / "images" if (root / "images").is_dir() else root
    out = []
    for path, polys in coco_person_masks(ann_file, images_dir):
        img = read_image(path)
        mask = rasterise(polys, img.shape[1], img.shape[0])
        img, mask = _shrink(img, mask, max_side, nearest=False)
        out.append(Sample(img, np.where(mask >= 128, 255, 0).astype(np.uint8), f"coco/{path.stem}"))
    return out


def load_dataset(fmt: str, roots: list[Path], num_classes: int = 1, val_percent: float = VAL_PERCENT,
                 max_side: int | None = 400, coco_json: str | None = None,
                 test_percent: float = TEST_PERCENT, progress: bool = True) -> dict[str, list[Sample]]:
    """``{"train": [...], "val": [...], "test": [...]}``, split by file name (:func:`split_of`)."""
    samples: list[Sample] = []
    for root in roots:
        if fmt == "folder":
            samples += load_samples(find_pairs(root), max_side, num_classes, progress)
        elif fmt == "pet":
            samples += load_pet(pet_pairs(root), max_side)
        elif fmt == "coco":
            samples += load_coco(root, Path(coco_json) if coco_json else None, max_side)
        else:
            raise VbgError(f"unknown data format {fmt!r}", "use folder, pet or coco")
    out: dict[str, list[Sample]] = {k: [] for k in SPLITS}
    for s in samples:
        out[split_of(s.key, val_percent, test_percent)].append(s)
    if not out["train"]:
        raise VbgError("no training images left after the validation and test splits",
                       "add data or lower --val-percent / --test-percent")
    return out


__all__ = ["load_dataset", "split_pairs", "find_pairs"]
