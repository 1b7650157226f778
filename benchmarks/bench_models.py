"""The model table: our bundled models against the MediaPipe selfie peer, in one run, on the fixed
**test** split (never trained or chosen on), through vbg's own ONNX Runtime backend with 2 threads,
each model at its own input size.

Printed for every model and the peer:

* IoU per source and on the mean, with a paired-bootstrap 95 % interval of (ours - the peer's);
* boundary F and MAE;
* the people-free test set (the test part of ../shared/data/scenes/indoor, 25 % of the rooms by file
  name): the mean share of pixels called person, and the share of rooms above 1 %;
* latency: the model alone and the whole backend call.

``--split val`` gives the same on the validation split (what choices are made on).

    python benchmarks/bench_models.py [--split test] [--data ../shared/data/person-seg] [--threads 2]
        [--model NAME_OR_SPEC ...] [--runs 300] [--json out.json]

Latency: median of ``--runs`` calls of the model alone (the input tensor
prepared once), and of the whole backend call (resize a 640x480 frame,
normalise, run, decode), models interleaved call by call so background load
hits them alike. "portrait ms" is the model alone on a 480x640 (portrait)
frame's tensor: the portrait twin of the input for an orientation-matching
model, the same input size otherwise.

How firm an IoU difference is: for each model against the peer, the paired
bootstrap (images resampled with replacement, both models' IoU on the same
draw) gives a 95 % interval of the difference of mean IoU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vbg.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from vbg.models import list_models, resolve_model  # noqa: E402
from vbg.spec import ModelSpec  # noqa: E402
from vbg.train.data import TEST_PERCENT, VAL_PERCENT, find_pairs, split_pairs  # noqa: E402
from vbg.train.eval_cmd import evaluate_models  # noqa: E402
from vbg.train.scenes import load_negatives  # noqa: E402

PEER = ROOT / "benchmarks" / "peers" / "mediapipe_selfie.json"
PEER_NAME = "mediapipe-selfie"


def latency(specs: list[ModelSpec], threads: int, runs: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    backends = [OnnxRuntimeBackend(s, threads=threads) for s in specs]
    tensors = [b.pre([frame]) for b in backends]
    portrait = [b.pre([np.ascontiguousarray(frame.transpose(1, 0, 2))]) for b in backends]
    model_ms: list[list[float]] = [[] for _ in specs]
    call_ms: list[list[float]] = [[] for _ in specs]
    portrait_ms: list[list[float]] = [[] for _ in specs]
    for b, x, xp in zip(backends, tensors, portrait):  # warm-up
        for _ in range(20):
            b.run_tensor(x)
            b.run_tensor(xp)
    for _ in range(runs):
        for i, (b, x, xp) in enumerate(zip(backends, tensors, portrait)):
            t = time.perf_counter()
            b.run_tensor(x)
            model_ms[i].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            b.infer([frame])
            call_ms[i].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            b.run_tensor(xp)
            portrait_ms[i].append((time.perf_counter() - t) * 1000)
    for b in backends:
        b.close()
    return [{"model_ms": float(np.median(m)), "call_ms": float(np.median(c)), "portrait_ms": float(np.median(p))}
            for m, c, p in zip(model_ms, call_ms, portrait_ms)]


def paired_bootstrap(a: list[float], b: list[float], n: int = 5000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over paired per-image values, and its 95 % bootstrap interval."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    idx = np.random.default_rng(seed).integers(0, len(d), (n, len(d)))
    means = d[idx].mean(axis=1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def person_free(specs: list[ModelSpec], rooms: Path, split: str, threads: int) -> list[np.ndarray]:
    """Per model, the share of each people-free image's pixels called person (threshold 0.5, image size)."""
    import cv2

    samples = load_negatives([rooms], split, max_side=None)
    out = []
    for spec in specs:
        be = OnnxRuntimeBackend(spec, threads=threads)
        areas = []
        for s in samples:
            p = be.infer([s.image])[0]
            full = cv2.resize(p, (s.image.shape[1], s.image.shape[0]), interpolation=cv2.INTER_LINEAR)
            areas.append(float((full >= 0.5).mean()))
        be.close()
        out.append(np.asarray(areas))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "person-seg"))
    ap.add_argument("--rooms", default=str(ROOT.parent / "shared" / "data" / "scenes" / "indoor"),
                    help="people-free images (their test split is used)")
    ap.add_argument("--split", choices=("test", "val"), default="test")
    ap.add_argument("--model", action="append", help="models to compare (default: every bundled model + peer)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--json")
    args = ap.parse_args()

    specs = [resolve_model(m) for m in args.model] if args.model else [e.spec for e in list_models()
                                                                     if e.origin == "bundled"]
    for s in specs:  # the split below is split_of's default: a model trained on another would be scored
        split = s.extra.get("training", {}).get("split")  # partly on its own training images
        if split and (split["val_percent"], split["test_percent"]) != (VAL_PERCENT, TEST_PERCENT):
            print(f"bench_models: error: {s.name} was trained with a {split['val_percent']:g} %/"
                  f"{split['test_percent']:g} % validation/test split, and this benchmark scores the "
                  f"{VAL_PERCENT:g} %/{TEST_PERCENT:g} % one (train it with the defaults)", file=sys.stderr)
            return 2
    if PEER.is_file() and all(s.name != PEER_NAME for s in specs):
        peer = ModelSpec.load(PEER)
        if peer.onnx.is_file():
            specs.append(peer)
    rows = []
    data = Path(args.data)
    quality = None
    if data.is_dir():
        pairs = split_pairs(find_pairs(data))[args.split]
        quality = evaluate_models(specs, pairs, args.threads, progress=False)
    rooms = Path(args.rooms)
    free = person_free(specs, rooms, args.split, args.threads) if rooms.is_dir() else None
    lat = latency(specs, args.threads, args.runs)
    for i, s in enumerate(specs):
        size = f"{s.size[0]}x{s.size[1]}" + (f" / {s.size[1]}x{s.size[0]}" if s.input.orientation == "match" else "")
        row = {"model": s.name, "input": size, "onnx_mb": s.onnx.stat().st_size / 1e6, **lat[i]}
        if quality:
            row.update({k: v for k, v in quality[i].summary().items() if k in ("iou", "boundary_f", "mae",
                                                                               "iou_by_source", "images")})
        if free is not None:
            row.update(free_area=float(free[i].mean()), free_over_1=float((free[i] > 0.01).mean()),
                       free_images=len(free[i]))
        rows.append(row)
    names = [s.name for s in specs]
    if quality and PEER_NAME in names:
        peer = quality[names.index(PEER_NAME)]
        for i, name in enumerate(names):
            if name != PEER_NAME:
                rows[i]["iou_vs_peer"] = paired_bootstrap(quality[i].iou, peer.iou)
                rows[i]["iou_vs_peer_by_source"] = {
                    src: paired_bootstrap(quality[i].by_source[src], peer.by_source[src])
                    for src in sorted(peer.by_source)}
    peer_row = next((r for r in rows if r["model"] == PEER_NAME), None)
    where = f"the {args.split} split of {data}" if quality else "no labelled data"
    print(f"ONNX Runtime, {args.threads} threads, latency the median of {args.runs} runs; quality on {where}"
          + (f", people-free figures on the {args.split} split of {rooms} ({rows[0]['free_images']} images)"
             if free is not None else ""))
    sources = sorted({k for r in rows for k in r.get("iou_by_source", {})})
    counts = {src: len(quality[0].by_source[src]) for src in sources} if quality else {}
    head = (["model", "input", "MB", "mean IoU"] + [f"IoU {s} ({counts[s]})" for s in sources]
            + ["boundary F", "MAE", "people-free: person area", "rooms > 1 %", "model ms", "call ms", "ms vs peer"])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        ratio = r["model_ms"] / peer_row["model_ms"] if peer_row else float("nan")
        q = [f"{r['iou']:.4f}"] + [f"{r['iou_by_source'].get(s, float('nan')):.4f}" for s in sources] \
            + [f"{r['boundary_f']:.4f}", f"{r['mae']:.4f}"] if "iou" in r else ["-"] * (len(sources) + 3)
        f = [f"{100 * r['free_area']:.2f} %", f"{100 * r['free_over_1']:.1f} %"] if "free_area" in r else ["-", "-"]
        print(f"| {r['model']} | {r['input']} | {r['onnx_mb']:.2f} | " + " | ".join(q + f) +
              f" | {r['model_ms']:.2f} | {r['call_ms']:.2f} | {ratio:.2f}x |")
    for r in rows:
        if "iou_vs_peer" in r:
            d, lo, hi = r["iou_vs_peer"]
            parts = [f"mean {d:+.4f} [{lo:+.4f}, {hi:+.4f}]"] + [
                f"{s} {v[0]:+.4f} [{v[1]:+.4f}, {v[2]:+.4f}]" for s, v in r["iou_vs_peer_by_source"].items()]
            print(f"{r['model']} IoU minus the peer's, 95 % paired-bootstrap intervals: " + "; ".join(parts))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
