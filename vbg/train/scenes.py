"""People-free scenes and cut-outs of people: what teaches the model what is
*not* a person.

* **Negatives**: folders of people-free photos (``../shared/data/scenes/indoor``,
  ``../shared/data/copy-paste/scenes``) become samples with all-background
  masks. Their split is fixed by file name like the labelled data's, with a
  larger test share: the people-free test set.
* **Cut-outs**: RGBA people with soft alpha (``copy-paste/people``), and the
  labelled people of the training split, cropped to their mask.
* :func:`compose` pastes 1-3 cut-outs onto a scene at varied scale and
  position: off centre, cut by the frame edge, and in webcam framing (head
  and shoulders, the bottom edge cutting the torso).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import VbgError
from ..io.files import IMAGE_EXTS
from .data import Sample, read_image, split_of

log = logging.getLogger(__name__)

# People-free sets are cheap to score, so their test share is larger.
NEGATIVE_VAL_PERCENT = 10.0
NEGATIVE_TEST_PERCENT = 25.0


@dataclass
class Cutout:
    image: np.ndarray  # BGR uint8, cropped to the person
    alpha: np.ndarray  # uint8 0..255, same (h, w)
    key: str


def _images_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))


def _shrink(img: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = img.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return img


def negative_key(root: Path, path: Path) -> str:
    """``<root name>/<path under root, no suffix>``, e.g. ``indoor/bedroom/00000165``."""
    return f"{root.name}/{path.relative_to(root).with_suffix('').as_posix()}"


def load_negatives(roots: list[Path], split: str, max_side: int | None = 400) -> list[Sample]:
    """People-free images of one split as samples with all-zero masks."""
    out = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise VbgError(f"negatives folder {root} not found", "pass a folder of people-free images")
        for p in _images_under(root):
            key = negative_key(root, p)
            if split_of(key, NEGATIVE_VAL_PERCENT, NEGATIVE_TEST_PERCENT) != split:
                continue
            img = _shrink(read_image(p), max_side)
            out.append(Sample(img, np.zeros(img.shape[:2], np.uint8), key))
    return out


def load_cutouts(roots: list[Path], max_side: int | None = 400) -> list[Cutout]:
    """RGBA PNGs of people: colour and alpha, cropped to the alpha's box."""
    out = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise VbgError(f"cut-out folder {root} not found", "pass a folder of RGBA PNGs of people")
        for p in _images_under(root):
            rgba = cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_UNCHANGED)
            if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
                log.warning("skipping %s: not an RGBA image", p)
                continue
            c = _crop_to(rgba[..., :3], rgba[..., 3], f"{root.name}/{p.stem}", max_side)
            if c is not None:
                out.append(c)
    if not out:
        raise VbgError(f"no RGBA cut-outs in {', '.join(map(str, roots))}", "pass folders of RGBA PNGs")
    return out


def _crop_to(img: np.ndarray, alpha: np.ndarray, key: str, max_side: int | None = None,
             min_pixels: int = 200) -> Cutout | None:
    ys, xs = np.nonzero(alpha > 127)
    if len(xs) < min_pixels:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    image = _shrink(np.ascontiguousarray(img[y0:y1, x0:x1]), max_side)
    a = np.ascontiguousarray(alpha[y0:y1, x0:x1])
    if a.shape != image.shape[:2]:
        a = cv2.resize(a, image.shape[1::-1], interpolation=cv2.INTER_AREA)
    return Cutout(image, a, key)


def cutouts_from_samples(samples: list[Sample]) -> list[Cutout]:
    """The labelled people of (training) samples, each image's whole mask as one cut-out."""
    out = []
    for s in samples:
        if s.soft:
            continue
        c = _crop_to(s.image, s.mask, s.key)
        if c is not None:
            out.append(c)
    return out


