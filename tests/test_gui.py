"""The tuning window under pytest-qt (offscreen): a video file as camera, a stand-in only at pyvirtualcam."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import pyvirtualcam

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from conftest import PERSON_BGR  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from test_capture import make_clip  # noqa: E402
from test_live import GREEN, NO_DEVICE, FakeVirtualCamera, check_composite  # noqa: E402

from vbg.apps.gui.app import MainWindow, load_settings  # noqa: E402
from vbg.apps.gui.preview import PreviewWindow  # noqa: E402
from vbg.loop import LiveLoop  # noqa: E402
from vbg.settings import Settings  # noqa: E402
from vbg.sinks.vcam import LINUX_SETUP  # noqa: E402

MAGENTA = (255, 0, 255)
BGR = pyvirtualcam.PixelFormat.BGR


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("gui") / "cam.mp4", n=30)


@pytest.fixture
def backgrounds(tmp_path: Path) -> Path:
    d = tmp_path / "backgrounds"
    d.mkdir()
    img = np.empty((90, 160, 3), np.uint8)
    img[:] = MAGENTA
    cv2.imwrite(str(d / "magenta.png"), img)
    img[:] = (0, 200, 255)
    cv2.imwrite(str(d / "sunny.jpg"), img)
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture
def make_window(qtbot: Any, clip: Path, red_model: Path, tmp_path: Path, backgrounds: Path
                ) -> Iterator[Callable[..., MainWindow]]:
    windows: list[MainWindow] = []

    def make(**kw: Any) -> MainWindow:
        settings = kw.pop("settings", Settings(model=str(red_model), backend="onnxruntime", camera=str(clip),
                                               bg="color:#00ff00", smoothing=0.0))
        kw.setdefault("config", tmp_path / "config" / "config.toml")
        kw.setdefault("backgrounds_dir", backgrounds)
        kw.setdefault("camera_factory", lambda w, h, fps, dev: FakeVirtualCamera(w, h, fps, fmt=BGR, device=dev))
        win = MainWindow(settings, **kw)
        qtbot.addWidget(win)
        win.resize(900, 560)
        win.show()
        win.activateWindow()
        qtbot.waitUntil(win.isActiveWindow)  # keyboard shortcuts go to the active window
        windows.append(win)
        return win

    yield make
    for w in windows:
        w.close()




def next_frame(qtbot: Any, win: MainWindow, pred: Callable[[Any], bool] = lambda d: True) -> tuple[np.ndarray, Any]:
    """Wait until the window shows a frame whose Delivery satisfies pred."""
    qtbot.waitUntil(lambda: win.shown is not None and pred(win.shown[1]), timeout=8000)
    assert win.shown is not None
    return win.shown


def test_slider_changes_settings_and_next_frame(qtbot: Any, make_window: Callable[..., MainWindow]) -> None:
    win = make_window()
    img, d = next_frame(qtbot, win)
    check_composite(d.output.frame)
    capture = win.loop.capture  # type: ignore[union-attr]
    win.threshold.slider.setValue(win.threshold.slider.maximum())  # as a drag would
    assert win.settings.threshold == 1.0
    img, d = next_frame(qtbot, win, lambda d: d.settings.threshold == 1.0)
    # the person's probability (~1) now sits at the threshold: half person, half green
    centre = d.output.frame[120:136, 165:175].reshape(-1, 3).astype(float)
    expect = (np.array(PERSON_BGR) + np.array(GREEN)) / 2
    assert np.abs(centre.mean(0) - expect).max() < 25
    h, w = img.shape[:2]  # what is on screen shows it too
    shown = img[int(h * 0.5) - 2:int(h * 0.5) + 2, int(w * 0.53) - 2:int(w * 0.53) + 2].reshape(-1, 3).mean(0)
    assert np.abs(shown - expect).max() < 30
    assert win.loop.capture is capture and capture.running  # type: ignore[union-attr]  # nothing restarted
    win.feather.slider.setValue(8)
    assert win.settings.feather == 4.0


def test_background_picker(qtbot: Any, make_window: Callable[..., MainWindow], backgrounds: Path,
                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    win = make_window()
    labels = [win.bg_list.item(i).text() for i in range(win.bg_list.count())]
    assert labels == ["magenta", "sunny", "Blur", "Colour…", "None", "File…"]  # thumbnails, then the specials
    magenta = win.bg_list.item(0)
    win.bg_list.itemClicked.emit(magenta)
    assert win.settings.bg == str(backgrounds / "magenta.png")
    _, d = next_frame(qtbot, win, lambda d: d.settings.bg.endswith("magenta.png"))
    check_composite(d.output.frame, MAGENTA)
    assert not win.blur_row.isVisible()  # the blur strength shows only for a blur background

    win.bg_list.itemClicked.emit(win.bg_list.item(2))  # Blur
    assert win.settings.bg == "blur:25" and win.blur_row.isVisible()
    win.blur.slider.setValue(60)
    assert win.settings.bg == "blur:60"
    _, d = next_frame(qtbot, win, lambda d: d.settings.bg == "blur:60")
    assert np.abs(d.output.frame[215:, :50].astype(int) - GREEN).min() > 20  # no longer green

    from PySide6.QtGui import QColor
    win.pick_color(QColor(255, 0, 0))
    assert win.settings.bg == "color:#ff0000"

    other = tmp_path / "picked.png"
    cv2.imwrite(str(other), np.full((50, 80, 3), 128, np.uint8))
    monkeypatch.setattr("vbg.apps.gui.app.QFileDialog.getOpenFileName", lambda *a, **k: (str(other), ""))
    win.bg_list.itemClicked.emit(win.bg_list.item(5))  # File…
    assert win.settings.bg == str(other)
    _, d = next_frame(qtbot, win, lambda d: d.settings.bg == str(other))
    check_composite(d.output.frame, (128, 128, 128))

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert not win.set_background(str(broken))  # refused in the UI, the loop never sees it
    assert win.settings.bg == str(other) and "broken.jpg" in win.statusBar().currentMessage()


def test_empty_backgrounds_folder(make_window: Callable[..., MainWindow], tmp_path: Path) -> None:
    empty = tmp_path / "none-here"
    win = make_window(backgrounds_dir=empty, autostart=False)
    assert [win.bg_list.item(i).text() for i in range(win.bg_list.count())] == ["Blur", "Colour…", "None", "File…"]


def test_virtual_camera_starts_and_stops(qtbot: Any, make_window: Callable[..., MainWindow]) -> None:
    FakeVirtualCamera.instances = []
    win = make_window()
    next_frame(qtbot, win)
    win.vcam_button.click()
    assert win.vcam is not None and win.vcam_button.text() == "Stop virtual camera"
    (cam,) = FakeVirtualCamera.instances
    assert (cam.width, cam.height) == (320, 240)
    qtbot.waitUntil(lambda: len(cam.frames) >= 5, timeout=5000)
    check_composite(cam.frames[-1])
    qtbot.keyClick(win, Qt.Key.Key_V)  # the shortcut toggles it off
    assert win.vcam is None and cam.closed and not win.vcam_button.isChecked()
    n = len(cam.frames)
    qtbot.wait(300)
    assert len(cam.frames) == n  # no frames after stop
    assert win.loop is not None and win.loop.running  # the session goes on


def test_virtual_camera_missing_device(qtbot: Any, make_window: Callable[..., MainWindow]) -> None:
    def no_device(*a: Any) -> None:
        raise RuntimeError(NO_DEVICE)

    win = make_window(camera_factory=no_device)
    win.vcam_button.click()
    assert win.vcam is None and not win.vcam_button.isChecked()
    assert LINUX_SETUP in win.statusBar().currentMessage()


def test_preview_views_switch(qtbot: Any, make_window: Callable[..., MainWindow]) -> None:
    win = make_window()
    img, d = next_frame(qtbot, win)
    h, w = img.shape[:2]
    assert abs(w / h - 4 / 3) < 0.02

    qtbot.keyClick(win, Qt.Key.Key_2)  # original
    assert win.view_buttons.checkedButton().text() == "Original"
    qtbot.waitUntil(lambda: win.settings.view == "original" and win.shown[1].settings.view == "original")
    img, _ = win.shown  # type: ignore[misc]
    corner = img[-5:, :5].reshape(-1, 3).astype(int).mean(0)
    assert corner[0] > 150 and corner[1] < 160  # the camera's blue, not the green background

    win.view_buttons.button(2).click()  # mask
    img, _ = next_frame(qtbot, win, lambda d: d.settings.view == "mask")
    h, w = img.shape[:2]
    assert img[h // 2, int(w * 0.53)].tolist() == [255, 255, 255] and img[-3, 3].tolist() == [0, 0, 0]

    qtbot.keyClick(win, Qt.Key.Key_4)  # side by side: twice as wide
    img, _ = next_frame(qtbot, win, lambda d: d.settings.view == "side-by-side")
    h, w = img.shape[:2]
    assert abs(w / h - 8 / 3) < 0.05
    left, right = img[-5:, 2], img[-5:, w // 2 + 2]
    assert np.abs(right.astype(int) - GREEN).max() < 10 and np.abs(left.astype(int) - GREEN).max() > 60


def test_settings_saved_and_restored(qtbot: Any, make_window: Callable[..., MainWindow], tmp_path: Path) -> None:
    config = tmp_path / "cfg" / "config.toml"
    win = make_window(config=config, autostart=False)
    win.smoothing.slider.setValue(80)
    win.mirror.setChecked(True)
    qtbot.keyClick(win, Qt.Key.Key_3)
    win.close()
    restored, note = load_settings(config)
    assert note is None
    assert (restored.smoothing, restored.mirror, restored.view) == (0.8, True, "mask")
    again = make_window(settings=None, config=config, autostart=False)
    assert again.smoothing.value() == 0.8 and again.mirror.isChecked()
    assert again.view_buttons.checkedButton().text() == "Mask"
    config.write_text("[vbg]\nthreshold = 7\n")  # a broken file: defaults and a note
    settings, note = load_settings(config)
    assert settings == Settings() and note and "threshold 7 out of range" in note


def test_closing_writes_the_config_only_after_a_change(make_window: Callable[..., MainWindow], tmp_path: Path,
                                                       red_model: Path, clip: Path) -> None:
    """A hand-written config stays as written when the window only looked; one the window cannot use is
    kept beside it as .bad when the window saves, not overwritten with defaults."""
    config = tmp_path / "cfg" / "config.toml"
    config.parent.mkdir()
    text = f'# mine\n[vbg]\nmodel = "{red_model}"\ncamera = "{clip}"\nthreshold = 0.6\n'
    config.write_text(text)
    win = make_window(settings=None, config=config, autostart=False)
    assert win.settings.threshold == 0.6
    win.close()
    assert config.read_text() == text  # unchanged: not rewritten, comment kept
    win = make_window(settings=None, config=config, autostart=False)
    win.apply(threshold=0.4)
    win.close()
    assert load_settings(config)[0].threshold == 0.4
    broken = '[vbg]\nthreshold = 7\nmodel = "mine.json"\n'
    config.write_text(broken)
    win = make_window(settings=None, config=config, autostart=False)
    win.close()
    assert config.read_text() == broken  # nothing changed: left alone
    win = make_window(settings=None, config=config, autostart=False)
    win.apply(smoothing=0.3)
    win.close()
    assert (tmp_path / "cfg" / "config.toml.bad").read_text() == broken
    assert load_settings(config) == (Settings(smoothing=0.3), None)


def test_the_same_camera_picked_again_after_it_failed_starts_it(qtbot: Any, make_window: Callable[..., MainWindow],
                                                                 clip: Path, red_model: Path, tmp_path: Path) -> None:
    late = tmp_path / "late.mp4"  # a camera that is plugged in after the window opened
    win = make_window(settings=Settings(model=str(red_model), camera=str(late), bg="color:#00ff00"))
    qtbot.waitUntil(lambda: "not found" in win.preview.text(), timeout=5000)
    late.write_bytes(clip.read_bytes())
    assert win.apply(camera=str(late))  # the user picks it again
    qtbot.waitUntil(lambda: win.frames_shown > 0, timeout=8000)


def test_a_model_that_fails_to_load_puts_the_picker_back(qtbot: Any, make_window: Callable[..., MainWindow],
                                                         red_model: Path, tmp_path: Path) -> None:
    win = make_window()
    qtbot.waitUntil(lambda: win.frames_shown > 0, timeout=8000)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    spec = broken.with_suffix(".json")
    spec.write_text(red_model.read_text().replace('"red.onnx"', '"broken.onnx"'))
    assert win.apply(model=str(spec))
    qtbot.waitUntil(lambda: win.settings.model == str(red_model), timeout=8000)
    assert win.model.currentData() == str(red_model) and "broken.onnx" in win.statusBar().currentMessage()
    win.smoothing.slider.setValue(50)  # a later change: applied, without retrying the failed model
    qtbot.waitUntil(lambda: win.loop.settings.smoothing == 0.5, timeout=5000)  # type: ignore[union-attr]
    assert win.loop.settings.model == str(red_model)  # type: ignore[union-attr]


def test_missing_camera_shows_reason_and_recovers(qtbot: Any, make_window: Callable[..., MainWindow],
                                                  clip: Path, red_model: Path) -> None:
    win = make_window(settings=Settings(model=str(red_model), camera="/dev/video99", bg="color:#00ff00"))
    qtbot.waitUntil(lambda: "not found" in win.preview.text(), timeout=5000)
    assert "camera /dev/video99 not found" in win.preview.text()
    win.apply(camera=str(clip))  # picking a working source starts a new session
    _, d = next_frame(qtbot, win)
    check_composite(d.output.frame)


def test_ui_thread_never_waits_on_inference(qtbot: Any, make_window: Callable[..., MainWindow],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import vbg.loop

    real = vbg.loop.create_backend

    class SlowBackend:  # a slow machine: each inference takes 300 ms
        def __init__(self, inner: Any) -> None:
            self.inner, self.name, self.spec = inner, inner.name, inner.spec

        def infer(self, frames: Any) -> Any:
            time.sleep(0.3)
            return self.inner.infer(frames)

        def reset(self) -> None:
            self.inner.reset()

        def close(self) -> None:
            self.inner.close()

    monkeypatch.setattr(vbg.loop, "create_backend", lambda spec, name: SlowBackend(real(spec, name)))
    win = make_window()
    next_frame(qtbot, win)
    ticks: list[float] = []
    from PySide6.QtCore import QTimer
    timer = QTimer(interval=10, timeout=lambda: ticks.append(time.perf_counter()))
    timer.start()
    worst = 0.0
    for v in range(20, 80, 3):  # a slider drag during slow inference
        t0 = time.perf_counter()
        win.threshold.slider.setValue(v)
        worst = max(worst, time.perf_counter() - t0)
        qtbot.wait(40)
    timer.stop()
    assert worst < 0.05  # never waits for the 300 ms inference
    gaps = np.diff(ticks)
    assert len(ticks) > 40 and gaps.max() < 0.2, gaps.max()
    assert win.loop.stats().dropped > 0  # type: ignore[union-attr]  # frames skipped, not queued


def test_live_preview_window(qtbot: Any, clip: Path, red_model: Path) -> None:
    loop = LiveLoop(Settings(model=str(red_model), camera=str(clip), bg="color:#00ff00"))
    loop.start()
    win = PreviewWindow(loop)
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: not win.pixmap().isNull(), timeout=5000)
        qtbot.waitUntil(lambda: not win.isVisible(), timeout=5000)  # end of file closes it
    finally:
        loop.stop()
    assert loop.end_reason == "end of file"


PREVIEW_SIGNAL_SCRIPT = r"""
import os, sys, threading, time
from vbg.apps.cli import _signals
from vbg.apps.gui.preview import run_preview
from vbg.loop import LiveLoop
from vbg.settings import Settings
loop = LiveLoop(Settings(model=sys.argv[1], camera=sys.argv[2]), loop_file=True)
loop.start()
threading.Timer(2.0, os.kill, (os.getpid(), int(sys.argv[3]))).start()
t0 = time.monotonic()
try:
    with _signals():  # as vbg's CLI runs every command: SIGTERM and SIGHUP raise Terminated
        run_preview(loop)
    print("returned")
