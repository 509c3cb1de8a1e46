"""``napari-sperm train``: the command-line face of :func:`napari_sperm.training.iter_train_from_coco`."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_train_parser"]


def _cmd_train(args: argparse.Namespace) -> int:
    import time

    from ..category_map import parse_category_map
    from ..progress import drain
    from .loop import TrainSettings, resume_path
    from .session import check_output, iter_train_from_coco

    out = check_output(args.output, force=args.force, resume=args.resume)
    settings = TrainSettings(
        init=args.init,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
    )
    gen = iter_train_from_coco(
        args.train,
        out,
        val_json=args.val,
        settings=settings,
        category_map=parse_category_map(args.category_map),
        ignore_unknown=args.ignore_unknown,
        resume=args.resume,
    )
    t0 = time.perf_counter()
    last_line = [0.0]

    def progress(item: tuple[int, int, str, str]) -> None:
        _done, _total, text, kind = item
        now = time.perf_counter()
        if not args.quiet and (kind != "step" or now - last_line[0] > 30):  # a sign of life
            print(f"[train {now - t0:6.0f} s] {text}", file=sys.stderr, flush=True)
            last_line[0] = now

    try:
        result = drain(gen, progress)
    except KeyboardInterrupt:
        ck = resume_path(out)
        hint = f"; continue with --resume (checkpoint {ck})" if ck.exists() else ""
        print(f"napari-sperm train: interrupted{hint}", file=sys.stderr)
        return 130
    rep = result.summary
    final = rep["final"]
    extra = f", whole-cell AP50 {final['sperm_AP50']:.3f}" if "sperm_AP50" in final else ""
    print(
        f"wrote {result.weights} (best epoch {rep['best_epoch']} of {rep['epochs_run']}; "
        f"validation head AP50 {final['head_AP50']:.3f}, AR@100 {final['head_AR100']:.3f}{extra}) "
        f"and its report {result.report} in {rep['seconds']:.0f} s. Use it with "
        f"`napari-sperm detect --weights {result.weights}` or in the Detect sperm widget."
    )
    return 0


def add_train_parser(sub) -> None:
    """Add the ``train`` subcommand to the ``napari-sperm`` subparsers."""
    p = sub.add_parser(
        "train",
        help="fine-tune (or train) the detector on a COCO dataset; write new weights",
        description="Fine-tune the detector (or train it from scratch) on a COCO dataset: an export "
        "of corrected annotations, or any COCO detection set whose category names map to ours "
        "(--category-map). Image paths are relative to the JSON file. Crops are augmented (flips, "
        "90-degree rotations, scale jitter, brightness/contrast/gamma, blur, noise). Each epoch "
        "ends with validation head AP50 on --val (or on a share of the training images, split by "
        "image and recorded in the report); training stops early when it stops improving. Writes "
        "the best epoch's weights to OUT.pt, a JSON report to OUT.json, and while running a "
        "checkpoint OUT.pt.resume that --resume continues from. The default weights are never "
        "changed.",
    )
    p.add_argument(
        "train",
        nargs="+",
        metavar="TRAIN.json",
        help="COCO training set(s); several are pooled (add older data so the model keeps it)",
    )
    p.add_argument("--val", default=None, metavar="VAL.json", help="COCO validation set")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.pt", help="weights to write")
    p.add_argument(
        "--init",
        default="default",
        metavar="default|scratch|PATH",
        help="start from the shipped weights, from random weights, or from a weights file "
        "(default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=50, metavar="N", help="most epochs (default 50)")
    p.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        metavar="S",
        help="optimiser steps per epoch (default: about 8 crops per training image, 10..60)",
    )
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="crops per step (8)")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default 2e-3; 3e-3 from scratch)",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=15,
        metavar="P",
        help="stop after P epochs without a better validation AP50 (default: %(default)s)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="share of training images held out when there is no --val (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the crops (0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--category-map",
        action="append",
        default=None,
        metavar="MAP",
        help="map the dataset's category names to ours, e.g. 'Sperm=sperm,Head=head' (repeatable)",
    )
    p.add_argument(
        "--ignore-unknown",
        action="store_true",
        help="drop annotations whose category maps to nothing instead of stopping",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="replace MODEL.pt / start over")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_train)
