"""Temporal stability on real webcam clips: how much of the mask flickers where the picture is still.

A model can score well on still photos and still shimmer on video: sensor and codec noise change a
few levels per pixel from frame to frame, and a model that is sensitive to that flips its mask at a
still person's edge (or on a half-visible face at the frame's border). Users see this as flicker.

For every clip in ``--clips`` (default ../shared/videos/webcam/*.mkv) and every model (the peer
side by side), three pipelines run on the same frames (vbg's own Pipeline, ONNX Runtime, 2 threads):

* ``raw``: the model on every frame, no temporal smoothing (the model's own stability);
* ``every``: the model on every frame, default smoothing;
* ``auto``: the defaults (the change gate skips the model where the picture did not change).

Printed per model, as the median over clips (and the worst clip):

* raw / shown flicker: the share of the frame whose mask (alpha > 0.5) flips between consecutive
  frames at pixels where the picture did not move (grey difference of the 5x5-blurred frames
  under 10 levels, the moving pixels dilated by 7 px), for ``raw`` and for ``auto``;
* gate gap: the lowest IoU, over every frame, between ``auto`` and ``every`` (what work saving
  costs: 1.0 = skipping the model changed nothing).

    python benchmarks/bench_flicker.py [--model NAME_OR_SPEC ...] [--clips GLOB] [--json out.json]

The clips are the 20 sign-language webcam clips of ../shared (CC BY 4.0): people who move their
hands in front of a still camera. Nothing is chosen on them here except what a rule names.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vbg.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from vbg.io.decode import VideoFrames  # noqa: E402
from vbg.models import resolve_model  # noqa: E402
from vbg.pipeline import Pipeline  # noqa: E402
from vbg.settings import Settings  # noqa: E402

PEER = ROOT / "benchmarks" / "peers" / "mediapipe_selfie.json"
STILL_LEVEL = 10  # grey levels: under this (after a 5x5 blur) a pixel did not move
MOTION_MARGIN = 7  # px: the moving pixels are dilated by this much
MARGIN_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MOTION_MARGIN + 1,) * 2)


def still_map(prev_grey: np.ndarray, grey: np.ndarray) -> np.ndarray:
    moving = (cv2.absdiff(prev_grey, grey) >= STILL_LEVEL).astype(np.uint8)
    return cv2.dilate(moving, MARGIN_KERNEL) == 0


def clip_stats(backend: OnnxRuntimeBackend, clip: str) -> dict[str, float]:
    bg = "color:#00ff00"
    raw = Pipeline(Settings(bg=bg, model_every="1", smoothing=0.0), backend)
    every = Pipeline(Settings(bg=bg, model_every="1"), backend)
    auto = Pipeline(Settings(bg=bg), backend)
    raw_flips: list[float] = []
    shown_flips: list[float] = []
    gaps: list[float] = []
    prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    frames = 0
    for img, _ in VideoFrames(clip):
        grey = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        r = raw.process(img).alpha > 0.5
        e = every.process(img).alpha > 0.5
        a = auto.process(img).alpha > 0.5
        gaps.append(float((a & e).sum() / max(1, (a | e).sum())))
        if prev is not None:
            still = still_map(prev[0], grey)
            raw_flips.append(float(((r != prev[1]) & still).mean()))
            shown_flips.append(float(((a != prev[2]) & still).mean()))
        prev = (grey, r, a)
        frames += 1
    return {"frames": frames, "raw": float(np.mean(raw_flips)), "shown": float(np.mean(shown_flips)),
            "gate_gap": float(min(gaps)), "model_runs": auto.model_runs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="models to compare (default: the default model + peer)")
    ap.add_argument("--clips", default=str(ROOT.parent / "shared" / "videos" / "webcam" / "*.mkv"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    clips = sorted(glob.glob(args.clips))
    if not clips:
        print(f"bench_flicker: no clips match {args.clips} (pass --clips GLOB)", file=sys.stderr)
        return 2
    names = args.model or ["default"]
    specs = [resolve_model(m) for m in names] + [resolve_model(str(PEER))]
    labels = names + [specs[-1].name]  # as given: two specs may carry one name
    table: dict[str, dict[str, dict[str, float]]] = {}
    for label, spec in zip(labels, specs):
        be = OnnxRuntimeBackend(spec, threads=args.threads)
        table[label] = {Path(c).stem: clip_stats(be, c) for c in clips}
    print(f"{len(clips)} clips, {sum(s['frames'] for s in next(iter(table.values())).values())} frames each model\n")
    print("| model | raw flicker % (median, worst clip) | shown flicker % (median, worst clip) "
          "| gate gap: lowest auto-vs-every IoU (median clip, worst clip) | model runs, auto |")
    print("|---|---|---|---|---|")
    for name, per in table.items():
        raw = np.array([s["raw"] for s in per.values()]) * 100
        shown = np.array([s["shown"] for s in per.values()]) * 100
        gap = np.array([s["gate_gap"] for s in per.values()])
        runs = sum(s["model_runs"] for s in per.values()) / sum(s["frames"] for s in per.values())
        print(f"| {name} | {np.median(raw):.3f} ({raw.max():.3f}, {list(per)[int(raw.argmax())]}) "
              f"| {np.median(shown):.3f} ({shown.max():.3f}) "
              f"| {np.median(gap):.4f} ({gap.min():.4f}, {list(per)[int(gap.argmin())]}) | {runs:.0%} |")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
