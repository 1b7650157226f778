"""The prepared GPU check, run by ``benchmarks/gpu_check.sh`` (read that first).

Steps, each with its own time limit inside ``--budget`` seconds (8 minutes by default):

1. the machine: ``nvidia-smi``, CuPy's device, what inference backends exist;
2. ``tests/test_gpu.py``: the CUDA kernels and ``GpuPipeline`` against the NumPy references and the CPU
   pipeline, on the real device (the same tests run in CPU emulation everywhere else);
3. ``bench_gpu.py`` at 720p, 1080p and 4K: model time, GPU stages, live latency, conversion fps;
4. a 1080p conversion, ``vbg --input clip --backend cuda`` against ``--backend cpu``, whole processes.

Writes ``gpu_check.json`` (everything, for the record) and ``gpu_check.md`` (what to paste into the
README and the issue), in ``--out``. Without a GPU: one line, and reports that say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(5.0, timeout), cwd=ROOT,
                           env={**os.environ, **(env or {})})
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = 124, (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""), \
            f"timed out after {timeout:.0f} s"
    except FileNotFoundError as exc:
        rc, out, err = 127, "", str(exc)
    return {"cmd": " ".join(cmd), "rc": rc, "seconds": round(time.monotonic() - t0, 1),
            "stdout_tail": out[-6000:], "stderr_tail": err[-3000:]}


def gpu_name() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    r = sh(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], 30)
    line = r["stdout_tail"].strip().splitlines()
    return line[0] if r["rc"] == 0 and line else None


def make_clip(path: Path, w: int, h: int, n: int) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_gpu import write_clip

    write_clip(path, w, h, n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "gpu-check-out")
    ap.add_argument("--budget", type=float, default=470.0, help="seconds for the whole check")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t_end = time.monotonic() + args.budget
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "gpu": gpu_name(),
                              "python": platform.python_version(), "steps": []}
    if report["gpu"] is None:
        print("gpu_check: no GPU here (nvidia-smi finds no device): dry run, nothing measured")
        write(args.out, report)
        return 0
    print(f"gpu_check: {report['gpu']}")

    def left(share: float) -> float:
        return max(5.0, (t_end - time.monotonic()) * share)

    py = sys.executable
    steps = report["steps"]
    steps.append({"name": "machine", **sh([py, "-c", (
        "import cupy, onnxruntime as o, av, cv2, vbg; from vbg.gpu.device import probe_gpu, tensorrt_version;"
        "print(probe_gpu()); print('providers', o.get_available_providers()); print('tensorrt', tensorrt_version());"
        "print('PyAV', av.__version__, 'OpenCV', cv2.__version__, 'CuPy', cupy.__version__)")], left(0.05))})
    steps.append({"name": "tests/test_gpu.py", **sh([py, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                                      "tests/test_gpu.py"], left(0.3))})
    bench_json = args.out / "bench_gpu.json"
    steps.append({"name": "bench_gpu.py", **sh([py, "benchmarks/bench_gpu.py", "--frames", "300", "--repeats", "1",
                                                 "--sizes", "720p,1080p,4K", "--json", str(bench_json)], left(0.6))})
    clip = Path("/tmp/vbg-gpu-check-1080p.mp4")
    make_clip(clip, 1920, 1080, 300)
    env = {"VBG_CONFIG_DIR": "/tmp/vbg-gpu-check-config"}
    for backend in ("cuda", "cpu"):
        steps.append({"name": f"vbg --backend {backend} 1080p", **sh(
            [py, "-m", "vbg", "--input", str(clip), "--bg", "blur:25", "--backend", backend, "-o",
             f"/tmp/vbg-gpu-check-{backend}.mp4", "-y", "--no-progress", "-v"], left(0.5), env)})
    if bench_json.is_file():
        report["bench_gpu"] = json.loads(bench_json.read_text())
    write(args.out, report)
    print(f"gpu_check: done in {args.budget - (t_end - time.monotonic()):.0f} s; reports in {args.out}")
    return 0


def write(out: Path, report: dict[str, Any]) -> None:
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# GPU check, {report['date']}", ""]
    if report["gpu"] is None:
        lines.append("no GPU on this machine (nvidia-smi finds no device): nothing was measured.")
    else:
        lines += [f"GPU: {report['gpu']}; Python {report['python']}", "", "| step | rc | seconds | last line |",
                  "|---|---:|---:|---|"]
        for s in report["steps"]:
            last = (s["stdout_tail"].strip().splitlines() or s["stderr_tail"].strip().splitlines() or [""])[-1]
            lines.append(f"| {s['name']} | {s['rc']} | {s['seconds']} | {last[:160]} |")
        for s in report["steps"]:
            if s["name"] == "bench_gpu.py" and s["stdout_tail"]:
                lines += ["", "## bench_gpu.py", "", s["stdout_tail"].strip()]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
