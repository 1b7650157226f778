"""The user's folders: config (settings, models, engines)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def config_dir() -> Path:
    """The user's vbg config folder (``VBG_CONFIG_DIR`` overrides; else XDG, AppData or Application Support)."""
    if env := os.environ.get("VBG_CONFIG_DIR"):
        return Path(env)
    return Path(platformdirs.user_config_dir("vbg", appauthor=False))


def config_path() -> Path:
    """Where ``vbg gui`` saves settings, and every command reads them from."""
    return config_dir() / "config.toml"


def user_models_dir() -> Path:
    return Path(os.environ["VBG_MODELS"]) if os.environ.get("VBG_MODELS") else config_dir() / "models"
