"""What teaches the model what is not a person: negatives, copy-paste, teacher labels, mining, the mix."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import BACKGROUND_BGR, PERSON_BGR, disc_frame, make_red_model  # noqa: E402

from vbg.train.data import Sample  # noqa: E402
from vbg.train.losses import SegLoss, dice_loss  # noqa: E402

SMALL = {"enc_channels": (8, 12, 16, 24, 32), "dec_channels": (24, 16, 12, 8), "depths": (1, 1, 1, 1)}


def _rooms(root, n: int, seed: int = 0) -> list:
    """People-free 'rooms': textured blue scenes with no red."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = np.empty((90, 120, 3), np.uint8)
        img[:] = BACKGROUND_BGR
        img = np.clip(img.astype(np.int16) + rng.integers(-30, 31, (90, 120, 1)), 0, 255).astype(np.uint8)
        cv2.rectangle(img, (10 + i % 40, 20), (50 + i % 40, 70), (120, 160, 60), -1)  # furniture
        (root / f"room{i // 10}").mkdir(parents=True, exist_ok=True)
        p = root / f"room{i // 10}" / f"{i:03d}.jpg"
        cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


def _cutouts(root, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        alpha = np.zeros((60, 30), np.uint8)
        cv2.ellipse(alpha, (15, 30), (12, 28), 0, 0, 360, 255, -1)
        rgba = np.dstack([np.full((60, 30, 3), PERSON_BGR, np.uint8), alpha])
        cv2.imwrite(str(root / f"p{i}.png"), rgba)


def test_negatives_split_by_name_with_a_larger_test_share(tmp_path) -> None:
    from vbg.train.scenes import load_negatives

    _rooms(tmp_path / "indoor", 120)
    parts = {s: load_negatives([tmp_path / "indoor"], s) for s in ("train", "val", "test")}
    keys = [set(x.key for x in v) for v in parts.values()]
    assert sum(len(k) for k in keys) == 120 and not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert 15 <= len(parts["test"]) <= 45  # 25 % of 120, by hash
    assert all(k.startswith("indoor/room") for k in keys[0])
    s = parts["train"][0]
    assert s.mask.shape == s.image.shape[:2] and not s.mask.any()
    assert [x.key for x in load_negatives([tmp_path / "indoor"], "test")] == [x.key for x in parts["test"]]


def test_compose_pastes_people_where_the_mask_says(tmp_path) -> None:
    from vbg.train.scenes import compose, load_cutouts

    _cutouts(tmp_path / "people", 3)
    cuts = load_cutouts([tmp_path / "people"])
    assert len(cuts) == 3 and cuts[0].alpha.shape == cuts[0].image.shape[:2]
    bg = np.empty((120, 160, 3), np.uint8)
    bg[:] = BACKGROUND_BGR
    rng = np.random.default_rng(0)
    agree, people = [], 0
    for _ in range(40):
        img, mask = compose(bg, cuts, (128, 72), rng)
        assert img.shape == (72, 128, 3) and mask.shape == (72, 128)
        red = img[..., 2].astype(int) - img[..., 0].astype(int) > 60
        m = mask > 127
        if m.sum() > 20:
            people += 1
            agree.append((red & m).sum() / (red | m).sum())
    assert people >= 30  # one person or more nearly always
    assert np.median(agree) > 0.9


def test_labelled_people_become_cutouts() -> None:
    from vbg.train.scenes import cutouts_from_samples

    f, gt = disc_frame(96, 72, 40, 30, 15)
    cuts = cutouts_from_samples([Sample(f, np.where(gt, 255, 0).astype(np.uint8), "a/1"),
                                 Sample(f, np.zeros_like(gt, np.uint8), "a/2")])  # no person: no cut-out
    assert len(cuts) == 1 and cuts[0].alpha.shape == (31, 31) and cuts[0].alpha.min() == 0


def test_teacher_ensemble_ignores_pixels_where_teachers_disagree(tmp_path) -> None:
    from vbg.train.teachers import ensemble_label, open_teacher, teacher_samples

    # two "teachers": red-is-person, and a harder one that needs twice the red
    a = open_teacher(make_red_model(tmp_path / "a.onnx", gain=12.0))
    b = open_teacher(make_red_model(tmp_path / "b.onnx", gain=6.0))
    f, gt = disc_frame(128, 96, 64, 48, 20)
    mask, weight = ensemble_label([a, b], f)
    assert mask.shape == weight.shape == (96, 128)
    assert (mask[gt] > 200).mean() > 0.9 and (mask[~gt] < 60).mean() > 0.9
    assert (weight == 255).mean() > 0.99  # they agree

    class Inverted:  # calls everything the other way round
        def infer(self, frames):
            return 1.0 - a.infer(frames)

    mask, weight = ensemble_label([a, Inverted()], f)
    assert (weight == 0).mean() > 0.95  # they disagree nearly everywhere: nothing is taught
    # from files: images and every 2nd video frame
    d = tmp_path / "unl"
    d.mkdir()
    cv2.imwrite(str(d / "x.png"), f)
    cv2.imwrite(str(d / "y.png"), f)
    samples = teacher_samples([d / "x*"], [tmp_path / "a.json", tmp_path / "b.json"], every=2)
    assert [s.key for s in samples] == ["unl/x"] and samples[0].soft and samples[0].weight is not None


def test_loss_weight_leaves_pixels_out() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 16, 16)
    target = (torch.rand(2, 1, 16, 16) > 0.5).float()
    weight = torch.ones(2, 1, 16, 16)
    loss = SegLoss(1)
    assert torch.isclose(loss(logits, target, weight), loss(logits, target))
    weight[..., :8] = 0  # half the pixels left out: changing the target there changes nothing
    flipped = target.clone()
    flipped[..., :8] = 1 - flipped[..., :8]
    assert torch.isclose(loss(logits, target, weight), loss(logits, flipped, weight))
    assert not torch.isclose(loss(logits, target), loss(logits, flipped))


