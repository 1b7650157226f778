"""What the GPU path shares between its kernels and their NumPy references:
OpenCV's constants and resampling tap tables, the plans of which resize steps
the CPU stages take, the device ``Pyramid``, ``MatteParams``, and the output
decode for NumPy or CuPy arrays. Computed on the host, with OpenCV's own
formulas, so that kernels and references cannot drift apart.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..settings import Settings
from ..spec import ModelSpec
from ..stages.matte import Matte
from ..stages.preprocess import _LAYOUT_NCHW, _LAYOUT_NHWC, levels_for

log = logging.getLogger(__name__)

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


@functools.cache
def blob_multiplies_in_double(layout: str) -> bool:
    """Whether the installed OpenCV's ``blobFromImagesWithParams`` does its last multiply in double (OpenCV
    5.0 for NHWC) or in float (5.0 for NCHW, 5.1 for both). Probed once per layout on every 8-bit value, so
    the kernels and references follow the library the CPU path really runs on."""
    img = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    mean = np.array([0.485, 0.456, 0.406]) * 255.0
    mul = 1.0 / (255.0 * np.array([0.229, 0.224, 0.225]))
    p = cv2.dnn.Image2BlobParams()
    p.scalefactor = (*(float(v) for v in mul), 0.0)
    p.mean = (*(float(v) for v in mean), 0.0)
    p.ddepth = cv2.CV_32F
    p.datalayout = _LAYOUT_NCHW if layout == "NCHW" else _LAYOUT_NHWC
    got = cv2.dnn.blobFromImagesWithParams([img], p)[0]
    got = got.transpose(1, 2, 0) if layout == "NCHW" else got
    d = img.astype(np.float32) - mean.astype(np.float32)
    in_double = (d.astype(np.float64) * mul).astype(np.float32)
    in_float = d * mul.astype(np.float32)
    if np.array_equal(got, in_double):
        return True
    if not np.array_equal(got, in_float):
        log.warning("OpenCV %s normalises %s blobs in neither float nor double: GPU results may differ from "
                    "the CPU's in the last bit", cv2.__version__, layout)
    return False


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
