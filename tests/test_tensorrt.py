"""TensorRT path: engine names, profiles, FP16 export, backend selection, refusals.

The CPU-side logic always runs. Where the test needs a GPU or TensorRT that
this machine lacks, the stand-in sits at that hardware edge only: a fake
``tensorrt`` module that reports a version, a fake CuPy device query. Tests
that build or run a real engine skip unless TensorRT and a GPU are present.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import ROOT, disc_frame, make_red_model

from vbg.apps import build_engine as build_app
from vbg.backends import create_backend
from vbg.backends import tensorrt as trt_backend
from vbg.backends.onnxruntime import OnnxRuntimeBackend
from vbg.errors import VbgError
from vbg.gpu import device
from vbg.gpu import engine as eng
from vbg.gpu.device import GpuInfo, slugify_gpu
from vbg.gpu.fp16 import initializer_types, is_fp16, to_fp16
from vbg.spec import ModelSpec

H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 81559)
TRT_VERSION = "10.9.0.34"


@pytest.fixture
def spec(red_model: Path) -> ModelSpec:
    return ModelSpec.load(red_model)


@pytest.fixture
def engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "engines"
    d.mkdir()
    monkeypatch.setenv("VBG_ENGINES", str(d))
    return d


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Hardware edge: TensorRT 'installed' (version only) on an H100."""
    mod = types.ModuleType("tensorrt")
    mod.__version__ = TRT_VERSION  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    monkeypatch.setattr(device, "has_module", lambda name: True)
    monkeypatch.setattr(trt_backend, "has_module", lambda name: True)
    for m in (device, eng, trt_backend):
        if hasattr(m, "require_cupy"):
            monkeypatch.setattr(m, "require_cupy", lambda: types.ModuleType("cupy"))
        monkeypatch.setattr(m, "probe_gpu", lambda index=0: H100)
    monkeypatch.setattr(trt_backend, "gpu_available", lambda: True)
    return mod


