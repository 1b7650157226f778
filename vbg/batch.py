"""``vbg --input IN --bg BG``: convert a video, an image or a folder of images.

Videos flow through three threads joined by bounded queues, so decoding,
inference and encoding overlap and memory stays flat however long the
video is::

    decode thread --(8 frames)--> main: pipeline, batches --(8 outputs)--> encode thread

Outputs are written under a temporary name and renamed when complete
(``vbg.atomic``); inputs are never overwritten.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_folder, atomic_output, check_target, same_file
from .errors import VbgError
from .settings import OUTPUT_MODES, Settings
from .sinks.images import (
    IMAGE_EXTS,
    check_image_output,
    is_image,
    is_sequence_target,
    read_image,
    sequence_pattern,
    write_image,
)
from .sinks.video import X264_PRESETS, check_video_output

log = logging.getLogger(__name__)

GREEN = "color:#00b140"  # chroma-key green
DEFAULT_PRESET = "superfast"
DEFAULT_BATCH = 4
STAGE_ORDER = ("decode", "segment", "smooth", "matte", "composite", "encode")

ProgressFn = Callable[[int], None]


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", metavar="IN",
                        help="video, image, or folder of images")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="output file; a folder (or frame_%%05d.png) for a PNG sequence. "
                             "Default: IN.vbg.mp4 beside the input (IN.mask.mp4 for masks)")
    parser.add_argument("--bg", metavar="BG",
                        help="background: IMAGE, VIDEO (looped), blur:N, color:#RRGGBB, or none "
                             "(default blur:25)")
    parser.add_argument("--output-mode", metavar="MODE",
                        help=f"one of {', '.join(OUTPUT_MODES)}: alpha writes transparency "
                             "(.webm VP9, .mov ProRes 4444, or PNGs); mask writes the matte in grey; "
                             "green composites over chroma green")
    g = parser.add_argument_group("matte")
    g.add_argument("--threshold", metavar="0..1", help="person/background cut-off (0.5)")
    g.add_argument("--slope", metavar="1..100", help="edge hardness: 1 soft, 100 hard cut (10)")
    g.add_argument("--feather", metavar="PX", help="edge feathering in pixels, 0..50 (2)")
    g.add_argument("--smoothing", metavar="0..1", help="temporal smoothing, 0 = off (0.5)")
    g.add_argument("--light-wrap", metavar="0..1", help="background light spilling over edges (0)")
    m = parser.add_argument_group("model")
    m.add_argument("--model", help="model name (see 'vbg models') or a spec .json path")
    m.add_argument("--backend", help="auto, onnxruntime, cuda or tensorrt (auto)")
    m.add_argument("--batch", metavar="N", help=f"frames per model call, 1..64 ({DEFAULT_BATCH})")
    e = parser.add_argument_group("encoding")
    e.add_argument("--quality", metavar="CRF",
                   help="H.264 CRF 0..51, lower is better and bigger (20); VP9 is scaled to match")
    e.add_argument("--preset", metavar="NAME",
                   help=f"x264 speed preset, ultrafast..veryslow ({DEFAULT_PRESET}: "
                        "fastest that keeps files reasonable on 2 cores)")
    e.add_argument("--no-audio", action="store_true", help="drop the audio track")
    parser.add_argument("--config", metavar="FILE.toml", help="settings file ([vbg] table); flags override it")
    parser.add_argument("-y", "--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
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


def build_settings(args: argparse.Namespace) -> Settings:
    """Defaults < --config file < command-line flags; validated once by Settings."""
    base = Settings.load(args.config) if getattr(args, "config", None) else Settings()
    changes: dict[str, Any] = {}
    for name in ("threshold", "slope", "feather", "smoothing", "light_wrap"):
        if (v := _number(args, name, float)) is not None:
            changes[name] = v
    if (q := _number(args, "quality", int)) is not None:
        changes["quality"] = q
    for name in ("bg", "model", "backend", "output_mode"):
        if (v := getattr(args, name, None)) is not None:
            changes[name] = v
    return base.replace(**changes) if changes else base


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
        return f"vbg: {self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} fps) -> {self.output}"


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
def _make_pipeline(settings: Settings, backend: Any) -> Any:
    from .pipeline import Pipeline

    return Pipeline(settings, backend, composite=settings.output_mode != "mask")


def _open_backend(settings: Settings) -> Any:
    from .backends import create_backend
    from .models import resolve_model

    spec = resolve_model(settings.model)
    return create_backend(spec, settings.backend)


def convert_video(src: Path, dst: Path, settings: Settings, *, backend: Any = None,
                  overwrite: bool = False, preset: str = DEFAULT_PRESET, batch: int = DEFAULT_BATCH,
                  audio: bool = True, on_progress: ProgressFn | None = None,
                  on_start: Callable[[Any], None] | None = None, queue_size: int = 8) -> ConvertStats:
    """Convert one video file to ``dst`` (a video file, or a PNG-sequence folder/pattern).

    ``backend``: an open inference backend (made from ``settings`` when
    None, and closed again). ``on_start(info)`` gets the ``VideoInfo``
    once the input is open; ``on_progress(n)`` is called after each batch
    of ``n`` frames.
    """
    from .decode import VideoDecoder
    from .sinks import SinkThread, render

    settings = effective_settings(settings)
    src, dst = Path(src), Path(dst)
    mode = settings.output_mode
    sequence = dst.suffix.lower() not in (".mp4", ".m4v", ".mov", ".mkv", ".webm")
    if same_file(src, dst) or (sequence and same_file(src, sequence_pattern(dst)[0])):
        raise VbgError(f"output {dst} is the input file", "choose another --output; inputs are never overwritten")
    if not sequence:
        check_video_output(dst, mode)
        check_target(dst, overwrite=overwrite)
    own_backend = backend is None
    if own_backend:
        backend = _open_backend(settings)
    timings = _Timings()
    t_start = time.perf_counter()
    try:
        with VideoDecoder(src, queue_size=queue_size, audio=audio and not sequence) as dec:
            info = dec.info
            if on_start is not None:
                on_start(info)
            pipeline = _make_pipeline(settings, backend)
            try:
                if sequence:
                    folder, pattern = sequence_pattern(dst)
                    if (folder / (pattern % 1)).exists() and not overwrite:
                        raise VbgError(f"{folder / (pattern % 1)} already exists",
                                       "use -y to overwrite, or choose another --output")
                    with atomic_folder(folder, overwrite=overwrite) as tmp:
                        from .sinks.images import PngSequenceSink

                        sink: Any = PngSequenceSink(tmp, pattern)
                        frames, audio_note = _run_video(dec, pipeline, sink, mode, batch, timings,
                                                        on_progress, queue_size, SinkThread, render)
                    out_path = folder
                else:
                    with atomic_output(dst, overwrite=overwrite) as tmp:
                        from .sinks.video import VideoSink

                        sink = VideoSink(
                            tmp, ext=dst.suffix, mode=mode, width=info.width, height=info.height,
                            rate=info.rate, time_base=info.time_base, quality=settings.quality,
                            preset=preset, sample_aspect_ratio=_rotated_sar(info),
                            color_primaries=info.color_primaries, color_trc=info.color_trc,
                            audio_in=dec.audio_stream)
                        frames, audio_note = _run_video(dec, pipeline, sink, mode, batch, timings,
                                                        on_progress, queue_size, SinkThread, render)
                    out_path = dst
            finally:
                pipeline.close()
            if dec.bad_packets:
                log.warning("%s: %d damaged packets were skipped", src.name, dec.bad_packets)
    finally:
        if own_backend:
            backend.close()
    seconds = time.perf_counter() - t_start
    return ConvertStats(frames, seconds, out_path, timings.medians(), audio_note)


def _rotated_sar(info: Any) -> Any:
    sar = info.sample_aspect_ratio
    if sar and info.rotation in (90, 270):
        return 1 / sar
    return sar


def _run_video(dec: Any, pipeline: Any, sink: Any, mode: str, batch: int, timings: _Timings,
               on_progress: ProgressFn | None, queue_size: int, SinkThread: Any, render: Any) -> tuple[int, str]:
    """The main loop: frames in batches through the pipeline, outputs to the writer thread."""
    from .decode import DecodedFrame

    def write(out: Any, pts: int) -> None:
        sink.write(render(out, mode), pts)

    writer = SinkThread(sink.close, sink.abort, maxsize=queue_size)
    pending: list[DecodedFrame] = []
    frames = 0

    def flush() -> None:
        nonlocal frames
        outs = pipeline.process_batch([f.image for f in pending])
        for f, out in zip(pending, outs):
            timings.add("decode", f.decode_ms)
            for stage, ms in out.timings.items():
                timings.add(stage, ms)
            writer.submit(write, out, f.pts)
        frames += len(pending)
        if on_progress is not None:
            on_progress(len(pending))
        pending.clear()

    try:
        pipeline.reset()
        for item in dec:
            if isinstance(item, DecodedFrame):
                pending.append(item)
                if len(pending) >= batch:
                    flush()
            else:  # an audio packet: to the muxer, in file order
                writer.submit(sink.write_audio, item, timed=False)
        if pending:
            flush()
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    for ms in writer.frame_ms:
        timings.add("encode", ms)
    return frames, getattr(sink, "audio_note", "")


def convert_images(pairs: Sequence[tuple[Path, Path]], settings: Settings, *, backend: Any = None,
                   overwrite: bool = False, on_progress: ProgressFn | None = None) -> ConvertStats:
    """Convert images independently (temporal state is reset between them).

    ``pairs``: (input, output) paths. An unreadable image is skipped with a
    warning; if any were, a ``VbgError`` naming the first is raised at the
    end, after the others are written.
    """
    from .sinks import render

    settings = effective_settings(settings)
    mode = settings.output_mode
    own_backend = backend is None
    if own_backend:
        backend = _open_backend(settings)
    timings = _Timings()
    t_start = time.perf_counter()
    failed: list[tuple[Path, VbgError]] = []
    done = 0
    try:
        pipeline = _make_pipeline(settings, backend)
        try:
            for src, dst in pairs:
                try:
                    t0 = time.perf_counter()
                    img = read_image(src)
                    timings.add("decode", (time.perf_counter() - t0) * 1e3)
                except VbgError as exc:
                    if len(pairs) == 1:
                        raise
                    log.warning("skipping %s: %s", src, exc.what)
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
    finally:
        if own_backend:
            backend.close()
    if failed:
        src, exc = failed[0]
        more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
        raise VbgError(f"could not read {src}{more}; the other {done} images were written",
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


def _dir_like(text: str, p: Path) -> bool:
    return text.endswith(("/", "\\")) or p.is_dir() or not p.suffix


def plan_video_output(src: Path, output: str | None, mode: str) -> Path:
    if output is None:
        ext = ".webm" if mode == "alpha" else ".mp4"
        return src.with_name(f"{src.stem}.{_tag(mode)}{ext}")
    p = Path(output).expanduser()
    if is_sequence_target(p, output):
        return p
    check_video_output(p, mode)
    return p


def plan_image_output(src: Path, output: str | None, mode: str) -> Path:
    ext = _image_ext(src, mode)
    if output is None:
        return src.with_name(f"{src.stem}.{_tag(mode)}{ext}")
    p = Path(output).expanduser()
    if _dir_like(output, p):
        p = p / f"{src.stem}{ext}"
    check_image_output(p, mode, mode == "alpha")
    return p


def plan_folder(src: Path, output: str | None, mode: str, overwrite: bool) -> list[tuple[Path, Path]]:
    try:
        images = sorted(p for p in src.iterdir() if p.is_file() and is_image(p) and not p.name.startswith("."))
    except PermissionError:
        raise VbgError(f"cannot read folder {src}: permission denied", "check its permissions") from None
    if not images:
        raise VbgError(f"no images in {src}", f"put {', '.join(sorted(IMAGE_EXTS))} files there, or give a video")
    if output is None:
        out_dir = src.parent / f"{src.name}.{'masks' if mode == 'mask' else 'vbg'}"
    else:
        out_dir = Path(output).expanduser()
        if out_dir.exists() and not out_dir.is_dir():
            raise VbgError(f"output {out_dir} is a file", "give a folder as --output for a folder of images")
        if out_dir.suffix.lower() in IMAGE_EXTS:
            raise VbgError(f"output {out_dir} looks like an image file", "give a folder as --output for a folder of images")
    pairs: list[tuple[Path, Path]] = []
    seen: dict[Path, Path] = {}
    for img in images:
        dst = out_dir / f"{img.stem}{_image_ext(img, mode)}"
        if dst in seen:
            raise VbgError(f"{seen[dst].name} and {img.name} would both be written to {dst.name}",
                           "rename one of them")
        seen[dst] = img
        for other in images:
            if same_file(dst, other):
                raise VbgError(f"output {dst} would overwrite the input {other.name}",
                               "choose another --output folder; inputs are never overwritten")
        check_target(dst, overwrite=overwrite)
        pairs.append((img, dst))
    return pairs


# --------------------------------------------------------------------------- run
def _progress_bar(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    # disable=None: tqdm switches itself off when stderr is not a terminal
    return tqdm(total=total or None, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True,
                leave=False, disable=None if enabled else True, smoothing=0.1)


def run(args: argparse.Namespace) -> int:
    settings = effective_settings(build_settings(args))
    if not args.input:
        raise VbgError("no input given", "use vbg --input VIDEO|IMAGE|FOLDER --bg BG; see vbg --help")
    batch = _number(args, "batch", int)
    batch = DEFAULT_BATCH if batch is None else batch
    if not 1 <= batch <= 64:
        raise VbgError(f"--batch {batch} out of range", "use a value from 1 to 64")
    preset = args.preset or DEFAULT_PRESET
    if preset not in X264_PRESETS:
        raise VbgError(f"unknown --preset {preset!r}", f"use one of {', '.join(X264_PRESETS)}")
    src = Path(args.input).expanduser()
    if not src.exists():
        raise VbgError(f"input {src} not found", "check the path")
    mode = settings.output_mode
    show = not args.no_progress

    # The background is opened before any work, so a bad one fails at once.
    from .backgrounds import make_background

    make_background(settings.background).close()

    if src.is_dir():
        pairs = plan_folder(src, args.output, mode, args.overwrite)
        bar = _progress_bar(len(pairs), src.name, show)
        try:
            stats = convert_images(pairs, settings, overwrite=args.overwrite, on_progress=bar.update)
        finally:
            bar.close()
    elif is_image(src):
        dst = plan_image_output(src, args.output, mode)
        check_target(dst, overwrite=args.overwrite, inputs=(src,))
        stats = convert_images([(src, dst)], settings, overwrite=args.overwrite)
    else:
        dst = plan_video_output(src, args.output, mode)
        if same_file(src, dst):
            raise VbgError(f"output {dst} is the input file", "choose another --output; inputs are never overwritten")
        holder: dict[str, Any] = {}

        def start(info: Any) -> None:
            holder["bar"] = _progress_bar(info.frames, src.name, show)

        try:
            stats = convert_video(src, dst, settings, overwrite=args.overwrite, preset=preset, batch=batch,
                                  audio=not args.no_audio, on_start=start,
                                  on_progress=lambda n: holder["bar"].update(n))
        finally:
            if "bar" in holder:
                holder["bar"].close()
    print(stats.summary())
    if stats.stages:
        log.info("median ms per frame: %s", ", ".join(f"{k} {v:.2f}" for k, v in stats.stages.items()))
    if stats.audio:
        log.info("audio: %s", stats.audio)
    return 0
