"""The structure the code promises: no import cycles, one factory, registries for sinks and
backgrounds, one video reader with rotation, recurrent models behind the backend protocol."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import cuda_emu
import numpy as np
import pytest
from conftest import ROOT, disc_frame
from media import make_clip

from vbg.backends.onnxruntime import OnnxRuntimeBackend
from vbg.errors import VbgError
from vbg.gpu import device as gpu_device
from vbg.gpu.device import GpuInfo
from vbg.pipeline import Pipeline, make_pipeline
from vbg.settings import Settings
from vbg.spec import ModelSpec
from vbg.stages import backgrounds as bgs

# Imports allowed inside functions: optional heavy dependencies, and the modules that need them;
# onnxruntime (0.3 s, 40 MB) loads with the first session so ``vbg --help`` and ``vbg models`` stay quick.
# torch and onnx are not here: only vbg.train (exempt below) may import them.
LAZY_OK = {"PySide6", "cupy", "cupyx", "tensorrt", "pyvirtualcam", "onnxruntime", ".app", ".gui.preview"}


def _modules() -> dict[str, Path]:
    out = {}
    for p in (ROOT / "vbg").rglob("*.py"):
        rel = p.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(mod: str, node: ast.ImportFrom | ast.Import, is_pkg: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    # "from . import x": x may be a module
    return [base] + [f"{base}.{a.name}" for a in node.names]


def test_no_import_cycles_and_no_function_level_imports() -> None:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    lazy: list[str] = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        is_pkg = path.name == "__init__.py"
        for node in tree.body:  # module level, including `if TYPE_CHECKING` blocks' absence
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[mod] |= {t for t in _resolve(mod, node, is_pkg) if t in mods and t != mod}
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(fn):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        name = ("." * getattr(sub, "level", 0) + (sub.module or "")) if isinstance(sub, ast.ImportFrom) \
                            else sub.names[0].name
                        if name.split(".")[0] not in LAZY_OK and name not in LAZY_OK and not mod.startswith("vbg.train"):
                            lazy.append(f"{mod}: {name}")
    assert not lazy, f"function-level imports of light modules: {lazy}"
    # a module importing a package also runs the package's __init__
    for mod in list(graph):
        for dep in list(graph[mod]):
            parts = dep.split(".")
            graph[mod] |= {".".join(parts[:i]) for i in range(2, len(parts))
                           if ".".join(parts[:i]) in mods and ".".join(parts[:i]) != mod}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1 and not m.startswith(d + "."):  # a submodule importing its own package is fine
                cycle = stack[stack.index(d):] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_extension_lists_live_in_one_place() -> None:
    hits = [p for p in (ROOT / "vbg").rglob("*.py")
            if "IMAGE_EXTS =" in p.read_text() or "VIDEO_EXTS =" in p.read_text()]
    assert [p.relative_to(ROOT).as_posix() for p in hits] == ["vbg/io/files.py"]


# --- the pipeline factory ---------------------------------------------------------------------
def test_make_pipeline_is_cpu_for_a_cpu_backend(red_model: Path) -> None:
    be = OnnxRuntimeBackend(ModelSpec.load(red_model))
    assert be.device == "cpu"
    assert type(make_pipeline(Settings(bg="color:#00ff00"), be)) is Pipeline


def test_make_pipeline_is_gpu_for_a_cuda_backend(red_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend on a CUDA device gets the GPU pipeline; the GPU edge is faked: the CUDA kernels run
    in the CPU emulation (tests/cuda_emu.py) and the device query says an H100 is there."""
    if not cuda_emu.available():
        pytest.skip("no g++ for the kernel emulation")
    from vbg.gpu.pipeline import GpuPipeline

    cp, cpx = cuda_emu.make_cupy()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(sys.modules, "cupyx", cpx)
    h100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 81000)
    monkeypatch.setattr(gpu_device, "gpu_available", lambda: True)
    monkeypatch.setattr(gpu_device, "probe_gpu", lambda index=0: h100)
    monkeypatch.setattr("vbg.gpu.pipeline.probe_gpu", lambda index=0: h100)
    be = OnnxRuntimeBackend(ModelSpec.load(red_model))
    be.device = "cuda"  # what onnxruntime-gpu's CUDA provider reports
    settings = Settings(bg="color:#00ff00", smoothing=0.0)
    gpu = make_pipeline(settings, be)
    assert isinstance(gpu, GpuPipeline)
    frame, gt = disc_frame(160, 120, 80, 60, 30)
    got, want = gpu.process(frame), Pipeline(settings, be).process(frame)
    assert got.frame is not None and want.frame is not None
    assert np.abs(got.frame.astype(int) - want.frame.astype(int)).max() <= 1


# --- sinks ------------------------------------------------------------------------------------
def test_a_new_sink_is_one_class_and_one_registry_line(red_model: Path, tmp_path: Path) -> None:
    from vbg.apps.batch import convert_video
    from vbg.sinks import SinkContext, SinkKind, register_sink, sink_kind

    class NpzSink:
        """Every composited frame and its timestamp, in one .npz at close."""

        watched = True

        def __init__(self, path: Path, ctx: SinkContext) -> None:
            self.path, self.frames, self.pts = path, [], []

        def write(self, out: Any, pts: int | None = None) -> None:
            self.frames.append(out.frame)
            self.pts.append(pts)

        def close(self) -> None:
            with open(self.path, "wb") as fh:  # the temporary name: renamed when complete
                np.savez(fh, frames=np.stack(self.frames), pts=np.array(self.pts))

        def abort(self) -> None:
            pass

    register_sink((".npz",), SinkKind("npz", NpzSink, "file"))
    assert sink_kind("x/out.npz").name == "npz"
    clip = make_clip(tmp_path / "in.mp4", frames=9, audio="aac")
    stats = convert_video(clip, tmp_path / "out.npz", Settings(model=str(red_model), bg="color:#00ff00"))
    data = np.load(tmp_path / "out.npz")
    pts = list(data["pts"])
    assert stats.frames == 9 and data["frames"].shape == (9, 240, 320, 3)
    assert pts[0] == 0 and all(b > a for a, b in zip(pts, pts[1:]))  # the input's own timestamps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.npz"]  # no temporary left