def fake_cupy_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hardware edge: CuPy installed, but the driver reports no device."""
    class CUDARuntimeError(RuntimeError):
        pass

    def count() -> int:
        raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    cp = types.ModuleType("cupy")
    cp.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupy", cp)


def touch_engine(d: Path, spec: ModelSpec, gpu: str, trt: str, sha8: str | None = None) -> Path:
    p = d / eng.engine_name(spec.name, sha8 or eng.onnx_sha8(spec.onnx), gpu, trt)
    p.write_bytes(b"not a real engine")
    return p


# --- names ----------------------------------------------------------------
def test_gpu_slugs() -> None:
    assert slugify_gpu("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"
    assert slugify_gpu("NVIDIA GeForce RTX 4090") == "geforce-rtx-4090"
    assert slugify_gpu("Tesla T4") == "tesla-t4"
    assert slugify_gpu("  ") == "gpu"


def test_engine_name_round_trip(spec: ModelSpec) -> None:
    sha8 = eng.onnx_sha8(spec.onnx)
    assert len(sha8) == 8 and int(sha8, 16) >= 0
    name = eng.engine_name("unet-lite", sha8, "h100-80gb-hbm3", TRT_VERSION)
    assert name == f"unet-lite-{sha8}-h100-80gb-hbm3-trt{TRT_VERSION}-fp16.engine"
    assert eng.parse_engine_name(name, "unet-lite") == (sha8, "h100-80gb-hbm3", TRT_VERSION)
    assert eng.parse_engine_name(name, "unet") is None  # another model's prefix
    assert eng.parse_engine_name("unet-lite-xyz.engine", "unet-lite") is None
    assert eng.engine_name("my model/v2", sha8, "t4", "10.0.1").startswith("my_model_v2-")


def test_sha8_changes_with_the_onnx(tmp_path: Path) -> None:
    a = make_red_model(tmp_path / "a.onnx", gain=12.0)
    b = make_red_model(tmp_path / "b.onnx", gain=13.0)
    sa, sb = (eng.onnx_sha8(ModelSpec.load(p).onnx) for p in (a, b))
    assert sa != sb


def test_engine_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VBG_ENGINES", raising=False)
    monkeypatch.setenv("VBG_CONFIG_DIR", str(tmp_path / "cfg"))
    assert eng.repo_root() == ROOT
    assert eng.engine_dirs() == [ROOT / "engines", tmp_path / "cfg" / "engines"]
    monkeypatch.setenv("VBG_ENGINES", str(tmp_path / "e"))
    assert eng.engine_dirs() == [tmp_path / "e"] and eng.default_out_dir() == tmp_path / "e"


# --- profiles ------------------------------------------------------------------
def test_profile_dynamic_batch(spec: ModelSpec) -> None:
    shape = eng.onnx_input_shape(spec.onnx, "input")
    assert shape == (-1, 3, 48, 64)
    assert eng.resolve_profile(shape, spec, 8) == ((1, 3, 48, 64), (8, 3, 48, 64), (8, 3, 48, 64))
    assert eng.resolve_profile(shape, spec, 16, opt_batch=4) == ((1, 3, 48, 64), (4, 3, 48, 64), (16, 3, 48, 64))
    assert eng.resolve_profile(shape, spec, 2, opt_batch=9)[1] == (2, 3, 48, 64)


def test_profile_nhwc_fixed_batch_and_static(spec: ModelSpec) -> None:
    nhwc = ModelSpec.from_dict({**spec.to_dict(), "input": {**spec.to_dict()["input"], "layout": "NHWC"}},
                               base=spec.path)
    # Fixed batch 1 with dynamic spatial dims: batch capped at 1.
    assert eng.resolve_profile((1, -1, -1, 3), nhwc, 8) == ((1, 48, 64, 3),) * 3
    # Fully static (like the MediaPipe peer): no profile at all.
    assert eng.resolve_profile((1, 48, 64, 3), nhwc, 8) is None


def test_profile_refusals(spec: ModelSpec) -> None:
    with pytest.raises(VbgError, match="max batch 0 out of range"):
        eng.resolve_profile((-1, 3, 48, 64), spec, 0)
    with pytest.raises(VbgError, match=r"ONNX input is \(-1, 3, 96, 128\), the spec says NCHW 64x48"):
        eng.resolve_profile((-1, 3, 96, 128), spec, 8)
    with pytest.raises(VbgError, match="3 dimensions"):
        eng.resolve_profile((-1, 48, 64), spec, 8)
    with pytest.raises(VbgError, match="has no input 'nope'"):
        eng.onnx_input_shape(spec.onnx, "nope")


def test_chunks() -> None:
    assert trt_backend.chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert trt_backend.chunks(3, 8) == [(0, 3)]
    assert trt_backend.chunks(0, 8) == []


# --- FP16 export -----------------------------------------------------------------
def test_fp16_export_keeps_io_and_matches_fp32(spec: ModelSpec, tmp_path: Path) -> None:
    import onnx

    dst = to_fp16(spec.onnx, tmp_path / "red-fp16.onnx")
    assert is_fp16(dst) and not is_fp16(spec.onnx)
    assert initializer_types(dst) == {"FLOAT16": 1}
    model = onnx.load(str(dst))
    f32 = onnx.TensorProto.FLOAT
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [f32]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [f32]
    # The Conv itself runs on FP16 tensors: its data input is a Cast to FLOAT16.
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    casts = {n.output[0]: n for n in model.graph.node if n.op_type == "Cast"}
    assert casts[conv.input[0]].attribute[0].i == onnx.TensorProto.FLOAT16

    frame, _ = disc_frame(160, 120, 80, 60, 30, seed=3)
    fp32 = OnnxRuntimeBackend(spec)
    x = fp32.pre([frame, frame[::-1].copy()])
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    a = 1 / (1 + np.exp(-fp32.run_tensor(x)))
    b = 1 / (1 + np.exp(-sess.run(["mask"], {"input": x})[0]))
    assert a.shape == b.shape == (2, 1, 48, 64)
    assert np.abs(a - b).max() <= 1e-2


def test_fp16_export_of_the_peer_model(peer_spec: Path, shared_dir: Path, tmp_path: Path) -> None:
    # A real model on real photos: FP16 moves edge pixels a little, the mask hardly at all.
    import cv2

    spec = ModelSpec.load(peer_spec)
    dst = to_fp16(spec.onnx, tmp_path / "peer-fp16.onnx")
    assert is_fp16(dst)
    fp32 = OnnxRuntimeBackend(spec)
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    for path in sorted((shared_dir / "data" / "person-seg" / "hs" / "images").glob("*.jpg"))[:2]:
        x = fp32.pre([cv2.imread(str(path))])
        a = fp32.run_tensor(x)
        b = sess.run([spec.output.name], {spec.input.name: x})[0]
        d = np.abs(a - b)
        assert d.mean() <= 1e-3 and d.max() <= 0.1, (path.name, d.mean(), d.max())
        assert ((a > 0.5) == (b > 0.5)).mean() >= 0.999


# --- engine checks and refusals ------------------------------------------------------------
def test_check_engine_refuses_other_gpu_trt_and_onnx(spec: ModelSpec, engines: Path) -> None:
    ok = touch_engine(engines, spec, "h100-80gb-hbm3", TRT_VERSION)
    eng.check_engine(ok, spec, "h100-80gb-hbm3", TRT_VERSION)
    other_gpu = touch_engine(engines, spec, "a100-sxm4-40gb", TRT_VERSION)
    with pytest.raises(VbgError) as e:
        eng.check_engine(other_gpu, spec, "h100-80gb-hbm3", TRT_VERSION)
    assert e.value.line() == (f"engine {other_gpu.name} was built for a100-sxm4-40gb with TensorRT {TRT_VERSION}; "
                              f"this machine has h100-80gb-hbm3 with TensorRT {TRT_VERSION} "
                              f"(rebuild it: python build_engine.py --model {spec.path})")
    old_trt = touch_engine(engines, spec, "h100-80gb-hbm3", "10.3.0.26")
    with pytest.raises(VbgError, match="with TensorRT 10.3.0.26; this machine has h100-80gb-hbm3 with TensorRT 10.9"):
        eng.check_engine(old_trt, spec, "h100-80gb-hbm3", TRT_VERSION)
    stale = touch_engine(engines, spec, "h100-80gb-hbm3", TRT_VERSION, sha8="0badc0de")
    with pytest.raises(VbgError, match="built from another version of red.onnx"):
        eng.check_engine(stale, spec, "h100-80gb-hbm3", TRT_VERSION)
    renamed = ok.rename(engines / "mine.engine")
    with pytest.raises(VbgError, match="cannot tell which GPU and TensorRT engine mine.engine"):
        eng.check_engine(renamed, spec, "h100-80gb-hbm3", TRT_VERSION)


def test_metadata_beats_a_renamed_file(spec: ModelSpec, engines: Path) -> None:
    # A file renamed to look right is still refused: the JSON beside it says what it was built for.
    p = touch_engine(engines, spec, "h100-80gb-hbm3", TRT_VERSION)
    meta = eng.EngineMeta(model=spec.name, onnx_sha8=eng.onnx_sha8(spec.onnx), gpu="geforce-rtx-3060",
                          gpu_name="NVIDIA GeForce RTX 3060", compute_capability="8.6", tensorrt=TRT_VERSION,
                          precision="fp16", mode="strongly-typed", max_batch=8, opt_batch=8,
                          input_name="input", output_name="mask", built="2026-01-01T00:00:00+0000")
    meta.save(eng.meta_path(p))
    assert eng.EngineMeta.load(eng.meta_path(p)) == meta
    with pytest.raises(VbgError, match="built for geforce-rtx-3060"):
        eng.check_engine(p, spec, "h100-80gb-hbm3", TRT_VERSION)


def test_no_tensorrt_refusals(spec: ModelSpec, engines: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if device.has_module("tensorrt"):
        pytest.skip("TensorRT is installed here")
    assert not trt_backend.available()
    assert trt_backend.find_engine(spec) is None
    assert trt_backend.why_unavailable(spec).line() == (
        'TensorRT is not installed (pip install "vbg[gpu]" --extra-index-url https://pypi.nvidia.com)')
    with pytest.raises(VbgError, match="TensorRT is not installed"):
        create_backend(spec, "tensorrt")
    assert build_app.main(["--model", str(spec.path)]) == 2
    err = capsys.readouterr().err
    assert err == ('vbg: error: TensorRT is not installed '
                   '(pip install "vbg[gpu]" --extra-index-url https://pypi.nvidia.com)\n')
    assert not list(engines.iterdir())


def test_build_engine_script_refuses_without_tensorrt(red_model: Path, tmp_path: Path) -> None:
    if device.has_module("tensorrt"):
        pytest.skip("TensorRT is installed here")
    r = subprocess.run([sys.executable, str(ROOT / "build_engine.py"), "--model", str(red_model),
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        'vbg: error: TensorRT is not installed (pip install "vbg[gpu]" --extra-index-url https://pypi.nvidia.com)']
    assert list(tmp_path.iterdir()) == []


def test_no_gpu_refusal(spec: ModelSpec, engines: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    mod = types.ModuleType("tensorrt")
    mod.__version__ = TRT_VERSION  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    fake_cupy_without_gpu(monkeypatch)
    expected = ("no CUDA GPU found (cudaErrorNoDevice: no CUDA-capable device is detected) "
                "(check the NVIDIA driver with nvidia-smi, or use --backend onnxruntime)")
    assert not device.gpu_available()
    assert trt_backend.why_unavailable(spec).line() == expected
    assert build_app.main(["--model", str(spec.path)]) == 2
    assert capsys.readouterr().err == f"vbg: error: {expected}\n"
    with pytest.raises(VbgError) as e:
        create_backend(spec, "tensorrt")
    assert e.value.line() == expected


def test_missing_cupy_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    with pytest.raises(VbgError, match=r"CuPy is not installed .*pip install \"vbg\[gpu\]\""):
        device.probe_gpu()
    assert not device.gpu_available()


def test_builder_fp16_refused_where_tensorrt_dropped_it(spec: ModelSpec, engines: Path, fake_trt,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    fake_trt.__version__ = "11.0.0.1"
    fake_trt.BuilderFlag = types.SimpleNamespace(TF32=1)  # TensorRT 11: no FP16 flag
    assert build_app.main(["--model", str(spec.path), "--builder-fp16"]) == 2
    assert "TensorRT 11.0.0.1 has no FP16 builder flag" in capsys.readouterr().err


def test_diagnose_with_tensorrt_and_gpu(spec: ModelSpec, engines: Path, fake_trt) -> None:
    msg = trt_backend.why_unavailable(spec).line()
    assert msg == (f"no TensorRT engine for model red on this GPU (h100-80gb-hbm3, TensorRT {TRT_VERSION}) "
                   f"(build one: python build_engine.py --model {spec.path})")
    touch_engine(engines, spec, "l4", TRT_VERSION)
    assert "was built for l4 with TensorRT" in trt_backend.why_unavailable(spec).line()
    assert trt_backend.find_engine(spec) is None
    with pytest.raises(VbgError, match="was built for l4"):
        create_backend(spec, "tensorrt")


def test_check_option_of_build_engine(spec: ModelSpec, engines: Path, fake_trt,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = touch_engine(engines, spec, "tesla-t4", "8.6.1")
    assert build_app.main(["--model", str(spec.path), "--check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vbg: error: engine {bad.name} was built for tesla-t4 with TensorRT 8.6.1; ")
    assert err.count("\n") == 1 and "python build_engine.py --model" in err
    good = touch_engine(engines, spec, "h100-80gb-hbm3", TRT_VERSION)
    assert build_app.main(["--model", str(spec.path), "--check", str(good)]) == 0
    assert "fits NVIDIA H100 80GB HBM3" in capsys.readouterr().out


# --- backend selection -------------------------------------------------------------
_REAL_SESSION = ort.InferenceSession
_REAL_PROVIDERS = ort.get_available_providers


class _SpySession:
    """Records the providers ONNX Runtime was asked for, then builds the real session."""

    requested: list[list[str]] = []

    def __new__(cls, path, so=None, providers=None):  # type: ignore[no-untyped-def]
        names = [p[0] if isinstance(p, tuple) else p for p in providers or []]  # (name, options) or name
        cls.requested.append(names)
        return _REAL_SESSION(path, so, providers=[p for p in names if p in _REAL_PROVIDERS()]
                             or ["CPUExecutionProvider"])


def test_auto_without_engine_or_cuda_is_ort_cpu(spec: ModelSpec, engines: Path) -> None:
    be = create_backend(spec, "auto")
    assert isinstance(be, OnnxRuntimeBackend) and be.providers == ["CPUExecutionProvider"]
    frame, gt = disc_frame(128, 96, 64, 48, 25)
    assert be.infer([frame]).shape == (1, 48, 64)


def test_auto_falls_back_to_ort_cuda(spec: ModelSpec, engines: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Hardware edge: onnxruntime-gpu's provider list (TensorRT absent or no engine).
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    _SpySession.requested = []
    monkeypatch.setattr(ort, "InferenceSession", _SpySession)
    be = create_backend(spec, "auto")
    assert isinstance(be, OnnxRuntimeBackend)
    assert _SpySession.requested == [["CUDAExecutionProvider", "CPUExecutionProvider"]]
    _SpySession.requested = []
    create_backend(spec, "cuda")
    assert _SpySession.requested == [["CUDAExecutionProvider", "CPUExecutionProvider"]]


def test_cuda_backend_refused_without_provider(spec: ModelSpec) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(VbgError, match="backend cuda needs ONNX Runtime's CUDAExecutionProvider, which is not "
                                       "installed .available here: CPU.*install onnxruntime-gpu"):
        create_backend(spec, "cuda")


def test_auto_picks_tensorrt_when_an_engine_exists(spec: ModelSpec, engines: Path, fake_trt,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # An engine for another GPU does not count; one for this GPU and TensorRT does.
    touch_engine(engines, spec, "a10g", TRT_VERSION)
    assert isinstance(create_backend(spec, "auto"), OnnxRuntimeBackend)
    good = touch_engine(engines, spec, "h100-80gb-hbm3", TRT_VERSION)
    assert trt_backend.find_engine(spec) == good
    made: list[tuple[ModelSpec, Path]] = []

    class Recorder:  # loading a real engine needs the GPU: record what would be loaded
        def __init__(self, s: ModelSpec, path: Path, **kw: object) -> None:
            made.append((s, path))

    monkeypatch.setattr(trt_backend, "TensorRTBackend", Recorder)
    assert isinstance(create_backend(spec, "auto", threads=2), Recorder)
    assert isinstance(create_backend(spec, "tensorrt"), Recorder)
    assert made == [(spec, good), (spec, good)]


def test_vbg_cli_refuses_tensorrt_backend(red_model: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from vbg.apps.cli import main

    if trt_backend.available():
        pytest.skip("TensorRT and a GPU are present")
    frame, _ = disc_frame(64, 48, 32, 24, 10)
    import cv2

    src = tmp_path / "in.png"
    cv2.imwrite(str(src), frame)
    out = tmp_path / "out.png"
    rc = main(["--input", str(src), "--output", str(out), "--model", str(red_model), "--backend", "tensorrt"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("vbg: error: ") and err.count("\n") == 1
    assert ("TensorRT is not installed" in err or "no CUDA GPU found" in err or "CuPy is not installed" in err)
    assert not out.exists()


# --- real TensorRT (skips here) -------------------------------------------------------
@pytest.fixture
def real_trt() -> types.ModuleType:
    trt = pytest.importorskip("tensorrt")
    if not device.gpu_available():
        pytest.skip("no CUDA GPU")
    return trt


def test_build_and_run_engine(real_trt, red_model: Path, engines: Path) -> None:
    spec = ModelSpec.load(red_model)
    path = eng.build_engine(spec, max_batch=4, workspace_mb=256)
    gpu = device.probe_gpu()
    assert path.parent == engines
    assert path.name == eng.engine_name("red", eng.onnx_sha8(spec.onnx), gpu.slug, real_trt.__version__)
    meta = json.loads(eng.meta_path(path).read_text())
    assert meta["max_batch"] == 4 and meta["gpu_name"] == gpu.name
    assert list(engines.glob("*.cache")), "timing cache not written"
    assert trt_backend.find_engine(spec) == path
    be = create_backend(spec, "auto")
    assert be.name == "tensorrt"
    frames = [disc_frame(320, 240, 100 + 10 * i, 120, 60, seed=i)[0] for i in range(6)]  # 6 > max batch 4
    got = be.infer(frames)
    want = OnnxRuntimeBackend(spec).infer(frames)
    assert got.shape == want.shape == (6, 48, 64)
    assert np.abs(got - want).max() <= 2e-2
    be.close()
