"""CUDA kernels for the per-frame stages, and the NumPy references they must match.

Each kernel does what one CPU stage does with OpenCV, in the same arithmetic:

=====================  ===============================================  ==========================
kernel                 CPU stage it mirrors                             reference here
=====================  ===============================================  ==========================
``resize_u8``          one ``cv2.resize(INTER_LINEAR)`` step on u8 in   ``ref_resize_u8``,
                       OpenCV's fixed point (11-bit weights); at        ``ref_shrink``,
                       exactly 2x that is INTER_AREA's 2x2 mean, so     ``Pyramid``
                       ``preprocess.shrink`` (bilinear to 2x target,
                       then the 2x area step) and ``FramePyramid``
                       (halvings, ``at``, ``gray``) are chains of it;
                       optional luma out (``cvtColor`` BGR2GRAY)
``preprocess``         ``Preprocessor``: the last ``shrink`` step (of   ``ref_preprocess``
                       the frame, or of its pyramid level as in the
                       pipeline) fused with ``blobFromImagesWithParams`` (swap,
                       ``p - mean*scale`` in float, times the scale
                       factor in float, or in double where the
                       installed OpenCV does: 5.0's NHWC)
``motion``,            ``TemporalSmoother``: mask jump + 3x3 box of     ``RefSmoother``
``smooth_blend``       the grey thumbnail difference, 3x3 dilation,
                       ``mask + keep * (prev - mask)``; the scene-cut
                       test runs on the host (``SceneCut``, exact
                       OpenCV) from a download of the small thumbnail
``resize_f32``         ``cv2.resize(INTER_LINEAR)`` on float32 (mask    ``ref_resize_f32``
                       to guide level, A/B to frame size): per axis
                       ``fma(s1 - s0, f, s0)``, OpenCV 5's form
``fisher_partial``,    ``Matte._choose_channel``: Fisher statistics of  ``fisher_sums``,
``fisher_choose``      luma/B/G/R under and outside the mask, with      ``choose_channel``
                       hysteresis; all on the device (no host sync)
``guided_ab``,         ``Matte._coefficients``: 5x5 box means           ``ref_guided_ab``,
``box2_f32``           (BORDER_REFLECT, double sums rounded once;       ``ref_box``
                       the CPU's separable float filter is within
                       ulps), soft threshold folded in
``matte_apply``        ``Matte``: bilinear A and B at frame size,       ``ref_matte``
                       ``clip(A * I + B)`` on the frame's guide
                       channel (``guided=False``: bilinear of the
                       thresholded mask, ``soft_threshold``)
``gauss_*_f32``        the matte feather, ``cv2.GaussianBlur`` on       ``ref_gauss``
                       float32 (ksize ``2*int(feather)+1``)
``gauss_*_u8``         ``BlurBackground``: ``cv2.GaussianBlur`` on the  ``ref_blur_u8``,
                       downscaled u8 copy (sigma ~3), OpenCV's          ``ref_blur_background``
                       bit-exact fixed point; then ``resize_u8`` up
``composite``,         ``Compositor``: ``cv2.blendLinear`` rounding     ``ref_composite``
``composite_bgra``     (``rint(num / (a + (1-a) + 1e-5))``), BGRA via
                       ``convertScaleAbs``; light wrap is CPU-only
=====================  ===============================================  ==========================

Resampling is expressed as per-axis tap tables (source indices and weights
for each output row/column), computed once on the host with OpenCV's
formulas and shared by the kernels and the references, so the two cannot
drift apart. The references are checked against the CPU stages on every
test run; the kernels against the references where a GPU exists
(``tests/test_gpu.py``). The kernels are compiled with ``--fmad=false`` so
that every float operation rounds on its own, as in the references (the
explicit ``fmaf`` calls are the fused steps OpenCV itself uses).

Tolerances of the references against the CPU stages (measured with OpenCV
5.0, asserted in ``tests/test_gpu.py``):

* u8 resampling (``shrink``, pyramid levels, ``at``, the luma thumbnail),
  the model tensor and the blurred background: bit-exact.
* smoother: bit-exact, the same scene cuts.
* matte: alpha within 3e-5, the same guide channel every frame. The CPU's
  box means are ``cv2.sepFilter2D`` with 1/n taps (a third faster than
  ``boxFilter``), whose rounding follows OpenCV's SIMD path (its scalar tail
  sums in another order), so the references keep OpenCV boxFilter's double
  sums: a few float ulps in the coefficients, times the slope on the alpha
  (measured 4.8e-6 at slope 10, 1.3e-5 at slope 50). The feather's float
  GaussianBlur likewise sums in its own order (<= 2.4e-7).
* composite: bit-exact given the same alpha and background.

Kernels against references: identical (the same operations in the same
order), except that the references emulate ``fmaf`` in float64, which rounds
twice about once in 2**29 operations (1 ulp). ``GpuPipeline`` against
``vbg.pipeline.Pipeline`` with the same model through ONNX Runtime on both
sides: the mask within 1e-6 (CuPy's ``exp`` in the decode, not NumPy's),
alpha within 1e-4 (those ulps through the guided filter), the composite
within 1 level and identical on at least 99.9% of the pixels (an alpha an
ulp away can round a blend the other way).

Other OpenCV versions: the luma weights are picked to match the installed
one (``luma_weights``: 16 fraction bits in 5.x, 14 in 4.x). The float
bilinear form (``fma(s1 - s0, f, s0)``, fractions from double positions) and
blobFromImages' float/double split were measured on 5.0 only; another
version may differ there by float ulps (or ~1e-5 where a version computes
the fractions in float32), which the exact assertions above would catch.
"""


