"""Import a COCO dataset (ours or anyone's) back into annotated stacks.

Everything is checked first (:func:`~.validate.validate_coco`, image files included), so a broken file
loads nothing. Images are grouped back into the stacks they were exported from (``source_stack``
and ``source_frame`` in our exports; frames of one TIFF stack share a ``file_name`` and carry
``frame``); other images of one size form one stack.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..coco import CATEGORY_IDS, decode_mask
from ..io import SpermInputError, read_image
from ..io.jsonfile import read_json
from ..synthetic.raster import CropMask
from .model import AnnotatedFrame, AnnotatedStack
from .validate import resolve_image_path, validate_coco

__all__ = ["ImportResult", "load_coco", "coco_to_stacks", "read_coco_json"]

OUR_NAMES = set(CATEGORY_IDS)


@dataclass
class ImportResult:
    """Stacks read from a COCO file, and anything the user should know about them.

    Attributes
    ----------
    stacks : list of AnnotatedStack
    warnings : list of str
        One line each (e.g. whole-cell masks kept as boxes only).
    """

    stacks: list[AnnotatedStack]
    warnings: list[str] = field(default_factory=list)


def read_coco_json(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a JSON file, turning every failure into one readable :class:`SpermInputError`."""
    p = Path(path)
    return read_json(
        p,
        "COCO file",
        "Fix the file or export it again.",
        lead=f"Cannot import '{p}'",
        missing_fix="Choose a COCO .json file.",
    )


def _group_key(img: dict[str, Any]) -> tuple:
    if "source_stack" in img:
        return ("stack", str(img["source_stack"]))
    if "frame" in img:
        return ("file", str(img["file_name"]))
    return ("size", int(img["height"]), int(img["width"]))


def _frame_index(img: dict[str, Any], position: int) -> int:
    for key in ("source_frame", "frame"):
        if key in img:
            return int(img[key])
    return position


def _stack_name(key: tuple, imgs: list[dict[str, Any]], json_path: Path) -> str:
    if key[0] == "stack":
        return key[1]
    if key[0] == "file" or len(imgs) == 1:
        name = Path(str(imgs[0]["file_name"])).name
        for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png", ".jpeg", ".jpg"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return name
    return f"{json_path.stem} {key[2]}x{key[1]}"


class _PixelCache:
    """Reads each image file once; frames of a stack file are indexed from one read."""

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir
        self.files: dict[Path, Any] = {}

    def path(self, file_name: str) -> Path:
        return resolve_image_path(file_name, self.base_dir)

    def frame(self, img: dict[str, Any]) -> np.ndarray:
        p = self.path(str(img["file_name"]))
        if p not in self.files:
            self.files[p] = read_image(p, lazy=False)
        data = self.files[p]
        arr = np.asarray(data.data)
        lead = 3 if data.rgb else 2
        if "frame" in img:
            flat = arr.reshape((-1,) + arr.shape[arr.ndim - lead :])
            k = int(img["frame"])
            if k >= flat.shape[0]:
                raise SpermInputError(
                    f"Cannot import: image {img['id']} asks for frame {k} of '{p.name}', which has "
                    f"{flat.shape[0]} frame(s)."
                )
            arr = flat[k]
        elif arr.ndim > lead:
            arr = arr.reshape((-1,) + arr.shape[arr.ndim - lead :])[0]
        if arr.shape[:2] != (int(img["height"]), int(img["width"])):
            raise SpermInputError(
                f"Cannot import: image {img['id']} ('{img['file_name']}') is "
                f"{arr.shape[1]} x {arr.shape[0]} px on disk but {img['width']} x {img['height']} "
                "in the JSON. Export the annotations again from the same images."
            )
        return arr


def _decode(seg: Any, h: int, w: int) -> np.ndarray:
    if isinstance(seg, dict):
        return decode_mask(seg)
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in seg], h, w)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def _union(old: CropMask | None, mask: np.ndarray) -> CropMask:
    if old is not None and old.area:
        mask = mask | old.to_full(mask.shape)
    return CropMask.from_full(mask)


