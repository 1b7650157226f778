"""Live work only where the picture changes (the change gate, matte reuse, --max-fps), and auto-framing."""

from __future__ import annotations

import glob
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import BACKGROUND_BGR, disc_frame

from vbg.backends.onnxruntime import OnnxRuntimeBackend
from vbg.loop import LiveLoop
from vbg.pipeline import Pipeline
from vbg.settings import Settings
from vbg.spec import ModelSpec
from vbg.stages.frame import AutoFramer, Crop
from vbg.stages.segment import ChangeGate


def noisy(frame: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    return np.clip(frame.astype(np.float32) + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        s.options = {"crf": "18", "preset": "ultrafast"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path


# --- the gate ---------------------------------------------------------------------------------
def test_gate_runs_on_change_and_at_least_every_max_gap() -> None:
    rng = np.random.default_rng(0)
    gray = cv2.cvtColor(disc_frame(160, 120, 80, 60, 30)[0], cv2.COLOR_BGR2GRAY)
    gate = ChangeGate("auto", max_gap=15)
    runs = [gate.needs(noisy(gray, rng)) for _ in range(46)]  # a still picture with sensor noise
    assert [i for i, r in enumerate(runs) if r] == [0, 15, 30, 45]
    moved = cv2.cvtColor(disc_frame(160, 120, 84, 60, 30)[0], cv2.COLOR_BGR2GRAY)  # the disc moved 4 px
    assert gate.needs(moved) and not gate.still
    assert not gate.needs(noisy(moved, rng)) and gate.still
    cut = np.full_like(gray, 30)  # another scene
    assert gate.needs(cut)
    every = ChangeGate("3")
    assert [every.needs(gray) for _ in range(7)] == [True, False, False, True, False, False, True]
    assert all(ChangeGate("1").needs(gray) for _ in range(5))


def test_slow_drift_adds_up_to_a_run() -> None:
    """Compared with the frame the model last ran on, not the previous frame: 1 px a frame still triggers."""
    gate = ChangeGate("auto", max_gap=1000)
    runs = []
    for i in range(12):
        g = cv2.cvtColor(disc_frame(160, 120, 60 + i, 60, 30)[0], cv2.COLOR_BGR2GRAY)
        runs.append(gate.needs(g))
    assert runs[0] and sum(runs) >= 3


def test_still_scene_reuses_mask_and_matte(red_model: Path) -> None:
    be = OnnxRuntimeBackend(ModelSpec.load(red_model))
    auto = Pipeline(Settings(bg="color:#00ff00"), be)
    every = Pipeline(Settings(bg="color:#00ff00", model_every="1"), be)
    rng = np.random.default_rng(1)
    frame, gt = disc_frame(320, 240, 160, 120, 60)
    outs = []
    for _ in range(30):
        f = noisy(frame, rng)
        outs.append((auto.process(f), every.process(f)))
    assert auto.model_runs == 2 and every.model_runs == 30
    assert sum(o.model_ran for o, _ in outs) == 2 and outs[0][0].model_ran
    for a, b in outs[10:]:
        assert np.abs(a.alpha - b.alpha).max() < 0.05  # the same picture, to within the sensor noise
    assert outs[-1][0]._alpha is outs[-2][0]._alpha  # the matte itself was reused, not recomputed


def _recurrent_model(path: Path) -> Path:
    """A tiny recurrent ONNX model: logits = 12 (R - B) + h, and h grows by 1 each frame."""
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.zeros((1, 3, 1, 1), np.float32)
    w[0, 0], w[0, 2] = 12.0, -12.0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["conv"]),
         helper.make_node("Add", ["conv", "h"], ["mask"]),
         helper.make_node("Add", ["mask", "one"], ["step"]),
         helper.make_node("Sub", ["step", "conv"], ["h_out"])],
        "recurrent_red",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 48, 64]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 1, 48, 64])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 48, 64]),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, 1, 48, 64])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "one")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    spec = {"name": "recurrent", "onnx": path.name,
            "input": {"name": "input", "width": 64, "height": 48, "layout": "NCHW", "color": "RGB",
                      "scale": 255.0, "mean": [0, 0, 0], "std": [1, 1, 1]},
            "output": {"name": "mask", "kind": "logits", "layout": "NCHW", "person_channel": 0},
            "state": [{"input": "h", "output": "h_out", "shape": [1, 1, 48, 64]}]}
    path.with_suffix(".json").write_text(json.dumps(spec))
    return path.with_suffix(".json")


