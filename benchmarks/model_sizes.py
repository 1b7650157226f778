"""Accuracy against latency for one trained network at several input sizes, on the **validation** split
(this is where the shipped input size is chosen; the test split is only reported, by bench_models).

    python benchmarks/model_sizes.py runs/m1/best.pt --sizes 224x128,256x144,288x160,320x176,352x192 \\
        --out runs/m1/sizes

Exports the checkpoint at each size (``vbg export``'s code), then runs ``bench_models.py --split val`` on
all of them and the peer in one run (latency interleaved call by call), and writes ``sizes.md`` (the
table), ``sizes.png`` (val IoU against the model's milliseconds) and ``sizes-people-free.png``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vbg.train.export import export_checkpoint  # noqa: E402
from vbg.train.plot import plot_points  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="+", help="best.pt (several: their weight average)")
    ap.add_argument("--sizes", default="224x128,256x144,288x160,320x176,352x192")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    specs = []
    for text in args.sizes.split(","):
        w, h = (int(v) for v in text.lower().split("x"))
        r = export_checkpoint(args.checkpoint, args.out / f"{w}x{h}.onnx", (w, h), name=f"{w}x{h}", fp16=False)
        specs.append(r["spec"])
    js = args.out / "sizes.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_models.py"), "--split", "val", "--runs", str(args.runs),
           "--threads", str(args.threads), "--json", str(js)] + [a for s in specs for a in ("--model", s)]
    table = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    (args.out / "sizes.md").write_text(table)
    print(table)
    all_rows = json.loads(js.read_text())
    rows = [r for r in all_rows if r["model"] != "mediapipe-selfie"]
    peer = [r for r in all_rows if r["model"] == "mediapipe-selfie"]  # absent without ../shared/peers
    series = {"ours": [(r["model_ms"], r["iou"]) for r in rows]}
    if peer:
        series["peer"] = [(peer[0]["model_ms"], peer[0]["iou"])]
    plot_points("val IoU against model ms (ONNX Runtime, CPU)", series, "model ms", args.out / "sizes.png")
    if all("free_area" in r for r in rows):
        plot_points("people-free val rooms: % called person, against model ms",
                    {"ours": [(r["model_ms"], 100 * r["free_area"]) for r in rows]}, "model ms",
                    args.out / "sizes-people-free.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
