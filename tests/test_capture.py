"""Capture thread, with video files standing in for a webcam through the same code."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import disc_frame

from vbg.errors import VbgError
from vbg.io.capture import CameraReader, CaptureThread, Source

BITS, BLOCK = 10, 16  # frame number: 10 blocks of 16x16 along the top edge


def make_clip(path: Path, n: int = 30, w: int = 320, h: int = 240, fps: int = 30) -> Path:
    """An H.264 clip of a red disc ("person") moving over textured blue.

    Frame i carries i in binary as bright/dark blue blocks along the top-left
    edge (blue, so the red-is-person test model calls them background).
    """
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "16", "preset": "ultrafast", "tune": "zerolatency"}
        for i in range(n):
            img, _ = disc_frame(w, h, w / 2 + (i % 10) * 2, h / 2 + 8, h / 4, seed=i)
            for b in range(BITS):
                img[0:BLOCK, b * BLOCK:(b + 1) * BLOCK] = (255, 128, 0) if (i >> b) & 1 else (60, 0, 0)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def frame_number(img: np.ndarray) -> int:
    return sum(1 << b for b in range(BITS) if img[BLOCK // 2, b * BLOCK + BLOCK // 2, 0] > 160)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "cam.mp4", n=30)


def test_plays_file_at_its_own_rate_in_order(clip: Path) -> None:
    cap = CaptureThread(clip)
    frames = []
    with cap:
        assert cap.size == (320, 240) and cap.fps == pytest.approx(30)
        last = -1
        while (f := cap.wait_next(last, timeout=2.0)) is not None:
            frames.append(f)
            last = f.seq
    assert cap.end_reason == "end of file" and not cap.lost
    nums = [frame_number(f.image) for f in frames]
    assert nums == [f.seq for f in frames]  # seq counts source frames
    assert nums == sorted(set(nums)) and nums[-1] == 29
    assert len(frames) + cap.dropped == 30 == cap.captured
    assert frames[0].image.shape == (240, 320, 3) and frames[0].image.dtype == np.uint8
    # real time: 30 frames at 30 fps span about a second, not a decoder burst
    span = frames[-1].t_capture - frames[0].t_capture
    assert 0.75 < span * 29 / (nums[-1] - nums[0]) < 1.6
    assert all(b.t_capture > a.t_capture for a, b in zip(frames, frames[1:]))


def _wait_captured(cap: CaptureThread, n: int, timeout: float = 5.0) -> None:
    """A slow consumer: do not take frames until ``n`` have arrived (robust on a loaded machine)."""
    deadline = time.perf_counter() + timeout
    while cap.captured < n and time.perf_counter() < deadline:
        time.sleep(0.02)


def test_latest_frame_semantics(clip: Path) -> None:
    with CaptureThread(clip) as cap:
        _wait_captured(cap, 6)
        f = cap.wait_next(-1, timeout=1.0)
        assert f is not None and frame_number(f.image) == f.seq >= 5
        assert cap.dropped == f.seq  # every older frame was replaced, none queued
        _wait_captured(cap, f.seq + 5)
        g = cap.wait_next(f.seq, timeout=1.0)
        assert g is not None and g.seq >= f.seq + 3 and frame_number(g.image) == g.seq
        assert cap.dropped == g.seq - 1
        h = cap.wait_next(g.seq, timeout=1.0)
        assert h is not None and h.seq > g.seq


def test_stop_and_restart(clip: Path) -> None:
    cap = CaptureThread(clip)
    cap.start()
    first = cap.wait_next(-1, timeout=2.0)
    assert first is not None and cap.running
    cap.stop()
    assert not cap.running and not cap.ended  # stopped, not ended
    assert cap.wait_next(first.seq, timeout=0.3) is None
    cap.start()  # opens the source again
    try:
        f = cap.wait_next(first.seq, timeout=2.0)
        assert f is not None and cap.running
        assert frame_number(f.image) <= 3  # the file starts again
        assert f.seq > first.seq  # sequence numbers are never reused
    finally:
        cap.stop()
    cap.stop()  # idempotent


def test_end_of_file_loops_when_asked(tmp_path: Path) -> None:
    short = make_clip(tmp_path / "short.mp4", n=6, fps=60)
    with CaptureThread(short, loop=True) as cap:
        nums, last = [], -1
        deadline = time.perf_counter() + 3
        while len(nums) < 15 and time.perf_counter() < deadline:
            f = cap.wait_next(last, timeout=1.0)
            assert f is not None
            nums.append(frame_number(f.image))
            last = f.seq
        assert not cap.ended and cap.loops >= 1
    assert len(nums) == 15 and nums.count(0) >= 2  # wrapped around to the start


def test_deleted_file_ends_session_with_reason(tmp_path: Path) -> None:
    doomed = make_clip(tmp_path / "doomed.mp4", n=6, fps=60)
    with CaptureThread(doomed, loop=True) as cap:
        doomed.unlink()  # the source disappears while playing
        last = -1
        while (f := cap.wait_next(last, timeout=2.0)) is not None:
            last = f.seq
        assert cap.ended and cap.lost
        assert "not found" in (cap.end_reason or "") and "doomed.mp4" in (cap.end_reason or "")
    with pytest.raises(VbgError, match="not found"):
        CaptureThread(doomed).start()


class UnpluggedCamera:
    """Stand-in for cv2.VideoCapture (the hardware edge): n frames, then read failures."""

    def __init__(self, n: int) -> None:
        self.n, self.released = n, False

    def get(self, prop: int) -> float:
        return {3: 320.0, 4: 240.0, 5: 30.0}.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(1 / 60)
        if self.n <= 0:
            return False, None
        self.n -= 1
        return True, np.zeros((240, 320, 3), np.uint8)

    def release(self) -> None:
        self.released = True


def test_unplugged_camera_ends_session_cleanly() -> None:
    hw = UnpluggedCamera(5)
    reader = CameraReader(hw, "0", lost_after=0.2)
    cap = CaptureThread(Source.parse("0"), opener=lambda: reader)
    with cap:
        got, last = 0, -1
        while (f := cap.wait_next(last, timeout=2.0)) is not None:
            got, last = got + 1, f.seq
        assert cap.ended and cap.lost
        assert cap.end_reason == "camera 0 stopped delivering frames (unplugged?)"
    assert got >= 1 and cap.captured == 5 and hw.released


class StuckCamera(UnpluggedCamera):
    """A camera whose read blocks (a driver stall) until told to return; notes a release during a read."""

    def __init__(self) -> None:
        super().__init__(10**6)
        self.stall, self.go_on = threading.Event(), threading.Event()
        self.reading = False
        self.released_mid_read = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.reading = True
        try:
            if self.stall.is_set():
                self.go_on.wait(10)
            return super().read()
        finally:
            self.reading = False

    def release(self) -> None:
        self.released_mid_read = self.released_mid_read or self.reading
        super().release()


def test_stopping_twice_during_a_stalled_read_never_closes_the_camera_under_it() -> None:
    # stop() gives up waiting on a stuck read; a second stop() (the session's teardown) must not take the
    # capture for "opened, never started" and release the camera while the thread is still inside read()
    hw = StuckCamera()
    cap = CaptureThread(Source.parse("0"), opener=lambda: CameraReader(hw, "0", lost_after=30))
    cap.start()
    assert cap.wait_next(-1, timeout=2.0) is not None
    hw.stall.set()
    time.sleep(0.1)
    cap.stop(timeout=0.2)
    cap.stop(timeout=0.2)
    assert not hw.released and cap.running
    hw.go_on.set()  # the read returns: the thread ends and releases the camera itself
    deadline = time.monotonic() + 5
    while not hw.released and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hw.released and not hw.released_mid_read


@pytest.mark.parametrize("text", ["99", "/dev/video99", "no/such/clip.mp4"])
def test_missing_camera_is_a_clear_error(text: str) -> None:
    with pytest.raises(VbgError, match="not found") as err:
        CaptureThread(text).start()
    assert text in err.value.what and err.value.fix


def test_mirror_flips_frames(clip: Path) -> None:
    with CaptureThread(clip, mirror=True) as cap:
        f = cap.wait_next(-1, timeout=2.0)
        assert f is not None
        # the frame-number band now sits at the top-right, reversed
        assert frame_number(f.image[:, ::-1]) == f.seq
        cap.mirror = False  # applies from the next frame, no restart
        g = cap.wait_next(f.seq + 1, timeout=2.0)
        assert g is not None and frame_number(g.image) == g.seq


def test_source_parse() -> None:
    assert Source.parse("2") == Source("camera", index=2)
    assert Source.parse(0).is_camera
    assert Source.parse("/dev/video4").is_camera
    assert Source.parse("clip.mp4").kind == "file"
    assert str(Source.parse("3")) == "3"
