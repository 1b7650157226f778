"""Video file sink: PyAV encoding, timestamps kept, audio copied.

The codec follows the output extension and mode:

============  =======================================  =====================
extension     composite / green / mask                 alpha
============  =======================================  =====================
.mp4 .m4v     H.264 (libx264)                          refused (no alpha)
.mov          H.264                                    ProRes 4444 + alpha
.mkv          H.264                                    VP9 + alpha
.webm         VP9                                      VP9 + alpha
============  =======================================  =====================

H.264 is 4:2:0 for even sizes and 4:4:4 for odd ones (4:2:0 cannot hold an
odd width or height), so the output always has the input's exact size.
Colour goes out as BT.601 limited range and is tagged so; primaries and
transfer are the input's.

Each frame keeps the input's timestamp (variable frame rates survive).
Audio packets are copied unchanged when the container can hold the codec;
otherwise they are re-encoded (AAC, or Opus for WebM).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from ..errors import VbgError
from ..outputs import Output
from .base import SinkContext, SinkKind, register_sink, render

log = logging.getLogger(__name__)

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
VIDEO_OUT_EXTS = frozenset(CONTAINERS)

# Audio codecs each container holds well enough that players cope; None = whatever the muxer takes.
_COPYABLE: dict[str, frozenset[str] | None] = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}),
    "mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le",
                      "pcm_s24be", "pcm_f32le", "pcm_f32be"}),
    "matroska": None,
    "webm": frozenset({"opus", "vorbis"}),
}

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

_SMPTE170M = 6  # AVCOL_SPC_SMPTE170M: BT.601, what cv2's I420 conversion produces
_MPEG_RANGE = 1  # AVCOL_RANGE_MPEG: limited range


def check_video_output(path: Path, mode: str) -> None:
    """Refuse extension/mode pairs that cannot work, before any work is done."""
    ext = path.suffix.lower()
    if ext not in CONTAINERS:
        raise VbgError(f"unknown video output type {ext or '(none)'} in {path.name}",
                       "use .mp4, .mov, .mkv or .webm, or a folder for PNG frames")
    if mode == "alpha" and CONTAINERS[ext] == "mp4":
        raise VbgError(f"{ext} cannot hold transparency",
                       "use .webm (VP9) or .mov (ProRes 4444), or a folder for PNG frames")


def pick_codec(ext: str, mode: str, width: int, height: int) -> tuple[str, str]:
    """-> (encoder, pixel format) for an output extension and mode."""
    fmt = CONTAINERS[ext.lower()]
    if mode == "alpha":
        if fmt == "mov":
            return "prores_ks", "yuva444p10le"
        return "libvpx-vp9", "yuva420p"
    if fmt == "webm":
        return "libvpx-vp9", "yuv420p"
    return "libx264", "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"


def audio_plan(fmt: str, codec_name: str) -> str | None:
    """None to copy an audio codec into container ``fmt``, else the encoder to use."""
    ok = _COPYABLE.get(fmt)
    if ok is None or codec_name in ok:
        return None
    return "libopus" if fmt == "webm" else "aac"


_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _encodable_layout(layout: Any) -> str:
    """Encoders refuse layouts without a channel order ('2 channels', e.g. PCM in MKV)."""
    n = getattr(layout, "nb_channels", 0) or 2
    name = getattr(layout, "name", "") or ""
    if not name or name.endswith(("channels", "channel")):
        return _DEFAULT_LAYOUTS.get(n, "stereo")
    return name


class VideoSink:
    """Encode frames (and mux audio) into one video file.

    Not thread-safe: one thread calls ``write`` / ``write_audio`` / ``close``
    (``SinkThread`` in the batch converter).
    """

    watched = True

    def __init__(self, path: Path, *, ext: str, mode: str, width: int, height: int,
                 rate: Fraction | None, time_base: Fraction, quality: int = 20,
                 preset: str = "superfast", threads: int = 0,
                 sample_aspect_ratio: Fraction | None = None,
                 color_primaries: int = 2, color_trc: int = 2,
                 audio_in: Any = None) -> None:
        self.mode = mode
        self.width, self.height = width, height
        self.format = CONTAINERS[ext.lower()]
        self.codec, self.pix_fmt = pick_codec(ext, mode, width, height)
        self.frames = 0
        self.audio_packets = 0
        # MP4 and MOV with the index at the front: players start before the file is fully downloaded
        opts = {"movflags": "+faststart"} if self.format in ("mp4", "mov") else {}
        try:
            self._out = av.open(str(path), "w", format=self.format, options=opts)
        except (OSError, av.FFmpegError) as exc:
            raise VbgError(f"cannot create {path}: {exc}", "check the output folder") from None
        try:
            self._setup_video(rate, time_base, quality, preset, threads, sample_aspect_ratio,
                              color_primaries, color_trc)
            self._setup_audio(audio_in)
        except BaseException:
            self._out.close()
            raise

    @classmethod
    def open(cls, path: Path, ctx: SinkContext) -> VideoSink:
        """The registry's entry: ``path`` is where to write (a temporary name), its suffix the container."""
        ext = ctx.options.get("ext", path.suffix)
        return cls(path, ext=ext, mode=ctx.mode, width=ctx.width, height=ctx.height, rate=ctx.rate,
                   time_base=ctx.time_base, quality=ctx.quality, preset=ctx.preset,
                   threads=int(ctx.options.get("threads", 0)),
                   sample_aspect_ratio=ctx.sample_aspect_ratio, color_primaries=ctx.color_primaries,
                   color_trc=ctx.color_trc, audio_in=ctx.audio_in)

    def _setup_video(self, rate: Fraction | None, time_base: Fraction, quality: int, preset: str,
                     threads: int, sar: Fraction | None, primaries: int, trc: int) -> None:
        s = self._out.add_stream(self.codec, rate=rate or Fraction(30))
        s.width, s.height, s.pix_fmt = self.width, self.height, self.pix_fmt
        cc = s.codec_context
        s.time_base = time_base
        cc.time_base = time_base
        if sar:
            cc.sample_aspect_ratio = sar
        if self.codec == "libx264":
            cc.colorspace, cc.color_range = _SMPTE170M, _MPEG_RANGE
            cc.color_primaries, cc.color_trc = primaries, trc
            opts = {"crf": str(quality), "preset": preset}
            if threads:
                opts["threads"] = str(threads)
        elif self.codec == "libvpx-vp9":
            cc.colorspace, cc.color_range = _SMPTE170M, _MPEG_RANGE
            cc.bit_rate = 0  # constant quality
            # x264's CRF scale (0-51) onto VP9's (0-63); realtime deadline: VP9's "good" is ~10x slower
            opts = {"crf": str(min(63, round(quality * 63 / 51) + 8)), "b": "0", "deadline": "realtime",
                    "cpu-used": "8", "row-mt": "1", "lag-in-frames": "0"}
            if self.pix_fmt == "yuva420p":
                opts["auto-alt-ref"] = "0"  # alt-ref frames do not support alpha
            if threads:
                opts["threads"] = str(threads)
        else:  # prores_ks
            opts = {"profile": "4444", "vendor": "apl0"}
        s.options = opts
        self._v = s

    def _setup_audio(self, audio_in: Any) -> None:
        self._a = None
        self._a_in = audio_in
        self._a_encode = False
        if audio_in is None:
            return
        name = audio_in.codec_context.name
        encoder = audio_plan(self.format, name)
        if encoder is None:
            self._a = self._out.add_stream_from_template(audio_in)
            log.debug("copying %s audio", name)
        else:
            rate = audio_in.codec_context.sample_rate or 48000
            if encoder == "libopus":
                rate = 48000
            layout = _encodable_layout(audio_in.codec_context.layout)
            self._a = self._out.add_stream(encoder, rate=rate, layout=layout)
            self._a_encode = True
            log.info("re-encoding %s audio as %s: %s cannot hold it", name, encoder, self.format)

    @property
    def audio_note(self) -> str:
        """What happened to the audio: 'copied aac', 're-encoded pcm_s16le -> aac', or ''."""
        if self._a is None:
            return ""
        name = self._a_in.codec_context.name
        return f"re-encoded {name} -> {self._a.codec_context.name}" if self._a_encode else f"copied {name}"

    # -- writing ---------------------------------------------------------
    def _to_frame(self, pixels: np.ndarray) -> Any:
        VideoFrame = av.VideoFrame
        h, w = pixels.shape[:2]
        if self.pix_fmt == "yuv420p":
            if pixels.ndim == 2:  # mask: grey luma, neutral chroma
                i420 = np.empty((h * 3 // 2, w), np.uint8)
                i420[:h] = cv2.convertScaleAbs(pixels, alpha=219 / 255, beta=16)  # limited range
                i420[h:] = 128
            else:
                i420 = cv2.cvtColor(pixels, cv2.COLOR_BGR2YUV_I420)  # ~3x faster than swscale
            return VideoFrame.from_ndarray(i420, format="yuv420p")
        if pixels.ndim == 2:
            src = VideoFrame.from_ndarray(pixels, format="gray")
        elif pixels.shape[2] == 4:
            src = VideoFrame.from_ndarray(pixels, format="bgra")
        else:
            src = VideoFrame.from_ndarray(pixels, format="bgr24")
        return src.reformat(format=self.pix_fmt, dst_colorspace="smpte170m", dst_color_range="MPEG")

    def write(self, out: Output, pts: int | None = None) -> None:
        self.write_pixels(render(out, self.mode), self.frames if pts is None else pts)

    def write_pixels(self, pixels: np.ndarray, pts: int) -> None:
        if pixels.shape[0] != self.height or pixels.shape[1] != self.width:
            raise ValueError(f"frame {pixels.shape[1]}x{pixels.shape[0]} != stream {self.width}x{self.height}")
        frame = self._to_frame(pixels)
        frame.pts = pts
        frame.time_base = self._v.codec_context.time_base
        for p in self._v.encode(frame):
            self._out.mux(p)
        self.frames += 1

    def write_audio(self, packet: Any) -> None:
        if self._a is None:
            return
        if self._a_encode:
            for f in packet.decode():
                for p in self._a.encode(f):
                    self._out.mux(p)
        else:
            if packet.dts is None:  # the muxer cannot place it
                return
            packet.stream = self._a
            self._out.mux(packet)
        self.audio_packets += 1

    def close(self) -> None:
        """Flush the encoders and write the container's index."""
        try:
            for p in self._v.encode(None):
                self._out.mux(p)
            if self._a is not None and self._a_encode:
                for f in self._a_in.codec_context.decode(None):
                    for p in self._a.encode(f):
                        self._out.mux(p)
                for p in self._a.encode(None):
                    self._out.mux(p)
        finally:
            self._out.close()

    def abort(self) -> None:
        try:
            self._out.close()
        except Exception as exc:  # the file is deleted next; nothing to save
            log.debug("closing an aborted output: %s", exc)


register_sink(tuple(CONTAINERS), SinkKind("video", VideoSink.open, "file", check_video_output))
