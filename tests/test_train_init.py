"""Training from an exported ONNX model, and background crops of labelled photos as negatives."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from test_train import ARCHS, _cfg, _synthetic_samples  # noqa: E402

from vbg.assets import bundled_models_dir  # noqa: E402
from vbg.errors import VbgError  # noqa: E402
from vbg.train.data import Sample  # noqa: E402


def _trained_export(tmp_path, epochs: int = 3):
    from vbg.train.export import export_checkpoint
    from vbg.train.trainer import train

    samples = _synthetic_samples(28)
    train(_cfg(tmp_path, epochs=epochs, meta={"val_percent": 15.0, "test_percent": 15.0}), samples[:24],
          samples[24:], progress=False)
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
    scratch = load_trained(tmp_path / "cold" / "final.pt")[0]
    with torch.no_grad():
        # the epoch in training mode moves the BatchNorm statistics toward its augmented batches': a drift
        # of about 4-5 % of the largest logit on these inputs, far from where a run from scratch starts
        drift = float((started(x) - orig(x)).abs().max())
        assert drift < 0.1 * float(orig(x).abs().max())
        assert drift < 0.2 * float((scratch(x) - orig(x)).abs().max())


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
    with pytest.raises(VbgError, match=r"Conv \d+ is \(32, 96, 1, 1\), this network.s \(40, 96, 1, 1\)"):
        load_onnx_weights(build_model("unet-lite", 1, **wider), onnx_path, torch.randn(2, 3, 48, 64))
    onnx_path.with_suffix(".json").unlink()
    with pytest.raises(VbgError, match="no spec beside it"):
        train(_cfg(tmp_path, out=str(tmp_path / "p")), samples[:24], samples[24:], progress=False, init=onnx_path)


@pytest.mark.parametrize("key", ["unet-lite", "unet-transpose", "deeplabv3", "deeplabv3-resnet", "fcdensenet",
                                 "fcn8s", "fcn8s-bilinear"])
def test_onnx_start_for_every_architecture(key: str, tmp_path) -> None:
    """Folded and unfolded BatchNorms (the Tiramisu's come before their convolution), transposed convolutions:
    every architecture's export loads back into its network exactly."""
    from test_train import _build

    from vbg.train.export import export_onnx
    from vbg.train.onnx_init import load_onnx_weights

    src = _build(key)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # statistics of a trained network, so the folding is not the identity
        for m in src.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    path = export_onnx(src, tmp_path / "m.onnx", (64, 48))
    torch.manual_seed(7)
    dst = _build(key)
    for p in dst.parameters():  # nothing left over from the source by chance
        torch.nn.init.normal_(p)
    assert load_onnx_weights(dst, path, torch.randn(8, 3, 48, 64)) < 1e-3
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        assert torch.allclose(dst.eval()(x), src.eval()(x), atol=1e-3, rtol=1e-3)


def test_train_cli_onnx_init_errors_are_one_line_and_early(tmp_path, capsys) -> None:
    """A broken --init model is refused before any data is read (no --data folder exists here)."""
    from vbg.apps import cli

    def run(*extra: str) -> str:
        rc = cli.main(["train", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "r"), *extra])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        return err

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all \xff\xfe" * 50)
    assert "has no spec beside it" in run("--init", str(bad))
    bad.with_suffix(".json").write_text('["a list"]')
    assert "no training.arch" in run("--init", str(bad))
    bad.with_suffix(".json").write_bytes(b"\xff\xfe{")
    assert "cannot read" in run("--init", str(bad))
    bad.with_suffix(".json").write_text('{"training": {"arch": "unet-lite", "num_classes": "x"}}')
    assert "malformed" in run("--init", str(bad))
    bad.with_suffix(".json").write_text('{"training": {"arch": "unet-lite"}}')
    assert "invalid model spec" in run("--init", str(bad))  # no input size to calibrate at
    spec = json.loads((bundled_models_dir() / "unet-lite-m.json").read_text())
    bad.with_suffix(".json").write_text(json.dumps({**spec, "onnx": bad.name}))
    assert "is not an ONNX model" in run("--init", str(bad))
    assert "not class maps" in run("--bg-crops", "--teacher", "t.json", "--format", "pet")
    shipped = str(bundled_models_dir() / "unet-lite-m.onnx")
    assert "holds a unet-lite-m model" in run("--arch", "fcn8s", "--init", shipped)
    assert "only the depth may differ" in run("--arch-options", '{"enc_channels": [16, 24, 48, 80, 200]}',
                                              "--arch", "unet-lite-m", "--init", shipped)


def test_onnx_start_refuses_a_model_of_another_split(tmp_path) -> None:
    """Weights trained with another validation/test split would be validated partly on their own training
    images."""
    import json

    from vbg.train.trainer import train

    samples, onnx_path, _ = _trained_export(tmp_path, epochs=1)
    spec = json.loads(onnx_path.with_suffix(".json").read_text())
    spec["training"]["split"] = {"val_percent": 20.0, "test_percent": 15.0}
    onnx_path.with_suffix(".json").write_text(json.dumps(spec))
    cfg = _cfg(tmp_path, out=str(tmp_path / "s"), meta={"val_percent": 15.0, "test_percent": 15.0})
    with pytest.raises(ValueError, match="--val-percent 20 --test-percent 15, this run has 15 and 15"):
        train(cfg, samples[:24], samples[24:], progress=False, init=onnx_path)
    # the checkpoint route is checked the same way
    ck_cfg = _cfg(tmp_path, out=str(tmp_path / "t"), meta={"val_percent": 10.0, "test_percent": 15.0})
    with pytest.raises(ValueError, match="trained with --val-percent"):
        train(ck_cfg, samples[:24], samples[24:], progress=False, init=tmp_path / "run" / "best.pt")


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
