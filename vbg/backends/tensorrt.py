"""TensorRT backend: runs an FP16 engine built by ``build_engine.py``.

Device memory and the CUDA stream come from CuPy (no pycuda, no local CUDA
toolkit): the input and output buffers are allocated once for the engine's
largest batch, host staging buffers are pinned so copies run asynchronously,
and each call is ``set_input_shape`` + ``set_tensor_address`` +
``execute_async_v3`` on one stream. ``run_device`` takes a CuPy array that is
already on the GPU, which is how ``vbg.gpu.pipeline`` keeps frames there.

``tensorrt`` and ``cupy`` are imported when a backend is created, never when
this module is imported, so ``create_backend`` can ask ``available()`` on any
machine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VbgError
from ..gpu import engine as eng
from ..gpu.device import gpu_available, has_module, probe_gpu, require_cupy, require_tensorrt
from ..spec import ModelSpec
from ..stages.preprocess import Preprocessor, decode_output

log = logging.getLogger(__name__)


def available() -> bool:
    """TensorRT and CuPy are installed and a CUDA GPU is present (cheap, never raises)."""
    return has_module("tensorrt") and gpu_available()


def find_engine(spec: ModelSpec) -> Path | None:
    """The engine built for this model on this GPU and TensorRT version, if any."""
    try:
        version = str(require_tensorrt().__version__)
        gpu = probe_gpu()
    except VbgError:
        return None
    found = eng.find_engine(spec, gpu.slug, version)
    if found is None and eng.other_engines(spec):
        log.warning("%s", eng.diagnose(spec).line())
    return found


def why_unavailable(spec: ModelSpec) -> VbgError:
    """One-line reason the TensorRT backend cannot run ``spec`` here."""
    return eng.diagnose(spec)


def chunks(n: int, max_batch: int) -> list[tuple[int, int]]:
    """[start, stop) ranges that split n items into batches of at most max_batch."""
    if max_batch < 1:
        raise ValueError("max_batch must be >= 1")
    return [(i, min(n, i + max_batch)) for i in range(0, n, max_batch)]


class TensorRTBackend:
    name = "tensorrt"
    device = "cuda"

    def __init__(self, spec: ModelSpec, engine_path: str | Path, *, threads: int | None = None,
                 device: int = 0) -> None:
        del threads  # the CPU thread count is an ONNX Runtime setting; accepted so callers can pass it blindly
        if spec.state:
            raise VbgError(f"model {spec.name} has recurrent state, which the TensorRT backend does not carry",
                           "use --backend cpu or cuda (ONNX Runtime) for it")
        trt = require_tensorrt()
        cp = require_cupy()
        import cupyx

        self.spec = spec
        self.engine_path = Path(engine_path)
        gpu = probe_gpu(device)
        eng.check_engine(self.engine_path, spec, gpu.slug, str(trt.__version__))
        self._cp = cp
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise VbgError(f"TensorRT cannot load engine {self.engine_path.name} (its log is above)",
                           f"rebuild it: {eng.rebuild_hint(spec)}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        self.input_name, self.output_name = spec.input.name, spec.output.name
        if inputs != [self.input_name]:
            raise VbgError(f"engine {self.engine_path.name} has inputs {inputs}, the spec expects "
                           f"[{self.input_name!r}]", f"rebuild it: {eng.rebuild_hint(spec)}")
        if self.output_name not in outputs:
            raise VbgError(f"engine {self.engine_path.name} has no output {self.output_name!r}",
                           f"rebuild it: {eng.rebuild_hint(spec)}")
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        shape = tuple(self.engine.get_tensor_shape(self.input_name))
        self.dynamic = -1 in shape
        if self.dynamic:
            self.max_batch = int(self.engine.get_tensor_profile_shape(self.input_name, 0)[2][0])
        else:
            self.max_batch = int(shape[0])
        sample = eng.input_shape(spec, 1)[1:]
        full = (self.max_batch, *sample)
        if self.dynamic:
            self.context.set_input_shape(self.input_name, full)
        self.stream = cp.cuda.Stream(non_blocking=True)
        # One device buffer per output at the largest batch; TensorRT writes every output.
        self._outputs: dict[str, Any] = {}
        for n in outputs:
            dt = np.dtype(trt.nptype(self.engine.get_tensor_dtype(n)))
            self._outputs[n] = cp.empty(tuple(self.context.get_tensor_shape(n)), dt)
        self._d_in = cp.empty(full, self.input_dtype)
        self._h_in = cupyx.empty_pinned(full, self.input_dtype)
        out = self._outputs[self.output_name]
        self._h_out = cupyx.empty_pinned(out.shape, out.dtype)
        # Engines are built for the spec's own size only: no portrait twin here.
        self.pre = Preprocessor(spec, orientation="fixed")
        log.info("tensorrt %s on %s: batch 1..%d, input %s", self.engine_path.name, gpu.name,
                 self.max_batch, self.input_dtype)

    # -- device side: used by vbg.gpu.pipeline ----------------------------------
    def run_device(self, x: Any, stream: Any = None) -> Any:
        """Raw model output (CuPy) for a device batch ``x`` of at most ``max_batch``.

        Runs on ``stream`` (default: the backend's). The result is a view of
        the backend's output buffer, valid until the next call.
        """
        cp = self._cp
        stream = stream or self.stream
        n = int(x.shape[0])
        if not 1 <= n <= self.max_batch:
            raise ValueError(f"batch {n} outside 1..{self.max_batch}")
        with stream:
            x = cp.ascontiguousarray(x, dtype=self.input_dtype)
        if self.dynamic:
            self.context.set_input_shape(self.input_name, tuple(x.shape))
        self.context.set_tensor_address(self.input_name, x.data.ptr)
        for name, buf in self._outputs.items():
            self.context.set_tensor_address(name, buf.data.ptr)
        if not self.context.execute_async_v3(stream.ptr):
            raise VbgError(f"TensorRT failed to run {self.engine_path.name}", "run with -vv for TensorRT's log")
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        buf = self._outputs[self.output_name]
        # Batch is the leading axis, so a smaller batch is a prefix of the buffer.
        return buf.ravel()[:int(np.prod(out_shape))].reshape(out_shape)

    # -- host side: the Backend protocol --------------------------------------
    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        """Raw model output for a host batch (any size): pinned copy in, run, pinned copy out."""
        results = []
        for a, b in chunks(int(x.shape[0]), self.max_batch):
            n = b - a
            h_in = self._h_in[:n]
            np.copyto(h_in, x[a:b], casting="same_kind")
            d_in = self._d_in[:n]
            d_in.data.copy_from_host_async(h_in.ctypes.data, h_in.nbytes, self.stream)
            out = self.run_device(d_in, self.stream)
            h_out = self._h_out.reshape(-1)[:out.size].reshape(out.shape)
            out.data.copy_to_host_async(h_out.ctypes.data, out.nbytes, self.stream)
            self.stream.synchronize()
            results.append(h_out.astype(np.float32))  # copies: the pinned buffer is reused
        return results[0] if len(results) == 1 else np.concatenate(results)

    def infer(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        return decode_output(self.spec, self.run_tensor(self.pre(frames)))

    def reset(self) -> None:
        """Stateless: nothing to forget (recurrent models are refused above)."""

    def close(self) -> None:
        if getattr(self, "stream", None) is not None:
            self.stream.synchronize()
        self.context = None
        self.engine = None
        self._outputs = {}
        self._d_in = self._h_in = self._h_out = None
