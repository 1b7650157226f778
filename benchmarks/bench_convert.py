"""End-to-end conversion benchmark: vbg vs a naive OpenCV + ONNX Runtime script.

Measures, on this machine and in the same run:

* vbg's batch conversion (``vbg.batch``: PyAV decode -> pipeline -> PyAV
  encode) at 640x480, 1280x720 and 1920x1080, with per-stage milliseconds
  (decode, preprocess, inference, smooth, matte, composite, encode);
* a naive baseline written the way a typical script does it:
  ``cv2.VideoCapture`` -> the same ONNX model in a default
  ``onnxruntime.InferenceSession`` -> ``cv2.resize`` of the mask -> Gaussian
  blur -> float numpy blend -> ``cv2.VideoWriter`` (mp4v);
* peak resident memory, and whether it stays flat with the video's length
  (a short and a 4x longer clip at 1080p).

Every measurement runs in a fresh subprocess (so peak RSS is its own and no
state leaks between runs); each configuration runs ``--repeats`` times,
interleaving vbg and the baseline, and the median is reported. fps counts the
whole conversion: opening the input, loading the model, every frame, and
closing the output file.

Input clips are the webcam clips in ../shared/videos/webcam concatenated to
``--frames`` frames and upscaled (centre-cropped to 16:9 for the HD sizes),
written as H.264 MP4 to a temporary folder, never into the repository. Without
../shared a synthetic clip is used instead.

    python benchmarks/bench_convert.py            # full run, prints a markdown table
    python benchmarks/bench_convert.py --quick    # a smoke run in about a minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PEER_SPEC = ROOT / "benchmarks" / "peers" / "mediapipe_selfie.json"
BACKGROUND = ROOT / "assets" / "backgrounds" / "beach.jpg"
SIZES = ((640, 480), (1280, 720), (1920, 1080))
FPS = 30

# Stage names in report order; "other" is whatever the stages do not cover
# (queues, threads waiting, Python glue).
STAGES = ("decode", "preprocess", "inference", "smooth", "matte", "composite", "encode")
# "Neither model nor codec" (the 8 ms budget at 1080p): everything
# but inference, decode and encode.
OWN_STAGES = ("preprocess", "smooth", "matte", "composite")

sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------
# input clips
# ---------------------------------------------------------------------------
def _source_frames(n: int, seed: int = 0):
    """Yield ``n`` 640x480 BGR frames: the shared webcam clips back to back, looping."""
    clips = sorted((SHARED / "videos" / "webcam").glob("*.mkv")) if SHARED.is_dir() else []
    if not clips:
        yield from _synthetic_frames(n, seed)
        return
    import av

    made = 0
    while made < n:
        for clip in clips:
            with av.open(str(clip)) as c:
                for frame in c.decode(video=0):
                    img = frame.to_ndarray(format="bgr24")
                    if img.shape[:2] != (480, 640):
                        img = cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA)
                    yield img
                    made += 1
                    if made >= n:
                        return


def _synthetic_frames(n: int, seed: int):
    """A skin-toned 'head and shoulders' moving over a textured room (no ../shared)."""
    rng = np.random.default_rng(seed)
    tex = cv2.resize(rng.integers(40, 200, (24, 32, 3), dtype=np.uint8), (800, 480),
                     interpolation=cv2.INTER_CUBIC)
    for i in range(n):
        off = int(80 + 60 * np.sin(i / 25))
        img = np.ascontiguousarray(tex[:, off:off + 640])
        cx = int(320 + 90 * np.sin(i / 17))
        cv2.ellipse(img, (cx, 470), (170, 120), 0, 180, 360, (90, 60, 50), -1, cv2.LINE_AA)
        cv2.ellipse(img, (cx, 220), (70, 95), 0, 0, 360, (120, 150, 200), -1, cv2.LINE_AA)
        yield img


def _fit(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Centre-crop to the target aspect, then resize (upscale) to (w, h)."""
    ih, iw = img.shape[:2]
    if iw * h != ih * w:
        ch = min(ih, round(iw * h / w))
        cw = min(iw, round(ih * w / h))
        y0, x0 = (ih - ch) // 2, (iw - cw) // 2
        img = img[y0:y0 + ch, x0:x0 + cw]
    if img.shape[:2] == (h, w):
        return np.ascontiguousarray(img)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def make_clips(folder: Path, sizes: list[tuple[int, int]], frames: int) -> dict[tuple[int, int], Path]:
    """H.264 clips of ``frames`` frames at each size; reused when already there."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    src = "webcam" if (SHARED / "videos" / "webcam").is_dir() else "synthetic"
    paths = {(w, h): folder / f"{src}_{w}x{h}_{frames}f.mp4" for w, h in sizes}
    todo = {s: p for s, p in paths.items() if not p.is_file()}
    if not todo:
        return paths
    log(f"making {len(todo)} input clip(s) of {frames} frames from {src} frames in {folder} ...")
    outs = {}
    for (w, h), p in todo.items():
        tmp = p.with_suffix(".tmp.mp4")
        c = av.open(str(tmp), "w")
        s = c.add_stream("libx264", rate=FPS, options={"crf": "20", "preset": "fast"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        outs[(w, h)] = (c, s, tmp, p)
    for img in _source_frames(frames):
        for (w, h), (c, s, _, _) in outs.items():
            for pkt in s.encode(av.VideoFrame.from_ndarray(_fit(img, w, h), format="bgr24")):
                c.mux(pkt)
    for c, s, tmp, p in outs.values():
        for pkt in s.encode():
            c.mux(pkt)
        c.close()
        tmp.rename(p)
    return paths


# ---------------------------------------------------------------------------
# the naive baseline, as a typical script writes it
# ---------------------------------------------------------------------------
def run_naive(clip: Path, spec_path: Path, bg_path: Path, out: Path) -> dict[str, Any]:
    import onnxruntime as ort

    from vbg.spec import ModelSpec

    spec = ModelSpec.load(spec_path)
    i_spec, o_spec = spec.input, spec.output
    t = dict.fromkeys(("decode", "preprocess", "inference", "matte", "composite", "encode"), 0.0)
    t_start = time.perf_counter()

    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or FPS
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    sess = ort.InferenceSession(str(spec.onnx))
    bg = cv2.resize(cv2.imread(str(bg_path)), (w, h))
    mean, std = np.array(i_spec.mean, np.float32), np.array(i_spec.std, np.float32)
    n = 0
    while True:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        t1 = time.perf_counter()
        t["decode"] += t1 - t0
        if not ok:
            break
        img = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if i_spec.color == "RGB" else frame
        img = cv2.resize(img, (i_spec.width, i_spec.height))
        x = (img.astype(np.float32) / i_spec.scale - mean) / std
        if i_spec.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        x = np.expand_dims(x, 0)
        t2 = time.perf_counter()
        y = sess.run(None, {i_spec.name: x})[0][0]
        t3 = time.perf_counter()
        if o_spec.layout == "NCHW":
            y = y.transpose(1, 2, 0)
        if o_spec.kind == "logits":
            y = 1 / (1 + np.exp(-y))
        elif o_spec.kind == "softmax_logits":
            y = np.exp(y) / np.exp(y).sum(axis=-1, keepdims=True)
        mask = y[..., o_spec.person_channel]
        mask = cv2.resize(mask, (w, h))
        mask = cv2.GaussianBlur(mask, (15, 15), 0)
        t4 = time.perf_counter()
        m = mask[..., None]
        result = (frame.astype(np.float32) * m + bg.astype(np.float32) * (1 - m)).astype(np.uint8)
        t5 = time.perf_counter()
        writer.write(result)
        t6 = time.perf_counter()
        t["preprocess"] += t2 - t1
        t["inference"] += t3 - t2
        t["matte"] += t4 - t3
        t["composite"] += t5 - t4
        t["encode"] += t6 - t5
        n += 1
    cap.release()
    t0 = time.perf_counter()
    writer.release()
    t["encode"] += time.perf_counter() - t0
    seconds = time.perf_counter() - t_start
    return {"frames": n, "seconds": seconds,
            "stages_ms": {k: v * 1000 / max(1, n) for k, v in t.items()}}


# ---------------------------------------------------------------------------
# vbg
# ---------------------------------------------------------------------------
def vbg_available() -> bool:
    try:
        import vbg.apps.batch as batch
    except ImportError:
        return False
    return hasattr(batch, "convert_video")


def run_vbg(clip: Path, spec_path: Path, bg_path: Path, out: Path, preset: str | None = None) -> dict[str, Any]:
    """``vbg --input clip --bg beach.jpg --model spec -o out [--preset P]`` with default settings."""
    from vbg.apps.batch import DEFAULT_PRESET, convert_video
    from vbg.settings import Settings

    settings = Settings(model=str(spec_path), bg=str(bg_path))
    t0 = time.perf_counter()
    stats = convert_video(clip, out, settings, overwrite=True, preset=preset or DEFAULT_PRESET)
    seconds = time.perf_counter() - t0
    stages = dict(stats.stages)
    if "segment" in stages and "preprocess" not in stages:
        # The pipeline times model calls as one "segment" stage; split it
        # with a separate measurement of the preprocessor on this clip's frames.
        pre = preprocess_ms(clip, spec_path)
        stages["preprocess"] = pre
        stages["inference"] = max(0.0, stages.pop("segment") - pre)
    return {"frames": stats.frames, "seconds": seconds, "stages_ms": stages}


def preprocess_ms(clip: Path, spec_path: Path, n: int = 40, batch: int = 4) -> float:
    """Median ms per frame of vbg's preprocessing on ``n`` frames, as the pipeline does it: the frame
    pyramid (shared with the later stages), the model-size copy from it, colour and normalisation."""
    import av

    from vbg.spec import ModelSpec
    from vbg.stages.preprocess import FramePyramid, Preprocessor

    spec = ModelSpec.load(spec_path)
    pre = Preprocessor(spec)
    frames = []
    with av.open(str(clip)) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="bgr24"))
            if len(frames) >= n:
                break
    times = []
    for i in range(0, len(frames) - batch + 1, batch):
        t0 = time.perf_counter()
        pre([FramePyramid(f).at(spec.size_for(f.shape[1], f.shape[0])) for f in frames[i:i + batch]])
        times.append((time.perf_counter() - t0) * 1000 / batch)
    return statistics.median(times)


# ---------------------------------------------------------------------------
# harness
# ---------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """This process's peak resident memory.

    Linux keeps ``ru_maxrss`` across fork + exec, so a child would report its
    parent's peak; ``VmHWM`` belongs to the new address space and does not.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def worker(args: argparse.Namespace) -> int:
    """One measurement in this (fresh) process; prints one JSON line."""
    paths = Path(args.clip), Path(args.spec), Path(args.bg), Path(args.out)
    res = run_vbg(*paths, preset=args.preset) if args.worker == "vbg" else run_naive(*paths)
    res["fps"] = res["frames"] / res["seconds"]
    res["peak_rss_mb"] = peak_rss_mb()
    try:
        Path(args.out).unlink()
    except FileNotFoundError:
        pass
    print("RESULT " + json.dumps(res))
    return 0


