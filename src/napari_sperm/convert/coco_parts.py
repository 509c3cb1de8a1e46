"""COCO datasets of sperm *parts* (acrosome, nucleus, midpiece, tail, ...) -> our COCO schema.

Category names are mapped with a label map (``Acrosome,Nucleus=head Midpiece,Tail=tail``; a
whole-cell category can map to ``sperm``). Part annotations are grouped into cells by a grouping
key when the annotations have one: ``group_key`` (a dotted path such as ``attributes.cell``), by
default the first of :data:`DEFAULT_GROUP_KEYS` that any annotation carries. Annotations without a
value for it are grouped by geometry (:mod:`.cells`), as for labelme.

All head parts of a cell become ONE head annotation (the union of their masks as compressed RLE
when any has a ``segmentation``, polygons and RLE alike; otherwise the union of their boxes), all
tail parts ONE tail annotation, and a ``sperm`` box holds all of the cell's parts (a whole-cell
annotation's own box included).

Before anything is converted, every input is checked as :func:`~napari_sperm.annotations.validate.
coco_problems` checks our own files (ids, boxes inside their image, polygons, RLE sizes, image
files present), category names aside; all problems of a file are named in one line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from ..annotations.validate import coco_problems, looks_like_coco, resolve_image_path
from ..coco import decode_mask
from ..io.errors import SpermInputError
from ..synthetic.raster import CropMask
from .builder import DatasetBuilder
from .cells import Part, assemble_cells
from .common import ConvertSummary, PathLike, find_files, output_name, plural, read_json
from .geometry import mask_box
from .label_map import LabelMap, UnknownLabels, parse_label_map

__all__ = ["DEFAULT_GROUP_KEYS", "convert_coco_parts"]

#: Grouping keys tried in this order when none is given.
DEFAULT_GROUP_KEYS = (
    "attributes.sperm_id",
    "attributes.group_id",
    "attributes.track_id",
    "group_id",
)
_MAX_SHOWN = 8


def _lookup(ann: dict[str, Any], key: str) -> Any:
    """The value at a dotted path (``attributes.sperm_id``), or None."""
    value: Any = ann
    for step in key.split("."):
        if not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    return value


def _hashable(value: Any) -> Hashable | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def _check(path: Path, ds: Any) -> None:
    """Every structural problem of a parts dataset in one line (category names not checked)."""
    # Foreign names and attributes (a string sperm_id, say) are fine here: checked without them.
    probe = ds
    if isinstance(ds, dict):
        probe = dict(ds)
        if isinstance(ds.get("categories"), list):
            probe["categories"] = [
                {**c, "name": "head"} if isinstance(c, dict) and "name" in c else c
                for c in ds["categories"]
            ]
        if isinstance(ds.get("annotations"), list):
            probe["annotations"] = [
                {k: v for k, v in a.items() if k != "attributes"} if isinstance(a, dict) else a
                for a in ds["annotations"]
            ]
    problems = coco_problems(probe, base_dir=path.parent, check_files=True)
    if problems:
        shown = "; ".join(problems[:_MAX_SHOWN])
        more = f" (and {len(problems) - _MAX_SHOWN} more)" if len(problems) > _MAX_SHOWN else ""
        raise SpermInputError(
            f"Cannot convert '{path}': {plural(len(problems), 'problem')}: {shown}{more}. "
            "Fix the file and try again."
        )


def _mask(seg: Any, h: int, w: int) -> CropMask | None:
    """Decode polygons or RLE to a crop mask (None when there is no segmentation)."""
    if isinstance(seg, dict):
        full = decode_mask(seg)
    elif isinstance(seg, list) and seg:
        rles = mask_utils.frPyObjects([[float(v) for v in poly] for poly in seg], h, w)
        full = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    else:
        return None
    crop = CropMask.from_full(full)
    return crop if crop.mask.size else None


def _part(
    ann: dict[str, Any], role: str, label: str, h: int, w: int, group: Hashable | None
) -> Part | None:
    mask = _mask(ann.get("segmentation"), h, w)
    if mask is not None:
        box = mask_box(mask)
    else:
        bbox = ann.get("bbox")
        if bbox is None:
            return None
        x, y, bw, bh = (float(v) for v in bbox)
        x0, y0 = min(max(x, 0.0), w), min(max(y, 0.0), h)
        x1, y1 = min(max(x + bw, 0.0), w), min(max(y + bh, 0.0), h)
        if x1 <= x0 or y1 <= y0:
            return None
        box = (x0, y0, x1 - x0, y1 - y0)
    return Part(role, label, box, mask, None, group)  # type: ignore[arg-type]


def _pick_group_key(
    datasets: list[tuple[Path, dict[str, Any]]], group_key: str | None, summary: ConvertSummary
) -> str | None:
    keys = [group_key] if group_key else list(DEFAULT_GROUP_KEYS)
    for key in keys:
        if any(_lookup(a, key) is not None for _, ds in datasets for a in ds["annotations"]):
            summary.notes.append(f"parts grouped into cells by '{key}' (others by geometry)")
            return key
    if group_key:
        raise SpermInputError(
            f"--group-key '{group_key}': no annotation has it. Check the name (a dotted path such "
            "as attributes.sperm_id), or leave --group-key out to group parts by geometry."
        )
    summary.notes.append("no grouping attribute found; parts grouped into cells by geometry")
    return None


def convert_coco_parts(
    inputs: PathLike | Sequence[PathLike],
    *,
    label_map: str | Sequence[str] | Mapping[str, str] | LabelMap | None = None,
    ignore_unknown: bool = False,
    group_key: str | None = None,
    join_distance: float = 5.0,
    output: PathLike | None = None,
) -> tuple[dict, ConvertSummary]:
    """Convert COCO datasets whose categories are sperm parts into our schema.

    Parameters
    ----------
    inputs : path or sequence of paths
        COCO ``.json`` files, and folders searched recursively for them; image ``file_name``
        entries are relative to each file's folder.
    label_map : str, sequence of str, mapping or LabelMap, optional
        Category name -> ``sperm``/``head``/``tail`` (see :mod:`.label_map`).
    ignore_unknown : bool
        Drop annotations of categories the map does not know (counted) instead of stopping.
    group_key : str, optional
        Dotted path of the annotation field naming a part's cell (``attributes.cell_id``).
        Default: the first of :data:`DEFAULT_GROUP_KEYS` present.
    join_distance : float
        Largest gap in pixels between an ungrouped tail part's end and the part it joins.
    output : path, optional
        Where the dataset will be written; ``file_name`` entries are made relative to its folder
        (absolute when None).

    Returns
    -------
    dataset : dict
        COCO dataset, one image per input image (``frame`` kept), ids renumbered from 1.
    summary : ConvertSummary

    Raises
    ------
    SpermInputError
        Unreadable or malformed files, missing images, no annotations at all, unknown categories
        (without ``ignore_unknown``), a ``group_key`` no annotation has, or a bad label map.
    """
    lmap = parse_label_map(label_map)
    summary = ConvertSummary("coco-parts")
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    out_path = Path(output) if output is not None else None
    found = find_files(inputs, looks_like_coco, "COCO .json files", exclude=out_path)
    datasets = []
    for path, _ in found:
        ds = read_json(path, "COCO file", "Fix it or export it again.")
        _check(path, ds)
        datasets.append((path, ds))
    if not any(ds["annotations"] for _, ds in datasets):
        raise SpermInputError(
            f"None of the {plural(len(datasets), 'COCO file')} has any annotations; nothing to convert."
        )

    unknown = UnknownLabels(ignore_unknown)
    mapped = set()
    names: list[dict[int, str]] = []
    for _, ds in datasets:
        by_id = {int(c["id"]): str(c["name"]).strip() for c in ds["categories"]}
        names.append(by_id)
        for a in ds["annotations"]:
            label = by_id[int(a["category_id"])]
            if lmap.target(label) is None:
                unknown.add(label)
            else:
                mapped.add(label)
    unknown.check(summary, sorted(mapped))
    key = _pick_group_key(datasets, group_key, summary)

    out_dir = out_path.parent if out_path is not None else None
    builder = DatasetBuilder(summary, inputs=[str(i) for i in inputs], group_key=key)
    for (path, ds), by_id in zip(datasets, names):
        by_image: dict[int, list[dict[str, Any]]] = {}
        for a in ds["annotations"]:
            by_image.setdefault(int(a["image_id"]), []).append(a)
        for img in ds["images"]:
            h, w = int(img["height"]), int(img["width"])
            file_name = output_name(resolve_image_path(str(img["file_name"]), path.parent), out_dir)
            extra = {"frame": int(img["frame"])} if "frame" in img else {}
            image_id = builder.add_image(file_name, w, h, **extra)
            anns = by_image.get(int(img["id"]), [])
            if not anns:
                summary.images_without_labels += 1
            parts = []
            for a in anns:
                label = by_id[int(a["category_id"])]
                role = lmap.target(label)
                if role is None:
                    continue
                group = _hashable(_lookup(a, key)) if key else None
                part = _part(a, role, label, h, w, group)
                if part is None:
                    summary.skip("annotations outside their image")
                else:
                    parts.append(part)
            cells = assemble_cells(parts, (h, w), join_distance)
            builder.add_cells(image_id, (h, w), cells, sperm_from_parts=True)
    return builder.dataset, summary
