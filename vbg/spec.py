"""Model specs: the JSON file beside each ONNX model.

A spec says everything the runtime needs to feed a model and read its
output, so any person-segmentation ONNX (ours or a peer's) plugs in with a
spec alone. Example (``assets/models/unet-lite-m.json``, abridged)::

    {
      "name": "unet-lite-m",
      "onnx": "unet-lite-m.onnx",
      "description": "real-time U-Net, depthwise-separable",
      "input":  {"name": "input", "width": 288, "height": 160,
                 "layout": "NCHW", "color": "RGB", "scale": 255.0,
                 "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                 "orientation": "fixed"},
      "output": {"name": "mask", "kind": "logits", "layout": "NCHW",
                 "person_channel": 0}
    }

Normalisation is ``x = (pixel / scale - mean) / std`` per channel, in the
spec's colour order. The whole frame is resized to the input size (no
letterbox). ``input.orientation`` is ``fixed`` (the default: every frame
runs at width x height) or ``match``: a portrait frame runs at the portrait
twin (height x width) of a landscape size, so it is not squashed; the ONNX
then needs dynamic spatial axes. ``output.kind`` is one of:

* ``probability``: one channel, person probability in [0, 1]
* ``logits``: one channel, sigmoid gives the person probability
* ``softmax``: C class probabilities, ``person_channel`` is the person
* ``softmax_logits``: C class logits, softmax then ``person_channel``

A model with recurrent state (RobustVideoMatting-style ``r1i..r4i`` in,
``r1o..r4o`` out) lists it under ``state``: each entry names an input, the
output that feeds it on the next frame, and its initial shape (zeros)::

    "state": [{"input": "r1i", "output": "r1o", "shape": [1, 16, 72, 128]}, ...]

Such a model runs one frame at a time; ``Backend.reset()`` (called by
``Pipeline.reset()``: a new clip, a scene cut) sets the state back to zeros.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import VbgError
from .io.files import check_file

LAYOUTS = ("NCHW", "NHWC")
COLORS = ("RGB", "BGR")
OUTPUT_KINDS = ("probability", "logits", "softmax", "softmax_logits")
ORIENTATIONS = ("fixed", "match")
DTYPES = ("float32", "float16")


def oriented_size(size: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """``size`` (w, h), swapped when a ``width`` x ``height`` frame is portrait
    and ``size`` landscape or the other way round (squares never swap)."""
    w, h = size
    if w != h and width != height and (height > width) != (h > w):
        return h, w
    return w, h


@dataclass(frozen=True)
class InputSpec:
    name: str
    width: int
    height: int
    layout: str = "NCHW"
    color: str = "RGB"
    scale: float = 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    dtype: str = "float32"
    orientation: str = "fixed"


@dataclass(frozen=True)
class OutputSpec:
    name: str
    kind: str = "probability"
    layout: str = "NCHW"
    person_channel: int = 0


@dataclass(frozen=True)
class StateSpec:
    input: str
    output: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    onnx: Path
    input: InputSpec
    output: OutputSpec
    description: str = ""
    path: Path | None = None  # the JSON file this spec was read from
    state: tuple[StateSpec, ...] = ()  # recurrent inputs/outputs, empty for a stateless model
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def size(self) -> tuple[int, int]:
        """Model input size as (width, height)."""
        return self.input.width, self.input.height

    def size_for(self, width: int, height: int, orientation: str | None = None) -> tuple[int, int]:
        """Input size (w, h) for a ``width`` x ``height`` frame: ``size``, or its
        portrait twin for a portrait frame when the orientation is "match"."""
        if (orientation or self.input.orientation) == "match":
            return oriented_size(self.size, width, height)
        return self.size

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: Path | None = None) -> ModelSpec:
        where = f" in {base}" if base else ""
        try:
            i, o = d["input"], d["output"]
            inp = InputSpec(
                name=str(i["name"]),
                width=int(i["width"]),
                height=int(i["height"]),
                layout=str(i.get("layout", "NCHW")).upper(),
                color=str(i.get("color", "RGB")).upper(),
                scale=float(i.get("scale", 255.0)),
                mean=tuple(float(v) for v in i.get("mean", (0.0, 0.0, 0.0))),  # type: ignore[arg-type]
                std=tuple(float(v) for v in i.get("std", (1.0, 1.0, 1.0))),  # type: ignore[arg-type]
                dtype=str(i.get("dtype", "float32")),
                orientation=str(i.get("orientation", "fixed")).lower(),
            )
            out = OutputSpec(
                name=str(o["name"]),
                kind=str(o.get("kind", "probability")),
                layout=str(o.get("layout", "NCHW")).upper(),
                person_channel=int(o.get("person_channel", 0)),
            )
            onnx = Path(d["onnx"])
            name = str(d.get("name") or onnx.stem)
            state = tuple(StateSpec(str(e["input"]), str(e["output"]), tuple(int(v) for v in e["shape"]),
                                    str(e.get("dtype", "float32"))) for e in d.get("state", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise VbgError(f"invalid model spec{where}: {exc!r}",
                           "see vbg/spec.py for the spec format") from None
        if base is not None and not onnx.is_absolute():
            onnx = base.parent / onnx
        if inp.layout not in LAYOUTS or out.layout not in LAYOUTS:
            raise VbgError(f"invalid model spec{where}: layout must be NCHW or NHWC",
                           "fix the spec's layout fields")
        if inp.color not in COLORS:
            raise VbgError(f"invalid model spec{where}: color must be RGB or BGR",
                           "fix the spec's input.color")
        if out.kind not in OUTPUT_KINDS:
            raise VbgError(f"invalid model spec{where}: output.kind {out.kind!r}",
                           f"use one of {', '.join(OUTPUT_KINDS)}")
        if inp.orientation not in ORIENTATIONS:
            raise VbgError(f"invalid model spec{where}: input.orientation {inp.orientation!r}",
                           f"use one of {', '.join(ORIENTATIONS)}")
        if len(inp.mean) != 3 or len(inp.std) != 3 or min(inp.std) <= 0:
            raise VbgError(f"invalid model spec{where}: mean/std need 3 values, std > 0",
                           "fix the spec's input.mean and input.std")
        if inp.width <= 0 or inp.height <= 0 or inp.scale <= 0:
            raise VbgError(f"invalid model spec{where}: width, height and scale must be > 0",
                           "fix the spec's input size")
        bad = [t for t in (inp.dtype, *(st.dtype for st in state)) if t not in DTYPES]
        if bad:
            raise VbgError(f"invalid model spec{where}: dtype {bad[0]!r}", f"use one of {', '.join(DTYPES)}")
        if any(min(st.shape, default=0) <= 0 for st in state):
            raise VbgError(f"invalid model spec{where}: a state shape needs positive sizes",
                           "fix the spec's state shapes")
        if state and inp.orientation == "match":
            raise VbgError(f"invalid model spec{where}: a model with state runs at one input size",
                           "set input.orientation to \"fixed\"")
        known = {"name", "onnx", "input", "output", "description", "state"}
        return cls(name=name, onnx=onnx, input=inp, output=out,
                   description=str(d.get("description", "")), path=base, state=state,
                   extra={k: v for k, v in d.items() if k not in known})

    @classmethod
    def load(cls, path: str | Path) -> ModelSpec:
        path = check_file(Path(path), "model spec")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise VbgError(f"cannot read model spec {path}: {exc.strerror}",
                           "check the path") from None
        except UnicodeDecodeError:
            raise VbgError(f"model spec {path} is not UTF-8 text", "save it as UTF-8 JSON") from None
        except RecursionError:
            raise VbgError(f"model spec {path} is nested too deeply to be a spec", "fix the JSON") from None
        except json.JSONDecodeError as exc:
            raise VbgError(f"model spec {path} is not valid JSON: {exc.msg} at line {exc.lineno}",
                           "fix the JSON") from None
        return cls.from_dict(data, base=path)

    def to_dict(self) -> dict[str, Any]:
        i, o = self.input, self.output
        return {
            "name": self.name,
            "onnx": self.onnx.name,
            "description": self.description,
            "input": {"name": i.name, "width": i.width, "height": i.height,
                      "layout": i.layout, "color": i.color, "scale": i.scale,
                      "mean": list(i.mean), "std": list(i.std), "dtype": i.dtype,
                      "orientation": i.orientation},
            "output": {"name": o.name, "kind": o.kind, "layout": o.layout,
                       "person_channel": o.person_channel},
            **({"state": [{"input": st.input, "output": st.output, "shape": list(st.shape), "dtype": st.dtype}
                          for st in self.state]} if self.state else {}),
            **self.extra,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