def measure(impl: str, clip: Path, spec: Path, out_dir: Path, preset: str | None = None) -> dict[str, Any]:
    out = out_dir / f"out_{impl}_{clip.stem}.mp4"
    cmd = [sys.executable, __file__, "--worker", impl, "--clip", str(clip), "--spec", str(spec),
           "--bg", str(BACKGROUND), "--out", str(out)]
    if preset:
        cmd += ["--preset", preset]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{impl} on {clip.name} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")


def median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    stages = sorted({k for r in runs for k in r["stages_ms"]})
    return {
        "fps": statistics.median(r["fps"] for r in runs),
        "fps_all": [round(r["fps"], 1) for r in runs],
        "frames": runs[0]["frames"],
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "stages_ms": {k: statistics.median(r["stages_ms"].get(k, 0.0) for r in runs) for k in stages},
    }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def background_load() -> str:
    """Other heavy processes (a training run) make every figure pessimistic: say so."""
    try:
        p = subprocess.run(["pgrep", "-af", r"vbg.*train|train"], capture_output=True, text=True)
        lines = [ln for ln in p.stdout.splitlines()
                 if str(os.getpid()) != ln.split()[0] and "pgrep" not in ln]
    except FileNotFoundError:
        lines = []
    load = os.getloadavg()
    note = f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
    if lines:
        note += "; training processes running: " + "; ".join(ln[:100] for ln in lines)
    else:
        note += "; no training process running"
    return note


