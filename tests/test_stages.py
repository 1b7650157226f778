"""Unit tests of each per-frame stage on synthetic frames whose right answer is known.

preprocess -> smooth -> matte -> composite, then the ``Pipeline`` that chains
them. The scene is ``conftest.disc_frame``: a red disc ("person") over a
textured blue background, with its exact ground-truth mask. Low-res masks are
the truth area-downscaled to the mask size (what a perfect model would give).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import disc_frame, make_red_model

from vbg.backends.onnxruntime import OnnxRuntimeBackend
from vbg.pipeline import STAGES, Pipeline
from vbg.settings import Settings
from vbg.spec import ModelSpec
from vbg.stages.backgrounds import (
    BlurBackground,
    ColorBackground,
    NoBackground,
    open_background,
)
from vbg.stages.composite import Compositor
from vbg.stages.matte import BG, EDGE, FG, Coverage, Matte, guide_level
from vbg.stages.preprocess import FramePyramid, Preprocessor, decode_output, shrink
from vbg.stages.segment import Segmenter
from vbg.stages.smooth import TemporalSmoother


# --- helpers ---------------------------------------------------------------------------------
def low_mask(gt: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Ground truth area-downscaled to ``size`` = (w, h): a perfect model's soft mask."""
    return cv2.resize(gt.astype(np.float32), size, interpolation=cv2.INTER_AREA)


