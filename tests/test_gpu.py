"""GPU stages: the NumPy references against the CPU stages (always), the kernels against both.

Every CUDA kernel in ``vbg.gpu.kernels`` has a NumPy reference doing the
same arithmetic. Here the references are checked against the CPU stages on
every run, with the tolerances ``vbg.gpu.kernels`` states (bit-exact except
the float feather, a few ulps). The kernels and the whole ``GpuPipeline``
are checked against the references and ``vbg.pipeline.Pipeline`` on two
devices: ``cuda`` (a real GPU with CuPy; skipped without one) and ``emu``
(``tests/cuda_emu.py``: the same CUDA source compiled as C++ and run on the
CPU behind a CuPy stand-in; skipped without g++). The source is also
compiled for real with NVRTC or nvcc where either is present (no GPU
needed for that).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cuda_emu
import cv2
import numpy as np
import pytest
from conftest import BACKGROUND_BGR, disc_frame

from vbg.backends.onnxruntime import OnnxRuntimeBackend
from vbg.errors import VbgError
from vbg.gpu import device
from vbg.gpu import kernels as K
from vbg.gpu import plans as P
from vbg.gpu import reference as R
from vbg.settings import Settings
from vbg.spec import ModelSpec
from vbg.stages.backgrounds import BackgroundSpec, BlurBackground, open_background
from vbg.stages.composite import Compositor
from vbg.stages.matte import Matte, guide_level
from vbg.stages.preprocess import FramePyramid, Preprocessor, decode_output, levels_for, shrink
from vbg.stages.smooth import TemporalSmoother


@pytest.fixture
def spec(red_model: Path) -> ModelSpec:
    return ModelSpec.load(red_model)


def variant(spec: ModelSpec, **inp: object) -> ModelSpec:
    d = spec.to_dict()
    d["input"] = {**d["input"], **inp}
    return ModelSpec.from_dict(d, base=spec.path)


def specs(spec: ModelSpec) -> list[ModelSpec]:
    """The test model, an NHWC/BGR variant with real normalisation, and a 256x144 ImageNet-style one."""
    return [spec, variant(spec, layout="NHWC", color="BGR", mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3]),
            variant(spec, width=256, height=144, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])]


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)


def soft_mask(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (7, 7), 0)


def person_mask(frame: np.ndarray, seed: int = 0, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A soft low-res mask of the red disc, with some noise: what a model would give."""
    red = (frame[..., 2].astype(np.int16) - frame[..., 0] > 50).astype(np.float32)
    m = cv2.resize(cv2.GaussianBlur(red, (0, 0), 2), size, interpolation=cv2.INTER_AREA)
    return np.clip(0.85 * m + 0.15 * soft_mask(size[1], size[0], seed), 0, 1).astype(np.float32)


def matte_frames(w: int, h: int) -> list[np.ndarray]:
    """Three frames of a moving disc with soft edges (so the alpha has a ramp, not a step); in the last it
    runs off the bottom-left corner (the filters' borders)."""
    frames = [disc_frame(w, h, w * (0.3 + 0.1 * i), h / 2, h / 3, seed=i)[0] for i in range(2)]
    frames.append(disc_frame(w, h, w * 0.1, h * 0.9, h / 3, seed=2)[0])
    return [cv2.GaussianBlur(f, (0, 0), max(1.0, h / 60)) for f in frames]


def isoluminant_frame(w: int, h: int) -> np.ndarray:
    """A red disc on a blue wall of about the same luma: luma cannot separate them, colour can."""
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = (255, 80, 50)
    yy, xx = np.mgrid[0:h, 0:w]
    frame[(xx - w / 2) ** 2 + (yy - h / 2) ** 2 <= (h / 3) ** 2] = (40, 40, 220)
    return frame


def clip_frames(n: int, w: int, h: int, cut_at: int | None = None) -> list[np.ndarray]:
    """A disc moving across; from ``cut_at`` on, another shot (a bright, differently textured scene)."""
    out = []
    for i in range(n):
        if cut_at is not None and i >= cut_at:
            f, _ = disc_frame(w, h, w * (0.7 - 0.03 * i), h * 0.45, h * 0.25, seed=100 + i)
            f[f[..., 0] == BACKGROUND_BGR[0]] = (230, 230, 230)  # untouched background pixels
            f = cv2.add(f, np.full_like(f, 40))
        else:
            f, _ = disc_frame(w, h, w * (0.3 + 0.06 * i), h * 0.5, h * 0.3, seed=i)
        out.append(f)
    return out


