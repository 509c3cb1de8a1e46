"""Domain-shift experiment: the shipped detector on a modality it never saw, before and after
fine-tuning on a few annotated images of it (the retraining loop of ``napari-sperm train``).

    .venv/bin/python benchmarks/retrain.py                  # 30 training images, 100 test images
    .venv/bin/python benchmarks/retrain.py --train 10 --test 20 --epochs 5 --replay 0  # quick look

Held-out modality: ``phase-negative`` (negative phase contrast: bright heads with a dark halo,
heads about 22 px; ``napari_sperm.synthetic.HELD_OUT_MODALITIES``), never part of the default
training set. Steps, each through the same code the command line uses:

1. write a training set (``--train`` images) and a disjoint test set (``--test`` images) as COCO
   folders with :func:`napari_sperm.synthetic.write_dataset` (different dataset seeds);
2. zero-shot: the default weights on the test set, scored with pycocotools (what
   ``napari-sperm evaluate`` prints);
3. fine-tune from the default weights with :func:`napari_sperm.training.iter_train_from_coco` (no
   validation file: 20 % of the training images are held out for early stopping), timed;
4. the fine-tuned weights on the test set, and on a modality the default was trained on
   (``phase-high``), to show what fine-tuning costs there;
5. with ``--replay N`` (default 6): the same fine-tuning with ``N`` synthetic images of each of the
   four default modalities added to the training files (older data mixed in, so the model keeps
   what it knew), scored the same way.

Prints one table and writes ``--json`` when given. Nothing here is asserted: the numbers are the
result.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from napari_sperm.annotations.load import _PixelCache
from napari_sperm.detection import load_detector
from napari_sperm.detection.coco_output import ImageRecord, detections_to_coco
from napari_sperm.evaluation import evaluate_detections
from napari_sperm.progress import drain
from napari_sperm.synthetic import write_dataset
from napari_sperm.training import TrainSettings, iter_train_from_coco

TRAIN_SEED, TEST_SEED, CHECK_SEED, REPLAY_SEED = 710, 711, 712, 720


def score(weights, gt_path: Path) -> dict:
    """Head and whole-cell AP50 / AP / AR@100 of ``weights`` on a COCO folder."""
    gt = json.loads(gt_path.read_text())
    det = load_detector(
        weights, "cpu", refine_boxes=False
    )  # the network's boxes, as training validates
    pixels = _PixelCache(gt_path.parent)
    records = []
    t0 = time.perf_counter()
    for im in gt["images"]:
        res = det.detect(pixels.frame(im), 0.05, 1)[0]
        records.append(ImageRecord(im["file_name"], im["width"], im["height"], None, res))
    seconds = time.perf_counter() - t0
    result = evaluate_detections(
        gt, detections_to_coco(records), gt_dir=gt_path.parent, pred_dir=gt_path.parent
    )["categories"]
    out = {
        f"{cat}_{k}": float(result[cat][src])
        for cat in ("head", "sperm")
        for k, src in (("AP50", "AP50"), ("AP", "AP"), ("AR100", "AR@100"))
    }
    out["frames_per_s"] = len(records) / seconds
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--modality", default="phase-negative")
    ap.add_argument("--train", type=int, default=30, help="training images (default 30)")
    ap.add_argument("--test", type=int, default=100, help="test images (default 100)")
    ap.add_argument("--epochs", type=int, default=None, help="(train's default)")
    ap.add_argument("--patience", type=int, default=None, help="(train's default)")
    ap.add_argument(
        "--replay",
        type=int,
        default=6,
        help="also fine-tune with this many images of each default modality mixed in (0: skip)",
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (train's default)")
    ap.add_argument("--steps-per-epoch", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=None, help="folder for the datasets and weights (temp)")
    ap.add_argument("--json", default=None, help="write the numbers here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    work = Path(a.work or tempfile.mkdtemp(prefix="napari-sperm-retrain-"))
    work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()

    def dataset(name, modality, n, seed):
        path = work / name / "annotations.json"
        if path.is_file() and len(json.loads(path.read_text())["images"]) == n:
            return path  # reuse (same seeds give the same images)
        return write_dataset(work / name, modality, n, seed=seed, overwrite=True)

    train_gt = dataset("train", a.modality, a.train, TRAIN_SEED)
    test_gt = dataset("test", a.modality, a.test, TEST_SEED)
    check_gt = dataset("check", "phase-high", 20, CHECK_SEED)
    print(f"datasets written to {work} in {time.perf_counter() - t0:.0f} s", flush=True)

    before = score(None, test_gt)
    before_check = score(None, check_gt)
    print(f"zero-shot default on {a.modality}: head AP50 {before['head_AP50']:.3f}", flush=True)

    defaults = TrainSettings()
    settings = TrainSettings(
        init="default",
        epochs=a.epochs or defaults.epochs,
        patience=a.patience or defaults.patience,
        batch_size=a.batch_size,
        threads=a.threads,
        lr=a.lr,
        steps_per_epoch=a.steps_per_epoch,
    )

    def finetune(name: str, files: list[Path]) -> dict:
        weights = work / f"{name}.pt"
        t1 = time.perf_counter()

        def progress(item: tuple[int, int, str, str]) -> None:
            if item[3] != "step":
                print(f"[{name} {time.perf_counter() - t1:6.0f} s] {item[2]}", flush=True)

        result = drain(iter_train_from_coco(files, weights, settings=settings), progress)
        seconds = time.perf_counter() - t1
        rep = result.summary
        return {
            "seconds": seconds,
            "train_images": len(rep["train_data"]["image_names"]),
            "val_images": len(rep["val_data"]["image_names"]),
            "epochs_run": rep["epochs_run"],
            "steps_per_epoch": rep["settings"]["steps_per_epoch"],
            "best_epoch": rep["best_epoch"],
            "stopped_early": rep["stopped_early"],
            "lr": rep["settings"]["lr"],
            "held_out": score(weights, test_gt),
            "phase_high": score(weights, check_gt),
        }

    arms = {"fine-tuned": finetune("finetuned", [train_gt])}
    if a.replay:
        # older data mixed in: a few synthetic images of each modality the default was trained on
        replay = [
            dataset(f"replay-{m}", m, a.replay, REPLAY_SEED + k)
            for k, m in enumerate(("phase-low", "phase-high", "brightfield", "stained"))
        ]
        arms["fine-tuned + replay"] = finetune("replay", [train_gt, *replay])

    print()
    print(
        f"held-out modality {a.modality}: {a.train} annotated images (split by image into training "
        f"and validation), tested on {a.test} other images; phase-high: {20} images of a modality "
        "the default was trained on"
    )
    for name, arm in arms.items():
        print(
            f"{name}: {arm['seconds']:.0f} s on {a.threads} CPU threads, {arm['train_images']} "
            f"train + {arm['val_images']} validation images, {arm['epochs_run']} epochs x "
            f"{arm['steps_per_epoch']} steps x {a.batch_size} crops, lr {arm['lr']}, best epoch "
            f"{arm['best_epoch']}, stopped early: {arm['stopped_early']}"
        )
    print()
    print(
        f"{'model':<22} {'data':<16} {'head AP50':>9} {'head AP':>8} {'head AR100':>10} "
        f"{'sperm AP50':>10}"
    )
    rows = [("default", a.modality, before), ("default", "phase-high", before_check)]
    for name, arm in arms.items():
        rows += [(name, a.modality, arm["held_out"]), (name, "phase-high", arm["phase_high"])]
    for name, data, m in rows:
        print(
            f"{name:<22} {data:<16} {m['head_AP50']:9.3f} {m['head_AP']:8.3f} "
            f"{m['head_AR100']:10.3f} {m['sperm_AP50']:10.3f}"
        )
    out = {
        "modality": a.modality,
        "train_images": a.train,
        "test_images": a.test,
        "threads": a.threads,
        "zero_shot": before,
        "default_on_phase_high": before_check,
        "arms": arms,
    }
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
