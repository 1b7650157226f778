"""Reproduce the model card's table: mean IoU on the validation split and
CPU latency per frame, our bundled models vs the MediaPipe selfie peer, in
one run, through vbg's own ONNX Runtime backend, 2 threads each, each model
at its own input size.

    python benchmarks/bench_models.py [--data ../shared/data/person-seg] [--threads 2]
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
from vbg.train.data import find_pairs, split_pairs  # noqa: E402
from vbg.train.eval_cmd import evaluate_models  # noqa: E402

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "person-seg"))
    ap.add_argument("--model", action="append", help="models to compare (default: every bundled model + peer)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--json")
    args = ap.parse_args()

    specs = [resolve_model(m) for m in args.model] if args.model else [e.spec for e in list_models()
                                                                     if e.origin == "bundled"]
    if PEER.is_file() and all(s.name != PEER_NAME for s in specs):
        peer = ModelSpec.load(PEER)
        if peer.onnx.is_file():
            specs.append(peer)
    rows = []
    data = Path(args.data)
    quality = None
    if data.is_dir():
        val = split_pairs(find_pairs(data))["val"]
        quality = evaluate_models(specs, val, args.threads, progress=False)
    lat = latency(specs, args.threads, args.runs)
    for i, s in enumerate(specs):
        size = f"{s.size[0]}x{s.size[1]}" + (f" / {s.size[1]}x{s.size[0]}" if s.input.orientation == "match" else "")
        row = {"model": s.name, "input": size, "onnx_mb": s.onnx.stat().st_size / 1e6, **lat[i]}
        if quality:
            row.update({k: v for k, v in quality[i].summary().items() if k in ("iou", "boundary_f", "mae",
                                                                               "iou_by_source", "images")})
        rows.append(row)
    names = [s.name for s in specs]
    if quality and PEER_NAME in names:
        peer_iou = quality[names.index(PEER_NAME)].iou
        for i, name in enumerate(names):
            if name != PEER_NAME:
                rows[i]["iou_vs_peer"] = paired_bootstrap(quality[i].iou, peer_iou)
    peer_row = next((r for r in rows if r["model"] == PEER_NAME), None)
    print(f"ONNX Runtime, {args.threads} threads, median of {args.runs} runs; "
          f"quality on the validation split of {data}" if quality else "(no data: latency only)")
    head = "| model | input | MB | mean IoU | boundary F | MAE | model ms | call ms | portrait ms | ms vs peer |"
    print(head)
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["model_ms"] / peer_row["model_ms"] if peer_row else float("nan")
        q = (f"{r['iou']:.4f} | {r['boundary_f']:.4f} | {r['mae']:.4f}" if "iou" in r else "- | - | -")
        print(f"| {r['model']} | {r['input']} | {r['onnx_mb']:.2f} | {q} | {r['model_ms']:.2f} | "
              f"{r['call_ms']:.2f} | {r['portrait_ms']:.2f} | {ratio:.2f}x |")
    for r in rows:
        if "iou_vs_peer" in r:
            d, lo, hi = r["iou_vs_peer"]
            print(f"{r['model']} IoU minus the peer's: {d:+.4f}, 95 % paired-bootstrap interval "
                  f"[{lo:+.4f}, {hi:+.4f}] over {r['images']} images")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
