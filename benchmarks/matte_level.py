"""Which pyramid level the matte's guided filter needs, for a model's mask size.

Every validation photo (never the test split) is resized to one frame size
(default 1280x720, as a 720p webcam frame), run through the model with vbg's
ONNX Runtime backend, and matted with the guide forced to each pyramid level
in turn (default settings otherwise). Printed per level: the mean |alpha -
label| within 8 px of the label's outline (the edge error the guide is for),
the IoU of the alpha at 0.5, and the matte's median milliseconds per frame.
The level ``guide_level`` picks is marked.

    python benchmarks/matte_level.py --model assets/models/unet-lite-m.json [--frame 1280x720]
        [--levels 0,1,2] [--data ../shared/data/person-seg] [--limit N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vbg.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from vbg.models import resolve_model  # noqa: E402
from vbg.stages.matte import Matte, guide_level  # noqa: E402
from vbg.stages.preprocess import FramePyramid  # noqa: E402
from vbg.train.data import find_pairs, read_image, read_mask, split_pairs  # noqa: E402
from vbg.train.metrics import iou, mae  # noqa: E402


class FixedLevel(Matte):
    """The default matte with its guide at one pyramid level."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def guide_level(self, pyr: FramePyramid, mask_size: tuple[int, int]) -> int:  # type: ignore[override]
        return self.level


def edge_band(gt: np.ndarray, px: int = 8) -> np.ndarray:
    """Pixels within ``px`` of the label's outline."""
    g = gt.astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(g, k) != cv2.erode(g, k)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model name or spec")
    ap.add_argument("--frame", default="1280x720", help="frame size WxH the photos are resized to")
    ap.add_argument("--levels", default="0,1,2", help="pyramid levels to compare")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/person-seg"))
    ap.add_argument("--limit", type=int, help="only the first N photos")
    args = ap.parse_args()
    W, H = (int(v) for v in args.frame.lower().split("x"))
    levels = [int(v) for v in args.levels.split(",")]
    spec = resolve_model(args.model)
    pairs = split_pairs(find_pairs(args.data))["val"][: args.limit]
    backend = OnnxRuntimeBackend(spec, threads=2)
    mattes = {lv: FixedLevel(lv) for lv in levels}
    err: dict[int, list[float]] = {lv: [] for lv in levels}
    ious: dict[int, list[float]] = {lv: [] for lv in levels}
    ms: dict[int, list[float]] = {lv: [] for lv in levels}
    for p in pairs:
        img = cv2.resize(read_image(p.image), (W, H), interpolation=cv2.INTER_AREA)
        gt = read_mask(p.mask, (W, H)) >= 128
        band = edge_band(gt)
        prob = backend.infer([img])[0]
        for lv, m in mattes.items():
            m.reset()
            t = time.perf_counter()
            alpha = m.compute(prob, img).alpha
            ms[lv].append((time.perf_counter() - t) * 1000)
            if band.any():  # a photo whose label has no one in it has no outline
                err[lv].append(mae(alpha[band], gt[band]))
            ious[lv].append(iou(alpha, gt))
    backend.close()
    chosen = guide_level(W, H, spec.size)
    print(f"{spec.name} ({spec.size[0]}x{spec.size[1]} mask), {len(pairs)} validation photos at {W}x{H}; "
          f"guide_level picks {chosen}")
    print("| level | guide size | guide / mask pixels | edge error (8 px) | IoU | matte ms |")
    print("|---:|---|---:|---:|---:|---:|")
    for lv in levels:
        gw, gh = W >> lv, H >> lv
        ratio = gw * gh / (spec.size[0] * spec.size[1])
        mark = " (picked)" if lv == chosen else ""
        print(f"| {lv}{mark} | {gw}x{gh} | {ratio:.2f}x | {statistics.fmean(err[lv]):.4f} | "
              f"{statistics.fmean(ious[lv]):.4f} | {statistics.median(ms[lv]):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
