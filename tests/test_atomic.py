"""Outputs appear complete or not at all, whenever the interruption lands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vbg.io import atomic
from vbg.io.atomic import atomic_folder, atomic_output


def test_success_renames_into_place(tmp_path: Path) -> None:
    final = tmp_path / "sub" / "o.mp4"
    with atomic_output(final) as tmp:
        assert tmp.parent == final.parent and atomic.PARTIAL_TAG in tmp.name and tmp.suffix == ".mp4"
        tmp.write_bytes(b"done")
    assert final.read_bytes() == b"done"
    assert sorted(p.name for p in final.parent.iterdir()) == ["o.mp4"]


def test_failure_removes_the_temporary_and_the_folders_it_made(tmp_path: Path) -> None:
    final = tmp_path / "a" / "b" / "o.mp4"
    with pytest.raises(RuntimeError), atomic_output(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder failed")
    assert list(tmp_path.iterdir()) == []


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``os.<name>`` on the temporary do its work, then raise as a Ctrl-C landing right after."""
    real = getattr(os, name)

    def then_interrupt(*args: object, **kwargs: object) -> object:
        # only the temporary's own call: os is process-wide, and other threads close files too
        target = os.readlink(f"/proc/self/fd/{args[0]}") if name == "close" else str(args[0])
        result = real(*args, **kwargs)
        if atomic.PARTIAL_TAG in target:
            monkeypatch.undo()  # once only
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(atomic.os, name, then_interrupt)


def test_ctrl_c_just_after_the_temporary_file_is_created(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The window the real-process Ctrl-C test hit on CI: the file exists, the
    # caller has not yet entered the block that cleans up.
    _interrupt_after(monkeypatch, "close")
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "out" / "o.mp4"):
        pytest.fail("the block must not start")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_just_after_the_temporary_folder_is_created(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _interrupt_after(monkeypatch, "mkdir")
    with pytest.raises(KeyboardInterrupt), atomic_folder(tmp_path / "frames"):
        pytest.fail("the block must not start")
    assert list(tmp_path.iterdir()) == []


def test_a_colliding_name_is_skipped_and_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["aaaa", "bbbb"])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: next(tokens))
    theirs = tmp_path / f".o{atomic.PARTIAL_TAG}aaaa.mp4"
    theirs.write_bytes(b"someone else's")
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "o.mp4") as tmp:
        assert tmp.name == f".o{atomic.PARTIAL_TAG}bbbb.mp4"
        raise RuntimeError
    assert theirs.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == [theirs.name]


def _sequence(folder: Path, n: int, text: str) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(1, n + 1):
        (folder / f"{i:03d}.png").write_text(f"{text}{i}")


def _is_frame(name: str) -> bool:
    return name[:3].isdigit() and name.endswith(".png")


def test_a_shorter_sequence_replaces_all_of_a_longer_one_and_keeps_other_files(tmp_path: Path) -> None:
    final = tmp_path / "frames"
    _sequence(final, 5, "old")
    (final / "notes.txt").write_text("mine")
    with atomic_folder(final, overwrite=True, owns=_is_frame) as tmp:
        _sequence(tmp, 3, "new")
    assert sorted(p.name for p in final.iterdir()) == ["001.png", "002.png", "003.png", "notes.txt"]
    assert [(final / f"{i:03d}.png").read_text() for i in (1, 2, 3)] == ["new1", "new2", "new3"]


def test_without_overwrite_any_old_frame_is_refused_and_left_alone(tmp_path: Path) -> None:
    final = tmp_path / "frames"
    (final).mkdir()
    (final / "007.png").write_text("old7")  # not a name the new run writes
    with pytest.raises(atomic.VbgError, match="007.png already exists"), atomic_folder(final, owns=_is_frame) as tmp:
        _sequence(tmp, 3, "new")
    assert [p.name for p in final.iterdir()] == ["007.png"] and (final / "007.png").read_text() == "old7"


@pytest.mark.parametrize("fail", [KeyboardInterrupt, OSError])
def test_an_interrupted_merge_puts_the_old_sequence_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         fail: type[BaseException]) -> None:
    final = tmp_path / "frames"
    _sequence(final, 5, "old")
    real, calls = os.replace, []

    def replace(src: object, dst: object) -> None:
        calls.append(src)
        if len(calls) == 7:  # the five old frames went aside, one new frame went in
            raise fail()
        real(src, dst)

    with pytest.raises(fail), atomic_folder(final, overwrite=True, owns=_is_frame) as tmp:
        _sequence(tmp, 3, "new")
        monkeypatch.setattr(atomic.os, "replace", replace)
    monkeypatch.undo()
    assert sorted(p.name for p in final.iterdir()) == [f"{i:03d}.png" for i in range(1, 6)]
    assert [(final / f"{i:03d}.png").read_text() for i in range(1, 6)] == [f"old{i}" for i in range(1, 6)]


def test_file_set_finds_a_file_by_any_name_it_has(tmp_path: Path) -> None:
    """What same_file says, one look-up per path: links, hard links, and names not written yet."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    a, b = src / "a.jpg", src / "b.jpg"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    os.link(a, out / "hard.jpg")
    (out / "soft.jpg").symlink_to(b)
    (out / "a.jpg").write_bytes(b"another file of the same name")
    inputs = atomic.FileSet([a, b])
    assert inputs.get(out / "hard.jpg") == a
    assert inputs.get(out / "soft.jpg") == b
    assert inputs.get(src / ".." / "src" / "b.jpg") == b
    assert inputs.get(src / "new.jpg") is None  # not written yet, and not an input
    assert inputs.get(out / "a.jpg") is None
    for p in (out / "hard.jpg", out / "soft.jpg", src / "new.jpg", out / "a.jpg"):
        assert (inputs.get(p) is not None) == any(atomic.same_file(p, q) for q in (a, b))


def test_a_folder_output_that_links_to_an_input_is_refused(tmp_path: Path) -> None:
    from vbg.apps.batch import plan_folder
    from vbg.errors import VbgError

    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (src / "a.png").write_bytes(b"not read at planning time")
    (out / "a.png").symlink_to(src / "a.png")
    with pytest.raises(VbgError, match="would overwrite the input a.png"):
        plan_folder(src, str(out), "composite", overwrite=True)
    assert (src / "a.png").read_bytes() == b"not read at planning time"
    # an output name that is a symlink loop is no input: planning goes on to the target checks
    (out / "a.png").unlink()
    (out / "a.png").symlink_to("a.png")
    assert atomic.FileSet([src / "a.png"]).get(out / "a.png") is None
    with pytest.raises(VbgError, match="a.png already exists"):
        plan_folder(src, str(out), "composite", overwrite=False)
    assert plan_folder(src, str(out), "composite", overwrite=True).images == [(src / "a.png", out / "a.png")]
