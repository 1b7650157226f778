"""Command line: ``vbg --input IN --bg BG`` plus subcommands.

Each subcommand lives in its own module exposing ``add_arguments(parser)``
and ``run(args) -> int``; only the chosen one is imported (by name, from
``COMMANDS``), so ``vbg --input`` never pays for Qt or torch, and ``vbg gui
--help`` works without PySide6.

Errors the user can fix are one line on stderr and exit 2. SIGTERM and
SIGHUP end a run the way Ctrl-C does (outputs in progress are removed), with
one line and exit 143 or 129.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import NoReturn

import cv2

from .. import __version__
from ..errors import VbgError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("vbg.apps.batch", "convert a video, image or folder (the default command)"),
    "live": ("vbg.apps.live", "webcam -> virtual camera, with a preview window (--no-window: none)"),
    "gui": ("vbg.apps.gui", "the tuning window (needs vbg[gui])"),
    "models": ("vbg.apps.models", "list bundled and user models"),
    "doctor": ("vbg.apps.doctor", "what this machine has: versions, accelerators, codecs, cameras"),
    "train": ("vbg.train.commands", "train a segmentation model (needs vbg[train])"),
    "export": ("vbg.train.export_cmd", "export a checkpoint to ONNX + spec (needs vbg[train])"),
    "eval": ("vbg.train.eval_cmd", "compare models on a labelled folder (ONNX Runtime; no torch needed)"),
}


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so every cleanup that handles Ctrl-C handles it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Terminated`` in the main thread while a command runs."""
    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    old = {}
    for sig in wanted:
        with contextlib.suppress(ValueError, OSError):  # not the main thread, or not allowed here
            old[sig] = signal.signal(sig, _terminate)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _disk_full(exc: OSError) -> VbgError | None:
    if exc.errno == errno.ENOSPC:
        return VbgError("the disk is full: the output was removed", "free some space, or write to another disk")
    if exc.errno == errno.EFBIG:
        return VbgError("the output hit the file-size limit (ulimit -f): it was removed",
                        "raise the limit, or write a shorter or smaller output")
    if exc.errno == errno.EDQUOT:
        return VbgError("the disk quota is used up: the output was removed", "free some space")
    return None


def _prog_help() -> str:
    lines = ["usage: vbg --input IN --bg BG [options]   |   vbg COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<8} {h}" for name, (_, h) in COMMANDS.items()]
    lines += ["", "Run 'vbg COMMAND --help' for a command's options; 'vbg --help' alone shows convert's."]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are vbg's: one line naming the problem and the fix, exit 2 (not a usage block)."""

    def error(self, message: str) -> NoReturn:
        raise VbgError(message, self._hint(message))

    def _hint(self, message: str) -> str:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            words = message[len(prefix):].split()
            if not words:  # an empty argument ("$EXTRA" unset in a script)
                return "remove the empty argument"
            first = words[0]
            if first.startswith("-"):
                options = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
                near = difflib.get_close_matches(first.split("=")[0], options, n=1, cutoff=0.75)
                if near:
                    return f"did you mean {near[0]}?"
            elif self.prog == "vbg":
                near = difflib.get_close_matches(first, list(COMMANDS), n=1)
                if near:
                    return f"did you mean 'vbg {near[0]}'?"
                return f"give the input as --input {first}, or a command: {', '.join(COMMANDS)}"
        return f"see '{self.prog} --help'"


