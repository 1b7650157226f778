"""End-to-end conversion benchmark: vbg vs a naive OpenCV + ONNX Runtime script, as a user times them.

Measures, on this machine and in the same run:

* vbg as a user runs it: the whole process ``python -m vbg --input clip.mp4
  --bg beach.jpg -o out.mp4`` (start-up, model load, every frame, the audio,
  closing the file), at 640x480, 1280x720 and 1920x1080, with vbg's own
  per-stage milliseconds from ``-v``;
* a naive baseline, also a whole process, written the way a competent user
  writes it: ``cv2.VideoCapture`` -> MediaPipe selfie in an
  ``onnxruntime.InferenceSession`` with 2 threads -> ``cv2.resize`` of the
  mask -> Gaussian blur -> a float numpy blend against the background,
  prepared once as a float array before the loop -> ``cv2.VideoWriter``
  (mp4v; it drops the audio, as such a script does);
* peak resident memory, and whether it stays flat with the video's length
  (a short and a 4x longer clip at 1080p).

Every measurement is a fresh process (so its time and peak RSS are its own);
each configuration runs ``--repeats`` times, vbg and the baseline
interleaved, and the median is reported. fps = frames / the process's wall
time.

``--explain`` instead looks into where the model's time goes inside a
conversion (the model alone is ~3 ms, inside the conversion more): it runs
the conversion in-process with ONNX Runtime on 1 or 2 threads, x264 on its
default or fewer threads, and several batch sizes, side by side.

Input clips are the webcam clips in ../shared/videos/webcam concatenated to
``--frames`` frames (300: 10 s) and upscaled (centre-cropped to 16:9 for the
HD sizes), with a stereo AAC track, written as H.264 MP4 to a temporary
folder, never into the repository. Without ../shared a synthetic clip is used
instead.

    python benchmarks/bench_convert.py            # full run, prints a markdown table
    python benchmarks/bench_convert.py --quick    # a smoke run in about a minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
        c = av.open(str(tmp), "w", format="mp4")
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
        _add_audio(tmp, p, frames / FPS)
        tmp.unlink()
    return paths


def _add_audio(src: Path, dst: Path, seconds: float, rate: int = 48000) -> None:
    """Copy ``src``'s video into ``dst`` with a stereo AAC tone of ``seconds`` (a clip with sound)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        v_in = inp.streams.video[0]
        v_out = out.add_stream_from_template(v_in)
        a = out.add_stream("aac", rate=rate, layout="stereo")
        for pkt in inp.demux(v_in):
            if pkt.dts is None:
                continue
            pkt.stream = v_out
            out.mux(pkt)
        n = int(seconds * rate)
        tone = (0.2 * 32767 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.int16)
        for i in range(0, n, 1024):
            chunk = np.repeat(tone[i:i + 1024], 2)[None, :]
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="s16", layout="stereo")
            f.sample_rate, f.pts = rate, i
            for p in a.encode(f):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)


# ---------------------------------------------------------------------------
# the naive baseline, as a typical script writes it
# ---------------------------------------------------------------------------
def run_naive(clip: Path, spec_path: Path, bg_path: Path, out: Path) -> dict[str, Any]:
    """MediaPipe selfie (whatever ``spec_path`` is: the baseline is the script users write with it)."""
    import onnxruntime as ort

    from vbg.spec import ModelSpec

    spec = ModelSpec.load(PEER_SPEC)
    i_spec, o_spec = spec.input, spec.output
    t = dict.fromkeys(("decode", "preprocess", "inference", "matte", "composite", "encode"), 0.0)
    t_start = time.perf_counter()

    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or FPS
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(spec.onnx), so, providers=["CPUExecutionProvider"])
    bg = cv2.resize(cv2.imread(str(bg_path)), (w, h)).astype(np.float32)  # prepared once, as floats
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
        result = (frame.astype(np.float32) * m + bg * (1 - m)).astype(np.uint8)
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
def worker(args: argparse.Namespace) -> int:
    """The naive script, in this (fresh) process; prints one JSON line."""
    res = run_naive(Path(args.clip), Path(args.spec), Path(args.bg), Path(args.out))
    print("RESULT " + json.dumps(res))
    return 0


# A small launcher between us and the measured process: a child forked straight from this (large) process
# starts with our memory high-water mark, so its own peak RSS would read as ours.
_LAUNCHER = (
    "import os, resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(rc)\n"
)


