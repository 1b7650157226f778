"""Augmentation for the video-call domain.

Geometry: one affine warp per sample (scale, aspect, crop, flip, small
rotation, head-and-torso framing of full-body photos, zoom-out for
far-field people). Photometry: exposure, contrast, gamma, white balance,
saturation, blur, sensor noise, JPEG artefacts. Copy-paste: the labelled
person of one image composited onto another image, so a few hundred
labelled images make many more scenes. Background recolouring (off by
default): the hue of everything but the person turned, so red and
skin-coloured objects appear where the label says background. Colour
distractors (off by default): a few of the background's own regions
(flood-filled from a seed, so they follow the scene's object outlines)
painted red or skin-coloured, texture kept, still labelled background.
Cast shadows (off by default): the person's own silhouette, thrown on the
ground from the feet or on the wall behind, darkens the background there;
the label stays background, since a shadow marked as person is a common
false positive beside the subject in full-body photos.

Everything runs on uint8 with OpenCV, so a CPU core keeps up with training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .data import Sample


@dataclass(frozen=True)
class AugmentConfig:
    whole_p: float = 0.35  # keep the whole image (as inference sees it), only warped a little
    scale: tuple[float, float] = (0.45, 1.25)  # crop side as a fraction of the image (>1: zoom out)
    aspect: float = 0.35  # log-uniform jitter of the crop's aspect
    rotate: float = 10.0  # degrees
    flip_p: float = 0.5
    torso_p: float = 0.25  # crop the top of tall images: head-and-torso framing
    paste_p: float = 0.4  # copy-paste a person onto another image
    color_p: float = 0.9
    blur_p: float = 0.2
    noise_p: float = 0.3
    jpeg_p: float = 0.3
    bg_hue_p: float = 0.0  # turn the background's hue (labelled and people-free images): against the colour shortcut
    distract_p: float = 0.0  # paint 1-3 background regions red or skin-coloured: against the colour shortcut
    shadow_p: float = 0.0  # cast the person's shadow on the ground or the wall behind, labelled background


def _crop_box(rng: np.random.Generator, w: int, h: int, out_aspect: float, cfg: AugmentConfig,
              tall_person: bool) -> tuple[float, float, float, float]:
    """(cx, cy, cw, ch) of the source region that becomes the output."""
    if rng.random() < cfg.whole_p:
        s = rng.uniform(0.9, 1.1)
        return w / 2 + rng.uniform(-0.05, 0.05) * w, h / 2 + rng.uniform(-0.05, 0.05) * h, w * s, h * s
    if tall_person and rng.random() < cfg.torso_p:
        # video-call framing of a full-body photo: the top 35-60 % of the image
        ch = h * rng.uniform(0.35, 0.6)
        cw = ch * out_aspect * math.exp(rng.uniform(-cfg.aspect, cfg.aspect))
        cw = min(cw, w * 1.3)
        return w / 2 + rng.uniform(-0.1, 0.1) * w, ch / 2 + rng.uniform(-0.03, 0.08) * h, cw, ch
    s = rng.uniform(*cfg.scale)
    a = math.exp(rng.uniform(-cfg.aspect, cfg.aspect))
    # a crop of the image's own aspect, jittered: a stretch like inference's resize
    area = w * h * s * s
    img_aspect = w / h
    mix = rng.uniform(0, 1)  # between the image's aspect and the output's
    aspect = math.exp((1 - mix) * math.log(img_aspect) + mix * math.log(out_aspect)) * a
    ch = math.sqrt(area / aspect)
    cw = ch * aspect
    cx = rng.uniform(min(cw / 2, w / 2), max(w - cw / 2, w / 2))
    cy = rng.uniform(min(ch / 2, h / 2), max(h - ch / 2, h / 2))
    return cx, cy, cw, ch


def warp(img: np.ndarray, mask: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
         cfg: AugmentConfig, tall_person: bool = False, nearest_mask: bool = False,
         weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Random crop/scale/rotate/flip of (img, mask[, weight]) into ``size`` (w, h)."""
    h, w = img.shape[:2]
    ow, oh = size
    cx, cy, cw, ch = _crop_box(rng, w, h, ow / oh, cfg, tall_person)
    sx, sy = ow / cw, oh / ch
    ang = math.radians(rng.uniform(-cfg.rotate, cfg.rotate))
    flip = -1.0 if rng.random() < cfg.flip_p else 1.0
    c, s = math.cos(ang), math.sin(ang)
    # out = S * R * (p - centre) + out_centre, with an optional mirror
    m = np.array([[flip * sx * c, flip * sx * s], [-sy * s, sy * c]], np.float64)
    t = np.array([ow / 2, oh / 2]) - m @ np.array([cx, cy])
    M = np.hstack([m, t[:, None]]).astype(np.float32)
    interp = cv2.INTER_AREA if min(sx, sy) < 0.5 else cv2.INTER_LINEAR
    border = cv2.BORDER_REFLECT_101 if rng.random() < 0.5 else cv2.BORDER_CONSTANT
    fill = tuple(int(v) for v in rng.integers(0, 256, 3))
    out = cv2.warpAffine(img, M, size, flags=interp, borderMode=border, borderValue=fill)
    mflags = cv2.INTER_NEAREST if nearest_mask else cv2.INTER_LINEAR
    # reflected image border may mirror a person: the mask must follow it
    mout = cv2.warpAffine(mask, M, size, flags=mflags, borderMode=border, borderValue=0)
    # a constant border is plain background: taught, whatever the teachers said
    wout = None if weight is None else cv2.warpAffine(weight, M, size, flags=cv2.INTER_NEAREST,
                                                       borderMode=border, borderValue=255)
    return out, mout, wout