def _fit_background(bg: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of ``bg`` with the output's aspect, resized to ``size``."""
    ow, oh = size
    h, w = bg.shape[:2]
    s = rng.uniform(0.6, 1.0)
    ch = min(h, w * oh / ow) * s
    cw = ch * ow / oh
    x0 = rng.uniform(0, max(0.0, w - cw))
    y0 = rng.uniform(0, max(0.0, h - ch))
    m = np.array([[ow / cw, 0, -x0 * ow / cw], [0, oh / ch, -y0 * oh / ch]], np.float32)
    interp = cv2.INTER_AREA if cw > 2 * ow else cv2.INTER_LINEAR
    out = cv2.warpAffine(bg, m, size, flags=interp, borderMode=cv2.BORDER_REFLECT_101)
    return out[:, ::-1].copy() if rng.random() < 0.5 else out


def _place(person: Cutout, size: tuple[int, int], rng: np.random.Generator, webcam: bool
           ) -> tuple[float, float, float]:
    """(scale, x, y) of the cut-out's top-left corner in the output."""
    ow, oh = size
    ph, pw = person.alpha.shape
    if webcam:
        # head and shoulders: the person taller than the frame, head near the top
        target_h = oh * rng.uniform(1.1, 2.6)
        s = target_h / ph
        x = ow / 2 - pw * s / 2 + rng.uniform(-0.25, 0.25) * ow
        y = rng.uniform(0.02, 0.3) * oh
        return s, x, y
    target_h = oh * math.exp(rng.uniform(math.log(0.2), math.log(1.1)))
    s = min(target_h / ph, 1.2 * ow / pw)  # a wide cut-out (a group) stays about as wide as the frame
    w, target_h = pw * s, ph * s
    x = rng.uniform(-0.4 * w, max(-0.4 * w, ow - 0.6 * w))  # may be cut by the left or right edge
    if rng.random() < 0.6:  # standing on the floor, or cut by the bottom edge
        y = oh - target_h * rng.uniform(0.6, 1.1) - rng.uniform(0, 0.15) * oh
    else:
        y = rng.uniform(-0.2 * target_h, oh - 0.5 * target_h)
    return s, x, y


def paste(dst: np.ndarray, dmask: np.ndarray, person: Cutout, s: float, x: float, y: float,
          rng: np.random.Generator, flip: bool = False) -> None:
    """Composite ``person`` scaled by ``s`` with its corner at (x, y), in place.

    The person's exposure is pulled part of the way towards the scene's, so a
    pasted person cannot be told by its contrast alone.
    """
    oh, ow = dst.shape[:2]
    sx = -s if flip else s
    tx = x + (person.alpha.shape[1] * s if flip else 0.0)
    m = np.array([[sx, 0, tx], [0, s, y]], np.float32)
    interp = cv2.INTER_AREA if s < 0.7 else cv2.INTER_LINEAR
    a = cv2.warpAffine(person.alpha, m, (ow, oh), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if not a.any():
        return
    img = cv2.warpAffine(person.image, m, (ow, oh), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    af = a.astype(np.float32)[..., None] / 255.0
    inside = af[..., 0] > 0.5
    if inside.any() and rng.random() < 0.7:
        pm = img[inside].astype(np.float32).mean(0)
        bm = dst.reshape(-1, 3).astype(np.float32).mean(0)
        k = rng.uniform(0.0, 0.5)
        gain = ((bm + 10) / (pm + 10)) ** k
        img = np.clip(img.astype(np.float32) * gain, 0, 255)
    out = dst.astype(np.float32) * (1 - af) + img.astype(np.float32) * af
    dst[:] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    np.maximum(dmask, a, out=dmask)


def compose(bg: np.ndarray, people: list[Cutout], size: tuple[int, int], rng: np.random.Generator,
            webcam_p: float = 0.35, counts: tuple[float, ...] = (0.0, 0.6, 0.25, 0.15)
            ) -> tuple[np.ndarray, np.ndarray]:
    """A scene with ``len(counts) - 1`` or fewer pasted people: (image BGR, mask uint8) at ``size``.

    ``counts[k]`` is the chance of ``k`` people. The first may be in webcam
    framing; the others stand at random scales and places.
    """
    img = _fit_background(bg, size, rng)
    mask = np.zeros(img.shape[:2], np.uint8)
    n = int(rng.choice(len(counts), p=np.asarray(counts) / sum(counts)))
    webcam = rng.random() < webcam_p
    order = []
    for i in range(n):
        person = people[int(rng.integers(len(people)))]
        order.append((person, webcam and i == 0))
    # the webcam person is nearest the camera: pasted last, over the others
    for person, close in sorted(order, key=lambda t: t[1]):
        s, x, y = _place(person, size, rng, close)
        paste(img, mask, person, s, x, y, rng, flip=rng.random() < 0.5)
    return img, mask
