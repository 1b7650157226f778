"""Training code: every architecture builds, learns, and exports faithfully."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import disc_frame  # noqa: E402

from vbg.train.data import Sample  # noqa: E402
from vbg.train.losses import SegLoss, boundary_band  # noqa: E402
from vbg.train.models import build_model  # noqa: E402

# small widths so every architecture trains in a second or two
ARCHS = {
    "unet-lite": {"enc_channels": (8, 12, 16, 24, 32), "dec_channels": (24, 16, 12, 8), "depths": (1, 1, 1, 1)},
    "unet-transpose": {"enc_channels": (8, 16, 32), "up": "transpose"},
    "unet-bilinear": {"enc_channels": (8, 16, 32), "up": "bilinear"},
    "unet-nearest": {"enc_channels": (8, 16, 32), "up": "nearest"},
    "unet-unpool": {"enc_channels": (8, 16, 32), "up": "unpool"},
    "deeplabv3": {"rates": (1, 2, 3), "aspp_channels": 16, "channels": (8, 12, 16, 24, 32), "depths": (1, 1, 1, 1)},
    "deeplabv3-os8": {"rates": (1, 2, 3), "aspp_channels": 16, "channels": (8, 12, 16, 24, 32),
                      "depths": (1, 1, 1, 1)},
    "deeplabv3-resnet": {"backbone": "resnet", "rates": (1, 2, 3), "aspp_channels": 16,
                         "channels": (8, 12, 16, 24, 32), "depths": (1, 1, 1, 1)},
    "fcdensenet": {"preset": None, "down": (2, 2, 2), "bottleneck": 2, "growth": 6, "stem_channels": 12,
                   "dropout": 0.0},
    "fcn8s": {"widths": (8, 12, 16, 24, 32), "convs": (1, 1, 1, 1, 1), "fc_channels": 32, "dropout": 0.0},
    "fcn8s-bilinear": {"widths": (8, 12, 16, 24, 32), "convs": (1, 1, 1, 1, 1), "fc_channels": 32,
                       "up": "bilinear", "dropout": 0.0},
}


def _build(key: str, num_classes: int = 1) -> torch.nn.Module:
    arch = {"unet-transpose": "unet", "unet-bilinear": "unet", "unet-nearest": "unet", "unet-unpool": "unet",
            "deeplabv3-resnet": "deeplabv3", "fcdensenet": "fcdensenet56", "fcn8s-bilinear": "fcn8s"}.get(key, key)
    torch.manual_seed(0)
    return build_model(arch, num_classes, **ARCHS[key])


def _disc_batch(n: int, w: int = 64, h: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(n):
        f, gt = disc_frame(w, h, rng.uniform(18, w - 18), rng.uniform(14, h - 14), rng.uniform(8, 14), seed=seed + i)
        xs.append(torch.from_numpy(f[..., ::-1].copy()).permute(2, 0, 1).float() / 127.5 - 1)
        ys.append(torch.from_numpy(gt.astype(np.float32))[None])
    return torch.stack(xs), torch.stack(ys)


def _iou(logits: torch.Tensor, y: torch.Tensor) -> float:
    p, g = logits > 0, y > 0.5
    return float((p & g).sum() / (p | g).sum().clamp(min=1))


@pytest.mark.parametrize("key", list(ARCHS))
def test_forward_sizes(key: str) -> None:
    model = _build(key, num_classes=3).eval()
    with torch.no_grad():
        for h, w in [(48, 64), (64, 64), (37, 50), (72, 128)]:
            assert model(torch.randn(2, 3, h, w)).shape == (2, 3, h, w)


@pytest.mark.parametrize("key", list(ARCHS))
def test_overfits_tiny_set(key: str) -> None:
    torch.set_num_threads(2)
    model = _build(key)
    x, y = _disc_batch(4)
    loss_fn = SegLoss(1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    # IoU with batch statistics: 30 steps are too few for BatchNorm's running averages
    with torch.no_grad():
        iou0 = _iou(model(x), y)
    losses = []
    for _ in range(30):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        iou1 = _iou(model(x), y)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])
    assert iou1 > max(iou0 + 0.2, 0.5), (iou0, iou1)


@pytest.mark.parametrize("key", list(ARCHS))
def test_onnx_matches_torch(key: str, tmp_path) -> None:
    from vbg.train.export import check_export, export_onnx

    model = _build(key, num_classes=2).eval()
    # non-trivial BatchNorm statistics, as after training
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    path = export_onnx(model, tmp_path / f"{key}.onnx", (80, 48))
    assert check_export(model, path, (80, 48)) < 1e-3


def test_unpool_needs_classic_encoder() -> None:
    with pytest.raises(ValueError):
        build_model("unet-lite", 1, up="unpool")


def test_tiramisu_presets_match_paper() -> None:
    # parameter counts from Jégou et al. 2017 (Table 2): 1.5 M, 3.5 M, 9.4 M
    counts = {p: sum(t.numel() for t in build_model(f"fcdensenet{p}", 11).parameters()) for p in (56, 67, 103)}
    assert 1.3e6 < counts[56] < 1.6e6
    assert 3.3e6 < counts[67] < 3.7e6
    assert 9.0e6 < counts[103] < 9.6e6


def test_boundary_band_marks_edges() -> None:
    m = torch.zeros(1, 1, 20, 20)
    m[..., 5:15, 5:15] = 1
    band = boundary_band(m, 3)[0, 0]
    assert band[5, 10] == 1 and band[4, 10] == 1 and band[10, 10] == 0 and band[0, 0] == 0


def _synthetic_samples(n: int, w: int = 96, h: int = 72, classes: int = 1) -> list[Sample]:
    out = []
    rng = np.random.default_rng(1)
    for i in range(n):
        f, gt = disc_frame(w, h, rng.uniform(30, w - 30), rng.uniform(25, h - 25), rng.uniform(14, 20), seed=i)
        if classes == 1:
            mask = np.where(gt, 255, 0).astype(np.uint8)
        else:  # trimap classes: 0 = object, 1 = background, 2 = border
            import cv2
            g = gt.astype(np.uint8)
            edge = cv2.morphologyEx(g, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
            mask = np.where(gt, 0, 1).astype(np.uint8)
            mask[edge] = 2
        out.append(Sample(f, mask, f"syn/{i}"))
    return out


def _cfg(tmp_path, **kw):
    from vbg.train.trainer import TrainConfig

    base = dict(out=str(tmp_path / "run"), arch="unet-lite", arch_options=ARCHS["unet-lite"], sizes=[(64, 48)],
                val_size=(64, 48), batch=4, epochs=3, lr=1e-2, workers=0, ema=0.0,
                augment={"paste_p": 0.0, "whole_p": 1.0, "rotate": 0.0, "color_p": 0.0, "blur_p": 0.0,
                         "noise_p": 0.0, "jpeg_p": 0.0})
    base.update(kw)
    return TrainConfig(**base)


def test_trainer_writes_log_checkpoints_and_resumes(tmp_path) -> None:
    from vbg.train.trainer import load_trained, train

    # 6 steps an epoch: enough for BatchNorm's running statistics to settle by epoch 4
    samples = _synthetic_samples(28)
    cfg = _cfg(tmp_path, epochs=4)
    res = train(cfg, samples[:24], samples[24:], progress=False)
    run = tmp_path / "run"
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert len(rows) == 4 and res["epochs"] == 4
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert float(rows[-1]["val_iou"]) > 0.5
    assert (run / "curves.png").stat().st_size > 1000
    for name in ("best.pt", "last.pt", "final.pt"):
        assert (run / name).is_file()
    model, conf = load_trained(run / "best.pt")
    assert conf["arch"] == "unet-lite"
    # resume: two more epochs continue the same log
    cfg2 = _cfg(tmp_path, epochs=6)
    res2 = train(cfg2, samples[:24], samples[24:], resume=True, progress=False)
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(6)) and res2["epochs"] == 6
    # init: a new run from best.pt's weights with a fresh schedule; at a negligible learning rate it
    # starts where that run ended, while the same run from scratch does not
    warm = train(_cfg(tmp_path, out=str(tmp_path / "warm"), epochs=1, lr=1e-8), samples[:24], samples[24:],
                 progress=False, init=run / "best.pt")
    cold = train(_cfg(tmp_path, out=str(tmp_path / "cold"), epochs=1, lr=1e-8), samples[:24], samples[24:],
                 progress=False)
    assert warm["last"]["val_iou"] > 0.5 and warm["last"]["val_iou"] > cold["last"]["val_iou"] + 0.2
    assert (tmp_path / "warm" / "log.csv").read_text().count("\n") <= 2  # its own log, one epoch
    with pytest.raises(ValueError, match="holds a unet-lite model"):
        train(_cfg(tmp_path, out=str(tmp_path / "other"), arch="fcn8s", arch_options=ARCHS["fcn8s"]),
              samples[:24], samples[24:], progress=False, init=run / "best.pt")
    with pytest.raises(ValueError, match="with 1 classes"):  # a trimap run cannot start from a binary one
        train(_cfg(tmp_path, out=str(tmp_path / "trimap"), num_classes=3),
              samples[:24], samples[24:], progress=False, init=run / "best.pt")
    # several checkpoints: the run starts from their weight average (at lr ~0 it stays there)
    from vbg.train.trainer import load_average
    both = [run / "best.pt", tmp_path / "cold" / "final.pt"]  # trained, and nearly untrained
    train(_cfg(tmp_path, out=str(tmp_path / "avg"), epochs=1, lr=0.0, ema=0.0), samples[:24], samples[24:],
          progress=False, init=both)
    started, soup = load_trained(tmp_path / "avg" / "final.pt")[0].state_dict(), load_average(both)[0].state_dict()
    weights = [k for k in soup if soup[k].is_floating_point() and "running" not in k]
    assert all(torch.allclose(started[k], soup[k], atol=1e-6) for k in weights)
    trained = load_trained(run / "best.pt")[0].state_dict()
    assert not all(torch.allclose(trained[k], soup[k], atol=1e-3) for k in weights)
    with pytest.raises(ValueError, match="holds a unet-lite model"):
        train(_cfg(tmp_path, out=str(tmp_path / "other2"), arch="fcn8s", arch_options=ARCHS["fcn8s"]),
              samples[:24], samples[24:], progress=False, init=both)


def test_trainer_is_reproducible(tmp_path) -> None:
    from vbg.train.trainer import train

    samples = _synthetic_samples(8)
    a = train(_cfg(tmp_path / "a", epochs=1), samples[:6], samples[6:], progress=False)
    b = train(_cfg(tmp_path / "b", epochs=1), samples[:6], samples[6:], progress=False)
    assert math.isclose(a["last"]["train_loss"], b["last"]["train_loss"], rel_tol=1e-5)


def test_trimap_training_multiclass(tmp_path) -> None:
    """Oxford-IIIT Pet layout (trimaps 1/2/3) -> 3-class training runs and learns."""
    import cv2

    from vbg.train.datasets import load_dataset
    from vbg.train.trainer import train

    root = tmp_path / "pets"
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    for i, s in enumerate(_synthetic_samples(32, classes=3)):
        cv2.imwrite(str(root / "images" / f"pet_{i}.jpg"), s.image)
        cv2.imwrite(str(root / "annotations" / "trimaps" / f"pet_{i}.png"), s.mask + 1)
    splits = load_dataset("pet", [root], num_classes=3, val_percent=25, test_percent=0)
    train_s, val_s = splits["train"], splits["val"]
    assert len(train_s) + len(val_s) == 32 and val_s
    assert set(np.unique(train_s[0].mask)) <= {0, 1, 2}
    cfg = _cfg(tmp_path, num_classes=3, epochs=5)
    res = train(cfg, train_s, val_s, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert res["best_score"] > 0.3  # the validation IoU: no people-free scenes here


def test_coco_polygons_rasterise(tmp_path) -> None:
    import json

    import cv2

    from vbg.train.datasets import load_dataset

    (tmp_path / "images").mkdir()
    img = np.full((60, 80, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), img)
    ann = {"images": [{"id": 1, "file_name": "a.jpg", "width": 80, "height": 60}],
           "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
           "annotations": [{"image_id": 1, "category_id": 1, "segmentation": [[10, 10, 30, 10, 30, 40, 10, 40]]},
                           {"image_id": 1, "category_id": 2, "segmentation": [[50, 10, 70, 10, 70, 30]]}]}
    (tmp_path / "instances.json").write_text(json.dumps(ann))
    tr = load_dataset("coco", [tmp_path], val_percent=0, test_percent=0)["train"]
    m = tr[0].mask
    assert m[25, 20] == 255 and m[20, 60] == 0 and m[5, 5] == 0
    assert abs((m > 0).sum() - 21 * 31) < 40


def test_augmentation_keeps_mask_aligned() -> None:
    """The red disc stays exactly under its mask after warps, flips and copy-paste."""
    from vbg.train.augment import AugmentConfig, make_example

    samples = _synthetic_samples(6, 160, 120)
    cfg = AugmentConfig(color_p=0.0, blur_p=0.0, noise_p=0.0, jpeg_p=0.0)
    rng = np.random.default_rng(0)
    agree = []
    for i in range(30):
        img, mask, weight = make_example(samples, i % 6, (96, 64), rng, cfg)
        assert weight is None  # labelled: every pixel taught
        assert img.shape == (64, 96, 3) and mask.shape == (64, 96)
        red = (img[..., 2].astype(int) - img[..., 0].astype(int)) > 60
        m = mask > 127
        if m.sum() > 30:
            agree.append((red & m).sum() / (red | m).sum())
    assert np.median(agree) > 0.8


def test_fixed_split_by_name() -> None:
    from vbg.train.data import is_val, split_of

    keys = [f"src/{i:04d}" for i in range(4000)]
    val = [k for k in keys if is_val(k)]
    assert 0.12 < len(val) / len(keys) < 0.18
    assert val == [k for k in keys if is_val(k)]  # stable
    parts = [split_of(k) for k in keys]
    test = {k for k, p in zip(keys, parts) if p == "test"}
    assert 0.12 < len(test) / len(keys) < 0.18 and parts == [split_of(k) for k in keys]
    # the test share is independent of the old validation hash: about 15 % of the old val went to test
    assert 0.08 < len(test & set(val)) / len(val) < 0.22
    # validation is the old validation split less what test took; train is the rest
    assert {k for k, p in zip(keys, parts) if p == "val"} == set(val) - test
    assert split_of("src/0001", 15, 0) != "test" and all(split_of(k, 0, 100) == "test" for k in keys[:50])


def test_train_cli_without_torch_is_clean(tmp_path) -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from vbg.apps.cli import main\n"
            f"sys.exit(main(['train', '--data', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert 'pip install "vbg[train]"' in r.stderr and "Traceback" not in r.stderr


def test_train_cli_missing_init_checkpoint_is_one_line(tmp_path, capsys) -> None:
    from vbg.apps import cli

    rc = cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                   "--init", str(tmp_path / "missing.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("vbg: error: --init checkpoint") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_train_cli_augment_overrides_are_checked(tmp_path, capsys) -> None:
    from vbg.apps import cli
    from vbg.train.augment import AugmentConfig
    from vbg.train.commands import parse_augment

    aug = parse_augment('{"paste_p": 0.1, "scale": [0.5, 1.0]}')
    assert AugmentConfig(**aug) == AugmentConfig(paste_p=0.1, scale=(0.5, 1.0))
    for bad, what in (('{"paste": 0.1}', "unknown settings paste"), ("[1]", "unknown settings list"),
                      ("{oops", "not JSON"), ('{"rotate": "5"}', "rotate is \"5\""),
                      ('{"scale": [0.5]}', "scale is [0.5]"), ('{"flip_p": true}', "flip_p is true")):
        rc = cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--augment", bad])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("vbg: error: --augment") and what in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_orientation_match_validates_portrait_upright_and_exports_both(tmp_path) -> None:
    from vbg.backends import create_backend
    from vbg.spec import ModelSpec
    from vbg.train.export import export_checkpoint
    from vbg.train.losses import SegLoss
    from vbg.train.trainer import evaluate, input_size_for, train

    assert input_size_for((72, 96, 3), (64, 48), "match") == (64, 48)  # shapes are (h, w, 3)
    assert input_size_for((96, 72, 3), (64, 48), "match") == (48, 64)
    assert input_size_for((96, 72, 3), (64, 48), "fixed") == (64, 48)
    land = _synthetic_samples(12)
    portrait = _synthetic_samples(12, w=72, h=96)
    cfg = _cfg(tmp_path, epochs=2, orientation="match", sizes=[(64, 48), (48, 64)])
    train(cfg, land[:8] + portrait[:8], land[8:] + portrait[8:], progress=False)

    class Spy(torch.nn.Module):  # records the input shapes validation feeds the model
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner, self.shapes = inner, set()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.shapes.add(tuple(x.shape[2:]))
            return self.inner(x)

    spy = Spy(_build("unet-lite"))
    evaluate(spy, land[8:] + portrait[8:], cfg, SegLoss(1))
    assert spy.shapes == {(48, 64), (64, 48)}  # (h, w): landscape as is, portrait upright
    res = export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "m.onnx", fp16=False)
    spec = ModelSpec.load(res["spec"])
    assert spec.input.orientation == "match" and spec.size == (64, 48)
    be = create_backend(spec, "onnxruntime")
    assert be.infer([portrait[0].image]).shape == (1, 64, 48)
    assert be.infer([land[0].image]).shape == (1, 48, 64)


def test_export_averages_checkpoints_of_one_network(tmp_path, capsys) -> None:
    import json

    from vbg.apps import cli
    from vbg.train.trainer import load_average, load_trained, train

    samples = _synthetic_samples(10)
    for seed in (1, 2):
        train(_cfg(tmp_path, out=str(tmp_path / f"s{seed}"), epochs=1, seed=seed), samples[:8], samples[8:],
              progress=False)
    a, b = tmp_path / "s1" / "best.pt", tmp_path / "s2" / "best.pt"
    soup, _ = load_average([a, b])
    sa, sb, sm = (m.state_dict() for m in (load_trained(a)[0], load_trained(b)[0], soup))
    for k in sm:
        if sm[k].is_floating_point():
            assert torch.allclose(sm[k], (sa[k] + sb[k]) / 2, atol=1e-6), k
    assert any(not torch.equal(sa[k], sb[k]) for k in sa if sa[k].is_floating_point())
    assert cli.main(["export", str(a), str(b), "--out", str(tmp_path / "soup.onnx"), "--no-fp16"]) == 0
    capsys.readouterr()
    spec = json.loads((tmp_path / "soup.json").read_text())
    assert spec["training"]["averaged_checkpoints"] == 2
    train(_cfg(tmp_path, out=str(tmp_path / "fcn"), epochs=1, arch="fcn8s", arch_options=ARCHS["fcn8s"]),
          samples[:8], samples[8:], progress=False)
    rc = cli.main(["export", str(a), str(tmp_path / "fcn" / "best.pt"), "--out", str(tmp_path / "bad.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and "holds a fcn8s model" in err and err.count("\n") == 1
    assert not (tmp_path / "bad.onnx").exists()


def test_export_records_the_split_and_bench_models_refuses_another(tmp_path) -> None:
    """A model trained on a non-default split would be benchmarked partly on its own training images:
    the spec says which split it was trained with, and bench_models refuses one that is not its own."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from vbg.train.export import export_checkpoint
    from vbg.train.trainer import train

    samples = _synthetic_samples(10)
    train(_cfg(tmp_path, epochs=1, meta={"val_percent": 20.0, "test_percent": 15.0}), samples[:8], samples[8:],
          progress=False)
    res = export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "m.onnx", fp16=False)
    spec = json.loads(Path(res["spec"]).read_text())
    assert spec["training"]["split"] == {"val_percent": 20.0, "test_percent": 15.0}
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_models.py"), "--model", res["spec"],
                        "--data", str(tmp_path / "none"), "--rooms", str(tmp_path / "none"), "--runs", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "20 %/15 % validation/test split" in r.stderr


