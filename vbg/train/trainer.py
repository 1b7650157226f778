"""The training loop: cached data, augmentation in a worker, AdamW (or
RMSProp, as the Tiramisu paper) with warm-up and cosine decay over epochs or
wall-clock minutes, an exponential moving average of the weights,
validation each epoch, checkpoints, resume, a CSV log and a PNG of the
curves.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..spec import oriented_size
from .augment import AugmentConfig, make_example
from .data import Sample
from .losses import SegLoss
from .models import build_model
from .plot import plot_curves

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class TrainConfig:
    out: str
    arch: str = "unet-lite"
    arch_options: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 1
    sizes: list[tuple[int, int]] = field(default_factory=lambda: [(256, 144)])  # (w, h) per batch
    val_size: tuple[int, int] = (256, 144)
    # "match": portrait images run at the swapped size (h, w), as the runtime
    # does for a spec with "orientation": "match"
    orientation: str = "fixed"
    batch: int = 16
    epochs: int = 100
    max_minutes: float | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    warmup: float = 0.03  # fraction of the run
    ema: float = 0.998  # 0 turns it off
    seed: int = 0
    workers: int = 1
    threads: int = 2
    dice_w: float = 1.0
    boundary_w: float = 1.0
    distill_fraction: float = 0.0  # share of each epoch drawn from teacher-labelled frames
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    augment: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # data description, for the record


def to_tensor(img: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """BGR uint8 (h, w, 3) -> normalised RGB float (3, h, w), as the exported spec says."""
    x = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    return (x - m) / s


def to_target(mask: np.ndarray, num_classes: int) -> torch.Tensor:
    if num_classes == 1:
        return torch.from_numpy(mask).float().div_(255.0)[None]
    return torch.from_numpy(mask.astype(np.int64))


class AugmentedSet(Dataset):
    """Items are ``(sample index, w, h, seed)``: each batch picks its own size."""

    def __init__(self, samples: list[Sample], cfg: TrainConfig) -> None:
        self.samples, self.cfg = samples, cfg
        self.aug = AugmentConfig(**cfg.augment)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        i, w, h, seed = item
        rng = np.random.default_rng(seed)
        img, mask = make_example(self.samples, i, (w, h), rng, self.aug, self.cfg.num_classes)
        return to_tensor(img, self.cfg.mean, self.cfg.std), to_target(mask, self.cfg.num_classes)


class EpochBatches:
    """Batch sampler: a fresh permutation each epoch, one size per batch."""

    def __init__(self, n_labelled: int, n_total: int, cfg: TrainConfig) -> None:
        self.n_labelled, self.n_total, self.cfg = n_labelled, n_total, cfg
        self.epoch = 0

    def batches(self) -> list[list[tuple[int, int, int, int]]]:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.epoch])
        idx = list(rng.permutation(self.n_labelled))
        n_extra = self.n_total - self.n_labelled
        if n_extra and cfg.distill_fraction > 0:
            k = int(round(self.n_labelled * cfg.distill_fraction))
            idx += list(self.n_labelled + rng.integers(0, n_extra, size=k))
            rng.shuffle(idx)
        out = []
        for b in range(0, len(idx) - cfg.batch + 1, cfg.batch):  # drop the ragged tail (BatchNorm)
            w, h = cfg.sizes[int(rng.integers(len(cfg.sizes)))]
            seeds = rng.integers(0, 2**31, size=cfg.batch)
            out.append([(int(i), w, h, int(s)) for i, s in zip(idx[b:b + cfg.batch], seeds)])
        return out

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


class EMA:
    """Exponential moving average of the weights (and BatchNorm statistics).

    The decay ramps up as ``(1 + t) / (10 + t)`` so early averages are not
    dominated by the random initial weights: short CPU runs need that.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1 - d)
            else:
                v.copy_(src[k])

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def lr_factor(frac: float, warmup: float) -> float:
    if frac < warmup:
        return 0.1 + 0.9 * frac / warmup
    t = min(1.0, (frac - warmup) / max(1e-9, 1 - warmup))
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(model: nn.Module, samples: list[Sample], cfg: TrainConfig, loss_fn: nn.Module,
             batch: int = 16) -> dict[str, float]:
    """Whole images stretched to ``val_size``, or to its portrait twin for
    portrait images under orientation "match" (as the runtime feeds them);
    mean per-image IoU at that size, person class for multi-class."""
    model.eval()
    ious, losses = [], []
    for (w, h), group in _by_input_size(samples, cfg).items():
        loss_sum, group_ious = _evaluate_group(model, group, (w, h), cfg, loss_fn, batch)
        losses.append(loss_sum)
        ious += group_ious
    return {"val_loss": sum(losses) / max(1, len(samples)), "val_iou": float(np.mean(ious)) if ious else float("nan")}


