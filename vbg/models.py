"""Model registry: bundled models in ``assets/models`` and the user's own.

A model is a JSON spec (see ``vbg.spec``) with its ONNX file beside it.
``--model`` takes a registered name, a path to a spec, or a path to an
``.onnx`` with ``<same stem>.json`` beside it. The bundled spec that has
``"default": true`` is used when no model is given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .assets import bundled_models_dir
from .errors import VbgError
from .paths import user_models_dir
from .spec import ModelSpec

log = logging.getLogger(__name__)


def user_dir() -> Path:
    return user_models_dir()


@dataclass(frozen=True)
class ModelEntry:
    spec: ModelSpec
    origin: str  # "bundled" | "user"
    default: bool = False


def list_models(origins: tuple[str, ...] = ("bundled", "user")) -> list[ModelEntry]:
    entries: list[ModelEntry] = []
    for origin, d in (("bundled", bundled_models_dir()), ("user", user_dir())):
        if origin not in origins or not d.is_dir():
            continue
        for js in sorted(d.glob("*.json")):
            try:
                spec = ModelSpec.load(js)
            except VbgError as exc:
                log.warning("skipping %s: %s", js, exc)
                continue
            entries.append(ModelEntry(spec, origin, bool(spec.extra.get("default")) and origin == "bundled"))
    return entries


def resolve_model(name: str | None) -> ModelSpec:
    """Name or path -> ModelSpec; raises VbgError naming the choices.

    The user's models folder is read only when the bundled models don't answer, so a broken spec
    there is reported where it matters, not on every run."""
    if not name or name == "default":
        for origins in (("bundled",), ("bundled", "user")):
            entries = list_models(origins)
            for e in entries:
                if e.default:
                    return e.spec
            if entries:
                return entries[0].spec
        raise VbgError("no bundled model found", "reinstall vbg or pass --model SPEC.json")
    if not name.strip():
        raise VbgError("--model is empty", "give a model name (see vbg models) or a spec .json")
    p = Path(name).expanduser()
    if p.suffix.lower() == ".json" and p.is_file():
        return ModelSpec.load(p)
    if p.suffix.lower() == ".onnx":
        js = p.with_suffix(".json")
        if js.is_file():
            return ModelSpec.load(js)
        if p.is_file():
            raise VbgError(f"model {p} has no spec {js.name} beside it",
                           "write a JSON spec (see 'vbg models --help')")
    for e in list_models(("bundled",)):
        if e.spec.name == name:
            return e.spec
    entries = list_models()
    for e in entries:
        if e.spec.name == name:
            return e.spec
    known = ", ".join(["default", *(e.spec.name for e in entries)])
    raise VbgError(f"unknown model {name!r}", f"use one of: {known}, or a path to a spec .json")
