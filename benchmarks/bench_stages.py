"""Per-frame stage micro-benchmark: preprocess, smooth, matte, composite.

Everything that is neither model nor codec, on a synthetic head-and-shoulders
scene (textured background, person silhouette, model-size mask), at 640x480,
1280x720 and 1920x1080; and, when ../shared is present, on real webcam frames
(resized) with the default model's masks, whose soft edges cover more tiles.
Prints markdown tables of medians (ms per frame):

1. the stages as the pipeline runs them;
2. the alternatives each stage choice was made against (resize method for
   preprocessing, blend implementations, blur-background methods, guided
   versus bilinear matte);
3. OpenCV thread counts.

The machine is shared, so every figure is the median of many runs, and the
alternatives of one table are measured interleaved (round-robin), so a burst
of load elsewhere hits them alike.

    python benchmarks/bench_stages.py [--repeats 60] [--sizes 640x480,1280x720,1920x1080]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vbg.models import resolve_model  # noqa: E402
from vbg.spec import InputSpec, ModelSpec, OutputSpec  # noqa: E402
from vbg.stages.backgrounds import BlurBackground, ColorBackground, open_background  # noqa: E402
from vbg.stages.composite import Compositor  # noqa: E402
from vbg.stages.matte import Matte  # noqa: E402
from vbg.stages.preprocess import FramePyramid, Preprocessor, shrink  # noqa: E402
from vbg.stages.smooth import TemporalSmoother  # noqa: E402

MODEL = resolve_model(None).size  # the default model's input size: the mask the stages get


def scene(w: int, h: int, t: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A head-and-shoulders 'person' over a textured background; frame BGR and true mask."""
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), np.uint8)
    frame = cv2.resize(bg, (w, h), interpolation=cv2.INTER_CUBIC)
    frame = cv2.add(frame, rng.integers(0, 12, (h, w, 3), np.uint8))
    gt = np.zeros((h, w), np.uint8)
    cx = w // 2 + int(0.02 * w * np.sin(t / 5))
    cv2.circle(gt, (cx, int(0.36 * h)), int(0.16 * h), 1, -1)
    cv2.ellipse(gt, (cx, int(1.05 * h)), (int(0.28 * w), int(0.45 * h)), 0, 0, 360, 1, -1)
    person = np.empty_like(frame)
    person[:] = (60, 90, 200)
    person = cv2.add(person, rng.integers(0, 30, (h, w, 3), np.uint8))
    np.copyto(frame, person, where=gt[..., None].astype(bool))
    return frame, gt.astype(bool)


