"""ONNX Runtime backend: the default, tuned for small CPUs, and the door to
other accelerators through ONNX Runtime's execution providers.

At load the spec is checked against the ONNX graph (names, rank, layout,
fixed sizes, the person channel) and one inference on a grey frame checks
the output's shape and value range against the spec's ``output.kind``, so a
wrong spec is refused in one line naming the field, instead of giving an
all-background video.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import VbgError
from ..spec import ModelSpec
from ..stages.preprocess import Preprocessor, decode_output

log = logging.getLogger(__name__)

# ONNX element types an image or a state tensor may have, and the numpy type fed to them
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


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
                 providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
                 check: bool = True) -> None:
        self.spec = spec
        if not spec.onnx.is_file():
            raise VbgError(f"model file {spec.onnx} not found", "check the spec's onnx path")
        import onnxruntime as ort  # loaded with the first session, not with the CLI

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = threads or default_threads()
        so.inter_op_num_threads = 1
        so.log_severity_level = 3  # ORT's own warnings (e.g. unused initialisers) are not the user's business
        # Spinning threads burn the cores that decode/encode need between calls.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        use = list(providers) if providers else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(spec.onnx), so, providers=use)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise VbgError(f"cannot load model {spec.onnx}: {str(exc).splitlines()[0]}",
                           "re-export the model or check its spec") from None
        self.providers = self.session.get_providers()
        cuda = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}
        self.device = "cuda" if self.providers and self.providers[0] in cuda else "cpu"
        self._check_graph()
        self.pre = Preprocessor(spec)
        self._state: dict[str, np.ndarray] = {}
        self.reset()
        if check:
            self._check_output()
        log.debug("onnxruntime %s on %s, %d threads, batch %s", spec.name, self.providers,
                  so.intra_op_num_threads, self.max_batch or "dynamic")

    # -- load-time checks ----------------------------------------------------------
    def _check_graph(self) -> None:
        spec, where = self.spec, f"model {self.spec.name}"
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if spec.input.name not in inputs:
            raise VbgError(f"{where}: input.name {spec.input.name!r} is not in the ONNX "
                           f"(it has {', '.join(inputs)})", "fix the spec's input.name")
        if spec.output.name not in outputs:
            raise VbgError(f"{where}: output.name {spec.output.name!r} is not in the ONNX "
                           f"(it has {', '.join(outputs)})", "fix the spec's output.name")
        for st in spec.state:
            if st.input not in inputs or st.output not in outputs:
                raise VbgError(f"{where}: state {st.input} -> {st.output} is not in the ONNX",
                               "fix the spec's state names")
        extra = set(inputs) - {spec.input.name} - {st.input for st in spec.state}
        if extra:
            raise VbgError(f"{where}: the ONNX has inputs the spec does not feed: {', '.join(sorted(extra))}",
                           "list recurrent inputs under the spec's state")
        # Fed in the ONNX's own float type, whatever the spec's dtype says (a peer's spec may be loose).
        self._types: dict[str, type[np.floating[Any]]] = {}
        for name in [spec.input.name] + [st.input for st in spec.state]:
            t = _FLOAT_TYPES.get(inputs[name].type)
            if t is None:
                raise VbgError(f"{where}: the ONNX input {name!r} is {inputs[name].type}",
                               "use a model that takes float32 or float16 input")
            self._types[name] = t
        shape = inputs[spec.input.name].shape
        if len(shape) != 4:
            raise VbgError(f"{where}: the ONNX input has rank {len(shape)}, the spec's layout "
                           f"{spec.input.layout} needs 4", "fix the spec's input.layout")
        chan = shape[1] if spec.input.layout == "NCHW" else shape[3]
        if isinstance(chan, int) and chan != 3:
            other = "NHWC" if spec.input.layout == "NCHW" else "NCHW"
            raise VbgError(f"{where}: input.layout {spec.input.layout} puts {chan} channels where the colour "
                           f"goes", f"fix the spec's input.layout (probably {other})")
        spatial = shape[2:4] if spec.input.layout == "NCHW" else shape[1:3]
        if all(isinstance(d, int) for d in spatial) and tuple(spatial) != (spec.input.height, spec.input.width):
            raise VbgError(f"{where}: input.width x input.height is {spec.input.width}x{spec.input.height}, "
                           f"the ONNX takes {spatial[1]}x{spatial[0]}", "fix the spec's input size")
        if spec.input.orientation == "match" and all(isinstance(d, int) for d in spatial):
            raise VbgError(f"{where}: the spec says orientation \"match\" but the ONNX input is fixed "
                           f"at {spatial[1]}x{spatial[0]}", "set input.orientation to \"fixed\" or re-export the model")
        out_rank = len(outputs[spec.output.name].shape)
        if out_rank not in (3, 4):
            raise VbgError(f"{where}: the ONNX output has rank {out_rank}", "use a model with an (N, C, H, W) "
                           "or (N, H, W, C) mask output")
        batch_dim = shape[0]
        self.max_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else 0

    def _check_output(self) -> None:
        """One inference on a noise frame: the output must have the layout and value range the spec says."""
        spec, o, where = self.spec, self.spec.output, f"model {self.spec.name}"
        frame = np.random.default_rng(0).integers(0, 256, (spec.input.height, spec.input.width, 3), dtype=np.uint8)
        try:
            raw = np.asarray(self.run_tensor(self.pre([frame])), np.float32)
        except Exception as exc:  # ORT's own error types: the graph cannot run what the spec describes
            raise VbgError(f"{where}: a test inference failed: {str(exc).splitlines()[0]}",
                           "check the spec's input size and layout against the model") from None
        self.reset()
        if raw.ndim == 3:
            raw = raw[:, None] if o.layout == "NCHW" else raw[..., None]
        if raw.ndim != 4:
            raise VbgError(f"{where}: the output has rank {raw.ndim}", "use a model with a mask output")
        chans = raw.shape[1] if o.layout == "NCHW" else raw.shape[3]
        spatial = raw.shape[2:4] if o.layout == "NCHW" else raw.shape[1:3]
        if min(spatial) < 4 or chans > 64:
            other = "NHWC" if o.layout == "NCHW" else "NCHW"
            raise VbgError(f"{where}: output.layout {o.layout} reads the output {tuple(raw.shape)} as "
                           f"{chans} channels of {spatial[1]}x{spatial[0]}", f"fix the spec's output.layout "
                           f"(probably {other})")
        if not 0 <= o.person_channel < chans:
            raise VbgError(f"{where}: output.person_channel {o.person_channel} is out of range: the output has "
                           f"{chans} channel{'s' if chans != 1 else ''}", f"use 0..{chans - 1}")
        if o.kind in ("probability", "softmax") and (raw.min() < -1e-3 or raw.max() > 1 + 1e-3):
            raise VbgError(f"{where}: output.kind {o.kind!r} but the output runs from {raw.min():.3g} to "
                           f"{raw.max():.3g}", "set output.kind to \"logits\" (or \"softmax_logits\")")
        if o.kind in ("softmax", "softmax_logits") and chans < 2:
            raise VbgError(f"{where}: output.kind {o.kind!r} needs 2 or more channels, the output has {chans}",
                           "set output.kind to \"probability\" or \"logits\"")
        if not np.isfinite(raw).all():
            raise VbgError(f"{where}: the output holds NaN or infinity on a test frame", "check the model")

    # -- running -------------------------------------------------------------------
    def reset(self) -> None:
        """Recurrent state back to zeros (a new clip or scene)."""
        self._state = {st.input: np.zeros(st.shape, self._types[st.input]) for st in self.spec.state}

    def _run(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(self._types[self.spec.input.name], copy=False)
        if not self.spec.state:
            return self.session.run([self.spec.output.name], {self.spec.input.name: x})[0]
        outs = []
        names = [self.spec.output.name] + [st.output for st in self.spec.state]
        for i in range(x.shape[0]):  # recurrent: one frame at a time, each feeding the next
            res = self.session.run(names, {self.spec.input.name: x[i:i + 1], **self._state})
            outs.append(res[0])
            self._state = {st.input: r for st, r in zip(self.spec.state, res[1:])}
        return np.concatenate(outs)

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        """Raw model call on a preprocessed batch; split, and the last part padded, if the ONNX batch is fixed."""
        n = self.max_batch
        if not n or x.shape[0] == n:
            return self._run(x)
        outs = []
        for i in range(0, x.shape[0], n):
            part = x[i:i + n]
            if len(part) < n:  # pad with copies of the last frame; their outputs are dropped
                part = np.concatenate([part, np.repeat(part[-1:], n - len(part), axis=0)])
            outs.append(self._run(part)[:len(x) - i])
        return np.concatenate(outs)

    def infer(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        return decode_output(self.spec, self.run_tensor(self.pre(frames)))

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
