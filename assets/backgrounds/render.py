"""Render the bundled backgrounds procedurally (numpy + OpenCV only).

Every scene is drawn from code: gradients, value-noise, simple shapes and a
camera-like defocus. Nothing is copied from elsewhere. Rendering is
deterministic (a fixed seed per scene) and resolution independent (shapes
and blur radii are given in fractions of the frame), so a small render looks
like a scaled-down copy of the bundled 1920x1080 JPEG.

    python assets/backgrounds/render.py                 # all scenes, 1920x1080
    python assets/backgrounds/render.py beach --size 960x540 --out /tmp
"""

from __future__ import annotations

import argparse
import logging
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("render")

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 1920, 1080
JPEG_QUALITY = 88

Img = np.ndarray  # float32 (H, W, 3) linear-ish RGB in [0, 1+]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
class Scene:
    """Coordinate grids and a seeded RNG for one render.

    ``x`` runs 0..aspect left to right and ``y`` 0..1 top to bottom, so
    distances are in units of the frame height whatever the resolution.
    """

    def __init__(self, name: str, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.aspect = width / height
        self.rng = np.random.default_rng(zlib.crc32(name.encode()))
        xs = (np.arange(width, dtype=np.float32) + 0.5) / height
        ys = (np.arange(height, dtype=np.float32) + 0.5) / height
        self.x, self.y = np.meshgrid(xs, ys)

    # sizes -----------------------------------------------------------------
    def px(self, frac: float) -> float:
        """A length given as a fraction of the frame height, in pixels."""
        return frac * self.h

    def pt(self, x: float, y: float) -> tuple[int, int]:
        """Normalised (x in 0..aspect, y in 0..1) -> integer pixel (for cv2 drawing)."""
        return int(round(x * self.h)), int(round(y * self.h))

    # noise -----------------------------------------------------------------
    def noise(self, cells_x: float, cells_y: float) -> np.ndarray:
        """Smooth value noise in [0, 1] with about ``cells`` features across the frame."""
        cx, cy = max(2, int(round(cells_x))), max(2, int(round(cells_y)))
        grid = self.rng.random((cy + 3, cx + 3)).astype(np.float32)
        # Resize a padded grid and crop, so the borders look like the middle.
        bw = int(np.ceil(self.w * (cx + 3) / cx))
        bh = int(np.ceil(self.h * (cy + 3) / cy))
        interp = cv2.INTER_CUBIC if bw >= cx + 3 and bh >= cy + 3 else cv2.INTER_AREA
        big = cv2.resize(grid, (bw, bh), interpolation=interp)
        ox, oy = (bw - self.w) // 2, (bh - self.h) // 2
        return np.clip(big[oy:oy + self.h, ox:ox + self.w], 0.0, 1.0)

    def fbm(self, cells_x: float, cells_y: float, octaves: int = 4, gain: float = 0.5) -> np.ndarray:
        """Fractal sum of value noise, normalised to [0, 1]."""
        out = np.zeros((self.h, self.w), np.float32)
        amp, total = 1.0, 0.0
        for i in range(octaves):
            out += amp * self.noise(cells_x * 2 ** i, cells_y * 2 ** i)
            total += amp
            amp *= gain
        return out / total

    def ridge(self, n: int, octaves: int = 6, rough: float = 0.55) -> np.ndarray:
        """1-D fractal profile sampled at every pixel column, roughly in [-1, 1]."""
        xs = np.linspace(0.0, 1.0, self.w, dtype=np.float32)
        out = np.zeros(self.w, np.float32)
        amp = 1.0
        for i in range(octaves):
            k = n * 2 ** i + 1
            pts = self.rng.uniform(-1, 1, k).astype(np.float32)
            out += amp * np.interp(xs, np.linspace(0, 1, k), pts).astype(np.float32)
            amp *= rough
        return out / 1.6

    # images ----------------------------------------------------------------
    def blank(self, rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Img:
        img = np.empty((self.h, self.w, 3), np.float32)
        img[:] = rgb
        return img

    def blur(self, img: np.ndarray, sigma_frac: float) -> np.ndarray:
        s = sigma_frac * self.h
        return img if s < 0.3 else cv2.GaussianBlur(img, (0, 0), s)


def rgb(hexstr: str) -> np.ndarray:
    h = hexstr.lstrip("#")
    return np.array([int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4)], np.float32) ** 2.2


def lerp(a, b, t):
    t = np.asarray(t, np.float32)
    if t.ndim == 2 and (np.ndim(a) in (1, 3) or np.ndim(b) in (1, 3)):  # colour images
        t = t[..., None]
    return a + (b - a) * t


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def gradient(scene: Scene, stops: list[tuple[float, str]], t: np.ndarray) -> Img:
    """Piecewise-linear colour ramp over ``t`` (stops: (position, '#rrggbb'))."""
    pos = np.array([p for p, _ in stops], np.float32)
    cols = np.stack([rgb(c) for _, c in stops])
    out = np.empty((scene.h, scene.w, 3), np.float32)
    for c in range(3):
        out[..., c] = np.interp(t, pos, cols[:, c])
    return out


def over(img: Img, color, alpha: np.ndarray) -> Img:
    """Paint ``color`` (RGB or image) over ``img`` with coverage ``alpha``."""
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    return img * (1.0 - a) + np.asarray(color, np.float32) * a


def shape_mask(scene: Scene, draw: Callable[[np.ndarray], None], soft: float = 0.0) -> np.ndarray:
    """Coverage in [0, 1] of shapes drawn by ``draw(mask_u8)`` (anti-aliased, optional soft edge)."""
    m = np.zeros((scene.h, scene.w), np.uint8)
    draw(m)
    f = m.astype(np.float32) / 255.0
    return scene.blur(f, soft) if soft > 0 else f


def glow(scene: Scene, cx: float, cy: float, radius: float, power: float = 2.0) -> np.ndarray:
    d2 = ((scene.x - cx) ** 2 + (scene.y - cy) ** 2) / (radius * radius)
    return np.exp(-(d2 ** (power / 2.0))).astype(np.float32)


def finish(scene: Scene, img: Img, *, vignette: float = 0.25, grain: float = 0.012,
           bloom: float = 0.0, bloom_threshold: float = 0.75) -> np.ndarray:
    """Camera look: bloom on highlights, vignette, grain; linear RGB -> sRGB-ish BGR uint8."""
    if bloom > 0:
        hi = np.maximum(img - bloom_threshold, 0.0)
        img = img + bloom * (scene.blur(hi, 0.02) + 0.5 * scene.blur(hi, 0.08))
    cx, cy = scene.aspect / 2, 0.5
    r2 = ((scene.x - cx) / scene.aspect * 2) ** 2 + ((scene.y - cy) * 2) ** 2
    img = img * (1.0 - vignette * smoothstep(0.3, 2.0, r2))[..., None]
    img = 1.0 - np.exp(-img * 1.6)  # soft shoulder instead of hard clipping
    img = img / (1.0 - np.exp(-1.6))
    out = np.clip(img, 0.0, 1.0) ** (1 / 2.2)
    # Grain at ~1.5 px scale (a sensor's, not per-pixel noise that bloats the JPEG),
    # plus dither so smooth gradients do not band.
    g = scene.rng.standard_normal((scene.h, scene.w)).astype(np.float32)
    g = cv2.GaussianBlur(g, (0, 0), max(0.6, scene.px(0.0012))) * 2.0
    out = out + grain * g[..., None] + scene.rng.uniform(-0.5, 0.5, out.shape).astype(np.float32) / 255.0
    bgr = np.clip(out[..., ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(bgr)


def fill_poly(scene: Scene, pts: list[tuple[float, float]]) -> np.ndarray:
    arr = np.array([scene.pt(x, y) for x, y in pts], np.int32)
    return shape_mask(scene, lambda m: cv2.fillPoly(m, [arr], 255, cv2.LINE_AA))


# --------------------------------------------------------------------------
# scenes
# --------------------------------------------------------------------------
def beach(scene: Scene) -> np.ndarray:
    x, y, A = scene.x, scene.y, scene.aspect
    horizon = 0.50
    sun_x, sun_y = 0.70 * A, 0.20

    # Sky: deep blue overhead to hazy pale blue at the horizon, warm near the sun.
    t = np.clip(y / horizon, 0, 1)
    img = gradient(scene, [(0.0, "#2f6fb8"), (0.45, "#5b9bd8"), (0.85, "#a9d0ef"), (1.0, "#dbeaf3")], t)
    sun = glow(scene, sun_x, sun_y, 0.35)
    img = img + rgb("#fff0c8") * (0.55 * sun + 0.9 * glow(scene, sun_x, sun_y, 0.08))[..., None]
    img = over(img, rgb("#fffdf2") * 1.6, glow(scene, sun_x, sun_y, 0.035, power=6))

    # Soft fair-weather clouds, wider than tall, thinning towards the horizon.
    c = scene.fbm(3.5, 7, octaves=5)
    cloud = smoothstep(0.56, 0.75, c) * smoothstep(horizon, 0.12, y) * 0.85
    shade = 1.0 - 0.25 * smoothstep(0.6, 0.85, scene.fbm(6, 12, 3))
    cloud_col = lerp(rgb("#f4f7fb"), rgb("#c9d6e6"), 1 - shade)
    img = over(img, cloud_col, cloud)

    # Distant island with a hazy green-blue silhouette on the left.
    prof = scene.ridge(6, octaves=6, rough=0.5)
    xs = x[0] / A
    island_h = 0.075 * np.exp(-((xs - 0.2) / 0.13) ** 2) + 0.02 * np.exp(-((xs - 0.36) / 0.05) ** 2)
    top = horizon - island_h * (1 + 0.25 * prof) + 0.004
    island = smoothstep(0.0, 0.0025, y - top[None, :]) * (island_h[None, :] > 0.003) * (y < horizon + 0.002)
    isl_col = lerp(rgb("#6f8fa0"), rgb("#5d7f86"), smoothstep(horizon - 0.08, horizon, y))
    img = over(img, isl_col, island * 0.9)

    # Sea in perspective: a sum of directional swells in ground-plane
    # coordinates (u across, v into the distance), each faded out where it
    # would alias near the horizon. Slope facing the sky reads lighter.
    below = np.maximum(y - horizon, 1e-4)
    u, v = (x - sun_x) / below * 0.08, 0.08 / below
    px = 1.0 / scene.h
    height = np.zeros_like(x)
    slope = np.zeros_like(x)
    for _ in range(24):
        ang = scene.rng.uniform(-0.9, 0.9)
        k = scene.rng.uniform(20, 120)
        kx, kv = k * np.sin(ang), k * np.cos(ang)
        amp = 1.0 / k ** 0.6
        # Screen-space frequency: d(phase)/dy = kv * 0.08 / below^2.
        fade = np.exp(-(kv * 0.08 / below ** 2 * px * 1.8) ** 2)
        ph = kx * u + kv * v + scene.rng.uniform(0, 2 * np.pi)
        height += amp * fade * np.sin(ph)
        slope += amp * fade * kv * np.cos(ph)
    slope /= 2.5 * slope.std() + 1e-6
    height /= 2.5 * height.std() + 1e-6
    shore = 0.70 + 0.012 * scene.ridge(5, octaves=4, rough=0.5)[None, :]
    sea_t = np.clip((y - horizon) / (shore - horizon), 0, 1)
    sea = gradient(scene, [(0.0, "#3d74a0"), (0.3, "#2c86ad"), (0.7, "#37abbd"), (1.0, "#83d8cf")], sea_t)
    patches = scene.fbm(A * 4, 10, 3)
    sea = sea * (0.9 + 0.22 * patches + 0.3 * np.clip(slope, -1, 1) * smoothstep(0.0, 0.05, below))[..., None]
    # Sun path: glitter on the wave crests tilted towards the camera, in a
    # column that widens towards the viewer.
    col = np.exp(-((x - sun_x) / (0.015 + 0.5 * below)) ** 2)
    spark = smoothstep(0.3, 0.9, height) * smoothstep(0.0, 0.7, -slope + 0.3) * col
    glints = smoothstep(0.62, 0.85, scene.noise(A * 70, 320)) * smoothstep(-0.3, 0.8, height)
    sea = sea + rgb("#fff4d6") * (2.0 * spark + 2.2 * glints * col
                                  + 0.6 * col * smoothstep(0.05, 0.0, below))[..., None]
    sea = lerp(sea, rgb("#bcd8ea"), smoothstep(0.02, 0.0, below) * 0.45)  # haze at the horizon
    sea_mask = (1.0 - island * (y < horizon + 0.002))
    img = over(img, sea, smoothstep(horizon - 0.0008, horizon + 0.0008, y) * sea_mask)

    # Wet sand, the swash with its foam line, and dry sand with grain and
    # gentle wind-shaped relief.
    d = y - shore
    grain_n = scene.noise(A * 420, 420) - 0.5
    dunes = scene.fbm(A * 2.5, 4, 4)
    bumps = scene.fbm(A * 14, 20, 3) * smoothstep(shore, shore + 0.25, y)
    relief = (np.gradient(dunes, axis=1) * scene.w * 0.02 + np.gradient(dunes, axis=0) * scene.h * 0.01
              + (np.gradient(bumps, axis=1) + np.gradient(bumps, axis=0)) * scene.h * 0.003)
    sand_t = np.clip((y - shore) / (1.0 - shore), 0, 1)
    sand = gradient(scene, [(0.0, "#c9ad84"), (0.25, "#e2cba2"), (1.0, "#ecd9b6")], sand_t)
    sand = sand * (1.0 + 0.10 * grain_n + 0.9 * relief)[..., None]
    sand = sand * (0.95 + 0.10 * scene.fbm(6, 3, 3))[..., None]
    wet = smoothstep(0.05, 0.0, d + 0.01 * scene.fbm(A * 6, 2, 3))
    sand = lerp(sand, sand * np.array([0.70, 0.68, 0.66], np.float32), wet)
    sand = lerp(sand, rgb("#9fc8cc") * 0.95, smoothstep(0.014, 0.0, d) * 0.55)  # thin water film
    img = over(img, sand, smoothstep(-0.002, 0.002, d))
    lace = scene.fbm(A * 22, 55, 4)
    wob = 0.004 * (scene.fbm(A * 8, 3, 3) - 0.5)
    line1 = np.exp(-((d + 0.002 + wob) / (0.004 + 0.003 * lace)) ** 2)
    foam = line1 * smoothstep(0.3, 0.55, lace)
    foam += 0.6 * np.exp(-((d + 0.02 + 3 * wob) / 0.004) ** 2) * smoothstep(0.45, 0.7, lace)
    foam += 0.35 * np.exp(-((d + 0.045 + 5 * wob) / 0.003) ** 2) * smoothstep(0.5, 0.7, lace)
    img = over(img, rgb("#f4fafa") * 1.05, np.clip(foam, 0, 1) * 0.92)

    # Camera: the person is close, so the scene is softly out of focus, more
    # so for the near sand than the far horizon.
    near = smoothstep(0.62, 1.0, y)[..., None]
    img = lerp(scene.blur(img, 0.0022), scene.blur(img, 0.005), near)

    # A palm frond hanging into the top-left corner, close to the camera and
    # so strongly defocused; sunlight shines through its leaflets.
    frond = palm_frond(scene, [(-0.08, -0.06), (0.25, -0.02), (0.52, 0.2)], leaf=0.2, seed=1)
    frond = np.maximum(frond, palm_frond(scene, [(-0.06, 0.02), (0.1, 0.12), (0.22, 0.38)], leaf=0.13, seed=2))
    frond = scene.blur(frond, 0.006)
    leaf_col = lerp(rgb("#1f3b18"), rgb("#6f8f2a"), glow(scene, sun_x, sun_y, 0.9))
    img = over(img, leaf_col, frond * 0.97)
    return finish(scene, img, vignette=0.22, bloom=0.35, bloom_threshold=0.85)


def palm_frond(scene: Scene, ctrl: list[tuple[float, float]], leaf: float, seed: int) -> np.ndarray:
    """Coverage of a palm frond: a curved rib (quadratic Bezier through ``ctrl``)
    with drooping, tapering leaflets on both sides."""
    rng = np.random.default_rng(seed)
    p0, p1, p2 = (np.array(p, np.float64) for p in ctrl)
    ts = np.linspace(0.0, 1.0, 60)
    spine = ((1 - ts) ** 2)[:, None] * p0 + (2 * (1 - ts) * ts)[:, None] * p1 + (ts ** 2)[:, None] * p2
    tang = np.gradient(spine, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    polys = []
    for i in range(4, len(ts), 2):
        t = ts[i]
        length = leaf * np.sin(np.pi * (0.15 + 0.8 * t)) * rng.uniform(0.8, 1.1)
        for side in (-1, 1):
            # Leaflets leave the rib at ~50 degrees and droop under gravity.
            ang = np.arctan2(tang[i, 1], tang[i, 0]) + side * np.radians(rng.uniform(40, 60))
            d = np.array([np.cos(ang), np.sin(ang)])
            tip = spine[i] + d * length + np.array([0.0, 0.35 * length])
            mid = spine[i] + d * length * 0.5 + np.array([0.0, 0.08 * length])
            n = np.array([-d[1], d[0]]) * length * 0.05
            polys.append(np.array([spine[i] - n, mid - n * 1.2, tip, mid + n * 1.2, spine[i] + n]))
    spine_pts = np.round(spine * scene.h).astype(np.int32)
    lw = max(1, int(round(scene.px(0.006))))

    def draw(m: np.ndarray) -> None:
        cv2.polylines(m, [spine_pts], False, 255, lw, cv2.LINE_AA)
        cv2.fillPoly(m, [np.round(p * scene.h).astype(np.int32) for p in polys], 255, cv2.LINE_AA)

    return shape_mask(scene, draw)


def box(img: Img, scene: Scene, x0: float, y0: float, x1: float, y1: float, color) -> None:
    """Fill an axis-aligned rectangle (normalised coordinates) in place."""
    cv2.rectangle(img, scene.pt(x0, y0), scene.pt(x1, y1), tuple(float(c) for c in color), -1)


def poly(img: Img, scene: Scene, pts, color) -> None:
    arr = np.round(np.asarray(pts, np.float64) * scene.h).astype(np.int32)
    cv2.fillPoly(img, [arr], tuple(float(c) for c in color))


def leaf(img: Img, scene: Scene, base: tuple[float, float], angle: float, length: float,
         width: float, color: np.ndarray) -> None:
    """A pointed leaf from ``base`` towards ``angle`` (radians), with a darker midrib."""
    t = np.linspace(0, 1, 24)
    half = width * np.sin(np.pi * t) ** 0.8 * (1 - 0.3 * t)
    d = np.array([np.cos(angle), np.sin(angle)])
    n = np.array([-d[1], d[0]])
    bx = np.array(base)
    side1 = bx + np.outer(t * length, d) + np.outer(half, n)
    side2 = bx + np.outer(t * length, d) - np.outer(half, n)
    poly(img, scene, np.vstack([side1, side2[::-1]]), color)
    poly(img, scene, np.vstack([side1[::2], (bx + np.outer(t * length, d))[::-2]]), color * 1.25)
    cv2.line(img, scene.pt(*bx), scene.pt(*(bx + d * length * 0.9)), tuple(float(c) for c in color * 0.7),
             max(1, int(scene.px(0.002))), cv2.LINE_AA)


def books(img: Img, scene: Scene, x0: float, x1: float, shelf_y: float, rng: np.random.Generator,
          palette: list[str], max_h: float = 0.13) -> None:
    """A row of book spines standing on a shelf top at ``shelf_y``, with the odd gap and stack."""
    cols = [rgb(c) for c in palette]
    x = x0 + rng.uniform(0, 0.02)
    while x < x1:
        r = rng.random()
        if r < 0.04:  # a gap
            x += rng.uniform(0.02, 0.06)
            continue
        if r < 0.1 and x1 - x > 0.1:  # a small stack lying flat
            w = rng.uniform(0.07, 0.1)
            y = shelf_y
            for _ in range(int(rng.integers(2, 5))):
                th = rng.uniform(0.012, 0.022)
                c = cols[int(rng.integers(len(cols)))] * rng.uniform(0.8, 1.1)
                off = rng.uniform(-0.006, 0.006)
                box(img, scene, x + off, y - th, x + off + w, y, c)
                box(img, scene, x + off, y - th, x + off + w, y - th * 0.85, c * 1.3)
                y -= th
            x += w + 0.01
            continue
        w = rng.uniform(0.012, 0.03)
        h = rng.uniform(0.6, 1.0) * max_h
        c = cols[int(rng.integers(len(cols)))] * rng.uniform(0.75, 1.15)
        box(img, scene, x, shelf_y - h, x + w, shelf_y, c)
        # Spine details: a light band, a title block, darker edges.
        yb = shelf_y - h * rng.uniform(0.2, 0.8)
        box(img, scene, x, yb, x + w, yb + h * 0.05, c * 1.6)
        box(img, scene, x + w * 0.25, shelf_y - h * 0.9, x + w * 0.75, shelf_y - h * 0.6, c * 1.35)
        box(img, scene, x + w * 0.85, shelf_y - h, x + w, shelf_y, c * 0.6)
        x += w + rng.uniform(0.0, 0.003)


def office(scene: Scene) -> np.ndarray:
    x, y, A = scene.x, scene.y, scene.aspect
    rng = scene.rng
    floor_y = 0.83
    win = (0.10, 0.10, 0.68, 0.66)  # window x0, y0, x1, y1

    # Back wall, warm grey, lit from the window on the left.
    img = scene.blank(rgb("#cfc8bd"))
    img *= (0.95 + 0.08 * scene.fbm(3, 2, 3))[..., None]
    # Floor: warm oak with long boards running away from the camera.
    boards = np.floor(x * 9 + 0.4 * (x - A / 2) * (y - floor_y) * 9).astype(np.int32)
    plank = (boards * 7919 % 97) / 97.0
    floor = lerp(rgb("#7a5f48"), rgb("#9a7a5c"), plank) * (0.85 + 0.2 * scene.fbm(A * 30, 3, 2))[..., None]
    floor_m = smoothstep(floor_y - 0.001, floor_y + 0.001, y)
    img = over(img, floor, floor_m)
    box(img, scene, 0, floor_y - 0.018, A, floor_y, rgb("#e8e3da"))  # skirting board

    # The window: bright sky and blown-out garden greenery, white frame.
    wx0, wy0, wx1, wy1 = win
    outside = gradient(scene, [(0.0, "#dcebf7"), (0.5, "#eef5f7"), (1.0, "#f4f6f0")], (y - wy0) / (wy1 - wy0))
    trees = smoothstep(0.48, 0.56, scene.fbm(10, 10, 5, gain=0.6) + 0.6 * (y - 0.4))
    foliage = lerp(rgb("#4f7a45"), rgb("#a9c77f"), scene.fbm(30, 30, 3)) * 1.1
    outside = lerp(outside * 1.25, foliage, trees * 0.9)
    inside = (x > wx0) & (x < wx1) & (y > wy0) & (y < wy1)
    img = np.where(inside[..., None], outside, img)
    frame_col = rgb("#f2efe9")
    t = 0.016
    for bx0, by0, bx1, by1 in ((wx0 - t, wy0 - t, wx1 + t, wy0 + t / 2), (wx0 - t, wy1 - t / 2, wx1 + t, wy1 + t * 1.6),
                               (wx0 - t, wy0 - t, wx0 + t / 2, wy1 + t), (wx1 - t / 2, wy0 - t, wx1 + t, wy1 + t),
                               ((wx0 + wx1) / 2 - t / 2, wy0, (wx0 + wx1) / 2 + t / 2, wy1),
                               (wx0, wy0 + 0.33 * (wy1 - wy0) - t / 3, wx1, wy0 + 0.33 * (wy1 - wy0) + t / 3)):
        box(img, scene, bx0, by0, bx1, by1, frame_col * 0.78)
    box(img, scene, wx0 - 0.03, wy1 + t * 1.6, wx1 + 0.03, wy1 + t * 2.6, rgb("#d9d4cb"))  # sill

    # Floating shelves on the right with books, a plant and a vase.
    sx0, sx1 = 1.08, 1.70
    shelf_col = rgb("#9b7650")
    palette = ["#7d2e2e", "#2d4a6b", "#c9a45c", "#3f5e4a", "#d8d0c0", "#5a4a6e", "#b8643a", "#26303b",
               "#e0b8a0", "#6d7d8a"]
    shelves = (0.25, 0.44)
    for sy in shelves:
        books(img, scene, sx0 + 0.02, sx1 - 0.17, sy, rng, palette, max_h=0.12)
        box(img, scene, sx0, sy, sx1, sy + 0.016, shelf_col)
        box(img, scene, sx0, sy + 0.013, sx1, sy + 0.016, shelf_col * 0.7)
    # A small print leaning at the top shelf's end, a plant on the lower one.
    poly(img, scene, [(sx1 - 0.15, shelves[0]), (sx1 - 0.015, shelves[0]), (sx1 - 0.005, 0.135),
                      (sx1 - 0.135, 0.135)], rgb("#2b2622"))
    poly(img, scene, [(sx1 - 0.14, shelves[0] - 0.01), (sx1 - 0.025, shelves[0] - 0.01), (sx1 - 0.017, 0.145),
                      (sx1 - 0.128, 0.145)], rgb("#ece6da"))
    art = gradient(scene, [(0.0, "#d9a27a"), (0.5, "#c27a5a"), (1.0, "#5d7f8c")], (y - 0.16) / 0.07)
    art_m = ((x > sx1 - 0.125) & (x < sx1 - 0.03) & (y > 0.16) & (y < 0.23)).astype(np.float32)
    img = over(img, art, art_m * (0.4 + 0.6 * (y > 0.2 - 0.02 * np.sin((x - sx1) * 40))))
    pot_top = shelves[1] - 0.05
    poly(img, scene, [(sx1 - 0.12, pot_top), (sx1 - 0.04, pot_top), (sx1 - 0.05, shelves[1]),
                      (sx1 - 0.11, shelves[1])], rgb("#c98f6a"))
    for _ in range(14):
        ang = -np.pi / 2 + rng.uniform(-1.3, 1.3)
        leaf(img, scene, (sx1 - 0.08 + rng.uniform(-0.02, 0.02), pot_top), ang, rng.uniform(0.05, 0.09), 0.012,
             rgb("#4f7a3a") * rng.uniform(0.7, 1.2))

    # Window light: a warm glow across the wall, falling off to the right,
    # a soft patch of sunlight on the floor, and contact shadows under shelves.
    light = 0.5 + 0.45 * glow(scene, 0.4, 0.4, 0.9) + 0.12 * glow(scene, 0.4, 0.9, 0.5)
    lit = ~inside
    img = np.where(lit[..., None], img * light[..., None], img)
    shadow = np.zeros((scene.h, scene.w), np.float32)
    for sy in shelves:
        shadow += ((x > sx0) & (x < sx1) & (y > sy + 0.016) & (y < sy + 0.035)).astype(np.float32)
    shadow += ((y > floor_y) & (y < floor_y + 0.03)).astype(np.float32) * 0.6
    img *= (1.0 - 0.35 * scene.blur(np.clip(shadow, 0, 1), 0.01))[..., None]
    sun_patch = fill_poly(scene, [(0.2, 0.9), (0.78, 0.9), (1.0, 1.02), (0.3, 1.02)])
    img = img + rgb("#fff1d8") * (0.25 * scene.blur(sun_patch, 0.01))[..., None]

    # A tall floor plant in the left corner, in front of the window frame.
    poly(img, scene, [(0.02, 0.8), (0.2, 0.8), (0.18, 0.98), (0.04, 0.98)], rgb("#8c8378"))
    box(img, scene, 0.015, 0.78, 0.205, 0.8, rgb("#9c9388"))
    for _ in range(9):
        tx, ty = 0.11 + rng.uniform(-0.13, 0.16), rng.uniform(0.2, 0.5)
        bend = rng.uniform(-0.05, 0.05)
        ts = np.linspace(0, 1, 12)
        path = np.stack([0.11 + (tx - 0.11) * ts + bend * np.sin(np.pi * ts), 0.8 + (ty - 0.8) * ts], 1)
        cv2.polylines(img, [np.round(path * scene.h).astype(np.int32)], False,
                      tuple(float(c) for c in rgb("#5b4a32")), max(1, int(scene.px(0.004))), cv2.LINE_AA)
        for k in range(4, 12):
            side = 1 if k % 2 else -1
            d = path[min(k + 1, 11)] - path[k - 1]
            ang = np.arctan2(d[1], d[0]) + side * rng.uniform(0.5, 1.2)
            leaf(img, scene, tuple(path[k]), ang, rng.uniform(0.06, 0.1), rng.uniform(0.022, 0.032),
                 rgb("#3d6b2c") * rng.uniform(0.55, 1.25))

    # A low sideboard under the shelves with a lamp glowing warm on it.
    box(img, scene, 1.1, 0.64, 1.72, 0.8, rgb("#6b4f38"))
    box(img, scene, 1.1, 0.64, 1.72, 0.652, rgb("#8a6a4c"))
    for dx in (1.305, 1.515):
        box(img, scene, dx - 0.002, 0.66, dx + 0.002, 0.79, rgb("#4a3626"))
    for lx in (1.13, 1.69):
        box(img, scene, lx - 0.006, 0.8, lx + 0.006, floor_y, rgb("#3a2a1e"))
    box(img, scene, 1.236, 0.6, 1.244, 0.64, rgb("#2b2b2b"))
    cv2.ellipse(img, scene.pt(1.24, 0.637), (int(scene.px(0.03)), int(scene.px(0.006))), 0, 0, 360,
                tuple(float(c) for c in rgb("#2b2b2b")), -1, cv2.LINE_AA)
    poly(img, scene, [(1.19, 0.6), (1.29, 0.6), (1.275, 0.53), (1.205, 0.53)], rgb("#f7e4c0") * 1.1)
    cv2.ellipse(img, scene.pt(1.6, 0.6), (int(scene.px(0.026)), int(scene.px(0.04))), 0, 0, 360,
                tuple(float(c) for c in rgb("#3c6e80")), -1, cv2.LINE_AA)
    box(img, scene, 1.59, 0.54, 1.61, 0.64, rgb("#3c6e80"))
    lamp = glow(scene, 1.24, 0.58, 0.16)
    img = img + rgb("#ffcf8a") * (0.35 * lamp)[..., None]

    # Camera: shallow depth of field, the room is well out of focus.
    img = scene.blur(img, 0.0055)
    return finish(scene, img, vignette=0.3, bloom=0.25, bloom_threshold=0.9, grain=0.01)


def bookshelf(scene: Scene) -> np.ndarray:
    """A living room wall of books: a dark wooden bookcase, warm lamps, deep green walls."""
    x, y, A = scene.x, scene.y, scene.aspect
    rng = scene.rng
    img = scene.blank(rgb("#31463f"))
    img *= (0.9 + 0.15 * scene.fbm(4, 3, 3))[..., None]
    floor = lerp(rgb("#4a3424"), rgb("#5e4430"), scene.fbm(A * 3, 20, 3))
    img = over(img, floor, smoothstep(0.935, 0.94, y))

    cx0, cx1, top, bottom = 0.2, A - 0.2, 0.03, 0.94
    wood = rgb("#5a3b26")
    back = rgb("#3b291c")
    side = 0.022
    rows = [top + side + i * (bottom - top - side) / 4 for i in range(5)]
    cols = np.linspace(cx0 + side, cx1 - side, 5)
    box(img, scene, cx0, top, cx1, bottom, wood)
    inner = np.zeros((scene.h, scene.w), np.float32)
    palette = ["#7b2d26", "#274060", "#b08d57", "#355e3b", "#d6cbb4", "#4e3b5c", "#a85a32", "#1f2a33",
               "#c7a47e", "#5d6f78", "#8c1c13", "#e3d5b8"]
    for r in range(4):
        y0, y1 = rows[r], rows[r + 1] - side
        for c in range(4):
            x0, x1 = cols[c] + (side / 2 if c else 0), cols[c + 1] - (side / 2 if c < 3 else 0)
            box(img, scene, x0, y0, x1, y1, back)
            cv2.rectangle(inner, scene.pt(x0, y0), scene.pt(x1, y1), 1.0, -1)
            kind = rng.random()
            h = y1 - y0
            if kind < 0.62:
                books(img, scene, x0 + 0.01, x1 - 0.012, y1, rng, palette, max_h=h * 0.85)
            elif kind < 0.78:  # a few books and a vase
                books(img, scene, x0 + 0.01, x0 + (x1 - x0) * 0.5, y1, rng, palette, max_h=h * 0.8)
                vx = x0 + (x1 - x0) * 0.72
                col = rgb(["#c9b79c", "#2f5d73", "#a34a2a"][int(rng.integers(3))])
                cv2.ellipse(img, scene.pt(vx, y1 - h * 0.28), (int(scene.px(h * 0.2)), int(scene.px(h * 0.28))),
                            0, 0, 360, tuple(float(v) for v in col), -1, cv2.LINE_AA)
                box(img, scene, vx - h * 0.07, y1 - h * 0.75, vx + h * 0.07, y1 - h * 0.4, col)
            elif kind < 0.9:  # a framed photo and a small stack
                fx0 = x0 + (x1 - x0) * 0.12
                box(img, scene, fx0, y1 - h * 0.7, fx0 + h * 0.55, y1, rgb("#c9a86a"))
                ph = gradient(scene, [(0.0, "#8fb3c9"), (0.55, "#e2c79b"), (1.0, "#6d8a5a")],
                              (y - (y1 - h * 0.62)) / (h * 0.55))
                pm = ((x > fx0 + h * 0.06) & (x < fx0 + h * 0.49) & (y > y1 - h * 0.64) & (y < y1 - h * 0.06))
                img = np.where(pm[..., None], ph, img)
                books(img, scene, fx0 + h * 0.7, x1 - 0.012, y1, rng, palette, max_h=h * 0.7)
            else:  # a trailing plant
                px_ = (x0 + x1) / 2
                poly(img, scene, [(px_ - h * 0.2, y1 - h * 0.3), (px_ + h * 0.2, y1 - h * 0.3),
                                  (px_ + h * 0.16, y1), (px_ - h * 0.16, y1)], rgb("#d8d2c6"))
                for _ in range(26):
                    ang = rng.uniform(-np.pi, 0.8)
                    bx = px_ + rng.uniform(-h * 0.15, h * 0.15)
                    leaf(img, scene, (bx, y1 - h * 0.3), ang, rng.uniform(0.03, 0.06), 0.012,
                         rgb("#4d7a3a") * rng.uniform(0.6, 1.2))
    # Ambient occlusion: compartments darker towards their top and sides.
    occl = scene.blur(inner, 0.03)
    img *= (0.55 + 0.45 * occl)[..., None]
    # Shelf edges catch the light.
    for r in range(1, 4):
        box(img, scene, cx0, rows[r] - side, cx1, rows[r] - side + 0.005, wood * 1.5)

    # Warm light: a floor lamp at the left, small picture lights over the case.
    lamp_x = 0.09
    box(img, scene, lamp_x - 0.003, 0.35, lamp_x + 0.003, 0.94, rgb("#1c1a17"))
    poly(img, scene, [(lamp_x - 0.06, 0.36), (lamp_x + 0.06, 0.36), (lamp_x + 0.045, 0.24),
                      (lamp_x - 0.045, 0.24)], rgb("#f6dcb0") * 1.4)
    light = 0.55 + 0.9 * glow(scene, lamp_x, 0.33, 0.45) + 0.3 * glow(scene, A / 2, 0.0, 0.6)
    light += 0.25 * glow(scene, A - 0.1, 0.4, 0.5)
    img = img * light[..., None] * rgb("#fff0dc")[None, None, :] / rgb("#fff0dc").max()
    img += rgb("#ffc070") * (0.5 * glow(scene, lamp_x, 0.3, 0.12))[..., None]

    img = scene.blur(img, 0.0065)
    return finish(scene, img, vignette=0.4, bloom=0.4, bloom_threshold=0.8, grain=0.012)


SCENES: dict[str, Callable[[Scene], np.ndarray]] = {
    "beach": beach,
    "office": office,
    "bookshelf": bookshelf,
}


def render(name: str, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Render scene ``name`` as a BGR uint8 image of (height, width, 3)."""
    if name not in SCENES:
        raise KeyError(f"unknown scene {name!r}; choose from {', '.join(SCENES)}")
    return SCENES[name](Scene(name, width, height))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"scenes to render (default: all of {', '.join(SCENES)})")
    ap.add_argument("--size", default=f"{WIDTH}x{HEIGHT}", help="WxH (default %(default)s)")
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: beside this script)")
    ap.add_argument("--quality", type=int, default=JPEG_QUALITY, help="JPEG quality (default %(default)s)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    w, h = (int(v) for v in args.size.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or list(SCENES):
        img = render(name, w, h)
        path = args.out / f"{name}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, args.quality,
                                     cv2.IMWRITE_JPEG_OPTIMIZE, 1])
        log.info("%s: %dx%d, %.0f KB", path, w, h, path.stat().st_size / 1024)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
