"""Bad input: one line 'vbg: error: <what> (<fix>)', exit code 2, no traceback, nothing left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from media import make_clip

from vbg.apps.cli import main

ROOT = Path(__file__).resolve().parents[1]
ONE_LINE = re.compile(r"^vbg: error: .+ \(.+\)$")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "in.mp4", width=160, height=120, frames=8)


@pytest.fixture
def work(tmp_path: Path, clip: Path) -> Path:
    """A folder holding a copy of the clip, a photo and a background."""
    (tmp_path / "in.mp4").write_bytes(clip.read_bytes())
    import cv2

    img = np.full((60, 80, 3), (40, 40, 220), np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), img)
    cv2.imwrite(str(tmp_path / "beach.jpg"), np.full((60, 80, 3), 200, np.uint8))
    return tmp_path


def listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def fails(capsys: pytest.CaptureFixture[str], work: Path, *args: str | Path, expect: str) -> str:
    """Run the CLI, check the one-line error contract, return the line."""
    before = listing(work)
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert ONE_LINE.match(lines[0]), lines[0]
    assert expect in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    assert listing(work) == before  # no output, no temporary file, no new folder
    return lines[0]


def test_no_input(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path) -> None:
    fails(capsys, work, "--bg", "blur", "--model", red_model, expect="no input given")


def test_missing_input(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path) -> None:
    fails(capsys, work, "-i", work / "nope.mp4", "--model", red_model, expect="not found")
    fails(capsys, work, "-i", work / "nope.jpg", "--model", red_model, expect="not found")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_input(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path) -> None:
    src = work / "in.mp4"
    src.chmod(0)
    try:
        fails(capsys, work, "-i", src, "--model", red_model, expect="permission denied")
    finally:
        src.chmod(0o644)


def test_corrupt_video(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path) -> None:
    bad = work / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    fails(capsys, work, "-i", bad, "--model", red_model, expect="corrupt")
    empty = work / "empty.mkv"
    empty.write_bytes(b"")
    fails(capsys, work, "-i", empty, "--model", red_model, expect="corrupt")
    half = work / "half.mp4"  # moov atom at the end: a cut-off download
    half.write_bytes((work / "in.mp4").read_bytes()[:4000])
    fails(capsys, work, "-i", half, "--model", red_model, expect=str(half))


def test_video_without_frames(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path) -> None:
    # A video track whose packets hold no decodable picture (FFmpeg drops empty tracks entirely).
    empty = work / "noframes.mkv"
    with av.open(str(empty), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()
        for i in range(3):
            p = av.Packet(np.random.default_rng(i).integers(0, 256, 500, dtype=np.uint8).tobytes())
            p.stream, p.pts, p.dts, p.time_base = s, i, i, Fraction(1, 30)
            out.mux(p)
    with av.open(str(empty)) as c:
        assert len(c.streams.video) == 1
    fails(capsys, work, "-i", empty, "--model", red_model, expect="has no video frames")
    sound = work / "sound.mka"  # audio only
    with av.open(str(sound), "w") as out:
        a = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        f.sample_rate = 8000
        for p in a.encode(f):
            out.mux(p)
    fails(capsys, work, "-i", sound, "--model", red_model, expect="has no video stream")


def test_corrupt_image_and_empty_folder(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path) -> None:
    bad = work / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    fails(capsys, work, "-i", bad, "--model", red_model, expect="not an image, or the file is corrupt")
    (work / "empty").mkdir()
    fails(capsys, work, "-i", work / "empty", "--model", red_model, expect="no images or videos in")


def test_unreadable_background(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path) -> None:
    fails(capsys, work, "-i", work / "in.mp4", "--bg", work / "nope.jpg", "--model", red_model,
          expect="background")
    broken = work / "broken.png"
    broken.write_bytes(b"\x89PNG broken")
    fails(capsys, work, "-i", work / "photo.png", "--bg", broken, "--model", red_model, expect="background")
    fails(capsys, work, "-i", work / "in.mp4", "--bg", "color:#12345", "--model", red_model, expect="colour")


def test_unknown_model(capsys: pytest.CaptureFixture[str], work: Path) -> None:
    fails(capsys, work, "-i", work / "in.mp4", "--model", "no-such-model", expect="unknown model")
    fails(capsys, work, "-i", work / "photo.png", "--model", "no-such-model", expect="unknown model")


def test_no_bundled_model(capsys: pytest.CaptureFixture[str], work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vbg.models

    # an install whose assets are missing, and no user models
    monkeypatch.setattr(vbg.models, "bundled_models_dir", lambda: work / "no-assets")
    monkeypatch.setenv("VBG_MODELS", str(work / "no-user-models"))
    fails(capsys, work, "-i", work / "in.mp4", expect="no bundled model found")


@pytest.mark.parametrize("flag,value,expect", [
    ("--threshold", "2", "threshold 2 out of range"),
    ("--threshold", "abc", "expects a number"),
    ("--feather", "-1", "feather -1 out of range"),
    ("--smoothing", "1.5", "smoothing 1.5 out of range"),
    ("--slope", "0", "slope 0 out of range"),
    ("--light-wrap", "3", "light-wrap 3 out of range"),
    ("--quality", "99", "quality 99 out of range"),
    ("--quality", "20.5", "whole number"),
    ("--batch", "0", "--batch 0 out of range"),
    ("--bg", "blur:500", "blur strength 500 out of range"),
    ("--output-mode", "sepia", "unknown output mode"),
    ("--backend", "abacus", "unknown backend"),
    ("--preset", "warp", "unknown --preset"),
])
def test_out_of_range_options(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path,
                              flag: str, value: str, expect: str) -> None:
    fails(capsys, work, "-i", work / "in.mp4", "--model", red_model, flag, value, expect=expect)


def test_bad_config_file(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path) -> None:
    cfg = work / "bad.toml"
    cfg.write_text("[vbg]\nthreshold = 7\n")
    fails(capsys, work, "-i", work / "in.mp4", "--model", red_model, "--config", cfg, expect="threshold 7")
    fails(capsys, work, "-i", work / "in.mp4", "--model", red_model, "--config", work / "none.toml",
          expect="none.toml not found")
    # a flag mends the file's bad value (flags win), but a misspelt key is still refused
    out = work / "mended.mp4"
    assert main(["-i", str(work / "in.mp4"), "--model", str(red_model), "--config", str(cfg), "--threshold", "0.5",
                 "-o", str(out), "--no-progress"]) == 0 and out.is_file()
    out.unlink()
    capsys.readouterr()
    cfg.write_text("[vbg]\nthreshhold = 0.5\n")
    fails(capsys, work, "-i", work / "in.mp4", "--model", red_model, "--config", cfg, "--threshold", "0.5",
          expect="unknown setting 'threshhold'")


def test_a_broken_user_config_says_how_to_get_past_it(capsys: pytest.CaptureFixture[str], work: Path,
                                                       red_model: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBG_CONFIG_DIR", str(tmp_path / "cfg"))
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.toml").write_text("[vbg\n")
    line = fails(capsys, work, "-i", work / "in.mp4", "--model", red_model, expect="config.toml is not valid TOML")
    assert f". Or delete {tmp_path / 'cfg' / 'config.toml'}, or read another file with --config FILE)" in line


def _unwritable_dir(tmp_path: Path) -> Path:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root writes anywhere the permissions say no; sysfs refuses new files even to root
        probe = Path("/sys/vbg-probe")
        try:
            probe.touch()
        except OSError:
            return Path("/sys")
        probe.unlink()
        pytest.skip("no unwritable folder available to root here")
    d = tmp_path / "locked"
    d.mkdir()
    d.chmod(0o555)
    return d


def test_output_folder_not_writable(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    locked = _unwritable_dir(tmp_path_factory.mktemp("locked"))
    try:
        fails(capsys, work, "-i", work / "in.mp4", "-o", locked / "out.mp4", "--model", red_model,
              expect="not writable")
        fails(capsys, work, "-i", work / "photo.png", "-o", locked / "out.png", "--model", red_model,
              expect="not writable")
        fails(capsys, work, "-i", work / "in.mp4", "-o", locked / "sub" / "out.mp4", "--model", red_model,
              expect="not writable")
        fails(capsys, work, "-i", work / "in.mp4", "-o", f"{locked}/frames/", "--output-mode", "mask",
              "--model", red_model, expect="not writable")
    finally:
        if locked != Path("/sys"):
            locked.chmod(0o755)
    # a path "inside" a file
    fails(capsys, work, "-i", work / "in.mp4", "-o", work / "photo.png" / "out.mp4", "--model", red_model,
          expect="photo.png")


def test_output_equal_to_input(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    original = (work / "in.mp4").read_bytes()
    for out in (work / "in.mp4", work / "sub" / ".." / "in.mp4"):
        fails(capsys, work, "-i", work / "in.mp4", "-o", out, "--model", red_model, "-y", expect="is the input")
    monkeypatch.chdir(work)
    fails(capsys, work, "-i", "in.mp4", "-o", "./in.mp4", "--model", red_model, "-y", expect="is the input")
    os.symlink(work / "in.mp4", work / "link.mp4")
    fails(capsys, work, "-i", work / "link.mp4", "-o", work / "in.mp4", "--model", red_model, "-y",
          expect="is the input")
    fails(capsys, work, "-i", work / "photo.png", "-o", work / "photo.png", "--model", red_model, "-y",
          expect="is the input")
    assert (work / "in.mp4").read_bytes() == original


def test_folder_converted_into_itself_writes_tagged_names_beside_the_inputs(
        capsys: pytest.CaptureFixture[str], work: Path, red_model: Path) -> None:
    """Same-named outputs would overwrite the PNGs; tagged ones sit beside them, and a re-run does not
    take the earlier run's outputs for inputs."""
    photos = work / "photos"
    photos.mkdir()
    original = (work / "photo.png").read_bytes()
    (photos / "x.png").write_bytes(original)
    args = ["-i", str(photos), "-o", str(photos), "--output-mode", "mask", "--model", str(red_model), "--no-progress"]
    assert main(args) == 0
    assert sorted(p.name for p in photos.iterdir()) == ["x.mask.png", "x.png"]
    assert (photos / "x.png").read_bytes() == original
    mask = cv2.imread(str(photos / "x.mask.png"), cv2.IMREAD_GRAYSCALE)
    assert mask is not None and mask.shape == cv2.imread(str(photos / "x.png")).shape[:2]
    capsys.readouterr()
    fails(capsys, work, *args, expect="already exists")  # the earlier output is not overwritten unasked
    assert main([*args, "-y"]) == 0  # with -y: x.png again, and x.mask.png is not converted to x.mask.mask.png
    assert "skipped 1 file named *.vbg.* or *.mask.*" in capsys.readouterr().err
    assert sorted(p.name for p in photos.iterdir()) == ["x.mask.png", "x.png"]
    (photos / "x.mask.png").rename(photos / "x.MASK.png")  # the tag in any case
    assert main([*args[:4], "--model", str(red_model), "--no-progress"]) == 0  # the composite: x.png only
    assert sorted(p.name for p in photos.iterdir()) == ["x.MASK.png", "x.png", "x.vbg.png"]
    assert "skipped 1 file" in capsys.readouterr().err
    # an earlier output read as the background: one line, the error, without the skip warning before it
    fails(capsys, work, *args[:4], "--model", red_model, "--no-progress", "-y", "--bg", photos / "x.vbg.png",
          expect="which this run reads")
    (photos / "x.png").unlink()
    fails(capsys, work, *args, "-y", expect="holds only the output of an earlier run")


