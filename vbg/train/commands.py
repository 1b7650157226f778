"""``vbg train``: train a segmentation model from labelled folders.

Example (see assets/models/README.md for the shipped default's commands)::

    vbg train --data ../shared/data/person-seg --arch unet-lite --out runs/unet-lite \
        --negatives ../shared/data/scenes/indoor --cutouts ../shared/data/copy-paste/people \
        --distill ../shared/data/unlabelled/streets --teacher benchmarks/peers/mediapipe_selfie.json \
        --size 256x144 --size 224x224 --max-minutes 75 --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from ..errors import VbgError
from ..spec import ORIENTATIONS
from . import require_torch
from .data import TEST_PERCENT, VAL_PERCENT

log = logging.getLogger(__name__)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WxH (e.g. 256x144)") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError("size must be at least 16x16")
    return w, h


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="labelled data: DIR/images + DIR/masks, or DIR/<source>/{images,masks} (repeatable)")
    p.add_argument("--format", choices=("folder", "pet", "coco"), default="folder",
                   help="folder: image/mask pairs; pet: Oxford-IIIT Pet (images/, annotations/trimaps/); "
                        "coco: images + instances JSON with person polygons")
    p.add_argument("--coco-json", help="COCO instances JSON (with --format coco)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, curves.png")
    p.add_argument("--arch", default="unet-lite",
                   help="unet-lite, unet-lite-m, unet, unet-small, deeplabv3, deeplabv3-os8, fcdensenet56/67/103, fcn8s")
    p.add_argument("--up", choices=("transpose", "bilinear", "nearest", "unpool"),
                   help="U-Net up-sampling (default bilinear)")
    p.add_argument("--arch-options", default="{}", help="JSON of extra model arguments")
    p.add_argument("--classes", type=int, default=1, help="1 = binary person mask; >1 = class-id masks")
    p.add_argument("--size", type=parse_size, action="append", metavar="WxH",
                   help="training input size, repeatable: each batch picks one (default 256x144)")
    p.add_argument("--val-size", type=parse_size, metavar="WxH", help="validation input size (default: first --size)")
    p.add_argument("--orientation", choices=ORIENTATIONS, default="fixed",
                   help="match: portrait images run at the portrait twin of the size (HxW), in training, "
                        "validation and the exported model")
    p.add_argument("--augment", default="{}", metavar="JSON",
                   help='augmentation overrides, e.g. \'{"paste_p": 0.1, "rotate": 5}\' (see vbg/train/augment.py)')
    p.add_argument("--val-percent", type=float, default=VAL_PERCENT, help="fixed validation split by file name")
    p.add_argument("--test-percent", type=float, default=TEST_PERCENT,
                   help="fixed test split by file name: never trained or chosen on, only reported")
    p.add_argument("--negatives", action="append", default=[], metavar="DIR",
                   help="people-free images (repeatable): all-background samples, and scenes to paste people onto")
    p.add_argument("--cutouts", action="append", default=[], metavar="DIR",
                   help="RGBA PNGs of people to paste (repeatable); the labelled people are pasted too")
    p.add_argument("--mix", metavar="POOL=SHARE,...",
                   help="share of each epoch from each pool: labelled, negative, paste, teacher (default "
                        + ",".join(f"{k}={v:g}" for k, v in DEFAULT_MIX.items()) + "; pools without data drop out)")
    p.add_argument("--mine-every", type=int, default=2, metavar="N",
                   help="hard-negative mining: re-weight the negatives by what the model sees every N epochs (0 = off)")
    p.add_argument("--consistency", type=float, default=0.0, metavar="W",
                   help="noisy-pair stability term: weight of the mean difference between the masks of an image "
                        "and its copy with camera noise (0 = off; binary masks only)")
    p.add_argument("--consistency-share", type=float, default=0.25, metavar="F",
                   help="share of each batch that gets a noisy copy (each costs one more image of compute)")
    p.add_argument("--consistency-noise", type=float, default=4.0, metavar="SIGMA",
                   help="strongest noise, in 0-255 pixel units (each image draws its own up to this)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--max-minutes", type=float, help="stop after this much wall-clock time (the schedule follows it)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--optimizer", choices=("adamw", "rmsprop", "sgd"), default="adamw")
    p.add_argument("--ema", type=float, default=0.998, help="weight averaging decay (0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--workers", type=int, default=1, help="augmentation worker processes")
    p.add_argument("--max-side", type=int, default=400, help="images are cached in memory at this size")
    p.add_argument("--distill", action="append", default=[], metavar="DIR",
                   help="unlabelled images or videos, labelled by the --teacher ensemble (repeatable)")
    p.add_argument("--teacher", action="append", default=[], metavar="SPEC",
                   help="teacher model spec (.json beside an .onnx or .tflite; repeatable: an ensemble)")
    p.add_argument("--distill-every", type=int, default=3, help="use every Nth video frame")
    p.add_argument("--bg-crops", action="store_true",
                   help="add each training photo's largest person-free rectangle to the negatives, where "
                        "every --teacher sees no one in it")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init", metavar="CKPT", nargs="+",
                   help="start from this checkpoint's weights, with a fresh optimiser and schedule "
                        "(several: their weight average; or one ONNX model vbg export wrote); a deeper --arch-options "
                        "depths than the checkpoint's starts its new blocks as the identity")
    p.add_argument("--no-progress", action="store_true")


def check_consistency(args: argparse.Namespace) -> None:
    """The noisy-pair flags: a weight of 0 or more, a share in (0, 1], noise above 0."""
    if not 0 <= args.consistency < float("inf"):
        raise VbgError(f"--consistency is {args.consistency:g}", "give a weight of 0 (off) or more, e.g. 1")
    if not 0 < args.consistency_share <= 1:
        raise VbgError(f"--consistency-share is {args.consistency_share:g}", "give a share above 0 and at most 1")
    if not 0 < args.consistency_noise < float("inf"):
        raise VbgError(f"--consistency-noise is {args.consistency_noise:g}", "give a noise level above 0, e.g. 4")


POOLS = ("labelled", "negative", "paste", "teacher")
DEFAULT_MIX = {"labelled": 0.5, "negative": 0.15, "paste": 0.15, "teacher": 0.2}


def parse_mix(text: str | None) -> dict[str, float]:
    """``labelled=0.5,negative=0.2`` -> {"labelled": 0.5, "negative": 0.2}; None -> the default mix."""
    if text is None:
        return dict(DEFAULT_MIX)
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in POOLS:
            raise VbgError(f"--mix has an unknown pool {name!r}", f"use some of {', '.join(POOLS)}")
        try:
            out[name] = float(value)
        except ValueError:
            raise VbgError(f"--mix part {part!r} is not POOL=SHARE", "e.g. --mix labelled=0.6,negative=0.2") from None
        if not out[name] >= 0:
            raise VbgError(f"--mix share of {name} is {value}", "give each pool a share of 0 or more")
    if out.get("labelled", 0) <= 0:
        raise VbgError("--mix has no labelled share", "include labelled=SHARE above 0")
    return out


def parse_augment(text: str) -> dict[str, Any]:
    """``--augment`` JSON -> AugmentConfig overrides, checked against its fields."""
    from dataclasses import fields

    from .augment import AugmentConfig

    try:
        aug = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VbgError(f"--augment is not JSON: {exc.msg}", 'e.g. --augment \'{"paste_p": 0.1}\'') from None
    known = {f.name for f in fields(AugmentConfig)}
    if not isinstance(aug, dict) or set(aug) - known:
        bad = sorted(set(aug) - known) if isinstance(aug, dict) else [type(aug).__name__]
        raise VbgError(f"--augment has unknown settings {', '.join(map(str, bad))}",
                       f"use some of {', '.join(sorted(known))}")
    def number(x: object) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    defaults = AugmentConfig()
    out: dict[str, Any] = {}
    for k, v in aug.items():
        d = getattr(defaults, k)
        if isinstance(d, tuple):  # a range such as scale: a list of as many numbers
            if not (isinstance(v, list) and len(v) == len(d) and all(number(x) for x in v)):
                raise VbgError(f"--augment {k} is {json.dumps(v)}",
                               f"give it a list of {len(d)} numbers, like its default {list(d)}")
            out[k] = tuple(float(x) for x in v)
        elif not number(v):
            raise VbgError(f"--augment {k} is {json.dumps(v)}", f"give it a number, like its default {d}")
        else:
            out[k] = v
    return out


def run(args: argparse.Namespace) -> int:
    require_torch()
    from .bgcrops import teacher_background_crops
    from .datasets import load_dataset
    from .onnx_init import check_onnx_init
    from .scenes import cutouts_from_samples, load_cutouts, load_negatives
    from .teachers import teacher_samples
    from .trainer import ConfigError, TrainConfig, check_can_start, train

    sizes = args.size or [(256, 144)]
    if args.orientation == "match":  # every batch size also in its other orientation
        sizes = sizes + [(h, w) for w, h in sizes if (h, w) not in sizes]
    for ckpt in args.init or []:
        if not Path(ckpt).is_file():
            raise VbgError(f"--init checkpoint {ckpt} not found",
                           "pass a best.pt, final.pt or last.pt of a run, or an exported .onnx")
    try:
        options = json.loads(args.arch_options)
    except json.JSONDecodeError as exc:
        raise VbgError(f"--arch-options is not JSON: {exc.msg}", 'e.g. --arch-options \'{"up": "transpose"}\'') from None
    if args.up:
        options["up"] = args.up
    augment = parse_augment(args.augment)
    mix = parse_mix(args.mix)
    if args.teacher and not (args.distill or args.bg_crops):
        raise VbgError("--teacher needs --distill DIR (the unlabelled images or videos to label) or --bg-crops",
                       "add --distill, or drop --teacher")
    if args.bg_crops and (args.classes > 1 or args.format == "pet"):
        raise VbgError("--bg-crops makes person-free negatives for binary person masks, not class maps",
                       "drop --bg-crops for a multi-class run")
    if args.bg_crops and not args.teacher:
        raise VbgError("--bg-crops needs a --teacher to check each crop for unlabelled people",
                       "add --teacher benchmarks/peers/mediapipe_selfie.json")
    num_classes = 3 if args.format == "pet" and args.classes == 1 else args.classes
    check_consistency(args)
    target = {"arch": args.arch, "num_classes": num_classes, "arch_options": options}
    for ckpt in args.init or []:
        if str(ckpt).lower().endswith(".onnx"):  # its spec, weights and network, before minutes of data loading
            try:
                check_can_start(check_onnx_init(ckpt), target, ckpt)
            except ConfigError as exc:
                raise VbgError(str(exc), "pass the --arch and --arch-options it was trained with") from None
    splits = load_dataset(args.format, [Path(d) for d in args.data], num_classes=num_classes,
                          val_percent=args.val_percent, max_side=args.max_side, coco_json=args.coco_json,
                          test_percent=args.test_percent, progress=not args.no_progress)
    train_s, val_s = splits["train"], splits["val"]
    negative_dirs = [Path(d) for d in args.negatives]
    negatives = load_negatives(negative_dirs, "train", args.max_side) if negative_dirs else []
    val_negatives = load_negatives(negative_dirs, "val", args.max_side) if negative_dirs else []
    n_scenes = len(negatives)
    # from the training split only: a crop of a validation or test photo would leak it
    crops = teacher_background_crops(train_s, [Path(t) for t in args.teacher]) if args.bg_crops else []
    negatives += crops
    cutouts = load_cutouts([Path(d) for d in args.cutouts]) if args.cutouts else []
    if num_classes == 1 and negatives and mix.get("paste", 0) > 0:
        cutouts += cutouts_from_samples(train_s)
    teacher = (teacher_samples([Path(d) for d in args.distill], [Path(t) for t in args.teacher],
                               args.distill_every, args.max_side) if args.distill else [])
    cfg = TrainConfig(out=args.out, arch=args.arch, arch_options=options, num_classes=num_classes,
                      sizes=sizes, val_size=args.val_size or sizes[0], orientation=args.orientation, batch=args.batch,
                      epochs=args.epochs, max_minutes=args.max_minutes, lr=args.lr, weight_decay=args.weight_decay,
                      optimizer=args.optimizer, ema=args.ema, seed=args.seed, workers=args.workers,
                      threads=args.threads, augment=augment, mix=mix, mine_every=args.mine_every,
                      consistency=args.consistency, consistency_share=args.consistency_share,
                      consistency_noise=args.consistency_noise,
                      meta={"data": args.data, "format": args.format, "train": len(train_s), "val": len(val_s),
                            "test_held_out": len(splits["test"]), "negatives": args.negatives,
                            "negatives_train": n_scenes, "bg_crops": len(crops), "negatives_val": len(val_negatives),
                            "cutouts": len(cutouts), "distill": args.distill, "teachers": args.teacher,
                            "teacher_images": len(teacher), "val_percent": args.val_percent,
                            "test_percent": args.test_percent, "init": args.init})
    log.warning("training %s on %d labelled images, %d negatives, %d cut-outs, %d teacher-labelled; "
                "validating on %d (+%d people-free); %d held out for test", args.arch, len(train_s), len(negatives),
                len(cutouts), len(teacher), len(val_s), len(val_negatives), len(splits["test"]))
    try:
        result = train(cfg, train_s, val_s, negatives=negatives, teacher=teacher, cutouts=cutouts,
                       val_negatives=val_negatives, resume=args.resume, progress=not args.no_progress,
                       init=args.init)
    except ConfigError as exc:
        raise VbgError(str(exc), "check --arch, --up, --classes, --mix, --init and --arch-options") from None
    print(json.dumps(result, indent=2))
    return 0
