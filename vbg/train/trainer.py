"""The training loop: cached data, augmentation in a worker, AdamW (or
RMSProp, as the Tiramisu paper) with warm-up and cosine decay over epochs or
wall-clock minutes, an exponential moving average of the weights,
validation each epoch, checkpoints, resume, a CSV log and a PNG of the
curves.

Each epoch mixes pools of examples (``TrainConfig.mix``):

* ``labelled``: the labelled training images (one pass per epoch sets the epoch's length);
* ``negative``: people-free scenes with all-background masks, drawn half
  uniformly and half in proportion to how much person the model currently
  sees in each (hard-negative mining, refreshed every ``mine_every`` epochs);
* ``paste``: 1-3 cut-out people pasted onto people-free scenes;
* ``teacher``: unlabelled images and video frames with the teachers' soft
  labels and per-pixel weights.

Checkpoints are chosen by ``val_score``: the validation IoU minus the mean
share of pixels called person on the people-free validation scenes.
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

from ..errors import VbgError
from ..spec import ModelSpec, oriented_size
from .augment import AugmentConfig, cast_shadow, make_example, photometric, recolour
from .data import Sample
from .grow import GrowError, grow_into
from .losses import SegLoss, consistency_loss, sensor_noise
from .models import build_model
from .onnx_init import load_onnx_weights, onnx_training_info
from .plot import plot_curves
from .scenes import Cutout, compose

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A run that cannot start as configured (architecture, checkpoints, pools): the CLI says it in one line."""

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
    # noisy-pair stability: weight of the consistency term (0 = off), the share of
    # each batch that gets a noisy twin, and the strongest noise (0-255 units)
    consistency: float = 0.0
    consistency_share: float = 0.25
    consistency_noise: float = 4.0
    # share of each epoch from each pool (labelled, negative, paste, teacher); normalised
    mix: dict[str, float] = field(default_factory=lambda: {"labelled": 1.0})
    mine_every: int = 2  # epochs between hard-negative mining passes (0 = off)
    channels_last: bool = True  # 1.4x faster convolutions on x86 CPUs
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


POOLS = ("labelled", "negative", "paste", "teacher")