# --- references vs CPU stages (always run) -------------------------------------------------
@pytest.mark.parametrize("size", [(1920, 1080), (1281, 721), (640, 480), (100, 70)])
def test_ref_shrink_and_pyramid_are_bit_exact(size: tuple[int, int]) -> None:
    w, h = size
    frame = textured(h, w, seed=w)
    targets = [(64, 48), (256, 144), (w // 2, h // 2), (w // 4 + 1, h // 3), (2 * w // 3, h), (300, 200)]
    for t in targets:
        assert np.array_equal(R.ref_shrink(frame, t), shrink(frame, t)), t
    cpu, ref = FramePyramid(frame), R.ref_pyramid(frame)
    for k in range(4):
        assert np.array_equal(ref.level(k), cpu.level(k)), k
    for t in [(64, 48), (256, 144), (64, 36), (33, 21)]:
        assert np.array_equal(ref.at(t), cpu.at(t)), t
        assert np.array_equal(ref.gray(t), cpu.gray(t)), t


def test_ref_luma_matches_cvtcolor() -> None:
    v = np.arange(1 << 18, dtype=np.int64) * 64 + np.random.default_rng(0).integers(0, 64, 1 << 18)
    img = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], -1).astype(np.uint8).reshape(512, 512, 3)
    assert np.array_equal(R.ref_luma(img), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))


@pytest.mark.parametrize("src,dst", [((64, 48), (1280, 720)), ((64, 48), (97, 71)), ((240, 135), (1920, 1080)),
                                     ((33, 17), (1000, 999)), ((128, 96), (60, 40))])
def test_ref_resize_f32_matches_opencv(src: tuple[int, int], dst: tuple[int, int]) -> None:
    m = np.random.default_rng(1).random((src[1], src[0])).astype(np.float32)
    m[:, : src[0] // 3] = 0.0
    want = cv2.resize(m, dst, interpolation=cv2.INTER_LINEAR)
    # OpenCV 5's float bilinear is fma(s1 - s0, f, s0) per axis; the reference's fma rounds twice.
    assert np.abs(R.ref_resize_f32(m, dst) - want).max() <= 6e-8


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080), (640, 480), (128, 96), (100, 70)])
def test_ref_preprocess_matches_preprocessor(spec: ModelSpec, size: tuple[int, int]) -> None:
    w, h = size
    frames = [textured(h, w, seed) for seed in (1, 2)]
    for s in specs(spec):
        want = Preprocessor(s)(frames)
        got = R.ref_preprocess(frames, s)
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.array_equal(got, want)


@pytest.mark.parametrize("strength", [0.0, 0.3, 0.7, 1.0])
def test_ref_smoother_matches_temporal_smoother(strength: float) -> None:
    frames = clip_frames(10, 320, 180, cut_at=6)
    cpu, ref = TemporalSmoother(strength), R.RefSmoother(strength)
    for i, f in enumerate(frames):
        m = person_mask(f, seed=i)
        if i == 3:  # a big jump of the mask with a still frame counts as motion too
            m = np.clip(1.0 - m, 0, 1)
        want = cpu(m, f)
        got = ref.step(m, R.ref_pyramid(f).gray((64, 48)))
        assert np.array_equal(got, want), (i, float(np.abs(got - want).max()))
    assert cpu.cuts == ref.cuts == 1
    # Without a frame: the mask-only rule.
    assert np.array_equal(ref.step(person_mask(frames[0])), cpu(person_mask(frames[0]), None))


