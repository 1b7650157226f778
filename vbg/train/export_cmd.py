"""``vbg export CKPT --out MODEL.onnx``: ONNX + JSON spec (+ FP16 ONNX)."""

from __future__ import annotations

import argparse
import json

from ..errors import VbgError
from . import require_torch
from .commands import parse_size


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="+",
                   help="a training checkpoint (best.pt, final.pt or last.pt); several of one network export "
                        "their weight average (e.g. fine-tunes of one run with different seeds)")
    p.add_argument("--out", required=True, help="output .onnx; the spec is written beside it (.json)")
    p.add_argument("--size", type=parse_size, metavar="WxH", help="input size (default: the run's --val-size)")
    p.add_argument("--name", help="model name in the spec (default: the file stem)")
    p.add_argument("--description", default="", help="one line for 'vbg models'")
    p.add_argument("--default", action="store_true", help='mark as the bundled default ("default": true)')
    p.add_argument("--no-fp16", action="store_true", help="skip the FP16 copy for TensorRT")


def run(args: argparse.Namespace) -> int:
    require_torch()
    from pathlib import Path

    from .export import export_checkpoint

    for ck in args.checkpoint:
        if not Path(ck).is_file():
            raise VbgError(f"checkpoint {ck} not found", "pass .pt files written by 'vbg train'")
    try:
        result = export_checkpoint(args.checkpoint, args.out, args.size, args.name, args.description,
                                   args.default, fp16=not args.no_fp16)
    except ValueError as exc:
        raise VbgError(str(exc), "average only checkpoints of one --arch, --classes and --arch-options") from None
    print(json.dumps(result, indent=2))
    return 0
