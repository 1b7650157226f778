"""Regression tests for what a code review of the loop, pipeline and batch found."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import pytest
from conftest import disc_frame, make_red_model
from media import make_clip

from vbg.apps.cli import main
from vbg.backends.onnxruntime import OnnxRuntimeBackend
from vbg.errors import VbgError
from vbg.loop import LiveLoop
from vbg.pipeline import Pipeline
from vbg.settings import Settings
from vbg.spec import ModelSpec
from vbg.stages.backgrounds import ColorBackground


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VBG_CONFIG_DIR", str(tmp_path / "user-config"))


class Recorded(ColorBackground):
    closed = 0

    def close(self) -> None:
        Recorded.closed += 1


def wait_frames(loop: LiveLoop, n: int, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while loop.stats().frames < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert loop.stats().frames >= n


def test_a_handed_over_background_is_closed_by_whoever_holds_it(red_model: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, audio=None)
    s = Settings(model=str(red_model), camera=str(clip), bg="color:#00ff00")
    Recorded.closed = 0
    loop = LiveLoop(s, loop_file=True)
    loop.start()
    try:
        wait_frames(loop, 2)
        loop.update(s.replace(bg="color:#ff0000"), Recorded((0, 0, 255)))
        wait_frames(loop, loop.stats().frames + 3)
        loop.update(s.replace(bg="color:#0000ff"), Recorded((255, 0, 0)))  # replaces the first
        wait_frames(loop, loop.stats().frames + 3)
        assert Recorded.closed == 1  # the first, once the second took its place
        loop.update(s.replace(bg="color:#0000ff"), Recorded((255, 0, 0)))  # the same bg: not needed
        wait_frames(loop, loop.stats().frames + 3)
        assert Recorded.closed == 2
    finally:
        loop.stop()
    assert Recorded.closed == 3  # the one in use, with the pipeline


def test_a_model_picked_while_the_camera_is_gone_is_used_when_it_is_back(red_model: Path, tmp_path: Path) -> None:
    other = make_red_model(tmp_path / "other.onnx", width=96, height=64)
    cam = make_clip(tmp_path / "cam.mp4", frames=8, audio=None)
    spare = tmp_path / "spare.mp4"
    spare.write_bytes(cam.read_bytes())
    msgs: list[str] = []
    loop = LiveLoop(Settings(model=str(red_model), camera=str(cam)), loop_file=True, on_error=msgs.append)
    loop.start()
    try:
        wait_frames(loop, 2)
        cam.unlink()
        deadline = time.monotonic() + 5
        while not any("retrying" in m for m in msgs) and time.monotonic() < deadline:
            time.sleep(0.05)
        loop.update(loop.settings.replace(model=str(other)))
        time.sleep(0.8)  # picked up during the retries
        spare.rename(cam)
        wait_frames(loop, loop.stats().frames + 3)
        assert loop.settings.model == str(other)
        assert loop._backend is not None and loop._backend.spec.size == (96, 64)
    finally:
        loop.stop()


def test_edge_settings_show_at_once_on_a_still_picture(red_model: Path) -> None:
    pipe = Pipeline(Settings(bg="color:#00ff00", smoothing=0.0), OnnxRuntimeBackend(ModelSpec.load(red_model)))
    frame = disc_frame(160, 120, 80, 60, 30)[0]
    for _ in range(5):
        before = pipe.process(frame)
    assert not before.model_ran
    pipe.update(pipe.settings.replace(threshold=0.999, slope=100.0))
    after = pipe.process(frame)
    assert not after.model_ran and (after.alpha > 0.5).sum() < (before.alpha > 0.5).sum()


def test_the_longest_gap_without_the_model_is_in_seconds(red_model: Path) -> None:
    pipe = Pipeline(Settings(bg="color:#00ff00"), OnnxRuntimeBackend(ModelSpec.load(red_model)), fps=10.0)
    assert pipe.gate.max_gap == 5
    pipe.set_rate(60.0)
    assert pipe.gate.max_gap == 30


def test_mirroring_resets_what_was_learnt_of_the_unmirrored_picture(red_model: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, audio=None)
    loop = LiveLoop(Settings(model=str(red_model), camera=str(clip), bg="color:#00ff00"), loop_file=True)
    loop.start()
    try:
        wait_frames(loop, 2)
        assert loop._pipeline is not None
        resets: list[int] = []
        real_reset = loop._pipeline.reset
        monkeypatch.setattr(loop._pipeline, "reset", lambda: (resets.append(1), real_reset()))  # a spy
        loop.update(loop.settings.replace(mirror=True))
        wait_frames(loop, loop.stats().frames + 2)
        assert resets
    finally:
        loop.stop()


def test_live_ends_with_143_on_sigterm(red_model: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, audio=None)
    p = subprocess.Popen([sys.executable, "-m", "vbg", "live", "--camera", str(clip), "--loop", "--model",
                          str(red_model), "--no-virtual-cam", "--no-window"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "VBG_CONFIG_DIR": str(tmp_path)})
    time.sleep(3.0)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 143, err
    assert out.startswith("fps=") and err.strip().splitlines()[-1].startswith("vbg: stopped by SIGTERM")


def test_a_bad_image_in_a_folder_does_not_stop_its_videos(red_model: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "broken.jpg").write_bytes(b"not a picture")
    cv2.imwrite(str(d / "ok.png"), disc_frame(64, 48, 32, 24, 10)[0])
    make_clip(d / "v.mp4", frames=4, audio=None)
    rc = main(["-i", str(d), "-o", str(tmp_path / "out"), "--model", str(red_model), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "broken.jpg" in err and "1 other image was written" in err and "the 1 video was converted" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok.png", "v.mp4"]


@pytest.mark.parametrize("line,expect", [("quality = 20.7", "quality"), ("threshold = true", "threshold"),
                                         ("mirror = 3", "mirror"), ('bg = ["a"]', "bg")])
def test_config_values_of_the_wrong_type_are_refused(tmp_path: Path, line: str, expect: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[vbg]\n{line}\n")
    with pytest.raises(VbgError, match=f"setting '{expect}' in {cfg}"):
        Settings.load(cfg)
    cfg.write_text("[vbg]\ncamera = 2\nquality = 23.0\nthreshold = 1\n")
    s = Settings.load(cfg)
    assert (s.camera, s.quality, s.threshold) == ("2", 23, 1.0)


def test_the_settings_file_is_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """TOML is UTF-8. Under a locale whose text encoding is not (Windows' cp1252, or C without UTF-8 mode),
    a background path with a non-ASCII name must still save and load unchanged."""
    cfg = tmp_path / "settings.toml"
    code = ("import sys; from vbg.settings import Settings; "
            "Settings(bg='/home/zo\\u00eb/\\u5bb6.jpg').save(sys.argv[1]); "
            "print(ascii(Settings.load(sys.argv[1]).bg))")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    res = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ascii("/home/zo\u00eb/\u5bb6.jpg")
    assert "zo\u00eb" in cfg.read_text(encoding="utf-8") and not list(tmp_path.glob("*.tmp"))


def test_silencing_image_library_messages_from_two_threads_restores_stderr() -> None:
    """fd 2 is the process's: when two threads' silenced windows overlap (A in, B in, A out, B out),
    stderr must end where it was, not on /dev/null for the rest of the session."""
    from vbg.io import files

    before = os.fstat(2)
    a, b = files._quiet_stderr(), files._quiet_stderr()
    a.__enter__()
    b.__enter__()
    assert os.path.samestat(os.fstat(2), os.stat(os.devnull))
    a.__exit__(None, None, None)
    assert os.path.samestat(os.fstat(2), os.stat(os.devnull))  # B is still inside
    b.__exit__(None, None, None)
    assert os.path.samestat(os.fstat(2), before)


def test_no_audio_keeps_subtitles(red_model: Path, tmp_path: Path) -> None:
    import av
    from test_reliability import _with_tracks

    src = _with_tracks(make_clip(tmp_path / "a.mp4", frames=20), tmp_path / "t.mkv")
    assert main(["-i", str(src), "-o", str(tmp_path / "o.mkv"), "--model", str(red_model), "--no-audio",
                 "--no-progress"]) == 0
    with av.open(str(tmp_path / "o.mkv")) as c:
        assert not c.streams.audio and len(c.streams.subtitles) == 1


def test_nvenc_constant_quality_is_never_automatic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fractions import Fraction

    from vbg.sinks import video

    monkeypatch.setattr(video, "pick_h264_encoder", lambda w, h: "h264_nvenc")
    sink = video.VideoSink(tmp_path / "b.mp4", ext=".mp4", mode="composite", width=64, height=48, quality=0,
                           rate=Fraction(30), time_base=Fraction(1, 30), nvenc=True)
    assert sink._v.options["cq"] == "1"
    sink.abort()


def test_stop_is_idempotent_and_releases_everything(red_model: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=10, audio=None)
    # stopped while running: the camera thread ends, the model session closes
    loop = LiveLoop(Settings(model=str(red_model), camera=str(clip)), loop_file=True)
    loop.start(background=True)
    wait_frames(loop, 1)
    cap, be, proc = loop.capture, loop._backend, loop._thread
    assert cap is not None and be is not None and proc is not None
    cam = cap._thread
    assert cam is not None and cam.is_alive() and be.session is not None  # type: ignore[attr-defined]
    loop.stop()
    loop.stop()
    assert not cam.is_alive() and not proc.is_alive() and be.session is None  # type: ignore[attr-defined]
    assert loop._backend is None and loop._pipeline is None and loop._capture is None


def test_stop_while_the_model_loads_releases_it_when_loaded(red_model: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=10, audio=None)
    loop = LiveLoop(Settings(model=str(red_model), camera=str(clip)), loop_file=True)
    entered, release = threading.Event(), threading.Event()
    made: list[Any] = []
    real = loop._make_pipeline

    def slow_load(*args: Any, **kwargs: Any) -> Any:  # a spy: a slow model load, then the real one
        entered.set()
        release.wait(5)
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(loop, "_make_pipeline", slow_load)
    loop.start(background=True)
    assert entered.wait(5)
    cap, proc = loop.capture, loop._thread
    assert cap is not None and proc is not None
    threading.Timer(0.3, release.set).start()  # the load finishes while stop() waits
    loop.stop()
    assert not proc.is_alive() and made
    backend = made[0][0]
    assert backend.session is None  # loaded after stop was asked, and closed
    assert cap._thread is None  # the camera was never started
    assert loop._backend is None and loop._pipeline is None and loop._capture is None
