"""``vbg eval`` and the metrics, on hand-made masks (no torch needed)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import ROOT, disc_frame

from vbg.train.metrics import boundary_f, iou, mae


def test_metrics_on_hand_made_masks() -> None:
    gt = np.zeros((10, 10), bool)
    gt[2:6, 2:6] = True  # 16 px
    pred = np.zeros((10, 10), np.float32)
    pred[4:8, 2:6] = 0.9  # 16 px, 8 shared
    assert iou(pred, gt) == pytest.approx(8 / 24)
    assert iou(gt.astype(np.float32), gt) == 1.0
    assert iou(np.zeros((4, 4)), np.zeros((4, 4), bool)) == 1.0  # both empty
    assert mae(pred, gt) == pytest.approx((8 * 0.1 + 8 * 0.9 + 8 * 1.0) / 100)
    assert boundary_f(gt.astype(np.float32), gt) == 1.0
    assert boundary_f(np.zeros((10, 10)), gt) == 0.0
    far = np.zeros((100, 100), bool)
    far[60:90, 60:90] = True
    near = np.zeros((100, 100), bool)
    near[10:40, 10:40] = True
    assert boundary_f(far, near) == 0.0


def _write_set(root, n: int = 3):
    """64x48 disc frames (the red model's own size: no resizing), with hand-made
    labels: the exact disc, its left half, and nothing."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    expected = []
    for i in range(n):
        frame, disc = disc_frame(64, 48, 30 + i, 24, 12, seed=i)
        label = disc.copy()
        if i == 1:
            label[:, 30 + i:] = False
        elif i == 2:
            label[:] = False
            label[0:5, 0:5] = True
        cv2.imwrite(str(root / "images" / f"img{i}.png"), frame)
        cv2.imwrite(str(root / "masks" / f"img{i}.png"), np.where(label, 255, 0).astype(np.uint8))
        expected.append((disc & label).sum() / (disc | label).sum())
    return expected


def test_evaluate_models_iou(tmp_path, red_model) -> None:
    from vbg.spec import ModelSpec
    from vbg.train.data import find_pairs
    from vbg.train.eval_cmd import evaluate_models

    expected = _write_set(tmp_path / "set")
    res = evaluate_models([ModelSpec.load(red_model)], find_pairs(tmp_path / "set"), threads=1, progress=False)
    r = res[0]
    assert r.iou == pytest.approx(expected, abs=1e-6)
    assert expected[0] == 1.0 and 0.4 < expected[1] < 0.6 and expected[2] == 0.0
    assert len(r.ms) == 3 and all(m > 0 for m in r.ms)


def test_eval_cli_side_by_side(tmp_path, red_model, capsys) -> None:
    from vbg.apps.cli import main

    expected = _write_set(tmp_path / "set")
    out = tmp_path / "res.json"
    rc = main(["eval", "--data", str(tmp_path / "set"), "--model", str(red_model), "--model", str(red_model),
               "--split", "all", "--threads", "1", "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 2
    assert rows[0]["iou"] == pytest.approx(np.mean(expected), abs=1e-6)
    text = capsys.readouterr().out
    assert "| red |" in text and "mean IoU" in text


def test_eval_cli_bad_folder(tmp_path, red_model, capsys) -> None:
    from vbg.apps.cli import main

    rc = main(["eval", "--data", str(tmp_path / "nope"), "--model", str(red_model)])
    assert rc == 2
    assert "not found" in capsys.readouterr().err
    _write_set(tmp_path / "set")
    for name, rc_want in (("cpu", 0), ("onnxruntime", 0), ("nosuch", 2)):  # the main CLI's names (and the old one)
        rc = main(["eval", "--data", str(tmp_path / "set"), "--model", str(red_model), "--split", "all",
                   "--threads", "1", "--backend", name])
        err = capsys.readouterr().err
        assert rc == rc_want and (rc == 0 or "unknown backend 'nosuch'" in err), (name, err)


def test_ablation_table_sets_each_variant_beside_the_full_recipe(tmp_path) -> None:
    """benchmarks/ablation_table.py: the card's table from bench_models' JSON files, differences against abl-all."""
    import subprocess
    import sys

    def row(name: str, iou: float, free: float) -> dict:
        return {"model": name, "iou": iou, "boundary_f": 0.5, "free_area": free, "free_over_1": 2 * free,
                "iou_by_source": {"ccp": iou, "hs": iou - 0.1, "pennfudan": iou - 0.2}}

    peer = row("mediapipe-selfie", 0.88, 0.0003)
    (tmp_path / "a.json").write_text(json.dumps([row("abl-all", 0.78, 0.0366), row("abl-no-x", 0.77, 0.0987), peer]))
    (tmp_path / "b.json").write_text(json.dumps([row("abl-no-y", 0.7844, 0.0299), peer]))
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ablation_table.py"), str(tmp_path / "a.json"),
                        str(tmp_path / "b.json")], capture_output=True, text=True, check=True)
    lines = r.stdout.splitlines()
    assert [ln.split(" | ")[0] for ln in lines[2:]] == ["| abl-all", "| abl-no-x", "| abl-no-y", "| mediapipe-selfie"]
    assert "| 0.7700 (-0.0100) |" in lines[3] and "| 9.87 % (+6.21) | 19.7 % (+12.4) |" in lines[3]
    assert "0.7844 (+0.0044)" in lines[4] and "(" not in lines[2] + lines[5]
    (tmp_path / "c.json").write_text(json.dumps([row("mediapipe-selfie", 0.90, 0.0003)]))  # another split's peer
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ablation_table.py"), str(tmp_path / "a.json"),
                        str(tmp_path / "c.json")], capture_output=True, text=True)
    assert r.returncode == 2 and "mediapipe-selfie has different figures in two files" in r.stderr


