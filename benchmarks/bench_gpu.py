"""GPU benchmark: TensorRT engine, CuPy stages and end-to-end conversion on an NVIDIA GPU.

Measures, on this machine and in the same run:

1. the model alone: the TensorRT FP16 engine (device-resident input, timed
   with CUDA events, and host-to-host through pinned buffers) against ONNX
   Runtime on the CPU, batch 1 and batch ``--batch``, ms per frame and ratio;
2. the GPU pipeline's stages (upload, preprocess + inference, smooth, matte,
   composite, download) at 1080p and 4K, ms per frame, batch 1 and ``--batch``.
   The stages are the current CPU algorithms (``vbg.gpu.kernels``): "smooth"
   includes the luma thumbnails and the host's scene-cut test (one small
   download and sync per batch), "matte" the guided filter and feather,
   "composite" the downscale-blur-upscale background; light wrap is CPU-only
   and off here;
3. live latency: one frame in, one composited frame out (batch 1), median and
   p95, at 720p, 1080p and 4K;
4. end-to-end conversion fps (``vbg.apps.batch.convert_video``: PyAV decode ->
   the pipeline ``make_pipeline`` picks for a CUDA backend, the GPU one ->
   PyAV encode, NVDEC/NVENC where they open) at 720p, 1080p and 4K, against the
   CPU pipeline with ONNX Runtime on the CPU at 720p and 1080p.

Targets on an H100-class GPU: model <= 1 ms per frame, 1080p conversion
>= 300 fps (then limited by decode and encode). Inference is vbg's TensorRT
engine when TensorRT is installed, else ONNX Runtime's CUDA provider
(onnxruntime-gpu), else ONNX Runtime on the CPU inside the GPU pipeline for the
stage and latency figures (marked in the output); without a CUDA GPU the
script says so and exits with status 0.

    python benchmarks/bench_gpu.py                 # everything, markdown to stdout
    python benchmarks/bench_gpu.py --quick         # fewer frames and repeats
    python benchmarks/bench_gpu.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def frames_at(w: int, h: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """A moving bright figure over a textured background (content does not change the GPU's work)."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    out = []
    for i in range(n):
        f = base.copy()
        cx = int(w * (0.3 + 0.4 * i / max(1, n - 1)))
        cv2.ellipse(f, (cx, h // 2), (w // 8, h // 3), 0, 0, 360, (60, 80, 200), -1)
        cv2.circle(f, (cx, h // 5), h // 9, (90, 120, 210), -1)
        out.append(f)
    return out


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95)) if xs else float("nan")


# --- 1. model ------------------------------------------------------------------------
def bench_model(spec: Any, trt: Any, batch: int, reps: int, ort_cuda: Any = None) -> dict[str, Any]:
    import cupy as cp

    from vbg.backends.onnxruntime import OnnxRuntimeBackend

    ort = OnnxRuntimeBackend(spec)
    res: dict[str, Any] = {}
    for n in sorted({1, batch}):
        x = ort.pre(frames_at(1920, 1080, n))
        ort.run_tensor(x)
        t = []
        for _ in range(max(3, reps // 4)):
            t0 = time.perf_counter()
            ort.run_tensor(x)
            t.append((time.perf_counter() - t0) * 1e3 / n)
        row = {"ort_cpu_ms": med(t)}
        if ort_cuda is not None:
            ort_cuda.run_tensor(x)
            t = []
            for _ in range(reps):
                t0 = time.perf_counter()
                ort_cuda.run_tensor(x)
                t.append((time.perf_counter() - t0) * 1e3 / n)
            row["ort_cuda_ms"] = med(t)
        if trt is not None and n <= trt.max_batch:
            d_x = cp.asarray(x)
            for _ in range(10):
                trt.run_device(d_x)
            trt.stream.synchronize()
            ev = [cp.cuda.Event(), cp.cuda.Event()]
            dev = []
            for _ in range(reps):
                ev[0].record(trt.stream)
                trt.run_device(d_x)
                ev[1].record(trt.stream)
                ev[1].synchronize()
                dev.append(cp.cuda.get_elapsed_time(ev[0], ev[1]) / n)
            host = []
            for _ in range(reps):
                t0 = time.perf_counter()
                trt.run_tensor(x)
                host.append((time.perf_counter() - t0) * 1e3 / n)
            row.update(trt_device_ms=med(dev), trt_host_ms=med(host), speedup=row["ort_cpu_ms"] / med(dev))
        res[f"batch{n}"] = row
    ort.close()
    return res


# --- 2 + 3. GPU pipeline ---------------------------------------------------------------
def bench_stages(settings: Any, backend: Any, sizes: list[str], batch: int, reps: int) -> dict[str, Any]:
    from vbg.gpu.pipeline import GpuPipeline

    res: dict[str, Any] = {}
    for name in sizes:
        w, h = SIZES[name]
        for n in sorted({1, batch}):
            pipe = GpuPipeline(settings, backend, download_alpha=False)
            frames = frames_at(w, h, n)
            for _ in range(3):
                pipe.process_batch(frames)
            stages: dict[str, list[float]] = {}
            wall = []
            for _ in range(reps):
                t0 = time.perf_counter()
                outs = pipe.process_batch(frames)
                wall.append((time.perf_counter() - t0) * 1e3)
                for k, v in outs[0].timings.items():
                    stages.setdefault(k, []).append(v)
            pipe.close()
            res[f"{name}/batch{n}"] = {
                "stages_ms": {k: med(v) for k, v in stages.items()},
                "batch_ms_median": med(wall), "batch_ms_p95": p95(wall),
                "fps": 1000.0 * n / med(wall),
            }
    return res


# --- 4. conversion ----------------------------------------------------------------------
def write_clip(path: Path, w: int, h: int, n: int) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "18"}
        for f in frames_at(w, h, n):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


class CpuInferenceInGpuPipeline:
    """ONNX Runtime on the CPU, declared a CUDA backend so that ``make_pipeline`` runs the GPU pipeline
    around it (``HostInfer`` carries the small model tensors): the GPU stages end to end on an image
    with no GPU inference installed. Labelled as such in the results."""

    device = "cuda"
    name = "onnxruntime-cpu in the GPU pipeline"

    def __init__(self, inner: Any) -> None:
        self.inner, self.spec, self.max_batch = inner, inner.spec, inner.max_batch

    def run_tensor(self, x: Any) -> Any:
        return self.inner.run_tensor(x)

    def infer(self, frames: Any) -> Any:
        return self.inner.infer(frames)

    def reset(self) -> None:
        self.inner.reset()

    def close(self) -> None:
        self.inner.close()


def convert(src: Path, dst: Path, settings: Any, backend: Any, batch: int) -> float:
    """One conversion through vbg's own path: ``make_pipeline`` runs the GPU pipeline for a CUDA backend."""
    import vbg.apps.batch as vb

    stats = vb.convert_video(src, dst, settings, backend=backend, batch=batch, overwrite=True)
    return float(stats.fps)


def bench_convert(settings: Any, spec: Any, backend: Any, sizes: list[str], frames: int, batch: int,
                  repeats: int) -> dict[str, Any]:
    from vbg.backends.onnxruntime import OnnxRuntimeBackend

    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vbg-bench-gpu-") as td:
        for name in sizes:
            w, h = SIZES[name]
            src = Path(td) / f"in-{name}.mp4"
            write_clip(src, w, h, frames)
            gpu_backend = backend if getattr(backend, "device", "cpu") == "cuda" else CpuInferenceInGpuPipeline(backend)
            label = "gpu" if gpu_backend is backend else "gpu-stages-cpu-inference"
            fps = [convert(src, Path(td) / "out.mp4", settings, gpu_backend, batch) for _ in range(repeats)]
            res[f"{label}/{name}"] = med(fps)
            log(f"  conversion {name}, {label}: {med(fps):.0f} fps")
        ort = OnnxRuntimeBackend(spec)
        for name in ("720p", "1080p"):
            fps = [convert(Path(td) / f"in-{name}.mp4", Path(td) / "out.mp4", settings, ort, 4)
                   for _ in range(repeats)]
            res[f"cpu-onnxruntime/{name}"] = med(fps)
            log(f"  conversion {name} on the CPU (ONNX Runtime): {med(fps):.0f} fps")
        ort.close()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model name or spec (default: the default model)")
    ap.add_argument("--batch", type=int, default=8, help="conversion batch size (default 8)")
    ap.add_argument("--frames", type=int, default=600, help="frames per conversion clip (default 600)")
    ap.add_argument("--repeats", type=int, default=3, help="conversions per size; the median is kept")
    ap.add_argument("--build", action="store_true", help="build the TensorRT engine when missing")
    ap.add_argument("--quick", action="store_true", help="a smoke run: fewer frames and repeats")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--sizes", default=",".join(SIZES), help="sizes for stages, latency and conversion")
    args = ap.parse_args(argv)

    from vbg.errors import VbgError
    from vbg.gpu import device

    try:
        gpu = device.probe_gpu()
    except VbgError as exc:
        log(f"bench_gpu: nothing to measure here: {exc.line()}")
        return 0
    from vbg.backends import tensorrt as trt_backend
    from vbg.gpu import engine as eng
    from vbg.models import resolve_model
    from vbg.settings import Settings

    if args.quick:
        args.frames, args.repeats = 120, 1
    reps = 20 if args.quick else 100
    spec = resolve_model(args.model)
    trt = None
    note = ""
    if device.has_module("tensorrt"):
        path = trt_backend.find_engine(spec)
        if path is None and args.build:
            log("building the TensorRT engine ...")
            path = eng.build_engine(spec, max_batch=max(8, args.batch))
        if path is not None:
            trt = trt_backend.TensorRTBackend(spec, path)
        else:
            note = f"no engine ({eng.diagnose(spec).line()}); inference via ONNX Runtime"
    else:
        note = "TensorRT not installed"
    from vbg.backends import create_backend
    from vbg.backends.onnxruntime import OnnxRuntimeBackend

    try:
        ort_cuda = create_backend(spec, "cuda")
    except VbgError as exc:
        ort_cuda = None
        note += f"; no ONNX Runtime CUDA provider ({exc.what})"
    infer_backend = trt if trt is not None else ort_cuda if ort_cuda is not None else OnnxRuntimeBackend(spec)
    if trt is None:
        note += "; inference via " + ("ONNX Runtime's CUDA provider" if ort_cuda is not None
                                      else "ONNX Runtime on the CPU (stages and latency only)")
    if note:
        log(f"note: {note}")
    settings = Settings(bg="blur:25", smoothing=0.5)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "gpu": gpu.name, "compute_capability": gpu.compute_capability,
        "tensorrt": device.tensorrt_version(), "model": spec.name, "model_size": list(spec.size),
        "cpu": platform.processor() or platform.machine(), "note": note,
    }
    log("model ...")
    results["model_ms"] = bench_model(spec, trt, args.batch, reps, ort_cuda)
    log("GPU stages ...")
    sizes = [s for s in args.sizes.split(",") if s in SIZES]
    results["stages"] = bench_stages(settings, infer_backend, [s for s in sizes if s != "720p"] or sizes,
                                     args.batch, reps // 2)
    log("latency ...")
    results["latency"] = bench_stages(settings, infer_backend, sizes, 1, reps)
    log("conversion ...")
    results["convert_fps"] = bench_convert(settings, spec, infer_backend, sizes, args.frames, args.batch,
                                           args.repeats)
    infer_backend.close()
    if ort_cuda is not None and ort_cuda is not infer_backend:
        ort_cuda.close()

    print(f"# GPU benchmark, {results['date']}, {gpu.name}, TensorRT {results['tensorrt']}, "
          f"model {spec.name} {spec.size[0]}x{spec.size[1]}")
    if note:
        print(f"\nNote: {note}")
    print("\n| model, ms/frame | ONNX Runtime CPU | ONNX Runtime CUDA | TensorRT (device) | TensorRT (host) | speed-up |")
    print("|---|---|---|---|---|---|")
    for k, r in results["model_ms"].items():
        print(f"| {k} | {r['ort_cpu_ms']:.2f} | {r.get('ort_cuda_ms', float('nan')):.3f} | "
              f"{r.get('trt_device_ms', float('nan')):.3f} | {r.get('trt_host_ms', float('nan')):.3f} | "
              f"{r.get('speedup', float('nan')):.0f}x |")
    names = sorted({s for r in results["stages"].values() for s in r["stages_ms"]})
    print("\n| GPU stages, ms/frame | " + " | ".join(names) + " | fps |")
    print("|---" * (len(names) + 2) + "|")
    for k, r in results["stages"].items():
        print(f"| {k} | " + " | ".join(f"{r['stages_ms'].get(s, float('nan')):.3f}" for s in names)
              + f" | {r['fps']:.0f} |")
    print("\n| live latency (batch 1) | median ms | p95 ms |")
    print("|---|---|---|")
    for k, r in results["latency"].items():
        print(f"| {k.split('/')[0]} | {r['batch_ms_median']:.2f} | {r['batch_ms_p95']:.2f} |")
    print("\n| conversion | fps |")
    print("|---|---|")
    for k, v in results["convert_fps"].items():
        print(f"| {k} | {v:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
