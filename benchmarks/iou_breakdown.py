"""Where each model's IoU goes: its wrong pixels sorted by how far they lie from the label's outline.

For every labelled image of the split (validation by default: what the next recipe is chosen on), each
model's mask (threshold 0.5, up-sampled to the image as ``bench_models.py`` does) is compared with the
label, and every wrong pixel falls in one bin, as a share of the union of mask and label (so the bins
and the IoU add up to 1):

* **edge**: within 1 % of the image diagonal of the label's outline, on either side (outline
  precision: hair, fingers, the blur of up-sampling);
* **beside**: a false person 1-5 % of the diagonal outside the label (a held bag, a door frame or a
  railing next to the person, a pasted-on shadow);
* **away**: a false person further out (a bystander the label leaves out, a red banner);
* **missed inside**: label pixels deeper than 1 % inside the outline that the mask misses (a lost arm,
  a dark coat).

    python benchmarks/iou_breakdown.py [--split val] [--model SPEC ...]

The MediaPipe peer is added to every run, side by side.
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
from vbg.spec import ModelSpec  # noqa: E402
from vbg.train.data import find_pairs, read_image, read_mask, split_pairs  # noqa: E402

PEER = ROOT / "benchmarks" / "peers" / "mediapipe_selfie.json"
BINS = ("edge", "beside", "away", "missed inside")


def disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def breakdown(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """IoU and the wrong-pixel bins of one boolean mask against its boolean label, as shares of the union."""
    h, w = gt.shape
    diag = float(np.hypot(h, w))
    g8 = gt.astype(np.uint8)
    near = max(1, round(0.01 * diag))
    inner = cv2.erode(g8, disc(near)) > 0
    edge_out = cv2.dilate(g8, disc(near)) > 0
    beside_out = cv2.dilate(g8, disc(max(near + 1, round(0.05 * diag)))) > 0
    union = max(int((pred | gt).sum()), 1)
    fp, fn = pred & ~gt, gt & ~pred
    return {
        "iou": float((pred & gt).sum()) / union,
        "edge": float((fp & edge_out).sum() + (fn & ~inner).sum()) / union,
        "beside": float((fp & beside_out & ~edge_out).sum()) / union,
        "away": float((fp & ~beside_out).sum()) / union,
        "missed inside": float((fn & inner).sum()) / union,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "person-seg"))
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("--model", action="append", help="models to compare (default: the default model)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    data = Path(args.data)
    if not data.is_dir():
        print(f"iou_breakdown: error: no labelled data at {data} (pass --data DIR)", file=sys.stderr)
        return 2
    specs = [resolve_model(m) for m in (args.model or ["default"])]
    if PEER.is_file():
        specs.append(ModelSpec.load(PEER))
    backends = [OnnxRuntimeBackend(s, threads=args.threads) for s in specs]
    rows: list[list[tuple[str, dict[str, float]]]] = [[] for _ in specs]
    pairs = split_pairs(find_pairs(data))[args.split]
    for p in pairs:
        img = read_image(p.image)
        h, w = img.shape[:2]
        gt = read_mask(p.mask, (w, h)) >= 128
        for b, out in zip(backends, rows):
            prob = cv2.resize(b.infer([img])[0], (w, h), interpolation=cv2.INTER_LINEAR)
            out.append((p.source, breakdown(prob >= 0.5, gt)))
    for b in backends:
        b.close()
    sources = ["all"] + sorted({s for s, _ in rows[0]})
    print(f"{args.split} split of {data}: each model's wrong pixels as a share of the union (IoU + bins = 1)\n")
    print("| source | model | IoU | " + " | ".join(BINS) + " |")
    print("|---|---|---:|" + "---:|" * len(BINS))
    for src in sources:
        for spec, out in zip(specs, rows):
            vals = [r for s, r in out if src in ("all", s)]
            n = len(vals)
            cells = [f"{np.mean([v[k] for v in vals]):.4f}" for k in ("iou", *BINS)]
            print(f"| {src} ({n}) | {spec.name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
