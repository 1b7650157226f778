"""``vbg --input IN --bg BG``: convert a video, an image or a folder of images.

Videos flow through four threads joined by bounded queues, so decoding,
inference and encoding overlap and memory stays flat however long the
video is::

    decode thread --(8 frames)--> segment thread: the model, batches of 4 --(1 batch)-->
        main: smooth, matte, composite --(8 outputs)--> encode thread

Outputs are written under a temporary name and renamed when complete
(``vbg.atomic``); inputs are never overwritten.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import re
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from tqdm import tqdm

from ..assets import bundled_samples
from ..backends import create_backend
from ..backends.base import Backend
from ..config import FLAGS, add_setting_arguments, settings_from_args
from ..errors import VbgError
from ..io.ahead import Ahead
from ..io.atomic import FileSet, atomic_folder, atomic_output, check_name, check_target, same_file
from ..io.decode import DecodedFrame, VideoDecoder
from ..io.files import IMAGE_EXTS, check_file, is_image, is_video, read_image
from ..models import resolve_model
from ..pipeline import FramePipeline, check_size, make_pipeline
from ..settings import Settings, settings_or_default
from ..sinks import AudioSink, Sink, SinkContext, SinkKind, SinkThread, render, sink_kind
from ..sinks.images import check_image_output, is_frame_pattern, sequence_pattern, sequence_regex, write_image
from ..sinks.video import X264_PRESETS, check_video_output
from ..stages.backgrounds import Background, open_background
from .cli import say

log = logging.getLogger(__name__)

GREEN = "color:#00b140"  # chroma-key green
DEFAULT_PRESET = "superfast"
DEFAULT_BATCH = 4
STAGE_ORDER = ("decode", "segment", "smooth", "matte", "composite", "encode")

ProgressFn = Callable[[int], None]


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", metavar="IN",
                        help="video, image, or folder of videos and images")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="output file, or a folder to write into (a name without an extension is a "
                             "folder); frames/%%06d.png for a PNG sequence. Default, beside the input: IN.vbg.mp4 "
                             "for a video (.webm with --bg none or --output-mode alpha, IN.mask.mp4 for masks), "
                             "IN.vbg.jpg/.png for an image, IN.vbg/ for a folder (IN.masks/ for masks; a folder written into "
                             "itself gets x.vbg.jpg beside each x.jpg); "
                             "for --input sample, sample.vbg.mp4 in the current folder")
    add_setting_arguments(parser, "convert")
    e = parser.add_argument_group("encoding")
    e.add_argument("--batch", metavar="N", help=f"frames per model call, 1..64 ({DEFAULT_BATCH})")
    e.add_argument("--preset", metavar="NAME",
                   help=f"x264 speed preset, ultrafast..veryslow ({DEFAULT_PRESET}: "
                        "fastest that keeps files reasonable on 2 cores)")
    e.add_argument("--no-audio", action="store_true", help="drop the audio track")
    parser.add_argument("-y", "--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--strict", action="store_true",
                        help="a damaged or cut-short input is an error (default: a warning, and what can be read)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    parser.epilog = ((parser.epilog or "") + "\n\nNotes: odd frame sizes are kept exactly (H.264 "
                     "4:4:4 then); rotated phone videos are turned upright; audio is copied as is "
                     "when the container allows, else AAC (Opus for .webm).")


def _number(args: argparse.Namespace, name: str, kind: type) -> Any:
    raw = getattr(args, name, None)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        flag = "--" + name.replace("_", "-")
        raise VbgError(f"{flag} expects {'a whole number' if kind is int else 'a number'}, got {raw!r}",
                       f"e.g. {flag} {'20' if kind is int else '0.5'}") from None


def effective_settings(settings: Settings) -> Settings:
    """Tie the background to the output mode: alpha = no background, green = chroma green."""
    mode = settings.output_mode
    if mode == "composite" and settings.background.kind == "none":
        return settings.replace(output_mode="alpha")
    if mode == "alpha" and settings.background.kind != "none":
        return settings.replace(bg="none")
    if mode == "green":
        return settings.replace(bg=GREEN)
    return settings


# --------------------------------------------------------------------------- stats
def _n(n: int, noun: str) -> str:
    """``"1 video"``, ``"3 videos"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _was(n: int) -> str:
    """The verb for a count of ``n`` things."""
    return "was" if n == 1 else "were"


