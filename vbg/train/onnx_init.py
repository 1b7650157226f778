"""Start training from an exported ONNX model (``vbg train --init model.onnx``).

The exporter folds each BatchNorm into the convolution before it, so an
ONNX file holds ``W, b`` per convolution where the checkpoint held
``W', gamma, beta, mean, var``. The shipped weights can still be trained on:

1. the ONNX Conv, ConvTranspose and (unfolded) BatchNormalization nodes are
   matched one to one, in execution order and by shape, with the network's
   modules;
2. each folded convolution gets ``W`` and its BatchNorm becomes ``x + b``;
3. the BatchNorm statistics are measured on calibration images (``mu``,
   ``var`` of the convolution's output per channel) and the BatchNorm set to
   ``gamma = sqrt(var + eps)``, ``beta = mu + b``.

After step 3 the network in eval mode computes exactly the ONNX function,
and in training mode its batch statistics start near the running ones, so
a fine-tune does not begin with a jolt.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import VbgError

log = logging.getLogger(__name__)


def onnx_training_info(path: str | Path) -> dict[str, Any]:
    """The ``training`` block of the spec beside ``path``: arch, options, classes
    and (where recorded) the split it was trained with."""
    spec = Path(path).with_suffix(".json")
    hint = "--init takes an FP32 ONNX model that vbg export wrote, with its .json beside it"
    try:
        doc = json.loads(spec.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VbgError(f"{path} has no spec beside it ({spec.name})", hint) from None
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
        raise VbgError(f"cannot read {spec}: {exc}", hint) from None
    info = doc.get("training") if isinstance(doc, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("arch"), str):
        raise VbgError(f"{spec} does not say which network {Path(path).name} is (no training.arch)", hint)
    try:
        out = {"arch": info["arch"], "arch_options": dict(info.get("arch_options") or {}),
               "num_classes": int(info.get("num_classes", 1))}
        if isinstance(info.get("split"), dict):
            out["split"] = {k: float(info["split"][k]) for k in ("val_percent", "test_percent")}
    except (TypeError, ValueError, KeyError):
        raise VbgError(f"{spec}: training.arch_options, num_classes or split is malformed", hint) from None
    return out


def check_onnx_init(path: str | Path) -> dict[str, Any]:
    """Everything about an ``--init`` ONNX model that can be checked before any data is loaded:
    its spec, that the file parses, and that its weights are FP32. Returns the spec's training block."""
    from ..spec import ModelSpec

    info = onnx_training_info(path)
    ModelSpec.load(Path(path).with_suffix(".json"))  # the input size the weights are calibrated at
    _onnx_layers(Path(path))
    return info


LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d)
ONNX_OPS = {nn.Conv2d: "Conv", nn.ConvTranspose2d: "ConvTranspose", nn.BatchNorm2d: "BatchNormalization"}


def _onnx_op(m: nn.Module) -> str:
    """The ONNX node a layer exports to (a subclass such as unet.SubPixelHead: its base's)."""
    return next(op for kind, op in ONNX_OPS.items() if isinstance(m, kind))


def _layer_order(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The model's convolutions and BatchNorms in the order a forward pass runs them."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
             for m in model.modules() if isinstance(m, LAYERS)]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return order


