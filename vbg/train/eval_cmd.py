"""``vbg eval --data DIR --model M [--model M2 ...]``: models side by side.

Each model runs through vbg's own runtime backend (the same preprocessing
and ONNX Runtime session as ``vbg live``), at its own input size, on every
image of the split; the mask is up-sampled to the image and compared with
the label at full resolution. Needs no torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import VbgError
from ..settings import BACKENDS, canonical_backend
from .data import Pair, find_pairs, read_image, read_mask, split_pairs
from .metrics import boundary_f, iou, mae

log = logging.getLogger(__name__)


@dataclass
class ModelResult:
    name: str
    size: tuple[int, int]
    iou: list[float] = field(default_factory=list)
    bf: list[float] = field(default_factory=list)
    mae: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    by_source: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {"model": self.name, "input": f"{self.size[0]}x{self.size[1]}", "images": len(self.iou),
                "iou": float(np.mean(self.iou)) if self.iou else float("nan"),
                "boundary_f": float(np.mean(self.bf)) if self.bf else float("nan"),
                "mae": float(np.mean(self.mae)) if self.mae else float("nan"),
                "ms_median": float(np.median(self.ms)) if self.ms else float("nan"),
                "iou_by_source": {k: float(np.mean(v)) for k, v in sorted(self.by_source.items())}}


def evaluate_models(specs: list, pairs: list[Pair], threads: int = 2, backend: str = "cpu",
                    progress: bool = True) -> list[ModelResult]:
    """Run every model on every pair; per-image metrics at the image's size."""
    from tqdm import tqdm

    from ..backends import create_backend

    backends = [create_backend(s, canonical_backend(backend), threads=threads) for s in specs]
    results = [ModelResult(s.name, s.size) for s in specs]
    try:
        if pairs:  # warm up: first runs allocate
            img = read_image(pairs[0].image)
            for b in backends:
                for _ in range(3):
                    b.infer([img])
        for p in tqdm(pairs, desc="eval", unit="img", disable=not progress, mininterval=5.0):
            img = read_image(p.image)
            h, w = img.shape[:2]
            gt = read_mask(p.mask, (w, h)) >= 128
            for b, r in zip(backends, results):
                t = time.perf_counter()
                prob = b.infer([img])[0]
                r.ms.append((time.perf_counter() - t) * 1000)
                full = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
                r.iou.append(iou(full, gt))
                r.bf.append(boundary_f(full, gt))
                r.mae.append(mae(full, gt))
                r.by_source.setdefault(p.source, []).append(r.iou[-1])
    finally:
        for b in backends:
            b.close()
    return results


def format_table(rows: list[dict[str, object]]) -> str:
    sources = sorted({k for r in rows for k in r["iou_by_source"]})  # type: ignore[union-attr]
    head = ["model", "input", "mean IoU", "boundary F", "MAE", "ms/image"] + [f"IoU {s}" for s in sources]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        by = r["iou_by_source"]
        cells = [str(r["model"]), str(r["input"]), f"{r['iou']:.4f}", f"{r['boundary_f']:.4f}",
                 f"{r['mae']:.4f}", f"{r['ms_median']:.2f}"] + [f"{by.get(s, float('nan')):.4f}" for s in sources]  # type: ignore[union-attr]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="labelled folder(s): DIR/images + DIR/masks or DIR/<source>/...")
    p.add_argument("--model", action="append", required=True,
                   help="model name, spec .json or .onnx with a spec beside it (repeatable)")
    p.add_argument("--split", choices=("val", "test", "train", "all"), default="val",
                   help="which part of the fixed split to use (default val: choose on val, report test)")
    p.add_argument("--val-percent", type=float, default=15.0)
    p.add_argument("--test-percent", type=float, default=15.0)
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads per model")
    p.add_argument("--backend", default="cpu", help=f"inference: {', '.join(BACKENDS)} (cpu: ONNX Runtime on the CPU)")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--json", help="also write the figures to this JSON file")


def run(args: argparse.Namespace) -> int:
    from ..models import resolve_model

    canonical_backend(args.backend)  # a misspelt name fails before the data is read
    pairs = find_pairs(args.data)
    if args.split != "all":
        pairs = split_pairs(pairs, args.val_percent, args.test_percent)[args.split]
    if args.limit:
        pairs = pairs[: args.limit]
    if not pairs:
        raise VbgError(f"no images in the {args.split} split of {args.data}", "use --split all")
    specs = [resolve_model(m) for m in args.model]
    results = evaluate_models(specs, pairs, args.threads, args.backend, progress=args.verbose >= 0)
    rows = [r.summary() for r in results]
    print(f"{len(pairs)} images ({args.split} split of {args.data}), {args.threads} threads per model")
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0