def copy_paste(dst: np.ndarray, dmask: np.ndarray, src: np.ndarray, smask: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Composite the person of (src, smask) onto dst at a random place and scale."""
    h, w = dst.shape[:2]
    ys, xs = np.nonzero(smask > 127)
    if len(xs) < 50:
        return dst, dmask
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    pw, ph = x1 - x0, y1 - y0
    s = rng.uniform(0.5, 1.0) * min(w / pw, h / ph)
    nw, nh = max(2, int(pw * s)), max(2, int(ph * s))
    person = cv2.resize(src[y0:y1, x0:x1], (nw, nh), interpolation=cv2.INTER_AREA)
    pm = cv2.resize(smask[y0:y1, x0:x1], (nw, nh), interpolation=cv2.INTER_AREA)
    px = int(rng.uniform(0, max(1, w - nw)))
    py = h - nh if rng.random() < 0.6 else int(rng.uniform(0, max(1, h - nh)))  # people stand on the bottom edge
    a = cv2.GaussianBlur(pm, (3, 3), 0).astype(np.float32)[..., None] / 255.0
    out, om = dst.copy(), dmask.copy()
    roi = out[py:py + nh, px:px + nw].astype(np.float32)
    out[py:py + nh, px:px + nw] = (roi * (1 - a) + person.astype(np.float32) * a).astype(np.uint8)
    om[py:py + nh, px:px + nw] = np.maximum(om[py:py + nh, px:px + nw], pm)
    return out, om


def photometric(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    x = img
    if rng.random() < cfg.color_p:
        f = x.astype(np.float32)
        gain = rng.uniform(0.6, 1.4) * rng.uniform(0.9, 1.1, size=3)  # exposure, white balance
        contrast = rng.uniform(0.7, 1.3)
        mean = f.mean()
        f = (f - mean) * contrast + mean
        f = f * gain.astype(np.float32)
        f = np.clip(f, 0, 255)
        gamma = math.exp(rng.uniform(-0.35, 0.35))
        f = 255.0 * (f / 255.0) ** gamma
        x = f.astype(np.uint8)
        if rng.random() < 0.5:
            hsv = cv2.cvtColor(x, cv2.COLOR_BGR2HSV)
            sat = rng.uniform(0.5, 1.4)
            hsv[..., 1] = np.clip(hsv[..., 1].astype(np.float32) * sat, 0, 255).astype(np.uint8)
            hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + int(rng.integers(-6, 7))) % 180).astype(np.uint8)
            x = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if rng.random() < cfg.blur_p:
        k = int(rng.choice([3, 5]))
        x = cv2.GaussianBlur(x, (k, k), 0)
    if rng.random() < cfg.noise_p:
        sigma = rng.uniform(2, 10)
        n = rng.normal(0, sigma, size=x.shape[:2] + (1,)) * rng.uniform(0.5, 1.0, size=3)
        x = np.clip(x.astype(np.float32) + n, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg_p:
        q = int(rng.integers(30, 90))
        ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            x = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return x


def recolour_background(img: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator,
                        p: float = 1.0) -> np.ndarray:
    """With chance ``p``, ``img`` (BGR uint8) with the hue of its background turned by 30-150 degrees and
    its saturation scaled; the person (``mask`` 0..255, person = high; None: no person) keeps its colours,
    blended over a soft edge. ``p`` = 0 draws nothing, so a recipe without it keeps its random stream."""
    if p <= 0 or rng.random() >= p:
        return img
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    shift = int(rng.integers(15, 76)) * (1 if rng.random() < 0.5 else -1)  # OpenCV hue is 0..179
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
    sat = rng.uniform(0.8, 1.6)  # often stronger: saturated red objects are the failure case
    hsv[..., 1] = np.clip(hsv[..., 1].astype(np.float32) * sat, 0, 255).astype(np.uint8)
    turned = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if mask is None or not mask.any():
        return turned
    keep = cv2.GaussianBlur(mask, (5, 5), 0).astype(np.float32)[..., None] / 255.0
    keep = np.maximum(keep, (mask > 127)[..., None])  # the labelled person keeps its exact colours
    return (img * keep + turned * (1.0 - keep)).round().astype(np.uint8)


def distractor_regions(img: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator,
                       count: int) -> np.ndarray:
    """Up to ``count`` regions of ``img``'s background (bool (h, w)): each one flood-filled from a random
    background seed with a random colour tolerance, so it follows the outline of a wall, a pan or a bag;
    kept when it covers 0.2-35 % of the image. The person (``mask`` > 0, dilated by a pixel) is never
    entered."""
    h, w = img.shape[:2]
    src = cv2.GaussianBlur(img, (3, 3), 0)  # sensor noise must not stop the fill at every pixel
    blocked = np.zeros((h + 2, w + 2), np.uint8)
    if mask is not None and mask.any():
        blocked[1:-1, 1:-1] = cv2.dilate((mask > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    out = np.zeros((h, w), bool)
    found = 0
    for _ in range(4 * count):  # a few seeds fall on regions too small or too large
        free = np.flatnonzero(blocked[1:-1, 1:-1].ravel() == 0)
        if found == count or not len(free):
            break
        y, x = divmod(int(free[rng.integers(len(free))]), w)
        fill = blocked.copy()
        tol = (float(rng.uniform(6, 24)),) * 3
        flags = 4 | cv2.FLOODFILL_MASK_ONLY | (2 << 8) | (cv2.FLOODFILL_FIXED_RANGE if rng.random() < 0.5 else 0)
        cv2.floodFill(src, fill, (x, y), (0, 0, 0), tol, tol, flags)
        region = fill[1:-1, 1:-1] == 2
        if 0.002 <= region.mean() <= 0.35:
            out |= region
            blocked[1:-1, 1:-1][region] = 1
            found += 1
    return out


def paint_distractors(img: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator,
                      p: float = 1.0) -> np.ndarray:
    """With chance ``p``, ``img`` (BGR uint8) with 1-3 background regions (``distractor_regions``) painted
    saturated red or a skin tone, their shading kept: red and skin-coloured things that the label calls
    background, beside the person and away from them, against the model's colour shortcut (red objects
    and walls marked as person). ``p`` = 0 draws nothing, so a recipe without it keeps its random stream."""
    if p <= 0 or rng.random() >= p:
        return img
    region = distractor_regions(img, mask, rng, int(rng.integers(1, 4)))
    if not region.any():
        return img
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    part = hsv[region].astype(np.float32)
    if rng.random() < 0.5:  # red (OpenCV hue 0..179 wraps at red)
        hue, sat = float(rng.uniform(-8, 8)), rng.uniform(140, 255)
    else:  # skin, light to dark
        hue, sat = float(rng.uniform(5, 20)), rng.uniform(50, 150)
    part[:, 0] = (hue + rng.uniform(-2, 2, len(part))) % 180  # a little variation, as real surfaces have
    part[:, 1] = np.clip(sat * rng.uniform(0.85, 1.15, len(part)), 0, 255)
    part[:, 2] = np.clip(part[:, 2] * rng.uniform(0.8, 1.2) + rng.uniform(0, 80), 0, 255)  # dark things too
    hsv[region] = part.round().astype(np.uint8)
    out = img.copy()  # only the painted pixels: the HSV round trip moves others by a level or two
    out[region] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[region]
    return out


def _shadow_matrix(rng: np.random.Generator, anchor: tuple[float, float], height: float) -> np.ndarray:
    """A 2x3 affine map of a silhouette to its shadow. Ground: mirrored at the feet (``anchor``),
    foreshortened and sheared to one side, as low sun or a lamp throws it. Wall: the silhouette moved a
    little and scaled, as a flash or a window throws it on the wall behind."""
    ax, ay = anchor
    if rng.random() < 0.6:  # ground
        sy = -rng.uniform(0.15, 0.6) if rng.random() < 0.7 else rng.uniform(0.15, 0.5)  # in front or behind
        shx = rng.uniform(-1.5, 1.5)
        a = np.array([[1.0, shx * abs(sy)], [0.0, sy]])
    else:  # wall
        k = rng.uniform(0.95, 1.15)
        a = np.array([[k, rng.uniform(-0.1, 0.1)], [0.0, k]])
        ax += rng.uniform(-0.15, 0.15) * height  # moves the silhouette as it scales about the feet
    t = np.array([ax, ay]) - a @ np.asarray(anchor)
    return np.hstack([a, t[:, None]]).astype(np.float32)


def cast_shadow(img: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator,
                p: float = 1.0) -> np.ndarray:
    """With chance ``p``, ``img`` (BGR uint8) with the shadows of its people (``mask`` 0..255, person = high;
    each connected region its own, from its lowest point) darkening the background by 25-65 %, soft-edged
    and a little blue, as shade under open sky is. The people themselves are not darkened and the mask is
    not changed: the shadow is background. ``p`` = 0 draws nothing, so a recipe without it keeps its
    random stream."""
    if p <= 0 or rng.random() >= p or mask is None:
        return img
    person = (mask > 127).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(person, connectivity=8)
    h, w = mask.shape
    min_area = max(50, int(0.005 * h * w))
    big = sorted((i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area),
                 key=lambda i: -stats[i, cv2.CC_STAT_AREA])  # the three largest cast one each
    if not big:
        return img
    shade = np.zeros((h, w), np.float32)
    for i in big[:3]:
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        feet = (x + bw / 2.0, float(y + bh))
        m = _shadow_matrix(rng, feet, bh)
        part = cv2.warpAffine((labels == i).astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR)
        np.maximum(shade, part, out=shade)
    soft = max(1, int(rng.uniform(0.005, 0.03) * max(h, w))) * 2 + 1
    shade = cv2.GaussianBlur(shade, (soft, soft), 0)
    shade *= mask == 0  # never on the person, their soft outline included
    dark = rng.uniform(0.25, 0.65)
    tint = np.array([1.0, 0.93, 0.85], np.float32) if rng.random() < 0.5 else np.ones(3, np.float32)  # BGR: bluish
    gain = 1.0 - shade[..., None] * dark * tint
    return np.clip(img.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)


def recolour(img: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """The background colour augmentations, in their fixed order (the random stream depends on it):
    recolouring, then distractors. Labelled photos and paste backgrounds (``mask`` None) alike."""
    img = recolour_background(img, mask, rng, cfg.bg_hue_p)
    return paint_distractors(img, mask, rng, cfg.distract_p)


def make_example(samples: list[Sample], index: int, size: tuple[int, int], rng: np.random.Generator,
                 cfg: AugmentConfig, num_classes: int = 1
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One augmented (image BGR uint8 (h,w,3), mask uint8 (h,w), weight uint8 (h,w) or None) at ``size``.

    Labelled samples may get another labelled person pasted on; teacher-labelled
    ones keep their weight map through the warp; negatives are warped like any image.
    """
    s = samples[index]
    img, mask = s.image, s.mask
    if num_classes == 1 and not s.soft and rng.random() < cfg.paste_p and len(samples) > 1:
        other = samples[int(rng.integers(len(samples)))]
        if not other.soft:
            # paste this sample's person onto the other image (its own person stays labelled)
            img, mask = copy_paste(other.image, other.mask, img, mask, rng)
    if num_classes == 1 and not s.soft:
        img = cast_shadow(img, mask, rng, cfg.shadow_p)
        img = recolour(img, mask, rng, cfg)
    tall = img.shape[0] > 1.3 * img.shape[1] and mask.any()
    img, mask, weight = warp(img, mask, size, rng, cfg, tall_person=tall, nearest_mask=num_classes > 1,
                             weight=s.weight)
    return photometric(img, rng, cfg), mask, weight
