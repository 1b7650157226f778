"""Images and folders of images through the real CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import PERSON_BGR, disc_frame

from vbg.apps.cli import main

BEACH_BGR = (180, 200, 230)  # a flat "beach" background image


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, img: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), img)
    return path


@pytest.fixture
def beach(tmp_path: Path) -> Path:
    img = np.empty((300, 500, 3), np.uint8)
    img[:] = BEACH_BGR
    return write(tmp_path / "beach.jpg", img)


def interior(gt: np.ndarray, px: int = 6) -> tuple[np.ndarray, np.ndarray]:
    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    g = gt.astype(np.uint8)
    return cv2.erode(g, k).astype(bool), ~cv2.dilate(g, k).astype(bool)


def test_photo_with_image_background(beach: Path, red_model: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    img, gt = disc_frame(400, 300, 150, 140, 70)
    photo = write(tmp_path / "photo.png", img)
    code, out, err = cli(capsys, "--input", photo, "--bg", beach, "--model", red_model)
    assert code == 0, err
    dst = tmp_path / "photo.vbg.png"
    assert out.strip() == f"vbg: 1 frame in {out.split(' in ')[1].split(' s ')[0]} s " \
                          f"({out.split('(')[1].split(' fps')[0]} fps) -> {dst}"
    res = cv2.imread(str(dst))
    assert res.shape == img.shape
    inside, outside = interior(gt)
    assert np.abs(res[inside].astype(int) - PERSON_BGR).max() <= 2  # PNG is lossless
    assert np.abs(res[outside].mean(axis=0) - BEACH_BGR).max() < 3  # JPEG-decoded beach


def test_jpeg_stays_jpeg_and_alpha_goes_png(red_model: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    img, gt = disc_frame(200, 160, 100, 80, 40)
    photo = write(tmp_path / "p.jpg", img)
    assert cli(capsys, "-i", photo, "--bg", "color:#00ff00", "--model", red_model)[0] == 0
    assert cv2.imread(str(tmp_path / "p.vbg.jpg")).shape == (160, 200, 3)
    assert cli(capsys, "-i", photo, "--output-mode", "alpha", "--model", red_model)[0] == 0
    rgba = cv2.imread(str(tmp_path / "p.vbg.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (160, 200, 4)
    inside, outside = interior(gt)
    assert rgba[..., 3][inside].min() > 240 and rgba[..., 3][outside].max() < 15
    # into an output folder the name is tagged as a video's is, so the input's own folder works too
    out_dir = tmp_path / "out"
    assert cli(capsys, "-i", photo, "-o", f"{out_dir}/", "--output-mode", "mask", "--model", red_model)[0] == 0
    assert [p.name for p in out_dir.iterdir()] == ["p.mask.png"]
    (tmp_path / "p.vbg.jpg").unlink()
    before = photo.read_bytes()
    assert cli(capsys, "-i", photo, "-o", tmp_path, "--model", red_model)[0] == 0
    assert (tmp_path / "p.vbg.jpg").is_file() and photo.read_bytes() == before


def test_folder_to_masks_one_png_per_image(red_model: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    truths = {}
    for i, (name, size) in enumerate([("a.jpg", (320, 240)), ("b.png", (200, 300)), ("c.webp", (256, 256))]):
        w, h = size
        img, gt = disc_frame(w, h, w * 0.4 + 10 * i, h * 0.5, min(w, h) * 0.25, seed=i)
        write(photos / name, img)
        truths[Path(name).stem] = gt
    (photos / "notes.txt").write_text("not an image")
    (photos / "older").mkdir()
    write(photos / "older" / "d.jpg", img)
    masks = tmp_path / "masks"
    code, out, err = cli(capsys, "--input", photos, "--output", masks, "--output-mode", "mask",
                         "--model", red_model)
    assert code == 0, err
    assert err.strip() == ("vbg: warning: photos: skipped 1 subfolder and 1 other file (vbg converts the videos "
                           "and images in the folder itself, not below it)")
    assert out.startswith("vbg: 3 frames in ")
    assert sorted(p.name for p in masks.iterdir()) == ["a.png", "b.png", "c.png"]
    for stem, gt in truths.items():
        m = cv2.imread(str(masks / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert m.dtype == np.uint8 and m.shape == gt.shape  # 8-bit, one channel, full size
        inside, outside = interior(gt)
        assert m[inside].min() > 240 and m[outside].max() < 15
        iou = np.logical_and(m > 127, gt).sum() / np.logical_or(m > 127, gt).sum()
        assert iou > 0.95


def test_folder_images_are_independent(red_model: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Strong temporal smoothing must not leak one photo's person into the next."""
    photos = tmp_path / "photos"
    photos.mkdir()
    img1, _ = disc_frame(240, 180, 60, 90, 45)
    img2, gt2 = disc_frame(240, 180, 180, 90, 45)
    write(photos / "1.png", img1)
    write(photos / "2.png", img2)
    assert cli(capsys, "-i", photos, "-o", tmp_path / "m", "--output-mode", "mask",
               "--smoothing", "1", "--model", red_model)[0] == 0
    m2 = cv2.imread(str(tmp_path / "m" / "2.png"), cv2.IMREAD_UNCHANGED)
    _, outside = interior(gt2)
    assert m2[outside].max() < 15  # no ghost of photo 1's disc at x=60


def test_default_folder_output_and_bad_image_in_folder(red_model: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    img, _ = disc_frame(120, 90, 60, 45, 25)
    write(photos / "good.png", img)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    code, _, err = cli(capsys, "-i", photos, "--output-mode", "mask", "--model", red_model)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vbg: error: could not read ") and "broken.jpg" in lines[0]
    assert "Traceback" not in err
    # the readable image was still converted, into the default folder beside the input
    assert [p.name for p in (tmp_path / "photos.masks").iterdir()] == ["good.png"]


def test_peer_on_real_photos(peer_spec: Path, shared_dir: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    src = shared_dir / "data" / "person-seg" / "hs"
    names = sorted(p.name for p in (src / "images").iterdir())[:3]
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in names:
        shutil.copy(src / "images" / n, photos / n)
    code, _, err = cli(capsys, "-i", photos, "-o", tmp_path / "m", "--output-mode", "mask", "--model", peer_spec)
    assert code == 0, err
    ious = []
    for n in names:
        stem = Path(n).stem
        gt_path = next((src / "masks").glob(stem + ".*"))
        m = cv2.imread(str(tmp_path / "m" / f"{stem}.png"), cv2.IMREAD_UNCHANGED) > 127
        assert m.shape == cv2.imread(str(src / "images" / n)).shape[:2]  # full size, one channel
        gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)  # some masks are stored smaller
        gt = cv2.resize(gt, m.shape[::-1], interpolation=cv2.INTER_NEAREST) > 127
        ious.append(np.logical_and(m, gt).sum() / max(1, np.logical_or(m, gt).sum()))
    assert np.mean(ious) > 0.7, ious
