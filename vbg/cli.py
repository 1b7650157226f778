"""Command line: ``vbg --input IN --bg BG`` plus subcommands.

Each subcommand lives in its own module exposing ``add_arguments(parser)``
and ``run(args) -> int``; only the chosen one is imported, so ``vbg
--input`` never pays for Qt or torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .errors import VbgError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("vbg.batch", "convert a video, image or folder (the default command)"),
    "live": ("vbg.live", "webcam -> virtual camera, headless"),
    "gui": ("vbg.gui.app", "the tuning window"),
    "models": ("vbg.models_cmd", "list bundled and user models"),
    "train": ("vbg.train.commands", "train a segmentation model (needs vbg[train])"),
    "export": ("vbg.train.export_cmd", "export a checkpoint to ONNX + spec (needs vbg[train])"),
    "eval": ("vbg.train.eval_cmd", "compare models on a labelled folder (needs vbg[train])"),
}


def _prog_help() -> str:
    lines = ["usage: vbg --input IN --bg BG [options]   |   vbg COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<8} {h}" for name, (_, h) in COMMANDS.items()]
    lines += ["", "Run 'vbg COMMAND --help' for a command's options; 'vbg --help' alone shows convert's."]
    return "\n".join(lines)


def build_parser(command: str) -> tuple[argparse.ArgumentParser, object]:
    module_name, help_text = COMMANDS[command]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = {"gui": "gui", "train": "train", "export": "train", "eval": "train"}.get(command)
        if extra:
            raise VbgError(f"'vbg {command}' needs {exc.name}", f'pip install "vbg[{extra}]"') from None
        raise
    prog = "vbg" if command == "convert" else f"vbg {command}"
    parser = argparse.ArgumentParser(prog=prog, description=help_text,
                                     epilog=_prog_help() if command == "convert" else None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    module.add_arguments(parser)  # type: ignore[attr-defined]
    return parser, module



def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        print(f"vbg {__version__}")
        return 0
    command = argv[0] if argv and argv[0] in COMMANDS else "convert"
    rest = argv[1:] if argv and argv[0] in COMMANDS else argv
    try:
        parser, module = build_parser(command)
        args = parser.parse_args(rest)
        level = logging.WARNING - 10 * min(2, args.verbose)
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        return int(module.run(args) or 0)  # type: ignore[attr-defined]
    except VbgError as exc:
        print(f"vbg: error: {exc.line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vbg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
