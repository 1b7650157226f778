"""Where the bundled assets are: ``assets/`` in a checkout, ``vbg/assets`` when installed."""

from __future__ import annotations

from pathlib import Path


def assets_dir() -> Path:
    here = Path(__file__).resolve().parent
    for cand in (here / "assets", here.parent / "assets"):
        if (cand / "models").is_dir():
            return cand
    return here / "assets"


def bundled_models_dir() -> Path:
    return assets_dir() / "models"


def bundled_backgrounds_dir() -> Path:
    return assets_dir() / "backgrounds"


def bundled_backgrounds() -> dict[str, Path]:
    """Bundled background images by name (file stem, lower case), e.g. ``beach``."""
    d = bundled_backgrounds_dir()
    return {p.stem.lower(): p for p in sorted(d.glob("*.jpg"))} if d.is_dir() else {}


def samples_dir() -> Path:
    return assets_dir() / "samples"


def bundled_samples() -> dict[str, Path]:
    """Bundled sample clips by name (file stem), e.g. ``sample``: ``vbg --input sample`` works in any clone."""
    d = samples_dir()
    return {p.stem.lower(): p for p in sorted(d.glob("*.mp4"))} if d.is_dir() else {}
