"""Shared fixtures. Core tests make their own data; ../shared is optional."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PEER_SPEC = ROOT / "benchmarks" / "peers" / "mediapipe_selfie.json"

# Colours of the synthetic scene (BGR): the tiny model calls red "person".
PERSON_BGR = (40, 40, 220)
BACKGROUND_BGR = (200, 120, 40)


def make_red_model(path: Path, width: int = 64, height: int = 48, gain: float = 12.0,
                   orientation: str = "fixed", dynamic_size: bool | None = None,
                   layout: str = "NCHW", batch: int | str = "N", input_type: str = "float32") -> Path:
    """A tiny ONNX 'segmentation model': person = pixels where red exceeds blue.

    One 1x1 convolution on RGB in [0, 1]: logit = gain * (R - B). Writes
    ``path`` (.onnx) and its spec beside it; returns the spec path. The
    spatial axes are open when ``dynamic_size`` (default: orientation "match").
    ``layout`` "NHWC" takes and gives channels-last tensors (as MediaPipe's
    models do), by transposes around the same convolution. ``batch``: a
    fixed batch size, or a name for an open one; ``input_type`` "float16"
    makes a model that takes half-precision input (cast to float inside).
    """
    if dynamic_size is None:
        dynamic_size = orientation == "match"
    hw = ["H", "W"] if dynamic_size else [height, width]
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.zeros((1, 3, 1, 1), np.float32)
    w[0, 0], w[0, 2] = gain, -gain
    src = "input"
    nodes = []
    if input_type == "float16":
        nodes.append(helper.make_node("Cast", ["input"], ["input32"], to=TensorProto.FLOAT))
        src = "input32"
    if layout == "NCHW":
        nodes.append(helper.make_node("Conv", [src, "w"], ["mask"]))
        in_shape, out_shape = [batch, 3, *hw], [batch, 1, *hw]
    else:
        nodes += [helper.make_node("Transpose", [src], ["nchw"], perm=[0, 3, 1, 2]),
                  helper.make_node("Conv", ["nchw", "w"], ["conv"]),
                  helper.make_node("Transpose", ["conv"], ["mask"], perm=[0, 2, 3, 1])]
        in_shape, out_shape = [batch, *hw, 3], [batch, *hw, 1]
    elem = TensorProto.FLOAT16 if input_type == "float16" else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "red_is_person",
        [helper.make_tensor_value_info("input", elem, in_shape)],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    spec = {
        "name": path.stem,
        "onnx": path.name,
        "description": "test model: red is person",
        "input": {"name": "input", "width": width, "height": height, "layout": layout,
                  "color": "RGB", "scale": 255.0, "mean": [0, 0, 0], "std": [1, 1, 1],
                  "orientation": orientation},
        "output": {"name": "mask", "kind": "logits", "layout": layout, "person_channel": 0},
    }
    spec_path = path.with_suffix(".json")
    spec_path.write_text(json.dumps(spec))
    return spec_path


@pytest.fixture(scope="session")
def red_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Spec path of the tiny red-is-person model (64x48 input)."""
    return make_red_model(tmp_path_factory.mktemp("models") / "red.onnx")


def disc_frame(w: int, h: int, cx: float, cy: float, r: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A red disc (person) over a textured blue background.

    Returns (frame BGR uint8 (h, w, 3), ground-truth mask bool (h, w)).
    """
    rng = np.random.default_rng(seed)
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = BACKGROUND_BGR
    noise = rng.integers(-25, 26, size=(h, w, 1), dtype=np.int16)
    frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    gt = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    frame[gt] = PERSON_BGR
    return frame, gt


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


@pytest.fixture
def peer_spec() -> Path:
    if not (SHARED / "peers" / "mediapipe_selfie.onnx").is_file():
        pytest.skip("../shared/peers/mediapipe_selfie.onnx is absent")
    return PEER_SPEC
