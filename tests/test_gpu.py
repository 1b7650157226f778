"""GPU stages: the NumPy references against the CPU stages (always), the kernels against both (GPU only).

Every CUDA kernel in ``vbg.gpu.kernels`` has a NumPy reference doing the
same arithmetic. Here the references are checked against the CPU stages on
every run; where a CUDA GPU exists the kernels are checked against the
references and the whole ``GpuPipeline`` against ``vbg.pipeline.Pipeline``.
Without a GPU those tests skip; the kernel source is still compiled with
NVRTC when CuPy's NVRTC can load (no device needed for that).
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import disc_frame
from vbg.backends.onnxruntime import OnnxRuntimeBackend
from vbg.backgrounds import make_background
from vbg.composite import Compositor
from vbg.errors import VbgError
from vbg.gpu import device
from vbg.gpu import kernels as K
from vbg.matte import Matte
from vbg.preprocess import Preprocessor, decode_output
from vbg.settings import BackgroundSpec, Settings
from vbg.smooth import TemporalSmoother
from vbg.spec import ModelSpec


@pytest.fixture
def spec(red_model: Path) -> ModelSpec:
    return ModelSpec.load(red_model)


def variant(spec: ModelSpec, **inp: object) -> ModelSpec:
    d = spec.to_dict()
    d["input"] = {**d["input"], **inp}
    return ModelSpec.from_dict(d, base=spec.path)


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)


def soft_mask(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (7, 7), 0)


# --- references vs CPU stages (always run) -------------------------------------------------
@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080), (640, 480), (100, 70)])
def test_ref_preprocess_matches_preprocessor(spec: ModelSpec, size: tuple[int, int]) -> None:
    w, h = size
    frames = [textured(h, w, seed) for seed in (1, 2)]
    for s in (spec, variant(spec, layout="NHWC", color="BGR", mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3])):
        want = Preprocessor(s)(frames)
        got = K.ref_preprocess(frames, s)
        assert got.shape == want.shape and got.dtype == np.float32
        mul, _, _ = K.norm_constants(s)
        d = np.abs(got - want)
        # 1 level of the u8 resize at most (OpenCV rounds LINEAR in fixed point); AREA is (nearly) exact.
        assert d.max() <= float(mul.max()) * 1.001 + 1e-5
        exact = float((d <= 1e-5).mean())
        assert exact >= (0.99 if K.use_area(w, h, *s.size) else 0.8), exact


@pytest.mark.parametrize("feather", [0.0, 2.0, 3.5])
def test_ref_matte_matches_matte(feather: float) -> None:
    m = soft_mask(48, 64)
    for (w, h), t, slope in (((640, 480), 0.5, 10.0), ((1280, 720), 0.35, 3.0), ((97, 71), 0.6, 50.0)):
        want = Matte(t, slope, feather)(m, np.zeros((h, w, 3), np.uint8))
        got = K.ref_matte(m, w, h, t, slope, feather)
        assert got.shape == want.shape == (h, w)
        assert np.abs(got - want).max() <= 1e-5


@pytest.mark.parametrize("strength", [1, 8, 25, 100])
def test_ref_blur_is_bit_exact(strength: int) -> None:
    frame = textured(90, 160, seed=strength)
    want = make_background(BackgroundSpec("blur", blur=strength)).get(frame)
    assert np.array_equal(K.ref_blur_u8(frame, K.blur_ksize(strength)), want)


def test_fixed_point_taps() -> None:
    for k in (3, 5, 9, 25, 101):
        t = K.gaussian_taps_fixed(k)
        # Error diffusion keeps the sum exact; each tap stays within 1/256 of the float kernel.
        assert t.sum() == 256 and np.array_equal(t, t[::-1])
        assert np.abs(t / 256 - K.gaussian_taps(k)).max() <= 1 / 256


@pytest.mark.parametrize("bg", ["color:#00b140", "blur:15", "none"])
def test_ref_composite_matches_compositor(bg: str) -> None:
    frame = textured(72, 128, seed=5)
    alpha = K.ref_matte(soft_mask(48, 64), 128, 72, 0.5, 4.0, 2.0)
    background = make_background(BackgroundSpec.parse(bg))
    want = Compositor(background, 0.0)(frame, alpha)
    host_bg = background.get(frame)
    assert np.array_equal(K.ref_composite(frame, host_bg, alpha), want)


@pytest.mark.parametrize("kind,layout,channels", [("logits", "NCHW", 1), ("probability", "NHWC", 1),
                                                    ("softmax", "NCHW", 2), ("softmax_logits", "NHWC", 3)])
def test_decode_xp_matches_decode_output(spec: ModelSpec, kind: str, layout: str, channels: int) -> None:
    d = spec.to_dict()
    d["output"] = {"name": "mask", "kind": kind, "layout": layout, "person_channel": channels - 1}
    s = ModelSpec.from_dict(d, base=spec.path)
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(2, channels, 6, 8) if layout == "NCHW" else (2, 6, 8, channels)).astype(np.float32)
    if kind == "softmax":
        raw = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    elif kind == "probability":
        raw = 1 / (1 + np.exp(-raw))
    assert np.allclose(K.decode_xp(np, s, raw), decode_output(s, raw), atol=1e-6)


def test_kernels_compile_with_nvrtc() -> None:
    """The CUDA source compiles (NVRTC needs no GPU); every launcher's kernel is in the PTX."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # cupy missing, or no libnvrtc
        pytest.skip(f"NVRTC unavailable: {exc}")
    prog = nvrtc.createProgram(K.CUDA_SOURCE, "vbg_kernels.cu", [], [])
    try:
        nvrtc.compileProgram(prog, ["-std=c++14", "-arch=compute_75"])
    except Exception:
        pytest.fail(nvrtc.getProgramLog(prog))
    ptx = nvrtc.getPTX(prog)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert [n for n in K.KERNEL_NAMES if f".entry {n}(" not in ptx] == []