def test_dice_leaves_out_images_without_a_person() -> None:
    prob = torch.full((2, 1, 8, 8), 0.5)
    target = torch.zeros(2, 1, 8, 8)
    target[0, 0, 2:6, 2:6] = 1
    one = dice_loss(prob[:1], target[:1])
    assert torch.isclose(dice_loss(prob, target), one)  # the empty image adds nothing
    assert dice_loss(prob[1:], target[1:]) == 0


def test_mix_sets_each_epochs_share_of_pools(tmp_path) -> None:
    from vbg.train.trainer import EpochBatches, TrainConfig

    cfg = TrainConfig(out=str(tmp_path), batch=4, mix={"labelled": 0.5, "negative": 0.2, "paste": 0.1,
                                                       "teacher": 0.2})
    sampler = EpochBatches({"labelled": 100, "negative": 30, "teacher": 0}, cfg)
    assert set(sampler.mix) == {"labelled", "negative", "paste"}  # no teacher data: its share drops out
    draws = sampler.draws()
    count = {k: sum(1 for p, _ in draws if p == k) for k in sampler.mix}
    assert count["labelled"] == 100  # one pass over the labelled images per epoch
    assert count["negative"] == round(100 / (0.5 / 0.8) * (0.2 / 0.8))  # shares renormalised without teacher
    assert abs(count["paste"] - count["negative"] / 2) <= 1
    # hard-negative mining: draws follow the probabilities
    sampler.negative_p = np.zeros(30)
    sampler.negative_p[7] = 1.0
    assert {i for p, i in sampler.draws() if p == "negative"} == {7}
    with pytest.raises(ValueError, match="labelled share"):
        EpochBatches({"labelled": 0, "negative": 30}, TrainConfig(out="x", mix={"negative": 1.0}))