def model_mask(gt: np.ndarray) -> np.ndarray:
    m = cv2.resize(gt.astype(np.float32), MODEL, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(m, (3, 3), 0)


def spec() -> ModelSpec:
    return ModelSpec("bench", Path("bench.onnx"),
                     InputSpec("input", *MODEL, "NCHW", "RGB", 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                     OutputSpec("mask", "logits"))


def real_frames(w: int, h: int, clips: int = 4, run: int = 4) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Frames 20 .. 20 + ``run`` - 1 of the first ``clips`` webcam clips in ../shared, resized to
    w x h, with the default model's mask of each; None without ../shared. Consecutive frames, so
    the smoother does its real work between the scene cuts at the clip changes."""
    import av

    from vbg.backends import create_backend

    paths = sorted((ROOT.parent / "shared" / "videos" / "webcam").glob("*.mkv"))[:clips]
    if not paths:
        return None
    frames = []
    for path in paths:
        with av.open(str(path)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i >= 20:
                    frames.append(cv2.resize(f.to_ndarray(format="bgr24"), (w, h), interpolation=cv2.INTER_LINEAR))
                if i == 20 + run - 1:
                    break
    backend = create_backend(resolve_model(None), "onnxruntime", threads=2)
    pairs = [(f, backend.infer([f])[0]) for f in frames]
    backend.close()
    return pairs


def timeit(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median ms of each function, measured round-robin."""
    for f in fns.values():  # warm-up (allocations, caches)
        f()
        f()
    ts: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            ts[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in ts.items()}


def table(title: str, cols: list[str], rows: dict[str, dict[str, float]]) -> None:
    print(f"\n### {title}\n")
    print("| | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, vals in rows.items():
        print(f"| {name} | " + " | ".join(f"{vals[c]:.2f}" if c in vals else "" for c in cols) + " |")


STAGES = ("preprocess", "smooth", "matte", "composite")


class StageRunner:
    """The pipeline's per-frame stages for one frame size and background, one frame per ``step``."""

    def __init__(self, w: int, h: int, bg: str, threads: int | None = None,
                 real: list[tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        if real is None:
            self.frames = [scene(w, h, t, seed=1) for t in range(8)]
            self.masks = [model_mask(gt) for _, gt in self.frames]
        else:  # (frame, mask) pairs: real frames and the default model's masks of them
            self.frames = [(f, None) for f, _ in real]
            self.masks = [m for _, m in real]
        self.pre = Preprocessor(spec())
        self.smoother = TemporalSmoother(0.5)
        self.matte = Matte(0.5, 10.0, 2.0)
        if bg == "blur":
            back: object = BlurBackground(25)
        elif bg == "image":
            img, _ = scene(1600, 1000, seed=7)
            path = Path("/tmp/vbg-bench-bg.png")
            cv2.imwrite(str(path), img)
            back = open_background(str(path))
        else:
            back = ColorBackground((0, 177, 64))
        self.comp = Compositor(back, 0.0)  # type: ignore[arg-type]
        self.threads = threads
        self.i = 0
        self.ms: dict[str, list[float]] = {k: [] for k in (*STAGES, "total")}

    def step(self, keep: bool = True) -> None:
        if self.threads is not None:
            cv2.setNumThreads(self.threads)
        frame, _ = self.frames[self.i % len(self.frames)]
        mask = self.masks[self.i % len(self.masks)]
        self.i += 1
        t0 = time.perf_counter()
        pyr = FramePyramid(frame)  # as the pipeline: the model input comes from the shared pyramid
        self.pre([pyr.at(MODEL)])
        t1 = time.perf_counter()
        m = self.smoother(mask, frame, pyramid=pyr)
        t2 = time.perf_counter()
        res = self.matte.compute(m, frame, pyramid=pyr)
        t3 = time.perf_counter()
        self.comp(frame, res, pyramid=pyr)  # as the pipeline: from the edge patches
        t4 = time.perf_counter()
        if keep:
            for k, v in zip(self.ms, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                self.ms[k].append(v * 1e3)

    def medians(self) -> dict[str, float]:
        med = {k: statistics.median(v) for k, v in self.ms.items()}
        med["sum of medians"] = sum(med[k] for k in STAGES)
        return med


def run_round_robin(runners: dict[str, StageRunner], repeats: int) -> dict[str, dict[str, float]]:
    """One frame of each runner in turn, ``repeats`` times (after a warm-up)."""
    for r in runners.values():
        for _ in range(3):
            r.step(keep=False)
    for _ in range(repeats):
        for r in runners.values():
            r.step()
    return {k: r.medians() for k, r in runners.items()}


def blend_alternatives(w: int, h: int, repeats: int) -> dict[str, float]:
    frame, gt = scene(w, h, seed=2)
    bg = cv2.GaussianBlur(frame, (0, 0), 8)
    res = Matte(0.5, 10.0, 2.0).compute(model_mask(gt), frame)
    alpha = res.alpha
    a3 = cv2.merge([alpha, alpha, alpha])

    def numpy_float() -> np.ndarray:
        out = frame.astype(np.float32) * a3 + bg.astype(np.float32) * (1.0 - a3)
        return (out + 0.5).astype(np.uint8)

    def cv2_float() -> np.ndarray:  # multiply/add in float with OpenCV
        f = cv2.multiply(frame, a3, dtype=cv2.CV_32F)
        b = cv2.multiply(bg, cv2.subtract(1.0, a3), dtype=cv2.CV_32F)
        return cv2.add(f, b, dtype=cv2.CV_8U)

    def fixed_point() -> np.ndarray:  # uint8 alpha, fg*a + bg*(255-a) / 255 in uint16
        a8 = cv2.convertScaleAbs(alpha, alpha=255.0)
        a8 = cv2.merge([a8, a8, a8])
        f = cv2.multiply(frame, a8, dtype=cv2.CV_16U)
        b = cv2.multiply(bg, cv2.bitwise_not(a8), dtype=cv2.CV_16U)
        return cv2.convertScaleAbs(cv2.add(f, b), alpha=1.0 / 255.0)

    def blend_full() -> np.ndarray:
        return cv2.blendLinear(frame, bg, alpha, 1.0 - alpha)

    comp = Compositor(_Fixed(bg))
    return timeit({
        "numpy float": numpy_float,
        "cv2 multiply/add float": cv2_float,
        "uint8 fixed point (cv2)": fixed_point,
        "cv2.blendLinear, every pixel": blend_full,
        "blendLinear on edge tiles, from the matte's patches (ours)": lambda: comp(frame, res),
        "edge tiles, tiles from the alpha": lambda: comp(frame, alpha),
    }, repeats)


class _Fixed:
    dynamic = False
    stored = True  # holds its array: the compositor reads it in place

    def __init__(self, bg: np.ndarray) -> None:
        self.bg = bg

    def get(self, frame: np.ndarray, out: np.ndarray | None = None, **_: object) -> np.ndarray:
        if out is not None:
            np.copyto(out, self.bg)
            return out
        return self.bg

    def close(self) -> None:
        pass


def preprocess_alternatives(w: int, h: int, repeats: int) -> dict[str, float]:
    frame, _ = scene(w, h, seed=3)
    return timeit({
        "INTER_AREA direct": lambda: cv2.resize(frame, MODEL, interpolation=cv2.INTER_AREA),
        "INTER_LINEAR direct": lambda: cv2.resize(frame, MODEL, interpolation=cv2.INTER_LINEAR),
        "shrink: LINEAR to 2x + exact 2x AREA": lambda: shrink(frame, MODEL),
        "frame pyramid: 2x halvings + LINEAR under 2x (ours)": lambda: FramePyramid(frame).at(MODEL),
        "full Preprocessor on the frame (shrink+RGB+normalise)": lambda: Preprocessor(spec())([frame]),
        "pyramid + Preprocessor (ours: pyramid+RGB+normalise)": lambda: Preprocessor(spec())(
            [FramePyramid(frame).at(MODEL)]),
    }, repeats)


def blur_alternatives(w: int, h: int, repeats: int) -> dict[str, float]:
    frame, _ = scene(w, h, seed=4)
    sigma = 25 * h / 1080
    return timeit({
        "GaussianBlur at full size": lambda: cv2.GaussianBlur(frame, (0, 0), sigma),
        "shrink, blur, enlarge (ours)": lambda: BlurBackground(25).get(frame),
    }, max(5, repeats // 4))


def matte_alternatives(w: int, h: int, repeats: int) -> dict[str, float]:
    frame, gt = scene(w, h, seed=5)
    mask = model_mask(gt)
    pyr = FramePyramid(frame)
    return timeit({
        "bilinear + threshold (every pixel)": lambda: np.clip((cv2.resize(mask, (w, h)) - 0.5) * 10 + 0.5, 0, 1),
        "bilinear + threshold + 5x5 feather (every pixel)": lambda: cv2.GaussianBlur(
            np.clip((cv2.resize(mask, (w, h)) - 0.5) * 10 + 0.5, 0, 1), (5, 5), 0),
        "ours, guided=False (tiles)": lambda: Matte(0.5, 10, 2.0, guided=False).compute(mask, frame, pyramid=pyr),
        "ours, luma guide": lambda: Matte(0.5, 10, 2.0, guide="luma").compute(mask, frame, pyramid=pyr),
        "ours, colour guide": lambda: Matte(0.5, 10, 2.0).compute(mask, frame, pyramid=pyr),
        "ours, colour guide, feather 0": lambda: Matte(0.5, 10, 0.0).compute(mask, frame, pyramid=pyr),
    }, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--sizes", default="640x480,1280x720,1920x1080")
    ap.add_argument("--threads", default="", help="OpenCV thread counts to compare, e.g. 1,2 (default: as is)")
    ap.add_argument("--quick", action="store_true", help="only the stage table")
    ap.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads before everything")
    args = ap.parse_args()
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    cols = [f"{w}x{h}" for w, h in sizes]
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads, model {MODEL[0]}x{MODEL[1]}, "
          f"median of {args.repeats} frames")

    runners = {f"{c}/{bg}": StageRunner(w, h, bg) for (w, h), c in zip(sizes, cols) for bg in ("blur", "image")}
    for (w, h), c in zip(sizes, cols):
        real = real_frames(w, h)
        if real:
            runners[f"{c}/real"] = StageRunner(w, h, "image", real=real)
    res = run_round_robin(runners, args.repeats)
    per: dict[str, dict[str, float]] = {}
    for c in cols:
        for k, v in res[f"{c}/blur"].items():
            per.setdefault(k, {})[c] = v
        for k in ("composite", "sum of medians", "total"):
            per.setdefault(f"{k}, image background", {})[c] = res[f"{c}/image"][k]
        if f"{c}/real" in res:
            for k in ("matte", "composite", "total"):
                per.setdefault(f"{k}, real webcam frames (resized), image background", {})[c] = res[f"{c}/real"][k]
    table("Stages, ms per frame (blur:25 background unless noted, feather 2, smoothing 0.5); "
          "'total' is the median of per-frame sums", cols, per)
    if args.quick:
        return

    for title, fn in ((f"Preprocess: frame -> {MODEL[0]}x{MODEL[1]} model input", preprocess_alternatives),
                      ("Matte: mask -> alpha", matte_alternatives),
                      ("Blend (composite without the background's own cost)", blend_alternatives),
                      ("Blur background, blur:25", blur_alternatives)):
        rows: dict[str, dict[str, float]] = {}
        for (w, h), c in zip(sizes, cols):
            for k, v in fn(w, h, args.repeats).items():
                rows.setdefault(k, {})[c] = v
        table(title, cols, rows)

    if args.threads:
        w, h = sizes[-1]
        ns = [int(t) for t in args.threads.split(",")]
        tr = run_round_robin({f"cv2.setNumThreads({n})": StageRunner(w, h, "blur", n) for n in ns}, args.repeats)
        table(f"OpenCV threads at {w}x{h} (interleaved)", [*STAGES, "sum of medians", "total"], tr)
        cv2.setNumThreads(ns[-1])

if __name__ == "__main__":
    main()