def test_recurrent_models_run_on_every_frame(tmp_path: Path) -> None:
    # a real recurrent ONNX model through the real backend: the gate never skips it, its state carries
    # from frame to frame, and reset() starts it again
    be = OnnxRuntimeBackend(ModelSpec.load(_recurrent_model(tmp_path / "rec.onnx")))
    pipe = Pipeline(Settings(bg="color:#00ff00", smoothing=0.0), be)
    grey = np.full((120, 160, 3), 128, np.uint8)  # R == B: the state alone decides
    means = [float(pipe.process(grey).mask.mean()) for _ in range(10)]
    assert pipe.model_runs == 10  # a still scene, and still the model ran every frame
    assert means[0] == pytest.approx(0.5, abs=0.01) and means[-1] > 0.99  # sigmoid(0), then sigmoid(9)
    assert all(b > a for a, b in zip(means[:4], means[1:5]))
    pipe.reset()
    assert float(pipe.process(grey).mask.mean()) == pytest.approx(0.5, abs=0.01)


def _missed_motion(shared_dir: Path) -> tuple[float, int, int]:
    """Runs the default model with and without skipping on four real webcam clips (signing hands)
    at 720p; returns the worst frame's stale share (the pixels where the two masks differ and the
    picture moved since the frame the skipping pipeline last ran the model on, over the person's
    area), the model runs when skipping, and the frames."""
    from vbg.io.decode import VideoFrames
    from vbg.models import resolve_model

    be = OnnxRuntimeBackend(resolve_model(None))
    margin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    worst, runs, frames = 0.0, 0, 0
    for clip in sorted(glob.glob(str(shared_dir / "videos" / "webcam" / "*.mkv")))[:4]:
        auto = Pipeline(Settings(bg="color:#00ff00"), be)
        every = Pipeline(Settings(bg="color:#00ff00", model_every="1"), be)
        ref = None
        for img, _ in VideoFrames(clip):
            f = cv2.resize(img, (1280, 720))
            grey = cv2.GaussianBlur(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (5, 5), 0)
            before = auto.model_runs
            a, b = auto.process(f).alpha > 0.5, every.process(f).alpha > 0.5
            if auto.model_runs > before or ref is None:
                ref = grey
            moved = cv2.dilate((cv2.absdiff(grey, ref) >= 10).astype(np.uint8), margin) > 0
            worst = max(worst, float(((a ^ b) & moved).sum() / max(1, b.sum())))
            frames += 1
        runs += auto.model_runs
    return worst, runs, frames


@pytest.mark.shared
def test_the_edge_follows_a_moving_hand_on_real_clips(shared_dir: Path) -> None:
    """On real webcam clips, skipping the model where nothing changed leaves no stale mask where the
    picture moved: on every frame, under 0.5 % of the person's area differs from running the model
    on every frame there.

    Differences where the picture is still are the model's own frame-to-frame noise (a model that
    flips a half-visible face on sensor noise differs from itself), so they are not counted here;
    benchmarks/bench_flicker.py measures them. The whole-frame IoU that this test asserted before
    (>= 0.99) fails for the MediaPipe peer too (0.977 on these clips) and for the m6 and m7 weights
    (0.983, 0.980: a bystander's face at the frame's edge, whose input moved by under 10 levels)."""
    worst, runs, frames = _missed_motion(shared_dir)
    assert worst < 0.005, worst  # shipped gate: 0.18 % (m7), 0.15 % (m6)
    assert runs < frames  # some work was saved even on moving clips


