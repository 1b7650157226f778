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