def input_size_for(shape: tuple[int, ...], size: tuple[int, int], orientation: str) -> tuple[int, int]:
    """The (w, h) an image of ``shape`` runs at: ``size``, or swapped for a
    portrait image when the orientation is "match"."""
    return oriented_size(size, shape[1], shape[0]) if orientation == "match" else size


def _by_input_size(samples: list[Sample], cfg: TrainConfig) -> dict[tuple[int, int], list[Sample]]:
    groups: dict[tuple[int, int], list[Sample]] = {}
    for s in samples:
        groups.setdefault(input_size_for(s.image.shape, cfg.val_size, cfg.orientation), []).append(s)
    return groups


def _evaluate_group(model: nn.Module, samples: list[Sample], size: tuple[int, int], cfg: TrainConfig,
                    loss_fn: nn.Module, batch: int) -> tuple[float, list[float]]:
    w, h = size
    ious, losses = [], []
    for b in range(0, len(samples), batch):
        chunk = samples[b:b + batch]
        x = torch.stack([to_tensor(cv2.resize(s.image, (w, h), interpolation=cv2.INTER_AREA), cfg.mean, cfg.std)
                         for s in chunk])
        interp = cv2.INTER_NEAREST if cfg.num_classes > 1 else cv2.INTER_LINEAR
        masks = [cv2.resize(s.mask, (w, h), interpolation=interp) for s in chunk]
        y = torch.stack([to_target(m, cfg.num_classes) for m in masks])
        logits = model(x)
        losses.append(float(loss_fn(logits, y)) * len(chunk))
        if cfg.num_classes == 1:
            pred = (logits[:, 0] > 0).numpy()
            gt = (y[:, 0] >= 0.5).numpy()
        else:
            pred = (logits.argmax(1) == 0).numpy()  # class 0 = foreground / person
            gt = (y == 0).numpy()
        for p, g in zip(pred, gt):
            union = np.logical_or(p, g).sum()
            ious.append(1.0 if union == 0 else float(np.logical_and(p, g).sum() / union))
    return sum(losses), ious