def test_pick_h264_encoder_opens_and_encodes(tmp_path: Path) -> None:
    from vbg.gpu.pipeline import pick_h264_encoder

    name = pick_h264_encoder(320, 240)
    assert name in ("h264_nvenc", "libx264")
    out = tmp_path / "x.mp4"
    with av.open(str(out), "w") as c:
        s = c.add_stream(name, rate=30)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        for i in range(5):
            img = np.full((240, 320, 3), 40 * i, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5


def test_gpu_pipeline_refused_without_gpu(spec: ModelSpec) -> None:
    if device.gpu_available():
        pytest.skip("a GPU is present")
    from vbg.gpu.pipeline import GpuPipeline

    with pytest.raises(VbgError, match="CuPy is not installed|no CUDA GPU found"):
        GpuPipeline(Settings(), OnnxRuntimeBackend(spec))


def test_host_infer_needs_run_tensor(spec: ModelSpec) -> None:
    from vbg.gpu.pipeline import HostInfer

    class NoTensor:
        name = "odd"

    with pytest.raises(VbgError, match="backend 'odd' cannot feed the GPU pipeline"):
        HostInfer(NoTensor())
    assert HostInfer(OnnxRuntimeBackend(spec)).max_batch == 64  # dynamic batch


# --- kernels on a GPU (skip without one) -------------------------------------------------------
@pytest.fixture
def cp():  # type: ignore[no-untyped-def]
    if not device.gpu_available():
        pytest.skip("no CUDA GPU")
    import cupy

    return cupy


@pytest.fixture
def kern(cp):  # type: ignore[no-untyped-def]
    return K.Kernels()


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160), (640, 480), (100, 70)])
def test_preprocess_kernel(cp, kern, spec: ModelSpec, size: tuple[int, int]) -> None:
    w, h = size
    frames = [textured(h, w, seed) for seed in (3, 4, 5)]
    for s in (spec, variant(spec, layout="NHWC", color="BGR", mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3])):
        out = cp.empty(Preprocessor(s)(frames[:1]).shape[1:], np.float32)
        out = cp.empty((3, *out.shape), np.float32)
        got = kern.preprocess(cp.asarray(np.stack(frames)), s, out).get()
        ref = K.ref_preprocess(frames, s)
        mul, _, _ = K.norm_constants(s)
        # float32 sums vs float64: a pixel right at .5 may round the other way
        assert np.abs(got - ref).max() <= float(mul.max()) * 1.001 + 1e-5
        assert (np.abs(got - ref) <= 1e-5).mean() >= 0.999
        want = Preprocessor(s)(frames)
        assert np.abs(got - want).max() <= float(mul.max()) * 1.001 + 1e-5


@pytest.mark.parametrize("feather", [0.0, 2.0, 3.5])
def test_matte_kernels(cp, kern, feather: float) -> None:
    m = soft_mask(48, 64, seed=2)
    for (w, h) in ((1920, 1080), (101, 77)):
        alpha = cp.empty((h, w), np.float32)
        kern.upsample_threshold(cp.asarray(m), alpha, 0.45, 8.0)
        kf = K.feather_ksize(feather)
        if kf > 1:
            kern.gauss(alpha, kf, cp.empty_like(alpha), alpha)
        got = alpha.get()
        assert np.abs(got - K.ref_matte(m, w, h, 0.45, 8.0, feather)).max() <= 1e-5
        want = Matte(0.45, 8.0, feather)(m, np.zeros((h, w, 3), np.uint8))
        assert np.abs(got - want).max() <= 2 / 255


