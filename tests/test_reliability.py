"""Hostile inputs and faults (issue: reliability): each of these broke once; each has a test here."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import disc_frame, make_red_model
from media import make_clip, probe

from vbg.apps.cli import main


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VBG_CONFIG_DIR", str(tmp_path / "user-config"))


def vbg_proc(args: list[str | Path], **kw) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    return subprocess.Popen([sys.executable, "-m", "vbg", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob("*") if "vbg-partial" in p.name)


# --- 1. SIGTERM and SIGHUP --------------------------------------------------------------------
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
@pytest.mark.parametrize("target", ["out/t.mp4", "out/frames/%06d.png"])
def test_termination_signals_clean_up_like_ctrl_c(tmp_path: Path, red_model: Path, sig: int, code: int,
                                                  target: str) -> None:
    long = make_clip(tmp_path / "long.mp4", width=640, height=480, frames=400, audio="aac")
    p = vbg_proc(["-i", long, "--model", red_model, "-o", tmp_path / target, "--no-progress"])
    deadline = time.monotonic() + 20
    while not leftovers(tmp_path) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)  # until the temporary output exists: mid-run
    assert p.poll() is None, "the conversion ended before it could be stopped"
    p.send_signal(sig)
    _, err = p.communicate(timeout=20)
    assert p.returncode == code, err
    assert one_line(err) == f"vbg: stopped by {signal.Signals(sig).name}; unfinished outputs were removed"
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "out").exists()  # the output folder vbg made for this run goes too


# --- 2. damaged and cut-short inputs -----------------------------------------------------------
def _faststart(src: Path, dst: Path) -> Path:
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for pkt in inp.demux():
            if pkt.dts is None:
                continue
            pkt.stream = streams[pkt.stream.index]
            out.mux(pkt)
    return dst


def test_a_cut_short_mp4_with_its_index_first_warns_or_fails_with_strict(tmp_path: Path, red_model: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    full = _faststart(make_clip(tmp_path / "a.mp4", frames=75), tmp_path / "full.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 5])
    rc, err = run(capsys, "-i", cut, "--model", red_model, "-o", tmp_path / "o.mp4", "--no-progress")
    assert rc == 0 and (tmp_path / "o.mp4").is_file()
    assert "decoded" in err and "of the 75 frames the file lists" in err and "--strict" in err
    rc, err = run(capsys, "-i", cut, "--model", red_model, "-o", tmp_path / "s.mp4", "--strict", "--no-progress")
    assert rc == 2 and "damaged or cut short; no output was written" in one_line(err)
    assert not (tmp_path / "s.mp4").exists() and leftovers(tmp_path) == []
    rc, err = run(capsys, "-i", full, "--model", red_model, "-o", tmp_path / "f.mp4", "--strict", "--no-progress")
    assert rc == 0 and err == ""  # an intact file passes --strict quietly


# --- 3. every audio track, and subtitles ---------------------------------------------------------
def _with_tracks(src: Path, dst: Path) -> Path:
    """``src`` plus a second (mono Opus) audio track and an SRT subtitle track, in MKV."""
    srt = dst.with_suffix(".srt")
    srt.write_text("1\n00:00:00,100 --> 00:00:00,600\nhello\n")
    with av.open(str(src)) as inp, av.open(str(srt)) as subs, av.open(str(dst), "w", format="matroska") as out:
        v = out.add_stream_from_template(inp.streams.video[0])
        a1 = out.add_stream_from_template(inp.streams.audio[0])
        a2 = out.add_stream("libopus", rate=48000, layout="mono")
        sub = out.add_stream_from_template(subs.streams.subtitles[0])
        for pkt in inp.demux():
            if pkt.dts is None:
                continue
            pkt.stream = v if pkt.stream.type == "video" else a1
            out.mux(pkt)
        for pkt in subs.demux():
            if pkt.dts is not None:
                pkt.stream = sub
                out.mux(pkt)
        tone = (3000 * np.sin(np.arange(48000) / 7)).astype(np.int16)[None]
        for i in range(0, 48000, 960):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, i:i + 960]), format="s16", layout="mono")
            f.sample_rate, f.pts = 48000, i
            for p in a2.encode(f):
                out.mux(p)
        for p in a2.encode(None):
            out.mux(p)
    return dst


def test_every_audio_track_is_kept_and_subtitles_where_they_fit(tmp_path: Path, red_model: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    src = _with_tracks(make_clip(tmp_path / "a.mp4", frames=30), tmp_path / "tracks.mkv")
    rc, err = run(capsys, "-i", src, "--model", red_model, "-o", tmp_path / "o.mkv", "--no-progress")
    assert rc == 0, err
    with av.open(str(tmp_path / "o.mkv")) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac", "opus"]
        assert len(c.streams.subtitles) == 1
    rc, err = run(capsys, "-i", src, "--model", red_model, "-o", tmp_path / "o.mp4", "--no-progress")
    assert rc == 0
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert len(c.streams.audio) == 2 and not c.streams.subtitles
    assert "dropping subtitle track #3" in err and "mp4 cannot hold it" in err


def test_mp3_is_copied_into_mp4(tmp_path: Path, red_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_clip(tmp_path / "mp3.mp4", frames=20, audio="libmp3lame", sample_rate=44100)
    rc, err = run(capsys, "-i", src, "--model", red_model, "-o", tmp_path / "o.mp4", "--no-progress", "-v")
    assert rc == 0 and "audio: copied mp3" in err


# --- 4 and 8. a spec that does not fit its model ------------------------------------------------
@pytest.mark.parametrize("change,field", [
    ({"output": {"layout": "NHWC"}}, "output.layout"),
    ({"input": {"layout": "NHWC"}}, "input.layout"),
    ({"input": {"width": 96}}, "input.width x input.height"),
    ({"output": {"person_channel": 2}}, "output.person_channel 2 is out of range"),
    ({"output": {"kind": "probability"}}, "output.kind 'probability'"),
    ({"output": {"kind": "softmax_logits"}}, "needs 2 or more channels"),
    ({"input": {"name": "pixels"}}, "input.name 'pixels'"),
])
def test_a_spec_that_does_not_fit_is_refused_naming_the_field(tmp_path: Path, red_model: Path,
                                                              capsys: pytest.CaptureFixture[str], change: dict,
                                                              field: str) -> None:
    spec = json.loads(red_model.read_text())
    spec["onnx"] = str(red_model.with_suffix(".onnx"))
    for k, v in change.items():
        spec[k] = {**spec[k], **v}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec))
    clip = make_clip(tmp_path / "in.mp4", frames=3, audio=None)
    rc, err = run(capsys, "-i", clip, "--model", bad, "-o", tmp_path / "o.mp4", "--no-progress")
    line = one_line(err)
    assert rc == 2 and field in line and line.endswith(")"), err  # the problem, then the fix
    assert not (tmp_path / "o.mp4").exists()


# --- 6 and 12. odd and tiny sizes ---------------------------------------------------------------
def test_odd_sizes_kept_exactly_in_webm(tmp_path: Path, red_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "odd.mp4", width=161, height=119, frames=4, audio=None)
    for mode, out in (("composite", "c.webm"), ("alpha", "a.webm")):
        rc, err = run(capsys, "-i", clip, "--model", red_model, "--output-mode", mode, "-o", tmp_path / out,
                      "--no-progress")
        assert rc == 0, err
        facts = probe(tmp_path / out)
        assert (facts.width, facts.height) == (161, 119) and len(facts.frames) == 4


def test_tiny_inputs_are_one_line(tmp_path: Path, red_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "tiny.mp4", width=2, height=2, frames=3, audio=None)
    rc, err = run(capsys, "-i", clip, "--model", red_model, "-o", tmp_path / "o.mp4")
    assert rc == 2 and one_line(err).endswith("is 2x2 pixels, too small to find a person in (give a picture at "
                                             "least 16x16)")
    cv2.imwrite(str(tmp_path / "dot.png"), np.zeros((1, 1, 3), np.uint8))
    rc, err = run(capsys, "-i", tmp_path / "dot.png", "--model", red_model)
    assert rc == 2 and "dot.png is 1x1 pixels" in one_line(err)


# --- 7. a full disk, a file-size limit ----------------------------------------------------------
def _limited(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("kind", ["video", "sequence", "image", "folder"])
def test_a_file_size_limit_is_one_line(tmp_path: Path, red_model: Path, kind: str) -> None:
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(3)]  # PNGs of ~900 kB
    if kind in ("image", "folder"):
        (tmp_path / "in").mkdir()
        for i, img in enumerate(noise):
            cv2.imwrite(str(tmp_path / "in" / f"{i}.png"), img)
        src = tmp_path / "in" / "0.png" if kind == "image" else tmp_path / "in"
        out = tmp_path / "out" / ("o.png" if kind == "image" else "")
    else:
        src = make_clip(tmp_path / "in.mp4", width=640, height=480, frames=60)
        out = tmp_path / "out" / ("o.mp4" if kind == "video" else "frames/")
    limit = 20_000 if kind == "sequence" else 100_000  # each PNG of the sequence is a file of its own
    p = vbg_proc(["-i", src, "--model", red_model, "-o", out, "--no-progress", "--bg", "blur"],
                 preexec_fn=lambda: _limited(limit))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2, err
    line = one_line(err)
    assert "hit the file-size limit (ulimit -f) after" in line and "the partial output was removed" in line
    assert leftovers(tmp_path) == []


def test_a_full_disk_is_one_line(tmp_path: Path, red_model: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from vbg.sinks.video import VideoSink

    real = VideoSink.write_pixels
    calls = {"n": 0}

    def full(self, pixels, pts):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, pixels, pts)

    monkeypatch.setattr(VideoSink, "write_pixels", full)  # the disk edge: no real disk fills up in a test
    clip = make_clip(tmp_path / "in.mp4", frames=20)
    rc, err = run(capsys, "-i", clip, "--model", red_model, "-o", tmp_path / "out" / "o.mp4", "--no-progress")
    assert rc == 2 and "is full after" in one_line(err) and leftovers(tmp_path) == []


# --- 9, 14, 15. backgrounds ----------------------------------------------------------------------
def test_background_paths_and_files(tmp_path: Path, red_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "in.mp4", frames=3, audio=None)
    raw = os.fsencode(tmp_path) + b"/bg\xff\xfe.jpg"  # not UTF-8: once a segfault in cv2.imread
    shutil.copy(Path(__file__).parents[1] / "assets" / "backgrounds" / "beach.jpg", raw)
    rc, err = run(capsys, "-i", clip, "--model", red_model, "--bg", os.fsdecode(raw), "-o", tmp_path / "a.mp4")
    assert rc == 0, err
    (tmp_path / "pics").mkdir()
    rc, err = run(capsys, "-i", clip, "--model", red_model, "--bg", tmp_path / "pics", "-o", tmp_path / "b.mp4")
    assert rc == 2 and "pics is a folder (give an image or video file, a bundled name" in one_line(err)
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    rc, err = run(capsys, "-i", clip, "--model", red_model, "--bg", tmp_path / "random.mp4", "-o", tmp_path / "c.mp4")
    assert rc == 2 and "random.mp4 is not a video or image vbg can read" in one_line(err)
    assert "Errno" not in err


# --- 13. long names --------------------------------------------------------------------------------
def test_long_output_names(tmp_path: Path, red_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "in.mp4", frames=3, audio=None)
    legal = tmp_path / ("n" * 246 + ".mp4")  # 250 bytes: legal, though the temporary name must be shorter
    rc, err = run(capsys, "-i", clip, "--model", red_model, "-o", legal, "--no-progress")
    assert rc == 0 and legal.is_file(), err
    rc, err = run(capsys, "-i", clip, "--model", red_model, "-o", tmp_path / ("n" * 252 + ".mp4"))
    assert rc == 2 and "is 256 bytes long, and this file system allows 255" in one_line(err)
    rc, err = run(capsys, "-i", tmp_path / ("i" * 300 + ".mp4"), "--model", red_model)  # an input name too
    assert rc == 2 and "is 304 bytes long" in one_line(err)


# --- 16 and 17. live sources -----------------------------------------------------------------------
def test_live_bad_cameras_are_one_line_with_no_opencv_noise(tmp_path: Path, red_model: Path) -> None:
    empty = tmp_path / "empty.mkv"  # a video track with no frames
    with av.open(str(empty), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()
    for cam, expect in (("/dev/null", "camera /dev/null"), (str(empty), "empty.mkv")):
        p = vbg_proc(["live", "--camera", cam, "--model", red_model, "--no-virtual-cam", "--no-window"],
                     env={**os.environ, "VBG_CONFIG_DIR": str(tmp_path)})
        _, err = p.communicate(timeout=60)
        assert p.returncode == 2, err
        assert expect in one_line(err) and "WARN" not in err


# --- beyond the list: fuzzing -------------------------------------------------------------------------
def test_fuzzed_inputs_end_in_rc_0_or_one_line(tmp_path: Path, red_model: Path) -> None:
    """Random byte flips and cuts of real MP4, MKV, WebM, PNG and JPEG files through ``vbg --input``:
    rc 0 (a warning when frames were lost) or rc 2 and one line; never a traceback, a signal or a
    leftover file. Seeded; bounded to about 30 s."""
    rng = np.random.default_rng(1234)
    seeds = [make_clip(tmp_path / "s.mp4", frames=10), make_clip(tmp_path / "s.mkv", frames=10),
             make_clip(tmp_path / "s.webm", frames=10, codec="libvpx-vp9", audio="libopus")]
    img = disc_frame(96, 72, 48, 36, 15)[0]
    for ext in (".png", ".jpg"):
        cv2.imwrite(str(tmp_path / f"s{ext}"), img)
        seeds.append(tmp_path / f"s{ext}")
    work = tmp_path / "fuzz"
    work.mkdir()
    t_end = time.monotonic() + 30
    runs = 0
    while time.monotonic() < t_end or runs < len(seeds):
        seed = seeds[runs % len(seeds)]
        data = bytearray(seed.read_bytes())
        if rng.random() < 0.5:
            for _ in range(int(rng.integers(1, 40))):
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
        else:
            data = data[: int(rng.integers(1, len(data)))]
        bad = work / f"f{runs}{seed.suffix}"
        bad.write_bytes(bytes(data))
        out = work / f"o{runs}{'.png' if seed.suffix in ('.png', '.jpg') else '.mp4'}"
        p = subprocess.run([sys.executable, "-m", "vbg", "-i", str(bad), "--model", str(red_model), "-o", str(out),
                            "--no-progress"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "VBG_CONFIG_DIR": str(tmp_path)})
        assert p.returncode in (0, 2), (bad.name, p.returncode, p.stderr[-2000:])
        assert "Traceback" not in p.stderr, (bad.name, p.stderr[-2000:])
        if p.returncode == 2:
            assert len(p.stderr.strip().splitlines()) == 1, (bad.name, p.stderr)
            assert not out.exists()
        assert leftovers(work) == [], bad.name
        runs += 1


# --- the default model spec is checked too (a real file) ---------------------------------------------
def test_bundled_specs_pass_the_load_check() -> None:
    from vbg.backends.onnxruntime import OnnxRuntimeBackend
    from vbg.models import list_models

    for e in list_models():
        OnnxRuntimeBackend(e.spec).close()


def test_an_nhwc_model_described_as_nhwc_loads_and_gives_the_nchw_masks(tmp_path: Path) -> None:
    # the load checks accept a right spec of the other layout, and the backend reads it the right way round
    from vbg.backends.onnxruntime import OnnxRuntimeBackend
    from vbg.spec import ModelSpec

    frame, _ = disc_frame(160, 120, 70, 50, 30)
    masks = []
    for layout in ("NCHW", "NHWC"):
        be = OnnxRuntimeBackend(ModelSpec.load(make_red_model(tmp_path / f"{layout}.onnx", layout=layout)))
        masks.append(be.infer([frame, frame[:, ::-1].copy()]))
        be.close()
    assert masks[0].shape == masks[1].shape == (2, 48, 64)
    np.testing.assert_allclose(masks[1], masks[0], atol=1e-6)
    assert masks[1][0, 20, 28] > 0.9 and masks[1][0, 5, 60] < 0.1  # the disc, then the background
    # the second frame (mirrored) gets its own mask: (20, 46) is inside its disc only
    assert masks[1][1, 20, 46] > 0.9 and masks[1][0, 20, 46] < 0.1