def _save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # no weight decay on norms and biases
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    other = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}]
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def train(cfg: TrainConfig, train_samples: list[Sample], val_samples: list[Sample],
          extra_samples: list[Sample] | None = None, resume: bool = False,
          progress: bool = True, init: str | Path | list[str | Path] | None = None) -> dict[str, Any]:
    """Run training; returns the final record (best IoU, epochs, minutes).

    ``resume``: continue ``out/last.pt`` (weights, optimiser, schedule).
    ``init``: start from a checkpoint's weights with a fresh optimiser and
    schedule (fine-tuning, or a warm restart of a finished run); several
    checkpoints of one network start from their weight average.
    """
    from tqdm import tqdm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    model = build_model(cfg.arch, cfg.num_classes, **cfg.arch_options)
    last = out / "last.pt"
    if init and not (resume and last.is_file()):
        inits = [init] if isinstance(init, (str, Path)) else list(init)
        start, conf = load_average(inits)  # checks that the checkpoints hold one network
        if network_of(conf) != network_of(asdict(cfg)):
            arch, opts, classes = conf.get("arch"), conf.get("arch_options", {}), conf.get("num_classes", 1)
            raise ValueError(f"{inits[0]} holds a {arch} model with {classes} classes and options {opts}, not this "
                             f"{cfg.arch} with {cfg.num_classes} and {cfg.arch_options}")
        model.load_state_dict(start.state_dict())
        log.info("starting from the weights of %s", " + ".join(map(str, inits)))
    ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
    opt = make_optimizer(model, cfg)
    loss_fn = SegLoss(cfg.num_classes, dice_w=cfg.dice_w, boundary_w=cfg.boundary_w)
    samples = list(train_samples) + list(extra_samples or [])
    sampler = EpochBatches(len(train_samples), len(samples), cfg)
    dataset = AugmentedSet(samples, cfg)
    rows: list[dict[str, Any]] = []
    start_epoch, step, elapsed0, best = 0, 0, 0.0, -1.0
    if resume and last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        if ema is not None:
            if isinstance(ck.get("ema"), dict) and "module" in ck["ema"]:
                ema.load_state_dict(ck["ema"])
            else:  # no average saved (or an older format): start it from the weights
                ema = EMA(model, cfg.ema)
        opt.load_state_dict(ck["optimizer"])
        start_epoch, step, elapsed0 = ck["epoch"] + 1, ck["step"], ck["elapsed"]
        best, rows = ck.get("best_iou", -1.0), ck.get("rows", [])
        log.info("resumed from %s at epoch %d", last, start_epoch)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str) + "\n")
    n_batches = len(sampler)
    total_steps = cfg.epochs * n_batches
    max_s = cfg.max_minutes * 60 if cfg.max_minutes else None
    t0 = time.monotonic() - elapsed0
    epoch = start_epoch
    for epoch in range(start_epoch, cfg.epochs):
        sampler.epoch = epoch
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers,
                            worker_init_fn=lambda _: torch.set_num_threads(1))
        model.train()
        tl, tn = 0.0, 0
        bar = tqdm(loader, total=n_batches, desc=f"epoch {epoch}", unit="batch", disable=not progress,
                   mininterval=20.0, leave=False)
        stop = False
        for x, y in bar:
            frac = step / total_steps
            if max_s:
                frac = max(frac, (time.monotonic() - t0) / max_s)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * lr_factor(frac, cfg.warmup)
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if ema is not None:
                ema.update(model)
            step += 1
            tl += loss.item() * len(x)
            tn += len(x)
            bar.set_postfix(loss=f"{tl / tn:.4f}", lr=f"{opt.param_groups[0]['lr']:.2e}", refresh=False)
            if max_s and time.monotonic() - t0 >= max_s:
                stop = True
                break
        bar.close()
        net = ema.module if ema is not None else model
        metrics = evaluate(net, val_samples, cfg, loss_fn) if val_samples else {"val_loss": float("nan"), "val_iou": float("nan")}
        elapsed = time.monotonic() - t0
        row = {"epoch": epoch, "step": step, "minutes": round(elapsed / 60, 2),
               "lr": opt.param_groups[0]["lr"], "train_loss": tl / max(1, tn), **metrics}
        rows.append(row)
        log.info("epoch %d: loss %.4f val_loss %.4f val_iou %.4f (%.1f min)", epoch, row["train_loss"],
                 metrics["val_loss"], metrics["val_iou"], elapsed / 60)
        state = {"config": asdict(cfg), "model": model.state_dict(),
                 "ema": ema.state_dict() if ema is not None else None, "optimizer": opt.state_dict(),
                 "epoch": epoch, "step": step, "elapsed": elapsed, "rows": rows}
        if metrics["val_iou"] > best or not val_samples:
            best = metrics["val_iou"]
            _save({"config": asdict(cfg), "weights": net.state_dict(), "epoch": epoch, "val_iou": best}, out / "best.pt")
        state["best_iou"] = best
        _save(state, last)
        _save({"config": asdict(cfg), "weights": net.state_dict(), "epoch": epoch,
               "val_iou": metrics["val_iou"]}, out / "final.pt")
        with open(out / "log.csv", "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            wr.writeheader()
            wr.writerows(rows)
        plot_curves(rows, out / "curves.png")
        if stop:
            break
    return {"best_iou": best, "epochs": epoch + 1, "minutes": round((time.monotonic() - t0) / 60, 1),
            "last": rows[-1] if rows else {}}


def network_of(conf: dict[str, Any]) -> tuple[Any, int, str]:
    """What two configs must share for one's weights to fit the other's model:
    architecture, number of classes and architecture options."""
    return (conf.get("arch"), int(conf.get("num_classes", 1)),
            json.dumps(conf.get("arch_options", {}), sort_keys=True))


def load_trained(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A checkpoint (best.pt / final.pt / last.pt) -> (model in eval mode, config dict)."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    model = build_model(cfg["arch"], cfg["num_classes"], **cfg.get("arch_options", {}))
    model.load_state_dict(checkpoint_weights(ck))
    return model.eval(), cfg


def load_average(paths: list[str | Path]) -> tuple[nn.Module, dict[str, Any]]:
    """The uniform weight average ("model soup") of checkpoints of one network,
    e.g. fine-tunes of one run with different seeds -> (model, first config).

    Floating-point tensors (weights and BatchNorm statistics) are averaged;
    integer counters are taken from the first checkpoint.
    """
    if not paths:
        raise ValueError("no checkpoints to average")
    model, cfg = load_trained(paths[0])
    if len(paths) == 1:
        return model, cfg
    total = {k: v.clone().double() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    for p in paths[1:]:
        other, ocfg = load_trained(p)
        if network_of(ocfg) != network_of(cfg):
            raise ValueError(f"{p} holds a {ocfg['arch']} model with {ocfg['num_classes']} classes and options "
                             f"{ocfg.get('arch_options', {})}, unlike {paths[0]}: only one network's weights average")
        for k, v in other.state_dict().items():
            if v.is_floating_point():
                total[k] += v.double()
    n = len(paths)
    model.load_state_dict({k: (v / n).float() if v.is_floating_point() else v for k, v in total.items()})
    return model.eval(), cfg


def checkpoint_weights(ck: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict a loaded checkpoint stands for: the exported weights of
    best.pt / final.pt, or last.pt's weight average (its raw weights without one)."""
    if "weights" in ck:
        sd = ck["weights"]
    elif ck.get("ema"):
        sd = ck["ema"]["module"]
    else:
        sd = ck["model"]
    if any(k.startswith("module.") for k in sd):  # an AveragedModel's state
        sd = {k[len("module."):]: v for k, v in sd.items() if k.startswith("module.")}
    return sd
