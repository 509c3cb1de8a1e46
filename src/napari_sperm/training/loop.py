"""Fine-tune (or train from scratch) the detector on a COCO dataset.

:func:`iter_train` is a progress generator (see :mod:`napari_sperm.progress`): it yields
``(steps_done, steps_total, status_text, kind)`` after every step and returns a :class:`TrainResult`. Each
epoch ends with a validation pass (the detector on the validation images, scored with pycocotools
AP50 like ``napari-sperm evaluate``), a resumable checkpoint next to the output, and an early stop
once validation head AP50 has not improved for ``patience`` epochs. The weights written are those
of the best validation epoch, in the same format as the shipped default, with a JSON report beside
them.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..detection.detector import (
    DEFAULT_INFERENCE,
    DEFAULT_WEIGHTS,
    WEIGHTS_FORMAT,
    Detector,
    load_detector,
)
from ..detection.device import resolve_device
from ..detection.model import DEFAULT_ARCH, SpermNet
from ..detection.train import augmented_crop, collate, optimiser_step, pick_level
from ..io.atomic import atomic_write, atomic_write_json
from ..io.errors import SpermInputError
from ..progress import drain
from .augment import random_blur
from .dataset import TrainingSet, describe

__all__ = [
    "TrainResult",
    "TrainSettings",
    "iter_train",
    "report_path",
    "resume_path",
    "train",
]

REPORT_VERSION = 1


@dataclass
class TrainSettings:
    """How to train.

    Attributes
    ----------
    init : str
        ``"default"`` (the shipped weights), ``"scratch"`` (random initialisation) or a weights
        file to start from.
    epochs : int
        Most epochs to run (early stopping may end sooner).
    steps_per_epoch : int or None
        Optimiser steps per epoch; None: about eight crops per training image per epoch, at least 10
        and at most 60 steps.
    batch_size : int
        Crops per step.
    crop : int
        Crop size in pixels at the network's input.
    lr : float or None
        Peak learning rate; None: 2e-3 when fine-tuning, 3e-3 from scratch.
    patience : int
        Stop after this many epochs without a better validation head AP50.
    val_fraction : float
        Share of images held out for validation when no validation file is given.
    seed : int
        Seeds the split, the crops and the initialisation.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    score_threshold : float
        Detections kept during validation (low, as for AP).
    threads : int or None
        CPU threads for torch (None: torch's default).
    arch : dict or None
        Network size for ``init="scratch"`` (None: the default network's).
    """

    init: str = "default"
    epochs: int = 50
    steps_per_epoch: int | None = None
    batch_size: int = 8
    crop: int = 256
    lr: float | None = None
    patience: int = 15
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    score_threshold: float = 0.05
    threads: int | None = None
    arch: dict[str, Any] | None = None

    def learning_rate(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        return 3e-3 if self.init == "scratch" else 2e-3

    def steps(self, n_images: int) -> int:
        if self.steps_per_epoch:
            return int(self.steps_per_epoch)
        return int(min(60, max(10, math.ceil(8 * n_images / self.batch_size))))

    def check(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append("--epochs must be at least 1")
        if self.batch_size < 1:
            problems.append("--batch-size must be at least 1")
        if self.crop < 64 or self.crop % 32:
            problems.append("the crop size must be a multiple of 32, at least 64")
        if self.patience < 1:
            problems.append("--patience must be at least 1")
        if not 0.0 < self.val_fraction < 1.0:
            problems.append("--val-fraction must be between 0 and 1")
        if self.lr is not None and not self.lr > 0:
            problems.append("--lr must be positive")
        if self.init not in ("default", "scratch") and not Path(self.init).is_file():
            problems.append(
                f"--init {self.init!r} is not a weights file (use default, scratch or a .pt file)"
            )
        if problems:
            raise SpermInputError("Cannot train: " + "; ".join(problems) + ".")


@dataclass
class TrainResult:
    """What a finished training run wrote.

    Attributes
    ----------
    weights : Path
        The weights file (loadable by :func:`napari_sperm.detection.load_detector`).
    report : Path
        The JSON report next to it.
    summary : dict
        The report's content.
    """

    weights: Path
    report: Path
    summary: dict[str, Any] = field(default_factory=dict)


def report_path(weights: str | os.PathLike) -> Path:
    """The JSON report written next to ``weights`` (``model.pt`` -> ``model.json``)."""
    return Path(weights).with_suffix(".json")


def resume_path(weights: str | os.PathLike) -> Path:
    """The checkpoint an interrupted run leaves next to ``weights`` (``model.pt.resume``)."""
    p = Path(weights)
    return p.with_name(p.name + ".resume")


def _initial_model(
    init: str, arch: dict[str, Any] | None = None
) -> tuple[SpermNet, dict[str, Any], str]:
    if init == "scratch":
        arch = dict(arch or DEFAULT_ARCH)
        config = {"arch": arch, "inference": dict(DEFAULT_INFERENCE)}
        return SpermNet(**arch), config, "scratch"
    path = DEFAULT_WEIGHTS if init == "default" else Path(init)
    det = load_detector(path, device="cpu")
    config = copy.deepcopy(det.config)
    config.setdefault("arch", dict(DEFAULT_ARCH))
    config.setdefault("inference", dict(DEFAULT_INFERENCE))
    config.pop("training", None)
    return det.model, config, str(path)


def _lr_at(step: int, total: int, peak: float) -> float:
    warm = min(100, max(1, total // 10))
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return peak * (0.5 * (1 + math.cos(math.pi * min(1.0, t))) * 0.99 + 0.01)


def validate(
    model: SpermNet, config: dict, val: TrainingSet, device: torch.device, threshold: float
) -> dict[str, float]:
    """Head (and whole-cell) AP50 / AP / AR@100 of ``model`` on the validation images."""
    from ..detection.coco_output import ImageRecord, detections_to_coco
    from ..detection.evaluate import boxes_dataset
    from ..evaluation import evaluate_detections

    det = Detector(model, config, device, refine_boxes=False)  # the network's boxes: what trains
    truth, records = [], []
    for i, im in enumerate(val.images, start=1):
        h, w = im.shape
        name = f"val_{i:05d}"
        boxes = [(2, row[0:4], None) for row in im.boxes]
        boxes += [(1, row[4:8], None) for row in im.boxes if row[9] > 0]
        truth.append((name, w, h, boxes))
        res = det.detect(im.pixels, threshold, 1)[0]
        records.append(ImageRecord(name, w, h, None, res))
    gt = boxes_dataset(truth)
    cats = ["head", "sperm"] if val.has_cells else ["head"]
    scores = evaluate_detections(gt, detections_to_coco(records), categories=cats)["categories"]
    out = {}
    for name in cats:
        s = scores[name]
        out[f"{name}_AP50"] = float(s["AP50"])
        out[f"{name}_AP"] = float(s["AP"])
        out[f"{name}_AR100"] = float(s["AR@100"])
    return out


def _half_state(model: SpermNet) -> dict[str, torch.Tensor]:
    return {
        k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }


def _save_torch(obj: Any, path: Path) -> None:
    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)


def iter_train(
    train_set: TrainingSet,
    val_set: TrainingSet,
    out: str | os.PathLike,
    settings: TrainSettings | None = None,
    resume: bool = False,
    val_note: str = "",
) -> Generator[tuple[int, int, str, str], None, TrainResult]:
    """Train on ``train_set``, validate on ``val_set``, write the best weights to ``out``.

    Parameters
    ----------
    train_set, val_set : TrainingSet
        From :func:`~napari_sperm.training.dataset.load_training_set`; validation images need
        their pixels (``keep_pixels=True``).
    out : path
        Weights file to write; the report goes to :func:`report_path`, the per-epoch checkpoint to
        :func:`resume_path` (removed when training ends).
    settings : TrainSettings, optional
    resume : bool
        Continue from the checkpoint an interrupted run left at :func:`resume_path` (same data and
        settings).
    val_note : str
        How the validation images were chosen (recorded in the report).

    Yields
    ------
    (steps done, steps in all epochs, status text, kind)
        ``kind`` is ``"step"`` after each optimiser step and ``"epoch"`` after each epoch's
        validation.

    Returns
    -------
    TrainResult
    """
    s = settings or TrainSettings()
    s.check()
    out = Path(out)
    if not val_set.images or any(im.pixels is None for im in val_set.images):
        raise SpermInputError("Cannot train: the validation images were loaded without pixels.")
    device = resolve_device(s.device)
    if s.threads:
        torch.set_num_threads(int(s.threads))
    steps = s.steps(len(train_set.images))
    total = steps * s.epochs
    peak = s.learning_rate()

    torch.manual_seed(s.seed)
    model, config, init_name = _initial_model(s.init, s.arch)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=peak, weight_decay=1e-4)
    rng = np.random.default_rng(s.seed + 1)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": 0, "score": -1.0, "state": None, "val": {}}
    start_epoch = 0
    elapsed_before = 0.0
    ckpt_file = resume_path(out)
    key = {
        "train": train_set.fingerprint,
        "val": val_set.fingerprint,
        "val_images": [im.name for im in val_set.images],
        "settings": asdict(s),
    }
    if resume:
        if not ckpt_file.is_file():
            raise SpermInputError(
                f"Cannot resume: there is no checkpoint '{ckpt_file}'. Start a new run without "
                "--resume."
            )
        ck = torch.load(ckpt_file, map_location="cpu", weights_only=False)
        if ck.get("key") != key:
            raise SpermInputError(
                f"Cannot resume from '{ckpt_file}': it was made with other data or settings. "
                "Use the same files and options, or start over with --force."
            )
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        history = ck["history"]
        best = ck["best"]
        start_epoch = int(ck["epoch"])
        elapsed_before = float(ck["seconds"])

    t0 = time.perf_counter()
    model.train()
    stopped_early = False
    since_best = 0 if not history else start_epoch - best["epoch"]
    last_val = ""
    for epoch in range(start_epoch, s.epochs):
        if since_best >= s.patience:
            stopped_early = True
            break
        t_epoch = time.perf_counter()
        run_f = run_r = 0.0
        for k in range(steps):
            step = epoch * steps + k
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, total, peak)
            samples = []
            for _ in range(s.batch_size):
                im = train_set.images[int(rng.integers(len(train_set.images)))]
                rec = {"levels": im.levels, "boxes": im.boxes}
                t, b = augmented_crop(rec, pick_level(im.level_weights, rng), s.crop, rng)
                samples.append((random_blur(t, rng), b))
            batch = [v.to(device) for v in collate(samples, s.crop)]
            lf, lr_ = optimiser_step(model, opt, batch)
            run_f += lf
            run_r += lr_
            yield (
                step + 1,
                total,
                f"epoch {epoch + 1}/{s.epochs}: step {k + 1}/{steps}, "
                f"loss {(run_f + run_r) / (k + 1):.3f}{last_val}",
                "step",
            )
        model.eval()
        with torch.inference_mode():
            val = validate(model, config, val_set, device, s.score_threshold)
        model.train()
        score = val["head_AP50"]
        row = {
            "epoch": epoch + 1,
            "steps": steps,
            "loss_heatmap": run_f / steps,
            "loss_boxes": run_r / steps,
            "loss": (run_f + run_r) / steps,
            "lr_end": _lr_at((epoch + 1) * steps - 1, total, peak),
            "seconds": round(time.perf_counter() - t_epoch, 2),
            **{f"val_{k}": v for k, v in val.items()},
        }
        history.append(row)
        last_val = f"; validation head AP50 {score:.3f} after epoch {epoch + 1}"
        # a tie keeps the later (longer trained) weights, but only a gain resets the patience
        since_best = 0 if score > best["score"] else since_best + 1
        if score >= best["score"]:
            best = {"epoch": epoch + 1, "score": score, "state": _half_state(model), "val": val}
        _save_torch(
            {
                "key": key,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "best": best,
                "epoch": epoch + 1,
                "seconds": elapsed_before + time.perf_counter() - t0,
            },
            ckpt_file,
        )
        yield (
            (epoch + 1) * steps,
            total,
            f"epoch {epoch + 1}/{s.epochs}: loss {row['loss']:.3f}, validation head AP50 "
            f"{score:.3f} (best {best['score']:.3f} at epoch {best['epoch']})",
            "epoch",
        )
    seconds = elapsed_before + time.perf_counter() - t0
    summary = {
        "report_version": REPORT_VERSION,
        "weights": str(out),
        "init": init_name,
        "settings": asdict(s) | {"lr": peak, "steps_per_epoch": steps},
        "device": str(device),
        "torch": str(torch.__version__),
        "train_data": describe(train_set),
        "val_data": describe(val_set) | {"how": val_note or "validation file"},
        "epochs_run": len(history),
        "stopped_early": stopped_early,
        "best_epoch": best["epoch"],
        "final": best["val"],
        "seconds": round(seconds, 1),
        "history": history,
        "classes_trained": ["head", "sperm"] if train_set.has_cells else ["head"],
    }
    ckpt = {
        "format": WEIGHTS_FORMAT,
        "version": 1,
        "config": config,
        "state_dict": best["state"] if best["state"] is not None else _half_state(model),
        "training": {
            "command": "napari-sperm train",
            "init": init_name,
            "train_file": train_set.source,
            "best_epoch": best["epoch"],
            "val_head_AP50": best["score"],
            "seconds": round(seconds, 1),
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    _save_torch(ckpt, out)
    rp = report_path(out)
    atomic_write_json(rp, summary)
    ckpt_file.unlink(missing_ok=True)
    return TrainResult(out, rp, summary)


def train(
    train_set: TrainingSet,
    val_set: TrainingSet,
    out: str | os.PathLike,
    settings: TrainSettings | None = None,
    resume: bool = False,
    val_note: str = "",
) -> TrainResult:
    """Run :func:`iter_train` to the end (no progress output)."""
    return drain(iter_train(train_set, val_set, out, settings, resume, val_note))
