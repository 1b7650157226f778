import cv2
import numpy as np
import pytest
from conftest import disc_frame, make_red_model

from vbg.backends import create_backend
from vbg.backends.base import Backend
from vbg.errors import VbgError
from vbg.spec import ModelSpec


def test_red_model_segments_disc(red_model):
    spec = ModelSpec.load(red_model)
    be = create_backend(spec, "onnxruntime")
    assert isinstance(be, Backend)
    frame, gt = disc_frame(320, 240, 160, 120, 60)
    masks = be.infer([frame, frame])
    assert masks.shape == (2, 48, 64) and masks.dtype == np.float32
    assert 0.0 <= masks.min() and masks.max() <= 1.0
    import cv2
    small_gt = cv2.resize(gt.astype(np.uint8), (64, 48), interpolation=cv2.INTER_NEAREST).astype(bool)
    assert masks[0][small_gt].mean() > 0.9
    assert masks[0][~small_gt].mean() < 0.1


def test_peer_runs_through_same_code(peer_spec):
    spec = ModelSpec.load(peer_spec)
    be = create_backend(spec, "onnxruntime")
    frame, _ = disc_frame(640, 480, 320, 240, 100)
    m = be.infer([frame, frame])  # fixed batch-1 ONNX: split internally
    assert m.shape == (2, 256, 256)
    assert np.isfinite(m).all() and m.min() >= 0 and m.max() <= 1


def _masks_match_discs(masks: np.ndarray, frames: list[np.ndarray], gts: list[np.ndarray]) -> None:
    assert masks.shape == (len(frames), 48, 64)
    for m, gt in zip(masks, gts):
        small = cv2.resize(gt.astype(np.uint8), (64, 48), interpolation=cv2.INTER_NEAREST).astype(bool)
        assert m[small].mean() > 0.9 and m[~small].mean() < 0.1


def test_a_fixed_batch_above_one_takes_any_number_of_frames(tmp_path):
    # 3 frames into a batch-2 ONNX: two calls, the last padded, each frame keeping its own mask
    be = create_backend(ModelSpec.load(make_red_model(tmp_path / "b2.onnx", batch=2)), "onnxruntime")
    assert be.max_batch == 2
    pairs = [disc_frame(320, 240, x, 120, 50) for x in (80, 160, 240)]
    frames, gts = [f for f, _ in pairs], [g for _, g in pairs]
    _masks_match_discs(be.infer(frames), frames, gts)
    _masks_match_discs(be.infer(frames[:1]), frames[:1], gts[:1])


def test_a_half_precision_input_is_fed_as_such(tmp_path):
    # the spec says nothing of float16 (its dtype defaults to float32): the ONNX's own input type is fed
    be = create_backend(ModelSpec.load(make_red_model(tmp_path / "h.onnx", input_type="float16")), "onnxruntime")
    frame, gt = disc_frame(320, 240, 160, 120, 60)
    _masks_match_discs(be.infer([frame]), [frame], [gt])


def test_an_unknown_dtype_in_a_spec_is_refused(tmp_path, red_model):
    import json
    d = json.loads(red_model.read_text())
    d["input"]["dtype"] = "fp16"
    with pytest.raises(VbgError, match="dtype 'fp16'") as e:
        ModelSpec.from_dict(d)
    assert "float32, float16" in e.value.fix


def test_a_spec_the_graph_cannot_run_is_one_error_at_load(tmp_path):
    # open sizes in the ONNX's input, but a Reshape inside needs 64x48: the spec's 32x24 passes the graph
    # checks and fails in ORT's test inference -> one VbgError naming the model, not ORT's traceback
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.ones((1, 3, 1, 1), np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["conv"]), helper.make_node("Reshape", ["conv", "shape"], ["mask"])],
        "fixed_inside", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 48, 64])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([1, 1, 48, 64], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    spec = {"onnx": "fixed.onnx", "input": {"name": "input", "width": 32, "height": 24},
            "output": {"name": "mask", "kind": "logits"}}
    (tmp_path / "fixed.json").write_text(json.dumps(spec))
    with pytest.raises(VbgError, match="model fixed: a test inference failed") as e:
        create_backend(ModelSpec.load(tmp_path / "fixed.json"), "onnxruntime")
    assert "\n" not in str(e.value)


def test_bad_spec_names(tmp_path, red_model):
    import json
    d = json.loads(red_model.read_text())
    d["onnx"] = str(red_model.with_suffix(".onnx"))
    d["input"]["name"] = "nope"
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(VbgError, match="input.name 'nope' is not in the ONNX .it has input."):
        create_backend(ModelSpec.load(p), "onnxruntime")
    d["input"]["name"] = "input"
    d["output"]["kind"] = "weird"
    p.write_text(json.dumps(d))
    with pytest.raises(VbgError, match="output.kind"):
        ModelSpec.load(p)


def test_orientation_match_runs_portrait_frames_upright(tmp_path):
    spec = ModelSpec.load(make_red_model(tmp_path / "m.onnx", 64, 48, orientation="match"))
    assert spec.input.orientation == "match"
    be = create_backend(spec, "onnxruntime")
    portrait, gt = disc_frame(240, 320, 120, 200, 50)  # w=240, h=320
    m = be.infer([portrait, portrait])
    assert m.shape == (2, 64, 48)  # the portrait twin of 64x48: not squashed into landscape
    small_gt = cv2.resize(gt.astype(np.uint8), (48, 64), interpolation=cv2.INTER_NEAREST).astype(bool)
    assert m[0][small_gt].mean() > 0.9 and m[0][~small_gt].mean() < 0.1
    landscape, _ = disc_frame(320, 240, 160, 120, 50)
    assert be.infer([landscape]).shape == (1, 48, 64)
    square, _ = disc_frame(200, 200, 100, 100, 50)
    assert be.infer([square]).shape == (1, 48, 64)
    with pytest.raises(ValueError, match="share an orientation"):
        be.infer([portrait, landscape])
    # the same graph with a fixed-orientation spec squashes every frame into 64x48
    fixed = ModelSpec.load(make_red_model(tmp_path / "f.onnx", 64, 48, dynamic_size=True))
    assert create_backend(fixed, "onnxruntime").infer([portrait]).shape == (1, 48, 64)


def test_orientation_match_needs_open_spatial_axes(tmp_path):
    spec = ModelSpec.load(make_red_model(tmp_path / "m.onnx", 64, 48, orientation="match", dynamic_size=False))
    with pytest.raises(VbgError, match="orientation \"match\" but the ONNX input is fixed at 64x48"):
        create_backend(spec, "onnxruntime")


def test_spec_orientation_sizes_and_validation(tmp_path, red_model):
    import json

    from vbg.spec import oriented_size
    assert oriented_size((256, 144), 480, 640) == (144, 256)
    assert oriented_size((256, 144), 640, 480) == (256, 144)
    assert oriented_size((256, 144), 500, 500) == (256, 144)
    assert oriented_size((144, 256), 640, 480) == (256, 144)
    assert oriented_size((256, 256), 480, 640) == (256, 256)
    spec = ModelSpec.load(red_model)
    assert spec.input.orientation == "fixed" and spec.size_for(480, 640) == (64, 48)
    assert spec.size_for(480, 640, "match") == (48, 64)
    d = spec.to_dict()
    assert d["input"]["orientation"] == "fixed"
    d["input"]["orientation"] = "sideways"
    d["onnx"] = str(spec.onnx)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(VbgError, match="input.orientation 'sideways'"):
        ModelSpec.load(p)
