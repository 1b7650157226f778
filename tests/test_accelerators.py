"""Acceleration for every user's GPU: backend choice, provider options, NVENC/NVDEC fallbacks, vbg doctor,
build_engine without onnx, and the prepared GPU check's dry run. The hardware edge (which providers ONNX
Runtime lists) is faked; the runs are real, on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import PERSON_BGR, ROOT, disc_frame
from media import make_clip

from vbg.backends import PROVIDERS, choose_backend, create_backend
from vbg.backends.onnxruntime import OnnxRuntimeBackend
from vbg.errors import VbgError
from vbg.spec import ModelSpec

CPU = "CPUExecutionProvider"


@pytest.fixture
def spec(red_model: Path) -> ModelSpec:
    return ModelSpec.load(red_model)


@pytest.mark.parametrize("listed,picked", [
    ([CPU], "cpu"),
    (["AzureExecutionProvider", CPU], "cpu"),  # listed everywhere, no local hardware
    (["CUDAExecutionProvider", CPU], "cuda"),
    (["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU], "ort-tensorrt"),
    (["MIGraphXExecutionProvider", CPU], "rocm"),
    (["ROCMExecutionProvider", CPU], "rocm"),
    (["DmlExecutionProvider", CPU], "directml"),
    (["CoreMLExecutionProvider", CPU], "coreml"),
    (["OpenVINOExecutionProvider", CPU], "openvino"),
])
def test_auto_picks_the_best_available(spec: ModelSpec, listed: list[str], picked: str) -> None:
    choice = choose_backend(spec, "auto", listed)
    assert choice.backend == picked and choice.why


@pytest.mark.parametrize("name,package", [("directml", "onnxruntime-directml"), ("openvino", "onnxruntime-openvino"),
                                          ("cuda", "onnxruntime-gpu"), ("rocm", "onnxruntime-migraphx"),
                                          ("coreml", "onnxruntime on macOS")])
def test_a_missing_provider_is_one_line_naming_the_package(spec: ModelSpec, name: str, package: str) -> None:
    with pytest.raises(VbgError) as err:
        choose_backend(spec, name, ["AzureExecutionProvider", CPU])
    line = err.value.line()
    assert "\n" not in line and "(available here: CPU)" in line and package in line


def test_old_backend_name_still_works(spec: ModelSpec) -> None:
    assert choose_backend(spec, "onnxruntime", [CPU]).backend == "cpu"
    with pytest.raises(VbgError, match="unknown backend 'gpu'"):
        choose_backend(spec, "gpu", [CPU])


class _Spy:
    """ONNX Runtime's session, recording what it was asked for (the provider list is the hardware edge)."""

    asked: list = []
    real = ort.InferenceSession

    def __new__(cls, path, so=None, providers=None):  # type: ignore[no-untyped-def]
        cls.asked.append(list(providers or []))
        return cls.real(path, so, providers=[CPU])


@pytest.mark.parametrize("name,ort_name,options", [
    ("ort-tensorrt", "TensorrtExecutionProvider", {"trt_fp16_enable": "True", "trt_engine_cache_enable": "True"}),
    ("directml", "DmlExecutionProvider", {"device_id": "0"}),
    ("coreml", "CoreMLExecutionProvider", {"ModelFormat": "MLProgram"}),
    ("rocm", "MIGraphXExecutionProvider", {"migraphx_fp16_enable": "1"}),
    ("openvino", "OpenVINOExecutionProvider", {"device_type": "AUTO:GPU,CPU"}),
])
def test_each_provider_gets_its_options(spec: ModelSpec, monkeypatch: pytest.MonkeyPatch, name: str,
                                        ort_name: str, options: dict[str, str]) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: [ort_name, CPU])
    _Spy.asked = []
    monkeypatch.setattr(ort, "InferenceSession", _Spy)
    be = create_backend(spec, name)
    (asked,) = _Spy.asked
    assert asked[0][0] == ort_name and asked[-1] == CPU  # the CPU takes any operator the accelerator lacks
    assert options.items() <= asked[0][1].items()
    if name == "ort-tensorrt":
        assert asked[0][1]["trt_engine_cache_path"].endswith("engines/ort-trt-cache")
    assert be.choice.backend == name  # type: ignore[attr-defined]


def test_a_real_cpu_run(spec: ModelSpec) -> None:
    be = create_backend(spec, "auto")
    assert isinstance(be, OnnxRuntimeBackend) and be.device == "cpu" and be.providers == [CPU]
    frame, gt = disc_frame(128, 96, 64, 48, 25)
    m = be.infer([frame])[0]
    assert m.shape == (48, 64) and m[24, 32] > 0.9 and m[2, 2] < 0.1


# --- NVENC and NVDEC -------------------------------------------------------------------------------
def _nvidia_here() -> bool:
    from vbg.apps.doctor import _nvidia_present

    return _nvidia_present()


