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
