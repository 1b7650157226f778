"""``build_engine.py``: build an FP16 TensorRT engine for a vbg model on this GPU (``vbg.gpu.engine`` does the work)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..gpu.device import tensorrt_version
from ..gpu.engine import build_engine, check_engine_here
from .cli import guarded


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model name, spec .json or .onnx (default: the default model)")
    p.add_argument("--out", type=Path, default=None,
                   help="engine folder (default: $VBG_ENGINES, engines/ in a checkout, else the config dir)")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch the engine accepts (default 8)")
    p.add_argument("--opt-batch", type=int, default=None, help="batch TensorRT tunes for (default: max batch)")
    p.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace limit in MB (default 1024)")
    p.add_argument("--timing-cache", type=Path, default=None,
                   help="timing cache file (default: <out>/<gpu>-trt<version>.cache)")
    p.add_argument("--no-timing-cache", action="store_true", help="time every kernel afresh")
    p.add_argument("--builder-fp16", action="store_true",
                   help="use the builder's FP16 flag on the FP32 ONNX (TensorRT 10 only)")
    p.add_argument("--force", action="store_true", help="rebuild even if the engine exists")
    p.add_argument("--check", type=Path, metavar="ENGINE", default=None,
                   help="only check that ENGINE fits this GPU and TensorRT version")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_engine.py",
                                     description="Build an FP16 TensorRT engine for a vbg model on this GPU.")
    add_arguments(parser)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO - 10 * min(1, args.verbose),
                        format="%(levelname)s %(name)s: %(message)s")

    def run() -> int:
        if args.check is not None:
            gpu = check_engine_here(args.check, args.model)
            print(f"{args.check}: fits {gpu.name} with TensorRT {tensorrt_version()}")
            return 0
        print(build_engine(args.model, args.out, max_batch=args.max_batch, opt_batch=args.opt_batch,
                           workspace_mb=args.workspace_mb, timing_cache=args.timing_cache,
                           use_timing_cache=not args.no_timing_cache, builder_fp16=args.builder_fp16,
                           force=args.force))
        return 0

    return guarded(run)