def test_mining_weights_the_scenes_the_model_fires_on(tmp_path) -> None:
    from vbg.train.trainer import TrainConfig, mine_negatives

    class Fires(torch.nn.Module):  # calls the left half of the second scene person
        def forward(self, x):
            out = torch.full((x.shape[0], 1, *x.shape[2:]), -5.0)
            green = x[:, 1].mean((1, 2))
            out[green > 0.5, :, :, : x.shape[3] // 2] = 5.0
            return out

    blank = np.zeros((40, 40, 3), np.uint8)
    green = blank.copy()
    green[..., 1] = 255
    scenes = [Sample(blank, np.zeros((40, 40), np.uint8), "n/0"), Sample(green, np.zeros((40, 40), np.uint8), "n/1")]
    p = mine_negatives(Fires(), scenes, TrainConfig(out=str(tmp_path), val_size=(32, 32), channels_last=False))
    assert np.isclose(p.sum(), 1) and np.isclose(p[0], 0.25) and np.isclose(p[1], 0.75)


def test_training_with_every_pool_records_people_free_figures(tmp_path) -> None:
    from vbg.train.scenes import cutouts_from_samples, load_negatives
    from vbg.train.trainer import TrainConfig, train

    rng = np.random.default_rng(1)
    labelled = []
    for i in range(24):
        f, gt = disc_frame(96, 72, rng.uniform(30, 66), rng.uniform(25, 47), rng.uniform(12, 18), seed=i)
        labelled.append(Sample(f, np.where(gt, 255, 0).astype(np.uint8), f"syn/{i}"))
    _rooms(tmp_path / "indoor", 40)
    negatives = load_negatives([tmp_path / "indoor"], "train") + load_negatives([tmp_path / "indoor"], "test")
    val_neg = load_negatives([tmp_path / "indoor"], "val")
    soft = [Sample(s.image, s.mask, f"t/{i}", soft=True, weight=np.full(s.mask.shape, 255, np.uint8))
            for i, s in enumerate(labelled[:8])]
    cfg = TrainConfig(out=str(tmp_path / "run"), arch="unet-lite", arch_options=SMALL, sizes=[(64, 48)],
                      val_size=(64, 48), batch=4, epochs=3, lr=1e-2, workers=0, ema=0.0, mine_every=1,
                      mix={"labelled": 0.5, "negative": 0.2, "paste": 0.1, "teacher": 0.2},
                      augment={"paste_p": 0.0, "whole_p": 1.0, "rotate": 0.0, "color_p": 0.0, "blur_p": 0.0,
                               "noise_p": 0.0, "jpeg_p": 0.0, "bg_hue_p": 0.5})  # recolouring in every pool
    res = train(cfg, labelled[:20], labelled[20:], negatives=negatives, teacher=soft,
                cutouts=cutouts_from_samples(labelled[:20]), val_negatives=val_neg or negatives[:4], progress=False)
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert {"fp_area", "fp_over_1", "val_score", "iou_syn"} <= set(rows[0])
    last = rows[-1]
    assert np.isclose(float(last["val_score"]), float(last["val_iou"]) - float(last["fp_area"]))
    assert res["best_score"] == max(float(r["val_score"]) for r in rows)
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    assert conf["mix"]["negative"] == 0.2 and conf["mine_every"] == 1


def test_train_cli_mix_is_checked(tmp_path, capsys) -> None:
    from vbg.apps import cli

    rc = cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--mix", "people=0.3"])
    err = capsys.readouterr().err
    assert rc == 2 and "--mix has an unknown pool 'people'" in err and len(err.strip().splitlines()) == 1
    rc = cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--teacher", "x.json"])
    assert rc == 2 and "--teacher needs --distill" in capsys.readouterr().err


def test_compose_copes_with_any_cutout_shape() -> None:
    """Groups cropped from labelled photos can be far wider than the frame, or one pixel wide."""
    from vbg.train.scenes import Cutout, compose

    rng = np.random.default_rng(0)
    shapes = [(2000, 20), (20, 2000), (3, 3), (500, 40), (1, 400)]
    cuts = [Cutout(np.zeros((h, w, 3), np.uint8), np.full((h, w), 255, np.uint8), f"{w}x{h}") for w, h in shapes]
    bg = np.zeros((300, 400, 3), np.uint8)
    for i in range(600):
        size = (256, 144) if i % 2 else (144, 256)
        img, mask = compose(bg, cuts, size, rng)
        assert img.shape == (size[1], size[0], 3) and mask.shape == (size[1], size[0])


def _off_by_default_and_draw_free(field: str, samples: list[Sample]) -> None:
    """An augmentation's chance ``field`` is 0 by default and then draws nothing, so the default recipe's
    examples do not change. A tiny chance draws once and never applies it: were 0 to draw too, the two
    would match."""
    from vbg.train.augment import AugmentConfig, make_example

    assert getattr(AugmentConfig(), field) == 0.0
    for seed in range(3):
        off = make_example(samples, 0, (64, 48), np.random.default_rng(seed), AugmentConfig(**{field: 0.0}))
        drawn = make_example(samples, 0, (64, 48), np.random.default_rng(seed), AugmentConfig(**{field: 1e-300}))
        assert not np.array_equal(off[0], drawn[0])


def test_background_recolouring_turns_the_background_and_keeps_the_person() -> None:
    """Against the colour shortcut: the background's hue turns (a blue room can become red), the person's does not."""
    from vbg.train.augment import AugmentConfig, make_example, recolour_background

    f, gt = disc_frame(96, 72, 40, 30, 15)
    mask = np.where(gt, 255, 0).astype(np.uint8)
    hue = lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2HSV)[..., 0].astype(int)  # noqa: E731
    outside = cv2.dilate(mask, np.ones((7, 7), np.uint8)) == 0  # clear of the soft edge
    turned = set()
    for seed in range(20):
        out = recolour_background(f, mask, np.random.default_rng(seed))
        assert out.shape == f.shape and out.dtype == np.uint8
        assert np.array_equal(out[gt], f[gt])  # the labelled person keeps its exact colours
        d = np.abs(hue(out)[outside] - hue(f)[outside])
        d = np.minimum(d, 180 - d)  # hue is circular (0..179)
        assert 12 <= np.median(d) <= 78  # turned by 30-150 degrees, never left alone
        turned.add(int(np.median(hue(out)[outside])))
    assert len(turned) >= 8  # many different background colours, not one
    room = np.full((40, 60, 3), BACKGROUND_BGR, np.uint8)
    assert not np.array_equal(recolour_background(room, np.zeros((40, 60), np.uint8), np.random.default_rng(0)), room)

    s = [Sample(f, mask, "a/1"), Sample(f, mask, "a/2")]
    _off_by_default_and_draw_free("bg_hue_p", s)
    on = make_example(s, 0, (64, 48), np.random.default_rng(3), AugmentConfig(bg_hue_p=1.0, color_p=0.0,
                                                                                 noise_p=0.0, jpeg_p=0.0, blur_p=0.0))
    bg = on[1] == 0
    assert np.abs(hue(on[0])[bg] - hue(np.full((1, 1, 3), BACKGROUND_BGR, np.uint8))[0, 0]).mean() > 10