def _fill_frame(
    frame: AnnotatedFrame,
    anns: list[dict[str, Any]],
    names: dict[int, str],
    warn: dict[str, int],
) -> None:
    used = {int(a["attributes"]["sperm_id"]) for a in anns if _has_sperm_id(a)}
    next_id = max(used, default=0) + 1
    whole_masks: dict[int, bool] = {}
    for ann in sorted(anns, key=lambda a: a["id"]):
        name = names[int(ann["category_id"])]
        attrs = ann.get("attributes") or {}
        if _has_sperm_id(ann):
            sid = int(attrs["sperm_id"])
        else:
            sid, next_id = next_id, next_id + 1
        cell = frame.cell(sid)
        seg = ann.get("segmentation")
        box_only = bool(attrs.get("box_only")) or not seg
        bbox = tuple(float(v) for v in ann["bbox"]) if "bbox" in ann else None
        score = attrs.get("score", ann.get("score"))
        if score is not None and (cell.score is None or name == "head"):
            cell.score = float(score)
        cell.reviewed = cell.reviewed or bool(attrs.get("reviewed", False))
        if box_only and bbox is None:
            bbox = tuple(
                float(v) for v in mask_utils.toBbox(mask_utils.frPyObjects(seg, *frame.shape))
            )
        if name == "sperm":
            if not box_only:
                mask = _decode(seg, *frame.shape)
                whole_masks[sid] = True
                if bbox is None:
                    bbox = _mask_bbox(mask)
            cell.sperm_box = bbox
        elif name == "head":
            if box_only:
                cell.head_box = bbox
            else:
                mask = _decode(seg, *frame.shape)
                cell.head = _union(cell.head, mask)
                cell.head_box = _mask_bbox(cell.head.to_full(frame.shape))
        elif name == "tail":
            if box_only:
                warn["tail boxes without a mask were skipped (tails are masks)"] += 1
            else:
                cell.tail = _union(cell.tail, _decode(seg, *frame.shape))
    for sid in whole_masks:
        if not frame.cell(sid).has_masks:
            warn["whole-cell masks without a head or tail mask were kept as boxes only"] += 1


def _mask_bbox(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    bb = CropMask.from_full(mask).bbox()
    return None if bb is None else tuple(float(v) for v in bb)


def _has_sperm_id(ann: dict[str, Any]) -> bool:
    attrs = ann.get("attributes")
    return isinstance(attrs, dict) and isinstance(attrs.get("sperm_id"), int)


def coco_to_stacks(
    ds: dict[str, Any],
    base_dir: str | os.PathLike,
    load_pixels: bool = True,
    source: str = "<dataset>",
    json_path: str | os.PathLike | None = None,
) -> ImportResult:
    """Turn a COCO dataset dict into annotated stacks.

    Parameters
    ----------
    ds : dict
        A COCO dataset (checked with :func:`~.validate.validate_coco` first).
    base_dir : path
        Folder that relative ``file_name`` entries are relative to.
    load_pixels : bool
        Read the image files (they must exist). False gives stacks with ``pixels=None``.
    source : str
        Name used in error messages.
    json_path : path, optional
        Names stacks of foreign datasets after the file.

    Returns
    -------
    ImportResult

    Raises
    ------
    CocoFormatError
        Listing every problem, before anything is read.
    """
    base = Path(base_dir)
    validate_coco(ds, source=source, base_dir=base, check_files=load_pixels)
    names = {int(c["id"]): str(c["name"]).lower() for c in ds["categories"]}
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ann in ds["annotations"]:
        by_image[int(ann["image_id"])].append(ann)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for img in ds["images"]:
        groups[_group_key(img)].append(img)
    cache = _PixelCache(base)
    warn: dict[str, int] = defaultdict(int)
    stacks = []
    jp = Path(json_path) if json_path is not None else Path(source)
    for key, imgs in groups.items():
        order = sorted(range(len(imgs)), key=lambda i: (_frame_index(imgs[i], i), imgs[i]["id"]))
        imgs = [imgs[i] for i in order]
        frames = []
        for pos, img in enumerate(imgs):
            fr = AnnotatedFrame(int(img["height"]), int(img["width"]), _frame_index(img, pos))
            _fill_frame(fr, by_image.get(int(img["id"]), []), names, warn)
            frames.append(fr)
        pixels = None
        if load_pixels:
            arrays = [cache.frame(img) for img in imgs]
            if len({(a.shape, a.dtype.str) for a in arrays}) > 1:
                raise SpermInputError(
                    f"Cannot import '{source}': the frames of '{_stack_name(key, imgs, jp)}' differ "
                    "in size, colour or bit depth, so they cannot form one stack."
                )
            pixels = np.stack(arrays)
        first = imgs[0]
        is_stack = bool(first.get("is_stack", len(imgs) > 1 or "frame" in first))
        meta = {
            k: v
            for k, v in first.items()
            if k in ("modality", "pixel_size_um") and all(i.get(k) == v for i in imgs)
        }
        stacks.append(
            AnnotatedStack(
                name=_stack_name(key, imgs, jp),
                frames=frames,
                pixels=pixels,
                is_stack=is_stack,
                source_file=first.get("source_file")
                or (str(cache.path(str(first["file_name"]))) if key[0] == "file" else None),
                meta=meta,
            )
        )
    warnings = [f"{n} {text}" for text, n in warn.items()]
    return ImportResult(stacks, warnings)


def load_coco(path: str | os.PathLike, load_pixels: bool = True) -> ImportResult:
    """Read a COCO JSON file and its images into annotated stacks.

    Parameters
    ----------
    path : path
        The JSON file; relative image paths are relative to its folder.
    load_pixels : bool
        Also read the images.

    Returns
    -------
    ImportResult

    Raises
    ------
    SpermInputError
        One line: unreadable JSON, every format problem found, or a missing or mismatched image.
    """
    p = Path(path)
    ds = read_coco_json(p)
    return coco_to_stacks(ds, p.parent, load_pixels=load_pixels, source=str(p), json_path=p)
