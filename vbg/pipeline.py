"""The per-frame pipeline: segment -> smooth -> matte -> composite, and ``make_pipeline``.

``Pipeline`` owns one instance of each stage and times each call.
``process_batch`` is ``segment`` (the model, on the frames that need it)
then ``finish`` (the per-frame stages); the halves keep separate state, so
the batch converter runs them in two threads, one batch apart.
``update(settings)`` applies new settings from the next frame without
restarting anything; it is called on the thread that runs ``process`` (the
live loop's one settings mailbox is ``LiveLoop.update``).

Each frame's downscaled copies (``FramePyramid``) are made once and shared by
the model's input, the smoother and the matte; the matte's tile ``Coverage`` goes on to the
compositor so that only edge tiles are blended.

Work goes only where the picture changes (``settings.model_every``, default
``auto``): a ``ChangeGate`` on the model-size colour thumbnail decides per frame
whether the model runs or its last mask still holds (at least every half
second, at once on a scene cut); when the frame also matches the previous one
and the smoothed mask has settled, the previous matte is reused too. Outputs are new arrays every
frame (a writer thread may still hold the previous ones); the big scratch
buffers inside the stages are reused.

``make_pipeline(settings, backend)`` is the one factory: the GPU pipeline
when the backend runs on a CUDA device and CuPy sees one, else this one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .backends import create_backend
from .backends.base import Backend
from .errors import VbgError
from .gpu import device as gpu_device
from .gpu.pipeline import GpuPipeline
from .models import resolve_model
from .outputs import Output
from .settings import Settings, settings_or_default
from .stages.backgrounds import Background, open_background
from .stages.composite import Compositor
from .stages.frame import AutoFramer
from .stages.matte import Matte, MatteResult
from .stages.preprocess import FramePyramid
from .stages.segment import ChangeGate, Segmenter
from .stages.smooth import TemporalSmoother

log = logging.getLogger(__name__)

STAGES = ("segment", "smooth", "matte", "composite")
MIN_SIDE = 16  # pixels: smaller frames hold no person to find (and some OpenCV steps refuse them)

__all__ = ["Output", "Pipeline", "FramePipeline", "Segmented", "make_pipeline", "STAGES"]


@dataclass
class Segmented:
    """A batch between ``Pipeline.segment`` and ``Pipeline.finish``: the frames, their pyramids, each
    frame's raw model mask (None: the model did not run, the last mask holds), whether each frame
    matched the one before, and the model stage's ms per frame."""

    frames: list[np.ndarray]
    pyramids: list[FramePyramid]
    masks: list[np.ndarray | None]
    still: list[bool]
    segment_ms: float


class FramePipeline(Protocol):
    """What batch, live and the GUI drive: ``Pipeline`` or ``GpuPipeline``."""

    settings: Settings

    def process(self, frame: np.ndarray) -> Output: ...

    def process_batch(self, frames: Sequence[np.ndarray]) -> list[Output]: ...

    def segment(self, frames: Sequence[np.ndarray]) -> Any: ...

    def finish(self, seg: Any) -> list[Output]: ...

    def update(self, settings: Settings, background: Background | None = None) -> None: ...

    def reset(self) -> None: ...

    def set_rate(self, fps: float) -> None: ...

    def close(self) -> None: ...


