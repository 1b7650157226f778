"""ONNX Runtime backend: the default, tuned for small CPUs."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from ..errors import VbgError
from ..preprocess import Preprocessor, decode_output
from ..spec import ModelSpec

log = logging.getLogger(__name__)


def default_threads() -> int:
    """Intra-op threads: every core this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    return max(1, min(8, n))


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, spec: ModelSpec, *, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        self.spec = spec
        if not spec.onnx.is_file():
            raise VbgError(f"model file {spec.onnx} not found", "check the spec's onnx path")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = threads or default_threads()
        so.inter_op_num_threads = 1
        # Spinning threads burn the cores that decode/encode need between calls.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        wanted = list(providers) if providers else ["CPUExecutionProvider"]
        use = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(spec.onnx), so, providers=use)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise VbgError(f"cannot load model {spec.onnx}: {str(exc).splitlines()[0]}",
                           "re-export the model or check its spec") from None
        self.providers = self.session.get_providers()
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if spec.input.name not in inputs:
            raise VbgError(f"model {spec.name}: input {spec.input.name!r} not in ONNX "
                           f"(has {', '.join(inputs)})", "fix the spec's input.name")
        if spec.output.name not in outputs:
            raise VbgError(f"model {spec.name}: output {spec.output.name!r} not in ONNX "
                           f"(has {', '.join(outputs)})", "fix the spec's output.name")
        shape = inputs[spec.input.name].shape
        spatial = shape[1:3] if spec.input.layout == "NHWC" else shape[2:4]
        if spec.input.orientation == "match" and all(isinstance(d, int) for d in spatial):
            raise VbgError(f"model {spec.name}: the spec says orientation \"match\" but the ONNX input is fixed "
                           f"at {spatial[1]}x{spatial[0]}", "set input.orientation to \"fixed\" or re-export the model")
        batch_dim = shape[0]
        self.max_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else 0
        self.pre = Preprocessor(spec)
        log.debug("onnxruntime %s on %s, %d threads, batch %s", spec.name, self.providers,
                  so.intra_op_num_threads, self.max_batch or "dynamic")

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        """Raw model call on a preprocessed batch; splits it if the ONNX batch is fixed."""
        if self.max_batch and x.shape[0] != self.max_batch:
            n = self.max_batch
            return np.concatenate([self.run_tensor(x[i:i + n]) for i in range(0, x.shape[0], n)])
        return self.session.run([self.spec.output.name], {self.spec.input.name: x})[0]

    def infer(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        return decode_output(self.spec, self.run_tensor(self.pre(frames)))

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