@pytest.mark.parametrize("guided", [True, False])
@pytest.mark.parametrize("feather", [0.0, 2.0, 3.5])
def test_ref_matte_matches_matte(guided: bool, feather: float) -> None:
    for (w, h), t, slope in (((640, 480), 0.5, 10.0), ((1280, 720), 0.35, 3.0), ((97, 71), 0.6, 50.0)):
        cpu = Matte(t, slope, feather, guided=guided)
        prm = P.MatteParams(t, slope, feather, guided=guided)
        channel = 0
        for i, frame in enumerate(matte_frames(w, h)):
            m = person_mask(frame, seed=i)
            want = cpu.compute(m, frame).alpha
            got, channel = R.ref_matte(m, frame, prm, channel)
            assert got.shape == want.shape == (h, w) and got.dtype == np.float32
            # The CPU's box means are a separable float filter whose rounding follows OpenCV's SIMD path;
            # the reference keeps double sums rounded once (as do the kernels): ulps of the coefficients,
            # times the slope on the alpha (4.8e-6 at slope 10, 1.3e-5 at 50).
            d = float(np.abs(got - want).max())
            assert d <= 3e-5, d
            assert channel == cpu.channel


def test_ref_matte_picks_the_colour_channel_like_matte() -> None:
    frame = isoluminant_frame(320, 240)
    m = person_mask(frame)
    cpu = Matte(0.5, 10.0, 2.0)
    want = cpu.compute(m, frame).alpha
    got, channel = R.ref_matte(m, frame, P.MatteParams(0.5, 10.0, 2.0))
    assert channel == cpu.channel != 0  # luma barely separates these colours
    assert np.abs(got - want).max() <= 3e-5
    _, luma_only = R.ref_matte(m, frame, P.MatteParams(0.5, 10.0, 2.0, guide="luma"), channel)
    assert luma_only == 0


@pytest.mark.parametrize("strength", [1, 8, 25, 100])
@pytest.mark.parametrize("size", [(1280, 720), (641, 359), (100, 70)])
def test_ref_blur_background_is_bit_exact(strength: int, size: tuple[int, int]) -> None:
    frame = textured(size[1], size[0], seed=strength)
    want = BlurBackground(strength).get(frame)
    assert np.array_equal(R.ref_blur_background(frame, strength), want)


def test_fixed_point_taps() -> None:
    for k, sigma in ((3, 0.0), (5, 0.0), (9, 0.0), (25, 0.0), (101, 0.0), (5, 0.5), (19, 3.0), (13, 2.0)):
        t = P.gaussian_taps_fixed(k, sigma)
        # Error diffusion keeps the sum exact; each tap stays within 1/256 of the float kernel.
        assert t.sum() == 256 and np.array_equal(t, t[::-1])
        assert np.abs(t / 256 - cv2.getGaussianKernel(k, sigma).ravel()).max() <= 1 / 256
    assert P.gaussian_ksize_u8(3.0) == 19 and P.gaussian_ksize_u8(0.5) == 5


@pytest.mark.parametrize("bg", ["color:#00b140", "blur:15", "none"])
@pytest.mark.parametrize("feather", [0.0, 2.0])
def test_ref_composite_matches_compositor(bg: str, feather: float) -> None:
    frame, _ = disc_frame(641, 359, 250, 180, 120, seed=5)
    res = Matte(0.5, 4.0, feather).compute(person_mask(frame), frame)
    background = open_background(BackgroundSpec.parse(bg))
    want = Compositor(background, 0.0)(frame, res.alpha, res.coverage)
    host_bg = background.get(frame)
    assert np.array_equal(R.ref_composite(frame, None if host_bg is None else host_bg.copy(), res.alpha), want)


def test_ref_composite_rounds_like_blend_linear() -> None:
    rng = np.random.default_rng(3)
    fg, bg = (rng.integers(0, 256, (200, 300, 3), dtype=np.uint8) for _ in range(2))
    a = rng.random((200, 300)).astype(np.float32)
    a[:20] = np.round(a[:20] * 16) / 16
    a[20:30], a[30:40] = 0.0, 1.0
    assert np.array_equal(R.ref_composite(fg, bg, a), cv2.blendLinear(fg, bg, a, 1.0 - a))
    assert np.array_equal(R.ref_composite(fg, None, a)[..., 3], cv2.convertScaleAbs(a, alpha=255.0))