def test_existing_output_and_impossible_containers(capsys: pytest.CaptureFixture[str], work: Path,
                                                   red_model: Path) -> None:
    (work / "taken.mp4").write_bytes(b"keep me")
    fails(capsys, work, "-i", work / "in.mp4", "-o", work / "taken.mp4", "--model", red_model,
          expect="already exists")
    assert (work / "taken.mp4").read_bytes() == b"keep me"
    fails(capsys, work, "-i", work / "in.mp4", "-o", work / "a.mp4", "--output-mode", "alpha",
          "--model", red_model, expect="cannot hold transparency")
    fails(capsys, work, "-i", work / "photo.png", "-o", work / "a.jpg", "--bg", "none",
          "--model", red_model, expect="cannot hold transparency")
    fails(capsys, work, "-i", work / "in.mp4", "-o", work / "out.avi", "--model", red_model,
          expect="unknown video output type")


def _subprocess(*args: str | Path, **kw: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "vbg", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)  # type: ignore[call-overload]


def test_real_process_prints_exactly_one_line(work: Path, red_model: Path) -> None:
    bad = work / "bad.mov"
    bad.write_bytes(b"\x00\x00\x00\x18ftypqt  " + b"\x01" * 3000)
    p = _subprocess("--input", bad, "--bg", "blur:25", "--model", red_model)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2
    assert err.endswith("\n") and len(err.splitlines()) == 1, err
    assert ONE_LINE.match(err.strip()) and "bad.mov" in err
    assert out == ""


