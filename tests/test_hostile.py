"""Cases from a hostile-input probe (issue 14): each broke a promise of the README's "Errors" and "Safe
outputs" sections before its fix. One line 'vbg: error: <what> (<fix>)', exit 2, no traceback, nothing
written over an input, nothing left behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from media import make_clip

import vbg
from vbg.apps import cli
from vbg.apps.cli import Terminated, guarded, main

ONE_LINE = re.compile(r"^vbg: error: .+ \(.+\)$")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "v.mp4", width=160, height=120, frames=12)


@pytest.fixture
def work(tmp_path: Path, clip: Path) -> Path:
    (tmp_path / "v.mp4").write_bytes(clip.read_bytes())
    cv2.imwrite(str(tmp_path / "i.jpg"), np.full((120, 160, 3), 40, np.uint8))
    cv2.imwrite(str(tmp_path / "bg.png"), np.full((120, 160, 3), 90, np.uint8))
    return tmp_path


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def fails(capsys: pytest.CaptureFixture[str], work: Path, *args: str | Path, expect: str) -> str:
    before = snapshot(work)
    old = os.getcwd()
    os.chdir(work)
    try:
        code = main(["--no-progress", *map(str, args)] if args[0] not in cli.COMMANDS else list(map(str, args)))
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and ONE_LINE.match(lines[0]), (code, err)
    assert expect in lines[0], lines[0]
    assert snapshot(work) == before  # no input changed, nothing new (no temporary file either)
    return lines[0]


def test_y_never_writes_over_the_background_config_or_model(capsys: pytest.CaptureFixture[str], work: Path,
                                                            red_model: Path) -> None:
    m = "--model", red_model
    fails(capsys, work, "-y", "--input", "i.jpg", "--bg", "bg.png", "-o", "bg.png", *m,
          expect="would write over bg.png, which this run reads")
    (work / "v1.mp4").write_bytes((work / "v.mp4").read_bytes())
    fails(capsys, work, "-y", "--input", "v.mp4", "--bg", "v1.mp4", "-o", "v1.mp4", *m, expect="which this run reads")
    (work / "c.png").write_text("[vbg]\nthreshold = 0.5\n")
    fails(capsys, work, "-y", "--input", "i.jpg", "--config", "c.png", "-o", "c.png", *m, expect="which this run reads")
    spec = json.loads(red_model.read_text())  # a model whose ONNX file happens to be named .png
    (work / "m.png").write_bytes(red_model.with_name(spec["onnx"]).read_bytes())
    (work / "s.json").write_text(json.dumps({**spec, "onnx": "m.png"}))
    fails(capsys, work, "-y", "--input", "i.jpg", "-o", "m.png", "--model", "s.json", expect="which this run reads")
    (work / "x").mkdir()
    (work / "x" / "000001.png").write_bytes((work / "bg.png").read_bytes())
    fails(capsys, work, "-y", "--input", "v.mp4", "-o", "x/%06d.png", "--bg", "x/000001.png", *m,
          expect="would write over x/000001.png")
    (work / "fold").mkdir()
    (work / "fold" / "bg.png").write_bytes((work / "bg.png").read_bytes())
    fails(capsys, work, "-y", "--input", "fold", "-o", ".", "--bg", "bg.png", *m, expect="which this run reads")


def test_png_sequence_staging(work: Path, red_model: Path) -> None:
    """A new folder is built beside its name and appears whole; an existing one (a mount point, say)
    gets the temporary folder inside it, so the moves never cross a file system and only it needs to
    be writable."""
    from vbg.apps.batch import convert_video

    def run(out: Path) -> list[list[str]]:
        seen: list[list[str]] = []
        convert_video(work / "v.mp4", out / "%06d.png", vbg.Settings(model=str(red_model)), batch=4,
                      on_progress=lambda n: seen.append(sorted(os.listdir(work)) + sorted(
                          f"{out.name}/{x}" for x in (os.listdir(out) if out.is_dir() else []))))
        return seen

    seen = run(work / "new")
    assert all("new" not in s and any(x.startswith(".new.vbg-partial-") for x in s) for s in seen)
    assert sorted(os.listdir(work / "new")) == [f"{i:06d}.png" for i in range(1, 13)]
    (work / "old").mkdir()
    (work / "old" / "keep.txt").write_text("mine")
    seen = run(work / "old")
    assert all(any(x.startswith("old/.vbg-partial-") for x in s) for s in seen)
    assert sorted(os.listdir(work / "old")) == [f"{i:06d}.png" for i in range(1, 13)] + ["keep.txt"]
    assert sorted(os.listdir(work)) == ["bg.png", "i.jpg", "new", "old", "v.mp4"]


def test_a_signal_inside_an_import_ends_like_any_other(capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM while onnxruntime is being imported surfaced as the ImportError it caused."""
    def run() -> int:
        try:
            raise Terminated(15)
        except Terminated as exc:
            raise ImportError("initialization failed") from exc

    assert guarded(run) == 143
    assert capsys.readouterr().err == "vbg: stopped by SIGTERM; unfinished outputs were removed\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_pipes_and_devices_are_refused_not_read_forever(work: Path) -> None:
    os.mkfifo(work / "f.mp4")
    os.mkfifo(work / "f.jpg")
    for args, what in ((["--input", "f.mp4"], "input f.mp4"), (["--input", "i.jpg", "--bg", "f.jpg"], "background"),
                       (["--input", "i.jpg", "--config", "f.jpg"], "config")):
        r = subprocess.run([sys.executable, "-m", "vbg", "--no-progress", "-o", "o.jpg", *args], cwd=work,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stderr.splitlines() == [
            f"vbg: error: {what}{' f.jpg' if what != 'input f.mp4' else ''} is not a regular file "
            "(a pipe, socket or device) (give a file)"], r.stderr


def test_names_too_long_paths_of_no_user_and_nul(capsys: pytest.CaptureFixture[str], work: Path,
                                                red_model: Path) -> None:
    long = "a" * 300
    m = "--model", red_model
    for flag in ("--bg", "--config"):
        fails(capsys, work, "--input", "i.jpg", "-o", "o.jpg", flag, f"{long}.png", *m, expect="too long")
    fails(capsys, work, "--input", "i.jpg", "-o", "o.jpg", "--model", f"{long}.json", expect="too long")
    fails(capsys, work, "--input", f"{long}/v.mp4", *m, expect="too long")
    name = "n" * 249 + ".mp4"  # fits; its default output NAME.vbg.mp4 does not
    (work / name).write_bytes((work / "v.mp4").read_bytes())
    fails(capsys, work, "--input", name, *m, expect="257 bytes long")
    fails(capsys, work, "--input", "~nosuchuser0/x.mp4", *m, expect="~user for a user that does not exist")
    fails(capsys, work, "--input", "i.jpg", "--bg", "~nosuchuser0/x.png", "-o", "o.jpg", *m,
          expect="~user for a user that does not exist")
    with pytest.raises(vbg.VbgError, match="NUL"):
        vbg.convert(work / "v.mp4", work / "a\0b.mp4", model=str(red_model))


@pytest.mark.parametrize("pattern", ["x/%s.png", "x/100%.png", "x/%d_%d.png", "x/%-6d.png", "x/%x.png"])
def test_frame_number_patterns_are_checked(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path,
                                           pattern: str) -> None:
    fails(capsys, work, "--input", "v.mp4", "-o", pattern, "--model", red_model, expect="bad frame-number pattern")


def test_a_pattern_for_one_image_an_empty_background_and_preset(capsys: pytest.CaptureFixture[str], work: Path,
                                                                red_model: Path) -> None:
    m = "--model", red_model
    fails(capsys, work, "--input", "i.jpg", "-o", "x/%06d.png", *m, expect="is a frame-number pattern")
    fails(capsys, work, "--input", "i.jpg", "--bg", "", "-o", "o.jpg", *m, expect="the background is empty")
    fails(capsys, work, "--input", "v.mp4", "--preset", "", *m, expect="unknown --preset ''")
    fails(capsys, work, "--input", "v.mp4", "", *m, expect="remove the empty argument")  # "$EXTRA" unset
    # a literal % in one image's name is just a name
    assert main(["--input", str(work / "i.jpg"), "-o", str(work / "100%.png"), "--model", str(red_model)]) == 0
    assert (work / "100%.png").is_file()


def test_broken_user_specs_are_skipped_quietly_unless_asked_for(capsys: pytest.CaptureFixture[str], work: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                red_model: Path) -> None:
    um = work / "models"
    um.mkdir()
    (um / "x.json").write_bytes(b'{"name": "\xff"}')
    (um / "y.json").write_text("[" * 100000 + "]" * 100000)
    monkeypatch.setenv("VBG_MODELS", str(um))
    fails(capsys, work, "--input", "i.jpg", "-o", "o.jpg", "--model", um / "x.json", expect="is not UTF-8 text")
    fails(capsys, work, "--input", "i.jpg", "-o", "o.jpg", "--model", um / "y.json", expect="nested too deeply")
    # the bundled default answers: the user folder is not read, so no warnings on every run
    assert main(["--no-progress", "--input", str(work / "i.jpg"), "-o", str(work / "o.jpg")]) == 0
    assert capsys.readouterr().err == ""
    assert main(["models"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("vbg: warning: skipping ") for line in err)


def test_the_summary_survives_a_closed_or_full_stdout(work: Path, red_model: Path) -> None:
    cmd = [sys.executable, "-m", "vbg", "--no-progress", "--input", "v.mp4", "--model", str(red_model), "-o"]
    r = subprocess.run(f"{' '.join(map(str, cmd))} o.mp4 | (exec 0<&-; sleep 1)", shell=True, cwd=work,
                       capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr and (work / "o.mp4").stat().st_size > 0
    if Path("/dev/full").exists():
        with open("/dev/full", "w") as full:
            r = subprocess.run([*cmd, "o2.mp4"], cwd=work, stdout=full, stderr=subprocess.PIPE, text=True,
                               timeout=120)
        assert r.returncode == 0 and (work / "o2.mp4").stat().st_size > 0
        assert r.stderr == "vbg: warning: could not print the summary: No space left on device\n"


def _damaged(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(0)
    for at in rng.integers(len(data) // 4, len(data) * 3 // 4, 60):  # inside the frames, not the header
        data[at:at + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def test_a_damaged_input_says_so_once_not_per_packet(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     red_model: Path) -> None:
    src = make_clip(tmp_path / "long.mkv", width=160, height=120, frames=240, audio=None)
    bad = _damaged(src, tmp_path / "bad.mkv")
    rc = main(["--no-progress", "--input", str(bad), "-o", str(tmp_path / "o.mp4"), "--model", str(red_model)])
    out, err_text = capsys.readouterr()
    err = err_text.splitlines()
    assert rc == 0 and (tmp_path / "o.mp4").stat().st_size > 0, err  # what could be decoded is converted
    assert "Traceback" not in err_text
    summary = [line for line in err if "damaged packets were skipped" in line]
    assert len(summary) == 1, err  # one summary ...
    skipped = re.search(r"(\d+) damaged packets were skipped", summary[0])
    assert skipped and int(skipped.group(1)) >= 2, err  # (of several: else this proves nothing)
    assert sum("skipping a damaged video packet" in line for line in err) == 1, err  # ... not one per packet
    assert len(err) <= 3, err
    assert "frames in" in out  # and the usual summary


def _vfr_mkv(path: Path) -> Path:
    """An MKV (no frame count in it) whose frames come 1 s and 0.1 s apart."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt, s.time_base = 160, 120, "yuv420p", Fraction(1, 1000)
        t = 0
        for i in range(12):
            f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 20 * i, np.uint8), format="bgr24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            t += 100 if i % 2 else 1000
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def test_variable_frame_rate_is_not_damage_but_a_cut_is(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                        red_model: Path) -> None:
    vfr = _vfr_mkv(tmp_path / "vfr.mkv")
    m = ["--model", str(red_model), "--no-progress", "--strict"]
    assert main(["--input", str(vfr), "-o", str(tmp_path / "o.mp4"), *m]) == 0, capsys.readouterr().err
    capsys.readouterr()
    full = make_clip(tmp_path / "full.mkv", width=160, height=120, frames=300, audio=None)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    assert main(["--input", str(cut), "-o", str(tmp_path / "o2.mp4"), *m]) == 2
    assert "the input is damaged or cut short" in capsys.readouterr().err
    assert not (tmp_path / "o2.mp4").exists()


def test_a_folder_goes_on_past_a_bad_video(capsys: pytest.CaptureFixture[str], work: Path, red_model: Path) -> None:
    fold = work / "fold"
    fold.mkdir()
    (fold / "a.mp4").write_bytes((work / "v.mp4").read_bytes())
    (fold / "b.mp4").write_bytes((work / "v.mp4").read_bytes()[:3000])
    (fold / "c.mp4").write_bytes((work / "v.mp4").read_bytes())
    (fold / "d.jpg").write_bytes((work / "i.jpg").read_bytes())
    code = main(["--no-progress", "--input", str(fold), "-o", str(work / "out"), "--model", str(red_model)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and sorted(os.listdir(work / "out")) == ["a.mp4", "c.mp4", "d.jpg"]
    assert err[-1] == ("vbg: error: 1 of 3 videos could not be converted (b.mp4); 2 other videos and 1 image "
                       "were converted (see the warnings above)")
    assert len(err) == 2 and "b.mp4" in err[0]
    # a bad image too: its error is a warning above the last line, as the video's is
    (fold / "e.jpg").write_bytes(b"not a picture")
    code = main(["--no-progress", "--input", str(fold), "-o", str(work / "out2"), "--model", str(red_model)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 3 and any("could not read" in e and "e.jpg" in e for e in err[:2])
    assert err[-1].startswith("vbg: error: 1 of 3 videos could not be converted (b.mp4); 2 other videos were "
                              "converted; could not read") and "1 other image was written" in err[-1]


def test_live_with_a_source_too_small_is_one_error(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   red_model: Path) -> None:
    tiny = make_clip(tmp_path / "t.mp4", width=8, height=8, frames=10, audio=None)
    code = main(["live", "--no-virtual-cam", "--no-window", "--frames", "5", "--camera", str(tiny),
                 "--model", str(red_model)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err == [f"vbg: error: camera {tiny} is 8x8 pixels, too small to find a person in "
                                 "(give a picture at least 16x16)"], err


def test_a_newline_in_a_name_stays_on_one_line(capsys: pytest.CaptureFixture[str], work: Path) -> None:
    line = fails(capsys, work, "--input", "no\npe.mp4", expect="not found")
    assert "no\\npe.mp4" in line


def test_the_python_api_checks_what_it_is_given(work: Path, red_model: Path) -> None:
    f = np.zeros((120, 160, 3), np.uint8)
    with pytest.raises(vbg.VbgError, match="must be vbg.Settings"):
        vbg.Pipeline({})  # type: ignore[arg-type]
    p = vbg.Pipeline(vbg.Settings(model=str(red_model), bg="color:#00ff00"))
    for bad, msg in ((f.astype(np.float32), "must be uint8"), (f[..., 0], r"shape \(H, W, 3\)"),
                     (np.zeros((120, 160, 4), np.uint8), r"shape \(H, W, 3\)"), (None, "numpy array"),
                     (f[None], r"shape \(H, W, 3\)")):
        with pytest.raises(vbg.VbgError, match=msg):
            p.process(bad)  # type: ignore[arg-type]
    assert p.process(np.asfortranarray(f)).frame.shape == (120, 160, 3)  # any memory order is fine
    p.close()
    with pytest.raises(vbg.VbgError, match="closed"):
        p.process(f)
    for kw, msg in ((dict(threshold="0.5"), "bad value '0.5'"), (dict(bg=None), "bad value None"),
                    (dict(mirror="maybe"), "true or false"), (dict(width=640.5), "whole number"),
                    (dict(quality=True), "whole number")):
        with pytest.raises(vbg.VbgError, match=msg):
            vbg.Settings(**kw)  # type: ignore[arg-type]
    assert vbg.Settings(bg=Path("x.png")).bg == "x.png" and vbg.Settings(mirror="no").mirror is False  # type: ignore
    s = vbg.Settings(threshold=np.float32(0.25), width=np.int64(640), mirror=np.bool_(True))  # type: ignore
    assert (s.threshold, s.width, s.mirror) == (0.25, 640, True) and type(s.width) is int
    with pytest.raises(vbg.VbgError, match="no input given"):
        vbg.convert(None)  # type: ignore[arg-type]
    for kw, msg in ((dict(bogus=1), "no setting 'bogus'"), (dict(batch="4"), "batch must be a whole number"),
                    (dict(settings={}), "must be vbg.Settings")):
        with pytest.raises(vbg.VbgError, match=msg):
            vbg.convert(work / "i.jpg", work / "o.jpg", **kw)  # type: ignore[arg-type]
    st = vbg.convert(work / "i.jpg", work / "o.jpg", bg=work / "bg.png", model=str(red_model))
    assert st.frames == 1 and st.summary().startswith("vbg: 1 frame in ")
