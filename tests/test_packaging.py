"""Packaging: the wheel carries every subpackage and the bundled assets."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_subpackage_is_listed() -> None:
    listed = set(_config()["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "vbg").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject's packages: {sorted(found - listed)}"


def test_assets_install_inside_the_package() -> None:
    cfg = _config()
    assert cfg["package-dir"]["vbg.assets"] == "assets"
    data = cfg["package-data"]
    for pkg, pattern in (("vbg.assets.models", "*.onnx"), ("vbg.assets.backgrounds", "*.jpg")):
        assert pkg in cfg["packages"] and pattern in data[pkg]
        folder = ROOT / "assets" / pkg.rsplit(".", 1)[1]
        assert list(folder.glob(pattern)), f"nothing in {folder} matches {pattern}"


def test_bundled_background_by_name() -> None:
    from vbg.stages.backgrounds import BackgroundSpec

    bg = BackgroundSpec.parse("beach")
    assert bg.kind == "image" and bg.path is not None and bg.path.is_file()
    assert BackgroundSpec.parse("no-such-scene").path == Path("no-such-scene")