def test_colour_distractors_paint_whole_background_objects_red_or_skin_and_keep_the_person() -> None:
    """Against the colour shortcut: background objects (flat panels here) turn red or skin-coloured as
    wholes, following their own outlines; the person and its label are untouched."""
    from vbg.train.augment import paint_distractors

    h, w = 72, 96
    panels = [(0, 0, 32, 36), (32, 0, 64, 36), (64, 0, 96, 36), (0, 36, 48, 72), (48, 36, 96, 72)]
    colours = [(200, 120, 40), (60, 160, 60), (150, 150, 150), (40, 80, 200), (230, 230, 230)]
    f = np.empty((h, w, 3), np.uint8)
    for (x0, y0, x1, y1), c in zip(panels, colours):
        f[y0:y1, x0:x1] = c
    yy, xx = np.mgrid[0:h, 0:w]
    gt = (xx - 48) ** 2 + (yy - 36) ** 2 <= 12 ** 2
    f[gt] = PERSON_BGR
    mask = np.where(gt, 255, 0).astype(np.uint8)
    near = cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0
    hsv = lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(int)  # noqa: E731
    kinds = set()
    for seed in range(30):
        out = paint_distractors(f, mask, np.random.default_rng(seed))
        assert out.shape == f.shape and out.dtype == np.uint8
        assert np.array_equal(out[near], f[near])  # the person and the pixel around it keep their colours
        changed = (out != f).any(-1)
        assert changed.any()  # p = 1 always paints
        for x0, y0, x1, y1 in panels:  # whole objects, never a patch of one (the fill stops at the blurred outline)
            inside = ~near[y0 + 1:y1 - 1, x0 + 1:x1 - 1]
            part = changed[y0 + 1:y1 - 1, x0 + 1:x1 - 1][inside]
            assert part.all() or not part.any()
        hue, sat = hsv(out)[changed][:, 0], hsv(out)[changed][:, 1]
        assert ((hue <= 22) | (hue >= 170)).all()  # red or skin
        kinds.add("red" if np.median(sat) >= 135 else "skin")
    assert kinds == {"red", "skin"}
    room = np.ascontiguousarray(f[:36])  # a people-free image: no mask
    assert not np.array_equal(paint_distractors(room, None, np.random.default_rng(0)), room)

    _off_by_default_and_draw_free("distract_p", [Sample(f, mask, "a/1"), Sample(f, mask, "a/2")])


