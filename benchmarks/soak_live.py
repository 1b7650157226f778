"""Soak: ``vbg live``'s loop for a long time on a looping file, with the camera vanishing on the way.

Every ``--every`` seconds it samples the process's resident memory, the delivered fps, the latency
(median, p95) and the CPU time per frame over the last interval. Half way through (or at ``--outages``
evenly spaced times), the camera file is moved away for ``--gap`` seconds (a webcam unplugged; the clip
is half as long, so the loop wraps round and tries to reopen it while it is gone) and then back: the
loop must report it, retry with backoff and resume by itself. RSS is recorded before and after each. At the end it prints a Markdown report: the samples, RSS
growth from the first to the last quarter, and the outage and recovery.

    python benchmarks/soak_live.py                      # 30 minutes, 720p, the README's figures
    python benchmarks/soak_live.py --minutes 2 --every 5   # a short run

The source is the ../shared webcam clips at 1280x720 (a synthetic scene without them), played at
30 fps through the same capture thread a webcam uses; no virtual camera device.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_live import make_source  # noqa: E402

from vbg.loop import LiveLoop  # noqa: E402
from vbg.settings import Settings  # noqa: E402


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def soak(minutes: float, every: float, gap: float, model: str | None, outages: int = 1) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vbg-soak-") as tmp:
        cam = Path(tmp) / "cam.mp4"
        # a file is readable while it is open: the outage shows when the loop wraps round and reopens it,
        # so the clip is shorter than the gap
        what = make_source(cam, seconds=max(2.0, gap / 2))
        messages: list[tuple[float, str]] = []
        t0 = time.monotonic()
        settings = Settings(camera=str(cam), bg="blur:25", **({"model": model} if model else {}))
        loop = LiveLoop(settings, loop_file=True, on_error=lambda m: messages.append((time.monotonic() - t0, m)))
        loop.start()
        samples: list[dict[str, float]] = []
        # the outages, evenly spaced (one: half way); each records start, back, resumed and RSS around it
        cuts = [t0 + minutes * 60 * (k + 1) / (outages + 1) for k in range(outages)]
        done: list[dict[str, float]] = []
        outage: dict[str, float] = {}
        stop = time.monotonic() + minutes * 60
        cpu_prev, frames_prev = time.process_time(), 0
        try:
            while time.monotonic() < stop:
                if cuts and not outage and time.monotonic() >= cuts[0]:
                    cuts.pop(0)
                    hidden = Path(tmp) / "unplugged.mp4"
                    shutil.move(cam, hidden)  # the camera vanishes
                    outage["start"] = time.monotonic() - t0
                    outage["rss_before_mb"] = round(rss_mb(), 1)

                    def plug_back(hidden: Path = hidden, o: dict[str, float] = outage) -> None:
                        shutil.move(hidden, cam)
                        o["back"] = time.monotonic() - t0

                    threading.Timer(gap, plug_back).start()
                time.sleep(every)
                st = loop.stats(window=every)
                total = loop.stats()
                cpu = time.process_time()
                n = total.frames - frames_prev
                samples.append({"t": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(), 1),
                                "fps": round(st.fps, 1), "p50_ms": round(st.latency_ms_p50, 1),
                                "p95_ms": round(st.latency_ms_p95, 1),
                                "cpu_ms": round(1000 * (cpu - cpu_prev) / n, 1) if n else 0.0})
                cpu_prev, frames_prev = cpu, total.frames
                if "back" in outage and "resumed" not in outage and st.frames > 0 and samples[-1]["t"] > outage["back"]:
                    outage["resumed"] = samples[-1]["t"]
                elif "resumed" in outage:  # one sample after frames came back: the memory it settled at
                    outage["rss_after_mb"] = samples[-1]["rss_mb"]
                    done.append(outage)
                    outage = {}
        finally:
            loop.stop()
        if not loop.running and loop.lost:
            raise SystemExit(f"the session ended: {loop.end_reason}")
    q = max(1, len(samples) // 4)
    first, last = samples[:q], samples[-q:]
    if outage:
        done.append(outage)
    return {"source": what, "minutes": minutes, "every_s": every, "samples": samples, "messages": messages,
            "outage": done[0] if done else {}, "outages": done, "reconnects": loop.reconnects,
            "rss_first_quarter_mb": statistics.median(s["rss_mb"] for s in first),
            "rss_last_quarter_mb": statistics.median(s["rss_mb"] for s in last),
            "fps_median": statistics.median(s["fps"] for s in samples if s["fps"] > 0),
            "p50_median_ms": statistics.median(s["p50_ms"] for s in samples if s["fps"] > 0),
            "cpu_ms_median": statistics.median(s["cpu_ms"] for s in samples if s["cpu_ms"] > 0),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}


def markdown(r: dict[str, Any]) -> str:
    lines = [f"Soak: {r['minutes']:g} min of the live loop on {r['source']} at 1280x720 30 fps, blur background, "
             f"{r['cores']} cores; a sample every {r['every_s']:g} s.", "",
             f"- fps median {r['fps_median']:.1f}, latency p50 median {r['p50_median_ms']:.1f} ms, CPU "
             f"{r['cpu_ms_median']:.1f} ms per frame",
             f"- resident memory: {r['rss_first_quarter_mb']:.0f} MB (median of the first quarter) -> "
             f"{r['rss_last_quarter_mb']:.0f} MB (last quarter)",
             *(f"- camera gone at {o.get('start', float('nan')):.0f} s, back at {o.get('back', float('nan')):.0f} s, "
               f"frames again by {o.get('resumed', float('nan')):.0f} s; RSS {o.get('rss_before_mb', float('nan')):.1f} "
               f"MB before, {o.get('rss_after_mb', float('nan')):.1f} MB after" for o in r["outages"]),
             f"- reconnects: {r['reconnects']}",
             "- what the loop said: " + "; ".join(f"{t:.0f} s: {m}" for t, m in r["messages"]), "",
             "| t (s) | RSS MB | fps | latency p50 ms | p95 ms | CPU ms/frame |", "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {s['t']} | {s['rss_mb']} | {s['fps']} | {s['p50_ms']} | {s['p95_ms']} | {s['cpu_ms']} |"
              for s in r["samples"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--gap", type=float, default=20.0, help="seconds the camera is gone")
    ap.add_argument("--model", help="model name or spec (default: the default model)")
    ap.add_argument("--outages", type=int, default=1, help="how many times the camera vanishes, evenly spaced")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    r = soak(args.minutes, args.every, args.gap, args.model, args.outages)
    print(markdown(r))
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
