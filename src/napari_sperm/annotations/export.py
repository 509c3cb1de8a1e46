"""Export annotated stacks as a self-contained COCO dataset: ``images/`` plus ``annotations.json``.

Rules (see ``docs/coco-schema.md``):

- every exported frame is its own image file, ``images/<stack>_<frame>.tif`` (``images/<stack>.tif``
  for a single image), written as stored (dtype, grey or RGB) so no pixel is lost;
- per cell and in ``sperm_id`` order: ``sperm`` (head plus tail mask; the drawn whole-cell box when
  the cell has no mask), ``head`` (mask; else the drawn head box), ``tail`` (mask);
- a part with a mask gets ``bbox`` and ``area`` from the mask exactly as pycocotools computes them; a
  box without a mask is written as that rectangle, as a 4-point polygon, with
  ``attributes.box_only = true``;
- ``attributes``: ``sperm_id``, ``score`` (when known), ``reviewed``, ``paired``;
- image and annotation ids start at 1 and run through every stack, so several stacks export into one
  file without collisions.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from pycocotools import mask as mask_utils

from .. import __version__
from ..coco import CATEGORY_IDS, mask_fields, new_dataset
from ..io import SpermInputError, atomic_write, atomic_write_json
from .model import AnnotatedFrame, AnnotatedStack, Box, Cell, union_mask

__all__ = [
    "ExportResult",
    "build_coco",
    "export_coco",
    "iter_export_coco",
    "frame_file_names",
    "unique_names",
]

ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"


@dataclass
class ExportResult:
    """What :func:`export_coco` wrote.

    Attributes
    ----------
    path : pathlib.Path
        The ``annotations.json`` file.
    n_images, n_annotations : int
    dataset : dict
        The COCO dataset as written.
    """

    path: Path
    n_images: int
    n_annotations: int
    dataset: dict


def _safe(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return s or "image"


def unique_names(stacks: list[AnnotatedStack]) -> list[str]:
    """File-safe stack names, made unique (``a``, ``a-2``, ...)."""
    used: set[str] = set()
    out = []
    for stack in stacks:
        base = _safe(stack.name)
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        out.append(name)
    return out


def frame_file_names(stacks: list[AnnotatedStack], keep: list[list[int]]) -> list[list[str]]:
    """Image file names (relative to the export folder) for the kept frames of every stack.

    Stacks are named by :func:`unique_names`; frames are numbered by their index in the source
    stack.
    """
    out = []
    for stack, frames, name in zip(stacks, keep, unique_names(stacks)):
        names = []
        for k in frames:
            if stack.is_stack:
                names.append(f"{IMAGES_DIR}/{name}_{stack.frames[k].frame:04d}.tif")
            else:
                names.append(f"{IMAGES_DIR}/{name}.tif")
        out.append(names)
    return out


def _rect_polygon(box: Box) -> list[list[float]]:
    x, y, w, h = box
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _round_box(box: Box) -> list[float]:
    return [round(float(v), 3) for v in box]


def _box_fields(box: Box, shape: tuple[int, int]) -> dict[str, Any]:
    bbox = _round_box(box)
    poly = _rect_polygon(tuple(bbox))
    rle = mask_utils.merge(mask_utils.frPyObjects(poly, shape[0], shape[1]))
    return {"segmentation": poly, "area": float(mask_utils.area(rle)), "bbox": bbox}


def cell_annotations(cell: Cell, shape: tuple[int, int]) -> list[tuple[str, dict[str, Any]]]:
    """The ``(category, fields)`` a cell exports to, in category order (see module rules)."""
    out: list[tuple[str, dict[str, Any]]] = []
    head_mask = cell.head is not None and cell.head.area > 0
    tail_mask = cell.tail is not None and cell.tail.area > 0
    if cell.has_masks and (cell.sperm_box is not None or cell.has_head):
        out.append(("sperm", {**mask_fields(union_mask(cell, shape)), "box_only": False}))
    elif cell.sperm_box is not None:
        out.append(("sperm", {**_box_fields(cell.sperm_box, shape), "box_only": True}))
    if head_mask:
        out.append(("head", {**mask_fields(cell.head.to_full(shape)), "box_only": False}))
    elif cell.head_box is not None:
        out.append(("head", {**_box_fields(cell.head_box, shape), "box_only": True}))
    if tail_mask:
        out.append(("tail", {**mask_fields(cell.tail.to_full(shape)), "box_only": False}))
    return out


def _kept_frames(stack: AnnotatedStack, include_empty: bool) -> list[int]:
    return [
        k
        for k, fr in enumerate(stack.frames)
        if include_empty or fr.sorted_cells() or _frame_reviewed(fr)
    ]


def _frame_reviewed(frame: AnnotatedFrame) -> bool:
    return any(c.reviewed for c in frame.cells)


def build_coco(
    stacks: list[AnnotatedStack], include_empty: bool = False, **info: Any
) -> tuple[dict[str, Any], list[tuple[str, AnnotatedStack, int]]]:
    """The export's COCO dataset and the image files it refers to.

    Parameters
    ----------
    stacks : list of AnnotatedStack
    include_empty : bool
        Also export frames without any annotation (as negatives). By default only frames with at
        least one cell are exported.
    **info
        Extra ``info`` fields.

    Returns
    -------
    dataset : dict
    files : list of (file_name, stack, frame position)
        What to write under the export folder.
    """
    ds = new_dataset(
        "napari-sperm annotations",
        version=__version__,
        date_created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **info,
    )
    keep = [_kept_frames(s, include_empty) for s in stacks]
    names = frame_file_names(stacks, keep)
    files = []
    image_id = ann_id = 1
    for stack, frames, fnames, uname in zip(stacks, keep, names, unique_names(stacks)):
        for k, fname in zip(frames, fnames):
            fr = stack.frames[k]
            entry: dict[str, Any] = {
                "id": image_id,
                "file_name": fname,
                "width": int(fr.width),
                "height": int(fr.height),
                "source_stack": uname,
                "source_frame": int(fr.frame),
                "is_stack": bool(stack.is_stack),
            }
            if stack.source_file:
                entry["source_file"] = stack.source_file
            entry.update({k2: v for k2, v in stack.meta.items() if k2 not in entry})
            ds["images"].append(entry)
            files.append((fname, stack, k))
            for cell in fr.sorted_cells():
                attrs: dict[str, Any] = {"sperm_id": int(cell.sperm_id)}
                if cell.score is not None and np.isfinite(cell.score):
                    attrs["score"] = round(float(cell.score), 4)
                attrs["reviewed"] = bool(cell.reviewed)
                attrs["paired"] = bool(cell.paired)
                for category, fields in cell_annotations(cell, fr.shape):
                    box_only = fields.pop("box_only")
                    ann = {
                        "id": ann_id,
                        "image_id": image_id,
                        "category_id": CATEGORY_IDS[category],
                        **fields,
                        "iscrowd": 0,
                        "attributes": {**attrs, "box_only": box_only},
                    }
                    if "score" in attrs:
                        ann["score"] = attrs["score"]
                    ds["annotations"].append(ann)
                    ann_id += 1
            image_id += 1
    return ds, files


def _tiff_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    rgb = pixels.ndim == 3 and pixels.shape[-1] in (3, 4)
    tifffile.imwrite(buf, pixels, photometric="rgb" if rgb else "minisblack")
    return buf.getvalue()


def iter_export_coco(
    stacks: list[AnnotatedStack],
    out_dir: str | os.PathLike,
    force: bool = False,
    include_empty: bool = False,
    json_name: str = ANNOTATIONS_FILE,
    **info: Any,
) -> Iterator[tuple[int, int] | ExportResult]:
    """:func:`export_coco` step by step: yields ``(done, total)`` per image file, then the result.

    Nothing is written before every check passes; each file is written atomically and
    ``annotations.json`` last, so a cancelled export never leaves a JSON that names missing images.
    """
    out = Path(out_dir)
    target = out / json_name
    if out.exists() and not out.is_dir():
        raise SpermInputError(f"Cannot export to '{out}': it is a file. Choose a folder.")
    if target.exists() and not force:
        raise SpermInputError(
            f"'{target}' already exists. Choose another folder, or overwrite it "
            "(--force on the command line)."
        )
    missing = [s.name for s in stacks if s.pixels is None]
    if missing:
        raise SpermInputError(
            f"Cannot export {', '.join(repr(m) for m in missing)}: the image pixels are not "
            "available. Open the images the annotations belong to."
        )
    ds, files = build_coco(stacks, include_empty=include_empty, **info)
    if not ds["images"]:
        raise SpermInputError(
            "Nothing to export: no frame has an annotation. Detect or draw sperm first, or export "
            "empty frames too (--include-empty)."
        )
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    total = len(files) + 1
    for n, (fname, stack, k) in enumerate(files, start=1):
        data = _tiff_bytes(stack.frame_pixels(k))
        with atomic_write(out / fname, "wb") as fh:
            fh.write(data)
        yield (n, total)
    atomic_write_json(target, ds)
    yield (total, total)
    yield ExportResult(target, len(ds["images"]), len(ds["annotations"]), ds)


def export_coco(
    stacks: list[AnnotatedStack],
    out_dir: str | os.PathLike,
    force: bool = False,
    include_empty: bool = False,
    json_name: str = ANNOTATIONS_FILE,
    **info: Any,
) -> ExportResult:
    """Write ``out_dir/images/*.tif`` and ``out_dir/annotations.json``.

    Parameters
    ----------
    stacks : list of AnnotatedStack
        With pixels.
    out_dir : path
        Created when missing.
    force : bool
        Overwrite an existing ``annotations.json`` (and image files of the same names).
    include_empty : bool
        Also export frames without annotations.
    json_name : str
        Name of the JSON file inside ``out_dir``.
    **info
        Extra ``info`` fields.

    Returns
    -------
    ExportResult

    Raises
    ------
    SpermInputError
        When the target exists (and not ``force``), pixels are missing, or nothing is annotated.
    """
    result = None
    for item in iter_export_coco(stacks, out_dir, force, include_empty, json_name, **info):
        if isinstance(item, ExportResult):
            result = item
    assert result is not None
    return result
