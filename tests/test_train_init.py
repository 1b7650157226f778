"""Training from an exported ONNX model, and background crops of labelled photos as negatives."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from test_train import ARCHS, _cfg, _synthetic_samples  # noqa: E402

from vbg.errors import VbgError  # noqa: E402
from vbg.train.data import Sample  # noqa: E402


def _trained_export(tmp_path, epochs: int = 3):
    from vbg.train.export import export_checkpoint
    from vbg.train.trainer import train

    samples = _synthetic_samples(28)
    train(_cfg(tmp_path, epochs=epochs), samples[:24], samples[24:], progress=False)
    res = export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "m.onnx", fp16=False)
    return samples, tmp_path / "m.onnx", res


def test_onnx_start_reproduces_the_exported_model_and_trains_on(tmp_path) -> None:
    """The exporter folds BatchNorm away; --init model.onnx gets it back, calibrated, so the network in eval
    mode is the ONNX function and in training mode starts near it."""
    import onnxruntime as ort

    from vbg.train.models import build_model
    from vbg.train.onnx_init import load_onnx_weights
    from vbg.train.trainer import calibration_inputs, load_trained, train

    samples, onnx_path, _ = _trained_export(tmp_path)
    cfg = _cfg(tmp_path)
    calib = calibration_inputs(samples[:24], (64, 48), cfg)
    torch.manual_seed(5)
    model = build_model("unet-lite", 1, **ARCHS["unet-lite"])
    assert load_onnx_weights(model, onnx_path, calib) < 1e-4
    x = torch.randn(3, 3, 48, 64)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = sess.run(None, {"input": x.numpy()})[0]
        assert np.abs(model.eval()(x).numpy() - ref).max() < 1e-4
        # batch statistics of the calibration images are the running ones: train mode gives the same logits
        assert (model.train()(calib) - model.eval()(calib)).abs().max() < 1e-3
    # every BatchNorm got statistics of its own (not the identity it starts as)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(float((b.running_var - 1).abs().max()) > 1e-3 for b in bns)

    # through the trainer: at a negligible learning rate the run starts where the exported model is,
    # a run from scratch does not
    orig = load_trained(tmp_path / "run" / "best.pt")[0]
    warm = train(_cfg(tmp_path, out=str(tmp_path / "warm"), epochs=1, lr=1e-8), samples[:24], samples[24:],
                 progress=False, init=onnx_path)
    cold = train(_cfg(tmp_path, out=str(tmp_path / "cold"), epochs=1, lr=1e-8), samples[:24], samples[24:],
                 progress=False)
    assert warm["last"]["val_iou"] > 0.5 and warm["last"]["val_iou"] > cold["last"]["val_iou"] + 0.2
    started = load_trained(tmp_path / "warm" / "final.pt")[0]
    with torch.no_grad():
        assert (started(x) - orig(x)).abs().max() < 0.05 * float(orig(x).abs().max())


def test_onnx_start_refuses_another_network(tmp_path) -> None:
    from vbg.train.models import build_model
    from vbg.train.onnx_init import load_onnx_weights
    from vbg.train.trainer import train

    samples, onnx_path, _ = _trained_export(tmp_path, epochs=1)
    # another architecture in the spec: the trainer's network check
    with pytest.raises(ValueError, match="holds a unet-lite model"):
        train(_cfg(tmp_path, out=str(tmp_path / "o"), arch="fcn8s", arch_options=ARCHS["fcn8s"]),
              samples[:24], samples[24:], progress=False, init=onnx_path)
    # the same name but other widths (a spec that lies): the convolutions' shapes
    wider = dict(ARCHS["unet-lite"], enc_channels=(8, 12, 16, 24, 40))
    with pytest.raises(VbgError, match="convolution"):
        load_onnx_weights(build_model("unet-lite", 1, **wider), onnx_path, torch.randn(2, 3, 48, 64))
    onnx_path.with_suffix(".json").unlink()
    with pytest.raises(VbgError, match="no spec beside it"):
        train(_cfg(tmp_path, out=str(tmp_path / "p")), samples[:24], samples[24:], progress=False, init=onnx_path)


def test_largest_free_rectangle() -> None:
    from vbg.train.bgcrops import largest_free_rectangle

    free = np.ones((10, 20), bool)
    free[:, 8] = False  # a wall: the right part (11 wide) beats the left (8)
    assert largest_free_rectangle(free) == (9, 0, 11, 10)
    free[6:, 9:] = False
    # left 8x10 = 80 against right 11x6 = 66
    assert largest_free_rectangle(free) == (0, 0, 8, 10)
    assert largest_free_rectangle(np.zeros((4, 4), bool))[2:] == (0, 0)
    rng = np.random.default_rng(0)
    for _ in range(20):  # against brute force
        g = rng.random((7, 9)) > 0.3
        x, y, w, h = largest_free_rectangle(g)
        best = max((int((x1 - x0) * (y1 - y0)) for y0 in range(7) for y1 in range(y0 + 1, 8)
                    for x0 in range(9) for x1 in range(x0 + 1, 10) if g[y0:y1, x0:x1].all()), default=0)
        assert w * h == best and (w == 0 or g[y:y + h, x:x + w].all())


class _FakeTeacher:
    """Stands in for MediaPipe: calls 'person' every pixel redder than it is blue."""

    def infer(self, frames):
        return np.stack([(f[..., 2].astype(int) - f[..., 0] > 60).astype(np.float32) for f in frames])


def test_background_crops_hold_no_labelled_and_no_unlabelled_person() -> None:
    from vbg.train.bgcrops import background_crops

    h, w = 120, 200
    img = np.full((h, w, 3), (200, 120, 40), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[10:110, 20:70] = 255  # the labelled person on the left
    img[10:110, 20:70] = (40, 40, 220)
    plain = Sample(img.copy(), mask.copy(), "syn/plain")
    # the same photo with an unlabelled red bystander in the free part
    crowd_img = img.copy()
    crowd_img[40:80, 150:170] = (40, 40, 220)
    crowd = Sample(crowd_img, mask.copy(), "syn/crowd")
    tiny = Sample(img.copy(), np.full((h, w), 255, np.uint8), "syn/full")  # no room for a crop
    out = background_crops([plain, crowd, tiny], [_FakeTeacher()])
    assert [s.key for s in out] == ["bgcrop/syn/plain"]
    crop = out[0]
    assert crop.image.shape[0] >= 100 and crop.image.shape[1] >= 100 and not crop.mask.any()
    # the crop lies right of the person and its dilation margin: no person colour in it
    assert not (crop.image[..., 2] > 150).any()
    assert background_crops([crowd], [])[0].key == "bgcrop/syn/crowd"  # without teachers nothing is checked


def test_bg_crops_flag_needs_a_teacher(tmp_path, capsys) -> None:
    from vbg.apps import cli

    rc = cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--bg-crops"])
    err = capsys.readouterr().err
    assert rc == 2 and "--bg-crops needs a --teacher" in err and err.count("\n") == 1
