"""CUDA kernels for the per-frame stages, and the NumPy references they must match.

Each kernel does what one CPU stage does with OpenCV, pixel for pixel:

========================  =============================================  ===========================
kernel                    CPU stage it mirrors                           reference here
========================  =============================================  ===========================
``preprocess``            ``Preprocessor``: cv2.resize (LINEAR/AREA) on  ``ref_preprocess``
                          uint8, colour swap, ``(p/scale - mean)/std``
``upsample_threshold``    ``Matte``: cv2.resize LINEAR of the mask, soft  ``ref_upsample_threshold``
                          threshold ``clip((m - t) * slope + 0.5)``
``gauss_*_f32``           cv2.GaussianBlur on float (matte feather)      ``ref_gauss``
``gauss_*_u8``            cv2.GaussianBlur on u8 (blur background),      ``ref_blur_u8``
                          OpenCV's bit-exact fixed point
``composite*``            ``Compositor``: ``fg*a + bg*(1-a)`` rounded     ``ref_composite``
========================  =============================================  ===========================

Resampling is expressed as per-axis tap tables (source index and weight for
each output row/column), computed once on the host with OpenCV's formulas and
shared by the kernels and the references, so the two cannot drift apart. The
references are checked against OpenCV on every CPU test run; the kernels are
checked against the references where a GPU exists (``tests/test_gpu.py``).

Tolerances against the CPU stages: resized pixels within 1 level (OpenCV's
LINEAR resize of u8 rounds in fixed point; the AREA path used for video
frames is exact or within 1 level), alpha within 1e-5 (float summation
order), blurred background exact (OpenCV's fixed point is reproduced),
composite exact given the same alpha and background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from ..spec import ModelSpec

CUDA_SOURCE = r"""
typedef unsigned char u8;

__device__ __forceinline__ int reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

/* Separable Gaussian pass on float32 (the matte feather), like OpenCV's float path.
   Rows: along x; cols: along y. Border: reflect-101 (OpenCV's default). */
__device__ void gauss_pass_f32(const float* __restrict__ src, float* __restrict__ dst, int H, int W, int C,
                               const float* __restrict__ taps, int k, bool rows) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    int r = k / 2;
    for (int c = 0; c < C; ++c) {
        float s = 0.f;
        for (int t = 0; t < k; ++t) {
            int xx = rows ? reflect101(x - r + t, W) : x;
            int yy = rows ? y : reflect101(y - r + t, H);
            s += taps[t] * src[((size_t)yy * W + xx) * C + c];
        }
        dst[((size_t)y * W + x) * C + c] = s;
    }
}

extern "C" {

/* Frames (N, H, W, 3) BGR u8 -> model tensor (N, 3, h, w) or (N, h, w, 3) float32.
   Resize by tap tables (LINEAR or AREA), round to u8 like the CPU path, swap to the
   spec's colour order, then p * mul + add. */
__global__ void preprocess(const u8* __restrict__ src, int H, int W,
                           const int* __restrict__ xi, const float* __restrict__ xw, int kx,
                           const int* __restrict__ yi, const float* __restrict__ yw, int ky,
                           float* __restrict__ dst, int h, int w, int nchw, int swap_rb,
                           float m0, float m1, float m2, float a0, float a1, float a2) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int b = blockIdx.z;
    if (x >= w || y >= h) return;
    const u8* img = src + (size_t)b * H * W * 3;
    float acc[3] = {0.f, 0.f, 0.f};
    for (int j = 0; j < ky; ++j) {
        float wy = yw[y * ky + j];
        if (wy == 0.f) continue;
        const u8* row = img + (size_t)yi[y * ky + j] * W * 3;
        float r[3] = {0.f, 0.f, 0.f};
        for (int i = 0; i < kx; ++i) {
            float wx = xw[x * kx + i];
            const u8* p = row + (size_t)xi[x * kx + i] * 3;
            r[0] += wx * p[0]; r[1] += wx * p[1]; r[2] += wx * p[2];
        }
        acc[0] += wy * r[0]; acc[1] += wy * r[1]; acc[2] += wy * r[2];
    }
    float q[3];
    for (int c = 0; c < 3; ++c) q[c] = fminf(fmaxf(rintf(acc[c]), 0.f), 255.f);
    float v0 = __fadd_rn(__fmul_rn(swap_rb ? q[2] : q[0], m0), a0);
    float v1 = __fadd_rn(__fmul_rn(q[1], m1), a1);
    float v2 = __fadd_rn(__fmul_rn(swap_rb ? q[0] : q[2], m2), a2);
    if (nchw) {
        size_t plane = (size_t)h * w;
        float* o = dst + (size_t)b * 3 * plane + (size_t)y * w + x;
        o[0] = v0; o[plane] = v1; o[2 * plane] = v2;
    } else {
        float* o = dst + (((size_t)b * h + y) * w + x) * 3;
        o[0] = v0; o[1] = v1; o[2] = v2;
    }
}