def test_plans_match_the_cpu_stages() -> None:
    # guide_level and levels_for are the CPU stages' own functions; the plans built on them:
    assert guide_level(1920, 1080, (256, 144)) == 2 and levels_for(1920, 1080, (256, 144)) == 2
    assert P.shrink_plan(1920, 1080, 256, 144) == [(512, 288), (256, 144)]
    assert P.shrink_plan(512, 288, 256, 144) == [(256, 144)]
    assert P.shrink_plan(256, 144, 256, 144) == []
    assert P.blur_plan(25, 1920, 1080) == P.BlurPlan((230, 130), 19, 3.0)


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
    assert np.allclose(P.decode_xp(np, s, raw), decode_output(s, raw), atol=1e-6)


def test_kernels_compile_with_nvrtc() -> None:
    """The CUDA source compiles (NVRTC needs no GPU); every launcher's kernel is in the PTX."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # cupy missing, or no libnvrtc
        pytest.skip(f"NVRTC unavailable: {exc}")
    prog = nvrtc.createProgram(K.cuda_source(), "vbg_kernels.cu", [], [])
    try:
        nvrtc.compileProgram(prog, [*K.NVRTC_OPTIONS, "-arch=compute_75"])
    except Exception:
        pytest.fail(nvrtc.getProgramLog(prog))
    ptx = nvrtc.getPTX(prog)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert [n for n in K.KERNEL_NAMES if f".entry {n}(" not in ptx] == []


def test_kernels_compile_with_nvcc(tmp_path: Path) -> None:
    """The same with nvcc, where a CUDA toolkit is installed without CuPy's NVRTC."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found")
    src = tmp_path / "k.cu"
    src.write_text(K.cuda_source())
    r = subprocess.run([nvcc, "-ptx", "-arch=compute_75", "-std=c++14", "--fmad=false", "-o", str(tmp_path / "k.ptx"),
                        str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    ptx = (tmp_path / "k.ptx").read_text()
    assert [n for n in K.KERNEL_NAMES if f".entry {n}(" not in ptx] == []


def test_pick_h264_encoder_opens_and_encodes(tmp_path: Path) -> None:
    from vbg.sinks.video import pick_h264_encoder

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


# --- kernels on a device: a real GPU, or the CPU emulation ---------------------------------------
@dataclass
class Dev:
    cp: Any
    emulated: bool

    def size(self, w: int, h: int) -> tuple[int, int]:
        """Full size on a GPU; a quarter of the pixels in emulation (it runs thread by thread)."""
        return (w // 2, h // 2) if self.emulated else (w, h)


@pytest.fixture(params=["cuda", "emu"])
def dev(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Dev:
    if request.param == "cuda":
        if not device.gpu_available():
            pytest.skip("no CUDA GPU")
        import cupy

        return Dev(cupy, False)
    if not cuda_emu.available():
        pytest.skip("no g++ for the kernel emulation")
    cp, cpx = cuda_emu.make_cupy()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(sys.modules, "cupyx", cpx)
    return Dev(cp, True)


@pytest.fixture
def kern(dev: Dev) -> K.Kernels:
    return K.Kernels()


def test_resize_kernels_bit_exact(dev: Dev, kern: K.Kernels) -> None:
    w, h = dev.size(1920, 1080)
    frames = [textured(h, w, seed) for seed in (3, 4)]
    pyr, refs = kern.pyramid(dev.cp.asarray(np.stack(frames))), [FramePyramid(f) for f in frames]
    for k in range(3):
        assert np.array_equal(pyr.level(k).get(), np.stack([r.level(k) for r in refs])), k
    for t in [(64, 48), (256, 144), (64, 36), (w // 3, h // 2 + 1)]:
        assert np.array_equal(pyr.at(t).get(), np.stack([r.at(t) for r in refs])), t
        assert np.array_equal(pyr.gray(t).get(), np.stack([r.gray(t) for r in refs])), t
    m = soft_mask(48, 64, seed=1)
    up = kern.resize_f32(dev.cp.asarray(m[None]), (w, h)).get()[0]
    assert np.abs(up - cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)).max() <= 6e-8


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160), (640, 480), (100, 70)])
def test_preprocess_kernel(dev: Dev, kern: K.Kernels, spec: ModelSpec, size: tuple[int, int]) -> None:
    if dev.emulated and size[0] > 1920:
        pytest.skip("4K in emulation: slow, and 1080p takes the same two-step path")
    w, h = size
    frames = [textured(h, w, seed) for seed in (3, 4, 5)]
    for s in specs(spec):
        want = Preprocessor(s)(frames)
        out = dev.cp.empty(want.shape, np.float32)
        d_frames = dev.cp.asarray(np.stack(frames))
        got = kern.preprocess(d_frames, s, out).get()
        assert np.array_equal(got, want)
        # The pipeline's path: from the frame pyramid, as Segmenter feeds the CPU backend.
        want = Preprocessor(s)([FramePyramid(f).at(s.size) for f in frames])
        got = kern.preprocess(d_frames, s, out, kern.pyramid(d_frames)).get()
        assert np.array_equal(got, want)


def test_gpu_smoother_matches_cpu(dev: Dev, kern: K.Kernels) -> None:
    from vbg.gpu.pipeline import GpuSmoother

    frames = clip_frames(10, 320, 180, cut_at=6)
    for strength in (0.0, 0.7):
        cpu, gpu = TemporalSmoother(strength), GpuSmoother(kern, strength)
        for i, f in enumerate(frames):
            m = person_mask(f, seed=i)
            gray = kern.pyramid(dev.cp.asarray(f[None])).gray((64, 48))[0]
            want = cpu(m, f)
            assert np.array_equal(gpu.step(dev.cp.asarray(m), gray).get(), want), (strength, i)
        assert gpu.cuts == cpu.cuts == 1
        gpu.reset()
        assert gpu.step(dev.cp.asarray(m)).get().tolist() == m.tolist()  # no state after reset


@pytest.mark.parametrize("guided", [True, False])
@pytest.mark.parametrize("feather", [0.0, 3.5])
def test_matte_kernels(dev: Dev, kern: K.Kernels, guided: bool, feather: float) -> None:
    cp = dev.cp
    for (w, h) in (dev.size(1920, 1080), (101, 77), (320, 240)):
        frames = matte_frames(w, h)
        if (w, h) == (320, 240):
            frames[1:] = [isoluminant_frame(w, h)] * 2  # the guide switches to a colour channel
        masks = np.stack([person_mask(f, seed=i) for i, f in enumerate(frames)])
        prm = P.MatteParams(0.45, 8.0, feather, guided=guided)
        d_frames = cp.asarray(np.stack(frames))
        state = cp.zeros((1,), np.int32)
        out = cp.empty((3, h, w), np.float32)
        got = kern.matte(cp.asarray(masks), d_frames, kern.pyramid(d_frames), prm, state, out,
                         cp.empty_like(out)).get()
        cpu, channel = Matte(0.45, 8.0, feather, guided=guided), 0
        for i in range(3):
            ref, channel = R.ref_matte(masks[i], frames[i], prm, channel)
            # Same operations in the same order: identical, but for the reference's fma, which can round
            # twice (about once in 2**29 operations, 1 ulp).
            assert np.abs(got[i] - ref).max() <= 1e-6 and (got[i] != ref).mean() <= 1e-5
            assert np.abs(got[i] - cpu.compute(masks[i], frames[i]).alpha).max() <= 3e-5  # the reference's own tolerance
        assert int(state.get()[0]) == channel == cpu.channel
        if guided and (w, h) == (320, 240):
            assert channel != 0


@pytest.mark.parametrize("strength", [1, 25, 100])
def test_blur_background_kernel_bit_exact(dev: Dev, kern: K.Kernels, strength: int) -> None:
    w, h = dev.size(1280, 720)
    frames = [textured(h, w, seed=strength + i) for i in range(2)]
    d = dev.cp.asarray(np.stack(frames))
    got = kern.blur_background(kern.pyramid(d), strength, dev.cp.empty(d.shape, np.uint8)).get()
    for g, f in zip(got, frames):
        assert np.array_equal(g, BlurBackground(strength).get(f))


@pytest.mark.parametrize("bg", ["color:#00b140", "blur:15", "none"])
def test_composite_kernel_exact(dev: Dev, kern: K.Kernels, bg: str) -> None:
    cp = dev.cp
    frames = [disc_frame(480, 270, 150 + 80 * i, 135, 90, seed=6 + i)[0] for i in range(2)]
    results = [Matte(0.5, 4.0, 2.0).compute(person_mask(f), f) for f in frames]
    background = open_background(BackgroundSpec.parse(bg))
    hosts = []
    for f in frames:  # copies: the blur background reuses one buffer
        x = background.get(f)
        if x is not None:
            hosts.append(x.copy())
    if not hosts:
        d_bg = None
    elif bg.startswith("color"):
        d_bg = cp.asarray(hosts[0])  # one background for all frames
    else:
        d_bg = cp.asarray(np.stack(hosts))
    out = cp.empty((2, 270, 480, 3 if d_bg is not None else 4), np.uint8)
    got = kern.composite(cp.asarray(np.stack(frames)), d_bg, cp.asarray(np.stack([r.alpha for r in results])),
                         out).get()
    for g, f, r in zip(got, frames, results):
        assert np.array_equal(g, Compositor(background, 0.0)(f, r.alpha, r.coverage))


@pytest.mark.parametrize("bg", ["blur:25", "color:#00b140", "none"])
def test_gpu_pipeline_matches_cpu_pipeline(dev: Dev, spec: ModelSpec, bg: str) -> None:
    """End to end, same model (ONNX Runtime on both sides), batches of 3 then 3, a scene cut in the second."""
    from vbg.gpu.pipeline import GpuPipeline
    from vbg.pipeline import Pipeline

    w, h = dev.size(1280, 720)
    settings = Settings(bg=bg, threshold=0.5, slope=6.0, feather=2.0, smoothing=0.5)
    be = OnnxRuntimeBackend(spec)
    cpu, gpu = Pipeline(settings, be), GpuPipeline(settings, be)
    frames = clip_frames(6, w, h, cut_at=4)
    want = cpu.process_batch(frames[:3]) + cpu.process_batch(frames[3:])
    got = gpu.process_batch(frames[:3]) + gpu.process_batch(frames[3:])
    assert gpu.smoother.cuts == cpu.smoother.cuts == 1
    for g, c in zip(got, want):
        assert g.frame is not None and c.frame is not None and g.frame.shape == c.frame.shape
        assert g.alpha.shape == c.alpha.shape == (h, w)
        # Stated tolerance (vbg.gpu.kernels): mask 1e-6 (CuPy's exp), alpha 1e-4, composite within
        # 1 level and exact on >= 99.9% of the pixels. In emulation the decode is NumPy's: tighter.
        assert np.abs(g.mask - c.mask).max() <= (0.0 if dev.emulated else 1e-6)
        assert np.abs(g.alpha - c.alpha).max() <= (3e-5 if dev.emulated else 1e-4)
        dc = np.abs(g.frame.astype(int) - c.frame.astype(int))
        assert dc.max() <= 1 and (dc == 0).mean() >= 0.999
        assert set(g.timings) >= {"segment", "smooth", "matte", "composite"}
    gpu.reset()
    again = gpu.process(frames[0])  # reset: no smoothing state, luma guide again
    cpu.reset()
    assert np.abs(again.alpha - cpu.process(frames[0]).alpha).max() <= (3e-5 if dev.emulated else 1e-4)
    gpu.close()
    cpu.close()


def test_gpu_pipeline_ignores_light_wrap_with_a_warning(dev: Dev, spec: ModelSpec,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    from vbg.gpu.pipeline import GpuPipeline

    frame = clip_frames(1, 320, 180)[0]
    be = OnnxRuntimeBackend(spec)
    with caplog.at_level(logging.WARNING, logger="vbg.gpu.pipeline"):
        wrapped = GpuPipeline(Settings(bg="color:#00b140", light_wrap=0.6), be)
    assert "light wrap" in caplog.text
    plain = GpuPipeline(Settings(bg="color:#00b140"), be)
    a, b = wrapped.process(frame), plain.process(frame)
    assert a.frame is not None and b.frame is not None and np.array_equal(a.frame, b.frame)