@pytest.mark.parametrize("strength", [1, 25, 100])
def test_blur_kernel_bit_exact(cp, kern, strength: int) -> None:
    frame = textured(270, 480, seed=strength)
    k = K.blur_ksize(strength)
    out = cp.empty(frame.shape, np.uint8)
    got = kern.gauss(cp.asarray(frame), k, cp.empty(frame.shape, np.int32), out).get()
    assert np.array_equal(got, cv2.GaussianBlur(frame, (k, k), 0))


@pytest.mark.parametrize("bg", ["color:#00b140", "blur:15", "none"])
def test_composite_kernel_exact(cp, kern, bg: str) -> None:
    frame = textured(270, 480, seed=6)
    alpha = K.ref_matte(soft_mask(48, 64), 480, 270, 0.5, 4.0, 2.0)
    background = make_background(BackgroundSpec.parse(bg))
    host_bg = background.get(frame)
    out = cp.empty((270, 480, 3 if host_bg is not None else 4), np.uint8)
    got = kern.composite(cp.asarray(frame), None if host_bg is None else cp.asarray(host_bg),
                         cp.asarray(alpha), out).get()
    assert np.array_equal(got, Compositor(background, 0.0)(frame, alpha))


def test_gpu_smoother_matches_cpu(cp) -> None:
    from vbg.gpu.pipeline import GpuSmoother

    cpu, gpu = TemporalSmoother(0.7), GpuSmoother(0.7)
    for i in range(5):
        m = soft_mask(48, 64, seed=i)
        assert np.abs(gpu(cp.asarray(m)).get() - cpu(m, None)).max() <= 1e-6


def _scene(n: int, w: int, h: int) -> list[np.ndarray]:
    return [disc_frame(w, h, w * (0.3 + 0.08 * i), h * 0.5, h * 0.3, seed=i)[0] for i in range(n)]


@pytest.mark.parametrize("bg", ["blur:25", "color:#00b140", "none"])
def test_gpu_pipeline_matches_cpu_pipeline(cp, spec: ModelSpec, bg: str) -> None:
    """End to end, same model (ONNX Runtime on both sides): frames 720p, batch of 3 then 2."""
    from vbg.gpu.pipeline import GpuPipeline
    from vbg.pipeline import Pipeline

    settings = Settings(bg=bg, threshold=0.5, slope=6.0, feather=2.0, smoothing=0.5)
    be = OnnxRuntimeBackend(spec)
    cpu, gpu = Pipeline(settings, be), GpuPipeline(settings, be)
    frames = _scene(5, 1280, 720)
    want = cpu.process_batch(frames[:3]) + cpu.process_batch(frames[3:])
    got = gpu.process_batch(frames[:3]) + gpu.process_batch(frames[3:])
    for g, c in zip(got, want):
        assert g.frame is not None and c.frame is not None and g.frame.shape == c.frame.shape
        assert g.alpha.shape == c.alpha.shape == (720, 1280)
        da = np.abs(g.alpha - c.alpha)
        # Stated tolerance: alpha within 2/255 and composite within 2 levels on >= 99.5% of
        # pixels; the rest only where OpenCV's resize rounds an input pixel the other way.
        assert (da <= 2 / 255).mean() >= 0.995 and da.mean() <= 1 / 255
        dc = np.abs(g.frame.astype(int) - c.frame.astype(int))
        assert (dc <= 2).mean() >= 0.995
        assert set(g.timings) >= {"segment", "smooth", "matte", "composite"}
    gpu.close()
    cpu.close()


def test_gpu_pipeline_given_same_masks_is_exact(cp, spec: ModelSpec) -> None:
    """With the preprocessing taken out of the comparison (same masks), matte and composite agree."""
    from vbg.gpu.pipeline import GpuPipeline

    settings = Settings(bg="blur:25", threshold=0.5, slope=6.0, feather=2.0, smoothing=0.0)
    be = OnnxRuntimeBackend(spec)
    gpu = GpuPipeline(settings, be)
    frame = _scene(1, 1280, 720)[0]
    out = gpu.process(frame)
    alpha = Matte(0.5, 6.0, 2.0)(out.mask, frame)
    assert np.abs(out.alpha - alpha).max() <= 2 / 255
    want = Compositor(make_background(settings.background), 0.0)(frame, out.alpha)
    assert np.abs(out.frame.astype(int) - want.astype(int)).max() <= 1
