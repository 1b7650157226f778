"""Outputs that appear complete or not at all.

``atomic_output(final)`` hands out a temporary path in the final file's own
directory (same file system, so the closing rename is atomic) and renames it
to ``final`` only when the ``with`` block ends normally. On an exception,
including ``KeyboardInterrupt``, the temporary file or folder is removed, so
a failed or interrupted conversion leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import VbgError

log = logging.getLogger(__name__)

PARTIAL_TAG = ".vbg-partial-"


def _norm(p: Path) -> str:
    try:
        p = p.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13): its own name
        pass
    return os.path.normcase(os.path.abspath(p))


def _file_id(p: Path) -> tuple[int, int] | None:
    try:
        st = p.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name the same file (following links), existing or not."""
    ia, ib = _file_id(a), _file_id(b)
    if ia is not None and ib is not None:
        return ia == ib
    return _norm(a) == _norm(b)


class FileSet:
    """Files to ask "is this path one of them?" as :func:`same_file` would, in one look-up each
    (a folder of thousands checks every output against every input)."""

    def __init__(self, paths: list[Path]) -> None:
        self._ids: dict[tuple[int, int], Path] = {}
        self._names: dict[str, Path] = {}
        for p in paths:
            self._names.setdefault(_norm(p), p)
            i = _file_id(p)
            if i is not None:
                self._ids.setdefault(i, p)

    def get(self, p: Path) -> Path | None:
        """The member that ``p`` names, or None."""
        i = _file_id(p)
        if i is not None and i in self._ids:
            return self._ids[i]
        hit = self._names.get(_norm(p))
        if hit is not None and i is not None and _file_id(hit) is not None:
            return None  # both exist and are different files: same_file says no
        return hit


def ensure_dir(d: Path) -> list[Path]:
    """Create ``d`` (and parents) if needed; -> the folders created, innermost last.

    A one-line error if that is impossible.
    """
    created = []
    p = d
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    try:
        d.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise VbgError(f"output folder {d} is a file", "choose another --output") from None
    except OSError as exc:
        raise _dir_error(d, exc) from None
    if not d.is_dir():
        raise VbgError(f"output folder {d} is not a folder", "choose another --output")
    return created[::-1]


def _remove_dirs(created: list[Path]) -> None:
    """Undo ``ensure_dir``: remove the folders it made, if still empty."""
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            break


def _dir_error(d: Path, exc: OSError) -> VbgError:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return VbgError(f"output folder {d} is not writable",
                        "choose another --output, or fix the folder's permissions")
    if exc.errno == errno.ENOTDIR:
        return VbgError(f"output path {d} is inside a file, not a folder", "choose another --output")
    if exc.errno == errno.ENOSPC:
        return VbgError(f"no space left in {d}", "free some disk space or choose another --output")
    return VbgError(f"cannot write to {d}: {exc.strerror}", "choose another --output")


def name_max(d: Path) -> int:
    """The longest file name (in bytes) the file system of ``d`` (or its nearest existing parent) allows."""
    p = d
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(os.pathconf(p, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # Windows has no pathconf: NTFS allows 255 characters
        return 255


def check_name(path: Path) -> None:
    """A name the file system cannot hold is one line, before any work (and before any query of it,
    which would fail with a traceback)."""
    if "\0" in str(path):
        raise VbgError(f"the name {str(path)!r} holds a NUL character", "choose another name")
    for part in path.parts:
        n = len(os.fsencode(part))
        if n > 255 or (part == path.name and n > name_max(path.parent)):
            limit = name_max(path.parent)
            raise VbgError(f"the name {part[:40]}... is {n} bytes long, and this file system allows {limit}",
                           "choose a shorter name")


FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))


def full_error(exc: BaseException, written: int, where: Path) -> VbgError | None:
    """A one-line error for a full disk or a file-size limit, saying how much had been written."""
    if not isinstance(exc, OSError) or exc.errno not in FULL_ERRNOS:
        return None
    size = f"{written / 1e6:.1f} MB" if written >= 100_000 else f"{written / 1e3:.0f} kB"
    if exc.errno == errno.EFBIG:
        return VbgError(f"the output hit the file-size limit (ulimit -f) after {size}; the partial output was removed",
                        "raise the limit, or write a shorter or smaller output")
    return VbgError(f"the disk holding {where} is full after {size} of output; the partial output was removed",
                    "free some space, or write to another disk")


def _size(p: Path) -> int:
    try:
        if p.is_dir():
            return sum(f.stat().st_size for f in p.iterdir() if f.is_file())
        return p.stat().st_size
    except OSError:
        return 0