except KeyboardInterrupt as exc:
    print(type(exc).__name__, getattr(exc, "signum", None), f"{time.monotonic() - t0:.1f}", flush=True)
finally:
    loop.stop()
"""


@pytest.mark.parametrize("sig,expect", [(2, "KeyboardInterrupt None"), (15, "Terminated 15")])
def test_vbg_live_preview_ends_on_ctrl_c_and_sigterm(clip: Path, red_model: Path, tmp_path: Path,
                                                     sig: int, expect: str) -> None:
    """With its preview window, ``vbg live`` must stop on Ctrl-C or SIGTERM like without one: raised inside
    a Qt slot, PySide prints the exception and runs on, holding the camera."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, "-c", PREVIEW_SIGNAL_SCRIPT, str(red_model), str(clip), str(sig)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert " ".join(words[:2]) == expect and float(words[2]) < 10, r.stdout
    assert "Traceback" not in r.stderr


def test_controls_match_the_cli(qtbot: Any, make_window: Callable[..., MainWindow]) -> None:
    """Every edge control has the CLI's range and name; light wrap and auto-framing are there too."""
    from vbg.settings import CHECKS

    win = make_window()
    for name, widget in (("slope", win.slope), ("feather", win.feather), ("threshold", win.threshold),
                         ("smoothing", win.smoothing), ("light_wrap", win.light_wrap)):
        lo, hi = widget.slider.minimum() * widget.step, widget.slider.maximum() * widget.step
        CHECKS[name](name, lo)  # the ends of each slider are valid settings
        CHECKS[name](name, hi)
        with pytest.raises(Exception):  # noqa: B017 (a VbgError, whatever the subclass)
            CHECKS[name](name, hi + 1)
    win.light_wrap.slider.setValue(win.light_wrap.slider.maximum())
    assert win.settings.light_wrap == 1.0
    win.frame_auto.setChecked(True)
    assert win.settings.frame == "auto"
    _, d = next_frame(qtbot, win, lambda d: d.settings.frame == "auto")
    assert d.output.frame.shape == (240, 320, 3)  # auto-framing keeps the output size
    win.frame_auto.setChecked(False)
    assert win.settings.frame == "off"


