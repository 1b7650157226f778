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
                       factor: float for NCHW, double for NHWC)
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

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..settings import Settings
from ..spec import ModelSpec
from ..stages.matte import GUIDES, Matte, fisher_step, guide_level
from ..stages.preprocess import levels_for
from ..stages.smooth import TemporalSmoother

log = logging.getLogger(__name__)

CUDA_SOURCE = r"""
typedef unsigned char u8;

/* OpenCV's borders: BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba) and BORDER_REFLECT (fedcba|abcdefgh|hgfedcb). */
__device__ __forceinline__ int reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}
__device__ __forceinline__ int reflect(int i, int n) {
    while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - 1 - i;
    return i;
}

/* cv2.cvtColor BGR2GRAY on u8: fixed-point weights (LUMA_* are defined by the host for the installed OpenCV). */
__device__ __forceinline__ int luma(int b, int g, int r) {
    return (b * LUMA_B + g * LUMA_G + r * LUMA_R + (1 << (LUMA_SHIFT - 1))) >> LUMA_SHIFT;
}

/* The matte's guide value of a BGR pixel: channel 0 = luma, 1..3 = B, G, R. */
__device__ __forceinline__ float guide_px(const u8* p, int ch) {
    return ch == 0 ? (float)luma(p[0], p[1], p[2]) : (float)p[ch - 1];
}

/* cv2.resize INTER_LINEAR on u8, vertical step: horizontal sums s0, s1 (11-bit weights) -> u8. */
__device__ __forceinline__ int lin_u8(int s0, int s1, int b0, int b1) {
    int v = (((b0 * (s0 >> 4)) >> 16) + ((b1 * (s1 >> 4)) >> 16) + 2) >> 2;
    return min(max(v, 0), 255);
}

/* One bilinear u8 sample of frame n at output (x, y) into v[3]. */
__device__ __forceinline__ void sample_u8(const u8* __restrict__ img, int W,
                                          const int* __restrict__ xi, const int* __restrict__ xw,
                                          const int* __restrict__ yi, const int* __restrict__ yw,
                                          int x, int y, int* v) {
    const u8* r0 = img + (size_t)yi[2 * y] * W * 3;
    const u8* r1 = img + (size_t)yi[2 * y + 1] * W * 3;
    int x0 = xi[2 * x] * 3, x1 = xi[2 * x + 1] * 3, a0 = xw[2 * x], a1 = xw[2 * x + 1];
    int b0 = yw[2 * y], b1 = yw[2 * y + 1];
    for (int c = 0; c < 3; ++c)
        v[c] = lin_u8(r0[x0 + c] * a0 + r0[x1 + c] * a1, r1[x0 + c] * a0 + r1[x1 + c] * a1, b0, b1);
}

/* cv2.resize INTER_LINEAR on float32, one output value: per axis fma(s1 - s0, f, s0), rows first. */
__device__ __forceinline__ float sample_f32(const float* __restrict__ img, int w,
                                            const int* __restrict__ xi, const float* __restrict__ xf,
                                            const int* __restrict__ yi, const float* __restrict__ yf,
                                            int x, int y) {
    const float* r0 = img + (size_t)yi[2 * y] * w;
    const float* r1 = img + (size_t)yi[2 * y + 1] * w;
    int x0 = xi[2 * x], x1 = xi[2 * x + 1];
    float fx = xf[x];
    float t0 = fmaf(__fsub_rn(r0[x1], r0[x0]), fx, r0[x0]);
    float t1 = fmaf(__fsub_rn(r1[x1], r1[x0]), fx, r1[x0]);
    return fmaf(__fsub_rn(t1, t0), yf[y], t0);
}

/* blobFromImagesWithParams' last multiply: in float for NCHW, in double for NHWC (OpenCV 5). */
__device__ __forceinline__ float scale_px(float d, double m, int nchw) {
    return nchw ? __fmul_rn(d, __double2float_rn(m)) : __double2float_rn(__dmul_rn((double)d, m));
}

#define NSTAT 17  /* Fisher sums: n_f, then per channel (luma, B, G, R): sum x, sum x^2, sum w x, sum w x^2 */

extern "C" {

/* (N, H, W, 3) u8 -> (N, h, w, 3) u8, or (N, h, w) luma when gray != 0. */
__global__ void resize_u8(const u8* __restrict__ src, int H, int W,
                          const int* __restrict__ xi, const int* __restrict__ xw,
                          const int* __restrict__ yi, const int* __restrict__ yw,
                          u8* __restrict__ dst, int h, int w, int gray) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= w || y >= h) return;
    int v[3];
    sample_u8(src + (size_t)n * H * W * 3, W, xi, xw, yi, yw, x, y, v);
    size_t o = ((size_t)n * h + y) * w + x;
    if (gray) {
        dst[o] = (u8)luma(v[0], v[1], v[2]);
    } else {
        dst[3 * o] = (u8)v[0]; dst[3 * o + 1] = (u8)v[1]; dst[3 * o + 2] = (u8)v[2];
    }
}

/* The last shrink step into the model tensor (N, 3, h, w) or (N, h, w, 3), as blobFromImagesWithParams:
   swap to the spec's order, (p - mean * scale) in float, times the scale factor. */
__global__ void preprocess(const u8* __restrict__ src, int H, int W,
                           const int* __restrict__ xi, const int* __restrict__ xw,
                           const int* __restrict__ yi, const int* __restrict__ yw,
                           float* __restrict__ dst, int h, int w, int nchw, int swap_rb,
                           float s0, float s1, float s2, double m0, double m1, double m2) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= w || y >= h) return;
    int v[3];
    sample_u8(src + (size_t)n * H * W * 3, W, xi, xw, yi, yw, x, y, v);
    float q0 = (float)v[swap_rb ? 2 : 0], q1 = (float)v[1], q2 = (float)v[swap_rb ? 0 : 2];
    float o0 = scale_px(__fsub_rn(q0, s0), m0, nchw);
    float o1 = scale_px(__fsub_rn(q1, s1), m1, nchw);
    float o2 = scale_px(__fsub_rn(q2, s2), m2, nchw);
    if (nchw) {
        size_t plane = (size_t)h * w;
        float* o = dst + (size_t)n * 3 * plane + (size_t)y * w + x;
        o[0] = o0; o[plane] = o1; o[2 * plane] = o2;
    } else {
        float* o = dst + (((size_t)n * h + y) * w + x) * 3;
        o[0] = o0; o[1] = o1; o[2] = o2;
    }
}

/* (N, h, w) float32 -> (N, H, W) float32, cv2.resize INTER_LINEAR. */
__global__ void resize_f32(const float* __restrict__ src, int h, int w,
                           const int* __restrict__ xi, const float* __restrict__ xf,
                           const int* __restrict__ yi, const float* __restrict__ yf,
                           float* __restrict__ dst, int H, int W) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= W || y >= H) return;
    dst[((size_t)n * H + y) * W + x] = sample_f32(src + (size_t)n * h * w, w, xi, xf, yi, yf, x, y);
}

/* Smoother, step 1: the motion map before dilation. Mask motion clip((|m - prev| - jump) * inv_jump_ramp);
   frame motion from the u8 thumbnails: cv2.blur 3x3 (reflect-101) of |gray - pgray|, rounded like
   OpenCV's u8 box filter, then (d - noise) * inv_ramp; the larger of the two, clipped to [0, 1]. */
__global__ void motion(const float* __restrict__ mask, const float* __restrict__ prev,
                       const u8* __restrict__ gray, const u8* __restrict__ pgray, int has_gray,
                       float* __restrict__ out, int h, int w,
                       float jump, float inv_jump_ramp, float noise, float inv_ramp) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    size_t i = (size_t)y * w + x;
    float dm = fabsf(__fsub_rn(mask[i], prev[i]));
    float m = fminf(fmaxf(__fmul_rn(__fsub_rn(dm, jump), inv_jump_ramp), 0.f), 1.f);
    if (has_gray) {
        int s = 0;
        for (int dy = -1; dy <= 1; ++dy) {
            size_t row = (size_t)reflect101(y + dy, h) * w;
            for (int dx = -1; dx <= 1; ++dx) {
                size_t j = row + reflect101(x + dx, w);
                s += abs((int)gray[j] - (int)pgray[j]);
            }
        }
        float fm = __fmul_rn(__fsub_rn((float)((s + 4) / 9), noise), inv_ramp);
        m = fminf(fmaxf(fmaxf(m, fm), 0.f), 1.f);
    }
    out[i] = m;
}

/* Smoother, step 2: dilate the motion map 3x3 (in-bounds pixels only, cv2.dilate's default border),
   keep = keep_max * (1 - motion), out = mask + keep * (prev - mask). */
__global__ void smooth_blend(const float* __restrict__ mask, const float* __restrict__ prev,
                             const float* __restrict__ mot, float* __restrict__ out, int h, int w,
                             float keep_max) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    size_t i = (size_t)y * w + x;
    float mo = mot[i];
    for (int yy = max(y - 1, 0); yy <= min(y + 1, h - 1); ++yy)
        for (int xx = max(x - 1, 0); xx <= min(x + 1, w - 1); ++xx)
            mo = fmaxf(mo, mot[(size_t)yy * w + xx]);
    float keep = __fmul_rn(keep_max, __fsub_rn(1.f, mo));
    float m = mask[i];
    out[i] = __fadd_rn(m, __fmul_rn(keep, __fsub_rn(prev[i], m)));
}

/* Guide choice, step 1: per frame (blockIdx.z), `parts` threads each sum the Fisher statistics of every
   parts-th pixel of the subsampled (every step-th row and column) guide level, in double. */
__global__ void fisher_partial(const u8* __restrict__ mid, const float* __restrict__ p, int mh, int mw,
                               int step, double* __restrict__ partial, int parts) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    int n = blockIdx.z;
    if (t >= parts) return;
    int sw = (mw + step - 1) / step, sh = (mh + step - 1) / step;
    double acc[NSTAT];
    for (int k = 0; k < NSTAT; ++k) acc[k] = 0.0;
    for (int i = t; i < sw * sh; i += parts) {
        size_t o = ((size_t)n * mh + (size_t)(i / sw) * step) * mw + (size_t)(i % sw) * step;
        const u8* px = mid + 3 * o;
        double wv = (double)p[o];
        double xv[4] = {(double)luma(px[0], px[1], px[2]), (double)px[0], (double)px[1], (double)px[2]};
        acc[0] += wv;
        for (int c = 0; c < 4; ++c) {
            double x2 = xv[c] * xv[c];
            acc[1 + c] += xv[c];
            acc[5 + c] += x2;
            acc[9 + c] += wv * xv[c];
            acc[13 + c] += wv * x2;
        }
    }
    double* out = partial + ((size_t)n * parts + t) * NSTAT;
    for (int k = 0; k < NSTAT; ++k) out[k] = acc[k];
}

/* Guide choice, step 2 (one thread): frame by frame, Fisher's criterion per channel, luma preferred,
   hysteresis for the channel in use (state[0], kept across batches); channel[n] for each frame. */
__global__ void fisher_choose(const double* __restrict__ partial, int N, int parts, int npix, int automatic,
                              double prefer_luma, double hysteresis, int* __restrict__ state,
                              int* __restrict__ channel) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    int ch = state[0];
    for (int n = 0; n < N; ++n) {
        double s[NSTAT];
        for (int k = 0; k < NSTAT; ++k) s[k] = 0.0;
        for (int t = 0; t < parts; ++t)
            for (int k = 0; k < NSTAT; ++k) s[k] += partial[((size_t)n * parts + t) * NSTAT + k];
        if (!automatic) {
            ch = 0;
        } else {
            double nf = s[0], nb = (double)npix - nf;
            if (fmin(nf, nb) >= 0.01 * (double)npix) {
                double j[4];
                for (int c = 0; c < 4; ++c) {
                    double mf = s[9 + c] / nf, mb = (s[1 + c] - s[9 + c]) / nb;
                    double vf = s[13 + c] / nf - mf * mf, vb = (s[5 + c] - s[13 + c]) / nb - mb * mb;
                    j[c] = (mf - mb) * (mf - mb) / (vf + vb + 25.0);
                }
                j[0] *= prefer_luma;
                j[ch] *= hysteresis;
                int best = 0;  /* the first maximum, like np.argmax */
                for (int c = 1; c < 4; ++c) if (j[c] > j[best]) best = c;
                ch = best;
            }
        }
        channel[n] = ch;
    }
    state[0] = ch;
}

/* Guided filter at the guide level: box means over (2r+1)^2 with BORDER_REFLECT, summed in double and
   rounded once (OpenCV's float boxFilter), then Matte._coefficients' float maths, threshold folded in:
   a = cov * slope / (var + eps), b = mp * slope + c0 - a * mI with c0 = 0.5 - threshold * slope. */
__global__ void guided_ab(const u8* __restrict__ mid, const float* __restrict__ p, const int* __restrict__ channel,
                          int mh, int mw, int r, double inv_area, float eps, float slope, float c0,
                          float* __restrict__ a_out, float* __restrict__ b_out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= mw || y >= mh) return;
    int ch = channel[n];
    const u8* img = mid + (size_t)n * mh * mw * 3;
    const float* pp = p + (size_t)n * mh * mw;
    double sI = 0.0, sp = 0.0, sIp = 0.0, sII = 0.0;
    for (int dy = -r; dy <= r; ++dy) {
        size_t row = (size_t)reflect(y + dy, mh) * mw;
        for (int dx = -r; dx <= r; ++dx) {
            size_t o = row + reflect(x + dx, mw);
            float I = guide_px(img + 3 * o, ch), pv = pp[o];
            sI += (double)I;
            sp += (double)pv;
            sIp += (double)__fmul_rn(I, pv);
            sII += __dmul_rn((double)I, (double)I);
        }
    }
    float mI = __double2float_rn(__dmul_rn(sI, inv_area)), mp = __double2float_rn(__dmul_rn(sp, inv_area));
    float mIp = __double2float_rn(__dmul_rn(sIp, inv_area)), mII = __double2float_rn(__dmul_rn(sII, inv_area));
    float var = __fadd_rn(__fsub_rn(mII, __fmul_rn(mI, mI)), eps);
    float cov = __fsub_rn(mIp, __fmul_rn(mI, mp));
    float a = __fdiv_rn(__fmul_rn(cov, slope), var);
    size_t i = ((size_t)n * mh + y) * mw + x;
    a_out[i] = a;
    b_out[i] = __fsub_rn(__fadd_rn(__fmul_rn(mp, slope), c0), __fmul_rn(a, mI));
}

/* Box means of two (N, h, w) float32 maps (the guided filter's A = box(a), B = box(b)). */
__global__ void box2_f32(const float* __restrict__ a, const float* __restrict__ b, int h, int w, int r,
                         double inv_area, float* __restrict__ A, float* __restrict__ B) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= w || y >= h) return;
    const float* pa = a + (size_t)n * h * w;
    const float* pb = b + (size_t)n * h * w;
    double sa = 0.0, sb = 0.0;
    for (int dy = -r; dy <= r; ++dy) {
        size_t row = (size_t)reflect(y + dy, h) * w;
        for (int dx = -r; dx <= r; ++dx) {
            size_t o = row + reflect(x + dx, w);
            sa += (double)pa[o];
            sb += (double)pb[o];
        }
    }
    size_t i = ((size_t)n * h + y) * w + x;
    A[i] = __double2float_rn(__dmul_rn(sa, inv_area));
    B[i] = __double2float_rn(__dmul_rn(sb, inv_area));
}

/* Matte(guided=False) at the mask's size: (m - threshold) * slope + 0.5, in float32 like NumPy. */
__global__ void soft_threshold(const float* __restrict__ mask, float* __restrict__ out, int count,
                               float threshold, float slope) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    out[i] = __fadd_rn(__fmul_rn(__fsub_rn(mask[i], threshold), slope), 0.5f);
}

/* Alpha at frame size: A and B (N, h, w) bilinear to (H, W), q = A * I + B on the frame's guide channel
   (guided == 0: q = B), clipped to [0, 1]. */
__global__ void matte_apply(const float* __restrict__ A, const float* __restrict__ B, int h, int w,
                            const int* __restrict__ xi, const float* __restrict__ xf,
                            const int* __restrict__ yi, const float* __restrict__ yf,
                            const u8* __restrict__ frames, const int* __restrict__ channel, int guided,
                            float* __restrict__ alpha, int H, int W) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= W || y >= H) return;
    size_t i = ((size_t)n * H + y) * W + x;
    float q = sample_f32(B + (size_t)n * h * w, w, xi, xf, yi, yf, x, y);
    if (guided) {
        float Au = sample_f32(A + (size_t)n * h * w, w, xi, xf, yi, yf, x, y);
        q = __fadd_rn(__fmul_rn(Au, guide_px(frames + 3 * i, channel[n])), q);
    }
    alpha[i] = fminf(fmaxf(q, 0.f), 1.f);
}

/* cv2.GaussianBlur on (N, H, W) float32, reflect-101, as OpenCV sums it: the row pass is a chain of
   fmas over the taps left to right, the column pass pairs the symmetric taps first. */
__global__ void gauss_rows_f32(const float* __restrict__ src, float* __restrict__ dst, int H, int W,
                               const float* __restrict__ taps, int k) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= W || y >= H) return;
    const float* row = src + ((size_t)n * H + y) * W;
    int r = k / 2;
    float s = __fmul_rn(taps[0], row[reflect101(x - r, W)]);
    for (int t = 1; t < k; ++t) s = fmaf(row[reflect101(x - r + t, W)], taps[t], s);
    dst[((size_t)n * H + y) * W + x] = s;
}
__global__ void gauss_cols_f32(const float* __restrict__ src, float* __restrict__ dst, int H, int W,
                               const float* __restrict__ taps, int k) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= W || y >= H) return;
    const float* img = src + (size_t)n * H * W;
    int r = k / 2;
    float s = __fmul_rn(taps[r], img[(size_t)y * W + x]);
    for (int i = 1; i <= r; ++i) {
        float pair = __fadd_rn(img[(size_t)reflect101(y + i, H) * W + x], img[(size_t)reflect101(y - i, H) * W + x]);
        s = fmaf(pair, taps[r + i], s);
    }
    dst[((size_t)n * H + y) * W + x] = s;
}

/* cv2.GaussianBlur on (N, H, W, 3) u8 in OpenCV's bit-exact fixed point: integer taps summing to 256, the
   row pass keeps 8 fraction bits, the column pass rounds 16 fraction bits back to u8. */
__global__ void gauss_rows_u8(const u8* __restrict__ src, int* __restrict__ dst, int H, int W,
                              const int* __restrict__ taps, int k) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= W || y >= H) return;
    const u8* row = src + ((size_t)n * H + y) * W * 3;
    int r = k / 2;
    int s[3] = {0, 0, 0};
    for (int t = 0; t < k; ++t) {
        const u8* p = row + (size_t)reflect101(x - r + t, W) * 3;
        s[0] += taps[t] * p[0]; s[1] += taps[t] * p[1]; s[2] += taps[t] * p[2];
    }
    int* o = dst + (((size_t)n * H + y) * W + x) * 3;
    o[0] = s[0]; o[1] = s[1]; o[2] = s[2];
}
__global__ void gauss_cols_u8(const int* __restrict__ src, u8* __restrict__ dst, int H, int W,
                              const int* __restrict__ taps, int k) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= W || y >= H) return;
    const int* img = src + (size_t)n * H * W * 3;
    int r = k / 2;
    int s[3] = {0, 0, 0};
    for (int t = 0; t < k; ++t) {
        const int* p = img + ((size_t)reflect101(y - r + t, H) * W + x) * 3;
        s[0] += taps[t] * p[0]; s[1] += taps[t] * p[1]; s[2] += taps[t] * p[2];
    }
    u8* o = dst + (((size_t)n * H + y) * W + x) * 3;
    for (int c = 0; c < 3; ++c) o[c] = (u8)min((s[c] + 32768) >> 16, 255);
}

/* cv2.blendLinear(fg, bg, a, 1 - a): (fg * a + bg * (1 - a)) / (a + (1 - a) + 1e-5), rounded to nearest
   even. bg is per frame (N, H, W, 3), or one (H, W, 3) for all when bg_shared. */
__global__ void composite(const u8* __restrict__ fg, const u8* __restrict__ bg, int bg_shared,
                          const float* __restrict__ alpha, u8* __restrict__ out, int H, int W) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= W || y >= H) return;
    size_t i = ((size_t)n * H + y) * W + x;
    size_t j = bg_shared ? (size_t)y * W + x : i;
    float a = alpha[i], wb = __fsub_rn(1.f, a);
    float den = __fadd_rn(__fadd_rn(a, wb), 1e-5f);
    for (int c = 0; c < 3; ++c) {
        float num = __fadd_rn(__fmul_rn((float)fg[3 * i + c], a), __fmul_rn((float)bg[3 * j + c], wb));
        out[3 * i + c] = (u8)fminf(fmaxf(rintf(__fdiv_rn(num, den)), 0.f), 255.f);
    }
}

/* Transparent background: BGRA, alpha channel = convertScaleAbs(alpha, 255) (rounded to nearest even). */
__global__ void composite_bgra(const u8* __restrict__ fg, const float* __restrict__ alpha,
                               u8* __restrict__ out, int count) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    out[(size_t)i * 4 + 0] = fg[(size_t)i * 3 + 0];
    out[(size_t)i * 4 + 1] = fg[(size_t)i * 3 + 1];
    out[(size_t)i * 4 + 2] = fg[(size_t)i * 3 + 2];
    out[(size_t)i * 4 + 3] = (u8)fminf(fmaxf(rintf(__fmul_rn(alpha[i], 255.f)), 0.f), 255.f);
}

}  // extern "C"
"""