@dataclass
class ConvertStats:
    """What a conversion did, for the summary line and the benchmarks."""

    frames: int
    seconds: float
    output: Path
    stages: dict[str, float] = field(default_factory=dict)  # median ms per frame and stage
    audio: str = ""  # "copied aac", "re-encoded pcm_s16le -> aac", ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return f"vbg: {_n(self.frames, 'frame')} in {self.seconds:.1f} s ({self.fps:.1f} fps) -> {self.output}"


class _Timings:
    """Per-stage milliseconds of the newest frames (bounded: memory stays flat)."""

    def __init__(self, keep: int = 4096) -> None:
        self.ms: dict[str, deque[float]] = {}
        self.keep = keep

    def add(self, stage: str, ms: float) -> None:
        self.ms.setdefault(stage, deque(maxlen=self.keep)).append(ms)

    def medians(self) -> dict[str, float]:
        order = {s: i for i, s in enumerate(STAGE_ORDER)}
        return {k: statistics.median(v) for k, v in sorted(self.ms.items(), key=lambda kv: order.get(kv[0], 99))
                if v}


# --------------------------------------------------------------------------- engine
def open_backend(settings: Settings) -> Backend:
    with settings.blame("model"):
        spec = resolve_model(settings.model)
    return create_backend(spec, settings.backend)  # which one, and why, is logged there


@contextlib.contextmanager
def _owned(backend: Backend | None, settings: Settings) -> Iterator[Backend]:
    """``backend``, or one opened from ``settings`` and closed at the end."""
    if backend is not None:
        yield backend
        return
    own = open_backend(settings)
    try:
        yield own
    finally:
        own.close()


@contextlib.contextmanager
def _safe_target(kind: SinkKind, dst: Path, overwrite: bool) -> Iterator[Path]:
    """Where the sink writes: a temporary name (moved into place when complete) for files and
    folders (see ``atomic_output``, ``atomic_folder``), ``dst`` itself for streams."""
    if kind.output == "file":
        with atomic_output(dst, overwrite=overwrite) as tmp:
            yield tmp
    elif kind.output == "folder":
        folder, pattern = sequence_pattern(dst)
        frames = sequence_regex(pattern)
        if not overwrite and folder.is_dir() and any(frames.fullmatch(n) for n in os.listdir(folder)):
            raise VbgError(f"{folder} already holds frames named like {pattern % 1}",
                           "use -y to replace them, or choose another --output")
        with atomic_folder(folder, overwrite=overwrite, owns=lambda n: frames.fullmatch(n) is not None) as tmp:
            yield tmp / pattern
    else:
        yield dst