def test_nvenc_only_when_it_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fractions import Fraction

    import av

    from vbg.sinks import video

    video.pick_h264_encoder.cache_clear()
    here = video.pick_h264_encoder(320, 240)
    if not _nvidia_here():
        assert here == "libx264"  # no driver: NVENC cannot open, whatever FFmpeg lists
    # whichever encoder the probe picked, a real clip comes out of it
    sink = video.VideoSink(tmp_path / "a.mp4", ext=".mp4", mode="composite", width=320, height=240,
                           rate=Fraction(30), time_base=Fraction(1, 30), nvenc=True)
    assert sink.codec == here
    frame, _ = disc_frame(320, 240, 160, 120, 60)
    for i in range(10):
        sink.write_pixels(frame, i)
    sink.close()
    with av.open(str(tmp_path / "a.mp4")) as c:
        got = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(got) == 10
    assert np.abs(got[-1].astype(int) - frame.astype(int)).mean() < 6
    # a GPU with NVENC (the stand-in is the probe's answer; nothing is encoded) gets NVENC's options
    monkeypatch.setattr(video, "pick_h264_encoder", lambda w, h: "h264_nvenc")
    sink = video.VideoSink(tmp_path / "b.mp4", ext=".mp4", mode="composite", width=320, height=240,
                           rate=Fraction(30), time_base=Fraction(1, 30), nvenc=True)
    assert sink.codec == "h264_nvenc" and sink._v.options["cq"] == "20"
    sink.abort()
    odd = video.VideoSink(tmp_path / "c.mp4", ext=".mp4", mode="composite", width=321, height=241,
                          rate=Fraction(30), time_base=Fraction(1, 30), nvenc=True)
    assert odd.codec == "libx264"  # 4:4:4 for odd sizes stays on x264
    odd.abort()


def test_nvdec_falls_back_to_software(tmp_path: Path) -> None:
    from vbg.io.decode import DecodedFrame, VideoDecoder

    clip = make_clip(tmp_path / "in.mp4", frames=5, audio=None)
    with VideoDecoder(clip, nvdec=True) as dec:
        frames = [f.image for f in dec if isinstance(f, DecodedFrame)]
        hw = dec.hwaccel
    with VideoDecoder(clip, nvdec=False) as dec:
        soft = [f.image for f in dec if isinstance(f, DecodedFrame)]
    if not _nvidia_here():
        assert hw == ""  # fell back
    assert len(frames) == len(soft) == 5 and frames[0].shape == (240, 320, 3)
    for a, b in zip(frames, soft):
        if hw:  # NVDEC's colour conversion may round differently
            assert np.abs(a.astype(int) - b.astype(int)).mean() < 2
        else:
            np.testing.assert_array_equal(a, b)


# --- vbg doctor ------------------------------------------------------------------------------------
def test_doctor_on_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    from vbg.apps.cli import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for section in ("versions:", "inference backends:", "GPU:", "video codecs:", "cameras:", "virtual camera:",
                    "window:", "setup:"):
        assert section in out
    assert f"ONNX Runtime {ort.__version__}" in out and "--backend auto:" in out
    assert "h264_nvenc:" in out and "NVDEC:" in out
    if not Path("/proc/driver/nvidia/version").exists() and sys.platform.startswith("linux"):
        # no driver: say so, rather than a GPU-model hint and a raw exception from the probe
        assert "h264_nvenc: no NVIDIA GPU here: libx264 encodes on the CPU" in out
        assert "NVDEC: no NVIDIA GPU here: FFmpeg decodes on the CPU" in out and "Error" not in out
    if not Path("/sys/module/v4l2loopback").is_dir() and sys.platform.startswith("linux"):
        assert "sudo modprobe v4l2loopback" in out  # the fix for what is missing
    for name in PROVIDERS:
        if name != "cpu":
            assert f"--backend {name}:" in out


def test_doctor_never_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from vbg.apps import doctor

    def broken() -> list[doctor.Check]:
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(doctor, "SECTIONS", [("GPU", broken)] + doctor.SECTIONS[1:2])
    assert "could not check: RuntimeError: driver exploded" in doctor.report()


# --- build_engine and the GPU check ------------------------------------------------------------------
def test_build_engine_without_onnx_is_one_line(red_model: Path) -> None:
    code = ("import sys, types\nsys.modules['onnx'] = None\n"
            "import vbg.gpu.device as d\nd.require_tensorrt = lambda: types.SimpleNamespace(__version__='10.9')\n"
            "from vbg.apps.build_engine import main\n"
            f"raise SystemExit(main(['--model', {str(red_model)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == ('vbg: error: building an engine needs the onnx package, which is not installed '
                                '(pip install "vbg[gpu]" (or pip install onnx))')


def test_gpu_check_dry_runs_here(tmp_path: Path) -> None:
    """benchmarks/gpu_check.sh on a machine without a GPU: one clear line, a report that says so, rc 0."""
    import shutil

    if _nvidia_here() or shutil.which("nvidia-smi"):
        pytest.skip("a GPU is here: the check would run for real (minutes); run it by hand")
    env = {**os.environ, "GPU_CHECK_OUT": str(tmp_path)}
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                       timeout=300, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "no GPU" in r.stdout, r.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["gpu"] is None and report["steps"] == []
    assert "no GPU" in (tmp_path / "gpu_check.md").read_text()


def test_composite_on_auto_picked_backend_end_to_end(red_model: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from media import disc_centre, probe

    import vbg

    clip = make_clip(tmp_path / "in.mp4", frames=4, audio=None)
    with caplog.at_level(logging.INFO, logger="vbg.backends"):
        stats = vbg.convert(clip, tmp_path / "o.mp4", model=str(red_model), backend="auto", bg="color:#00ff00")
    assert stats.frames == 4
    picked = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backend ")]
    assert picked, caplog.text
    if set(ort.get_available_providers()) <= {"CPUExecutionProvider", "AzureExecutionProvider"}:
        assert picked[0].startswith("backend cpu:"), picked  # only the CPU is offered: auto takes it
    res = probe(tmp_path / "o.mp4")
    assert len(res.frames) == 4
    yy, xx = np.mgrid[0:240, 0:320]
    r = 240 * 0.22
    for i, frame in enumerate(res.frames):
        cx, cy = disc_centre(i, 4, 320, 240)
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        assert np.abs(frame[d < r - 8].mean(axis=0) - PERSON_BGR).max() < 15, i  # the person is kept
        assert np.abs(frame[d > r + 8].mean(axis=0) - (0, 255, 0)).max() < 12, i  # the rest is the colour