@pytest.mark.shared
def test_a_lax_gate_is_caught_by_the_moving_hand_check(shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a gate that waits for 2 % of the thumbnail to change (20x the
    shipped share) leaves a moving hand's old mask in place (1.4 % of the person's area)."""
    monkeypatch.setattr(ChangeGate, "SHARE", 0.02)
    worst, _, _ = _missed_motion(shared_dir)
    assert worst >= 0.005, worst


# --- --max-fps ----------------------------------------------------------------------------------
def test_max_fps_caps_processing(red_model: Path, tmp_path: Path) -> None:
    frames = [disc_frame(160, 120, 40 + i, 60, 25, seed=i)[0] for i in range(60)]
    clip = write_clip(tmp_path / "cam.mp4", frames)
    loop = LiveLoop(Settings(model=str(red_model), camera=str(clip), bg="color:#00ff00", max_fps=10.0))
    loop.start()
    assert loop.wait(10)
    st = loop.stats()
    assert 7.5 <= st.fps <= 11.0 and 12 <= st.frames <= 23, st  # 2 s of camera at 30 fps -> ~20 frames
    assert st.dropped >= 30


# --- auto-framing -------------------------------------------------------------------------------
def test_framing_target_puts_head_room_above_the_person() -> None:
    framer = AutoFramer()
    mask = np.zeros((90, 160), np.float32)
    mask[30:90, 60:100] = 1.0  # a person from y=30 down through the bottom edge, in the middle
    t = framer.target(mask, 1280, 720)
    x0, y0, w, h = t.box(1280, 720)
    top = 30 * 8  # the person's top in frame pixels
    assert abs((top - y0) / h - AutoFramer.HEAD_ROOM) < 0.02
    assert abs(t.cx - 640) < 1 and h < 720 and abs(w / h - 1280 / 720) < 1e-6
    assert framer.target(np.zeros((90, 160), np.float32), 1280, 720) == Crop(640, 360, 720)  # nobody: all


def test_framing_follows_smoothly_and_holds_still() -> None:
    framer = AutoFramer(fps=30)
    mask = np.zeros((90, 160), np.float32)
    mask[30:90, 20:60] = 1.0  # on the left
    first = framer.step(mask, 1280, 720)
    assert framer.step(mask, 1280, 720) == first  # still: not a pixel of movement
    moved = np.roll(mask, 70, axis=1)  # steps to the right
    xs = [framer.step(moved, 1280, 720).cx for _ in range(60)]
    steps = np.diff([first.cx] + xs)
    assert (steps >= -1e-6).all()  # never back: critically damped, no overshoot
    assert steps.max() < 60  # no jump
    assert abs(xs[-1] - framer.target(moved, 1280, 720).cx) < 5  # arrived within 2 s
    # small shifts (breathing, talking) stay inside the dead zone: the crop does not move at all
    before = framer.step(moved, 1280, 720)
    wobble = np.zeros_like(moved)
    wobble[32:90] = moved[30:88]  # the head 2 mask rows (16 px) lower
    assert all(framer.step(wobble, 1280, 720) == before for _ in range(10))


def test_framed_output_keeps_its_size_and_alpha_follows(red_model: Path) -> None:
    be = OnnxRuntimeBackend(ModelSpec.load(red_model))
    pipe = Pipeline(Settings(bg="color:#00ff00", frame="auto"), be)
    frame, gt = disc_frame(640, 360, 160, 250, 60)  # low on the left
    out = pipe.process(frame)
    assert out.frame is not None and out.frame.shape == frame.shape and out.alpha.shape == (360, 640)
    # zoomed in on the disc: it fills more of the picture, and sits near the middle
    red = (out.frame[..., 2].astype(int) - out.frame[..., 0].astype(int)) > 60
    assert red.sum() > 1.5 * gt.sum()
    ys, xs = np.nonzero(red)
    assert abs(xs.mean() - 320) < 60
    assert np.abs((out.alpha > 0.5).astype(int) - red.astype(int)).mean() < 0.02


def test_batch_frame_auto_writes_the_input_size(red_model: Path, tmp_path: Path) -> None:
    from media import make_clip, probe

    from vbg.apps.cli import main

    clip = make_clip(tmp_path / "in.mp4", frames=12)
    assert main(["-i", str(clip), "-o", str(tmp_path / "out.mp4"), "--model", str(red_model), "--frame", "auto",
                 "--bg", "color:#00ff00", "--no-progress"]) == 0
    res = probe(tmp_path / "out.mp4")
    assert (res.width, res.height) == (320, 240) and len(res.frames) == 12


@pytest.mark.shared
def test_framing_holds_still_on_a_real_clip(shared_dir: Path) -> None:
    """A real webcam clip of a person signing: the crop may move when the person does, but it never
    jitters: frame to frame, it moves less than 2 pixels on most frames, and never jumps."""
    from vbg.io.decode import VideoFrames
    from vbg.models import resolve_model

    be = OnnxRuntimeBackend(resolve_model(None))
    clip = shared_dir / "videos" / "webcam" / "school.mkv"  # the stillest of the clips
    pipe = Pipeline(Settings(bg="color:#00ff00", frame="auto"), be)
    crops = []
    for img, _ in VideoFrames(clip):
        pipe.process(img)
        assert pipe.framer is not None and pipe.framer.crop is not None
        c = pipe.framer.crop
        crops.append((c.cx, c.cy, c.h))
    moves = np.abs(np.diff(np.array(crops), axis=0)).max(axis=1)
    assert np.median(moves) < 2.0 and moves.max() < 20.0, moves


def test_gate_and_background_on_a_people_free_frame(red_model: Path) -> None:
    """Nobody in view: the mask is empty, the composite is the background, and the framing shows it all."""
    be = OnnxRuntimeBackend(ModelSpec.load(red_model))
    pipe = Pipeline(Settings(bg="color:#00ff00", frame="auto"), be)
    empty = np.full((120, 160, 3), BACKGROUND_BGR, np.uint8)
    out = pipe.process(empty)
    assert out.model_ran  # the first frame always runs the model
    assert out.mask is not None and out.mask.max() < 0.1 and (out.alpha == 0).all()
    assert pipe.framer is not None and pipe.framer.crop == Crop(80, 60, 120)  # the whole frame
    assert out.frame is not None and (out.frame == (0, 255, 0)).all()
    # the same empty frame again: the gate skips the model, and nothing changes
    again = pipe.process(empty.copy())
    assert not again.model_ran and (again.alpha == 0).all() and pipe.framer.crop == Crop(80, 60, 120)


def test_change_check_matches_its_definition_on_colour_and_grey() -> None:
    """ChangeGate.changed: more than SHARE of the pixels changed by more than LEVEL in some channel
    (computed in OpenCV; checked against the plain NumPy definition, near the threshold)."""
    rng = np.random.default_rng(3)
    seen = set()
    for shape in [(160, 288, 3), (128, 224, 3), (7, 5, 3), (160, 288)]:
        for _ in range(40):
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            noise = rng.integers(-12, 13, shape) * (rng.random(shape) < rng.uniform(0.0, 0.01))
            b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
            d = np.abs(a.astype(int) - b.astype(int))
            d = d.max(axis=2) if d.ndim == 3 else d
            want = int(np.count_nonzero(d > ChangeGate.LEVEL)) > ChangeGate.SHARE * d.size
            assert ChangeGate.changed(a, b) == want
            seen.add(want)
    assert seen == {True, False}  # both sides of the threshold were tried
