"""Hard negatives cut from the labelled photos themselves (``vbg train --bg-crops``).

The people-free rooms teach that rooms are background, but the things that
fool the model inside portraits and street photos (clothing racks, banners,
red poles, shop fronts) come from the labelled photos' own backgrounds. So
each training photo gives its largest person-free rectangle (the label
dilated first, so hair and soft edges stay out), as an all-background
sample.

The labels of ``ccp`` and ``hs`` mark only the main person, so a crop may
hold an unlabelled bystander; teaching that as background would hurt. Every
crop is therefore shown to the teachers and kept only where each of them
sees less than ``max_teacher_area`` person (the rule ``../shared`` used to
select the people-free rooms).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .data import Sample

log = logging.getLogger(__name__)

PERSON_LEVEL = 8  # of 255: soft labels' faint edges count as person


def largest_free_rectangle(free: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the largest all-True axis-aligned rectangle of a bool grid
    (the histogram-and-stack method, O(rows x cols)); w = h = 0 when none."""
    rows, cols = free.shape
    heights = np.zeros(cols + 1, np.int64)  # a zero sentinel closes every run
    best = (0, 0, 0, 0)
    best_area = 0
    for r in range(rows):
        heights[:cols] = np.where(free[r], heights[:cols] + 1, 0)
        stack: list[int] = []
        for c in range(cols + 1):
            while stack and heights[stack[-1]] >= heights[c]:
                h = int(heights[stack.pop()])
                left = stack[-1] + 1 if stack else 0
                area = h * (c - left)
                if area > best_area:
                    best_area, best = area, (left, r - h + 1, c - left, h)
            stack.append(c)
    return best


def free_crop(image: np.ndarray, mask: np.ndarray, min_area: float = 0.10, max_aspect: float = 3.0,
              min_side: int = 64, margin: float = 0.03, grid: int = 64) -> np.ndarray | None:
    """The largest person-free rectangle of ``image`` (BGR), or None when it
    covers under ``min_area`` of the image, has a side under ``min_side``
    pixels, or is longer than ``max_aspect`` times its width (or the reverse).

    ``mask`` is the label (any value from ``PERSON_LEVEL`` up counts, so faint hair and motion blur
    of a soft mask stay out of the crop), dilated by ``margin`` of the
    image diagonal before the search; the search runs on a grid of about
    ``grid`` cells along the long side."""
    h, w = mask.shape[:2]
    s = grid / max(h, w)
    gw, gh = max(1, round(w * s)), max(1, round(h * s))
    person = mask >= PERSON_LEVEL
    # a cell with any person pixel in it is person (area-averaged floats, so thin limbs are kept)
    person = cv2.resize(person.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA) > 0
    r = max(1, round(margin * np.hypot(gw, gh)))
    person = cv2.dilate(person.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)) > 0
    x, y, cw, ch = largest_free_rectangle(~person)
    if cw == 0 or ch == 0:
        return None
    # grid cells back to pixels, rounding inwards so no person pixel creeps in
    x0, y0 = int(np.ceil(x * w / gw)), int(np.ceil(y * h / gh))
    x1, y1 = int(np.floor((x + cw) * w / gw)), int(np.floor((y + ch) * h / gh))
    pw, ph = x1 - x0, y1 - y0
    if pw < min_side or ph < min_side or pw * ph < min_area * w * h or max(pw / ph, ph / pw) > max_aspect:
        return None
    if (mask[y0:y1, x0:x1] >= PERSON_LEVEL).any():
        return None
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def background_crops(samples: Sequence[Sample], teachers: Sequence, max_teacher_area: float = 0.005,
                     **crop_options: float) -> list[Sample]:
    """All-background samples cut from labelled (training) ``samples``,
    each kept only if every teacher sees under ``max_teacher_area`` person in it."""
    out: list[Sample] = []
    tried = refused = 0
    for s in samples:
        if s.soft:
            continue
        crop = free_crop(s.image, s.mask, **crop_options)  # type: ignore[arg-type]
        if crop is None:
            continue
        tried += 1
        if teachers and max(float((t.infer([crop])[0] >= 0.5).mean()) for t in teachers) >= max_teacher_area:
            refused += 1
            continue
        out.append(Sample(crop, np.zeros(crop.shape[:2], np.uint8), f"bgcrop/{s.key}"))
    log.warning("background crops: %d of %d labelled photos gave a person-free crop; the teachers refused %d "
                "of them (someone unlabelled in it), %d kept", tried, len(samples), refused, len(out))
    return out


def teacher_background_crops(samples: Sequence[Sample], teacher_specs: Sequence[Path]) -> list[Sample]:
    from .teachers import open_teacher

    teachers = [open_teacher(p) for p in teacher_specs]
    try:
        return background_crops(samples, teachers)
    finally:
        for t in teachers:
            t.close()