def edge_band(gt: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` pixels of the true edge (either side)."""
    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    g = gt.astype(np.uint8)
    return cv2.dilate(g, k) != cv2.erode(g, k)


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)


def variant(spec: ModelSpec, section: str = "input", **fields: object) -> ModelSpec:
    """``spec`` with some input (or output) fields changed, validated like a loaded spec."""
    d = spec.to_dict()
    d[section] = {**d[section], **fields}
    return ModelSpec.from_dict(d, base=spec.path)


@pytest.fixture
def spec(red_model: Path) -> ModelSpec:
    return ModelSpec.load(red_model)


def blend_reference(frame: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The compositor's contract in plain float maths: frame * a + bg * (1 - a)."""
    a = alpha.astype(np.float64)[..., None]
    return frame.astype(np.float64) * a + bg.astype(np.float64) * (1.0 - a)


# === preprocess ==============================================================================
@pytest.mark.parametrize("src,dst", [((1280, 720), (256, 144)),  # > 2x: bilinear + area step
                                     ((640, 480), (320, 240)),  # exact 2x
                                     ((640, 480), (400, 300)),  # < 2x
                                     ((100, 80), (210, 170)),  # upscale
                                     ((321, 239), (64, 48))])  # odd source
def test_shrink_sizes_and_dtypes(src: tuple[int, int], dst: tuple[int, int]) -> None:
    img = textured(src[1], src[0])
    out = shrink(img, dst)
    assert out.shape == (dst[1], dst[0], 3) and out.dtype == np.uint8
    # Float masks and one-channel images shrink too (the smoother, the matte and light wrap use them).
    f = shrink(img[..., 0].astype(np.float32) / 255.0, dst)
    assert f.shape == (dst[1], dst[0]) and f.dtype == np.float32
    # A smooth image keeps its mean: no shift or border artefact.
    assert abs(float(out.mean()) - float(img.mean())) < 1.5
    assert shrink(img, src) is img  # same size: no copy


@pytest.mark.parametrize("src,dst", [((1280, 720), (160, 90)), ((1920, 1080), (256, 144))])
def test_shrink_antialiases_fine_texture(src: tuple[int, int], dst: tuple[int, int]) -> None:
    # Pixel noise is the worst case for aliasing: each output pixel should be its block's mean.
    img = np.random.default_rng(3).integers(0, 256, (src[1], src[0], 3), dtype=np.uint8)
    truth = cv2.resize(img.astype(np.float32), dst, interpolation=cv2.INTER_AREA)  # exact area mean
    if src[0] % dst[0] == 0:  # integer ratio: check the reference itself against a block mean
        f = src[0] // dst[0]
        block = img.reshape(dst[1], f, dst[0], f, 3).mean(axis=(1, 3))
        assert np.abs(block - truth).max() < 1e-3

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(((x.astype(np.float64) - truth) ** 2).mean()))

    ours = rms(shrink(img, dst))
    plain = rms(cv2.resize(img, dst, interpolation=cv2.INTER_LINEAR))
    assert ours < 0.6 * plain, (ours, plain)


def test_frame_pyramid_levels_at_and_gray() -> None:
    frame = textured(242, 322, seed=1)
    pyr = FramePyramid(frame)
    assert pyr.level(0) is frame
    l1 = pyr.level(1)
    assert l1.shape == (121, 161, 3)
    # An exact halving is the 2x2 block mean (rounded).
    block = frame.reshape(121, 2, 161, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(l1 - block).max() <= 0.5 + 1e-9
    assert pyr.level(2).shape == (60, 80, 3)  # 161x121 halves to 80x60 (sizes round down)
    assert pyr.level(2) is pyr.level(2)

    assert pyr.levels_for((64, 48)) == 2 and pyr.levels_for((161, 121)) == 1 and pyr.levels_for((200, 48)) == 0
    assert pyr.at((322, 242)) is frame
    a = pyr.at((64, 48))
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8
    assert pyr.at((64, 48)) is a  # cached: made once per frame and shared by the stages
    area = cv2.resize(frame.astype(np.float32), (64, 48), interpolation=cv2.INTER_AREA)
    plain = cv2.resize(frame, (64, 48), interpolation=cv2.INTER_LINEAR)
    # An antialiased copy: much closer to the area mean than one bilinear step from the frame.
    assert float(np.abs(a - area).mean()) < 0.6 * float(np.abs(plain - area).mean())

    g = pyr.gray((64, 48))
    assert g.shape == (48, 64) and g.dtype == np.uint8
    assert np.array_equal(g, cv2.cvtColor(a, cv2.COLOR_BGR2GRAY))
    assert pyr.gray((64, 48)) is g


def _reference_tensor(s: ModelSpec, frames: list[np.ndarray]) -> np.ndarray:
    """(p / scale - mean) / std in the spec's colour order and layout, in float64."""
    i = s.input
    out = []
    for f in frames:
        small = shrink(f, (i.width, i.height)).astype(np.float64)
        if i.color == "RGB":
            small = small[..., ::-1]
        out.append((small / i.scale - np.asarray(i.mean)) / np.asarray(i.std))
    x = np.stack(out)
    return x.transpose(0, 3, 1, 2) if i.layout == "NCHW" else x


def test_preprocessor_layout_colour_order_and_normalisation(spec: ModelSpec) -> None:
    frames = [textured(240, 320, seed=s) for s in (1, 2)]
    for s in [spec,
              variant(spec, layout="NHWC", color="BGR", mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3]),
              variant(spec, width=96, height=54, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
              variant(spec, layout="NHWC", color="RGB", scale=1.0, mean=[120, 110, 100], std=[60, 50, 40])]:
        pre = Preprocessor(s)
        x = pre(frames)
        w, h = s.size
        assert x.dtype == np.float32
        assert x.shape == ((2, 3, h, w) if s.input.layout == "NCHW" else (2, h, w, 3))
        assert x.flags.c_contiguous
        want = _reference_tensor(s, frames)
        assert np.abs(x - want).max() < 1e-4 * max(1.0, float(np.abs(want).max()))


def test_preprocessor_colour_order_on_a_flat_frame(spec: ModelSpec) -> None:
    frame = np.empty((96, 128, 3), np.uint8)
    frame[:] = (10, 20, 30)  # BGR
    rgb = Preprocessor(spec)([frame])  # NCHW, RGB, /255
    assert np.allclose(rgb[0, :, 0, 0], [30 / 255, 20 / 255, 10 / 255], atol=1e-6)
    bgr = Preprocessor(variant(spec, layout="NHWC", color="BGR", mean=[0.1, 0.0, 0.0], std=[0.5, 1, 1]))([frame])
    assert np.allclose(bgr[0, 0, 0], [(10 / 255 - 0.1) / 0.5, 20 / 255, 30 / 255], atol=1e-6)


def test_decode_output_kinds(spec: ModelSpec) -> None:
    rng = np.random.default_rng(4)

    def sig(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))

    def softmax(z: np.ndarray, axis: int) -> np.ndarray:
        e = np.exp(z.astype(np.float64) - z.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    z1 = rng.normal(0, 4, (2, 1, 6, 8)).astype(np.float32)
    zc = rng.normal(0, 3, (2, 3, 6, 8)).astype(np.float32)
    pc = softmax(zc, 1).astype(np.float32)
    p_out = rng.uniform(-0.2, 1.2, (2, 1, 6, 8)).astype(np.float32)  # slightly out of range
    cases = [
        ({"kind": "logits"}, z1, sig(z1[:, 0])),
        ({"kind": "logits"}, z1[:, 0], sig(z1[:, 0])),  # (N, h, w): one implicit channel
        ({"kind": "probability"}, p_out, np.clip(p_out[:, 0], 0, 1)),
        ({"kind": "softmax", "person_channel": 1}, pc, pc[:, 1]),
        ({"kind": "softmax_logits", "person_channel": 2}, zc, softmax(zc, 1)[:, 2]),
        ({"kind": "softmax_logits", "person_channel": 2, "layout": "NHWC"},
         zc.transpose(0, 2, 3, 1), softmax(zc, 1)[:, 2]),
        ({"kind": "logits", "layout": "NHWC"}, z1.transpose(0, 2, 3, 1), sig(z1[:, 0])),
    ]
    for fields, raw, want in cases:
        p = decode_output(variant(spec, "output", **fields), raw)
        assert p.dtype == np.float32 and p.shape == (2, 6, 8), fields
        assert p.min() >= 0.0 and p.max() <= 1.0
        assert np.abs(p - want).max() < 1e-5, fields
    # Extreme logits neither overflow to NaN nor leave [0, 1].
    big = np.array([[[[-1000.0, 1000.0]]], [[[0.0, 80.0]]]], np.float32)
    with np.errstate(over="ignore"):
        p = decode_output(spec, big)
    assert np.array_equal(p[:, 0], [[0.0, 1.0], [0.5, 1.0]])


# === smooth ==================================================================================
W, H = 320, 240  # frame size of the small scenes
MW, MH = 80, 60  # mask size


def still_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A still disc: frame, its low-res truth, and the mask's edge pixels (where a model jitters)."""
    frame, gt = disc_frame(W, H, 160, 120, 70)
    low = low_mask(gt, (MW, MH))
    k = np.ones((3, 3), np.uint8)
    edge = (cv2.dilate(low, k) - cv2.erode(low, k)) > 0.01
    return frame, low, edge


def jitter_sequence(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (frame, mask) pairs of the still disc: sensor noise on the frame, ±0.25 jitter on the mask's edge."""
    frame, low, edge = still_scene()
    rng = np.random.default_rng(seed)
    seq = []
    for _ in range(n):
        m = low.copy()
        m[edge] += rng.uniform(-0.25, 0.25, int(edge.sum())).astype(np.float32)
        noisy = np.clip(frame.astype(np.int16) + rng.integers(-2, 3, frame.shape), 0, 255).astype(np.uint8)
        seq.append((noisy, np.clip(m, 0, 1)))
    return seq


def mean_change(masks: list[np.ndarray], where: np.ndarray) -> float:
    """Mean |frame-to-frame change| over ``where`` (flicker)."""
    return float(np.mean([np.abs(b - a)[where].mean() for a, b in zip(masks, masks[1:])]))


def test_smoother_strength_zero_is_off() -> None:
    sm = TemporalSmoother(0.0)
    for frame, m in jitter_sequence(6):
        out = sm(m, frame)
        assert np.array_equal(out, m) and out is not m and out.dtype == np.float32


def test_smoother_removes_flicker_of_a_still_edge() -> None:
    seq = jitter_sequence(30)
    _, truth, edge = still_scene()
    masks = [m for _, m in seq]
    flicker_in = mean_change(masks[5:], edge)
    ratios = {}
    for strength in (0.5, 1.0):
        sm = TemporalSmoother(strength)
        outs = [sm(m, f) for f, m in seq]
        ratios[strength] = mean_change(outs[5:], edge) / flicker_in
        # Averaging the jitter also brings the edge closer to the truth.
        err_in = np.mean([np.abs(m - truth)[edge].mean() for m in masks[5:]])
        err_out = np.mean([np.abs(o - truth)[edge].mean() for o in outs[5:]])
        # (Not by much: clipping the jitter at 0 and 1 biases the mask, which no average removes.)
        assert err_out < (0.95 if strength < 1 else 0.85) * err_in, (strength, err_out, err_in)
    # An EMA keeping k of the previous value: flicker x sqrt((1 - k) / (1 + k)) ~ 0.48 (k 0.425), 0.11 (k 0.85).
    assert ratios[0.5] < 0.65, ratios
    assert ratios[1.0] < 0.25, ratios
    assert ratios[1.0] < ratios[0.5]


def moving_disc(n: int, speed: float, dark: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (frame, low-res truth) pairs of a disc moving right and down by ``speed`` px per frame.

    ``dark``: a person darker than the wall (luma differs; the plain disc has
    nearly the wall's luma, which the smoother's frame-motion test cannot see).
    """
    seq = []
    for t in range(n):
        frame, gt = disc_frame(W, H, 60 + speed * t, 100 + speed * t / 2, 50, seed=0)
        if dark:
            frame[gt] = (20, 20, 90)
        seq.append((frame, low_mask(gt, (MW, MH))))
    return seq


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_smoother_leaves_no_ghost_behind_a_moving_disc(strength: float) -> None:
    seq = moving_disc(16, 8.0)
    sm = TemporalSmoother(strength)
    prev = None
    ghosts = []
    for frame, truth in seq:
        out = sm(truth, frame)
        if prev is not None:
            behind = (prev > 0.99) & (truth == 0)  # uncovered this frame
            ahead = (prev == 0) & (truth > 0.99)  # covered this frame
            assert behind.any() and ahead.any()
            assert out[behind].max() < 0.02  # the wall shows at once: no trail
            assert out[ahead].min() > 0.98  # and the person at once
            assert float(np.abs(out - truth).mean()) < 0.01
            ghosts.append(float(out[truth == 0].sum()))  # mask mass left where nobody is
        prev = truth
    # The disc's tangential edges barely change the frame's luma here, so they lag a
    # little, but what is left behind stays a pixel or two in all (a trail would grow).
    assert max(ghosts) < (0.6 if strength <= 0.5 else 3.0), ghosts


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_smoother_follows_a_moving_person_per_pixel(strength: float) -> None:
    # With a luma contrast every changed pixel is seen to move: no pixel lags.
    sm = TemporalSmoother(strength)
    for t, (frame, truth) in enumerate(moving_disc(12, 8.0, dark=True)):
        out = sm(truth, frame)
        assert float(np.abs(out - truth).max()) < 0.1, t


def test_smoother_follows_a_large_mask_jump_with_a_still_frame() -> None:
    # The frame does not change but the mask flips (a person the frame difference misses).
    frame, low, _ = still_scene()
    sm = TemporalSmoother(1.0)
    for _ in range(3):
        sm(low, frame)
    flipped = 1.0 - low
    out = sm(flipped, frame)
    big = np.abs(flipped - low) > 0.95
    assert np.abs(out - flipped)[big].max() < 1e-6


def test_smoother_resets_on_a_scene_cut() -> None:
    sm = TemporalSmoother(1.0)
    for frame, m in jitter_sequence(5):
        sm(m, frame)
    assert sm.cuts == 0
    # Another shot: bright, differently textured, the person elsewhere.
    other, gt = disc_frame(W, H, 250, 80, 40, seed=9)
    other = cv2.add(cv2.GaussianBlur(other, (0, 0), 3), np.full_like(other, 90))
    new = low_mask(gt, (MW, MH))
    out = sm(new, other)
    assert sm.cuts == 1
    assert np.array_equal(out, new)  # nothing of the old shot
    # The smoothing restarts from the new shot: a second frame of it is not a cut.
    out2 = sm(new, other)
    assert sm.cuts == 1 and np.abs(out2 - new).max() < 1e-6


def test_smoother_strength_is_settable_live() -> None:
    seq = jitter_sequence(12)
    sm = TemporalSmoother(1.0)
    for frame, m in seq[:4]:
        out = sm(m, frame)
    assert not np.allclose(out, seq[3][1], atol=0.02)  # smoothing on
    sm.strength = 0.0
    frame, m = seq[4]
    assert np.array_equal(sm(m, frame), m)  # off from the next call
    sm.strength = 1.0
    for frame, m in seq[5:8]:
        out = sm(m, frame)
    assert not np.allclose(out, seq[7][1], atol=0.02)  # on again


def test_smoother_output_is_never_reused() -> None:
    seq = jitter_sequence(8)
    a, b = TemporalSmoother(0.8), TemporalSmoother(0.8)
    kept = []
    for frame, m in seq:
        oa, ob = a(m, frame), b(m, frame)
        assert np.array_equal(oa, ob)
        kept.append((oa, oa.copy()))
        ob[:] = 0.5  # a caller scribbling on its output must not change the smoother's state
    for out, copy in kept:
        assert np.array_equal(out, copy)  # later calls did not write into earlier outputs


# === matte ===================================================================================
def test_matte_threshold_and_slope_unguided() -> None:
    # Frame size == mask size: no resampling, so alpha is exactly the soft threshold.
    ramp = np.tile(np.linspace(0.0, 1.0, 101, dtype=np.float32), (40, 1))
    frame = np.zeros((40, 101, 3), np.uint8)
    for th, slope in ((0.5, 1.0), (0.4, 5.0), (0.7, 10.0), (0.5, 100.0)):
        m = Matte(th, slope, 0.0, guided=False)
        a = m.compute(ramp, frame).alpha
        want = np.clip((ramp - th) * slope + 0.5, 0.0, 1.0)
        assert a.shape == ramp.shape and a.dtype == np.float32
        assert np.abs(a - want).max() < 1e-5, (th, slope)
        col = int(round(th * 100))
        assert abs(float(a[0, col]) - 0.5) < 1e-5  # p == threshold -> 0.5
    hard = Matte(0.5, 100.0, 0.0, guided=False).compute(ramp, frame).alpha
    assert np.array_equal(hard[0, :50], np.zeros(50)) and np.array_equal(hard[0, 51:], np.ones(50))
    soft = Matte(0.5, 1.0, 0.0, guided=False).compute(ramp, frame).alpha
    assert abs(float(soft[0, 0]) - 0.0) < 1e-6 and abs(float(soft[0, 100]) - 1.0) < 1e-6


def test_matte_settings_are_live() -> None:
    ramp = np.tile(np.linspace(0.0, 1.0, 101, dtype=np.float32), (8, 1))
    frame = np.zeros((8, 101, 3), np.uint8)
    m = Matte(0.5, 10.0, 0.0, guided=False)
    before = m.compute(ramp, frame).alpha
    m.threshold = 0.3
    after = m.compute(ramp, frame).alpha
    assert abs(float(after[0, 30]) - 0.5) < 1e-5 and float(before[0, 30]) < 0.01


def transition_width(a: np.ndarray) -> int:
    """Pixels of the soft part of an alpha (neither near 0 nor near 1)."""
    return int(((a > 0.02) & (a < 0.98)).sum())


def test_matte_feather_widens_the_edge() -> None:
    frame, gt = disc_frame(W, H, 150, 120, 70, seed=1)
    low = low_mask(gt, (64, 48))
    sharp = Matte(0.5, 100.0, 0.0, guided=False).compute(low, frame).alpha
    widths = [transition_width(sharp)]
    for f in (2.0, 5.0):
        a = Matte(0.5, 100.0, f, guided=False).compute(low, frame).alpha
        widths.append(transition_width(a))
        # The feather is a Gaussian blur of radius f of the unfeathered alpha.
        ks = 2 * int(f) + 1
        want = cv2.GaussianBlur(sharp, (ks, ks), 0, borderType=cv2.BORDER_REFLECT_101)
        assert np.abs(a - want).max() < 1e-5
    assert widths[0] < widths[1] < widths[2], widths
    # Perimeter ~440 px: the hard cut is about one pixel wide, feather 5 several.
    assert widths[2] > 3 * widths[0]


def test_guide_level_is_the_smallest_with_enough_pixels() -> None:
    assert guide_level(1280, 720, (288, 160)) == 2  # 320x180: 1.25x the mask's pixels
    assert guide_level(1920, 1080, (288, 160)) == 2  # 480x270; 240x135 would be below the mask
    assert guide_level(1280, 720, (288, 176)) == 2  # 1.14x
    assert guide_level(1280, 720, (288, 192)) == 2  # 1.04x, though 180 rows are fewer than 192
    assert guide_level(1280, 720, (320, 192)) == 1  # 320x180 has fewer pixels
    assert guide_level(1280, 720, (256, 256)) == 1  # a square mask: 320x180 has fewer pixels
    assert guide_level(640, 480, (288, 160)) == 1
    assert guide_level(300, 170, (288, 160)) == 0  # never below the mask's size
    assert guide_level(320, 180, (288, 160)) == 0


@pytest.mark.parametrize("size,mask", [((1280, 720), (64, 36)), ((320, 240), (64, 48)), ((1280, 720), (288, 160))])
def test_guided_upsampling_follows_the_true_edge(size: tuple[int, int], mask: tuple[int, int]) -> None:
    w, h = size
    for dark in (False, True):  # red guide channel; a person darker than the wall (luma guide)
        frame, gt = disc_frame(w, h, w * 0.45, h * 0.5, h * 0.3, seed=1)
        if dark:
            frame[gt] = (20, 20, 90)
        low = low_mask(gt, mask)
        band = edge_band(gt, max(4, w // 160))
        err = {}
        for guided in (True, False):
            a = Matte(0.5, 10.0, 0.0, guided=guided).compute(low, frame).alpha
            err[guided] = float(np.abs(a - gt)[band].mean())
        assert err[False] > 0.01, err  # the bilinear edge really is off
        assert err[True] < 0.5 * err[False], (dark, err)


def isoluminant_scene(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """A reddish disc before a bluish wall of the same luma, some texture; red separates best."""
    person, wall = (40, 40, 210), (160, 110, 30)  # BGR
    rng = np.random.default_rng(5)
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = wall
    yy, xx = np.mgrid[0:h, 0:w]
    gt = (xx - w * 0.5) ** 2 + (yy - h * 0.5) ** 2 <= (h / 3) ** 2
    frame[gt] = person
    frame = np.clip(frame + rng.integers(-8, 9, (h, w, 1)), 0, 255).astype(np.uint8)
    return frame, gt


def test_auto_guide_picks_the_red_channel_when_luma_is_blind() -> None:
    frame, gt = isoluminant_scene(W, H)
    lum = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float64)
    assert abs(lum[gt].mean() - lum[~gt].mean()) < 3  # the premise: equal luma
    low = low_mask(gt, (64, 48))
    band = edge_band(gt, 4)
    auto = Matte(0.5, 10.0, 0.0, guide="auto")
    a = auto.compute(low, frame).alpha
    assert auto.channel == 3  # CHANNELS[3] == "red"
    luma = Matte(0.5, 10.0, 0.0, guide="luma")
    b = luma.compute(low, frame).alpha
    assert luma.channel == 0
    assert np.abs(a - gt)[band].mean() < 0.7 * np.abs(b - gt)[band].mean()
    auto.reset()
    assert auto.channel == 0
    with pytest.raises(ValueError):
        Matte(guide="green")


def matte_reference(m: Matte, mask: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The matte's formula computed untiled over the whole frame (float64 guided filter)."""
    H_, W_ = frame.shape[:2]
    h, w = mask.shape

    def guide(img: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if m.channel == 0 else img[..., m.channel - 1]
        return g.astype(np.float64)

    if m.guided:
        pyr = FramePyramid(frame)
        mid = pyr.level(Matte.guide_level(pyr, (w, h)))
        p = cv2.resize(mask, (mid.shape[1], mid.shape[0]), interpolation=cv2.INTER_LINEAR).astype(np.float64)
        I = guide(mid)
        k = (2 * m.radius + 1, 2 * m.radius + 1)

        def box(x: np.ndarray) -> np.ndarray:
            return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT)

        mI, mp = box(I), box(p)
        a = (box(I * p) - mI * mp) / (box(I * I) - mI * mI + m.eps)
        b = mp - a * mI
        A = (box(a) * m.slope).astype(np.float32)
        B = ((box(b) - m.threshold) * m.slope + 0.5).astype(np.float32)
        Af = cv2.resize(A, (W_, H_), interpolation=cv2.INTER_LINEAR).astype(np.float64)
        Bf = cv2.resize(B, (W_, H_), interpolation=cv2.INTER_LINEAR).astype(np.float64)
        q = Af * guide(frame) + Bf
    else:
        q = cv2.resize((mask - m.threshold) * m.slope + 0.5, (W_, H_), interpolation=cv2.INTER_LINEAR)
    q = np.clip(q, 0.0, 1.0).astype(np.float32)
    if int(m.feather):
        ks = 2 * int(m.feather) + 1
        q = cv2.GaussianBlur(q, (ks, ks), 0, borderType=cv2.BORDER_REFLECT_101)
    return q


def soft_scene(w: int, h: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A blurred disc frame (soft edges) and a noisy 64x48 mask of it: every tile kind occurs."""
    frame, gt = disc_frame(w, h, w * 0.4, h * 0.6, h * 0.35, seed=seed)
    frame = cv2.GaussianBlur(frame, (0, 0), 2)
    rng = np.random.default_rng(seed)
    low = np.clip(low_mask(gt, (64, 48)) + rng.normal(0, 0.05, (48, 64)), 0, 1).astype(np.float32)
    return frame, low


@pytest.mark.parametrize("size", [(320, 240), (321, 239), (1281, 719)])  # exact 4x / inexact pyramid
@pytest.mark.parametrize("guided", [True, False])
@pytest.mark.parametrize("feather", [0.0, 3.0])
def test_tiled_matte_equals_the_untiled_formula(size: tuple[int, int], guided: bool, feather: float) -> None:
    w, h = size
    frame, low = soft_scene(w, h)
    m = Matte(0.45, 6.0, feather, guided=guided)
    res = m.compute(low, frame)
    assert res.alpha.shape == (h, w) and res.alpha.dtype == np.float32
    kinds = set(np.unique(res.coverage.grid).tolist())
    assert kinds == {BG, FG, EDGE}  # the tiled paths all ran
    assert np.abs(res.alpha - matte_reference(m, low, frame)).max() < 1e-4
    # One tile the size of the frame, or odd tile sizes, give the very same alpha.
    for tile in ((h, w), (17, 23)):
        other = Matte(0.45, 6.0, feather, guided=guided, tile=tile).compute(low, frame).alpha
        assert np.array_equal(other, res.alpha), tile


@pytest.mark.parametrize("feather", [0.0, 4.0])
@pytest.mark.parametrize("size", [(320, 240), (321, 239)])
def test_coverage_tiles_are_consistent(feather: float, size: tuple[int, int]) -> None:
    w, h = size
    frame, low = soft_scene(w, h, seed=3)
    res = Matte(0.5, 10.0, feather).compute(low, frame)
    a, cov = res.alpha, res.coverage
    assert cov.shape == (h, w) and cov.halo == int(feather)
    count = np.zeros((h, w), np.int32)
    kind = np.zeros((h, w), np.uint8)
    for y0, y1, x0, x1, k in cov.runs():
        count[y0:y1, x0:x1] += 1
        kind[y0:y1, x0:x1] = k
    assert (count == 1).all()  # the runs cover the frame exactly once
    assert cov.area(BG) + cov.area(FG) + cov.area(EDGE) == w * h
    assert cov.area(BG) > 0 and cov.area(FG) > 0 and cov.area(EDGE) > 0
    # BG / FG tiles are exactly 0 / 1, except within the feather's reach of an EDGE tile.
    d = 2 * cov.halo + 1
    near_edge = cv2.dilate((kind == EDGE).astype(np.uint8), np.ones((d, d), np.uint8)) > 0
    assert (a[(kind == BG) & ~near_edge] == 0.0).all()
    assert (a[(kind == FG) & ~near_edge] == 1.0).all()
    assert (a[kind == EDGE] > 0.0).any() and (a[kind == EDGE] < 1.0).any()
    if feather == 0:
        assert (a[kind == BG] == 0.0).all() and (a[kind == FG] == 1.0).all()
        # Tiles worked out afterwards from the finished alpha (the compositor's fallback) agree:
        # the matte's BG / FG tiles stay BG / FG, only its EDGE tiles can be anything.
        again = Coverage.from_alpha(a, cov.tile)
        assert again.grid.shape == cov.grid.shape
        assert (again.grid[cov.grid == BG] == BG).all() and (again.grid[cov.grid == FG] == FG).all()
        assert (again.grid == EDGE).any()


# === composite ===============================================================================
def composite_scene(w: int, h: int, r: float, feather: float = 2.0) -> tuple[np.ndarray, np.ndarray, Coverage]:
    frame, gt = disc_frame(w, h, w * 0.5, h * 0.5, r, seed=4)
    res = Matte(0.5, 10.0, feather).compute(low_mask(gt, (64, 48)), frame)
    return frame, res.alpha, res.coverage


@pytest.mark.parametrize("radius", [70.0, 130.0])  # mostly background / mostly person (both bases)
@pytest.mark.parametrize("given", [True, False])  # matte's coverage / worked out from the alpha
def test_colour_composite_equals_the_float_blend(radius: float, given: bool) -> None:
    frame, alpha, cov = composite_scene(W, H, radius)
    colour = (0, 255, 0)
    comp = Compositor(ColorBackground(colour))
    assert (cov.area(FG) > cov.area(BG)) == (radius > 100)  # which base the compositor starts from
    out = comp(frame, alpha, cov if given else None)
    assert out.shape == frame.shape and out.dtype == np.uint8
    bg = np.empty_like(frame)
    bg[:] = colour
    want = blend_reference(frame, bg, alpha)
    assert np.abs(out - want).max() <= 1.0
    assert np.array_equal(out[alpha == 1.0], frame[alpha == 1.0])  # the person is untouched
    assert (out[alpha == 0.0] == colour).all()  # the wall is gone
    soft = (alpha > 0.2) & (alpha < 0.8)
    assert soft.any()
    mid = out[soft].astype(np.int32)  # edges are a mix of both
    assert (mid[:, 1] > frame[soft][:, 1]).all() and (mid[:, 1] < 255).all()
    assert out is not frame and not np.shares_memory(out, frame)


@pytest.mark.parametrize("radius", [70.0, 130.0])  # mostly background / mostly person
@pytest.mark.parametrize("wrap", [0.0, 0.5])
def test_composite_from_the_matte_result_equals_from_its_alpha(tmp_path: Path, radius: float, wrap: float) -> None:
    """The compositor blends from the matte's edge patches, without the full alpha: the same pixels
    as from the alpha array, for a background read in place and for one rendered per frame."""
    frame, gt = disc_frame(W, H, W * 0.5, H * 0.5, radius, seed=8)
    img, _ = disc_frame(400, 300, 100, 100, 40, seed=9)
    cv2.imwrite(str(tmp_path / "bg.png"), img)
    for background in (ColorBackground((0, 255, 0)), open_background(str(tmp_path / "bg.png")), BlurBackground(10.0)):
        res = Matte(0.5, 10.0, 2.0).compute(low_mask(gt, (64, 48)), frame)
        comp = Compositor(background, light_wrap=wrap)
        got = comp(frame, res)
        if wrap == 0.0:
            assert res._alpha is None  # the full alpha was never made
        want = comp(frame, res.alpha, res.coverage)
        assert np.array_equal(got, want), type(background).__name__
        if wrap == 0.0:  # (light wrap works from the coverage's own low-res alpha)
            assert np.array_equal(comp(frame, res.alpha), want)  # tiles worked out from the alpha
            bg = background.get(frame)
            assert np.abs(got.astype(np.int16) - blend_reference(frame, bg, res.alpha)).max() <= 1


def test_matte_result_alpha_is_made_from_tiles_and_patches() -> None:
    frame, low = soft_scene(320, 240)
    m = Matte(0.45, 6.0, 3.0)
    res = m.compute(low, frame)
    a = res.alpha
    assert a is res.alpha  # made once
    assert len(res.patches) == sum(1 for r in res.coverage.runs() if r[4] == EDGE) > 0
    for y0, y1, x0, x1, v in res.patches:
        assert v.shape == (y1 - y0, x1 - x0) and np.array_equal(a[y0:y1, x0:x1], v)
    assert np.abs(a - matte_reference(m, low, frame)).max() < 1e-4


def test_none_background_gives_bgra_with_the_alpha() -> None:
    frame, alpha, cov = composite_scene(W, H, 70.0)
    out = Compositor(NoBackground())(frame, alpha, cov)
    assert out.shape == (H, W, 4) and out.dtype == np.uint8
    assert np.array_equal(out[..., :3], frame)
    assert np.abs(out[..., 3].astype(np.int32) - np.round(alpha * 255)).max() <= 1
    assert out[..., 3][alpha == 0].max() == 0 and out[..., 3][alpha == 1].min() == 255


def _square_box(img: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the dark pixels."""
    ys, xs = np.nonzero(img.max(axis=2) < 64)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("img_size,side,want_side", [((200, 50), 10, 48.0),  # upscaled x4.8
                                                     ((1000, 1000), 100, 32.0)])  # downscaled x0.32
def test_image_background_cover_fit(tmp_path: Path, img_size: tuple[int, int], side: int,
                                    want_side: float) -> None:
    iw, ih = img_size
    img = np.full((ih, iw, 3), 200, np.uint8)
    x0, y0 = (iw - side) // 2, (ih - side) // 2
    img[y0:y0 + side, x0:x0 + side] = 0  # a black square at the centre
    path = tmp_path / "bg.png"
    cv2.imwrite(str(path), img)
    bg = open_background(str(path))
    frame = np.zeros((H, W, 3), np.uint8)
    out = bg.get(frame)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    bx0, by0, bx1, by1 = _square_box(out)
    # The square stays square (aspect kept), scaled to cover, and stays centred (centre crop).
    assert abs((bx1 - bx0) - want_side) <= 2 and abs((by1 - by0) - want_side) <= 2
    assert abs((bx0 + bx1) / 2 - W / 2) <= 1.5 and abs((by0 + by1) / 2 - H / 2) <= 1.5
    assert (out[0] > 150).all() and (out[-1] > 150).all()  # covered: no black bars
    assert bg.get(frame) is out  # cached per size
    buf = np.zeros_like(frame)
    assert bg.get(frame, buf) is buf and np.array_equal(buf, out)
    small = bg.get(np.zeros((60, 80, 3), np.uint8))
    assert small.shape == (60, 80, 3)


def band_energy(img: np.ndarray, sigma: float = 3.0) -> float:
    """Variance of a difference of Gaussians: detail around ``sigma`` pixels.

    (A Laplacian would mostly see the uint8 rounding of an upscaled blur.)
    """
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)
    return float((cv2.GaussianBlur(g, (0, 0), sigma) - cv2.GaussianBlur(g, (0, 0), 2 * sigma)).var())


def test_blur_background_is_blurred_and_stronger_is_smoother() -> None:
    frame, _ = disc_frame(W, H, 160, 120, 60, seed=5)
    energies = [band_energy(frame)]
    for strength in (3.0, 10.0, 30.0, 60.0):
        out = BlurBackground(strength).get(frame)
        assert out.shape == frame.shape and out.dtype == np.uint8
        assert abs(float(out.mean()) - float(frame.mean())) < 1.0  # blurred, not darkened or shifted
        energies.append(band_energy(out))
    # Each step stronger removes detail; from strength 10 on, a clear factor per step.
    assert all(a > b for a, b in zip(energies, energies[1:])), energies
    assert all(a > 2 * b for a, b in zip(energies[2:], energies[3:])), energies
    fine = cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    fine3 = cv2.Laplacian(cv2.cvtColor(BlurBackground(3.0).get(frame), cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    assert fine3 < 0.1 * fine  # even the weakest blur removes the pixel-level texture
    # The shared pyramid gives the same background.
    bg = BlurBackground(25.0)
    assert np.array_equal(bg.get(frame).copy(), bg.get(frame, pyramid=FramePyramid(frame)))


def test_video_background_advances_and_loops(tmp_path: Path) -> None:
    from media import make_clip

    n = 5
    clip = make_clip(tmp_path / "bg.mp4", width=160, height=120, frames=n, audio=None)
    bg = open_background(str(clip))
    try:
        frame = np.zeros((H, W, 3), np.uint8)
        got = [bg.get(frame).copy() for _ in range(2 * n + 1)]
        assert all(g.shape == (H, W, 3) and g.dtype == np.uint8 for g in got)
        # The disc moves: consecutive frames differ; after n frames playback starts over.
        for i in range(n - 1):
            assert np.abs(got[i + 1].astype(np.int16) - got[i]).max() > 50, i
        for i in range(n + 1):
            assert np.array_equal(got[i + n], got[i]), i
        assert bg.loops >= 2
        buf = np.empty_like(frame)
        assert bg.get(frame, buf) is buf
    finally:
        bg.close()


def test_light_wrap_changes_only_the_person_near_the_edge() -> None:
    w, h = 640, 480
    frame, gt = disc_frame(w, h, w / 2, h / 2, 150, seed=6)
    res = Matte(0.5, 10.0, 2.0).compute(low_mask(gt, (128, 96)), frame)
    colour = (0, 255, 0)
    plain = Compositor(ColorBackground(colour))(frame, res.alpha, res.coverage)
    wrapped = Compositor(ColorBackground(colour), light_wrap=1.0)(frame, res.alpha, res.coverage)
    diff = np.abs(wrapped.astype(np.int16) - plain).max(axis=2)
    inside = cv2.distanceTransform(gt.astype(np.uint8), cv2.DIST_L2, 5)
    assert diff[~gt & (res.alpha == 0)].max() <= 2  # the wall itself is not wrapped (rounding only)
    assert diff[inside > 40].max() == 0  # the person's middle is untouched
    rim = (inside > 0) & (inside <= 4)
    assert float(diff[rim].mean()) > 20  # a visible glow just inside the edge
    # ...of the background's colour: green rises, the person's red falls.
    assert (wrapped[rim][:, 1].astype(int) - plain[rim][:, 1]).mean() > 20
    assert (wrapped[rim][:, 2].astype(int) - plain[rim][:, 2]).mean() < -10
    # Its reach grows with the strength and fades with the distance from the edge.
    half = Compositor(ColorBackground(colour), light_wrap=0.3)(frame, res.alpha, res.coverage)
    dhalf = np.abs(half.astype(np.int16) - plain).max(axis=2)
    assert float(dhalf[rim].mean()) < float(diff[rim].mean())
    deeper = (inside > 12) & (inside <= 20)
    assert float(diff[deeper].mean()) < 0.5 * float(diff[rim].mean())


# === pipeline ================================================================================
def test_pipeline_on_a_moving_disc(red_model: Path) -> None:
    spec = ModelSpec.load(red_model)
    settings = Settings(bg="color:#00ff00", smoothing=0.5, feather=2.0)
    pipe = Pipeline(settings, OnnxRuntimeBackend(spec, threads=1))
    k = np.ones((15, 15), np.uint8)
    outs = []
    try:
        for t in range(6):
            frame, gt = disc_frame(W, H, 90 + 12 * t, 120, 60, seed=t)
            out = pipe.process(frame)
            assert out.frame is not None and out.frame.shape == frame.shape
            outs.append((out, out.frame.copy()))
            assert out.alpha.shape == (H, W) and out.mask.shape == (48, 64)
            assert set(out.timings) == set(STAGES) and all(v >= 0 for v in out.timings.values())
            person = cv2.erode(gt.astype(np.uint8), k) > 0
            wall = cv2.dilate(gt.astype(np.uint8), k) == 0
            assert np.abs(out.frame[person].astype(np.int16) - frame[person]).max() <= 1
            assert (out.frame[wall] == (0, 255, 0)).all()
            assert out.alpha[person].min() > 0.99 and out.alpha[wall].max() < 0.01

        # Settings change: applied to the next frame (update runs on the processing thread), earlier outputs untouched.
        pipe.update(settings.replace(bg="color:#0000ff", smoothing=0.0, threshold=0.6, light_wrap=0.2))
        frame, gt = disc_frame(W, H, 170, 120, 60, seed=9)
        out = pipe.process(frame)
        wall = cv2.dilate(gt.astype(np.uint8), k) == 0
        assert out.frame is not None and (out.frame[wall] == (255, 0, 0)).all()
        assert pipe.smoother.strength == 0.0 and pipe.matte.threshold == 0.6
        assert pipe.compositor.light_wrap == 0.2 and pipe.settings.bg == "color:#0000ff"
        for o, copy in outs:
            assert np.array_equal(o.frame, copy)

        # A batch gives the same masks as frames one by one (same model, smoothing off).
        frames = [disc_frame(W, H, 100 + 20 * i, 110, 50, seed=i)[0] for i in range(3)]
        batch = pipe.process_batch(frames)
        pipe.reset()
        single = [pipe.process(f) for f in frames]
        for b, s in zip(batch, single):
            assert np.abs(b.alpha - s.alpha).max() < 1e-4
    finally:
        pipe.close()


def test_segmenter_feeds_the_model_from_the_frame_pyramid(tmp_path: Path) -> None:
    """The model's input comes from the shared pyramid, at the size (and orientation) the backend
    would pick itself, and gives the masks the backend's own resize gives."""
    backend = OnnxRuntimeBackend(ModelSpec.load(make_red_model(tmp_path / "m.onnx", orientation="match")),
                                 threads=1)
    seg = Segmenter(backend)
    for w, h in ((640, 480), (480, 640), (1281, 719)):
        frame, gt = disc_frame(w, h, w * 0.45, h * 0.5, min(w, h) * 0.3)
        pyr = FramePyramid(frame)
        want = (64, 48) if w >= h else (48, 64)  # (w, h)
        got = seg([frame], [pyr])[0]
        own = backend.infer([frame])[0]
        assert got.shape == own.shape == (want[1], want[0])
        assert np.array_equal(got, backend.infer([pyr.at(want)])[0])  # the pyramid's copy went in
        assert np.abs(got - own).mean() < 0.02
        small_gt = cv2.resize(gt.astype(np.float32), got.shape[::-1], interpolation=cv2.INTER_AREA)
        assert np.abs(got - small_gt).mean() < 0.05
    backend.close()


def test_pipeline_without_composite(red_model: Path) -> None:
    pipe = Pipeline(Settings(bg="none"), OnnxRuntimeBackend(ModelSpec.load(red_model), threads=1),
                    composite=False)
    frame, gt = disc_frame(W, H, 160, 120, 60)
    out = pipe.process(frame)
    assert out.frame is None
    assert np.abs(out.alpha - gt).mean() < 0.02