def _run_timed(cmd: list[str], env: dict[str, str] | None = None,
               cwd: Path | None = None) -> tuple[int, str, str, float, float]:
    """Run a process to the end: (exit code, stdout, stderr, wall seconds, its own peak RSS in MB)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", _LAUNCHER, str(rss_file), *cmd],
                           stdout=out, stderr=err, cwd=cwd or ROOT, env=env, text=True)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        rss_kb = int(rss_file.read_text()) if rss_file.exists() else 0
        return p.returncode, out.read(), err.read(), wall, rss_kb / 1024


def measure(impl: str, clip: Path, spec: Path, out_dir: Path, preset: str | None = None,
            tree: Path | None = None, extra: list[str] | None = None) -> dict[str, Any]:
    """One whole-process conversion, timed from start to exit as ``time`` would.

    ``tree``: run vbg from that source tree instead (another commit, for a before/after comparison).
    ``extra``: more vbg flags (e.g. ``--model-every 1``).
    """
    out = out_dir / f"out_{impl}_{clip.stem}.mp4"
    if impl == "vbg":
        cmd = [sys.executable, "-m", "vbg", "--input", str(clip), "--bg", str(BACKGROUND), "--model", str(spec),
               "-o", str(out), "-y", "--no-progress", "-v"] + (["--preset", preset] if preset else []) + (extra or [])
        env = {**os.environ, "VBG_CONFIG_DIR": str(out_dir / "no-config")}  # the defaults, not a saved config
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        rc, stdout, stderr, wall, rss = _run_timed(cmd, env, cwd=tree)
        if rc != 0:
            raise RuntimeError(f"vbg on {clip.name} failed (exit {rc}):\n{stderr[-3000:]}")
        frames = int(stdout.split(" frames in ")[0].split()[-1])
        stages: dict[str, float] = {}
        for line in stderr.splitlines():
            if "median ms per frame:" in line:
                for part in line.split("median ms per frame:")[1].split(","):
                    k, v = part.split()
                    stages[k] = float(v)
        if "segment" in stages:  # split the model stage with a separate timing of the preprocessing
            pre = preprocess_ms(clip, spec)
            stages["preprocess"] = pre
            stages["inference"] = max(0.0, stages.pop("segment") - pre)
        res = {"frames": frames, "stages_ms": stages}
    else:
        cmd = [sys.executable, __file__, "--worker", impl, "--clip", str(clip), "--spec", str(spec),
               "--bg", str(BACKGROUND), "--out", str(out)]
        rc, stdout, stderr, wall, rss = _run_timed(cmd)
        line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
        if rc != 0 or line is None:
            raise RuntimeError(f"{impl} on {clip.name} failed (exit {rc}):\n{stderr[-3000:]}")
        res = json.loads(line[7:])
    out.unlink(missing_ok=True)
    res.update(seconds=wall, fps=res["frames"] / wall, peak_rss_mb=rss)
    return res


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
    if which.endswith(".json"):
        return [(Path(which).stem, Path(which).resolve())]
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
            for k, t in r.items():
                if k.startswith("tree:") and t is not None:
                    lines.append(f"| {size}, vbg from {Path(k[5:]).name} | {t['fps']:.1f} | {nv['fps']:.1f} | "
                                 f"{t['fps'] / nv['fps']:.2f}x | " + " | ".join(
                                     f"{t['stages_ms'][x]:.1f}" if x in t["stages_ms"] else "–" for x in STAGES)
                                 + f" | {sum(t['stages_ms'].get(x, 0.0) for x in OWN_STAGES):.1f} | "
                                 f"{t['peak_rss_mb']:.0f} / {nv['peak_rss_mb']:.0f} MB |")
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


def explain(clip: Path, spec: Path, repeats: int) -> str:
    """Where the model's time goes inside a conversion: the same conversion in this process with ONNX
    Runtime and x264 on different thread counts, and other batch sizes, side by side (interleaved)."""
    from vbg.apps.batch import convert_video
    from vbg.backends import create_backend
    from vbg.settings import Settings
    from vbg.spec import ModelSpec

    model = ModelSpec.load(spec)
    variants = [("ORT 2 threads, x264 auto, batch 4 (vbg's default)", 2, 0, 4),
                ("ORT 1 thread", 1, 0, 4), ("x264 2 threads", 2, 2, 4), ("x264 1 thread", 2, 1, 4),
                ("ORT 1 thread, x264 2 threads", 1, 2, 4), ("batch 1", 2, 0, 1), ("batch 8", 2, 0, 8)]
    rows: dict[str, list[tuple[float, dict[str, float]]]] = {v[0]: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="vbg-explain-") as tmp:
        for _ in range(repeats):
            for name, ort_threads, x264_threads, batch in variants:
                backend = create_backend(model, "cpu", threads=ort_threads)
                t0 = time.perf_counter()
                st = convert_video(clip, Path(tmp) / "out.mp4",  # the model on every frame: its cost is the question
                                   Settings(model=str(spec), bg=str(BACKGROUND), model_every="1"),
                                   backend=backend, overwrite=True, batch=batch,
                                   sink_options={"threads": x264_threads})
                rows[name].append((st.frames / (time.perf_counter() - t0), st.stages))
                backend.close()
                log(f"{name}: {rows[name][-1][0]:.1f} fps")
    alone = _model_alone_ms(model)
    lines = [f"Inside a conversion of {clip.name} ({repeats} runs each, interleaved; median). The model alone "
             f"on a quiet process: {alone:.2f} ms per frame in batches of 4.", "",
             "| variant | fps | segment ms | decode ms | encode ms |", "|---|---:|---:|---:|---:|"]
    for name, runs in rows.items():
        fps = statistics.median(r[0] for r in runs)
        med = {k: statistics.median(r[1].get(k, 0.0) for r in runs) for k in ("segment", "decode", "encode")}
        lines.append(f"| {name} | {fps:.1f} | {med['segment']:.1f} | {med['decode']:.1f} | {med['encode']:.1f} |")
    return "\n".join(lines)


def _model_alone_ms(spec: Any, batch: int = 4, runs: int = 100) -> float:
    from vbg.backends import create_backend

    be = create_backend(spec, "cpu", threads=2)
    x = be.pre([np.zeros((spec.input.height, spec.input.width, 3), np.uint8)] * batch)
    for _ in range(10):
        be.run_tensor(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        be.run_tensor(x)
        times.append((time.perf_counter() - t0) * 1000 / batch)
    be.close()
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="90 frames, 1 repeat, small memory check")
    ap.add_argument("--frames", type=int, default=300, help="frames per clip (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration (default %(default)s)")
    ap.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES), help="WxH,... to run")
    ap.add_argument("--model", default="all",
                    help="default (our bundled default model), peer (MediaPipe), all (both; the default), "
                         "or a spec .json")
    ap.add_argument("--no-memory", action="store_true", help="skip the RSS-vs-length check")
    ap.add_argument("--clips", type=Path, default=Path(tempfile.gettempdir()) / "vbg-bench-clips",
                    help="folder for the generated input clips (default %(default)s)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--preset", help="vbg's x264 preset (default: vbg's own default, superfast)")
    ap.add_argument("--tree", type=Path, action="append", default=[],
                    help="also run vbg from this source tree (another commit), side by side: before/after")
    ap.add_argument("--model-every", help="vbg's --model-every (default: vbg's own default, auto)")
    ap.add_argument("--explain", action="store_true",
                    help="look into the model's time inside a conversion (thread counts, batch sizes) at 720p")
    # internal: one measurement in a subprocess
    ap.add_argument("--worker", choices=("naive",), help=argparse.SUPPRESS)
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
    args.clips = args.clips.resolve()  # --tree runs vbg from another folder
    clips = make_clips(args.clips, sizes, args.frames)
    if args.explain:
        size = (1280, 720) if (1280, 720) in clips else sizes[0]
        print(explain(clips[size], models[0][1], args.repeats))
        return 0
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
            extra = ["--model-every", args.model_every] if args.model_every else []
            for w, h in sizes:
                impls = (["vbg"] if vbg_ok else []) + [f"tree:{t}" for t in args.tree] + ["naive"]
                runs: dict[str, list[dict[str, Any]]] = {k: [] for k in impls}
                for rep in range(args.repeats):
                    for impl in impls:
                        tree = Path(impl[5:]) if impl.startswith("tree:") else None
                        r = measure("vbg" if tree else impl, clips[(w, h)], spec, out_dir, args.preset, tree,
                                    extra if impl == "vbg" else [])
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