def test_sink_kinds_by_extension_and_scheme() -> None:
    from vbg.sinks import SinkKind, register_sink, sink_kind

    assert sink_kind("a.MP4").name == "video" and sink_kind("out/%06d.png").name == "png-sequence"
    assert sink_kind("C:\\videos\\a.mkv").name == "video"  # a drive letter is not a scheme
    assert sink_kind("a.xyz") is None
    register_sink(("rtmpx:",), SinkKind("rtmpx", lambda p, c: None, "stream"))  # type: ignore[arg-type,return-value]
    assert sink_kind("rtmpx://host/live").name == "rtmpx"


# --- backgrounds ------------------------------------------------------------------------------
def test_background_registry_and_transparency(tmp_path: Path) -> None:
    assert set(bgs.KINDS) == {"image", "video", "blur", "color", "none"}
    assert [k for k, c in bgs.KINDS.items() if c.transparent] == ["none"]
    assert isinstance(bgs.open_background("color:#ff0000"), bgs.ColorBackground)

    class Stripes(bgs.Background):
        kind = "stripes"
        stored = True

        @classmethod
        def open(cls, spec: bgs.BackgroundSpec) -> bgs.Background:
            return cls()

        def get(self, frame: np.ndarray, out: np.ndarray | None = None, *, pyramid: Any = None) -> np.ndarray:
            img = np.zeros_like(frame)
            img[::2] = 255
            return img

    bgs.KINDS["stripes"] = Stripes
    try:
        bg = bgs.open_background(bgs.BackgroundSpec("stripes"))
        assert bg.get(np.zeros((4, 4, 3), np.uint8))[0, 0, 0] == 255
    finally:
        del bgs.KINDS["stripes"]


def test_batch_opens_the_background_once(red_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vbg.apps import batch

    clip = make_clip(tmp_path / "in.mp4", frames=4, audio=None)
    (tmp_path / "photos").mkdir()
    for i in range(3):
        import cv2

        cv2.imwrite(str(tmp_path / "photos" / f"{i}.png"), disc_frame(96, 72, 48, 36, 15)[0])
    make_clip(tmp_path / "photos" / "clip.mp4", frames=3, audio=None)
    opened: list[str] = []
    real = bgs.ImageBackground.open.__func__  # type: ignore[attr-defined]

    def counting(cls: Any, spec: bgs.BackgroundSpec) -> bgs.Background:
        opened.append(str(spec.path))
        return real(cls, spec)

    monkeypatch.setattr(bgs.ImageBackground, "open", classmethod(counting))
    batch.convert(clip, tmp_path / "out.mp4", model=str(red_model), bg="beach")
    assert len(opened) == 1
    batch.convert(tmp_path / "photos", tmp_path / "outs", model=str(red_model), bg="beach")  # 3 images, 1 video
    assert len(opened) == 2
    assert sorted(p.name for p in (tmp_path / "outs").iterdir()) == ["0.png", "1.png", "2.png", "clip.mp4"]


# --- one video reader, with rotation ------------------------------------------------------------
def test_camera_file_and_video_background_are_turned_upright(tmp_path: Path) -> None:
    """The camera file reader and the video background get the same upright pixels as the batch
    decoder (whose rotation is checked against the players' in test_batch_video)."""
    from vbg.io.capture import FileReader
    from vbg.io.decode import DecodedFrame, VideoDecoder

    phone = make_clip(tmp_path / "phone.mp4", width=320, height=240, frames=4, audio=None, rotation=90)
    with VideoDecoder(phone, audio=False) as dec:
        upright = next(f for f in dec if isinstance(f, DecodedFrame)).image
    assert upright.shape == (320, 240, 3)  # portrait
    reader = FileReader(phone)
    img, _ = reader.read()
    reader.close()
    assert reader.size == (240, 320) and np.array_equal(img, upright)
    bg = bgs.open_background(str(phone))
    try:
        pic = bg.get(np.zeros((320, 240, 3), np.uint8))  # the frame's own size: cover-fit is the identity
    finally:
        bg.close()
    assert np.array_equal(pic, upright)


# --- recurrent models ------------------------------------------------------------------------
def test_a_stateful_spec_is_checked() -> None:
    d = {"name": "r", "onnx": "r.onnx", "input": {"name": "x", "width": 8, "height": 8},
         "output": {"name": "y"}, "state": [{"input": "h", "output": "h_out", "shape": [1, 1, 8, 8]}]}
    spec = ModelSpec.from_dict(d)
    assert spec.state[0].shape == (1, 1, 8, 8) and ModelSpec.from_dict(spec.to_dict()).state == spec.state
    with pytest.raises(VbgError, match="state shape needs positive sizes"):
        ModelSpec.from_dict({**d, "state": [{"input": "h", "output": "o", "shape": [1, 0]}]})
    with pytest.raises(VbgError, match="runs at one input size"):
        ModelSpec.from_dict({**d, "input": {**d["input"], "orientation": "match"}})