/* Low-res mask (h, w) -> alpha (H, W): bilinear by tap tables (k = 2), then the soft threshold. */
__global__ void upsample_threshold(const float* __restrict__ mask, int h, int w,
                                   const int* __restrict__ xi, const float* __restrict__ xw,
                                   const int* __restrict__ yi, const float* __restrict__ yw,
                                   float* __restrict__ out, int H, int W, float thr, float slope) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    const float* r0 = mask + (size_t)yi[2 * y] * w;
    const float* r1 = mask + (size_t)yi[2 * y + 1] * w;
    int x0 = xi[2 * x], x1 = xi[2 * x + 1];
    float a = xw[2 * x], b = xw[2 * x + 1];
    float t0 = r0[x0] * a + r0[x1] * b;
    float t1 = r1[x0] * a + r1[x1] * b;
    float v = t0 * yw[2 * y] + t1 * yw[2 * y + 1];
    float s = __fadd_rn(__fmul_rn(__fsub_rn(v, thr), slope), 0.5f);
    out[(size_t)y * W + x] = fminf(fmaxf(s, 0.f), 1.f);
}

__global__ void gauss_rows_f32(const float* src, float* dst, int H, int W, int C, const float* taps, int k) {
    gauss_pass_f32(src, dst, H, W, C, taps, k, true);
}
__global__ void gauss_cols_f32(const float* src, float* dst, int H, int W, int C, const float* taps, int k) {
    gauss_pass_f32(src, dst, H, W, C, taps, k, false);
}

/* u8 Gaussian in OpenCV's bit-exact fixed point: taps are integers summing to 256, the row
   pass keeps 8 fraction bits, the column pass rounds 16 fraction bits back to u8. */
__global__ void gauss_rows_u8(const u8* __restrict__ src, int* __restrict__ dst, int H, int W, int C,
                              const int* __restrict__ taps, int k) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    int r = k / 2;
    for (int c = 0; c < C; ++c) {
        int s = 0;
        for (int t = 0; t < k; ++t) s += taps[t] * (int)src[((size_t)y * W + reflect101(x - r + t, W)) * C + c];
        dst[((size_t)y * W + x) * C + c] = s;
    }
}
__global__ void gauss_cols_u8(const int* __restrict__ src, u8* __restrict__ dst, int H, int W, int C,
                              const int* __restrict__ taps, int k) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    int r = k / 2;
    for (int c = 0; c < C; ++c) {
        int s = 0;
        for (int t = 0; t < k; ++t) s += taps[t] * src[((size_t)reflect101(y - r + t, H) * W + x) * C + c];
        dst[((size_t)y * W + x) * C + c] = (u8)min((s + 32768) >> 16, 255);
    }
}

/* out = fg * a + bg * (1 - a), + 0.5 and truncated, exactly as the CPU compositor rounds. */
__global__ void composite(const u8* __restrict__ fg, const u8* __restrict__ bg,
                          const float* __restrict__ alpha, u8* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float a = alpha[i], b = __fsub_rn(1.f, a);
    for (int c = 0; c < 3; ++c) {
        size_t j = (size_t)i * 3 + c;
        float v = __fadd_rn(__fmul_rn((float)fg[j], a), __fmul_rn((float)bg[j], b));
        out[j] = (u8)__fadd_rn(v, 0.5f);
    }
}