KERNEL_NAMES = ("resize_u8", "preprocess", "resize_f32", "motion", "smooth_blend", "fisher_partial",
                "fisher_choose", "guided_ab", "box2_f32", "soft_threshold", "matte_apply", "gauss_rows_f32",
                "gauss_cols_f32", "gauss_rows_u8", "gauss_cols_u8", "composite", "composite_bgra")

# Every float op rounds on its own (no contraction into fma), as in the references.
NVRTC_OPTIONS = ("-std=c++14", "--fmad=false")

NSTAT = 17  # Fisher sums per frame, as laid out in the kernels
FISHER_PARTS = 128  # threads per frame summing them

Taps = tuple[np.ndarray, np.ndarray]  # (index int32 (n_dst, 2), weight int32 (n_dst, 2) | fraction float32 (n_dst,))
Size = tuple[int, int]  # (width, height)


# --- OpenCV's constants ---------------------------------------------------------------
# (B, G, R, shift) of cv2.cvtColor BGR2GRAY on u8: OpenCV 5 uses 16 fraction bits, 4.x used 14.
_LUMA_CANDIDATES = ((7470, 38470, 19596, 16), (1868, 9617, 4899, 14))


@functools.cache
def luma_weights() -> tuple[int, int, int, int]:
    """(B, G, R, shift) reproducing this OpenCV's u8 BGR2GRAY exactly (checked on a probe image)."""
    rng = np.random.default_rng(0)
    probe = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    probe[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3], [128] * 3, [127] * 3]
    want = cv2.cvtColor(probe, cv2.COLOR_BGR2GRAY)
    for cand in _LUMA_CANDIDATES:
        if np.array_equal(_luma(probe, cand), want):
            return cand
    log.warning("this OpenCV's BGR2GRAY matches no known fixed-point weights; GPU luma may differ by 1 level")
    return _LUMA_CANDIDATES[0]


