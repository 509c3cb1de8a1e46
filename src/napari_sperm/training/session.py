"""From COCO files to trained weights in one call: load, split, train (what ``napari-sperm train``
and the Train detector widget both run)."""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from pathlib import Path

from ..io.errors import SpermInputError
from .dataset import TrainingSet, load_training_set, split_by_image
from .loop import TrainResult, TrainSettings, iter_train, resume_path

__all__ = ["check_output", "iter_train_from_coco"]


def check_output(out: str | os.PathLike, force: bool = False, resume: bool = False) -> Path:
    """Refuse to overwrite weights or to drop an interrupted run's checkpoint by accident.

    Raises
    ------
    SpermInputError
        ``out`` is the shipped default weights file, or exists (without ``force``), or an
        interrupted run's checkpoint is there (without ``resume`` or ``force``).
    """
    from ..detection.detector import DEFAULT_WEIGHTS

    p = Path(out)
    if p.suffix.lower() != ".pt":
        raise SpermInputError(f"Cannot write weights to '{p}': use a file name ending in .pt.")
    if p.exists() and p.resolve() == DEFAULT_WEIGHTS.resolve():
        raise SpermInputError(
            "Cannot write over the default weights shipped with napari-sperm; choose another "
            "output file."
        )
    if resume_path(p).exists() and not (resume or force):
        raise SpermInputError(
            f"An interrupted training run left '{resume_path(p)}'; pass --resume to continue it "
            "or --force to start over."
        )
    if p.exists() and not (force or resume):
        raise SpermInputError(f"'{p}' already exists; pass --force to replace it.")
    if p.is_dir():
        raise SpermInputError(f"Cannot write weights to '{p}': it is a folder.")
    return p


def iter_train_from_coco(
    train_json: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    val_json: str | os.PathLike | None = None,
    settings: TrainSettings | None = None,
    category_map: dict[str, str] | None = None,
    ignore_unknown: bool = False,
    resume: bool = False,
) -> Generator[tuple[int, int, str, str], None, TrainResult]:
    """Load ``train_json`` (and ``val_json``), then :func:`~.loop.iter_train`.

    ``train_json`` may be several files: their images are pooled (e.g. new annotations plus the
    data an earlier model was trained on, so it does not forget it).

    Without ``val_json`` a share of the training images (``settings.val_fraction``, by image,
    seeded by ``settings.seed``) is held out for validation and the split is recorded in the
    report. Every data problem is raised before the first training step.

    Yields
    ------
    (done, total, status text, kind)
        ``kind`` ``"read"`` once the images are read, then as :func:`~.loop.iter_train`.

    Returns
    -------
    TrainResult
    """
    s = settings or TrainSettings()
    s.check()
    files = [train_json] if isinstance(train_json, (str, os.PathLike)) else list(train_json)
    if not files:
        raise SpermInputError("Cannot train: no training file given.")
    train_set = TrainingSet.combine(
        [
            load_training_set(f, category_map, ignore_unknown, keep_pixels=val_json is None)
            for f in files
        ]
    )
    yield (
        0,
        1,
        f"reading training images: {len(train_set.images)} images, {train_set.n_heads} heads",
        "read",
    )
    if val_json is not None:
        val_set = load_training_set(
            val_json, category_map, ignore_unknown, keep_pixels=True, what="validation set"
        )
        note = f"validation file {val_json}"
    else:
        tr, va = split_by_image(len(train_set.images), s.val_fraction, s.seed)
        val_set = train_set.subset(va)
        train_set = train_set.subset(tr)
        for im in train_set.images:
            im.pixels = None  # only validation images need their frames
        note = f"{len(va)} of {len(tr) + len(va)} training images held out (seed {s.seed})"
    if sum(len(im.boxes) for im in val_set.images) == 0:
        raise SpermInputError(
            "Cannot train: the validation images have no head annotations, so progress cannot be "
            "measured. Pass a --val file with annotated heads or annotate more images."
        )
    return (yield from iter_train(train_set, val_set, out, s, resume=resume, val_note=note))
