import numpy as np
import pytest
from conftest import disc_frame

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
    with pytest.raises(VbgError, match="input 'nope' not in ONNX"):
        create_backend(ModelSpec.load(p), "onnxruntime")
    d["input"]["name"] = "input"
    d["output"]["kind"] = "weird"
    p.write_text(json.dumps(d))
    with pytest.raises(VbgError, match="output.kind"):
        ModelSpec.load(p)