def _luma(img: np.ndarray, wts: tuple[int, int, int, int]) -> np.ndarray:
    b, g, r, shift = wts
    a = img.astype(np.int32)
    return ((a[..., 0] * b + a[..., 1] * g + a[..., 2] * r + (1 << (shift - 1))) >> shift).astype(np.uint8)


def cuda_source() -> str:
    """The kernels' source with this OpenCV's luma weights defined."""
    b, g, r, shift = luma_weights()
    return (f"#define LUMA_B {b}\n#define LUMA_G {g}\n#define LUMA_R {r}\n#define LUMA_SHIFT {shift}\n"
            + CUDA_SOURCE)


# --- tap tables (OpenCV's formulas) -----------------------------------------------------
def _linear_coeffs(src_n: int, dst_n: int, clamp: bool, single: bool) -> tuple[np.ndarray, np.ndarray]:
    """(index pairs, fraction float64) of cv2.resize INTER_LINEAR along one axis.

    OpenCV clamps the fraction to 0 at the ends of the x axis only; along y
    the fraction stays and both indices are clipped (same row twice).
    ``single``: the position in float32 first (the u8 path); else double.
    """
    pos = (np.arange(dst_n, dtype=np.float64) + 0.5) * (src_n / dst_n) - 0.5
    if single:
        pos = pos.astype(np.float32).astype(np.float64)
    s = np.floor(pos)
    f = pos - s
    s = s.astype(np.int64)
    if clamp:
        lo, hi = s < 0, s >= src_n - 1
        f[lo | hi] = 0.0
        s[lo] = 0
        s[hi] = src_n - 1
    idx = np.stack([np.clip(s, 0, src_n - 1), np.clip(s + 1, 0, src_n - 1)], axis=1).astype(np.int32)
    return idx, f