from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..spec import ModelSpec
from ..stages.matte import GUIDES, Matte, fisher_step, guide_level
from ..stages.preprocess import levels_for
from ..stages.smooth import TemporalSmoother
from .device import require_cupy
from .plans import (
    FISHER_PARTS,
    NSTAT,
    MatteParams,
    Pyramid,
    Size,
    blob_constants,
    blob_multiplies_in_double,
    blur_plan,
    feather_ksize,
    gaussian_taps,
    gaussian_taps_fixed,
    luma_weights,
    resize_taps_f32,
    resize_taps_u8,
    shrink_plan,
)

log = logging.getLogger(__name__)

KERNEL_NAMES = ("resize_u8", "preprocess", "resize_f32", "motion", "smooth_blend", "fisher_partial",
                "fisher_choose", "guided_ab", "box2_f32", "soft_threshold", "matte_apply", "gauss_rows_f32",
                "gauss_cols_f32", "gauss_rows_u8", "gauss_cols_u8", "composite", "composite_bgra")

# Every float op rounds on its own (no contraction into fma), as in the references.
NVRTC_OPTIONS = ("-std=c++14", "--fmad=false")


def cuda_source() -> str:
    """The kernels' source (``kernels.cu``) with this OpenCV's luma weights defined."""
    b, g, r, shift = luma_weights()
    code = Path(__file__).with_name("kernels.cu").read_text()
    return f"#define LUMA_B {b}\n#define LUMA_G {g}\n#define LUMA_R {r}\n#define LUMA_SHIFT {shift}\n" + code