/* Transparent background: BGRA with alpha * 255 rounded. */
__global__ void composite_bgra(const u8* __restrict__ fg, const float* __restrict__ alpha,
                               u8* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[(size_t)i * 4 + 0] = fg[(size_t)i * 3 + 0];
    out[(size_t)i * 4 + 1] = fg[(size_t)i * 3 + 1];
    out[(size_t)i * 4 + 2] = fg[(size_t)i * 3 + 2];
    out[(size_t)i * 4 + 3] = (u8)__fadd_rn(__fmul_rn(alpha[i], 255.f), 0.5f);
}

}  // extern "C"
"""

KERNEL_NAMES = ("preprocess", "upsample_threshold", "gauss_rows_f32", "gauss_cols_f32", "gauss_rows_u8",
                "gauss_cols_u8", "composite", "composite_bgra")

Taps = tuple[np.ndarray, np.ndarray]  # (index int32 (n_dst, k), weight float32 (n_dst, k))


# --- tap tables (OpenCV's formulas) -----------------------------------------------------
def linear_taps(src_n: int, dst_n: int) -> Taps:
    """cv2.INTER_LINEAR along one axis: half-pixel centres, clamped at the edges."""
    scale = src_n / dst_n
    fx = (np.arange(dst_n, dtype=np.float64) + 0.5) * scale - 0.5
    sx = np.floor(fx)
    fx = fx - sx
    sx = sx.astype(np.int64)
    lo, hi = sx < 0, sx >= src_n - 1
    fx[lo | hi] = 0.0
    sx[lo] = 0
    sx[hi] = src_n - 1
    idx = np.stack([sx, np.minimum(sx + 1, src_n - 1)], axis=1).astype(np.int32)
    wt = np.stack([1.0 - fx, fx], axis=1).astype(np.float32)
    return idx, wt


def area_taps(src_n: int, dst_n: int) -> Taps:
    """cv2.INTER_AREA (downscale) along one axis: each output averages the source span it covers."""
    scale = src_n / dst_n
    k = int(math.ceil(scale)) + 1
    idx = np.zeros((dst_n, k), np.int32)
    wt = np.zeros((dst_n, k), np.float32)
    for d in range(dst_n):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, src_n - f1)
        j = 0
        for s in range(int(math.floor(f1)), min(src_n, int(math.ceil(f2)))):
            overlap = min(s + 1.0, f2) - max(float(s), f1)
            if overlap > 1e-3:  # OpenCV drops slivers this thin
                idx[d, j], wt[d, j] = s, overlap / cell
                j += 1
        idx[d, j:] = idx[d, max(0, j - 1)]  # padding taps have weight 0
    return idx, wt


def use_area(src_w: int, src_h: int, dst_w: int, dst_h: int) -> bool:
    """The Preprocessor's choice: INTER_AREA when shrinking more than 2x, else INTER_LINEAR."""
    return src_w > 2 * dst_w or src_h > 2 * dst_h


