"""The bundled models: loadable by the runtime alone (no torch), small,
and giving sensible masks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "assets" / "models"

# Runs in a fresh interpreter where importing torch fails, as on a user's
# machine without the train extra.
NO_TORCH_SCRIPT = r"""
import json, sys
sys.modules["torch"] = None
import numpy as np
from vbg.models import list_models, resolve_model
from vbg.backends.onnxruntime import OnnxRuntimeBackend

spec = resolve_model(None)
backend = OnnxRuntimeBackend(spec, threads=1)
h, w = 480, 640
yy, xx = np.mgrid[0:h, 0:w]
# an empty room: a wall with a soft gradient and a darker floor
wall = np.zeros((h, w, 3), np.uint8)
wall[:] = (170, 180, 190)
wall = (wall * (0.8 + 0.2 * xx[..., None] / w)).astype(np.uint8)
wall[int(h * 0.75):] = (60, 80, 100)
mask = backend.infer([wall, wall])
out = {"name": spec.name, "shape": list(mask.shape), "min": float(mask.min()), "max": float(mask.max()),
       "mean": float(mask.mean()),
       "models": [e.spec.name for e in list_models() if e.origin == "bundled"]}
print(json.dumps(out))
"""


def _bundled() -> list[Path]:
    return sorted(MODELS.glob("*.json"))


def test_bundled_specs_are_small_and_complete() -> None:
    from vbg.spec import ModelSpec

    specs = [ModelSpec.load(p) for p in _bundled()]
    assert specs, "no bundled models"
    defaults = [s for s in specs if s.extra.get("default")]
    assert len(defaults) == 1 and defaults[0].name.startswith("unet")
    d = defaults[0].input
    assert any(s.input.width * s.input.height < d.width * d.height for s in specs), "a faster model beside it"
    for s in specs:
        assert s.onnx.is_file()
        size = s.onnx.stat().st_size + s.path.stat().st_size  # type: ignore[union-attr]
        assert size <= 10 * 1024 * 1024, f"{s.name} is {size} bytes"
        assert s.extra.get("training", {}).get("arch"), "made by our trainer: records its architecture"


def test_default_runs_without_torch() -> None:
    r = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["name"].startswith("unet")
    assert out["shape"][0] == 2 and 0.0 <= out["min"] and out["max"] <= 1.0
    assert out["mean"] < 0.15, "an empty room is background"


# Imports every runtime module (all of vbg but vbg.train) and converts a photo, then says whether torch
# was loaded: here torch is installed (the test extra has it), so a stray import would load it.
ALL_RUNTIME_SCRIPT = r"""
import importlib, json, sys
from pathlib import Path
import numpy as np, cv2
import vbg
root = Path(vbg.__file__).parent
names, skipped = [], []
for p in sorted(root.rglob("*.py")):  # the files, not pkgutil.walk_packages: it imports every package, train too
    parts = ("vbg",) + p.relative_to(root).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    if name.startswith("vbg.train") or name == "vbg.__main__":
        continue
    try:
        importlib.import_module(name)
        names.append(name)
    except ImportError as exc:  # an optional dependency that is not installed (cupy, tensorrt)
        skipped.append(f"{name}: {exc}")
from vbg.apps.cli import main
img, out = sys.argv[1], sys.argv[2]
cv2.imwrite(img, np.full((240, 320, 3), 128, np.uint8))
rc = main(["-i", img, "-o", out, "--bg", "color:#00ff00"])
print(json.dumps({"rc": rc, "torch": "torch" in sys.modules, "names": names, "skipped": skipped}))
"""


def test_no_runtime_module_loads_torch(tmp_path: Path) -> None:
    pytest.importorskip("torch")  # the check means something only where torch could be loaded
    r = subprocess.run([sys.executable, "-c", ALL_RUNTIME_SCRIPT, str(tmp_path / "in.png"), str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0 and (tmp_path / "o.png").is_file()
    assert {"vbg.pipeline", "vbg.apps.batch", "vbg.apps.live", "vbg.loop", "vbg.apps.gui.app"} <= set(out["names"])
    assert all(("cupy" in s or "tensorrt" in s) for s in out["skipped"]), out["skipped"]
    assert out["torch"] is False, "a runtime module imported torch"


@pytest.mark.shared
def test_default_segments_real_people(shared_dir) -> None:
    """On held-out labelled photos the default's mask matches the label."""
    from vbg.backends.onnxruntime import OnnxRuntimeBackend
    from vbg.models import resolve_model
    from vbg.train.data import find_pairs, split_pairs
    from vbg.train.eval_cmd import evaluate_models

    val = split_pairs(find_pairs(shared_dir / "data" / "person-seg"))["val"]
    val = [p for p in val if p.source != "coco128-person"][:12]
    spec = resolve_model(None)
    res = evaluate_models([spec], val, threads=2, progress=False)[0]
    assert np.mean(res.iou) > 0.8
    assert OnnxRuntimeBackend(spec).spec.name == spec.name


# Frames of ../shared/videos/people/one-by-one-person-detection.mp4 with nobody in view (checked by eye,
# with a margin of a few frames to each side of a person leaving or coming in).
EMPTY_RANGES = [(0, 55), (205, 222), (458, 500), (712, 742), (879, 919), (1212, 1230), (1360, 1393)]


@pytest.mark.shared
def test_empty_scenes_of_a_real_clip_composite_to_plain_background(shared_dir) -> None:
    """People walk in and out of a room: with nobody in view, the default model's composite is the plain
    background (the table, the floor and the wall are not kept)."""
    from vbg.io.decode import VideoFrames
    from vbg.pipeline import Pipeline
    from vbg.settings import Settings

    clip = shared_dir / "videos" / "people" / "one-by-one-person-detection.mp4"
    wanted = {i for a, b in EMPTY_RANGES for i in range(max(0, a - 20), b + 1)}  # 20 frames of history before each
    empty = {i for a, b in EMPTY_RANGES for i in range(a, b + 1)}
    shares = []
    with Pipeline(Settings(bg="color:#00ff00")) as pipe, VideoFrames(clip) as video:
        last = -2
        for i, (img, _) in enumerate(video):
            if i not in wanted:
                continue
            if i != last + 1:
                pipe.reset()  # a jump in the clip: as a new scene
            last = i
            out = pipe.process(img)
            if i in empty:
                assert out.frame is not None
                shares.append(float((out.alpha >= 0.5).mean()))
    shares_a = np.asarray(shares)
    assert len(shares) == sum(b - a + 1 for a, b in EMPTY_RANGES)
    assert shares_a.mean() <= 0.002 and np.percentile(shares_a, 95) <= 0.005, (
        f"person kept on empty frames: mean {shares_a.mean():.4f}, worst {shares_a.max():.4f}")