def test_ctrl_c_in_a_real_process_leaves_nothing(work: Path, red_model: Path, tmp_path_factory:
                                                 pytest.TempPathFactory) -> None:
    # long enough that the signal lands mid-way, even under load
    src = make_clip(tmp_path_factory.mktemp("long") / "long.mp4", width=320, height=240, frames=900, audio=None)
    out_dir = work / "out"
    out_dir.mkdir()
    p = _subprocess("-i", src, "-o", out_dir / "o.mp4", "--model", red_model, "--batch", "1")
    deadline = time.monotonic() + 60
    while not any(out_dir.iterdir()):  # the temporary file appears once encoding starts
        if p.poll() is not None or time.monotonic() > deadline:
            out, err = p.communicate()
            pytest.fail(f"conversion ended before it could be interrupted: {err}")
        time.sleep(0.005)
    assert all(".vbg-partial-" in n.name for n in out_dir.iterdir())
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    if "vbg: 900 frames" in out:
        pytest.skip("the conversion finished before the signal arrived")
    assert p.returncode == 130 and err.strip() == "vbg: interrupted; unfinished outputs were removed", err
    assert list(out_dir.iterdir()) == []


def test_mistyped_arguments_are_one_line_with_a_suggestion(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """argparse's own errors (a usage block, then the message) become vbg's one line, with the likely fix."""
    (tmp_path / "talk.mp4").write_bytes(b"")
    fails(capsys, tmp_path, tmp_path / "talk.mp4", expect="give the input as --input")
    fails(capsys, tmp_path, "--imput", tmp_path / "talk.mp4", expect="did you mean --input?")
    fails(capsys, tmp_path, "modles", expect="did you mean 'vbg models'?")
    fails(capsys, tmp_path, "-i", tmp_path / "talk.mp4", "--bg", expect="see 'vbg --help'")
    fails(capsys, tmp_path, "models", "--bogus", expect="see 'vbg models --help'")
