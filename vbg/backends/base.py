"""The backend protocol: every inference engine sits behind this."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..spec import ModelSpec


@runtime_checkable
class Backend(Protocol):
    """Runs a person-segmentation model.

    ``infer`` takes a batch of frames (each ``(H, W, 3)`` uint8 BGR, any
    size; one orientation per batch) and returns ``(N, h, w)`` float32 person
    probabilities in [0, 1] at the model's resolution: ``spec.size``, or its
    portrait twin for portrait frames when the backend honours the spec's
    ``orientation: match``.

    ``device`` is ``"cpu"`` or ``"cuda"`` (where the model's tensors live:
    ``make_pipeline`` keeps frames on the GPU for a ``"cuda"`` backend).
    ``reset()`` forgets recurrent state (a no-op for stateless models).
    """

    name: str
    spec: ModelSpec
    device: str

    def infer(self, frames: Sequence[np.ndarray]) -> np.ndarray: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...
