"""Pictures of where a model fails, for the model card: the worst test images by IoU (one per source
where it can), and the people-free test rooms where it sees the most person.

    python benchmarks/model_failures.py --model default --out assets/models/failures.png

Each tile: the photo with the label outlined in green and the model's mask (threshold 0.5) tinted red;
the caption gives the source, the file and the IoU (or the share of a room called person).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vbg.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from vbg.models import resolve_model  # noqa: E402
from vbg.train.data import find_pairs, read_image, read_mask, split_pairs  # noqa: E402
from vbg.train.metrics import iou  # noqa: E402
from vbg.train.scenes import load_negatives  # noqa: E402

TILE = (320, 240)


def tile(img: np.ndarray, pred: np.ndarray, gt: np.ndarray | None, caption: str) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(TILE[0] / w, TILE[1] / h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    p = cv2.resize(pred.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    out = small.copy()
    out[p] = (0.55 * out[p] + 0.45 * np.array([40, 40, 230])).astype(np.uint8)
    if gt is not None:
        g = cv2.resize(gt.astype(np.uint8) * 255, size, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(g, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, (60, 220, 60), 2)
    canvas = np.full((TILE[1] + 22, TILE[0], 3), 24, np.uint8)
    y0, x0 = (TILE[1] - size[1]) // 2, (TILE[0] - size[0]) // 2
    canvas[y0:y0 + size[1], x0:x0 + size[0]] = out
    cv2.putText(canvas, caption[:48], (4, TILE[1] + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (230, 230, 230), 1,
                cv2.LINE_AA)
    return canvas


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "person-seg"))
    ap.add_argument("--rooms", default=str(ROOT.parent / "shared" / "data" / "scenes" / "indoor"))
    ap.add_argument("--worst", type=int, default=8, help="worst labelled test images")
    ap.add_argument("--rooms-worst", type=int, default=4, help="worst people-free test rooms")
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "models" / "failures.png")
    args = ap.parse_args(argv)
    spec = resolve_model(args.model)
    be = OnnxRuntimeBackend(spec, threads=2)

    def predict(img: np.ndarray) -> np.ndarray:
        p = be.infer([img])[0]
        return cv2.resize(p, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR) >= 0.5

    scored = []
    for pair in split_pairs(find_pairs(args.data))["test"]:
        img = read_image(pair.image)
        gt = read_mask(pair.mask, (img.shape[1], img.shape[0])) >= 128
        pred = predict(img)
        scored.append((iou(pred, gt), pair, img, gt, pred))
    scored.sort(key=lambda t: t[0])
    picked, seen = [], set()
    for item in scored:  # the worst of each source first, then the worst overall
        if item[1].source not in seen:
            picked.append(item)
            seen.add(item[1].source)
    picked += [t for t in scored if t not in picked][: max(0, args.worst - len(picked))]
    tiles = [tile(img, pred, gt, f"{p.source}/{p.image.stem}: IoU {v:.2f}") for v, p, img, gt, pred in picked]
    rooms = []
    for s in load_negatives([Path(args.rooms)], "test", max_side=None):
        pred = predict(s.image)
        rooms.append((float(pred.mean()), s, pred))
    rooms.sort(key=lambda t: -t[0])
    tiles += [tile(s.image, pred, None, f"{s.key}: {100 * a:.1f} % person") for a, s, pred in
              rooms[: args.rooms_worst]]
    cols = 4
    blank = np.zeros_like(tiles[0])
    rows = [np.hstack(tiles[i:i + cols] + [blank] * (cols - len(tiles[i:i + cols]))) for i in range(0, len(tiles), cols)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(rows), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{args.out}: {len(picked)} worst test images, {min(len(rooms), args.rooms_worst)} worst rooms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