def linear_taps_u8(src_n: int, dst_n: int, clamp: bool = True) -> Taps:
    """Fixed-point INTER_LINEAR taps of u8 resizing: weights round(w * 2048) from float32 fractions."""
    idx, f = _linear_coeffs(src_n, dst_n, clamp, single=True)
    f32 = f.astype(np.float32)
    w = np.stack([np.rint((np.float32(1) - f32) * np.float32(2048)), np.rint(f32 * np.float32(2048))], axis=1)
    return idx, w.astype(np.int32)


def linear_taps_f32(src_n: int, dst_n: int, clamp: bool = True) -> Taps:
    """INTER_LINEAR taps of float32 resizing: index pairs and the float32 fraction of the second."""
    idx, f = _linear_coeffs(src_n, dst_n, clamp, single=False)
    return idx, f.astype(np.float32)


def resize_taps_u8(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[Taps, Taps]:
    return linear_taps_u8(src_w, dst_w, True), linear_taps_u8(src_h, dst_h, False)


def resize_taps_f32(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[Taps, Taps]:
    return linear_taps_f32(src_w, dst_w, True), linear_taps_f32(src_h, dst_h, False)


def gaussian_taps(k: int) -> np.ndarray:
    """cv2.getGaussianKernel(k, 0): what GaussianBlur(..., (k, k), 0) uses on both axes."""
    return cv2.getGaussianKernel(k, 0, ktype=cv2.CV_32F).ravel().astype(np.float32)


def gaussian_taps_fixed(k: int, sigma: float = 0.0, bits: int = 8) -> np.ndarray:
    """Integer taps (sum 2**bits) of OpenCV's bit-exact u8 GaussianBlur: rounding with error diffusion."""
    kd = cv2.getGaussianKernel(k, sigma, ktype=cv2.CV_64F).ravel()
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


def gaussian_ksize_u8(sigma: float) -> int:
    """The kernel size GaussianBlur picks for u8 when given only sigma: cvRound(sigma * 6 + 1) | 1."""
    return int(round(sigma * 3 * 2 + 1)) | 1


def feather_ksize(feather: float) -> int:
    """Kernel size of the matte feather (0 = none), as ``Matte`` computes it."""
    return int(feather) * 2 + 1 if feather > 0 else 0


@dataclass(frozen=True)
class BlurPlan:
    """``BlurBackground.get`` for one frame size: blur a copy at ``size`` with ``ksize``/``sigma``, enlarge."""

    size: Size
    ksize: int
    sigma: float


def blur_plan(strength: float, width: int, height: int) -> BlurPlan:
    sigma = float(strength) * height / 1080.0
    factor = max(1.0, sigma / 3.0)
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    s = max(0.5, sigma / factor)
    return BlurPlan(size, gaussian_ksize_u8(s), s)


def blob_constants(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray, bool]:
    """(sub float32, mul float64, swap_rb) per channel in spec order: x = (p - sub) * mul, as ``Preprocessor``."""
    i = spec.input
    std = np.asarray(i.std, np.float64)
    mean = np.asarray(i.mean, np.float64)
    return (mean * float(i.scale)).astype(np.float32), 1.0 / (float(i.scale) * std), i.color != "BGR"


# --- plans: which resize steps the CPU stages take -------------------------------------------
def shrink_plan(src_w: int, src_h: int, w: int, h: int) -> list[Size]:
    """The steps of ``preprocess.shrink``, each one INTER_LINEAR resize (the 2x area step is one too)."""
    if (src_w, src_h) == (w, h):
        return []
    if src_w > 2 * w and src_h > 2 * h:
        return [(2 * w, 2 * h), (w, h)]
    return [(w, h)]  # exact 2x (INTER_AREA == LINEAR at 2x) or plain bilinear


class Pyramid:
    """``FramePyramid``'s plan over any resize step; the references and the device share it.

    ``frames``: one frame (reference) or a batch (device) of size ``size``;
    ``step(img, size)`` is one INTER_LINEAR resize, ``luma(img)`` the u8 luma.
    """

    def __init__(self, frames: Any, size: Size, step: Callable[[Any, Size], Any], luma: Callable[[Any], Any]) -> None:
        self.frames = frames
        self.size = size
        self._step = step
        self._luma = luma
        self._levels: list[tuple[Any, Size]] = [(frames, size)]
        self._sized: dict[Size, Any] = {}
        self._gray: dict[Size, Any] = {}

    def level(self, k: int) -> Any:
        while len(self._levels) <= k:
            img, (w, h) = self._levels[-1]
            half = (max(1, w // 2), max(1, h // 2))
            self._levels.append((self._step(img, half), half))
        return self._levels[k][0]

    def at(self, size: Size) -> Any:
        img = self._sized.get(size)
        if img is None:
            k = levels_for(*self.size, size)
            img = self.level(k)
            w, h = self._levels[k][1]
            for s in shrink_plan(w, h, *size):
                img = self._step(img, s)
            self._sized[size] = img
        return img

    def gray(self, size: Size) -> Any:
        g = self._gray.get(size)
        if g is None:
            g = self._gray[size] = self._luma(self.at(size))
        return g


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
        # OpenCV 5 multiplies in float for NCHW blobs and in double for NHWC ones.
        out.append(d * mul.astype(np.float32) if nchw else (d.astype(np.float64) * mul).astype(np.float32))
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


# -- matte --
@dataclass(frozen=True)
class MatteParams:
    """What ``Matte`` computes with (the GPU path uses ``Matte``'s defaults for the guided filter)."""

    threshold: float = 0.5
    slope: float = 10.0
    feather: float = 2.0
    radius: int = 2
    eps: float = 100.0
    guide: str = "auto"
    guided: bool = True

    @classmethod
    def from_settings(cls, s: Settings) -> MatteParams:
        m = Matte()
        return cls(s.threshold, s.slope, s.feather, m.radius, m.eps, m.guide, m.guided)


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


def _grid1(count: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    return ((count + 255) // 256, 1, 1), (256, 1, 1)


i32, f32, f64 = np.int32, np.float32, np.float64


class Kernels:
    """The compiled kernels on the current CUDA device, with device-side tap tables cached by size.

    Arrays are C-contiguous CuPy arrays; frames are batches (N, H, W, 3).
    Every launch goes to CuPy's current stream: callers wrap calls in ``with stream:``.
    """

    def __init__(self) -> None:
        from .device import require_cupy

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
            i32(swap), f32(sub[0]), f32(sub[1]), f32(sub[2]), f64(mul[0]), f64(mul[1]), f64(mul[2])))
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
            mask, prev, g, pg, i32(has), mot, i32(h), i32(w), f32(JUMP), f32(1.0 / JUMP_RAMP),
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
