"""The live loop and `vbg live`: a video file as the camera, a stand-in only at pyvirtualcam."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyvirtualcam
from conftest import PERSON_BGR
from test_capture import make_clip

from vbg.apps import cli
from vbg.loop import Delivery, LiveLoop
from vbg.settings import Settings
from vbg.sinks.vcam import LINUX_SETUP, VirtualCamSink, device_readers

SUMMARY = re.compile(r"^fps=(\d+\.\d) latency_ms_p50=(\d+\.\d) latency_ms_p95=(\d+\.\d) "
                     r"cpu_ms_per_frame=(\d+\.\d) model_runs=(\d+)$")
GREEN = (0, 255, 0)  # BGR of color:#00ff00
NO_DEVICE = ("'v4l2loopback' backend: No v4l2 loopback device found at /dev/video[0-99]. "
             "Did you run 'modprobe v4l2loopback'? See also pyvirtualcam's documentation.")


class FakeVirtualCamera:
    """Stand-in for pyvirtualcam.Camera (the v4l2loopback device is hardware we lack)."""

    instances: list[FakeVirtualCamera] = []

    def __init__(self, width: int, height: int, fps: float, *, fmt: Any = pyvirtualcam.PixelFormat.RGB,
                 device: str | None = None, **kw: Any) -> None:
        assert fmt == pyvirtualcam.PixelFormat.BGR  # we send BGR: no conversion on our side
        self.width, self.height, self.fps = width, height, fps
        self.device = device or "/dev/video7"
        self.frames: list[np.ndarray] = []
        self.closed = False
        self._lock = threading.Lock()
        FakeVirtualCamera.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        assert not self.closed
        assert frame.dtype == np.uint8 and frame.shape == (self.height, self.width, 3)
        assert frame.flags.c_contiguous
        with self._lock:
            self.frames.append(frame.copy())

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_vcam(monkeypatch: pytest.MonkeyPatch) -> type[FakeVirtualCamera]:
    FakeVirtualCamera.instances = []
    monkeypatch.setattr(pyvirtualcam, "Camera", FakeVirtualCamera)
    return FakeVirtualCamera


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VBG_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 320x240, 45 frames at 30 fps: a 1.5 s "camera"
    return make_clip(tmp_path_factory.mktemp("live") / "cam.mp4", n=45)


def check_composite(frame: np.ndarray, bg: tuple[int, int, int] = GREEN) -> None:
    """Person (the red disc, centre ~(160..178, 128), r 60) kept; background replaced."""
    person = frame[118:138, 165:175].reshape(-1, 3).astype(int)
    assert np.abs(person - PERSON_BGR).max() <= 12
    background = np.concatenate([frame[200:, :60].reshape(-1, 3), frame[200:, 270:].reshape(-1, 3)]).astype(int)
    assert np.abs(background - bg).max() <= 3


def test_vbg_live_sends_composited_frames_to_the_virtual_camera(
        clip: Path, red_model: Path, fake_vcam: type[FakeVirtualCamera], capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["live", "--camera", str(clip), "--bg", "color:#00ff00", "--model", str(red_model),
                   "--backend", "onnxruntime", "--no-window"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    m = SUMMARY.match(out.strip().splitlines()[-1])
    assert m, out
    fps, p50, p95, cpu_ms, runs = map(float, m.groups())
    assert 0 < p50 <= p95 and cpu_ms > 0 and 1 <= runs <= 45
    assert fps > 10  # 30 fps source; a busy 2-core box may drop some
    (cam,) = fake_vcam.instances
    assert (cam.width, cam.height, cam.fps) == (320, 240, 30) and cam.closed
    assert 20 <= len(cam.frames) <= 45  # latest-frame: never more than the source had
    for frame in cam.frames[:: max(1, len(cam.frames) // 8)]:
        check_composite(frame)


def test_no_virtual_camera_device_is_one_line_error(
        clip: Path, red_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def no_device(*args: Any, **kw: Any) -> None:
        raise RuntimeError(NO_DEVICE)  # what pyvirtualcam raises without v4l2loopback

    monkeypatch.setattr(pyvirtualcam, "Camera", no_device)
    rc = cli.main(["live", "--camera", str(clip), "--bg", "blur", "--model", str(red_model), "--no-window"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err == f"vbg: error: no virtual camera device found (run: {LINUX_SETUP}; or use --no-virtual-cam)\n"


@pytest.mark.skipif(any(Path("/dev").glob("video*")), reason="a video device exists here")
def test_real_pyvirtualcam_without_device_maps_to_setup_hint() -> None:
    with pytest.raises(Exception) as err:
        VirtualCamSink(320, 240, 30)
    assert "no virtual camera device found" in str(err.value) and LINUX_SETUP in str(err.value)


def test_no_camera_is_one_line_error(red_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["live", "--camera", "99", "--model", str(red_model), "--no-window", "--no-virtual-cam"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.startswith("vbg: error: camera 99 not found") and err.count("\n") == 1


def test_a_frame_of_another_shape_is_fitted_not_stretched(fake_vcam: type[FakeVirtualCamera]) -> None:
    """After the camera or its resolution changes, the device keeps its size: a 4:3 picture into a 16:9
    device gets black bars at the sides, and the people in the call do not see a squashed face."""
    from vbg.sinks.vcam import VirtualCamSink

    sink = VirtualCamSink(320, 180, 30)
    frame = np.full((240, 320, 3), 200, np.uint8)  # 4:3, grey
    frame[:, :160] = (0, 0, 255)  # the left half red: where it ends shows the horizontal scale
    sink.send(frame)
    sink.close()
    out = fake_vcam.instances[0].frames[0]
    assert out.shape == (180, 320, 3)
    cols = np.flatnonzero(out.max(axis=(0, 2)) > 0)
    assert (cols[0], cols[-1]) == (40, 279)  # 240 wide, centred: 4:3 kept
    red = np.flatnonzero((out[90, :, 2] > 200) & (out[90, :, 0] < 50))
    assert abs(red[0] - 40) <= 1 and abs(red[-1] - 159) <= 1


def test_no_virtual_cam_runs_the_same_loop(clip: Path, red_model: Path, fake_vcam: type[FakeVirtualCamera],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["live", "--camera", str(clip), "--model", str(red_model), "--no-window", "--no-virtual-cam",
                   "--frames", "12", "--loop"])
    out, _ = capsys.readouterr()
    assert rc == 0 and SUMMARY.match(out.strip())
    assert fake_vcam.instances == []
    # the flag mends a bad virtual_cam in the config file, as every setting flag does
    bad = clip.with_name("bad.toml")
    bad.write_text('[vbg]\nvirtual_cam = "maybe"\n')
    args = ["live", "--camera", str(clip), "--model", str(red_model), "--no-window", "--frames", "2", "--config", str(bad)]
    assert cli.main(args) == 2 and "virtual_cam" in capsys.readouterr().err
    assert cli.main([*args, "--no-virtual-cam"]) == 0 and fake_vcam.instances == []


def test_loop_applies_settings_from_next_frame_without_restart(clip: Path, red_model: Path, tmp_path: Path) -> None:
    other = make_clip(tmp_path / "other.mp4", n=30, w=256, h=192)
    deliveries: list[Delivery] = []
    changed = threading.Event()
    settings = Settings(model=str(red_model), backend="onnxruntime", bg="color:#00ff00", camera=str(clip))
    loop = LiveLoop(settings, loop_file=True, on_delivery=deliveries.append)
    loop.start()
    try:
        cap = loop.capture
        while len(deliveries) < 5:
            assert not loop.wait(0.05), loop.end_reason
        loop.update(settings.replace(bg="color:#0000ff"))  # blue: BGR (255, 0, 0)
        n0 = len(deliveries)
        while len(deliveries) < n0 + 5:
            assert not loop.wait(0.05), loop.end_reason
        assert loop.capture is cap and cap is not None and cap.running  # nothing restarted
        new = [d for d in deliveries if d.settings.bg == "color:#0000ff"]
        assert new and deliveries[-1] in new
        check_composite(deliveries[-1].output.frame, (255, 0, 0))  # type: ignore[arg-type]
        check_composite(deliveries[0].output.frame)  # type: ignore[arg-type]
        # a new camera is opened on the processing thread
        loop.update(loop.settings.replace(camera=str(other)))
        while not any(d.image.shape == (192, 256, 3) for d in deliveries[-3:]):
            assert not loop.wait(0.05), loop.end_reason
        assert loop.capture is not cap and not cap.running
        changed.set()
        stats = loop.stats()
        assert stats.frames == len(deliveries) and stats.captured >= stats.frames
        assert all(0 < d.latency_ms < 2000 for d in deliveries)
        assert set(stats.stage_ms) >= {"segment", "matte", "composite"}
    finally:
        loop.stop()
    assert changed.is_set() and loop.end_reason == "stopped" and not loop.lost


def test_a_model_that_fails_to_load_keeps_the_running_one_and_the_rest_of_the_change(
        red_model: Path, tmp_path: Path) -> None:
    """Picking a model that cannot load must not block later changes: the running model stays, the rest of
    the same change applies, the error is reported once, and on_kept says what is in force."""
    cam = make_clip(tmp_path / "cam.mp4", n=8, fps=60)
    errors: list[str] = []
    kept: list[Settings] = []
    delivered: list[Delivery] = []
    loop = LiveLoop(Settings(model=str(red_model), camera=str(cam), bg="color:#00ff00", smoothing=0.0),
                    loop_file=True, on_error=errors.append, on_kept=kept.append, on_delivery=delivered.append)
    loop.start()
    try:
        broken = tmp_path / "broken.onnx"
        broken.write_bytes(b"not an onnx file")
        broken.with_suffix(".json").write_text(red_model.read_text().replace('"red.onnx"', '"broken.onnx"'))
        loop.update(loop.settings.replace(model=str(broken.with_suffix(".json")), bg="color:#ff00ff"))
        deadline = time.monotonic() + 10
        while not kept and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(kept) == 1 and kept[0].model == str(red_model) and kept[0].bg == "color:#ff00ff"
        assert len(errors) == 1 and "broken.onnx" in errors[0]
        assert loop.settings == kept[0] and loop.running
        deadline = time.monotonic() + 10
        while not any(d.settings.bg == "color:#ff00ff" for d in delivered) and time.monotonic() < deadline:
            time.sleep(0.02)
        d = next(d for d in delivered if d.settings.bg == "color:#ff00ff")
        check_composite(d.output.frame, (255, 0, 255))  # the new background, by the model that runs
        n = len(delivered)
        loop.update(kept[0].replace(bg="color:#0000ff"))  # a later change applies, with no new error
        deadline = time.monotonic() + 10
        while not any(d.settings.bg == "color:#0000ff" for d in delivered[n:]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any(d.settings.bg == "color:#0000ff" for d in delivered[n:]) and len(errors) == 1
    finally:
        loop.stop()


def test_source_lost_ends_the_session_cleanly(red_model: Path, tmp_path: Path) -> None:
    doomed = make_clip(tmp_path / "doomed.mp4", n=8, fps=60)
    ends: list[tuple[str, bool]] = []
    loop = LiveLoop(Settings(model=str(red_model), camera=str(doomed)), loop_file=True, reconnect=False,
                    on_end=lambda reason, lost: ends.append((reason, lost)))
    loop.start()
    doomed.unlink()
    try:
        assert loop.wait(5.0)
    finally:
        loop.stop()
    assert loop.lost and "doomed.mp4" in (loop.end_reason or "") and "not found" in (loop.end_reason or "")
    assert ends == [(loop.end_reason, True)]
    stats = loop.stats()  # counts survive the stop
    assert stats.captured >= stats.frames >= 1 and stats.captured == stats.frames + stats.dropped


def test_an_unexpected_error_mid_session_ends_it_and_releases_the_camera(red_model: Path, tmp_path: Path) -> None:
    """A bug outside the pipeline (here the display callback) must not leave a frozen session holding
    the camera: it ends with the reason, on_end fires, and the capture and model are released."""
    cam = make_clip(tmp_path / "cam.mp4", n=8, fps=60)
    ends: list[tuple[str, bool]] = []
    delivered: list[int] = []

    def show(d: Delivery) -> None:
        delivered.append(d.captured.seq)
        if len(delivered) == 3:
            raise RuntimeError("display went away")

    loop = LiveLoop(Settings(model=str(red_model), camera=str(cam)), loop_file=True, on_delivery=show,
                    on_end=lambda reason, lost: ends.append((reason, lost)))
    loop.start()
    try:
        assert loop.wait(5.0)
        deadline = time.monotonic() + 5
        while loop.running and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not loop.running and len(delivered) == 3
        assert ends == [("live session failed: display went away", True)] and loop.lost
        assert loop._capture is None and loop._backend is None  # released without a stop()
    finally:
        loop.stop()


def test_a_lost_source_is_retried_until_it_is_back(red_model: Path, tmp_path: Path) -> None:
    """The camera file disappears mid-session (as a camera is unplugged): the loop says so, retries
    with backoff, and resumes when it is back, without ending the session."""
    cam = make_clip(tmp_path / "cam.mp4", n=8, fps=60)
    spare = tmp_path / "spare.mp4"
    spare.write_bytes(cam.read_bytes())
    messages: list[str] = []
    loop = LiveLoop(Settings(model=str(red_model), camera=str(cam)), loop_file=True, on_error=messages.append)
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while loop.stats().frames < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        cam.unlink()
        deadline = time.monotonic() + 5
        while not any("retrying" in m for m in messages) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("not found" in m and "retrying until it is back" in m for m in messages), messages
        assert loop.running  # still there, waiting
        frames_while_lost = loop.stats().frames
        time.sleep(1.5)
        assert loop.stats().frames == frames_while_lost
        spare.rename(cam)  # plugged back in
        deadline = time.monotonic() + 10
        while loop.stats().frames <= frames_while_lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loop.stats().frames > frames_while_lost and loop.reconnects == 1
        assert any("is back: resuming" in m for m in messages)
    finally:
        loop.stop()
    assert not loop.lost and loop.end_reason == "stopped"


def test_background_start_reports_open_errors(red_model: Path) -> None:
    ends: list[tuple[str, bool]] = []
    loop = LiveLoop(Settings(model=str(red_model), camera="/dev/video99"),
                    on_end=lambda reason, lost: ends.append((reason, lost)))
    loop.start(background=True)  # the GUI's way: the caller never waits on the camera
    assert loop.wait(5.0)
    loop.stop()
    assert ends and ends[0][1] and ends[0][0].startswith("camera /dev/video99 not found")


def test_frames_must_be_positive(red_model: Path, clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["live", "--camera", str(clip), "--frames", "0", "--no-virtual-cam", "--no-window"])
    assert rc == 2 and "--frames 0" in capsys.readouterr().err


HOLD_OPEN = "import sys, time\nf = open(sys.argv[1], 'rb')\nprint('open', flush=True)\ntime.sleep(60)\n"


def reader(path: Path) -> subprocess.Popen[str]:
    """Another process holding ``path`` open, as a video app holds /dev/videoN."""
    p = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "open"
    return p


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_device_readers_counts_other_processes(tmp_path: Path) -> None:
    dev = tmp_path / "video9"  # any path works the same as a device node
    dev.write_bytes(b"")
    assert device_readers(str(tmp_path / "missing")) is None
    with open(dev, "rb"):
        assert device_readers(str(dev)) == 0  # this process (the writer) does not count
        p = reader(dev)
        try:
            assert device_readers(str(dev)) == 1
            assert device_readers(str(dev), exclude_pid=p.pid) == 1  # now this one counts instead
        finally:
            p.kill()
            p.wait()
    assert device_readers(str(dev)) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_live_pauses_until_an_application_opens_the_virtual_camera(
        clip: Path, red_model: Path, fake_vcam: type[FakeVirtualCamera], tmp_path: Path) -> None:
    dev = tmp_path / "video9"
    dev.write_bytes(b"")
    settings = Settings(camera=str(clip), bg="color:#00ff00", model=str(red_model), backend="onnxruntime")
    sink = VirtualCamSink(320, 240, 30, device=str(dev), watch_readers=True)
    loop = LiveLoop(settings, loop_file=True, max_frames=8, sinks=[sink], pause_unwatched=True)
    p = None
    try:
        loop.start()
        deadline = time.perf_counter() + 5
        while loop.stats().paused < 5 and time.perf_counter() < deadline:
            time.sleep(0.05)
        assert loop.stats().paused >= 5 and sink.frames_sent == 0 and not sink.watched
        p = reader(dev)  # a video app opens the camera: processing resumes within a second
        assert loop.wait(10) and not loop.lost
        assert sink.watched and sink.frames_sent == 8 and loop.stats().frames == 8
    finally:
        loop.stop()
        sink.close()
        if p is not None:
            p.kill()
            p.wait()
    (cam,) = fake_vcam.instances
    for frame in cam.frames:
        check_composite(frame)


def test_live_without_pause_processes_every_frame_for_an_unread_camera(
        clip: Path, red_model: Path, fake_vcam: type[FakeVirtualCamera], tmp_path: Path) -> None:
    dev = tmp_path / "video9"
    dev.write_bytes(b"")
    settings = Settings(camera=str(clip), bg="color:#00ff00", model=str(red_model), backend="onnxruntime")
    with VirtualCamSink(320, 240, 30, device=str(dev)) as sink:
        loop = LiveLoop(settings, max_frames=6, sinks=[sink])
        try:
            assert loop.start().wait(10) and not loop.lost
        finally:
            loop.stop()
        assert sink.watched and sink.frames_sent == 6 and loop.stats().paused == 0


def test_stats_history_is_bounded(red_model: Path, clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A session running for days keeps its memory flat: the per-frame history is trimmed, totals are not."""
    monkeypatch.setattr(LiveLoop, "HISTORY", 10)
    loop = LiveLoop(Settings(model=str(red_model), camera=str(clip), bg="color:#00ff00"), max_frames=35)
    loop.start()
    assert loop.wait(10)
    st = loop.stats()
    assert st.frames == 35 and len(loop._latency) <= 20 and st.model_runs >= 1 and st.fps > 0


def test_readout_rate_of_frames_slower_than_its_window(red_model: Path, clip: Path) -> None:
    """A frame every 0.6 s read over a 0.5 s window holds one delivery at most: the readout gives the last two
    deliveries' rate, not 0 fps."""

    class SlowSink:
        def write(self, out: Any, pts: int | None = None) -> None:
            time.sleep(0.6)

        def close(self) -> None: ...

        def abort(self) -> None: ...

    loop = LiveLoop(Settings(model=str(red_model), camera=str(clip), bg="color:#00ff00"), max_frames=4)
    loop.add_sink(SlowSink())
    loop.start()
    assert loop.wait(20)
    st = loop.stats(window=0.5)
    assert st.frames == 2 and 1.0 < st.fps < 1.8, st