def test_recurrent_model_carries_its_state_through_the_pipeline(tmp_path) -> None:
    """A tiny RVM-style model exported with torch: logits = conv(frame) + state, state_out = logits.
    The pipeline feeds each frame's state to the next, one frame at a time, and reset() zeros it."""
    import json

    from conftest import disc_frame

    from vbg.backends.onnxruntime import OnnxRuntimeBackend
    from vbg.pipeline import Pipeline
    from vbg.settings import Settings
    from vbg.spec import ModelSpec

    class Recurrent(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 1, bias=True)
            with torch.no_grad():
                self.conv.weight.zero_()
                self.conv.weight[0, 0] = 1.0  # R
                self.conv.weight[0, 2] = -1.0  # B
                self.conv.bias.fill_(-0.3)

        def forward(self, x: torch.Tensor, r1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = self.conv(x) + r1
            return y, y

    w, h = 32, 24
    onnx_path = tmp_path / "rec.onnx"
    torch.onnx.export(Recurrent().eval(), (torch.zeros(1, 3, h, w), torch.zeros(1, 1, h, w)), str(onnx_path),
                      input_names=["src", "r1i"], output_names=["mask", "r1o"], opset_version=17, dynamo=False)
    spec_path = tmp_path / "rec.json"
    spec_path.write_text(json.dumps({
        "name": "rec", "onnx": "rec.onnx",
        "input": {"name": "src", "width": w, "height": h, "layout": "NCHW", "color": "RGB", "scale": 255.0},
        "output": {"name": "mask", "kind": "logits", "layout": "NCHW"},
        "state": [{"input": "r1i", "output": "r1o", "shape": [1, 1, h, w]}]}))
    spec = ModelSpec.load(spec_path)
    backend = OnnxRuntimeBackend(spec)
    pipe = Pipeline(Settings(smoothing=0.0, bg="color:#00ff00"), backend)
    frame, gt = disc_frame(128, 96, 64, 48, 30)
    # in the disc R - B is large: logits add up frame by frame; outside they sink
    first, second, third = (pipe.process(frame).mask for _ in range(3))
    small = cv2_resize_bool(gt, (w, h))
    assert first[small].mean() < second[small].mean() < third[small].mean()
    assert third[~small].mean() < first[~small].mean()
    # a batch runs one frame at a time, each feeding the next
    batch = [o.mask for o in pipe.process_batch([frame, frame])]
    assert batch[0][small].mean() < batch[1][small].mean()
    pipe.reset()  # a new clip: the state is zeros again
    assert np.allclose(pipe.process(frame).mask, first, atol=1e-6)


def cv2_resize_bool(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0


def test_sensor_noise_and_consistency_term() -> None:
    from vbg.train.losses import consistency_loss, sensor_noise

    torch.manual_seed(0)
    x = torch.zeros(64, 3, 32, 32)
    std = (0.229, 0.224, 0.225)
    noisy = sensor_noise(x, std, 8.0)
    assert torch.equal(x, torch.zeros_like(x))  # the input is left as it was
    per_image = (noisy * torch.tensor(std).view(1, 3, 1, 1)).flatten(1).std(1) * 255  # back in pixel units
    assert per_image.max() <= 8.5 and per_image.min() < 2 and per_image.max() > 6  # each image its own strength
    logits = torch.randn(2, 1, 8, 8)
    assert consistency_loss(logits, logits) == 0
    assert consistency_loss(logits, logits + 1) > 0.05
    classes = torch.randn(2, 3, 8, 8)  # class maps: softmax over the channels
    assert consistency_loss(classes, classes + 5) < 1e-6  # the same distribution
    one_hot = torch.nn.functional.one_hot(torch.arange(3), 3).float().T.reshape(1, 3, 1, 3) * 50
    assert abs(float(consistency_loss(one_hot, one_hot.roll(1, dims=1))) - 1) < 1e-6  # disjoint: 1, as for binary


def test_consistency_term_also_trains_class_maps() -> None:
    """With several classes the noisy-pair term is added, not skipped."""
    from vbg.train.losses import SegLoss, consistency_loss, sensor_noise
    from vbg.train.trainer import TrainConfig, _batch_loss

    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 3, (4, 16, 16))
    wt = torch.ones(4, 1, 16, 16)
    loss_fn = SegLoss(num_classes=3)
    on = TrainConfig(out="", num_classes=3, consistency=10.0, consistency_share=0.5, consistency_noise=8.0, channels_last=False)
    torch.manual_seed(1)
    with_term = _batch_loss(net, loss_fn, x, y, wt, on)
    torch.manual_seed(1)
    twins = sensor_noise(x[:2], on.std, 8.0)
    expected = loss_fn(net(x), y, wt) + 10.0 * consistency_loss(net(x[:2]), net(twins))
    assert float(consistency_loss(net(x[:2]), net(twins))) > 1e-4
    assert torch.allclose(with_term, expected, atol=1e-5)


def test_consistency_term_makes_masks_steadier_under_noise(tmp_path) -> None:
    """The same tiny run with and without the noisy-pair term: with it, the
    validation masks move less when camera noise is added."""
    import cv2

    from vbg.train.losses import sensor_noise
    from vbg.train.trainer import _layout, load_trained, to_tensor, train

    samples = _synthetic_samples(28)
    changes = {}
    for weight in (0.0, 100.0):  # 6 epochs: shorter tiny runs are too unsettled to compare
        cfg = _cfg(tmp_path, out=str(tmp_path / f"c{weight:g}"), epochs=6, consistency=weight,
                   consistency_share=0.5, consistency_noise=24.0)
        train(cfg, samples[:24], samples[24:], progress=False)
        net = load_trained(tmp_path / f"c{weight:g}" / "final.pt")[0].eval()
        xn = torch.stack([to_tensor(cv2.resize(s.image, (64, 48), interpolation=cv2.INTER_AREA), cfg.mean, cfg.std)
                          for s in samples[24:]])
        torch.manual_seed(1)
        with torch.no_grad():
            a = torch.sigmoid(net(_layout(xn, cfg)))
            b = torch.sigmoid(net(_layout(sensor_noise(xn, cfg.std, 24.0), cfg)))
        changes[weight] = float((a - b).abs().mean())
    assert changes[100.0] < 0.75 * changes[0.0], changes


def test_train_cli_consistency_flags_are_checked(tmp_path, capsys) -> None:
    from vbg.apps import cli

    for flags, what in ((["--consistency", "-1"], "--consistency is -1"), (["--consistency", "inf"], "is inf"),
                        (["--consistency", "1", "--consistency-share", "0"], "--consistency-share is 0"),
                        (["--consistency", "1", "--consistency-noise", "0"], "--consistency-noise is 0")):
        rc = cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), *flags])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("vbg: error: ") and what in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
