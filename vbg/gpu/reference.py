"""NumPy references of the CUDA kernels: each does a kernel's arithmetic, vectorised.

They are checked against the CPU stages on every test run, and the kernels
against them wherever a GPU (or the CPU emulation in ``tests/cuda_emu.py``)
is present: ``vbg.gpu.kernels`` lists which reference mirrors which kernel,
and the tolerances.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..spec import ModelSpec
from ..stages.matte import Matte, fisher_step, guide_level
from ..stages.smooth import TemporalSmoother
from .plans import (
    MatteParams,
    Pyramid,
    Size,
    _luma,
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


# --- NumPy references: the kernels' arithmetic, vectorised -------------------------------------
def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """fmaf in NumPy: the float32 product is exact in float64, one rounding of the sum (then to float32;
    a double rounding that differs from fmaf about once in 2**29)."""
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def ref_luma(img: np.ndarray) -> np.ndarray:
    """cv2.cvtColor(img, BGR2GRAY) on u8, bit-exact."""
    return _luma(img, luma_weights())


def ref_resize_u8(img: np.ndarray, size: Size) -> np.ndarray:
    """cv2.resize(img, size, INTER_LINEAR) on u8 (H, W[, C]), bit-exact (OpenCV's fixed point)."""
    H, W = img.shape[:2]
    w, h = size
    if (w, h) == (W, H):
        return img
    (ix, wx), (iy, wy) = resize_taps_u8(W, H, w, h)
    a = img.astype(np.int32)
    ex = (None,) * (a.ndim - 2)
    cols = (None, slice(None)) + ex
    s = a[:, ix[:, 0]] * wx[:, 0][cols] + a[:, ix[:, 1]] * wx[:, 1][cols]
    rows = (slice(None), None) + ex
    v = (((wy[:, 0][rows] * (s[iy[:, 0]] >> 4)) >> 16) + ((wy[:, 1][rows] * (s[iy[:, 1]] >> 4)) >> 16) + 2) >> 2
    return np.clip(v, 0, 255).astype(np.uint8)


def ref_shrink(img: np.ndarray, size: Size) -> np.ndarray:
    """``preprocess.shrink`` on u8, bit-exact."""
    for s in shrink_plan(img.shape[1], img.shape[0], *size):
        img = ref_resize_u8(img, s)
    return img


def ref_pyramid(frame: np.ndarray) -> Pyramid:
    """``FramePyramid`` of one frame from the references."""
    return Pyramid(frame, (frame.shape[1], frame.shape[0]), ref_resize_u8, ref_luma)


def ref_resize_f32(img: np.ndarray, size: Size) -> np.ndarray:
    """cv2.resize(img, size, INTER_LINEAR) on float32 (h, w), OpenCV 5's arithmetic.

    (An exact 2x downscale, which OpenCV does as INTER_AREA, differs by an
    ulp: the matte only downscales the mask when the frame is smaller than it.)
    """
    h, w = img.shape
    (ix, fx), (iy, fy) = resize_taps_f32(w, h, *size)
    a = img.astype(np.float32)
    s0, s1 = a[:, ix[:, 0]], a[:, ix[:, 1]]
    rows = _fma(s1 - s0, fx[None], s0)
    r0, r1 = rows[iy[:, 0]], rows[iy[:, 1]]
    return _fma(r1 - r0, fy[:, None], r0)


def ref_preprocess(frames: Sequence[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """``Preprocessor``: shrink each frame, then blobFromImagesWithParams' arithmetic."""
    sub, mul, swap = blob_constants(spec)
    nchw = spec.input.layout == "NCHW"
    out = []
    for f in frames:
        q = ref_shrink(np.asarray(f), spec.size).astype(np.float32)
        if swap:
            q = q[..., ::-1]
        d = q - sub
        # OpenCV 5.0 multiplies in double for NHWC blobs, in float otherwise (5.1: float for both)
        in_double = blob_multiplies_in_double(spec.input.layout)
        out.append((d.astype(np.float64) * mul).astype(np.float32) if in_double else d * mul.astype(np.float32))
    x = np.stack(out)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x


# -- smoother --
# TemporalSmoother's mask-jump rule: over JUMP counts as motion, fully at JUMP + JUMP_RAMP.
JUMP = TemporalSmoother.JUMP
JUMP_RAMP = TemporalSmoother.JUMP_RAMP


def ref_motion(mask: np.ndarray, prev: np.ndarray, gray: np.ndarray | None,
               prev_gray: np.ndarray | None) -> np.ndarray:
    """The ``motion`` kernel: the motion map before dilation."""
    f32 = np.float32
    dm = np.abs(mask - prev)
    m = np.clip((dm - f32(JUMP)) * f32(1.0 / JUMP_RAMP), 0, 1).astype(f32)
    if gray is not None and prev_gray is not None:
        d = np.pad(np.abs(gray.astype(np.int32) - prev_gray.astype(np.int32)), 1, mode="reflect")
        h, w = gray.shape
        s = _window_sum(d, 3, h, w)
        fm = (((s + 4) // 9).astype(f32) - f32(TemporalSmoother.NOISE)) * f32(1.0 / TemporalSmoother.RAMP)
        m = np.clip(np.maximum(m, fm), 0, 1).astype(f32)
    return m


def ref_smooth_blend(mask: np.ndarray, prev: np.ndarray, motion: np.ndarray, keep_max: float) -> np.ndarray:
    """The ``smooth_blend`` kernel."""
    f32 = np.float32
    h, w = motion.shape
    p = np.pad(motion, 1, mode="constant", constant_values=-np.inf)
    mo = np.max([p[i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    keep = f32(keep_max) * (f32(1) - mo)
    return (mask + keep * (prev - mask)).astype(f32)


def RefSmoother(strength: float = 0.5) -> TemporalSmoother:  # noqa: N802 (reads as the class it was)
    """``TemporalSmoother`` with the references' arithmetic, fed the luma thumbnail through ``step``."""
    return TemporalSmoother(strength, blend=lambda mask, prev, gray, prev_gray, keep_max: ref_smooth_blend(
        mask, prev, ref_motion(mask, prev, gray, prev_gray), keep_max))


def fisher_sums(small: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The NSTAT float64 sums of ``fisher_partial`` for a subsampled BGR guide and mask."""
    wf = p.reshape(-1).astype(np.float64)
    x = np.empty((wf.size, 4), np.float64)
    x[:, 0] = ref_luma(small).reshape(-1)
    x[:, 1:] = small.reshape(-1, 3)
    x2 = x * x
    return np.concatenate([[wf.sum()], x.sum(axis=0), x2.sum(axis=0), wf @ x, wf @ x2])


def choose_channel(s: np.ndarray, npix: int, current: int, guide: str) -> int:
    """``fisher_choose`` for one frame: ``Matte._choose_channel`` from the sums."""
    if guide != "auto":
        return 0
    nf = float(s[0])
    nb = npix - nf
    if min(nf, nb) < 0.01 * npix:
        return current
    s1, s2, f1, f2 = s[1:5], s[5:9], s[9:13], s[13:17]
    mf, mb = f1 / nf, (s1 - f1) / nb
    vf = f2 / nf - mf * mf
    vb = (s2 - f2) / nb - mb * mb
    j = (mf - mb) ** 2 / (vf + vb + 25.0)
    j[0] *= Matte.PREFER_LUMA
    j[current] *= Matte.SWITCH
    return int(np.argmax(j))


def ref_guide(img: np.ndarray, channel: int) -> np.ndarray:
    """``matte.guide_channel`` as float32."""
    return (ref_luma(img) if channel == 0 else img[..., channel - 1]).astype(np.float32)


def _window_sum(p: np.ndarray, k: int, h: int, w: int) -> np.ndarray:
    """Sum of the k x k windows of a padded array, rows outer and columns inner (the kernels' order)."""
    s = np.zeros((h, w), p.dtype)
    for i in range(k):
        for j in range(k):
            s += p[i:i + h, j:j + w]
    return s


def ref_box(x: np.ndarray, r: int, square: bool = False) -> np.ndarray:
    """cv2.boxFilter / sqrBoxFilter (2r+1)^2 on float32 with BORDER_REFLECT: double sums, one rounding."""
    h, w = x.shape
    a = x.astype(np.float64)
    if square:
        a = a * a
    p = np.pad(a, r, mode="symmetric")  # NumPy's symmetric == OpenCV's BORDER_REFLECT
    k = 2 * r + 1
    return (_window_sum(p, k, h, w) * (1.0 / (k * k))).astype(np.float32)


def ref_guided_ab(guide: np.ndarray, p: np.ndarray, prm: MatteParams) -> tuple[np.ndarray, np.ndarray]:
    """The ``guided_ab`` kernel (``Matte._coefficients`` before the last box filters)."""
    f32 = np.float32
    r = int(prm.radius)
    mI, mp = ref_box(guide, r), ref_box(p, r)
    mIp, mII = ref_box(guide * p, r), ref_box(guide, r, square=True)
    var = (mII - mI * mI) + f32(prm.eps)
    cov = mIp - mI * mp
    a = (cov * f32(prm.slope)) / var
    b = (mp * f32(prm.slope) + f32(0.5 - prm.threshold * prm.slope)) - a * mI
    return a.astype(f32), b.astype(f32)


def _fir_f32(x: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """One pass of ``gauss_rows_f32`` (axis 1) or ``gauss_cols_f32`` (axis 0), reflect-101."""
    k = len(taps)
    r = k // 2
    n = x.shape[axis]
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    p = np.pad(x, pad, mode="reflect")

    def at(o: int) -> np.ndarray:
        return p[:, o:o + n] if axis == 1 else p[o:o + n]

    t = taps.astype(np.float32)
    if axis == 1:
        s = t[0] * at(0)
        for j in range(1, k):
            s = _fma(at(j), t[j], s)
    else:
        s = t[r] * at(r)
        for i in range(1, r + 1):
            s = _fma(at(r + i) + at(r - i), t[r + i], s)
    return s.astype(np.float32)


def ref_gauss(img: np.ndarray, k: int) -> np.ndarray:
    """cv2.GaussianBlur(img, (k, k), 0) on float32 (h, w), reflect-101, the kernels' summation order."""
    taps = gaussian_taps(k)
    return _fir_f32(_fir_f32(img.astype(np.float32), taps, 1), taps, 0)


def ref_matte(mask: np.ndarray, frame: np.ndarray, prm: MatteParams, channel: int = 0, *,
              pyramid: Pyramid | None = None) -> tuple[np.ndarray, int]:
    """``Matte.compute(...).alpha`` (and the guide channel it ends on), untiled."""
    f32 = np.float32
    H, W = frame.shape[:2]
    h, w = mask.shape
    mask = np.asarray(mask, f32)
    if prm.guided:
        pyr = pyramid if pyramid is not None else ref_pyramid(frame)
        mid = pyr.level(guide_level(W, H, (w, h)))
        mh, mw = mid.shape[:2]
        p = ref_resize_f32(mask, (mw, mh))
        st = fisher_step(mw, mh)
        small, ps = mid[::st, ::st], p[::st, ::st]
        channel = choose_channel(fisher_sums(small, ps), ps.size, channel, prm.guide)
        a, b = ref_guided_ab(ref_guide(mid, channel), p, prm)
        A, B = ref_box(a, prm.radius), ref_box(b, prm.radius)
        q = ref_resize_f32(A, (W, H)) * ref_guide(frame, channel) + ref_resize_f32(B, (W, H))
    else:
        q = ref_resize_f32((mask - f32(prm.threshold)) * f32(prm.slope) + f32(0.5), (W, H))
    alpha = np.clip(q, 0, 1).astype(f32)
    k = feather_ksize(prm.feather)
    return (ref_gauss(alpha, k) if k > 1 else alpha), channel


# -- background and composite --
def ref_blur_u8(img: np.ndarray, k: int, sigma: float = 0.0) -> np.ndarray:
    """cv2.GaussianBlur(img, (k, k), sigma) on u8, bit-exact: integer taps, 8 then 16 fraction bits."""
    taps = gaussian_taps_fixed(k, sigma).astype(np.int64)
    a = img.astype(np.int64)
    r = k // 2
    ex = ((0, 0),) * (a.ndim - 2)
    h, w = a.shape[:2]
    p = np.pad(a, ((0, 0), (r, r)) + ex, mode="reflect")
    rows = np.zeros((h, w) + a.shape[2:], np.int64)
    for t in range(k):
        rows += taps[t] * p[:, t:t + w]
    p = np.pad(rows, ((r, r), (0, 0)) + ex, mode="reflect")
    s = np.zeros_like(rows)
    for t in range(k):
        s += taps[t] * p[t:t + h]
    return np.minimum((s + 32768) >> 16, 255).astype(np.uint8)


def ref_blur_background(frame: np.ndarray, strength: float, *, pyramid: Pyramid | None = None) -> np.ndarray:
    """``BlurBackground(strength).get(frame)``, bit-exact."""
    H, W = frame.shape[:2]
    plan = blur_plan(strength, W, H)
    pyr = pyramid if pyramid is not None else ref_pyramid(frame)
    small = ref_blur_u8(pyr.at(plan.size), plan.ksize, plan.sigma)
    return ref_resize_u8(small, (W, H))


def ref_composite(fg: np.ndarray, bg: np.ndarray | None, alpha: np.ndarray) -> np.ndarray:
    """``Compositor`` without light wrap: cv2.blendLinear's arithmetic, or BGRA for no background."""
    f32 = np.float32
    if bg is None:
        a8 = np.clip(np.rint(alpha * f32(255)), 0, 255).astype(np.uint8)
        return np.dstack([fg, a8])
    a = alpha[..., None].astype(f32)
    wb = f32(1) - a
    den = (a + wb) + f32(1e-5)
    num = fg.astype(f32) * a + bg.astype(f32) * wb
    return np.clip(np.rint(num / den), 0, 255).astype(np.uint8)