def test_iou_breakdown_puts_each_wrong_pixel_in_one_bin_by_its_distance_from_the_outline() -> None:
    """benchmarks/iou_breakdown.py: IoU and the four bins add up to 1, and each kind of error lands in its bin."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("iou_breakdown", ROOT / "benchmarks" / "iou_breakdown.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    gt = np.zeros((300, 400), bool)  # diagonal 500: edge band 5 px, "beside" out to 25 px
    gt[100:200, 100:200] = True
    pred = gt.copy()
    pred[100:200, 200:203] = True  # 300 px just outside the outline: edge
    pred[150:160, 215:220] = True  # 50 px 15-20 px out: beside
    pred[10:20, 350:360] = True  # 100 px far away: away
    pred[140:150, 140:150] = False  # 100 px deep inside: missed inside
    pred[100:102, 120:130] = False  # 20 px at the outline, inside: edge
    b = mod.breakdown(pred, gt)
    union = 10000 + 300 + 50 + 100
    assert b["edge"] == pytest.approx(320 / union)
    assert b["beside"] == pytest.approx(50 / union)
    assert b["away"] == pytest.approx(100 / union)
    assert b["missed inside"] == pytest.approx(100 / union)
    assert b["iou"] + sum(b[k] for k in mod.BINS) == pytest.approx(1.0)
    assert mod.breakdown(gt, gt) == {"iou": 1.0, "edge": 0.0, "beside": 0.0, "away": 0.0, "missed inside": 0.0}


def test_matte_level_forces_one_guide_level_and_bands_the_outline() -> None:
    """benchmarks/matte_level.py: at the level guide_level picks, its matte is the default matte
    exactly; at another level it differs; the edge band is the 8 px either side of the outline."""
    import importlib.util

    from vbg.stages.matte import Matte, guide_level

    spec = importlib.util.spec_from_file_location("matte_level", ROOT / "benchmarks" / "matte_level.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    frame, gt = disc_frame(1280, 720, 640, 360, 200, seed=0)
    # a mask 12 px off the disc, so the guide cannot explain its edge and the level shows
    off = np.roll(gt, 12, axis=1).astype(np.float32)
    prob = cv2.resize(off, (288, 160), interpolation=cv2.INTER_AREA)
    picked = guide_level(1280, 720, (288, 160))
    default = Matte().compute(prob, frame).alpha
    assert np.array_equal(mod.FixedLevel(picked).compute(prob, frame).alpha, default)
    assert not np.array_equal(mod.FixedLevel(picked - 1).compute(prob, frame).alpha, default)
    band = mod.edge_band(gt)
    assert band[360, 640 + 200] and band[360, 640 + 193] and not band[360, 640 + 180] and not band[360, 640 + 220]
