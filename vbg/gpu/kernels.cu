// vbg's per-frame stages as CUDA kernels (see vbg/gpu/kernels.py for what each mirrors).
// LUMA_B/G/R/SHIFT are defined by the loader to match the installed OpenCV.
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

/* blobFromImagesWithParams' last multiply: in double for NHWC in OpenCV 5.0, in float otherwise
   (5.1: float for both); the host probes which (plans.blob_multiplies_in_double). */
__device__ __forceinline__ float scale_px(float d, double m, int in_double) {
    return in_double ? __double2float_rn(__dmul_rn((double)d, m)) : __fmul_rn(d, __double2float_rn(m));
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
                           float* __restrict__ dst, int h, int w, int nchw, int swap_rb, int in_double,
                           float s0, float s1, float s2, double m0, double m1, double m2) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= w || y >= h) return;
    int v[3];
    sample_u8(src + (size_t)n * H * W * 3, W, xi, xw, yi, yw, x, y, v);
    float q0 = (float)v[swap_rb ? 2 : 0], q1 = (float)v[1], q2 = (float)v[swap_rb ? 0 : 2];
    float o0 = scale_px(__fsub_rn(q0, s0), m0, in_double);
    float o1 = scale_px(__fsub_rn(q1, s1), m1, in_double);
    float o2 = scale_px(__fsub_rn(q2, s2), m2, in_double);
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