def test_blur_slider_only_sets_the_strength(qtbot: Any, make_window: Callable[..., MainWindow]) -> None:
    win = make_window()  # a colour background
    assert not win.blur_row.isVisible()
    win.blur.slider.setValue(40)  # even if reached, it must not switch the background to blur
    assert win.settings.bg == "color:#00ff00"
    win.apply(bg="blur:30")
    assert win.blur_row.isVisible() and win.blur.value() == 30
    win.blur.slider.setValue(70)
    assert win.settings.bg == "blur:70"


def test_resolution_and_rate_pickers(qtbot: Any, make_window: Callable[..., MainWindow]) -> None:
    win = make_window()
    i = win.resolution.findData("1920x1080")
    assert i >= 0
    win.resolution.activated.emit(i)
    assert (win.settings.width, win.settings.height) == (1920, 1080)
    j = win.fps.findData(60.0)
    win.fps.activated.emit(j)
    assert win.settings.fps == 60.0
    # and the running session got them (a file camera: no reopen, but the loop's settings follow)
    qtbot.waitUntil(lambda: win.loop is not None and (win.loop.settings.width, win.loop.settings.height,
                                                      win.loop.settings.fps) == (1920, 1080, 60.0), timeout=5000)


def test_readout_shows_rate_latency_and_model_share(qtbot: Any, make_window: Callable[..., MainWindow]) -> None:
    win = make_window()
    next_frame(qtbot, win)
    qtbot.waitUntil(lambda: "model on" in win.readout.text(), timeout=5000)
    qtbot.wait(2500)  # a full 2-second window of frames behind the figures
    win._update_readout()
    text = win.readout.text()
    st = win.loop.stats(window=2.0)  # type: ignore[union-attr]
    m = re.fullmatch(r"([\d.]+) fps · latency (\d+) ms \(p95 (\d+)\) · model on (\d+) % of frames · (.+)", text)
    assert m, text
    fps, p50, p95, share = float(m[1]), int(m[2]), int(m[3]), int(m[4])
    assert 3 < fps <= 35 and abs(fps - st.fps) < 5  # a 30 fps clip, shown at its own rate or less
    assert 0 <= p50 <= p95 and 0 < share <= 100
    assert m[5] == win.loop.backend_name  # type: ignore[union-attr]