class AugmentedSet(Dataset):
    """Items are ``(pool, index, w, h, seed)``: each batch picks its own size.

    Returns (image tensor, target, weight (1, h, w) in [0, 1]).
    """

    def __init__(self, pools: dict[str, list[Sample]], cutouts: list[Cutout], cfg: TrainConfig) -> None:
        self.pools, self.cutouts, self.cfg = pools, cutouts, cfg
        self.aug = AugmentConfig(**cfg.augment)

    def __len__(self) -> int:
        return sum(len(v) for v in self.pools.values())

    def __getitem__(self, item: tuple[str, int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pool, i, w, h, seed = item
        rng = np.random.default_rng(seed)
        if pool == "paste":
            scenes = self.pools["negative"]
            bg = scenes[int(rng.integers(len(scenes)))].image
            img, mask = compose(recolour(bg, None, rng, self.aug), self.cutouts, (w, h), rng)
            img = cast_shadow(img, mask, rng, self.aug.shadow_p)
            img, weight = photometric(img, rng, self.aug), None
        else:
            img, mask, weight = make_example(self.pools[pool], i, (w, h), rng, self.aug, self.cfg.num_classes)
        wt = (torch.ones(1, h, w) if weight is None
              else torch.from_numpy(weight).float().div_(255.0)[None])
        return to_tensor(img, self.cfg.mean, self.cfg.std), to_target(mask, self.cfg.num_classes), wt


class EpochBatches:
    """Batch sampler: each epoch one pass over the labelled pool, the other
    pools mixed in by ``cfg.mix``, a fresh order, one input size per batch."""

    def __init__(self, sizes: dict[str, int], cfg: TrainConfig) -> None:
        self.sizes, self.cfg = sizes, cfg
        self.epoch = 0
        self.negative_p: np.ndarray | None = None  # hard-negative mining's draw probabilities
        # a pool without data drops out; pasting needs scenes to paste onto
        mix = {k: v for k, v in cfg.mix.items() if v > 0 and sizes.get("negative" if k == "paste" else k, 0)}
        total = sum(mix.values())
        self.mix = {k: v / total for k, v in mix.items()}
        if "labelled" not in self.mix:
            raise ConfigError("the mix needs a labelled share")

    def draws(self) -> list[tuple[str, int]]:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.epoch])
        n_lab = self.sizes["labelled"]
        n_all = int(round(n_lab / self.mix["labelled"]))
        out: list[tuple[str, int]] = [("labelled", int(i)) for i in rng.permutation(n_lab)]
        for pool, share in self.mix.items():
            if pool == "labelled":
                continue
            k = int(round(n_all * share))
            if pool == "paste":
                idx = np.zeros(k, np.int64)
            elif pool == "negative" and self.negative_p is not None:
                idx = rng.choice(self.sizes[pool], size=k, p=self.negative_p)
            else:
                idx = rng.integers(0, self.sizes[pool], size=k)
            out += [(pool, int(i)) for i in idx]
        order = rng.permutation(len(out))
        return [out[i] for i in order]

    def batches(self) -> list[list[tuple[str, int, int, int, int]]]:
        cfg = self.cfg
        draws = self.draws()
        rng = np.random.default_rng([cfg.seed, self.epoch, 1])
        out = []
        for b in range(0, len(draws) - cfg.batch + 1, cfg.batch):  # drop the ragged tail (BatchNorm)
            w, h = cfg.sizes[int(rng.integers(len(cfg.sizes)))]
            seeds = rng.integers(0, 2**31, size=cfg.batch)
            out.append([(pool, i, w, h, int(sd)) for (pool, i), sd in zip(draws[b:b + cfg.batch], seeds)])
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
             batch: int = 16, negatives: list[Sample] | None = None) -> dict[str, Any]:
    """Whole images stretched to ``val_size``, or to its portrait twin for
    portrait images under orientation "match" (as the runtime feeds them);
    mean per-image IoU at that size, person class for multi-class; the same
    per source. With ``negatives``: the mean share of their pixels called
    person (``fp_area``), the share of them above 1 % (``fp_over_1``), and
    ``val_score`` = IoU - fp_area, what checkpoints are chosen by."""
    model.eval()
    ious, losses, keys = [], [], []
    for (w, h), group in _by_input_size(samples, cfg).items():
        loss_sum, group_ious = _evaluate_group(model, group, (w, h), cfg, loss_fn, batch)
        losses.append(loss_sum)
        ious += group_ious
        keys += [s.source for s in group]
    out: dict[str, Any] = {"val_loss": sum(losses) / max(1, len(samples)),
                           "val_iou": float(np.mean(ious)) if ious else float("nan")}
    for src in sorted(set(keys)):
        out[f"iou_{src}"] = float(np.mean([v for v, k in zip(ious, keys) if k == src]))
    score = out["val_iou"]
    if negatives:
        areas = person_areas(model, negatives, cfg)
        out["fp_area"] = float(np.mean(areas))
        out["fp_over_1"] = float(np.mean(areas > 0.01))
        score -= out["fp_area"]
    out["val_score"] = score
    return out


@torch.no_grad()
def person_areas(model: nn.Module, samples: list[Sample], cfg: TrainConfig, batch: int = 32) -> np.ndarray:
    """Per image, the share of pixels the model calls person (at ``val_size``)."""
    model.eval()
    out = np.zeros(len(samples), np.float64)
    w, h = cfg.val_size
    for b in range(0, len(samples), batch):
        chunk = samples[b:b + batch]
        x = torch.stack([to_tensor(cv2.resize(s.image, (w, h), interpolation=cv2.INTER_AREA), cfg.mean, cfg.std)
                         for s in chunk])
        logits = model(_layout(x, cfg))
        pred = logits[:, 0] > 0 if cfg.num_classes == 1 else logits.argmax(1) == 0
        out[b:b + len(chunk)] = pred.float().mean((1, 2)).numpy()
    return out


