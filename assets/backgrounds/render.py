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


SCENES: dict[str, Callable[[Scene], np.ndarray]] = {
    "beach": beach,
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