def test_camera_picker_lists_each_device_once_and_refreshes_when_opened(
        qtbot: Any, make_window: Callable[..., MainWindow], red_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vbg.apps.gui import app

    cams = {"/dev/video0": "Integrated Camera (/dev/video0)"}  # the device list: the hardware edge
    monkeypatch.setattr(app, "camera_choices", lambda: dict(cams))
    win = make_window(settings=Settings(model=str(red_model), camera="0"), autostart=False)
    labels = [win.camera.itemText(i) for i in range(win.camera.count())]
    assert labels == ["Integrated Camera (/dev/video0)", "Video file…"]  # "0" and /dev/video0: one entry
    assert win.camera.currentData() == "/dev/video0"
    win.camera.activated.emit(0)  # picking it is no change: "0" stays, nothing reopens
    assert win.settings.camera == "0"
    cams["/dev/video2"] = "USB Camera (/dev/video2)"  # plugged in while the window is open
    win.camera.showPopup()
    win.camera.hidePopup()
    assert win.camera.findData("/dev/video2") >= 0 and win.camera.currentData() == "/dev/video0"


def test_camera_names_come_from_the_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vbg.io import capture

    sysfs = tmp_path / "video4linux"
    for node, name, index in (("video0", "Integrated Camera: Integrated C", "0"),
                              ("video1", "Integrated Camera: Integrated C", "1"),  # its metadata node
                              ("video4", "vbg", "0")):  # our own virtual camera
        (sysfs / node).mkdir(parents=True)
        (sysfs / node / "name").write_text(name + "\n")
        (sysfs / node / "index").write_text(index + "\n")
    monkeypatch.setattr(capture.sys, "platform", "linux")
    cams = capture.list_cameras(sysfs)
    assert [(c.value, c.name, c.loopback) for c in cams] == [
        ("/dev/video0", "Integrated Camera: Integrated C", False), ("/dev/video4", "vbg", True)]


def test_picked_camera_file_is_saved_absolute(qtbot: Any, make_window: Callable[..., MainWindow], clip: Path,
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    win = make_window()
    monkeypatch.chdir(clip.parent)
    monkeypatch.setattr("vbg.apps.gui.app.QFileDialog.getOpenFileName", lambda *a, **k: (clip.name, ""))
    win._camera_picked(win.camera.count() - 1)  # "Video file…"
    assert win.settings.camera == str(clip) and os.path.isabs(win.settings.camera)
    win.save_settings()
    assert f'camera = "{clip}"' in (tmp_path / "config" / "config.toml").read_text()