def _bn_after(model: nn.Module) -> dict[nn.Module, nn.BatchNorm2d]:
    """conv -> the BatchNorm that directly follows it in a Sequential (the pairs the exporter folds)."""
    out: dict[nn.Module, nn.BatchNorm2d] = {}
    for m in model.modules():
        if isinstance(m, nn.Sequential):
            kids = list(m.children())
            for a, b in zip(kids, kids[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    out[a] = b
    return out


Layer = tuple[str, list[np.ndarray | None], dict[str, Any]]


def _onnx_layers(path: Path) -> list[Layer]:
    """(op, constant inputs after the first, attributes) of every Conv, ConvTranspose and
    BatchNormalization node, in graph order."""
    import onnx
    from onnx import numpy_helper

    hint = "--init takes an FP32 ONNX model that vbg export wrote"
    try:
        graph = onnx.load(str(path)).graph
    except OSError as exc:
        raise VbgError(f"cannot read {path}: {exc.strerror or exc}", hint) from None
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise VbgError(f"{path} is not an ONNX model ({type(exc).__name__})", hint) from None
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:  # weights can also arrive as Constant nodes, or as Identity of a shared initializer
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        elif n.op_type == "Identity" and n.input[0] in consts:
            consts[n.output[0]] = consts[n.input[0]]
    out: list[Layer] = []
    for n in graph.node:
        if n.op_type not in ONNX_OPS.values():
            continue
        if n.input[1] not in consts:
            raise VbgError(f"{path.name}: {n.op_type} {n.name} has no constant weights", hint)
        ins = [np.array(consts[i]) if i in consts else None for i in n.input[1:]]  # writable copies
        if any(a is not None and a.dtype != np.float32 for a in ins):
            raise VbgError(f"{path.name} holds {next(a.dtype for a in ins if a is not None)} weights", hint)
        out.append((n.op_type, ins, {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}))
    return out


def _attrs_match(m: nn.Module, attrs: dict[str, Any]) -> bool:
    if isinstance(m, nn.BatchNorm2d):
        return True
    pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
    return (int(attrs.get("group", 1)) == m.groups and tuple(attrs.get("strides", (1, 1))) == tuple(m.stride)
            and tuple(attrs.get("dilations", (1, 1))) == tuple(m.dilation)
            and pads[:2] == tuple(m.padding) and pads[2:] == tuple(m.padding))


@torch.no_grad()
def load_onnx_weights(model: nn.Module, path: str | Path, calibration: torch.Tensor,
                      batch: int = 16) -> float:
    """Load ``path``'s weights into ``model`` (built for the same network) and
    re-create its folded BatchNorms from ``calibration`` inputs (N, 3, H, W).

    Returns the largest |torch - ONNX Runtime| logit difference on the first
    calibration images; raises VbgError when the networks do not match."""
    path = Path(path)
    hint = "pass the --arch and --arch-options the model was trained with"
    bns = _bn_after(model)
    folded = set(bns.values())
    # a folded BatchNorm has no node of its own in the ONNX graph
    layers = [m for m in _layer_order(model, calibration[:1]) if m not in folded]
    onnx_layers = _onnx_layers(path)
    ops = [op for op, _, _ in onnx_layers]
    if ops != [_onnx_op(m) for m in layers]:
        raise VbgError(f"{path.name}'s layers ({len(ops)}: {ops.count('Conv')} Conv, "
                       f"{ops.count('ConvTranspose')} ConvTranspose, {ops.count('BatchNormalization')} "
                       f"BatchNormalization) are not this network's ({len(layers)})", hint)
    for i, (m, (op, ins, attrs)) in enumerate(zip(layers, onnx_layers)):
        if isinstance(m, nn.BatchNorm2d):  # not folded: the ONNX node holds all four tensors
            scale, bias, mean, var = (torch.from_numpy(a) for a in ins)  # type: ignore[arg-type]
            if scale.shape != m.weight.shape:
                raise VbgError(f"{path.name}: BatchNorm {i} has {scale.numel()} channels, this network's "
                               f"{m.weight.numel()}", hint)
            m.weight.copy_(scale)
            m.bias.copy_(bias)
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            continue
        w, b = ins[0], ins[1] if len(ins) > 1 else None
        if tuple(w.shape) != tuple(m.weight.shape) or not _attrs_match(m, attrs):  # type: ignore[union-attr]
            raise VbgError(f"{path.name}: {op} {i} is {tuple(w.shape)}, this network's "  # type: ignore[union-attr]
                           f"{tuple(m.weight.shape)} (or its stride, padding or groups differ)", hint)
        m.weight.copy_(torch.from_numpy(w))
        bias = torch.zeros(m.weight.shape[1 if op == "ConvTranspose" else 0]) if b is None else torch.from_numpy(b)
        bn = bns.get(m)
        if bn is None:
            if m.bias is not None:
                m.bias.copy_(bias)
            elif b is not None and np.abs(b).max() > 0:
                raise VbgError(f"{path.name}: {op} {i} has a bias this network has no place for", hint)
            continue
        if m.bias is not None:  # the folded bias goes to the BatchNorm
            m.bias.zero_()
        # identity BatchNorm plus the folded bias: eval computes the ONNX function
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.copy_(bias)
    _calibrate(model, bns, calibration, batch)
    return _check(model, path, calibration[:4])


def _calibrate(model: nn.Module, bns: dict[nn.Module, nn.BatchNorm2d], x: torch.Tensor, batch: int) -> None:
    """Per-channel mean and variance of each folded convolution's output."""
    # per conv: sum of x, sum of x^2 per channel, and the count of values per channel
    sums: dict[nn.Module, tuple[torch.Tensor, torch.Tensor, float]] = {}

    def hook(conv: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        y = out.double()
        s, ss, n = sums.get(conv, (0.0, 0.0, 0.0))
        sums[conv] = (s + y.sum((0, 2, 3)), ss + (y * y).sum((0, 2, 3)), n + y.numel() / y.shape[1])

    hooks = [c.register_forward_hook(hook) for c in bns]
    try:
        model.eval()
        for i in range(0, len(x), batch):
            model(x[i:i + batch])
    finally:
        for h in hooks:
            h.remove()
    for conv, bn in bns.items():
        s, ss, n = sums[conv]
        mu = s / n
        var = (ss / n - mu * mu).clamp_min(0)
        b = bn.bias.double().clone()
        bn.running_mean.copy_(mu.float())
        bn.running_var.copy_(var.float())
        bn.weight.copy_(torch.sqrt(var + bn.eps).float())
        bn.bias.copy_((mu + b).float())


def _check(model: nn.Module, path: Path, x: torch.Tensor) -> float:
    from .export import torch_onnx_gap

    err, ok = torch_onnx_gap(model, path, x)
    if not ok:
        raise VbgError(f"{path.name}: the loaded network differs from the ONNX model by {err:.3g}",
                       "pass the --arch and --arch-options the model was trained with")
    log.info("loaded %s into the network (max logit difference %.2g)", path.name, err)
    return err