class Pipeline:
    """The CPU pipeline: ``Pipeline(settings).process(frame)``.

    ``backend``: an open backend (default: one opened from ``settings.model``
    and ``settings.backend``, and closed by ``close``). ``background``: an
    already opened background for ``settings.bg`` (else it is opened here),
    so a run opens it once. The pipeline closes only what it opened itself.
    """

    def __init__(self, settings: Settings | None = None, backend: Backend | None = None, *, composite: bool = True,
                 background: Background | None = None, fps: float = 30.0, own_background: bool = False) -> None:
        settings = settings_or_default(settings, "pass vbg.Settings(...) (e.g. vbg.Settings(bg='blur:30'))")
        self._closed = False
        self._own_backend = backend is None
        if backend is None:
            with settings.blame("model"):
                backend = create_backend(resolve_model(settings.model), settings.backend)
        self.backend = backend
        self.fps = fps
        self.framer = AutoFramer(fps) if settings.frame == "auto" else None
        self.segmenter = Segmenter(backend)
        self.smoother = TemporalSmoother(settings.smoothing)
        self.matte = Matte(settings.threshold, settings.slope, settings.feather)
        try:
            with settings.blame("bg"):
                bg = background if background is not None else open_background(settings.background)
        except BaseException:
            if self._own_backend:
                backend.close()
            raise
        # a background passed in is borrowed (a batch shares one across files) unless handed over
        self._own_bg = background is None or own_background
        self.compositor = Compositor(bg, settings.light_wrap)
        self.composite = composite
        self.settings = settings
        self.gate = ChangeGate(self._model_every(settings), max_gap=self._max_gap(fps))
        self.model_runs = 0  # frames the model ran on (the rest reused its last mask)
        self._segmented = False  # segment(): the model has run since the last reset
        self._last_mask: np.ndarray | None = None  # finish(): the model's last raw mask
        self._last: tuple[np.ndarray, MatteResult] | None = None  # previous (smoothed mask, matte)

    def _model_every(self, settings: Settings) -> str:
        # a recurrent model's state must see every frame
        return "1" if self.backend.spec.state else settings.model_every

    @staticmethod
    def _max_gap(fps: float) -> int:
        return max(1, round(fps * ChangeGate.MAX_GAP_S))

    def set_rate(self, fps: float) -> None:
        """The frame rate the pipeline sees (the gate's longest gap and the framing's motion are in seconds)."""
        self.fps = fps
        self.gate.max_gap = self._max_gap(fps)
        if self.framer is not None:
            self.framer.dt = 1.0 / max(1.0, fps)

    # -- settings ------------------------------------------------------
    def update(self, settings: Settings, background: Background | None = None) -> None:
        """Apply new settings from the next frame on; call it on the processing thread.

        A changed background is opened here (VbgError if it cannot be, and
        the old one stays), unless ``background`` brings it already open: the
        pipeline then takes it over and closes it when done.
        """
        old = self.settings
        if settings.bg != old.bg:
            bg = background if background is not None else open_background(settings.background)
            if self._own_bg:
                self.compositor.background.close()
            self.compositor.background, self._own_bg = bg, True
        self.smoother.strength = settings.smoothing
        self.matte.threshold, self.matte.slope, self.matte.feather = (settings.threshold, settings.slope,
                                                                      settings.feather)
        self.compositor.light_wrap = settings.light_wrap
        if (settings.threshold, settings.slope, settings.feather, settings.smoothing) != (
                old.threshold, old.slope, old.feather, old.smoothing):
            self._last = None  # a still frame must show the new edges at once, not when the model next runs
        if settings.model_every != old.model_every:
            self.gate = ChangeGate(self._model_every(settings), max_gap=self._max_gap(self.fps))
        if settings.frame != old.frame:
            self.framer = AutoFramer(self.fps) if settings.frame == "auto" else None
        self.settings = settings

    def reset(self) -> None:
        """Forget temporal state (new clip or scene), the model's recurrent state included."""
        self.smoother.reset()
        self.matte.reset()
        self.backend.reset()
        self.gate.reset()
        self._last_mask = self._last = None
        self._segmented = False
        if self.framer is not None:
            self.framer.reset()

    # -- processing ----------------------------------------------------
    def process(self, frame: np.ndarray) -> Output:
        return self.process_batch([frame])[0]

    def process_batch(self, frames: Sequence[np.ndarray]) -> list[Output]:
        """Run the frames that need the model through it in one batch, then the per-frame stages in order."""
        return self.finish(self.segment(frames))

    def segment(self, frames: Sequence[np.ndarray]) -> Segmented:
        """The first half of ``process_batch``: the model on the frames that need it.

        ``finish`` does the rest. The halves keep separate state, so a batch
        converter may run ``segment`` on the next batch in another thread while
        ``finish`` works on this one; each half must see the batches in order.
        """
        if self._closed:
            raise VbgError("this pipeline is closed", "make a new vbg.Pipeline")
        frames = [check_frame(f) for f in frames]
        t0 = time.perf_counter()
        pyramids = [FramePyramid(f) for f in frames]
        run, still = [], []
        for f, pyr in zip(frames, pyramids):
            run.append(self.gate.needs(pyr.at(self.segmenter.input_size(f))))  # the model's input, made anyway
            still.append(self.gate.still)
        if frames and not self._segmented:
            run[0] = True
        todo = [i for i, r in enumerate(run) if r]
        ran = iter(self.segmenter([frames[i] for i in todo], [pyramids[i] for i in todo]) if todo else [])
        self._segmented = self._segmented or bool(todo)
        self.model_runs += len(todo)
        masks = [next(ran) if r else None for r in run]
        seg_ms = (time.perf_counter() - t0) * 1000.0 / max(1, len(frames))
        return Segmented(frames, pyramids, masks, still, seg_ms)

    def finish(self, seg: Segmented) -> list[Output]:
        """The second half of ``process_batch``: smooth, matte, composite (and framing), frame by frame."""
        outs = []
        for frame, pyr, mask, st in zip(seg.frames, seg.pyramids, seg.masks, seg.still):
            r = mask is not None
            if r:
                self._last_mask = mask
            assert self._last_mask is not None
            t = {"segment": seg.segment_ms}
            t1 = time.perf_counter()
            last = self._last
            settled = (not r and st and last is not None and last[0].shape == self._last_mask.shape
                       and float(np.abs(last[0] - self._last_mask).max()) < 1e-3)
            if settled:
                assert last is not None
                m, res = last  # same picture, same mask, smoothing has converged: the same alpha
                t2 = time.perf_counter()
            else:
                m = self.smoother(self._last_mask, frame, pyramid=pyr)
                t2 = time.perf_counter()
                res = self.matte.compute(m, frame, pyramid=pyr)
            self._last = (m, res)
            t3 = time.perf_counter()
            out = self.compositor(frame, res, pyramid=pyr) if self.composite else None
            t4 = time.perf_counter()
            t["smooth"], t["matte"], t["composite"] = ((t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3)
            o = Output(out, res, m, t, model_ran=r)
            if self.framer is not None:
                o = self.framer.apply(o, self.framer.step(m, frame.shape[1], frame.shape[0]))
                t["frame"] = (time.perf_counter() - t4) * 1e3
            outs.append(o)
        return outs

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._own_bg:
            self.compositor.background.close()
        if self._own_backend:
            self.backend.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_frame(frame: Any) -> np.ndarray:
    """A frame as the pipeline takes it (uint8 BGR ``(H, W, 3)``, C-contiguous), or a one-line VbgError."""
    if not isinstance(frame, np.ndarray):
        raise VbgError(f"a frame must be a numpy array, got {type(frame).__name__}",
                       "pass a uint8 BGR array of shape (H, W, 3)")
    if frame.dtype != np.uint8:
        raise VbgError(f"a frame must be uint8, got {frame.dtype}",
                       "scale it to 0..255 and convert, e.g. np.clip(f * 255, 0, 255).astype(np.uint8)")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise VbgError(f"a frame must be BGR of shape (H, W, 3), got {frame.shape}",
                       "convert it with cv2.cvtColor (e.g. COLOR_GRAY2BGR or COLOR_BGRA2BGR); one frame at a time")
    check_size(frame.shape[1], frame.shape[0])
    return np.ascontiguousarray(frame)


def check_size(width: int, height: int, what: str = "frame") -> None:
    if min(width, height) < MIN_SIDE:
        raise VbgError(f"{what} is {width}x{height} pixels, too small to find a person in",
                       f"give a picture at least {MIN_SIDE}x{MIN_SIDE}")


def make_pipeline(settings: Settings, backend: Backend, *, composite: bool = True,
                  background: Background | None = None, fps: float = 30.0,
                  own_background: bool = False) -> FramePipeline:
    """The pipeline for this backend: on the GPU when the backend runs on a
    CUDA device and CuPy sees a GPU (frames then stay on the device), else on the CPU.
    ``fps``: the source's frame rate (auto-framing moves in seconds, not frames)."""
    if getattr(backend, "device", "cpu") == "cuda" and gpu_device.gpu_available():
        log.info("GPU pipeline on %s", gpu_device.probe_gpu().name)
        return GpuPipeline(settings, backend, composite=composite, background=background, fps=fps,
                           own_background=own_background)
    return Pipeline(settings, backend, composite=composite, background=background, fps=fps,
                    own_background=own_background)
