"""The GPU pipeline: frames stay on the GPU from upload to download.

Per batch: one pinned upload of the frames; resize + normalise on the GPU
straight into the model's input tensor; inference on device pointers
(TensorRT's ``run_device``; any host backend works through ``HostInfer``);
decode, temporal smoothing, matte and composite in CuPy kernels; one pinned
download of the results. The stages compute what the CPU stages compute
(``vbg.gpu.kernels`` says how exactly), so ``GpuPipeline`` is a drop-in for
``vbg.pipeline.Pipeline``: same constructor, ``process``/``process_batch``
returning the same ``Output``, ``update``, ``reset``, ``close``.

What stays on the host: the smoother's scene-cut test (a download of the
mask-sized luma thumbnails, one sync per batch), and light wrap, which the
GPU path does not do (``light_wrap > 0`` is ignored with a warning).

The batch converter encodes with NVENC and decodes with NVDEC around this
pipeline where they open (``vbg.sinks.video.pick_h264_encoder``,
``vbg.io.decode``): data-centre GPUs such as the H100 and H200 have NVDEC but
no NVENC, and encode with libx264 on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import VbgError
from ..outputs import Output
from ..settings import Settings
from ..stages.backgrounds import Background, BlurBackground, ColorBackground, ImageBackground, open_background
from ..stages.frame import AutoFramer
from ..stages.smooth import TemporalSmoother
from .device import probe_gpu, require_cupy
from .kernels import Kernels
from .plans import MatteParams, Pyramid, decode_xp

log = logging.getLogger(__name__)


# --- inference on device arrays --------------------------------------------------
class DeviceInfer(Protocol):
    max_batch: int

    def run_device(self, x: Any, stream: Any = None) -> Any: ...


class HostInfer:
    """Any backend with ``run_tensor`` (ONNX Runtime) behind ``run_device``: download, run, upload.

    Lets the GPU pipeline run where TensorRT is missing; only the small model
    tensor crosses the bus, the frames stay on the GPU.
    """

    def __init__(self, backend: Any) -> None:
        if not hasattr(backend, "run_tensor"):
            raise VbgError(f"backend {getattr(backend, 'name', backend)!r} cannot feed the GPU pipeline",
                           "use --backend tensorrt or onnxruntime")
        self.backend = backend
        self.max_batch = int(getattr(backend, "max_batch", 0) or 64)

    def run_device(self, x: Any, stream: Any = None) -> Any:
        cp = require_cupy()
        host = x.get(stream=stream)
        out = self.backend.run_tensor(np.ascontiguousarray(host))
        with stream or cp.cuda.get_current_stream():
            return cp.asarray(out)


def device_infer(backend: Any) -> DeviceInfer:
    return backend if hasattr(backend, "run_device") else HostInfer(backend)


# --- stages ------------------------------------------------------------------------
def GpuSmoother(kernels: Kernels, strength: float = 0.5) -> TemporalSmoother:  # noqa: N802 (reads as a class)
    """``TemporalSmoother``'s state rules with its arithmetic in a CUDA kernel, on CuPy arrays.

    Fed through ``step`` the frame's mask-sized luma thumbnail (on the device)
    and its host copy (for the scene-cut test).
    """
    return TemporalSmoother(strength, blend=kernels.smooth)


@dataclass
class _Buffers:
    """Device and pinned host buffers for one (batch, height, width)."""

    n: int
    h_frames: np.ndarray  # pinned (n, H, W, 3) u8
    d_frames: Any  # (n, H, W, 3) u8
    d_tensor: Any  # (n, model input) float32
    d_alpha: Any  # (n, H, W) float32
    d_tmp: Any  # (n, H, W) float32: feather scratch
    d_bg: Any  # (n, H, W, 3) u8: per-frame backgrounds (blur, video)
    d_out: Any  # (n, H, W, 3|4) u8
    h_out: np.ndarray  # pinned like d_out
    h_alpha: np.ndarray  # pinned (n, H, W) float32


class GpuPipeline:
    """segment -> smooth -> matte -> composite on the GPU; a drop-in for ``vbg.pipeline.Pipeline``.

    ``download_alpha=False`` skips copying the float alpha back (saves bus and
    host time when only the composite is written); ``Output.alpha`` is then
    an empty array. Light wrap is not done on the GPU (ignored, with a warning).
    """

    def __init__(self, settings: Settings, backend: Any, *, composite: bool = True,
                 download_alpha: bool = True, device: int = 0, background: Background | None = None,
                 fps: float = 30.0, own_background: bool = False) -> None:
        cp = require_cupy()
        self.gpu = probe_gpu(device)
        self.cp = cp
        self.backend = backend
        self.spec = backend.spec
        self.infer = device_infer(backend)
        self.kernels = Kernels()
        self.stream = getattr(backend, "stream", None) or cp.cuda.Stream(non_blocking=True)
        self.composite = composite
        self.download_alpha = download_alpha or not composite
        self.settings = settings
        self.smoother = GpuSmoother(self.kernels, settings.smoothing)
        self.matte = MatteParams.from_settings(settings)
        with self.stream:
            self._channel = cp.zeros((1,), np.int32)  # the matte's guide channel in use, on the device
        with settings.blame("bg"):
            self.background: Background = (background if background is not None
                                            else open_background(settings.background))
        self._own_bg = background is None or own_background  # close only what it opened or was handed
        self.fps = fps
        self.framer = AutoFramer(fps) if settings.frame == "auto" else None  # on the host, after download
        self.model_runs = 0  # every frame: the GPU path does not skip the model
        self._bg_src: np.ndarray | None = None  # host array the device background was uploaded from
        self._bg_dev: Any = None
        self._bufs: _Buffers | None = None
        self._warn_light_wrap(settings)

    @staticmethod
    def _warn_light_wrap(settings: Settings) -> None:
        if settings.light_wrap > 0:
            log.warning("light wrap %.2f is not done on the GPU pipeline (CPU only); ignoring it",
                        settings.light_wrap)

    # -- settings -------------------------------------------------------------------
    def update(self, settings: Settings, background: Background | None = None) -> None:
        """Apply new settings from the next frame on; call it on the processing thread (as ``Pipeline.update``)."""
        if settings.bg != self.settings.bg:
            bg = background if background is not None else open_background(settings.background)
            if self._own_bg:
                self.background.close()
            self.background, self._own_bg = bg, True
            self._bg_src = self._bg_dev = None
        self.smoother.strength = settings.smoothing
        self.matte = MatteParams.from_settings(settings)
        if settings.frame != self.settings.frame:
            self.framer = AutoFramer(self.fps) if settings.frame == "auto" else None
        if settings.light_wrap != self.settings.light_wrap:
            self._warn_light_wrap(settings)
        self.settings = settings

    def set_rate(self, fps: float) -> None:
        """The frame rate (auto-framing moves in seconds); the GPU path runs the model on every frame."""
        self.fps = fps
        if self.framer is not None:
            self.framer.dt = 1.0 / max(1.0, fps)

    def reset(self) -> None:
        """Forget temporal state (new clip or scene): the smoother's, the matte's guide channel, the model's."""
        self.smoother.reset()
        self.backend.reset()
        if self.framer is not None:
            self.framer.reset()
        with self.stream:
            self._channel.fill(0)

    # -- buffers ------------------------------------------------------------------------
    def _buffers(self, n: int, height: int, width: int) -> _Buffers:
        b = self._bufs
        ch = 4 if self.background_is_none else 3  # BGRA when the background is transparent
        if b is not None and b.n >= n and b.d_frames.shape[1:3] == (height, width) and b.d_out.shape[3] == ch:
            return b
        import cupyx

        cp = self.cp
        n = max(n, b.n if b is not None else 0)
        w, h = self.spec.size
        shape_in = (n, 3, h, w) if self.spec.input.layout == "NCHW" else (n, h, w, 3)
        self._bufs = b = _Buffers(
            n=n,
            h_frames=cupyx.empty_pinned((n, height, width, 3), np.uint8),
            d_frames=cp.empty((n, height, width, 3), np.uint8),
            d_tensor=cp.empty(shape_in, np.float32),
            d_alpha=cp.empty((n, height, width), np.float32),
            d_tmp=cp.empty((n, height, width), np.float32),
            d_bg=cp.empty((n, height, width, 3), np.uint8),
            d_out=cp.empty((n, height, width, ch), np.uint8),
            h_out=cupyx.empty_pinned((n, height, width, ch), np.uint8),
            h_alpha=cupyx.empty_pinned((n, height, width), np.float32),
        )
        return b

    @property
    def background_is_none(self) -> bool:
        return self.background.transparent

    def _device_background(self, frames: Sequence[np.ndarray], pyr: Pyramid, b: _Buffers) -> Any:
        """The batch's background on the device: (n, H, W, 3), one (H, W, 3) for all, or None (transparent)."""
        bg = self.background
        n = len(frames)
        if self.background_is_none:
            return None
        if isinstance(bg, BlurBackground):
            return self.kernels.blur_background(pyr, bg.strength, b.d_bg[:n])
        if isinstance(bg, (ImageBackground, ColorBackground)):
            # Still images and colours come back as the same cached array: upload them once.
            host = bg.get(frames[0])
            if not (host is self._bg_src and self._bg_dev is not None):
                self._bg_dev = self.cp.asarray(np.ascontiguousarray(host))
                self._bg_src = host
            return self._bg_dev
        hosts = []
        for f in frames:  # video: a new picture per frame
            pic = bg.get(f)
            if pic is None:
                return None
            hosts.append(pic)
        b.d_bg[:n].set(np.stack(hosts))
        return b.d_bg[:n]

    # -- processing -----------------------------------------------------------------
    def process(self, frame: np.ndarray) -> Output:
        return self.process_batch([frame])[0]

    def segment(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The CPU pipeline's two halves, for the batch converter: here the whole batch runs on the
        GPU in ``finish`` (one stream, one synchronisation), so this only hands the frames on."""
        return list(frames)

    def finish(self, seg: list[np.ndarray]) -> list[Output]:
        return self.process_batch(seg)

    def process_batch(self, frames: Sequence[np.ndarray]) -> list[Output]:
        if not frames:
            return []
        size = frames[0].shape
        if any(f.shape != size for f in frames):  # mixed sizes: one run per size, order kept
            cut = next(i for i, f in enumerate(frames) if f.shape != size)
            return self.process_batch(frames[:cut]) + self.process_batch(frames[cut:])
        cp, k = self.cp, self.kernels
        n, height, width = len(frames), size[0], size[1]
        b = self._buffers(n, height, width)
        d_frames = b.d_frames[:n]
        events = [cp.cuda.Event() for _ in range(7)]
        with self.stream:
            events[0].record()
            for i, f in enumerate(frames):
                b.h_frames[i] = f
            b.d_frames.data.copy_from_host_async(b.h_frames.ctypes.data, n * height * width * 3, self.stream)
            events[1].record()
            pyr = k.pyramid(d_frames)  # shared downscales, made on first use (FramePyramid's plan)
            k.preprocess(d_frames, self.spec, b.d_tensor[:n], pyr)  # from the pyramid, as Segmenter does
            # Decode each chunk before the next run: TensorRT reuses its output buffer.
            step = self.infer.max_batch
            parts = [decode_xp(cp, self.spec, self.infer.run_device(b.d_tensor[a:min(n, a + step)], self.stream))
                     for a in range(0, n, step)]
            masks = parts[0] if len(parts) == 1 else cp.concatenate(parts)
            events[2].record()
            mh, mw = (int(v) for v in masks.shape[1:])
            grays = pyr.gray((mw, mh))
            h_grays = grays.get(stream=self.stream)  # small; the scene-cut test runs on the host
            smoothed = cp.stack([self.smoother.step(masks[i], grays[i], h_grays[i]) for i in range(n)])
            events[3].record()
            k.matte(smoothed, d_frames, pyr, self.matte, self._channel, b.d_alpha[:n], b.d_tmp[:n])
            events[4].record()
            if self.composite:
                bg = self._device_background(frames, pyr, b)
                k.composite(d_frames, bg, b.d_alpha[:n], b.d_out[:n])
            events[5].record()
            if self.composite:
                out_bytes = n * b.d_out[0].nbytes
                b.d_out.data.copy_to_host_async(b.h_out.ctypes.data, out_bytes, self.stream)
            if self.download_alpha:
                b.d_alpha.data.copy_to_host_async(b.h_alpha.ctypes.data, n * height * width * 4, self.stream)
            events[6].record()
            h_masks = smoothed.get(stream=self.stream)  # small; blocks until the batch is done
        self.stream.synchronize()
        names = ("upload", "segment", "smooth", "matte", "composite", "download")
        per_frame = {name: cp.cuda.get_elapsed_time(events[j], events[j + 1]) / n for j, name in enumerate(names)}
        empty = np.zeros((0, 0), np.float32)
        self.model_runs += n
        outs = [Output(frame=b.h_out[i].copy() if self.composite else None,
                       alpha=b.h_alpha[i].copy() if self.download_alpha else empty,
                       mask=np.array(h_masks[i], np.float32), timings=dict(per_frame))
                for i in range(n)]
        if self.framer is not None:
            outs = [self.framer.apply(o, self.framer.step(o.mask, width, height)) for o in outs]
        return outs

    def close(self) -> None:
        self.stream.synchronize()
        if self._own_bg:
            self.background.close()
        self._bufs = None
        self._bg_dev = self._bg_src = None