# --- CuPy launchers --------------------------------------------------------------------
def _grid(w: int, h: int, n: int = 1) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    return ((w + 31) // 32, (h + 7) // 8, n), (32, 8, 1)


def _grid1(count: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    return ((count + 255) // 256, 1, 1), (256, 1, 1)


i32, f32, f64 = np.int32, np.float32, np.float64


class Kernels:
    """The compiled kernels on the current CUDA device, with device-side tap tables cached by size.

    Arrays are C-contiguous CuPy arrays; frames are batches (N, H, W, 3).
    Every launch goes to CuPy's current stream: callers wrap calls in ``with stream:``.
    """

    def __init__(self) -> None:
        cp = require_cupy()
        self.cp = cp
        module = cp.RawModule(code=cuda_source(), options=NVRTC_OPTIONS)
        self.fn = {name: module.get_function(name) for name in KERNEL_NAMES}
        self._tables: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def _device(self, key: tuple[Any, ...], make: Callable[[], Sequence[np.ndarray]]) -> tuple[Any, ...]:
        if key not in self._tables:
            self._tables[key] = tuple(self.cp.asarray(np.ascontiguousarray(a)) for a in make())
        return self._tables[key]

    def _taps_u8(self, W: int, H: int, w: int, h: int) -> tuple[Any, ...]:
        def make() -> list[np.ndarray]:
            (xi, xw), (yi, yw) = resize_taps_u8(W, H, w, h)
            return [xi, xw, yi, yw]
        return self._device(("u8", W, H, w, h), make)

    def _taps_f32(self, W: int, H: int, w: int, h: int) -> tuple[Any, ...]:
        def make() -> list[np.ndarray]:
            (xi, xf), (yi, yf) = resize_taps_f32(W, H, w, h)
            return [xi, xf, yi, yf]
        return self._device(("f32", W, H, w, h), make)

    # -- resampling ---------------------------------------------------------------------
    def resize_u8(self, src: Any, size: Size, *, gray: bool = False, out: Any = None) -> Any:
        """src (N, H, W, 3) u8 -> (N, h, w, 3) u8, or (N, h, w) luma with ``gray``: one INTER_LINEAR step."""
        n, H, W = (int(v) for v in src.shape[:3])
        w, h = size
        if out is None:
            out = self.cp.empty((n, h, w) if gray else (n, h, w, 3), np.uint8)
        xi, xw, yi, yw = self._taps_u8(W, H, w, h)
        grid, block = _grid(w, h, n)
        self.fn["resize_u8"](grid, block, (src, i32(H), i32(W), xi, xw, yi, yw, out, i32(h), i32(w), i32(gray)))
        return out

    def luma(self, src: Any) -> Any:
        """(N, H, W, 3) u8 -> (N, H, W) u8 luma (an identity resize step with the luma output)."""
        return self.resize_u8(src, (int(src.shape[2]), int(src.shape[1])), gray=True)

    def pyramid(self, frames: Any) -> Pyramid:
        """``FramePyramid`` of a batch on the device."""
        return Pyramid(frames, (int(frames.shape[2]), int(frames.shape[1])), self.resize_u8, self.luma)

    def preprocess(self, frames: Any, spec: ModelSpec, out: Any, pyramid: Pyramid | None = None) -> Any:
        """frames (N, H, W, 3) u8 -> ``out`` (N, model tensor) float32: shrink, then normalise in the last step.

        With the frames' ``pyramid``: from its level, like ``Segmenter`` feeding
        ``FramePyramid.at(size)`` to the backend (the pipeline's path); without:
        ``Preprocessor`` on the whole frames.
        """
        n, H, W = (int(v) for v in frames.shape[:3])
        w, h = spec.size
        src = frames
        if pyramid is not None:
            src = pyramid.level(levels_for(W, H, (w, h)))
            H, W = (int(v) for v in src.shape[1:3])
        for s in shrink_plan(W, H, w, h)[:-1]:  # the 2x-size intermediate, rounded to u8 like the CPU
            src = self.resize_u8(src, s)
        sh, sw = (int(v) for v in src.shape[1:3])
        xi, xw, yi, yw = self._taps_u8(sw, sh, w, h)
        sub, mul, swap = blob_constants(spec)
        grid, block = _grid(w, h, n)
        self.fn["preprocess"](grid, block, (
            src, i32(sh), i32(sw), xi, xw, yi, yw, out, i32(h), i32(w), i32(spec.input.layout == "NCHW"),
            i32(swap), i32(blob_multiplies_in_double(spec.input.layout)),
            f32(sub[0]), f32(sub[1]), f32(sub[2]), f64(mul[0]), f64(mul[1]), f64(mul[2])))
        return out

    def resize_f32(self, src: Any, size: Size, out: Any = None) -> Any:
        """(N, h, w) float32 -> (N, H, W) float32, INTER_LINEAR."""
        n, h, w = (int(v) for v in src.shape)
        W, H = size
        if out is None:
            out = self.cp.empty((n, H, W), np.float32)
        xi, xf, yi, yf = self._taps_f32(w, h, W, H)
        grid, block = _grid(W, H, n)
        self.fn["resize_f32"](grid, block, (src, i32(h), i32(w), xi, xf, yi, yf, out, i32(H), i32(W)))
        return out

    # -- smoother -----------------------------------------------------------------------
    def smooth(self, mask: Any, prev: Any, gray: Any | None, prev_gray: Any | None, keep_max: float) -> Any:
        """One ``TemporalSmoother`` blend of (h, w) float32 masks; ``gray``/``prev_gray`` (h, w) u8 or None."""
        cp = self.cp
        h, w = (int(v) for v in mask.shape)
        mot = cp.empty((h, w), np.float32)
        out = cp.empty((h, w), np.float32)
        has = gray is not None and prev_gray is not None
        g = gray if has else mask  # unread when has_gray is 0
        pg = prev_gray if has else mask
        grid, block = _grid(w, h)
        self.fn["motion"](grid, block, (
            mask, prev, g, pg, i32(has), mot, i32(h), i32(w), f32(TemporalSmoother.JUMP), f32(1.0 / TemporalSmoother.JUMP_RAMP),
            f32(TemporalSmoother.NOISE), f32(1.0 / TemporalSmoother.RAMP)))
        self.fn["smooth_blend"](grid, block, (mask, prev, mot, out, i32(h), i32(w), f32(keep_max)))
        return out

    # -- matte --------------------------------------------------------------------------
    def choose_channel(self, mid: Any, p: Any, guide: str, state: Any) -> Any:
        """(N,) int32 guide channel per frame; ``state`` (1,) int32 holds the channel in use across calls."""
        cp = self.cp
        n, mh, mw = (int(v) for v in mid.shape[:3])
        st = fisher_step(mw, mh)
        npix = (-(-mh // st)) * (-(-mw // st))
        partial = cp.empty((n, FISHER_PARTS, NSTAT), np.float64)
        channel = cp.empty((n,), np.int32)
        self.fn["fisher_partial"](((FISHER_PARTS + 127) // 128, 1, n), (128, 1, 1), (
            mid, p, i32(mh), i32(mw), i32(st), partial, i32(FISHER_PARTS)))
        self.fn["fisher_choose"]((1, 1, 1), (1, 1, 1), (
            partial, i32(n), i32(FISHER_PARTS), i32(npix), i32(guide == "auto"), f64(Matte.PREFER_LUMA),
            f64(Matte.SWITCH), state, channel))
        return channel

    def matte(self, masks: Any, frames: Any, pyramid: Pyramid, prm: MatteParams, state: Any, out: Any,
              tmp: Any) -> Any:
        """masks (N, h, w) float32 -> alpha ``out`` (N, H, W) float32, as ``Matte`` (``tmp`` like ``out``)."""
        cp = self.cp
        n, H, W = (int(v) for v in frames.shape[:3])
        h, w = (int(v) for v in masks.shape[1:])
        if prm.guide not in GUIDES:
            raise ValueError(f"guide must be one of {GUIDES}")
        if prm.guided:
            mid = pyramid.level(guide_level(W, H, (w, h)))
            mh, mw = (int(v) for v in mid.shape[1:3])
            p = self.resize_f32(masks, (mw, mh))
            channel = self.choose_channel(mid, p, prm.guide, state)
            a, b = cp.empty((n, mh, mw), np.float32), cp.empty((n, mh, mw), np.float32)
            grid, block = _grid(mw, mh, n)
            r = int(prm.radius)
            inv = f64(1.0 / (2 * r + 1) ** 2)
            self.fn["guided_ab"](grid, block, (
                mid, p, channel, i32(mh), i32(mw), i32(r), inv, f32(prm.eps), f32(prm.slope),
                f32(0.5 - prm.threshold * prm.slope), a, b))
            A, B = cp.empty_like(a), cp.empty_like(b)
            self.fn["box2_f32"](grid, block, (a, b, i32(mh), i32(mw), i32(r), inv, A, B))
            lh, lw = mh, mw
        else:
            channel = state  # unread
            B = cp.empty_like(masks)
            grid, block = _grid1(int(masks.size))
            self.fn["soft_threshold"](grid, block, (masks, B, i32(masks.size), f32(prm.threshold), f32(prm.slope)))
            A, lh, lw = B, h, w  # A unread
        xi, xf, yi, yf = self._taps_f32(lw, lh, W, H)
        grid, block = _grid(W, H, n)
        self.fn["matte_apply"](grid, block, (
            A, B, i32(lh), i32(lw), xi, xf, yi, yf, frames, channel, i32(prm.guided), out, i32(H), i32(W)))
        k = feather_ksize(prm.feather)
        if k > 1:
            self.gauss_f32(out, k, tmp)
        return out

    def gauss_f32(self, img: Any, k: int, tmp: Any) -> Any:
        """GaussianBlur (k, k), sigma from k, of (N, H, W) float32 ``img`` in place (``tmp`` like it)."""
        taps = self._device(("g32", k), lambda: [gaussian_taps(k)])[0]
        n, H, W = (int(v) for v in img.shape)
        grid, block = _grid(W, H, n)
        self.fn["gauss_rows_f32"](grid, block, (img, tmp, i32(H), i32(W), taps, i32(k)))
        self.fn["gauss_cols_f32"](grid, block, (tmp, img, i32(H), i32(W), taps, i32(k)))
        return img

    # -- background and composite -------------------------------------------------------------
    def blur_u8(self, src: Any, k: int, sigma: float) -> Any:
        """GaussianBlur (k, k), sigma of (N, H, W, 3) u8, bit-exact; a new array."""
        cp = self.cp
        taps = self._device(("gu8", k, sigma), lambda: [gaussian_taps_fixed(k, sigma)])[0]
        n, H, W = (int(v) for v in src.shape[:3])
        tmp = cp.empty((n, H, W, 3), np.int32)
        out = cp.empty((n, H, W, 3), np.uint8)
        grid, block = _grid(W, H, n)
        self.fn["gauss_rows_u8"](grid, block, (src, tmp, i32(H), i32(W), taps, i32(k)))
        self.fn["gauss_cols_u8"](grid, block, (tmp, out, i32(H), i32(W), taps, i32(k)))
        return out

    def blur_background(self, pyramid: Pyramid, strength: float, out: Any) -> Any:
        """``BlurBackground(strength)`` for the pyramid's frames into ``out`` (N, H, W, 3) u8."""
        W, H = pyramid.size
        plan = blur_plan(strength, W, H)
        small = self.blur_u8(pyramid.at(plan.size), plan.ksize, plan.sigma)
        return self.resize_u8(small, (W, H), out=out)

    def composite(self, fg: Any, bg: Any | None, alpha: Any, out: Any) -> Any:
        """fg (N, H, W, 3) u8; bg (N, H, W, 3), one (H, W, 3) for all, or None; alpha (N, H, W) float32
        -> out (N, H, W, 3), or BGRA (N, H, W, 4) when bg is None."""
        n, H, W = (int(v) for v in fg.shape[:3])
        if bg is None:
            grid, block = _grid1(n * H * W)
            self.fn["composite_bgra"](grid, block, (fg, alpha, out, i32(n * H * W)))
        else:
            grid, block = _grid(W, H, n)
            self.fn["composite"](grid, block, (fg, bg, i32(bg.ndim == 3), alpha, out, i32(H), i32(W)))
        return out
