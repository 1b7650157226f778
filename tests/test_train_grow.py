"""A deeper network starts from a trained shallower one, computing exactly what it computed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from test_train import ARCHS, _cfg  # noqa: E402

SMALL = ARCHS["unet-lite"]  # depths (1, 1, 1, 1)
DEEP = dict(SMALL, depths=(1, 2, 1, 3))  # three new residual blocks


def _trained_like(model):
    """Random weights and BatchNorm statistics, so that no layer is the identity it was built as."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name
                        else torch.randn(t.shape, generator=g))
    return model


def test_grown_network_computes_the_trained_one_and_its_new_blocks_learn() -> None:
    from vbg.train.grow import grow_into
    from vbg.train.models import build_model

    small = _trained_like(build_model("unet-lite", 1, **SMALL))
    big = build_model("unet-lite", 1, **DEEP)
    assert grow_into(small, big) == 3
    x = torch.randn(4, 3, 48, 64)
    with torch.no_grad():
        ref = small.eval()(x)
        assert ref.std() > 0.1  # the output depends on the input
        assert (big.eval()(x) - ref).abs().max() < 1e-5
        assert (big.train()(x) - small.train()(x)).abs().max() < 1e-5  # batch statistics too
    # the new blocks add nothing yet, but their last BatchNorm has a gradient, so one step starts them
    opt = torch.optim.Adam(big.parameters(), lr=1e-3)
    big.train()(x).square().mean().backward()
    opt.step()
    new = [big.encoder.stages[1][1], big.encoder.stages[3][1], big.encoder.stages[3][2]]
    assert all(float(b.body[-1][1].weight.detach().abs().max()) > 0 for b in new)


@pytest.mark.parametrize("other, why", [
    (dict(SMALL, enc_channels=(8, 12, 16, 24, 40)), r"is \(32, 96, 1, 1\) in the trained network, \(40, 96, 1, 1\)"),
    (dict(SMALL, depths=(1, 1, 1)), "has no encoder.stages.3"),  # shallower
    (dict(SMALL, enc_channels=(8, 12, 16, 24, 32, 48), depths=(1, 1, 1, 1, 1),
          dec_channels=(32, 24, 16, 12, 8)), "not new residual blocks"),  # a new stage
    (dict(DEEP, up="nearest"), "does not compute what the trained one does"),  # no weights differ
])
def test_grow_refuses_what_is_not_the_same_network_deeper(other, why) -> None:
    from vbg.train.grow import GrowError, grow_into
    from vbg.train.models import build_model

    with pytest.raises(GrowError, match=why):
        grow_into(build_model("unet-lite", 1, **SMALL), build_model("unet-lite", 1, **other))


def test_trainer_grows_an_exported_model(tmp_path) -> None:
    """--init model.onnx with a deeper --arch-options: the run starts where the exported model is."""
    from test_train_init import _trained_export

    from vbg.train.trainer import train

    samples, onnx_path, _ = _trained_export(tmp_path)
    deep = train(_cfg(tmp_path, out=str(tmp_path / "deep"), epochs=1, lr=1e-8, arch_options=DEEP),
                 samples[:24], samples[24:], progress=False, init=onnx_path)
    cold = train(_cfg(tmp_path, out=str(tmp_path / "cold"), epochs=1, lr=1e-8, arch_options=DEEP),
                 samples[:24], samples[24:], progress=False)
    assert deep["last"]["val_iou"] > 0.5 and deep["last"]["val_iou"] > cold["last"]["val_iou"] + 0.2
    wide = dict(SMALL, enc_channels=(8, 12, 16, 24, 40))
    with pytest.raises(ValueError, match=r"holds a unet-lite model .* \(encoder\S* is \(32, 96, 1, 1\) in the trained"):
        train(_cfg(tmp_path, out=str(tmp_path / "wide"), arch_options=wide), samples[:24], samples[24:],
              progress=False, init=onnx_path)


SUBPIXEL = dict(SMALL, subpixel=True)


def test_a_sub_pixel_head_grows_in_as_zero_and_learns() -> None:
    from vbg.train.grow import grow_into
    from vbg.train.models import build_model

    small = _trained_like(build_model("unet-lite", 1, **SMALL))
    big = build_model("unet-lite", 1, **SUBPIXEL)
    with torch.no_grad():
        big.subpixel.weight.normal_()  # as a checkpoint's would be: grow_into must zero it, not rely on init
        big.subpixel.bias.normal_()
    assert grow_into(small, big) == 1
    x = torch.randn(2, 3, 47, 63)  # odd: the stride-2 map has a cell more, cropped
    with torch.no_grad():
        ref = small.eval()(x)
        assert big.eval()(x).shape == ref.shape == (2, 1, 47, 63)
        assert (big(x) - ref).abs().max() < 1e-5
    opt = torch.optim.Adam(big.parameters(), lr=1e-3)
    big.train()(x).square().mean().backward()
    opt.step()
    assert float(big.subpixel.weight.detach().abs().max()) > 0
    with pytest.raises(ValueError, match="subpixel needs the light variant"):
        build_model("unet", 1, variant="classic", subpixel=True)


def test_a_sub_pixel_head_draws_detail_finer_than_its_output_stride() -> None:
    """One-pixel stripes: bilinear up-sampling of stride-2 logits cannot draw them, the head can."""
    from vbg.train.models import build_model

    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    target = torch.zeros(2, 1, 32, 32)
    target[..., 1::2] = 1.0  # every other column
    losses = {}
    for subpixel in (False, True):
        torch.manual_seed(0)
        model = build_model("unet-lite", 1, **dict(SMALL, subpixel=subpixel)).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(150):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), target)
            loss.backward()
            opt.step()
        with torch.no_grad():
            losses[subpixel] = float(((model.eval()(x) > 0).float() == target).float().mean())
    assert losses[False] < 0.6  # a stride-2 grid cannot place the edges
    assert losses[True] > 0.95


def test_a_sub_pixel_model_exports_and_starts_a_run_from_its_onnx(tmp_path) -> None:
    from test_train import _synthetic_samples

    from vbg.train.export import export_checkpoint
    from vbg.train.models import build_model
    from vbg.train.onnx_init import load_onnx_weights
    from vbg.train.trainer import calibration_inputs, train

    samples = _synthetic_samples(28)
    cfg = _cfg(tmp_path, epochs=2, arch_options=SUBPIXEL, meta={"val_percent": 15.0, "test_percent": 15.0})
    train(cfg, samples[:24], samples[24:], progress=False)
    res = export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "m.onnx", fp16=False)  # checked against torch
    assert json.loads(Path(res["spec"]).read_text())["training"]["arch_options"]["subpixel"] is True
    model = build_model("unet-lite", 1, **SUBPIXEL)
    assert load_onnx_weights(model, tmp_path / "m.onnx", calibration_inputs(samples[:24], (64, 48), cfg)) < 1e-4