def check_target(final: Path, *, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse to write over an input, or over an existing output without ``overwrite``."""
    check_name(final)
    for src in inputs:
        if same_file(final, src):
            raise VbgError(f"output {final} is the input file", "choose another --output; inputs are never overwritten")
    if final.is_dir():
        raise VbgError(f"output {final} is a folder", "choose a file name for --output")
    # a dangling or looping link counts too: the rename would replace it
    if (final.exists() or final.is_symlink()) and not overwrite:
        raise VbgError(f"output {final} already exists", "use -y to overwrite it, or choose another --output")


@contextlib.contextmanager
def atomic_output(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary file path beside ``final``; rename it into place on success.

    The temporary name keeps ``final``'s extension (encoders pick the format
    from it) and starts with a dot so file browsers hide it meanwhile.
    """
    final = Path(final)
    check_target(final, overwrite=overwrite)
    d = final.parent
    created = ensure_dir(d)
    made: list[Path] = []
    try:
        try:
            tmp = _make_temp(d, f".{final.stem}{PARTIAL_TAG}", final.suffix, folder=False, made=made)
        except OSError as exc:
            raise _dir_error(d, exc) from None
        yield tmp
        if not overwrite and final.exists():  # appeared while we worked
            raise VbgError(f"output {final} already exists", "use -y to overwrite it, or choose another --output")
        try:
            os.replace(tmp, final)
        except OSError as exc:
            raise VbgError(f"cannot rename {tmp.name} to {final}: {exc.strerror}",
                           "check the output folder") from None
    except BaseException as exc:
        _undo(exc, made, created, d)
        raise


@contextlib.contextmanager
def atomic_folder(final: Path, *, overwrite: bool = False,
                  owns: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary folder; on success its files end up in ``final``.

    A new ``final`` is built beside it and renamed into place in one step, so
    it appears complete or not at all. An existing ``final`` gets the
    temporary folder inside it, so the moves stay on one file system even
    when ``final`` is a mount point, and only ``final`` itself needs to be
    writable; its other files are kept. ``owns(name)`` says which of its
    files belong to the output (a PNG sequence's frames): without
    ``overwrite`` any of them is refused, with it they are all replaced, so
    a shorter sequence leaves no frames of an older, longer one. The old
    files are moved aside first and put back if the merge fails or is
    interrupted, so ``final`` holds either the old output or the new one.
    """
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise VbgError(f"output {final} is a file, not a folder", "choose a folder for --output")
    existed = final.is_dir()
    where = final if existed else final.parent
    created = ensure_dir(where)
    made: list[Path] = []
    try:
        try:
            tmp = _make_temp(where, PARTIAL_TAG if existed else f".{final.name}{PARTIAL_TAG}", "", folder=True,
                             made=made)
        except OSError as exc:
            raise _dir_error(where, exc) from None
        yield tmp
        if not existed and not final.exists():
            os.rename(tmp, final)
            return
        names = sorted(os.listdir(tmp))
        old = sorted(n for n in os.listdir(final) if (final / n).is_file() and (owns is not None and owns(n)
                                                                               or n in names))
        if old and not overwrite:
            raise VbgError(f"{final / old[0]} already exists ({len(old)} files would be replaced)",
                           "use -y to overwrite, or choose another --output")
        _merge(tmp, final, names, old, made)
    except BaseException as exc:
        _undo(exc, made, created, where)
        raise


def _merge(tmp: Path, final: Path, names: list[str], old: list[str], made: list[Path]) -> None:
    """Move ``old`` (files of ``final``) aside and ``names`` (files of ``tmp``) into ``final``;
    on any failure or Ctrl-C, undo the moves made so far."""
    aside = _make_temp(final, PARTIAL_TAG + "old-", "", folder=True, made=made) if old else None
    moved_aside: list[str] = []
    moved_in: list[str] = []
    try:
        for n in old:
            os.replace(final / n, aside / n)  # type: ignore[operator]
            moved_aside.append(n)
        for n in names:
            os.replace(tmp / n, final / n)
            moved_in.append(n)
    except BaseException:
        for n in moved_in:
            _remove(final / n)
        try:
            for n in moved_aside:
                os.replace(aside / n, final / n)  # type: ignore[operator]
        except OSError as exc:  # keep them where they are rather than lose them
            made.remove(aside)  # type: ignore[arg-type]
            log.error("could not put the old files back (%s); they are in %s", exc, aside)
        raise
    os.rmdir(tmp)
    if aside is not None:
        _remove(aside)


def _undo(exc: BaseException, made: list[Path], created: list[Path], where: Path) -> None:
    """Remove what a failed or interrupted output made; a full disk becomes one line saying how much it got."""
    full = full_error(exc, sum(_size(p) for p in made), where)
    for p in made:
        _remove(p)
    _remove_dirs(created)
    if full is not None:
        raise full from None


def _make_temp(d: Path, prefix: str, suffix: str, *, folder: bool, made: list[Path]) -> Path:
    """A new, unique file or folder in ``d``; unlike tempfile's, its mode follows the umask
    (the renamed output should get the permissions of any new file).

    The name goes into ``made`` *before* it is created, so a Ctrl-C that lands
    between the creation and the caller's ``try`` still finds it to remove.
    """
    room = name_max(d) - len(os.fsencode(f"{secrets.token_hex(4)}{suffix}"))
    raw = os.fsencode(prefix)
    if len(raw) > room:  # a long final name: shorten the temporary one, keep the tag that marks it ours
        tag = os.fsencode(PARTIAL_TAG)
        head = raw[: max(1, room - len(tag))]
        prefix = os.fsdecode(head.decode("utf-8", "ignore").encode() + tag)
    for _ in range(100):
        p = d / f"{prefix}{secrets.token_hex(4)}{suffix}"
        made.append(p)
        try:
            if folder:
                os.mkdir(p, 0o777)
            else:
                os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return p
        except FileExistsError:  # someone else's: not ours to remove
            made.pop()
            continue
        except OSError:
            made.pop()
            raise
    raise FileExistsError(f"no free temporary name in {d}")


def _remove(p: Path) -> None:
    try:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    except OSError as exc:  # pragma: no cover - best effort on the way out
        log.warning("could not remove temporary %s: %s", p, exc)