def models_to_run(which: str) -> list[tuple[str, Path]]:
    from vbg.errors import VbgError
    from vbg.models import resolve_model

    out: list[tuple[str, Path]] = []
    if which in ("all", "default"):
        try:
            spec = resolve_model(None)
            if spec.path is not None:
                out.append((f"{spec.name} (vbg default)", spec.path))
        except VbgError as exc:
            log(f"no bundled default model yet ({exc.what if hasattr(exc, 'what') else exc}); skipping it")
    if which in ("all", "peer"):
        if (SHARED / "peers" / "mediapipe_selfie.onnx").is_file():
            out.append(("mediapipe-selfie (peer)", PEER_SPEC))
        else:
            log("../shared/peers/mediapipe_selfie.onnx absent; skipping the peer model")
    return out


def fmt_table(results: dict[str, Any]) -> str:
    lines = []
    for model, per_size in results["models"].items():
        lines.append(f"**{model}**: {results['frames']} frames, median of {results['repeats']} run(s); "
                     "stage columns are vbg's median ms per frame\n")
        lines.append("| input | vbg fps | naive fps | vbg / naive | " + " | ".join(STAGES)
                     + " | not model/codec | peak RSS vbg / naive |")
        lines.append("|---|---:|---:|---:|" + "---:|" * len(STAGES) + "---:|---:|")
        for size, r in per_size.items():
            v, nv = r["vbg"], r["naive"]
            if v is None:
                lines.append(f"| {size} | – | {nv['fps']:.1f} | – | " + " | ".join("–" for _ in STAGES)
                             + f" | – | – / {nv['peak_rss_mb']:.0f} MB |")
                continue
            st = v["stages_ms"]
            cells = [f"{st[k]:.1f}" if k in st else "–" for k in STAGES]
            own = sum(st.get(k, 0.0) for k in OWN_STAGES)
            lines.append(f"| {size} | {v['fps']:.1f} | {nv['fps']:.1f} | **{v['fps'] / nv['fps']:.2f}x** | "
                         + " | ".join(cells) + f" | {own:.1f} | "
                         f"{v['peak_rss_mb']:.0f} / {nv['peak_rss_mb']:.0f} MB |")
        lines.append("")
        lines.append("Naive baseline, mean ms per frame: " + "; ".join(
            f"{size}: " + ", ".join(f"{k} {ms:.1f}" for k, ms in r["naive"]["stages_ms"].items())
            for size, r in per_size.items()) + ".")
        lines.append("")
    if results.get("memory"):
        m = results["memory"]
        lines.append(f"Peak RSS of vbg against video length ({m['size']}, {m['model']}): "
                     + ", ".join(f"{n} frames {mb:.0f} MB" for n, mb in m["rss_mb"].items()) + ".")
        lines.append("")
    lines.append("vbg's preprocess is timed separately on the same frames and subtracted from its "
                 "model stage to give inference. Decode and encode run in their own threads, "
                 "overlapping the pipeline, so the stages add up to more than 1000/fps.")
    lines.append("")
    lines.append(f"vbg's x264 preset: {results.get('preset', 'default')}. "
                 f"Machine: {results['machine']}. {results['background']}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="90 frames, 1 repeat, small memory check")
    ap.add_argument("--frames", type=int, default=300, help="frames per clip (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration (default %(default)s)")
    ap.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES), help="WxH,... to run")
    ap.add_argument("--model", choices=("all", "default", "peer"), default="all",
                    help="our bundled default model, the MediaPipe peer, or both (default)")
    ap.add_argument("--no-memory", action="store_true", help="skip the RSS-vs-length check")
    ap.add_argument("--clips", type=Path, default=Path(tempfile.gettempdir()) / "vbg-bench-clips",
                    help="folder for the generated input clips (default %(default)s)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--preset", help="vbg's x264 preset (default: vbg's own default, superfast)")
    # internal: one measurement in a subprocess
    ap.add_argument("--worker", choices=("vbg", "naive"), help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--bg", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.quick:
        args.frames, args.repeats = min(args.frames, 90), 1
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    models = models_to_run(args.model)
    if not models:
        log("no model to benchmark")
        return 1
    before = background_load()
    log(before)
    clips = make_clips(args.clips, sizes, args.frames)
    results: dict[str, Any] = {
        "frames": args.frames, "repeats": args.repeats, "models": {}, "preset": args.preset or "default",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"Python {platform.python_version()}, OpenCV {cv2.__version__}",
    }
    vbg_ok = vbg_available()
    if not vbg_ok:
        log("vbg conversion not wired yet: measuring the baseline only")
    with tempfile.TemporaryDirectory(prefix="vbg-bench-out-") as tmp:
        out_dir = Path(tmp)
        for model, spec in models:
            results["models"][model] = {}
            for w, h in sizes:
                runs: dict[str, list[dict[str, Any]]] = {"vbg": [], "naive": []}
                for rep in range(args.repeats):
                    for impl in ("vbg", "naive") if vbg_ok else ("naive",):
                        r = measure(impl, clips[(w, h)], spec, out_dir, args.preset)
                        runs[impl].append(r)
                        log(f"{model} {w}x{h} {impl} run {rep + 1}: {r['fps']:.1f} fps, "
                            f"{r['peak_rss_mb']:.0f} MB")
                results["models"][model][f"{w}x{h}"] = {
                    k: median_result(v) if v else None for k, v in runs.items()}
        if vbg_ok and not args.no_memory:
            mw, mh = (1280, 720) if args.quick else (1920, 1080)
            n_short = 60 if args.quick else 150
            mem_clips = {n: make_clips(args.clips, [(mw, mh)], n)[(mw, mh)] for n in (n_short, 4 * n_short)}
            spec = models[0][1]
            rss = {n: measure("vbg", c, spec, out_dir, args.preset)["peak_rss_mb"] for n, c in mem_clips.items()}
            results["memory"] = {"size": f"{mw}x{mh}", "model": models[0][0], "rss_mb": rss}
    results["background"] = "At start: " + before + ". At end: " + background_load()
    table = fmt_table(results)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
