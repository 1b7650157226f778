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
Every audio track is kept: its packets are copied unchanged when the
container can hold the codec, else re-encoded (AAC, or Opus for WebM).
Subtitle tracks are copied where the container takes their format, else
dropped with a warning naming them. Matroska and WebM cannot start before
time 0: an audio packet wholly before it (an AAC encoder's priming frame, which
MP4 hides with an edit list) is left out there, so nothing shifts by its 21 ms.
"""

from __future__ import annotations

import functools
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


# Subtitle formats each container takes.
_SUBTITLES = {"mp4": frozenset({"mov_text"}), "mov": frozenset({"mov_text"}),
              "matroska": frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "hdmv_pgs_subtitle", "dvd_subtitle"}),
              "webm": frozenset({"webvtt"})}


@functools.cache
def pick_h264_encoder(width: int = 1920, height: int = 1080) -> str:
    """'h264_nvenc' when this machine can open it (an NVENC-capable GPU and driver), else 'libx264'.

    Only opening an encoder proves it: FFmpeg builds list NVENC everywhere, and
    data-centre GPUs (H100, H200) have NVDEC but no NVENC.
    """
    try:
        cc = av.CodecContext.create("h264_nvenc", "w")
        cc.width, cc.height = width, height
        cc.pix_fmt = "yuv420p"
        cc.time_base = Fraction(1, 30)
        cc.open()
    except Exception as exc:  # UnknownCodecError, PermissionError, av.error.*: no usable NVENC
        log.debug("h264_nvenc unavailable: %s", exc)
        return "libx264"
    return "h264_nvenc"


def codec_name(stream: Any) -> str:
    """The codec's own name ('mp3'), not its decoder's ('mp3float')."""
    cc = stream.codec_context
    return getattr(cc.codec, "canonical_name", None) or cc.name


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
                 audio_in: Any = None, other_tracks: list[Any] | None = None, nvenc: bool = False) -> None:
        self.mode = mode
        self.width, self.height = width, height
        self.format = CONTAINERS[ext.lower()]
        self.codec, self.pix_fmt = pick_codec(ext, mode, width, height)
        if nvenc and self.codec == "libx264" and self.pix_fmt == "yuv420p":
            self.codec = pick_h264_encoder(width, height)  # the GPU's encoder where it opens
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
            self._setup_audio(audio_in, other_tracks)
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
                   color_trc=ctx.color_trc, audio_in=ctx.audio_in, other_tracks=ctx.options.get("tracks"),
                   nvenc=bool(ctx.options.get("nvenc")))

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
        elif self.codec == "h264_nvenc":
            cc.colorspace, cc.color_range = _SMPTE170M, _MPEG_RANGE
            cc.color_primaries, cc.color_trc = primaries, trc
            # constant quality like x264's CRF (cq 0 would mean "automatic"); p4 is NVENC's balanced preset
            opts = {"rc": "vbr", "cq": str(max(1, quality)), "b": "0", "preset": "p4"}
            if preset != "superfast":
                log.info("--preset %s is an x264 preset: NVENC encodes with its own p4", preset)
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

    def _setup_audio(self, audio_in: Any, others: list[Any] | None = None) -> None:
        """An output stream for each input audio track (copied or re-encoded) and each subtitle track
        the container takes; ``audio_in`` is the first audio track, ``others`` the rest and subtitles."""
        self._tracks: dict[int, tuple[Any, Any, bool]] = {}  # input index -> (input, output, re-encode)
        self._notes: list[str] = []
        for s in [x for x in [audio_in, *(others or [])] if x is not None]:
            name = codec_name(s)
            if s.type == "subtitle":
                if name in _SUBTITLES.get(self.format, frozenset()):
                    self._tracks[s.index] = (s, self._out.add_stream_from_template(s), False)
                    self._notes.append(f"copied {name} subtitles")
                else:
                    log.warning("dropping subtitle track #%d (%s): %s cannot hold it", s.index, name, self.format)
                    self._notes.append(f"dropped {name} subtitles")
                continue
            encoder = audio_plan(self.format, name)
            if encoder is None:
                self._tracks[s.index] = (s, self._out.add_stream_from_template(s), False)
                self._notes.append(f"copied {name}")
                log.debug("copying %s audio (track #%d)", name, s.index)
            else:
                rate = s.codec_context.sample_rate or 48000
                if encoder == "libopus":
                    rate = 48000
                layout = _encodable_layout(s.codec_context.layout)
                self._tracks[s.index] = (s, self._out.add_stream(encoder, rate=rate, layout=layout), True)
                self._notes.append(f"re-encoded {name} -> {encoder.replace('lib', '')}")
                log.info("re-encoding %s audio as %s: %s cannot hold it", name, encoder, self.format)
        self._a = next((o for i, o, _ in self._tracks.values() if i.type == "audio"), None)

    @property
    def audio_note(self) -> str:
        """What happened to the audio (and subtitles): 'copied aac', 're-encoded pcm_s16le -> aac', ..."""
        return ", ".join(self._notes)

    # -- writing ---------------------------------------------------------
    def _to_frame(self, pixels: np.ndarray) -> Any:
        VideoFrame = av.VideoFrame
        h, w = pixels.shape[:2]
        if self.pix_fmt == "yuv420p" and w % 2 == 0 and h % 2 == 0:  # cv2's I420 needs even sizes
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
        """An audio or subtitle packet of the input, in file order."""
        track = self._tracks.get(packet.stream.index)
        if track is None:
            return
        s_in, s_out, encode = track
        if encode:
            for f in packet.decode():
                for p in s_out.encode(f):
                    self._out.mux(p)
        else:
            if packet.dts is None:  # the muxer cannot place it
                return
            if (self.format in ("matroska", "webm") and packet.pts is not None and packet.duration
                    and packet.pts + packet.duration <= 0):
                return  # wholly before time 0 (priming): Matroska would shift everything by it
            packet.stream = s_out
            self._out.mux(packet)
        self.audio_packets += 1

    def close(self) -> None:
        """Flush the encoders and write the container's index."""
        try:
            for p in self._v.encode(None):
                self._out.mux(p)
            for s_in, s_out, encode in self._tracks.values():
                if encode:
                    for f in s_in.codec_context.decode(None):
                        for p in s_out.encode(f):
                            self._out.mux(p)
                    for p in s_out.encode(None):
                        self._out.mux(p)
        finally:
            self._out.close()

    def abort(self) -> None:
        try:
            self._out.close()
        except Exception as exc:  # the file is deleted next; nothing to save
            log.debug("closing an aborted output: %s", exc)


register_sink(tuple(CONTAINERS), SinkKind("video", VideoSink.open, "file", check_video_output))