def convert_video(src: Path, dst: Path, settings: Settings, *, backend: Backend | None = None,
                  background: Background | None = None, overwrite: bool = False, preset: str = DEFAULT_PRESET,
                  batch: int = DEFAULT_BATCH, audio: bool = True, on_progress: ProgressFn | None = None,
                  on_start: Callable[[Any], None] | None = None, queue_size: int = 8,
                  sink_options: dict[str, Any] | None = None, strict: bool = False,
                  inputs: Sequence[Path] = ()) -> ConvertStats:
    """Convert one video file to ``dst``: any registered sink (a video file; a PNG-sequence folder or pattern).

    ``backend``: an open inference backend (made from ``settings`` when
    None, and closed again); ``background``: ``settings.bg`` already open.
    ``on_start(info)`` gets the ``VideoInfo`` once the input is open;
    ``on_progress(n)`` is called after each batch of ``n`` frames.
    ``sink_options``: extra options for the sink (e.g. ``{"threads": 2}``: x264's thread count).
    Fewer frames than the container lists (a damaged or truncated input) is a
    warning, or with ``strict`` a ``VbgError`` (and no output). ``inputs``: other files the run reads
    (background, model, config), never written over.
    """
    settings = effective_settings(settings)
    src, dst = Path(src), Path(dst)
    mode = settings.output_mode
    if dst.is_dir() or not dst.suffix:
        dst = dst / "%06d.png"  # a folder: a PNG sequence in it
    kind = sink_kind(dst)
    if kind is None:
        check_video_output(dst, mode)  # names the types vbg writes
        raise VbgError(f"no output writes {dst.name}", "use .mp4, .mov, .mkv or .webm, or a folder for PNG frames")
    if same_file(src, dst) or (kind.output == "folder" and same_file(src, sequence_pattern(dst)[0])):
        raise VbgError(f"output {dst} is the input file", "choose another --output; inputs are never overwritten")
    refuse_inputs(dst, kind.output, inputs)
    if kind.check is not None:
        kind.check(dst, mode)
    if kind.output == "file":
        check_target(dst, overwrite=overwrite)
    timings = _Timings()
    t_start = time.perf_counter()
    with _owned(backend, settings) as be, \
            VideoDecoder(src, queue_size=queue_size, audio=audio and kind.output == "file",
                         subtitles=kind.output == "file", nvdec=be.device == "cuda") as dec:
        info = dec.info
        check_size(info.width, info.height, f"input {src.name}")
        if on_start is not None:
            on_start(info)
        pipeline = make_pipeline(settings, be, composite=mode != "mask", background=background,
                                 fps=float(info.rate) if info.rate else 30.0)
        try:
            with _safe_target(kind, dst, overwrite) as target:
                ctx = SinkContext(mode=mode, width=info.width, height=info.height, rate=info.rate,
                                  time_base=info.time_base, quality=settings.quality, preset=preset,
                                  sample_aspect_ratio=_rotated_sar(info), color_primaries=info.color_primaries,
                                  color_trc=info.color_trc, audio_in=dec.audio_stream,
                                  options={"ext": dst.suffix, "tracks": dec.audio_streams[1:] + dec.subtitle_streams,
                                           "nvenc": be.device == "cuda", **(sink_options or {})})
                sink = kind.open(target, ctx)
                frames = _run_video(dec, pipeline, sink, batch, timings, on_progress, queue_size,
                                    check=lambda n: _check_complete(src, dec, n, strict))
        finally:
            pipeline.close()
        if kind.output == "folder" and audio and _has_audio(src):
            log.warning("%s: a PNG sequence has no sound: the audio is not kept (write a video file to keep it)",
                        src.name)
        for what in dec.dropped_streams:
            log.warning("%s: %s is not carried over (vbg writes video, audio and subtitles)", src.name, what)
    out_path = Path(*sequence_pattern(dst)) if kind.output == "folder" else dst  # frames/%06d.png: where they went
    return ConvertStats(frames, time.perf_counter() - t_start, out_path, timings.medians(),
                        getattr(sink, "audio_note", ""))


def run_inputs(settings: Settings, backend: Backend | None = None) -> tuple[Path, ...]:
    """The files a run reads besides its input: the background, the model (spec and ONNX) and the
    config files its settings came from. Outputs never replace them, even with -y."""
    out: list[Path] = []
    bg = settings.background.path
    if bg is not None:
        out.append(Path(bg))
    spec = getattr(backend, "spec", None)
    for p in (getattr(spec, "path", None), getattr(spec, "onnx", None)):
        if p is not None:
            out.append(Path(p))
    out += [Path(src) for src in set(getattr(settings, "_origins", {}).values())]
    return tuple(out)


def refuse_inputs(dst: Path, output: str, inputs: Sequence[Path]) -> None:
    """A one-line error when ``dst`` (a file, or for ``output == "folder"`` a PNG-sequence pattern)
    would write over one of ``inputs``."""
    if output == "folder":
        folder, pattern = sequence_pattern(dst)
        names = sequence_regex(pattern)
        hits = [p for p in inputs if names.fullmatch(p.name) and same_file(p.parent, folder)]
    else:
        hits = [p for p in inputs if same_file(dst, p)]
    if hits:
        raise VbgError(f"output {dst} would write over {hits[0]}, which this run reads",
                       "choose another --output; inputs are never overwritten")


def _has_audio(src: Path) -> bool:
    try:
        with av.open(str(src)) as c:
            return bool(c.streams.audio)
    except (av.FFmpegError, OSError):
        return False


def _rotated_sar(info: Any) -> Any:
    sar = info.sample_aspect_ratio
    if sar and info.rotation in (90, 270):
        return 1 / sar
    return sar


