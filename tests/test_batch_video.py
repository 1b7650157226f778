"""End-to-end video conversion through the real CLI: frames, timing, audio, pixels, output modes."""

from __future__ import annotations

import contextlib
import threading
import tracemalloc
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import PERSON_BGR, disc_frame, make_red_model
from media import disc_centre, make_clip, probe

from vbg.apps.batch import ConvertStats, convert_video
from vbg.apps.cli import main
from vbg.settings import Settings

W, H, N = 320, 240, 36
BG_BGR = (0, 200, 255)  # the colour background used below: orange, far from red and blue
BG_ARG = "color:#ffc800"


def regions(i: int, n: int = N, w: int = W, h: int = H, margin: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """(inside, outside) boolean masks of frame i's disc, each `margin` px away from the edge."""
    cx, cy = disc_centre(i, n, w, h)
    r = min(w, h) * 0.22
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    return d < r - margin, d > r + margin


def audio_samples(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(f.samples for f in c.decode(audio=0))


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "in.mp4", width=W, height=H, frames=N)


def test_convert_keeps_frames_timing_audio_and_pixels(clip: Path, red_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "out.mp4"
    code, out, err = cli(capsys, "--input", clip, "--bg", BG_ARG, "-o", dst, "--model", red_model)
    assert code == 0, err
    assert out.strip() == out.strip().splitlines()[-1]  # one summary line
    assert out.startswith(f"vbg: {N} frames in ") and "fps) ->" in out and str(dst) in out

    src, res = probe(clip), probe(dst)
    assert (res.width, res.height, res.codec, res.pix_fmt) == (W, H, "h264", "yuv420p")
    assert len(res.frames) == N
    assert res.times == pytest.approx(src.times, abs=1e-3)
    assert res.duration == pytest.approx(N / 30, abs=0.05)
    # audio: the same packets, byte for byte (copied, not re-encoded)
    assert res.audio_codec == "aac"
    assert len(res.audio_packets) == len(src.audio_packets) > 0
    assert res.audio_packets == src.audio_packets
    assert res.audio_duration == pytest.approx(src.audio_duration, abs=0.03)

    for i in (0, N // 2, N - 1):
        inside, outside = regions(i)
        frame = res.frames[i].astype(np.float32)
        person = frame[inside].mean(axis=0)
        bg = frame[outside].mean(axis=0)
        assert np.abs(person - PERSON_BGR).max() < 15, person  # the person survives
        assert np.abs(bg - BG_BGR).max() < 12, bg  # the background is replaced
        assert np.percentile(np.abs(frame[outside] - BG_BGR).max(axis=1), 99) < 30
    # no temporary files left beside the output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_default_name_beside_input_and_refuses_to_overwrite(clip: Path, red_model: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "talk.mp4"
    src.write_bytes(clip.read_bytes())
    code, out, _ = cli(capsys, "-i", src, "--bg", "blur:15", "--model", red_model)
    assert code == 0
    dst = tmp_path / "talk.vbg.mp4"
    assert dst.is_file() and str(dst) in out
    first = dst.stat().st_mtime_ns
    code, _, err = cli(capsys, "-i", src, "--bg", "blur:15", "--model", red_model)
    assert code == 2 and "already exists" in err and "-y" in err
    assert dst.stat().st_mtime_ns == first
    code, _, _ = cli(capsys, "-i", src, "--bg", "blur:15", "--model", red_model, "-y")
    assert code == 0 and dst.stat().st_mtime_ns != first
    assert src.read_bytes() == clip.read_bytes()  # the input is untouched


def test_pcm_audio_is_reencoded_for_mp4_and_copied_into_mkv(red_model: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = make_clip(tmp_path / "pcm.mkv", frames=20, audio="pcm_s16le")
    assert probe(src, keep_frames=False).audio_codec == "pcm_s16le"
    code, _, err = cli(capsys, "-i", src, "-o", tmp_path / "o.mp4", "--model", red_model)
    assert code == 0, err
    res = probe(tmp_path / "o.mp4", keep_frames=False)
    assert res.audio_codec == "aac"  # mp4 players do not take PCM
    assert res.audio_duration == pytest.approx(20 / 30, abs=0.05)
    assert len(res.times) == 20
    code, _, err = cli(capsys, "-i", src, "-o", tmp_path / "o.mkv", "--model", red_model)
    assert code == 0, err
    res = probe(tmp_path / "o.mkv", keep_frames=False)
    assert res.audio_codec == "pcm_s16le"
    assert res.audio_packets == probe(src, keep_frames=False).audio_packets


def test_no_audio_flag_and_clip_without_audio(red_model: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    silent = make_clip(tmp_path / "silent.mp4", frames=10, audio=None)
    assert cli(capsys, "-i", silent, "--model", red_model)[0] == 0
    assert probe(tmp_path / "silent.vbg.mp4", keep_frames=False).audio_codec is None
    noisy = make_clip(tmp_path / "noisy.mp4", frames=10)
    assert cli(capsys, "-i", noisy, "--model", red_model, "--no-audio")[0] == 0
    res = probe(tmp_path / "noisy.vbg.mp4", keep_frames=False)
    assert res.audio_codec is None and len(res.times) == 10


def test_variable_frame_rate_timestamps_survive(red_model: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    pts = [0, 33, 66, 120, 153, 250, 283, 316, 400, 433, 500, 700]
    src = make_clip(tmp_path / "vfr.mp4", frames=len(pts), pts_ms=pts)
    assert probe(src, keep_frames=False).times == pytest.approx([p / 1000 for p in pts], abs=1e-3)
    dst = tmp_path / "o.mp4"
    assert cli(capsys, "-i", src, "-o", dst, "--model", red_model)[0] == 0
    assert probe(dst, keep_frames=False).times == pytest.approx([p / 1000 for p in pts], abs=1.5e-3)
    # Matroska cannot start before 0, and the copied AAC starts 1024 samples early (its priming frame,
    # which MP4 hides with an edit list): that frame is left out, so nothing shifts and the sound keeps
    # its length, as in the input.
    dst = tmp_path / "o.mkv"
    assert cli(capsys, "-i", src, "-o", dst, "--model", red_model)[0] == 0
    assert probe(dst, keep_frames=False).times == pytest.approx([p / 1000 for p in pts], abs=1.5e-3)
    with av.open(str(dst)) as c:
        first_audio = next(p for p in c.demux(c.streams.audio[0]) if p.size)
        assert float(first_audio.pts * first_audio.time_base) == pytest.approx(0.0, abs=1.5e-3)
    assert audio_samples(dst) == audio_samples(src)


@pytest.mark.parametrize("orientation", ["fixed", "match"])
def test_rotated_phone_video_is_turned_upright(orientation: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # Stored 320x240 landscape with a 90-degree counter-clockwise display rotation,
    # so players show it 240x320. The output is upright pixels and no rotation flag.
    # An orientation-matching model sees the upright portrait frame at its portrait twin size.
    red_model = make_red_model(tmp_path / f"red-{orientation}.onnx", orientation=orientation)
    src = make_clip(tmp_path / "phone.mp4", frames=6, rotation=90)
    assert probe(src, keep_frames=False).rotation == 90
    dst = tmp_path / "o.mp4"
    assert cli(capsys, "-i", src, "-o", dst, "--bg", BG_ARG, "--model", red_model)[0] == 0
    res = probe(dst)
    assert (res.width, res.height, res.rotation) == (H, W, 0)
    inside, outside = regions(0, 6)
    expect_in, expect_out = np.rot90(inside), np.rot90(outside)  # np.rot90: counter-clockwise
    frame = res.frames[0].astype(np.float32)
    assert np.abs(frame[expect_in].mean(axis=0) - PERSON_BGR).max() < 15
    assert np.abs(frame[expect_out].mean(axis=0) - BG_BGR).max() < 12


def test_odd_frame_size_is_kept_exactly(red_model: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = make_clip(tmp_path / "odd.mp4", width=321, height=241, frames=8)
    dst = tmp_path / "o.mp4"
    assert cli(capsys, "-i", src, "-o", dst, "--bg", BG_ARG, "--model", red_model)[0] == 0
    res = probe(dst)
    assert (res.width, res.height) == (321, 241) and len(res.frames) == 8
    assert res.pix_fmt == "yuv444p"  # 4:2:0 cannot hold odd sizes
    inside, outside = regions(3, 8, 321, 241)
    frame = res.frames[3].astype(np.float32)
    assert np.abs(frame[inside].mean(axis=0) - PERSON_BGR).max() < 15
    assert np.abs(frame[outside].mean(axis=0) - BG_BGR).max() < 12


def test_a_frame_size_change_midway_is_scaled_to_the_first_size(red_model: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Concatenated MPEG-TS clips (and broadcast captures) change resolution mid-stream; the output keeps the
    first size, as players show it, with every frame and a warning, not a traceback."""
    a = make_clip(tmp_path / "a.ts", frames=6, audio=None)
    b = make_clip(tmp_path / "b.ts", width=W // 2, height=H // 2, frames=6, audio=None)
    src = tmp_path / "joined.ts"
    src.write_bytes(a.read_bytes() + b.read_bytes())
    dst = tmp_path / "o.mp4"
    code, _, err = cli(capsys, "-i", src, "-o", dst, "--bg", BG_ARG, "--model", red_model)
    assert code == 0, err
    assert "frame size changes at frame 6 (160x120)" in err
    res = probe(dst)
    assert (res.width, res.height) == (W, H) and len(res.frames) == 12
    for i in (2, 9):  # one frame of each part: the disc where that part had it, scaled
        inside, outside = regions(i % 6, 6)
        frame = res.frames[i].astype(np.float32)
        assert np.abs(frame[inside].mean(axis=0) - PERSON_BGR).max() < 15
        assert np.abs(frame[outside].mean(axis=0) - BG_BGR).max() < 12


def _check_alpha(alpha: np.ndarray, i: int, n: int = N) -> None:
    inside, outside = regions(i, n)
    assert alpha[inside].mean() > 245 and alpha[outside].mean() < 10


def test_alpha_webm_vp9_carries_transparency(clip: Path, red_model: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "a.webm"
    assert cli(capsys, "-i", clip, "-o", dst, "--output-mode", "alpha", "--model", red_model)[0] == 0
    res = probe(dst, keep_frames=False)
    assert res.audio_codec == "opus" and len(res.times) == N  # webm holds no AAC
    # FFmpeg's native VP9 decoder drops alpha; libvpx reads it back
    with av.open(str(dst)) as c:
        dec = av.CodecContext.create("libvpx-vp9", "r")
        frames = [f for p in c.demux(c.streams.video[0]) if p.size for f in dec.decode(p)]
    assert len(frames) == N and frames[0].format.name == "yuva420p"
    _check_alpha(frames[N // 2].to_ndarray(format="bgra")[..., 3], N // 2)


def test_alpha_prores_4444_mov(clip: Path, red_model: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "a.mov"
    assert cli(capsys, "-i", clip, "-o", dst, "--output-mode", "alpha", "--model", red_model)[0] == 0
    with av.open(str(dst)) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "prores" and v.codec_context.pix_fmt.startswith("yuva444p")
        f = next(c.decode(v))
    bgra = f.to_ndarray(format="bgra")
    _check_alpha(bgra[..., 3], 0)
    inside, _ = regions(0)
    assert np.abs(bgra[..., :3][inside].mean(axis=0) - PERSON_BGR).max() < 15
    assert probe(dst, keep_frames=False).audio_packets == probe(clip, keep_frames=False).audio_packets


def test_alpha_png_sequence_into_a_folder(clip: Path, red_model: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "frames"
    code, out, _ = cli(capsys, "-i", clip, "-o", f"{out_dir}/%06d.png", "--output-mode", "alpha", "--model", red_model)
    assert code == 0 and out.rstrip().endswith(f"-> {out_dir / '%06d.png'}")  # the summary names the pattern
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == [f"{i:06d}.png" for i in range(1, N + 1)]
    png = cv2.imread(str(out_dir / "000019.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (H, W, 4) and png.dtype == np.uint8
    _check_alpha(png[..., 3], 18)
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]  # no temporary folder left
    # a printf pattern names the files
    code, out, _ = cli(capsys, "-i", clip, "-o", tmp_path / "one" / "f.png", "--output-mode", "mask",
                       "--model", red_model)
    assert code == 0 and out.rstrip().endswith(f"-> {tmp_path / 'one' / 'f_%06d.png'}")  # a plain .png: numbered
    code, _, _ = cli(capsys, "-i", clip, "-o", tmp_path / "seq" / "f_%03d.png", "--output-mode", "mask",
                     "--model", red_model)
    assert code == 0 and len(list((tmp_path / "seq").glob("f_0[0-9][0-9].png"))) == N


def test_a_png_sequence_over_an_older_longer_one(red_model: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Without -y, old frames are refused; with it, a shorter run replaces the whole sequence, so a later
    ``ffmpeg -i frames/%06d.png`` does not pick up the old run's tail."""
    out_dir = tmp_path / "frames"
    seq = f"{out_dir}/%06d.png"
    long_clip, short_clip = make_clip(tmp_path / "long.mp4", frames=8), make_clip(tmp_path / "short.mp4", frames=3)
    assert cli(capsys, "-i", long_clip, "-o", seq, "--model", red_model)[0] == 0
    (out_dir / "notes.txt").write_text("mine")
    code, _, err = cli(capsys, "-i", short_clip, "-o", seq, "--model", red_model)
    assert code == 2 and "already holds frames" in err and "-y" in err and len(err.strip().splitlines()) == 1
    assert len(list(out_dir.glob("*.png"))) == 8
    assert cli(capsys, "-i", short_clip, "-o", seq, "--model", red_model, "-y")[0] == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["000001.png", "000002.png", "000003.png", "notes.txt"]


def test_a_folder_as_output_of_one_video_gets_the_video_with_its_audio(
        clip: Path, red_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-o results/`` writes results/<name>.vbg.mp4, as an image or a folder input would: not PNG frames
    that silently lose the sound."""
    code, _, err = cli(capsys, "-i", clip, "-o", f"{tmp_path / 'results'}/", "--model", red_model)
    dst = tmp_path / "results" / f"{clip.stem}.vbg.mp4"
    assert code == 0 and "warning" not in err and [p.name for p in (tmp_path / "results").iterdir()] == [dst.name]
    res, src = probe(dst), probe(clip, keep_frames=False)
    assert len(res.frames) == N and len(src.audio_packets) > 0 and res.audio_packets == src.audio_packets
    # a PNG sequence asked for by name says that the sound is not in it
    code, _, err = cli(capsys, "-i", clip, "-o", tmp_path / "seq" / "%06d.png", "--model", red_model)
    assert code == 0 and "the audio is not kept" in err and len(list((tmp_path / "seq").iterdir())) == N


def test_mask_video_is_grey_matte(clip: Path, red_model: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "c.mp4"
    src.write_bytes(clip.read_bytes())
    assert cli(capsys, "-i", src, "--output-mode", "mask", "--model", red_model)[0] == 0
    res = probe(tmp_path / "c.mask.mp4")
    assert len(res.frames) == N
    f = res.frames[5].astype(np.int16)
    assert np.abs(f[..., 0] - f[..., 2]).max() <= 3  # grey
    _check_alpha(f[..., 1], 5)
    inside, outside = regions(5)
    assert f[..., 1][inside].min() > 235 and f[..., 1][outside].max() < 25


def test_green_mode_composites_over_chroma_green(clip: Path, red_model: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "g.mp4"
    assert cli(capsys, "-i", clip, "-o", dst, "--output-mode", "green", "--bg", BG_ARG,
               "--model", red_model)[0] == 0
    frame = probe(dst).frames[0].astype(np.float32)
    inside, outside = regions(0)
    assert np.abs(frame[outside].mean(axis=0) - (64, 177, 0)).max() < 12  # #00b140
    assert np.abs(frame[inside].mean(axis=0) - PERSON_BGR).max() < 15


def test_config_file_then_flags(clip: Path, red_model: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "vbg.toml"
    cfg.write_text(f'[vbg]\nbg = "color:#0000ff"\nmodel = "{red_model.as_posix()}"\noutput_mode = "green"\n')
    dst = tmp_path / "o.mp4"
    assert cli(capsys, "-i", clip, "-o", dst, "--config", cfg, "--output-mode", "composite")[0] == 0
    frame = probe(dst).frames[0].astype(np.float32)
    _, outside = regions(0)
    assert np.abs(frame[outside].mean(axis=0) - (255, 0, 0)).max() < 12  # the config's blue, flag's mode


def test_convert_video_reports_stage_timings(clip: Path, red_model: Path, tmp_path: Path) -> None:
    s = Settings(model=str(red_model), bg="blur:9")
    stats = convert_video(clip, tmp_path / "o.mkv", s, batch=3)
    assert isinstance(stats, ConvertStats)
    assert stats.frames == N and stats.fps > 0 and stats.output == tmp_path / "o.mkv"
    assert {"decode", "segment", "smooth", "matte", "composite", "encode"} <= set(stats.stages)
    assert all(v >= 0 for v in stats.stages.values()) and stats.stages["encode"] > 0
    assert stats.audio == "copied aac"


def test_ctrl_c_removes_the_temporary_file(clip: Path, red_model: Path, tmp_path: Path) -> None:
    seen: list[int] = []

    def interrupt(n: int) -> None:
        seen.append(n)
        if sum(seen) >= 8:
            raise KeyboardInterrupt

    for dst in (tmp_path / "o.mp4", tmp_path / "frames"):
        with pytest.raises(KeyboardInterrupt):
            convert_video(clip, dst, Settings(model=str(red_model)), batch=4, on_progress=interrupt)
        assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary file
        seen.clear()


def test_memory_stays_flat_with_video_length(red_model: Path, tmp_path: Path) -> None:
    """Peak traced memory (numpy frames included) must not grow with the frame count."""
    short = make_clip(tmp_path / "short.mkv", width=160, height=120, frames=24, audio="aac")
    long = make_clip(tmp_path / "long.mkv", width=160, height=120, frames=144, audio="aac")
    s = Settings(model=str(red_model), bg="color:#00ff00")
    peaks = []
    for src in (short, long):
        convert_video(src, tmp_path / f"warm-{src.stem}.mkv", s)  # warm caches first
        tracemalloc.start()
        try:
            convert_video(src, tmp_path / f"out-{src.stem}.mkv", s)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    frame_bytes = 160 * 120 * 3
    assert peaks[1] < peaks[0] + 20 * frame_bytes, peaks  # 120 more frames would be 6x that


def test_peer_model_converts_a_real_webcam_clip(peer_spec: Path, shared_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    src = shared_dir / "videos" / "webcam" / "no.mkv"
    dst = tmp_path / "o.mp4"
    code, _, err = cli(capsys, "-i", src, "-o", dst, "--model", peer_spec, "--bg", "color:#00ff00")
    assert code == 0, err
    a, b = probe(src, keep_frames=False), probe(dst)
    assert len(b.frames) == len(a.times) and b.times == pytest.approx(a.times, abs=2e-3)
    green = np.all(np.abs(b.frames[len(b.frames) // 2].astype(int) - (0, 255, 0)) < 40, axis=2)
    assert 0.1 < green.mean() < 0.95  # part replaced, part (the person) kept


def _still_and_moving_clip(path: Path, frames: int = 38) -> tuple[Path, int]:
    """The disc moves, holds still for a while (the model's last mask is reused), then moves on."""
    out = av.open(str(path), "w")
    v = out.add_stream("libx264", rate=30)
    v.width, v.height, v.pix_fmt = W, H, "yuv420p"
    v.options = {"crf": "10", "preset": "ultrafast"}
    for i in range(frames):
        k = i if i < 10 else 10 if i < 25 else i - 15  # still from frame 10 to 24
        img, _ = disc_frame(W, H, 90 + 5 * k, 120, 50, seed=0)
        for p in v.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
            out.mux(p)
    for p in v.encode(None):
        out.mux(p)
    out.close()
    return path, frames


def test_model_ahead_in_its_thread_gives_exactly_the_one_thread_pipeline(red_model: Path, tmp_path: Path) -> None:
    """The conversion runs the model one batch ahead in its own thread; the frames it writes must be the
    ones ``Pipeline.process_batch`` makes batch by batch, skipped model runs and reused mattes included."""
    from vbg.io.decode import VideoFrames
    from vbg.pipeline import Pipeline

    clip, n = _still_and_moving_clip(tmp_path / "still.mkv")
    settings = Settings(model=str(red_model), bg=BG_ARG)
    convert_video(clip, tmp_path / "out", settings, batch=4)
    written = [cv2.imread(str(p)) for p in sorted((tmp_path / "out").glob("*.png"))]
    assert len(written) == n

    frames = []
    reader = VideoFrames(clip)
    with contextlib.suppress(StopIteration):
        while True:
            frames.append(reader.read()[0])
    reader.close()
    with Pipeline(settings) as pipe:
        want = [o.frame for i in range(0, n, 4) for o in pipe.process_batch(frames[i:i + 4])]
        assert pipe.model_runs < n - 8  # the still stretch reused masks: the gate's state crossed batches
    for i, (got, exp) in enumerate(zip(written, want)):
        assert np.array_equal(got, exp), f"frame {i}"


def test_a_model_failure_in_the_segment_thread_reaches_the_caller_and_leaves_nothing(
        clip: Path, red_model: Path, tmp_path: Path) -> None:
    from vbg.backends import create_backend
    from vbg.spec import ModelSpec

    backend = create_backend(ModelSpec.load(red_model), "cpu")
    calls = []
    infer = backend.infer

    def failing(frames):  # the device failing mid-run (a lost GPU, say) is the edge a test can stand in for
        calls.append(len(frames))
        if len(calls) == 3:
            raise RuntimeError("device lost")
        return infer(frames)

    backend.infer = failing  # type: ignore[method-assign]
    for dst in (tmp_path / "o.mp4", tmp_path / "frames"):
        calls.clear()
        with pytest.raises(RuntimeError, match="device lost"):
            convert_video(clip, dst, Settings(model=str(red_model), model_every="1"), backend=backend, batch=4)
        assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary file
        assert not [t for t in threading.enumerate() if t.name == "vbg-segment"]  # the thread has stopped
    # failing before the first frame (resetting the device): the writer thread stops too
    backend.infer = infer  # type: ignore[method-assign]
    backend.reset = lambda: (_ for _ in ()).throw(RuntimeError("device lost"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="device lost"):
        convert_video(clip, tmp_path / "o.mp4", Settings(model=str(red_model)), backend=backend)
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name in ("vbg-segment", "vbg-encode")]
    backend.close()
