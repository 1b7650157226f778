"""Start training from an exported ONNX model (``vbg train --init model.onnx``).

The exporter folds each BatchNorm into the convolution before it, so an
ONNX file holds ``W, b`` per convolution where the checkpoint held
``W', gamma, beta, mean, var``. The shipped weights can still be trained on:

1. the ONNX convolutions are matched one to one, in execution order and by
   shape, with the network's ``nn.Conv2d`` modules;
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
    """The ``training`` block of the spec beside ``path`` (arch, options, classes)."""
    spec = Path(path).with_suffix(".json")
    try:
        info = json.loads(spec.read_text(encoding="utf-8")).get("training")
    except FileNotFoundError:
        raise VbgError(f"{path} has no spec beside it ({spec.name})",
                       "--init takes an ONNX model that vbg export wrote, with its .json") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise VbgError(f"cannot read {spec}: {exc}", "give an ONNX model that vbg export wrote") from None
    if not isinstance(info, dict) or "arch" not in info:
        raise VbgError(f"{spec} does not say which network {Path(path).name} is (no training.arch)",
                       "--init takes an ONNX model that vbg export wrote")
    return {"arch": info["arch"], "arch_options": info.get("arch_options") or {},
            "num_classes": int(info.get("num_classes", 1))}


def _conv_order(model: nn.Module, x: torch.Tensor) -> list[nn.Conv2d]:
    """The model's convolutions in the order a forward pass runs them."""
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return order


def _bn_after(model: nn.Module) -> dict[nn.Conv2d, nn.BatchNorm2d]:
    """conv -> the BatchNorm that directly follows it in a Sequential."""
    out: dict[nn.Conv2d, nn.BatchNorm2d] = {}
    for m in model.modules():
        if isinstance(m, nn.Sequential):
            kids = list(m.children())
            for a, b in zip(kids, kids[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    out[a] = b
    return out


def _onnx_convs(path: Path) -> list[tuple[np.ndarray, np.ndarray | None, dict[str, Any]]]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    # weights can also arrive as Constant nodes
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    out = []
    for n in graph.node:
        if n.op_type != "Conv":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.input[1] not in inits:
            raise VbgError(f"{path.name}: convolution {n.name} has no constant weights",
                           "--init takes a plain exported model")
        w = inits[n.input[1]]
        b = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        out.append((w, b, attrs))
    return out


@torch.no_grad()
def load_onnx_weights(model: nn.Module, path: str | Path, calibration: torch.Tensor,
                      batch: int = 16) -> float:
    """Load ``path``'s weights into ``model`` (built for the same network) and
    re-create its BatchNorms from ``calibration`` inputs (N, 3, H, W).

    Returns the largest |torch - ONNX Runtime| logit difference on the first
    calibration images; raises VbgError when the networks do not match."""
    path = Path(path)
    convs = _conv_order(model, calibration[:1])
    onnx_convs = _onnx_convs(path)
    if len(convs) != len(onnx_convs):
        raise VbgError(f"{path.name} has {len(onnx_convs)} convolutions, this network {len(convs)}",
                       "pass --arch and --arch-options the model was trained with")
    bns = _bn_after(model)
    for i, (conv, (w, b, attrs)) in enumerate(zip(convs, onnx_convs)):
        if tuple(w.shape) != tuple(conv.weight.shape) or int(attrs.get("group", 1)) != conv.groups \
                or tuple(attrs.get("strides", (1, 1))) != tuple(conv.stride):
            raise VbgError(f"{path.name}: convolution {i} is {tuple(w.shape)}, this network's "
                           f"{tuple(conv.weight.shape)}", "pass the --arch the model was trained with")
        conv.weight.copy_(torch.from_numpy(w.astype(np.float32)))
        bias = torch.zeros(conv.out_channels) if b is None else torch.from_numpy(b.astype(np.float32))
        bn = bns.get(conv)
        if bn is None:
            if conv.bias is None:
                if b is not None and np.abs(b).max() > 0:
                    raise VbgError(f"{path.name}: convolution {i} has a bias this network has no place for",
                                   "pass the --arch the model was trained with")
            else:
                conv.bias.copy_(bias)
            continue
        # identity BatchNorm plus the folded bias: eval computes the ONNX function
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.copy_(bias)
    _calibrate(model, bns, calibration, batch)
    return _check(model, path, calibration[:4])


def _calibrate(model: nn.Module, bns: dict[nn.Conv2d, nn.BatchNorm2d], x: torch.Tensor, batch: int) -> None:
    """Per-channel mean and variance of each folded convolution's output."""
    sums: dict[nn.Conv2d, list[torch.Tensor]] = {c: [torch.zeros(c.out_channels, dtype=torch.float64)] * 3
                                                 for c in bns}

    def hook(conv: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        y = out.double()
        s = sums[conv]
        sums[conv] = [s[0] + y.sum((0, 2, 3)), s[1] + (y * y).sum((0, 2, 3)),
                      s[2] + y.numel() / y.shape[1]]

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
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    xs = x.contiguous().numpy().astype(np.float32)
    got = np.concatenate([sess.run(None, {name: xs[i:i + 1]})[0] for i in range(len(xs))])
    ref = model.eval()(x).numpy()
    err = float(np.abs(ref - got).max())
    if err > 1e-3 * max(1.0, float(np.abs(got).max())):
        raise VbgError(f"{path.name}: the loaded network differs from the ONNX model by {err:.3g}",
                       "pass the --arch the model was trained with")
    log.info("loaded %s into the network (max logit difference %.2g)", path.name, err)
    return err