def _check_complete(src: Path, dec: VideoDecoder, frames: int, strict: bool) -> None:
    """Compare the frames decoded with what the container lists: damage that frame-threaded decoding
    swallows silently shows up here."""
    info = dec.info
    expected = info.frames
    if info.frames_listed:
        missing = expected - frames if expected else 0
        short = missing > max(2, expected // 50)  # an edit list may hide a frame or two that the header counts
    else:
        # no count in the file, only duration x average rate, which a variable frame rate makes a guess:
        # compare how far the frames reach in time with the duration instead
        span = (dec.last_pts or 0) - (dec.first_pts or 0)
        reach = span * float(info.time_base) + (1 / float(info.rate) if info.rate else 0)
        # (generous: the last frame of a variable-rate recording may stay on screen for a while)
        short = bool(info.duration) and info.duration - reach > max(2.0, 0.1 * info.duration)
    if not short and not dec.bad_packets:
        return
    what = (f"{src.name}: decoded {frames} of the {expected} frames the file lists" if short and info.frames_listed
            else f"{src.name}: the frames end at {reach:.1f} s of the file's {info.duration:.1f} s" if short
            else f"{src.name}: {dec.bad_packets} damaged packets were skipped")
    if strict:
        raise VbgError(f"{what}: the input is damaged or cut short; no output was written",
                       "repair the input, or drop --strict to convert what can be read")
    log.warning("%s: the input is damaged or cut short (--strict makes this an error)", what)


def _segmented(dec: VideoDecoder, pipeline: FramePipeline, batch: int,
               audio: bool) -> Iterator[tuple[list[Any], list[DecodedFrame], Any]]:
    """The model's half of the pipeline: ``(audio packets, frames, pipeline.segment(frames))`` per
    batch, in file order (the audio read since the batch before, then the batch; the last item may
    hold audio only). ``_run_video`` runs it in a thread one batch ahead of ``pipeline.finish``, so on
    two cores the model overlaps the per-frame stages instead of taking turns with them
    (``benchmarks/bench_convert.py``)."""
    sound: list[Any] = []
    pending: list[DecodedFrame] = []
    for item in dec:
        if isinstance(item, DecodedFrame):
            pending.append(item)
            if len(pending) >= max(1, batch):
                yield sound, pending, pipeline.segment([f.image for f in pending])
                sound, pending = [], []
        elif audio:
            sound.append(item)
    if pending or sound:
        yield sound, pending, pipeline.segment([f.image for f in pending]) if pending else None


def _run_video(dec: VideoDecoder, pipeline: FramePipeline, sink: Sink, batch: int, timings: _Timings,
               on_progress: ProgressFn | None, queue_size: int, check: Callable[[int], None] | None = None) -> int:
    """The main loop: batches segmented one ahead in a thread, finished here, outputs to the writer
    thread. ``check(frames)`` runs once the input is read, before the output is finished (it may refuse it)."""
    writer = SinkThread(sink.close, sink.abort, maxsize=queue_size)
    frames = 0
    ahead: Ahead[tuple[list[Any], list[DecodedFrame], Any]] | None = None
    try:
        pipeline.reset()
        ahead = Ahead(_segmented(dec, pipeline, batch, isinstance(sink, AudioSink)), size=1, name="vbg-segment")
        for audio, pending, seg in ahead:
            for packet in audio:  # to the muxer, in file order
                writer.submit(sink.write_audio, packet, timed=False)  # type: ignore[attr-defined]
            if not pending:
                continue
            outs = pipeline.finish(seg)
            for f, out in zip(pending, outs):
                timings.add("decode", f.decode_ms)
                for stage, ms in out.timings.items():
                    timings.add(stage, ms)
                writer.submit(sink.write, out, f.pts)
            frames += len(pending)
            if on_progress is not None:
                on_progress(len(pending))
        if check is not None:
            check(frames)
        writer.finish()
    except BaseException:
        try:
            if ahead is not None:
                ahead.close()  # waits for at most one model call; a second Ctrl-C here still aborts the sink
        finally:
            writer.abort()
        raise
    ahead.close()  # the thread has ended: the end of the input went through its queue
    for ms in writer.frame_ms:
        timings.add("encode", ms)
    return frames


def convert_images(pairs: Sequence[tuple[Path, Path]], settings: Settings, *, backend: Backend | None = None,
                   background: Background | None = None, overwrite: bool = False,
                   on_progress: ProgressFn | None = None) -> ConvertStats:
    """Convert images independently (temporal state is reset between them).

    ``pairs``: (input, output) paths. An unreadable image is skipped with a
    warning; if any were, a ``VbgError`` naming the first is raised at the
    end, after the others are written.
    """
    settings = effective_settings(settings)
    mode = settings.output_mode
    timings = _Timings()
    t_start = time.perf_counter()
    failed: list[tuple[Path, VbgError]] = []
    done = 0
    with _owned(backend, settings) as be:
        pipeline = make_pipeline(settings, be, background=background)
        try:
            for src, dst in pairs:
                try:
                    t0 = time.perf_counter()
                    img = read_image(src)
                    check_size(img.shape[1], img.shape[0], f"input {src.name}")
                    timings.add("decode", (time.perf_counter() - t0) * 1e3)
                except VbgError as exc:
                    if len(pairs) == 1:
                        raise
                    log.info("skipping %s: %s", src, exc.what)  # the error at the end names it
                    failed.append((src, exc))
                    continue
                pipeline.reset()
                out = pipeline.process(img)
                for stage, ms in out.timings.items():
                    timings.add(stage, ms)
                t0 = time.perf_counter()
                write_image(dst, render(out, mode), overwrite=overwrite)
                timings.add("encode", (time.perf_counter() - t0) * 1e3)
                done += 1
                if on_progress is not None:
                    on_progress(1)
        finally:
            pipeline.close()
    if failed:
        src, exc = failed[0]
        more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
        wrote = f"{_n(done, 'other image')} {_was(done)} written" if done else "no image was written"
        raise VbgError(f"could not read {src}{more}; {wrote}",
                       "check or remove the unreadable files")
    out_path = pairs[0][1] if len(pairs) == 1 else pairs[0][1].parent
    return ConvertStats(done, time.perf_counter() - t_start, out_path, timings.medians())


# --------------------------------------------------------------------------- planning
def _tag(mode: str) -> str:
    return "mask" if mode == "mask" else "vbg"


def _image_ext(src: Path, mode: str) -> str:
    if mode in ("mask", "alpha"):
        return ".png"
    ext = src.suffix.lower()
    return ext if ext in IMAGE_EXTS else ".png"


def _video_ext(mode: str) -> str:
    return ".webm" if mode == "alpha" else ".mp4"


def _dir_like(text: str, p: Path) -> bool:
    return text.endswith(("/", "\\")) or p.is_dir() or not p.suffix


def plan_video_output(src: Path, output: str | None, mode: str) -> Path:
    if output is None:
        dst = src.with_name(f"{src.stem}.{_tag(mode)}{_video_ext(mode)}")
        check_name(dst)  # the input's name fits, NAME.vbg.mp4 may not
        return dst
    p = Path(output).expanduser()
    check_name(p)  # before any file-system query: a name too long fails those with a traceback
    if p.suffix.lower() == ".png":  # frames/%06d.png or frames.png: a PNG sequence
        return p
    if _dir_like(output, p):  # a folder: the video goes in it, as an image or a folder input's would
        p = p / f"{src.stem}.{_tag(mode)}{_video_ext(mode)}"
    if sink_kind(p) is None:
        check_video_output(p, mode)  # names the types vbg writes
    return p


def plan_image_output(src: Path, output: str | None, mode: str) -> Path:
    ext = _image_ext(src, mode)
    if output is None:
        return src.with_name(f"{src.stem}.{_tag(mode)}{ext}")
    p = Path(output).expanduser()
    check_name(p)
    if is_frame_pattern(p.name):
        raise VbgError(f"{p.name} is a frame-number pattern, and {src.name} is one image",
                       "give the image's output a plain name, e.g. out.png")
    if _dir_like(output, p):  # tagged as a video's is: -o . beside the input must not name the input
        p = p / f"{src.stem}.{_tag(mode)}{ext}"
    check_image_output(p, mode, mode == "alpha")
    return p


@dataclass
class FolderPlan:
    """A folder's work: its images (converted one by one) and its videos (each to a video)."""

    out_dir: Path
    images: list[tuple[Path, Path]]
    videos: list[tuple[Path, Path]]
    earlier: int = 0  # files named *.vbg.* / *.mask.* left out: an earlier run's outputs into this folder


def plan_folder(src: Path, output: str | None, mode: str, overwrite: bool) -> FolderPlan:
    try:
        files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
    except PermissionError:
        raise VbgError(f"cannot read folder {src}: permission denied", "check its permissions") from None
    images = [p for p in files if is_image(p)]
    videos = [p for p in files if is_video(p)]
    subfolders = [p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")]
    others = len(files) - len(images) - len(videos)
    if subfolders or others:
        parts = [_n(n, w) for n, w in ((len(subfolders), "subfolder"), (others, "other file")) if n]
        log.warning("%s: skipped %s (vbg converts the videos and images in the folder itself, not below it)",
                    src.name, " and ".join(parts))
    if not images and not videos:
        raise VbgError(f"no images or videos in {src}",
                       f"put {', '.join(sorted(IMAGE_EXTS))} or video files there, or give a file")
    if output is None:
        out_dir = src.parent / f"{src.name}.{'masks' if mode == 'mask' else 'vbg'}"
        check_name(out_dir)
    else:
        out_dir = Path(output).expanduser()
        if out_dir.exists() and not out_dir.is_dir():
            raise VbgError(f"output {out_dir} is a file", "give a folder as --output for a folder")
        if out_dir.suffix.lower() in IMAGE_EXTS or sink_kind(out_dir) is not None:
            raise VbgError(f"output {out_dir} looks like a file", "give a folder as --output for a folder")
    # into the folder itself: tagged names (x.vbg.jpg) beside the inputs, and a re-run (in either mode)
    # leaves the earlier runs' tagged outputs alone instead of converting them again
    into_itself = same_file(out_dir, src)
    tag = f".{_tag(mode)}" if into_itself else ""
    earlier = [p for p in images + videos if p.stem.lower().endswith((".vbg", ".mask"))] if into_itself else []
    if earlier:
        left_out = set(earlier)
        images = [p for p in images if p not in left_out]
        videos = [p for p in videos if p not in left_out]
        if not images and not videos:
            raise VbgError(f"{src} holds only the output of an earlier run",
                           "give the folder of the originals")
    plan = FolderPlan(out_dir, [], [], len(earlier))
    seen: dict[Path, Path] = {}
    inputs = images + videos
    guard = FileSet(inputs)
    for item in inputs:
        dst = out_dir / f"{item.stem}{tag}{_image_ext(item, mode) if is_image(item) else _video_ext(mode)}"
        if dst in seen:
            raise VbgError(f"{seen[dst].name} and {item.name} would both be written to {dst.name}",
                           "rename one of them")
        seen[dst] = item
        other = guard.get(dst)
        if other is not None:
            raise VbgError(f"output {dst} would overwrite the input {other.name}",
                           "choose another --output folder; inputs are never overwritten")
        check_target(dst, overwrite=overwrite)
        (plan.images if is_image(item) else plan.videos).append((item, dst))
    return plan


# --------------------------------------------------------------------------- progress
class Progress:
    """A tqdm bar on a terminal; a plain line every ``LINE_EVERY`` seconds when stderr is not one
    (a script or CI sees progress too); nothing with ``--no-progress``."""

    LINE_EVERY = 5.0

    def __init__(self, total: int | None, desc: str, enabled: bool, *, every: float | None = None,
                 stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.total, self.desc = total or None, desc
        self.every = self.LINE_EVERY if every is None else every
        self.n = 0
        self.t0 = self.last = time.monotonic()
        tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = tqdm(total=self.total, desc=desc, unit="frame", file=self.stream, dynamic_ncols=True,
                        leave=False, smoothing=0.1) if tty else None
        self.lines = enabled and not tty

    def update(self, n: int) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.lines and time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        el = max(1e-9, time.monotonic() - self.t0)
        fps = self.n / el
        if self.total:
            eta = (self.total - self.n) / fps if fps > 0 else 0.0
            return (f"vbg: {self.desc}: {self.n}/{self.total} frames ({100 * self.n / self.total:.0f} %), "
                    f"{fps:.1f} fps, ETA {eta:.0f} s")
        return f"vbg: {self.desc}: {self.n} frames, {fps:.1f} fps"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- run
@dataclass(frozen=True)
class Job:
    """How a conversion runs beyond its settings (the encoding flags)."""

    preset: str = DEFAULT_PRESET
    batch: int = DEFAULT_BATCH
    audio: bool = True
    overwrite: bool = False
    progress: bool = True
    strict: bool = False  # a damaged or truncated input is an error, not a warning
    inputs: tuple[Path, ...] = ()  # files the run reads (background, model, config): never written over


def convert(input: str | Path, output: str | Path | None = None, settings: Settings | None = None, *,
            overwrite: bool = False, progress: bool = False, preset: str = DEFAULT_PRESET,
            batch: int = DEFAULT_BATCH, audio: bool = True, strict: bool = False, **changes: Any) -> ConvertStats:
    """Convert a video, an image or a folder, as ``vbg --input`` does: the Python API.

    ``vbg.convert("talk.mp4", "out.mp4", bg="beach", threshold=0.6)``:
    ``changes`` are ``Settings`` fields on top of ``settings`` (default:
    the defaults, not the user's config file). Returns what was done;
    raises ``VbgError`` for bad input.
    """
    settings = settings_or_default(settings, "pass vbg.Settings(...), or the settings as keywords")
    fields = {f.name for f in dataclasses.fields(Settings)}
    # what no convert flag sets (the camera's and the virtual camera's) means nothing to a conversion
    live = fields - {f.setting for f in FLAGS if "convert" in f.commands}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise VbgError(f"vbg.convert has no setting {unknown[0]!r}",
                       f"use some of: {', '.join(sorted(fields - live))}, or the keywords "
                       "overwrite, progress, preset, batch, audio, strict")
    unused = sorted(set(changes) & live)
    if unused:
        raise VbgError(f"{unused[0]!r} is a live camera setting, which vbg.convert does not use", "leave it out")
    for name, value, kind in (("batch", batch, int), ("preset", preset, str)):
        if not isinstance(value, kind) or isinstance(value, bool):
            raise VbgError(f"{name} must be {'a whole number' if kind is int else 'a string'}, got {value!r}",
                           f"e.g. {name}={DEFAULT_BATCH if kind is int else repr(DEFAULT_PRESET)}")
    if input is None:
        raise VbgError("no input given", "pass a video, image or folder path as the first argument")
    for name, value in (("input", input), ("output", output)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise VbgError(f"{name} must be a path, got {type(value).__name__}", "pass a str or pathlib.Path")
    try:
        return _convert(input, output, settings,
                        Job(preset=preset, batch=batch, audio=audio, overwrite=overwrite, progress=progress,
                            strict=strict), **changes)
    except VbgError as exc:  # in Python's words, not the command line's
        what, fix = _in_python(exc.what), _in_python(exc.fix)
        if (what, fix) == (exc.what, exc.fix):
            raise
        raise VbgError(what, fix) from None


def _in_python(text: str) -> str:
    """A message's command-line words as ``vbg.convert``'s keywords (whole words only: a path may hold "--")."""
    text = re.sub(r"(?<![^\s(])use -y\b", "pass overwrite=True", text)
    return re.sub(r"(?<![^\s(])--(output|batch|preset)\b", r"\1", text)


def _convert(input: str | Path, output: str | Path | None, settings: Settings, job: Job,
             **changes: Any) -> ConvertStats:
    settings = effective_settings(settings.replace(**changes) if changes else settings)
    if not 1 <= job.batch <= 64:
        raise VbgError(f"--batch {job.batch} out of range", "use a value from 1 to 64")
    if job.preset not in X264_PRESETS:
        raise VbgError(f"unknown --preset {job.preset!r}", f"use one of {', '.join(X264_PRESETS)}")
    src = Path(input).expanduser()
    check_name(src)
    out_text = None if output is None else str(output)
    mode = settings.output_mode
    if not src.exists() and str(input).lower() in bundled_samples():
        src = bundled_samples()[str(input).lower()]  # a bundled sample: the output goes here, not beside it
        if out_text is None:
            out_text = f"{src.stem}.{_tag(mode)}{_video_ext(mode)}"
    if not src.exists():
        hint = ", or 'sample' for the bundled clip" if bundled_samples() else ""
        raise VbgError(f"input {src} not found", f"check the path{hint}")
    if not src.is_dir():
        check_file(src, "input")  # a pipe or a device would block forever
    # Opened before any work, and once for the whole run: a bad background fails at once.
    with settings.blame("bg"):
        background = open_background(settings.background)
    try:
        with _owned(None, settings) as backend:
            job = dataclasses.replace(job, inputs=run_inputs(settings, backend))
            if src.is_dir():
                return _convert_folder(src, out_text, settings, backend, background, job)
            if is_image(src):
                dst = plan_image_output(src, out_text, mode)
                check_target(dst, overwrite=job.overwrite, inputs=(src,))
                refuse_inputs(dst, "file", job.inputs)
                return convert_images([(src, dst)], settings, backend=backend, background=background,
                                      overwrite=job.overwrite)
            dst = plan_video_output(src, out_text, mode)
            return _convert_one_video(src, dst, settings, backend, background, job, src.name)
    finally:
        background.close()


def _convert_one_video(src: Path, dst: Path, settings: Settings, backend: Backend, background: Background,
                       job: Job, desc: str) -> ConvertStats:
    holder: dict[str, Progress] = {}

    def start(info: Any) -> None:
        holder["bar"] = Progress(info.frames, desc, job.progress)

    try:
        return convert_video(src, dst, settings, backend=backend, background=background, overwrite=job.overwrite,
                             preset=job.preset, batch=job.batch, audio=job.audio, on_start=start,
                             on_progress=lambda n: holder["bar"].update(n), strict=job.strict,
                             inputs=job.inputs)
    finally:
        if "bar" in holder:
            holder["bar"].close()


def _convert_folder(src: Path, output: str | None, settings: Settings, backend: Backend, background: Background,
                    job: Job) -> ConvertStats:
    plan = plan_folder(src, output, settings.output_mode, job.overwrite)
    for _, dst in plan.images + plan.videos:
        refuse_inputs(dst, "file", job.inputs)
    if plan.earlier:  # said once every check has passed, so an error stays one line
        log.warning("%s: skipped %s named *.vbg.* or *.mask.* (the output of an earlier run into this folder)",
                    src.name, _n(plan.earlier, "file"))
    t0 = time.perf_counter()
    frames, stages = 0, {}
    unread: VbgError | None = None
    if plan.images:
        bar = Progress(len(plan.images), f"{src.name} images", job.progress)
        try:
            st = convert_images(plan.images, settings, backend=backend, background=background,
                                overwrite=job.overwrite, on_progress=bar.update)
            frames, stages = st.frames, st.stages
        except VbgError as exc:  # some images could not be read: the videos still get converted
            unread = exc
        finally:
            bar.close()
    failed: list[str] = []
    for i, (video, dst) in enumerate(plan.videos, 1):
        try:
            st = _convert_one_video(video, dst, settings, backend, background, job,
                                    f"[{i}/{len(plan.videos)}] {video.name}")
        except VbgError as exc:  # one bad video: the others still get converted, and the end says so
            failed.append(video.name)
            log.warning("%s", exc.line() if video.name in exc.what else f"{video.name}: {exc.line()}")
            continue
        frames += st.frames
        stages = stages or st.stages
        log.info("%s -> %s: %d frames", video.name, dst.name, st.frames)
    if failed:
        names = ", ".join(failed[:3]) + (", ..." if len(failed) > 3 else "")
        done = len(plan.videos) - len(failed)
        images = len(plan.images) if unread is None else 0
        others = ([_n(done, "other video")] if done else []) + ([_n(images, "image")] if images else [])
        if unread is not None:  # the images' own error, as a warning like the videos' ("see the warnings above")
            log.warning("%s", unread.line())
        raise VbgError(f"{len(failed)} of {_n(len(plan.videos), 'video')} could not be converted ({names})"
                       + (f"; {' and '.join(others)} {_was(done + images)} converted" if others else "")
                       + ("" if unread is None else f"; {unread.what}"), "see the warnings above")
    if unread is not None:
        raise VbgError(unread.what + (f"; the {_n(len(plan.videos), 'video')} {_was(len(plan.videos))} converted"
                                      if plan.videos else ""),
                       unread.fix)
    return ConvertStats(frames, time.perf_counter() - t0, plan.out_dir, stages)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, "convert")
    if not args.input:
        raise VbgError("no input given", "use vbg --input VIDEO|IMAGE|FOLDER --bg BG; see vbg --help")
    batch = _number(args, "batch", int)
    job = Job(preset=DEFAULT_PRESET if args.preset is None else args.preset, batch=DEFAULT_BATCH if batch is None else batch,
              audio=not args.no_audio, overwrite=args.overwrite, progress=not args.no_progress, strict=args.strict)
    stats = _convert(args.input, args.output, settings, job)
    say(stats.summary())
    if stats.stages:
        log.info("median ms per frame: %s", ", ".join(f"{k} {v:.2f}" for k, v in stats.stages.items()))
    if stats.audio:
        log.info("audio: %s", stats.audio)
    return 0