def calibration_inputs(samples: list[Sample], size: tuple[int, int], cfg: TrainConfig,
                       n: int = 128) -> torch.Tensor:
    """Up to ``n`` whole images (an even spread of ``samples``) stretched to
    ``size`` (w, h), as the network sees them: BatchNorm statistics for
    a start from an ONNX model."""
    if not samples:
        raise ConfigError("--init from an ONNX model needs labelled training images to calibrate on")
    idx = np.linspace(0, len(samples) - 1, min(n, len(samples))).round().astype(int)
    return torch.stack([to_tensor(cv2.resize(samples[i].image, size, interpolation=cv2.INTER_AREA),
                                  cfg.mean, cfg.std) for i in idx])


def _layout(x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x


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
        logits = model(_layout(x, cfg))
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


def _batch_loss(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor,
                wt: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """The segmentation loss, plus the noisy-pair term when ``cfg.consistency``
    is on. The noisy twins ride in the same forward pass, so batch norm sees
    one batch and the two masks differ only by the noise."""
    if not cfg.consistency:
        return loss_fn(model(_layout(x, cfg)), y, wt)
    k = max(1, round(len(x) * cfg.consistency_share))
    twins = sensor_noise(x[:k], cfg.std, cfg.consistency_noise)
    logits = model(_layout(torch.cat([x, twins]), cfg))
    main, noisy = logits[:len(x)], logits[len(x):]
    return loss_fn(main, y, wt) + cfg.consistency * consistency_loss(main[:k], noisy)


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


def train(cfg: TrainConfig, train_samples: list[Sample], val_samples: list[Sample], *,
          negatives: list[Sample] | None = None, teacher: list[Sample] | None = None,
          cutouts: list[Cutout] | None = None, val_negatives: list[Sample] | None = None,
          resume: bool = False, progress: bool = True,
          init: str | Path | list[str | Path] | None = None) -> dict[str, Any]:
    """Run training; returns the final record (best score, epochs, minutes).

    ``negatives``, ``teacher`` and ``cutouts`` feed the pools of
    ``cfg.mix`` (see the module docstring); ``val_negatives`` are the
    people-free validation scenes.
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
    try:
        model = build_model(cfg.arch, cfg.num_classes, **cfg.arch_options)
    except (ValueError, TypeError) as exc:  # unknown architecture or options
        raise ConfigError(str(exc)) from None
    last = out / "last.pt"
    if init and not (resume and last.is_file()):
        inits = [init] if isinstance(init, (str, Path)) else list(init)
        from_onnx = any(str(p).lower().endswith(".onnx") for p in inits)
        if from_onnx and len(inits) > 1:
            raise ConfigError("--init takes one ONNX model, or checkpoints to average, not both")
        if from_onnx:
            start, conf = None, onnx_training_info(inits[0])
        else:
            start, conf = load_average(inits)  # checks that the checkpoints hold one network
        smaller = check_can_start(conf, asdict(cfg), inits[0])
        check_same_split(conf, cfg, inits[0])
        if start is None:
            start = model if smaller is None else smaller
            size = ModelSpec.load(Path(inits[0]).with_suffix(".json")).size
            load_onnx_weights(start, inits[0], calibration_inputs(train_samples, size, cfg))
        if smaller is not None:
            log.warning("%s: %d new residual blocks or heads start as the identity", cfg.arch, grow_into(start, model))
        elif start is not model:
            model.load_state_dict(start.state_dict())
        log.info("starting from the weights of %s", " + ".join(map(str, inits)))
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
    opt = make_optimizer(model, cfg)
    loss_fn = SegLoss(cfg.num_classes, dice_w=cfg.dice_w, boundary_w=cfg.boundary_w)
    pools = {"labelled": list(train_samples), "negative": list(negatives or []), "teacher": list(teacher or [])}
    cuts = list(cutouts or [])
    sampler = EpochBatches({k: len(v) for k, v in pools.items()}, cfg)
    if "paste" in sampler.mix and not cuts:
        raise ConfigError("the paste pool needs cut-outs of people (--cutouts, or labelled people)")
    dataset = AugmentedSet(pools, cuts, cfg)
    rows: list[dict[str, Any]] = []
    start_epoch, step, elapsed0, best = 0, 0, 0.0, -math.inf
    if resume and last.is_file():
        ck = read_checkpoint(last)
        model.load_state_dict(ck["model"])
        if ema is not None:
            if isinstance(ck.get("ema"), dict) and "module" in ck["ema"]:
                ema.load_state_dict(ck["ema"])
            else:  # no average saved (or an older format): start it from the weights
                ema = EMA(model, cfg.ema)
        opt.load_state_dict(ck["optimizer"])
        start_epoch, step, elapsed0 = ck["epoch"] + 1, ck["step"], ck["elapsed"]
        best, rows = ck.get("best_score", ck.get("best_iou", -math.inf)), ck.get("rows", [])
        log.info("resumed from %s at epoch %d", last, start_epoch)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str) + "\n")
    n_batches = len(sampler)
    total_steps = cfg.epochs * n_batches
    max_s = cfg.max_minutes * 60 if cfg.max_minutes else None
    t0 = time.monotonic() - elapsed0
    epoch = start_epoch
    for epoch in range(start_epoch, cfg.epochs):
        sampler.epoch = epoch
        if cfg.mine_every and pools["negative"] and "negative" in sampler.mix and epoch % cfg.mine_every == 0 \
                and (epoch > 0 or init or resume):
            sampler.negative_p = mine_negatives(ema.module if ema is not None else model, pools["negative"], cfg)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers,
                            worker_init_fn=lambda _: torch.set_num_threads(1))
        model.train()
        tl, tn = 0.0, 0
        bar = tqdm(loader, total=n_batches, desc=f"epoch {epoch}", unit="batch", disable=not progress,
                   mininterval=20.0, leave=False)
        stop = False
        for x, y, wt in bar:
            frac = step / total_steps
            if max_s:
                frac = max(frac, (time.monotonic() - t0) / max_s)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * lr_factor(frac, cfg.warmup)
            loss = _batch_loss(model, loss_fn, x, y, wt, cfg)
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
        metrics: dict[str, Any] = (evaluate(net, val_samples, cfg, loss_fn, negatives=val_negatives)
                                   if val_samples else {"val_loss": math.nan, "val_iou": math.nan,
                                                        "val_score": math.nan})
        elapsed = time.monotonic() - t0
        row = {"epoch": epoch, "step": step, "minutes": round(elapsed / 60, 2),
               "lr": opt.param_groups[0]["lr"], "train_loss": tl / max(1, tn), **metrics}
        rows.append(row)
        log.info("epoch %d: loss %.4f val_loss %.4f val_iou %.4f fp_area %.4f score %.4f (%.1f min)", epoch,
                 row["train_loss"], metrics["val_loss"], metrics["val_iou"], metrics.get("fp_area", math.nan),
                 metrics["val_score"], elapsed / 60)
        state = {"config": asdict(cfg), "model": model.state_dict(),
                 "ema": ema.state_dict() if ema is not None else None, "optimizer": opt.state_dict(),
                 "epoch": epoch, "step": step, "elapsed": elapsed, "rows": rows}
        if metrics["val_score"] > best or not val_samples:
            best = metrics["val_score"]
            _save({"config": asdict(cfg), "weights": net.state_dict(), "epoch": epoch, "val_iou": metrics["val_iou"],
                   "val_score": best}, out / "best.pt")
        state["best_score"] = best
        _save(state, last)
        _save({"config": asdict(cfg), "weights": net.state_dict(), "epoch": epoch,
               "val_iou": metrics["val_iou"], "val_score": metrics["val_score"]}, out / "final.pt")
        fields_ = list(dict.fromkeys(k for r in rows for k in r))  # sources may appear later
        with open(out / "log.csv", "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=fields_)
            wr.writeheader()
            wr.writerows(rows)
        plot_curves(rows, out / "curves.png")
        if stop:
            break
    return {"best_score": best, "epochs": epoch + 1, "minutes": round((time.monotonic() - t0) / 60, 1),
            "last": rows[-1] if rows else {}}


def mine_negatives(model: nn.Module, negatives: list[Sample], cfg: TrainConfig) -> np.ndarray:
    """Draw probabilities for the negative pool: half uniform, half in
    proportion to the share of pixels the model calls person in each."""
    areas = person_areas(model, negatives, cfg)
    n = len(negatives)
    p = np.full(n, 0.5 / n)
    if areas.sum() > 0:
        p += 0.5 * areas / areas.sum()
    else:
        p *= 2
    log.info("hard negatives: mean person area %.4f, %.1f %% of scenes above 1 %%", areas.mean(),
             100 * (areas > 0.01).mean())
    return p / p.sum()


def split_of_run(conf: dict[str, Any]) -> tuple[float, float] | None:
    """(val_percent, test_percent) a checkpoint's config or an ONNX spec's training block
    records, or None when it records none."""
    rec = conf.get("split") or conf.get("meta") or {}
    try:
        return float(rec["val_percent"]), float(rec["test_percent"])
    except (KeyError, TypeError, ValueError):
        return None


def check_same_split(conf: dict[str, Any], cfg: TrainConfig, source: str | Path) -> None:
    """A start from weights trained on another split would validate and test partly on their own training
    images: refused."""
    theirs, ours = split_of_run(conf), split_of_run({"meta": cfg.meta})
    if theirs is not None and ours is not None and theirs != ours:
        raise ConfigError(f"{source} was trained with --val-percent {theirs[0]:g} --test-percent {theirs[1]:g}, "
                          f"this run has {ours[0]:g} and {ours[1]:g}: its validation and test images would "
                          "include ones it was trained on")


def network_of(conf: dict[str, Any]) -> tuple[Any, int, str]:
    """What two configs must share for one's weights to fit the other's model:
    architecture, number of classes and architecture options."""
    return (conf.get("arch"), int(conf.get("num_classes", 1)),
            json.dumps(conf.get("arch_options", {}), sort_keys=True))


def check_can_start(conf: dict[str, Any], target: dict[str, Any], source: str | Path) -> nn.Module | None:
    """Check that the network of ``conf`` (a checkpoint's or an ONNX spec's) can start a run of ``target``'s.

    None for the same network; for a shallower one that grows into the target (grow.py), that network,
    built fresh for the trained weights to be loaded into; ConfigError otherwise."""
    if network_of(conf) == network_of(target):
        return None
    arch, opts, classes = conf.get("arch"), conf.get("arch_options", {}), conf.get("num_classes", 1)
    try:
        if int(classes) != int(target.get("num_classes", 1)):
            raise GrowError("the number of classes differs")
        smaller = build_model(str(arch), int(classes), **opts)
        grow_into(smaller, build_model(target["arch"], int(target.get("num_classes", 1)),
                                       **target.get("arch_options", {})))
    except (ValueError, TypeError) as exc:  # GrowError is a ValueError
        raise ConfigError(f"{source} holds a {arch} model with {classes} classes and options {opts}, not this "
                          f"{target['arch']} with {target.get('num_classes', 1)} and "
                          f"{target.get('arch_options', {})} ({exc})") from None
    return smaller


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A vbg checkpoint's dict, or a one-line VbgError. ``weights_only``: a checkpoint is tensors and
    plain values, so unpickling never runs code from the file."""
    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise VbgError(f"checkpoint {path} not found", "check the path (runs/NAME/best.pt)") from None
    except IsADirectoryError:
        raise VbgError(f"checkpoint {path} is a folder", "give its best.pt, final.pt or last.pt") from None
    except OSError as exc:
        raise VbgError(f"cannot read checkpoint {path}: {exc.strerror}", "check the file") from None
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a bad file
        raise VbgError(f"{path} is not a vbg checkpoint ({type(exc).__name__})",
                       "give a best.pt, final.pt or last.pt that vbg train wrote") from None
    if not isinstance(ck, dict) or "config" not in ck:
        raise VbgError(f"{path} is not a vbg checkpoint (no config in it)",
                       "give a best.pt, final.pt or last.pt that vbg train wrote")
    return ck


def load_trained(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A checkpoint (best.pt / final.pt / last.pt) -> (model in eval mode, config dict)."""
    ck = read_checkpoint(path)
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
        raise ConfigError("no checkpoints to average")
    model, cfg = load_trained(paths[0])
    if len(paths) == 1:
        return model, cfg
    total = {k: v.clone().double() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    for p in paths[1:]:
        other, ocfg = load_trained(p)
        if network_of(ocfg) != network_of(cfg):
            raise ConfigError(f"{p} holds a {ocfg['arch']} model with {ocfg['num_classes']} classes and options "
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
