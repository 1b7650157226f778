"""``vbg models``: list bundled and user models."""

from __future__ import annotations

import argparse

from ..models import list_models, user_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List models. A model is an ONNX file with a JSON spec beside it (input size, layout, "
        f"colour order, normalisation, output meaning). Put your own in {user_dir()} or pass "
        "--model PATH.json.")


def run(args: argparse.Namespace) -> int:
    entries = list_models()
    if not entries:
        print("no models found")
        return 0
    print(f"{'name':<22} {'input':<10} {'origin':<8} description")
    for e in entries:
        s = e.spec
        mark = " (default)" if e.default else ""
        print(f"{s.name + mark:<22} {s.input.width}x{s.input.height:<6} {e.origin:<8} {s.description}")
    return 0
