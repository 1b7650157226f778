"""Synthetic test media made with PyAV: the moving red disc, with a sine tone.

Small and quick to make (320x240, ~1 s). The red disc is the "person" for the
``red_model`` fixture; see ``conftest.disc_frame``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from conftest import disc_frame

CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".ts": "mpegts"}


def disc_centre(i: int, n: int, w: int, h: int) -> tuple[float, float]:
    """Where the disc is in frame i of n: left to right across the middle."""
    return w * (0.3 + 0.4 * i / max(1, n - 1)), h * 0.5


def make_clip(path: Path, *, width: int = 320, height: int = 240, frames: int = 36, fps: int = 30,
              audio: str | None = "aac", sample_rate: int = 48000, rotation: int = 0,
              pts_ms: list[int] | None = None, codec: str = "libx264", radius: float | None = None) -> Path:
    """Write a clip of the moving disc; ``audio`` is an encoder name or None.

    ``pts_ms``: explicit frame times in milliseconds (variable frame rate);
    ``rotation``: display rotation (counter-clockwise degrees) stored as
    metadata, pixels left as they are, like a phone does.
    """
    r = radius if radius is not None else min(width, height) * 0.22
    out = av.open(str(path), "w", format=CONTAINER_FORMATS[path.suffix.lower()])
    v = out.add_stream(codec, rate=fps)
    v.width, v.height = width, height
    v.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    tb = Fraction(1, 1000) if pts_ms is not None else Fraction(1, fps)
    v.codec_context.time_base = tb
    v.time_base = tb
    v.options = {"crf": "10", "preset": "ultrafast"} if codec == "libx264" else {}
    if rotation:
        v.set_display_rotation(rotation)
    a = None
    if audio:
        a = out.add_stream(audio, rate=sample_rate, layout="stereo")
    for i in range(frames):
        cx, cy = disc_centre(i, frames, width, height)
        img, _ = disc_frame(width, height, cx, cy, r, seed=0)
        f = av.VideoFrame.from_ndarray(img, format="bgr24")
        f.pts = pts_ms[i] if pts_ms is not None else i
        f.time_base = tb
        for p in v.encode(f):
            out.mux(p)
    for p in v.encode(None):
        out.mux(p)
    if a is not None:
        seconds = (pts_ms[-1] / 1000 + 1 / fps) if pts_ms is not None else frames / fps
        n = int(round(seconds * sample_rate))
        t = np.arange(n) / sample_rate
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        step = 1024
        for i in range(0, n, step):
            chunk = tone[i:i + step]
            stereo = np.repeat(chunk, 2)[None, :]  # packed s16: L R L R ...
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo), format="s16", layout="stereo")
            af.sample_rate = sample_rate
            af.pts = i
            af.time_base = Fraction(1, sample_rate)
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
    out.close()
    return path


@dataclass
class VideoFacts:
    width: int
    height: int
    frames: list[np.ndarray]  # BGR
    times: list[float]  # seconds, per frame
    codec: str
    pix_fmt: str
    rotation: int
    duration: float | None
    audio_codec: str | None
    audio_packets: list[bytes]
    audio_duration: float | None


def probe(path: Path, *, keep_frames: bool = True) -> VideoFacts:
    """Decode a whole (small) video and its audio packets."""
    c = av.open(str(path))
    try:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        frames: list[np.ndarray] = []
        times: list[float] = []
        packets: list[bytes] = []
        rotation = 0
        streams = [v] + ([a] if a is not None else [])
        a_end = 0.0
        for pkt in c.demux(streams):
            if pkt.stream.type == "audio":
                if pkt.size:
                    packets.append(bytes(pkt))
                    if pkt.pts is not None and pkt.duration:
                        a_end = max(a_end, float((pkt.pts + pkt.duration) * pkt.time_base))
                continue
            for f in pkt.decode():
                rotation = f.rotation or rotation
                times.append(float(f.pts * f.time_base))
                if keep_frames:
                    frames.append(f.to_ndarray(format="bgr24"))
        duration = c.duration / 1e6 if c.duration else None
        return VideoFacts(v.codec_context.width, v.codec_context.height, frames, times,
                          v.codec_context.name, v.codec_context.pix_fmt or "", int(rotation), duration,
                          a.codec_context.name if a is not None else None, packets, a_end or None)
    finally:
        c.close()
