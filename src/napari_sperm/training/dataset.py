"""COCO datasets as detector training data: boxes paired into cells, frames as pyramid levels.

A training image keeps the normalised frame at the pyramid levels the network is trained on (the
level that owns the image's head size, plus its neighbours so the network also learns when a head
is too small or too large for a level; see :mod:`napari_sperm.detection.levels`) and one row per
cell: head box, whole-cell box, head length and how much the whole-cell box counts. A head without
a whole-cell box (a head-only dataset) trains the head alone: its whole-cell regression weight is 0.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..coco import CATEGORY_IDS
from ..detection.levels import LEVEL_BOUNDS, build_pyramid
from ..detection.normalize import normalize_frame
from ..io.errors import SpermInputError

__all__ = [
    "TrainingImage",
    "TrainingSet",
    "cells_from_annotations",
    "load_training_set",
    "owning_level",
    "split_by_image",
]

HEAD = CATEGORY_IDS["head"]
SPERM = CATEGORY_IDS["sperm"]
_GROUP_KEYS = ("sperm_id", "group_id", "track_id")


@dataclass
class TrainingImage:
    """One annotated frame, ready for crop sampling.

    Attributes
    ----------
    name : str
        ``file_name`` (plus ``#frame`` for stack frames), for reports.
    image : dict
        The COCO image entry it came from.
    levels : dict of int to (3, h, w) float16 arrays
        The normalised frame shrunk by ``2**k`` for each trained level ``k``.
    boxes : (N, 10) float32 array
        Per cell, frame pixels: head x, y, w, h; whole-cell x, y, w, h; head length; weight of
        the whole-cell box (0 when the dataset has no whole-cell box for this head).
    level_weights : dict of int to float
        How often crops are taken at each level.
    pixels : array or None
        The frame as read (kept only for validation images, which the detector runs on whole).
    """

    name: str
    image: dict[str, Any]
    levels: dict[int, np.ndarray]
    boxes: np.ndarray
    level_weights: dict[int, float]
    pixels: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.image["height"]), int(self.image["width"])


@dataclass
class TrainingSet:
    """Training images from one COCO file.

    Attributes
    ----------
    images : list of TrainingImage
    source : str
        The JSON file.
    has_cells : bool
        True when some heads come with whole-cell (``sperm``) boxes; False trains heads alone.
    category_map : dict
        ``{"mapped": {...}, "dropped": {...}}`` as applied to the file's categories.
    fingerprint : str
        Hash of the JSON file's bytes (recorded in reports and checked when resuming).
    skipped : dict
        Counts of things left out (e.g. ``sperm boxes without a head``).
    """

    images: list[TrainingImage]
    source: str
    has_cells: bool
    category_map: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def n_heads(self) -> int:
        return int(sum(len(im.boxes) for im in self.images))

    @property
    def n_cells(self) -> int:
        return int(sum(int((im.boxes[:, 9] > 0).sum()) for im in self.images))

    @classmethod
    def combine(cls, sets: list[TrainingSet]) -> TrainingSet:
        """One set holding the images of several (e.g. new annotations plus older data)."""
        if len(sets) == 1:
            return sets[0]
        skipped: dict[str, int] = {}
        for ts in sets:
            for k, v in ts.skipped.items():
                skipped[k] = skipped.get(k, 0) + v
        return cls(
            [im for ts in sets for im in ts.images],
            " + ".join(ts.source for ts in sets),
            any(ts.has_cells for ts in sets),
            {ts.source: ts.category_map for ts in sets},
            "+".join(ts.fingerprint for ts in sets),
            skipped,
        )

    def subset(self, indices: list[int]) -> TrainingSet:
        """The same set restricted to ``images[i]`` for ``i`` in ``indices``."""
        return TrainingSet(
            [self.images[i] for i in indices],
            self.source,
            self.has_cells,
            self.category_map,
            self.fingerprint,
            self.skipped,
        )


def owning_level(head_length: float) -> int:
    """Pyramid level that owns heads of this length (frame pixels) at inference."""
    lo, hi = LEVEL_BOUNDS
    return 0 if head_length < lo else 1 if head_length < hi else 2


def _level_weights(head_length: float) -> dict[int, float]:
    own = owning_level(head_length)
    others = [k for k in (own - 1, own + 1) if 0 <= k <= 2]
    weights = {own: 0.7}
    for k in others:
        weights[k] = 0.3 / len(others)
    return weights


def _group_of(ann: dict[str, Any]) -> Any:
    attrs = ann.get("attributes")
    if isinstance(attrs, dict):
        for key in _GROUP_KEYS:
            if attrs.get(key) is not None:
                return attrs[key]
    return ann.get("group_id")


def _contains(cell: np.ndarray, head: np.ndarray, tol: float = 2.0) -> bool:
    cx, cy = head[0] + head[2] / 2, head[1] + head[3] / 2
    return (
        cell[0] - tol <= cx <= cell[0] + cell[2] + tol
        and cell[1] - tol <= cy <= cell[1] + cell[3] + tol
    )


def cells_from_annotations(anns: list[dict[str, Any]]) -> tuple[np.ndarray, int]:
    """Pair one image's head and whole-cell boxes into training rows.

    Parameters
    ----------
    anns : list of dict
        The image's annotations, categories already mapped to ours (tails are ignored).

    Returns
    -------
    boxes : (N, 10) float32 array
        See :attr:`TrainingImage.boxes`; the head length is the longer side of the head box.
    unpaired_cells : int
        Whole-cell boxes that no head could be paired with (left out: the network is centred on
        heads).

    Notes
    -----
    Heads and cells sharing a group (``attributes.sperm_id``, ``group_id`` or ``track_id``) are
    paired first; the remaining heads go to the smallest remaining cell box that contains the head's
    centre.
    """
    heads = [a for a in anns if a["category_id"] == HEAD]
    cells = [a for a in anns if a["category_id"] == SPERM]
    cell_boxes = [np.asarray(a["bbox"], np.float64) for a in cells]
    used = [False] * len(cells)
    by_group: dict[Any, int] = {}
    for i, a in enumerate(cells):
        g = _group_of(a)
        if g is not None:
            by_group.setdefault(g, i)
    rows = []
    pending = []
    for a in heads:
        hb = np.asarray(a["bbox"], np.float64)
        if hb[2] <= 0 or hb[3] <= 0:
            continue
        g = _group_of(a)
        j = by_group.get(g) if g is not None else None
        if j is not None and not used[j]:
            used[j] = True
            rows.append((hb, cell_boxes[j], 1.0))
        else:
            pending.append(hb)
    for hb in pending:
        best, best_area = None, np.inf
        for j, cb in enumerate(cell_boxes):
            if not used[j] and _contains(cb, hb) and cb[2] * cb[3] < best_area:
                best, best_area = j, cb[2] * cb[3]
        if best is None:
            rows.append((hb, hb, 0.0))
        else:
            used[best] = True
            cb = cell_boxes[best]
            # a whole-cell box always holds its head
            x0, y0 = min(cb[0], hb[0]), min(cb[1], hb[1])
            x1 = max(cb[0] + cb[2], hb[0] + hb[2])
            y1 = max(cb[1] + cb[3], hb[1] + hb[3])
            rows.append((hb, np.array([x0, y0, x1 - x0, y1 - y0]), 1.0))
    out = np.array([[*hb, *cb, max(hb[2], hb[3]), w] for hb, cb, w in rows], np.float32).reshape(
        -1, 10
    )
    return out, used.count(False)


def _fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _image_name(img: dict[str, Any]) -> str:
    name = str(img["file_name"])
    return f"{name}#{int(img['frame'])}" if "frame" in img else name


def load_training_set(
    path: str | os.PathLike,
    category_map: dict[str, str] | None = None,
    ignore_unknown: bool = False,
    keep_pixels: bool = False,
    progress: Callable[[int, int], None] | None = None,
    what: str = "training set",
) -> TrainingSet:
    """Read a COCO file and its images as detector training data.

    Parameters
    ----------
    path : path
        COCO JSON; relative image paths are relative to its folder (then the current folder).
    category_map : dict, optional
        ``{source name: "sperm"|"head"|"tail"}`` for datasets whose category names are not ours
        (see :func:`napari_sperm.category_map.parse_category_map`).
    ignore_unknown : bool
        Drop annotations of categories that map to nothing instead of stopping.
    keep_pixels : bool
        Keep each frame as read (needed for validation images).
    progress : callable, optional
        ``progress(done, total)`` after each image.
    what : str
        How the file is named in error messages.

    Returns
    -------
    TrainingSet

    Raises
    ------
    SpermInputError
        One line, before any training starts: unreadable or malformed JSON, missing image files,
        unknown categories, no head annotations at all.
    """
    from ..annotations.load import _PixelCache, read_coco_json
    from ..annotations.validate import CocoFormatError, validate_coco
    from ..category_map import map_categories

    p = Path(path)
    ds = read_coco_json(p)
    if not isinstance(ds, dict) or not isinstance(ds.get("categories"), list):
        raise SpermInputError(
            f"Cannot train on {what} '{p}': not a COCO dataset (no 'categories' list)."
        )
    ds, mapping = map_categories(
        ds, category_map or {}, drop_unmapped=ignore_unknown, what=f"{what} '{p}'"
    )
    try:
        validate_coco(ds, source=str(p), base_dir=p.parent, check_files=True)
    except CocoFormatError as exc:
        raise SpermInputError(
            _first_line(exc).replace("Cannot import", f"Cannot train on {what}", 1)
        ) from None
    images = ds.get("images") or []
    if not images:
        raise SpermInputError(
            f"Cannot train on {what} '{p}': it lists no images. Export annotated frames first."
        )
    anns_by_image: dict[int, list[dict[str, Any]]] = {im["id"]: [] for im in images}
    for a in ds.get("annotations") or []:
        if a.get("iscrowd", 0):
            continue
        anns_by_image.setdefault(a["image_id"], []).append(a)
    n_heads = sum(1 for anns in anns_by_image.values() for a in anns if a["category_id"] == HEAD)
    if n_heads == 0:
        n_cells = sum(
            1 for anns in anns_by_image.values() for a in anns if a["category_id"] == SPERM
        )
        hint = (
            f" It has {n_cells} whole-cell boxes; the detector is centred on heads, so annotate "
            "head boxes too."
            if n_cells
            else " Check the category names (or pass --category-map NAME=head)."
        )
        raise SpermInputError(f"Cannot train on {what} '{p}': it has no head annotations.{hint}")
    pixels = _PixelCache(p.parent)
    out: list[TrainingImage] = []
    skipped = {"sperm boxes without a head": 0, "images without heads": 0}
    has_cells = False
    for i, img in enumerate(images):
        boxes, unpaired = cells_from_annotations(anns_by_image.get(img["id"], []))
        skipped["sperm boxes without a head"] += unpaired
        if len(boxes) == 0:
            # frames with nothing annotated still teach the background
            skipped["images without heads"] += 1
        has_cells = has_cells or bool((boxes[:, 9] > 0).any())
        frame = pixels.frame(img)
        head_len = float(np.median(boxes[:, 8])) if len(boxes) else 20.0
        weights = _level_weights(head_len)
        x = torch.from_numpy(normalize_frame(frame))[None]
        pyr = build_pyramid(x, max(weights) + 1)
        levels = {k: pyr[k][0].to(torch.float16).numpy() for k in weights if k > 0}
        if 0 in weights:
            levels[0] = x[0].to(torch.float16).numpy()
        out.append(
            TrainingImage(
                _image_name(img), img, levels, boxes, weights, frame if keep_pixels else None
            )
        )
        if progress is not None:
            progress(i + 1, len(images))
    pixels.files.clear()
    return TrainingSet(out, str(p), has_cells, mapping, _fingerprint(p), skipped)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def split_by_image(
    n_images: int, fraction: float = 0.2, seed: int = 0, min_val: int = 1
) -> tuple[list[int], list[int]]:
    """Split image indices into training and validation parts.

    Parameters
    ----------
    n_images : int
    fraction : float
        Share of images for validation (at least ``min_val``, and at least one image is left for
        training).
    seed : int
        The split is random but reproducible.

    Returns
    -------
    train, val : lists of int
    """
    if n_images < 2:
        raise SpermInputError(
            f"Cannot split {n_images} image(s) into training and validation parts; annotate at "
            "least 2 images or pass a separate validation file with --val."
        )
    n_val = min(n_images - 1, max(min_val, int(round(n_images * fraction))))
    order = np.random.default_rng(seed).permutation(n_images)
    val = sorted(int(i) for i in order[:n_val])
    train = sorted(int(i) for i in order[n_val:])
    return train, val


def describe(ts: TrainingSet) -> dict[str, Any]:
    """What a report records about a set: file, hash, image names, counts."""
    return {
        "file": ts.source,
        "sha256_16": ts.fingerprint,
        "images": len(ts.images),
        "heads": ts.n_heads,
        "cells_with_whole_cell_box": ts.n_cells,
        "image_names": [im.name for im in ts.images],
        "category_map": json.loads(json.dumps(ts.category_map)),
        "skipped": dict(ts.skipped),
    }