def test_cast_shadows_darken_the_background_beside_each_person_and_never_the_person() -> None:
    """Against shadows marked as person: each person's silhouette, thrown on the ground from the feet or on
    the wall behind, darkens the background next to them; the people keep their exact pixels."""
    from vbg.train.augment import cast_shadow

    h, w = 120, 160
    f = np.full((h, w, 3), 170, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    people = [((xx - 45) / 10) ** 2 + ((yy - 45) / 25) ** 2 <= 1, ((xx - 115) / 10) ** 2 + ((yy - 45) / 25) ** 2 <= 1]
    gt = people[0] | people[1]
    f[gt] = PERSON_BGR
    mask = np.where(gt, 255, 0).astype(np.uint8)
    mask = cv2.GaussianBlur(mask, (3, 3), 0)  # a soft outline, as a shrunk label has
    inner = mask > 0
    feet_line = 70  # the people's lowest row is 69
    below = above = 0
    for seed in range(40):
        out = cast_shadow(f, mask, np.random.default_rng(seed))
        assert out.shape == f.shape and out.dtype == np.uint8
        assert np.array_equal(out[inner], f[inner])  # the people are never darkened, their outline included
        assert (out <= f).all()  # a shadow only darkens
        assert (out.astype(int) >= 0.35 * f.astype(int) - 1).all()  # by 65 % at most
        dark = (f.astype(int) - out.astype(int)).max(-1) > 10
        for person in people:  # each casts its own, next to it
            ys, xs = np.nonzero(person)
            near = np.zeros_like(dark)
            near[max(0, ys.min() - 10):ys.max() + 12, max(0, xs.min() - 15):xs.max() + 16] = True
            assert (dark & near & ~gt).any(), seed
        below += dark[feet_line + 3:].any()
        above += not dark[feet_line + 3:].any()
    assert below >= 10 and above >= 5  # on the ground in front, and behind them or on the wall

    crowd = np.zeros((h, w), np.uint8)  # three small people high up, one large one low: the largest three cast
    for x in (20, 60, 100):
        crowd[5:15, x:x + 10] = 255
    crowd[40:100, 60:90] = 255
    for seed in range(10):
        dark = (f.astype(int) - cast_shadow(f, crowd, np.random.default_rng(seed)).astype(int)).max(-1) > 10
        assert dark[30:115, 40:110][crowd[30:115, 40:110] == 0].any(), seed

    speck = np.zeros((h, w), np.uint8)
    speck[10:13, 10:13] = 255  # too small to cast anything
    assert np.array_equal(cast_shadow(f, speck, np.random.default_rng(0)), f)
    assert np.array_equal(cast_shadow(f, None, np.random.default_rng(0)), f)  # people-free images: nothing to cast

    _off_by_default_and_draw_free("shadow_p", [Sample(f, mask, "a/1"), Sample(f, mask, "a/2")])


def test_decoding_bar_follows_no_progress(tmp_path, capsys) -> None:
    """`vbg train --no-progress` writes logs, not a progress bar, while the data decodes."""
    from vbg.train.datasets import load_dataset

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        img, mask = disc_frame(64, 48, 32, 24, 12, seed=i)
        cv2.imwrite(str(tmp_path / "images" / f"{i}.jpg"), img)
        cv2.imwrite(str(tmp_path / "masks" / f"{i}.png"), mask.astype(np.uint8) * 255)
    for progress in (True, False):
        splits = load_dataset("folder", [tmp_path], val_percent=0, test_percent=0, progress=progress)
        assert len(splits["train"]) == 3
        assert ("decoding" in capsys.readouterr().err) is progress