def resize_taps(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[Taps, Taps]:
    f = area_taps if use_area(src_w, src_h, dst_w, dst_h) else linear_taps
    return f(src_w, dst_w), f(src_h, dst_h)


def gaussian_taps(k: int) -> np.ndarray:
    """cv2.getGaussianKernel(k, 0): what GaussianBlur(..., (k, k), 0) uses on both axes."""
    return cv2.getGaussianKernel(k, 0, ktype=cv2.CV_32F).ravel().astype(np.float32)


def gaussian_taps_fixed(k: int, bits: int = 8) -> np.ndarray:
    """Integer taps (sum 2**bits) of OpenCV's bit-exact u8 GaussianBlur: rounding with error diffusion."""
    kd = cv2.getGaussianKernel(k, 0, ktype=cv2.CV_64F).ravel()
    one = 1 << bits
    taps = np.zeros(k, np.int32)
    err, half_sum = 0.0, 0
    for i in range(k // 2):
        adj = kd[i] * one + err
        v = int(np.rint(adj))
        err = adj - v
        taps[i] = taps[k - 1 - i] = v
        half_sum += v
    taps[k // 2] = one - 2 * half_sum
    return taps


def feather_ksize(feather: float) -> int:
    """Kernel size of the matte feather (0 = none), as ``Matte`` computes it."""
    return int(feather) * 2 + 1 if feather > 0 else 0


def blur_ksize(strength: float) -> int:
    """Kernel size of the blurred background, as ``BlurBackground`` computes it."""
    return int(strength) | 1


def norm_constants(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray, bool]:
    """(mul, add, swap_rb): x = p * mul + add per channel in spec order, as ``Preprocessor`` folds it."""
    i = spec.input
    std = np.asarray(i.std, np.float32)
    mean = np.asarray(i.mean, np.float32)
    mul = (1.0 / (float(i.scale) * std)).astype(np.float32)
    add = (-mean / std).astype(np.float32)
    return mul, add, i.color == "RGB"


# --- NumPy references: the kernels' arithmetic, vectorised -------------------------------------
def ref_resize(img: np.ndarray, taps_x: Taps, taps_y: Taps) -> np.ndarray:
    """Separable resize by tap tables, float64, unrounded. ``img`` is (H, W) or (H, W, C)."""
    (ix, wx), (iy, wy) = taps_x, taps_y
    a = img.astype(np.float64)
    extra = (None,) * (a.ndim - 2)
    rows = sum(wy[(slice(None), j) + extra][:, None] * a[iy[:, j]] for j in range(iy.shape[1]))
    return sum(wx[(slice(None), i) + extra][None] * rows[:, ix[:, i]] for i in range(ix.shape[1]))


def ref_preprocess(frames: Sequence[np.ndarray], spec: ModelSpec) -> np.ndarray:
    w, h = spec.size
    mul, add, swap = norm_constants(spec)
    out = []
    for f in frames:
        tx, ty = resize_taps(f.shape[1], f.shape[0], w, h)
        q = np.clip(np.rint(ref_resize(f, tx, ty)), 0, 255).astype(np.float32)
        if swap:
            q = q[..., ::-1]
        out.append(q * mul + add)
    x = np.stack(out).astype(np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if spec.input.layout == "NCHW" else x


def ref_upsample_threshold(mask: np.ndarray, width: int, height: int, threshold: float,
                           slope: float) -> np.ndarray:
    up = ref_resize(mask, linear_taps(mask.shape[1], width), linear_taps(mask.shape[0], height))
    up = up.astype(np.float32)
    return np.clip((up - np.float32(threshold)) * np.float32(slope) + np.float32(0.5), 0, 1).astype(np.float32)


def _reflect101(i: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(i)
    period = 2 * n - 2
    i = np.abs(i) % period
    return np.where(i >= n, period - i, i)


def ref_gauss(img: np.ndarray, k: int) -> np.ndarray:
    """GaussianBlur (k, k), sigma from k, reflect-101 border: rows then columns, float64."""
    taps = gaussian_taps(k).astype(np.float64)
    a = img.astype(np.float64)
    r = k // 2
    h, w = a.shape[:2]
    xs = _reflect101(np.arange(w)[:, None] - r + np.arange(k)[None], w)  # (w, k)
    ys = _reflect101(np.arange(h)[:, None] - r + np.arange(k)[None], h)
    rows = sum(taps[t] * a[:, xs[:, t]] for t in range(k))
    return sum(taps[t] * rows[ys[:, t]] for t in range(k))


def ref_matte(mask: np.ndarray, width: int, height: int, threshold: float, slope: float,
              feather: float) -> np.ndarray:
    a = ref_upsample_threshold(mask, width, height, threshold, slope)
    k = feather_ksize(feather)
    return ref_gauss(a, k).astype(np.float32) if k > 1 else a


def ref_blur_u8(frame: np.ndarray, k: int) -> np.ndarray:
    """cv2.GaussianBlur(frame, (k, k), 0) on u8, bit-exact: integer taps, 8 then 16 fraction bits."""
    taps = gaussian_taps_fixed(k).astype(np.int64)
    a = frame.astype(np.int64)
    r = k // 2
    h, w = a.shape[:2]
    xs = _reflect101(np.arange(w)[:, None] - r + np.arange(k)[None], w)
    ys = _reflect101(np.arange(h)[:, None] - r + np.arange(k)[None], h)
    rows = sum(taps[t] * a[:, xs[:, t]] for t in range(k))
    s = sum(taps[t] * rows[ys[:, t]] for t in range(k))
    return np.minimum((s + 32768) >> 16, 255).astype(np.uint8)


def ref_composite(fg: np.ndarray, bg: np.ndarray | None, alpha: np.ndarray) -> np.ndarray:
    if bg is None:
        a8 = (alpha * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
        return np.dstack([fg, a8])
    a = alpha[..., None]
    out = fg.astype(np.float32) * a + bg.astype(np.float32) * (np.float32(1) - a)
    return (out + np.float32(0.5)).astype(np.uint8)


def decode_xp(xp: Any, spec: ModelSpec, raw: Any) -> Any:
    """``vbg.preprocess.decode_output`` for NumPy or CuPy arrays: raw output -> (N, h, w) float32."""
    o = spec.output
    x = xp.asarray(raw, dtype=xp.float32)
    if x.ndim == 3:
        x = x[:, None] if o.layout == "NCHW" else x[..., None]
    if o.layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if o.kind in ("probability", "softmax"):
        p = x[:, o.person_channel]
    elif o.kind == "logits":
        p = 1.0 / (1.0 + xp.exp(-x[:, o.person_channel]))
    else:  # softmax_logits
        e = xp.exp(x - x.max(axis=1, keepdims=True))
        p = e[:, o.person_channel] / e.sum(axis=1)
    return xp.ascontiguousarray(xp.clip(p, 0.0, 1.0).astype(xp.float32))


# --- CuPy launchers --------------------------------------------------------------------
def _grid(w: int, h: int, n: int = 1) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    return ((w + 31) // 32, (h + 7) // 8, n), (32, 8, 1)


class Kernels:
    """The compiled kernels on the current CUDA device, with device-side tap tables cached by size.

    Every launch goes to CuPy's current stream: callers wrap calls in ``with stream:``.
    """

    def __init__(self) -> None:
        from .device import require_cupy

        cp = require_cupy()
        self.cp = cp
        module = cp.RawModule(code=CUDA_SOURCE, options=("-std=c++14",))
        self.fn = {name: module.get_function(name) for name in KERNEL_NAMES}
        self._taps: dict[tuple[Any, ...], Any] = {}

    def _device_taps(self, key: tuple[Any, ...], make: Any) -> Any:
        if key not in self._taps:
            self._taps[key] = tuple(self.cp.asarray(a) for t in make() for a in t)
        return self._taps[key]

    def preprocess(self, frames: Any, spec: ModelSpec, out: Any) -> Any:
        """frames (N, H, W, 3) u8 on the device -> ``out`` (N, model tensor) float32."""
        n, H, W = (int(v) for v in frames.shape[:3])
        w, h = spec.size
        xi, xw, yi, yw = self._device_taps(("pre", W, H, w, h), lambda: resize_taps(W, H, w, h))
        mul, add, swap = norm_constants(spec)
        grid, block = _grid(w, h, n)
        i32, f32 = np.int32, np.float32
        self.fn["preprocess"](grid, block, (
            frames, i32(H), i32(W), xi, xw, i32(xi.shape[1]), yi, yw, i32(yi.shape[1]),
            out, i32(h), i32(w), i32(spec.input.layout == "NCHW"), i32(swap),
            f32(mul[0]), f32(mul[1]), f32(mul[2]), f32(add[0]), f32(add[1]), f32(add[2])))
        return out

    def upsample_threshold(self, mask: Any, out: Any, threshold: float, slope: float) -> Any:
        """mask (h, w) float32 -> ``out`` (H, W) float32 soft-thresholded alpha."""
        h, w = (int(v) for v in mask.shape)
        H, W = (int(v) for v in out.shape)
        xi, xw, yi, yw = self._device_taps(("up", w, h, W, H), lambda: (linear_taps(w, W), linear_taps(h, H)))
        grid, block = _grid(W, H)
        self.fn["upsample_threshold"](grid, block, (
            self.cp.ascontiguousarray(mask), np.int32(h), np.int32(w), xi, xw, yi, yw, out,
            np.int32(H), np.int32(W), np.float32(threshold), np.float32(slope)))
        return out

    def gauss(self, src: Any, k: int, tmp: Any, out: Any) -> Any:
        """GaussianBlur (k, k), sigma from k, into ``out``.

        float32 src (H, W[, C]): float taps, ``tmp`` float32 like src. u8 src:
        OpenCV's bit-exact fixed point, ``tmp`` int32 like src, ``out`` u8.
        """
        u8 = src.dtype == np.uint8
        taps = self._device_taps(("g", k, u8), lambda: (((gaussian_taps_fixed if u8 else gaussian_taps)(k),),))[0]
        H, W = (int(v) for v in src.shape[:2])
        C = int(src.shape[2]) if src.ndim == 3 else 1
        grid, block = _grid(W, H)
        args = (np.int32(H), np.int32(W), np.int32(C), taps, np.int32(k))
        self.fn["gauss_rows_u8" if u8 else "gauss_rows_f32"](grid, block, (src, tmp) + args)
        self.fn["gauss_cols_u8" if u8 else "gauss_cols_f32"](grid, block, (tmp, out) + args)
        return out

    def composite(self, fg: Any, bg: Any | None, alpha: Any, out: Any) -> Any:
        """fg (H, W, 3) u8, bg same or None, alpha (H, W) float32 -> out (H, W, 3|4) u8."""
        n = int(alpha.size)
        grid, block = ((n + 255) // 256, 1, 1), (256, 1, 1)
        if bg is None:
            self.fn["composite_bgra"](grid, block, (fg, alpha, out, np.int32(n)))
        else:
            self.fn["composite"](grid, block, (fg, bg, alpha, out, np.int32(n)))
        return out