def build_parser(command: str) -> tuple[argparse.ArgumentParser, object]:
    module_name, help_text = COMMANDS[command]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = {"gui": "gui", "train": "train", "export": "train"}.get(command)
        if extra:
            raise VbgError(f"'vbg {command}' needs {exc.name}", f'pip install "vbg[{extra}]"') from None
        raise
    prog = "vbg" if command == "convert" else f"vbg {command}"
    parser = _Parser(prog=prog, description=help_text,
                                     epilog=_prog_help() if command == "convert" else None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    module.add_arguments(parser)  # type: ignore[attr-defined]
    return parser, module



class _Formatter(logging.Formatter):
    """``vbg: warning: ...`` for users; the logger's name too with -v."""

    def __init__(self, detail: bool) -> None:
        super().__init__()
        self.detail = detail

    def format(self, record: logging.LogRecord) -> str:
        where = f" {record.name}" if self.detail else ""
        return f"vbg: {record.levelname.lower()}{where}: {record.getMessage()}"


def say(line: str) -> None:
    """Print a command's summary line. The work is done by then: a closed pipe or a full stdout
    (``vbg ... | head -0``, ``> /dev/full``) must not turn it into an error or a traceback."""
    try:
        print(line, flush=True)
    except OSError as exc:
        if not isinstance(exc, BrokenPipeError):  # a reader that left wants no message
            logging.getLogger("vbg").warning("could not print the summary: %s", exc.strerror)
        with contextlib.suppress(OSError):  # so the flush at exit does not fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _interrupt_in(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM behind an ImportError: one that lands inside an import (ONNX Runtime's
    takes half a second) shows up as the ImportError it caused. Other errors raised while handling
    an interrupt stay errors, with their traceback."""
    if not isinstance(exc, ImportError):
        return None
    for e in (exc.__cause__, exc.__context__):
        if isinstance(e, KeyboardInterrupt):
            return e
    return None


def _stopped(exc: KeyboardInterrupt) -> int:
    if isinstance(exc, Terminated):
        print(f"vbg: stopped by {signal.Signals(exc.signum).name}; unfinished outputs were removed", file=sys.stderr)
        return 128 + exc.signum
    print("vbg: interrupted; unfinished outputs were removed", file=sys.stderr)
    return 130


def _os_error(exc: OSError) -> VbgError | None:
    """A file-system error that names a file is the user's to fix: one line, not a traceback."""
    full = _disk_full(exc)
    if full is not None or not isinstance(exc.filename, (str, bytes)) or not exc.filename:
        return full
    name = os.fsdecode(exc.filename)
    if exc.errno == errno.ENAMETOOLONG:
        return VbgError(f"the name {name[:60]}... is too long for the file system", "choose a shorter name")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return VbgError(f"permission denied: {name}", "check its permissions, or choose another path")
    return VbgError(f"{name}: {exc.strerror or exc}", "check the path")


def guarded(run: Callable[[], int]) -> int:
    """Run a command the way every vbg command runs: one line and exit 2 for errors the user can fix,
    SIGTERM/SIGHUP/Ctrl-C unwinding (outputs in progress removed) with one line, a full disk in one line."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")  # OpenCV's own [ WARN ] lines are not for users
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # and once imported too
    try:
        with _signals():
            return int(run() or 0)
    except VbgError as exc:
        print(f"vbg: error: {exc.line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Terminated too
        return _stopped(exc)
    except BrokenPipeError:  # the reader of our stdout went away (vbg models | head -1)
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    except Exception as exc:
        stop = _interrupt_in(exc)
        if stop is not None:
            return _stopped(stop)
        err = _os_error(exc) if isinstance(exc, OSError) else None
        if err is None and isinstance(exc, RuntimeError) and "home directory" in str(exc):
            err = VbgError("a path starts with ~user for a user that does not exist", "check the path")
        if err is None:
            raise
        print(f"vbg: error: {err.line()}", file=sys.stderr)
        return err.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        print(f"vbg {__version__}")
        return 0
    command = argv[0] if argv and argv[0] in COMMANDS else "convert"
    rest = argv[1:] if argv and argv[0] in COMMANDS else argv

    def run() -> int:
        parser, module = build_parser(command)
        args = parser.parse_args(rest)
        level = logging.WARNING - 10 * min(2, args.verbose)
        handler = logging.StreamHandler()
        handler.setFormatter(_Formatter(detail=args.verbose > 0))
        logging.basicConfig(level=level, handlers=[handler], force=True)  # the CLI owns the root logger
        return int(module.run(args) or 0)  # type: ignore[attr-defined]

    return guarded(run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
