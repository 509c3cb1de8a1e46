"""labelme ``.json`` files -> our COCO schema.

One labelme file per image: ``shapes`` (each with ``label``, ``points``, ``shape_type``,
``group_id``), ``imagePath`` (relative to the labelme file), ``imageWidth``, ``imageHeight`` and
possibly the image itself as base64 ``imageData``.

Shapes are rasterised (:mod:`.geometry`): ``polygon`` (its inside), ``rectangle`` (a box; kept as a
box unless it is merged with outlined parts), ``circle`` (centre and a point on the rim), ``line``
and ``linestrip`` (``line_width`` pixels wide), ``point``/``points`` (a dot ``line_width`` across)
and ``mask`` (labelme 5's base64 PNG of the box at ``points[0]``). A polygon too thin to cover a
pixel centre is drawn as its outline; with fewer than 3 points it is a line or a point.

Shapes sharing a ``group_id`` are one cell; the rest are grouped by geometry
(:mod:`.cells`). All head shapes of a cell become ONE head annotation (the union of their masks, as
compressed RLE), all tail shapes one tail annotation, and a ``sperm`` box holds them all.

The image: ``imagePath`` relative to the labelme file; if no file is there, a file with the same
base name next to the labelme file, then one with the labelme file's own stem and an image suffix.
If none exists and the file embeds ``imageData``, those bytes are written (after everything else
succeeded, atomically) into ``embedded_dir`` as ``<labelme stem>.png`` (or ``.jpg``/``.tif`` as
the embedded bytes are), and the output points there.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from ..io.atomic import atomic_write
from ..io.errors import SpermInputError
from ..synthetic.raster import CropMask
from .builder import DatasetBuilder
from .cells import Part, assemble_cells
from .common import ConvertSummary, PathLike, find_files, image_size, output_name, plural, read_json
from .geometry import mask_box, polygon_mask, polyline_mask, union_masks
from .label_map import LabelMap, UnknownLabels, parse_label_map

__all__ = ["SHAPE_TYPES", "convert_labelme"]

#: labelme ``shape_type`` values understood (a missing one means ``polygon``).
SHAPE_TYPES = ("polygon", "rectangle", "circle", "line", "linestrip", "point", "points", "mask")

_FIX = "Fix it or save it again in labelme."
_GUESS_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".PNG",
    ".JPG",
    ".JPEG",
    ".TIF",
    ".TIFF",
)
_EMBEDDED_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif"}


@dataclass
class _Shape:
    index: int
    label: str
    shape_type: str
    points: np.ndarray
    group: Hashable | None
    mask_b64: str | None = None


@dataclass
class _File:
    path: Path
    shapes: list[_Shape]
    image: Path | None
    embedded: bytes | None
    width: int
    height: int


def _group(value: Any) -> Hashable | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def _read_shape(path: Path, i: int, s: Any) -> _Shape:
    where = f"labelme file '{path}' shape {i}"
    if not isinstance(s, dict):
        raise SpermInputError(f"{where} is not a JSON object. {_FIX}")
    label = s.get("label")
    if label is None or not str(label).strip():
        raise SpermInputError(f"{where} has no label. {_FIX}")
    label = str(label).strip()
    where = f"{where} ('{label}')"
    shape_type = s.get("shape_type") or "polygon"
    if not isinstance(shape_type, str) or shape_type.lower() not in SHAPE_TYPES:
        raise SpermInputError(
            f"{where}: shape_type {shape_type!r} is not supported; use one of "
            f"{', '.join(SHAPE_TYPES)}."
        )
    shape_type = shape_type.lower()
    raw = s.get("points")
    try:
        pts = np.asarray(raw, dtype=float)
        ok = pts.ndim == 2 and pts.shape[1] == 2 and len(pts) >= 1 and np.isfinite(pts).all()
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise SpermInputError(f"{where}: points must be a list of [x, y] number pairs. {_FIX}")
    mask_b64 = None
    if shape_type == "mask":
        mask_b64 = s.get("mask")
        if not isinstance(mask_b64, str) or len(pts) < 1:
            raise SpermInputError(
                f"{where}: a mask shape needs 'points' and a base64 'mask'. {_FIX}"
            )
    return _Shape(i, label, shape_type, pts, _group(s.get("group_id")), mask_b64)


def _find_image(path: Path, doc: dict[str, Any]) -> Path | None:
    candidates = []
    image_path = doc.get("imagePath")
    if isinstance(image_path, str) and image_path.strip():
        posix = image_path.strip().replace("\\", "/")
        candidates += [path.parent / posix, path.parent / PurePosixPath(posix).name]
    candidates += [path.parent / (path.stem + s) for s in _GUESS_SUFFIXES]
    for c in candidates:
        if c.is_file():
            return c
    return None


def _embedded(path: Path, doc: dict[str, Any]) -> tuple[bytes, int, int] | None:
    data = doc.get("imageData")
    if not isinstance(data, str) or not data.strip():
        return None
    try:
        raw = base64.b64decode(data, validate=False)
        with Image.open(io.BytesIO(raw)) as img:
            width, height = img.size
            if img.format not in _EMBEDDED_SUFFIX:
                buf = io.BytesIO()
                img.save(buf, format="PNG")
                raw = buf.getvalue()
    except (binascii.Error, ValueError, OSError) as exc:
        raise SpermInputError(
            f"labelme file '{path}': its imageData is not a base64 image ({exc}). {_FIX}"
        ) from exc
    return raw, int(width), int(height)


def _read_file(path: Path, explicit: bool) -> _File | None:
    doc = read_json(path, "labelme file", _FIX)
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        if explicit:
            raise SpermInputError(
                f"'{path}' is not a labelme file (it has no 'shapes' list); give labelme .json "
                "files or folders of them."
            )
        return None
    shapes = [_read_shape(path, i, s) for i, s in enumerate(doc["shapes"], start=1)]
    image = _find_image(path, doc)
    embedded = None
    if image is not None:
        width, height = image_size(image)
    else:
        found = _embedded(path, doc)
        if found is None:
            shown = doc.get("imagePath") or f"{path.stem}.png"
            raise SpermInputError(
                f"labelme file '{path}': its image '{shown}' does not exist (looked in "
                f"'{path.parent}'). Put the image there or fix imagePath."
            )
        embedded, width, height = found
    for key, actual in (("imageWidth", width), ("imageHeight", height)):
        said = doc.get(key)
        if isinstance(said, (int, float)) and not isinstance(said, bool) and int(said) != actual:
            raise SpermInputError(
                f"labelme file '{path}' says the image is {doc.get('imageWidth')} x "
                f"{doc.get('imageHeight')} px but '{image or 'imageData'}' is {width} x {height}; "
                "open it in labelme with the right image and save it again."
            )
    return _File(path, shapes, image, embedded, width, height)


def _mask_shape(f: _File, s: _Shape, shape: tuple[int, int]) -> CropMask:
    try:
        with Image.open(io.BytesIO(base64.b64decode(s.mask_b64 or ""))) as img:
            crop = np.asarray(img.convert("L")) > 0
    except (binascii.Error, ValueError, OSError) as exc:
        raise SpermInputError(
            f"labelme file '{f.path}' shape {s.index} ('{s.label}'): its mask is not a base64 "
            f"image. {_FIX}"
        ) from exc
    c0, r0 = (int(math.floor(v)) for v in s.points[0])
    h, w = shape
    out = np.zeros(shape, dtype=bool)
    rs, cs = max(r0, 0), max(c0, 0)
    re_, ce = min(r0 + crop.shape[0], h), min(c0 + crop.shape[1], w)
    if rs < re_ and cs < ce:
        out[rs:re_, cs:ce] = crop[rs - r0 : re_ - r0, cs - c0 : ce - c0]
    return CropMask.from_full(out)


def _part(f: _File, s: _Shape, role: str, line_width: float) -> Part | None:
    """One shape as a part, or None when it lies outside the image."""
    shape = (f.height, f.width)
    pts, kind = s.points, s.shape_type
    ends = None
    box = None
    mask: CropMask | None = None
    if kind == "polygon" and len(pts) >= 3:
        mask = polygon_mask(pts, shape)
        if mask.mask.size == 0:
            mask = polyline_mask(pts, line_width, shape, closed=True)
    elif kind == "rectangle" and len(pts) >= 2:
        x0, y0 = np.clip(pts.min(axis=0), 0, [f.width, f.height])
        x1, y1 = np.clip(pts.max(axis=0), 0, [f.width, f.height])
        if x1 <= x0 or y1 <= y0:
            return None
        box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
    elif kind == "circle" and len(pts) >= 2:
        radius = float(np.hypot(*(pts[1] - pts[0])))
        mask = polyline_mask(pts[:1], 2 * max(radius, 0.5), shape)
    elif kind == "mask":
        mask = _mask_shape(f, s, shape)
    elif kind in ("point", "points") or len(pts) == 1:
        mask = union_masks([polyline_mask(p[None, :], line_width, shape) for p in pts])
    else:  # line, linestrip, and 2-point polygons / 1-point rectangles and circles
        mask = polyline_mask(pts, line_width, shape)
        ends = pts[[0, -1]]
    if box is None:
        box = mask_box(mask) if mask is not None else None
        if box is None:
            return None
    return Part(role, s.label, box, mask, ends, s.group)


def convert_labelme(
    inputs: PathLike | Sequence[PathLike],
    *,
    label_map: str | Sequence[str] | Mapping[str, str] | LabelMap | None = None,
    ignore_unknown: bool = False,
    line_width: float = 3.0,
    join_distance: float = 5.0,
    output: PathLike | None = None,
    embedded_dir: PathLike | None = None,
) -> tuple[dict, ConvertSummary]:
    """Convert labelme files into a COCO dataset in our schema.

    Parameters
    ----------
    inputs : path or sequence of paths
        labelme ``.json`` files, and folders searched recursively for them (``.json`` files in a
        folder that are not labelme files, such as COCO files, are skipped and counted).
    label_map : str, sequence of str, mapping or LabelMap, optional
        Label -> ``sperm``/``head``/``tail``, e.g. ``"Acrosome,Nucleus,Vacuole=head
        Midpiece,Tail=tail"`` (see :mod:`.label_map`).
    ignore_unknown : bool
        Drop shapes with labels the map does not know (counted) instead of stopping.
    line_width : float
        Width in pixels of ``line``/``linestrip`` shapes and of points.
    join_distance : float
        Largest gap in pixels between the end of an ungrouped tail shape and the head (or tail)
        shape it joins (see :mod:`.cells`).
    output : path, optional
        Where the dataset will be written; ``file_name`` entries are made relative to its folder
        (absolute when None).
    embedded_dir : path, optional
        Folder for images that exist only as ``imageData`` inside a labelme file. Default:
        ``<output folder>/<output stem>_images`` (and an error when neither is given and such an
        image is needed).

    Returns
    -------
    dataset : dict
        COCO dataset, one image per labelme file.
    summary : ConvertSummary

    Raises
    ------
    SpermInputError
        Unreadable or malformed labelme files, a missing image, unknown labels (without
        ``ignore_unknown``), no shapes in any file, or a bad label map.
    """
    lmap = parse_label_map(label_map)
    if not (line_width > 0 and math.isfinite(line_width)):
        raise SpermInputError(
            f"--line-width must be a positive number of pixels, not {line_width}."
        )
    summary = ConvertSummary("labelme")
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    out_path = Path(output) if output is not None else None
    found = find_files(
        inputs,
        lambda p: p.suffix.lower() == ".json",
        "labelme .json files",
        exclude=out_path,
    )
    files = []
    for path, explicit in found:
        f = _read_file(path, explicit)
        if f is None:
            summary.skip("JSON files that are not labelme files")
        else:
            files.append(f)
    if not files:
        raise SpermInputError(
            "None of the .json files found is a labelme file (with a 'shapes' list); check the paths."
        )
    if not any(f.shapes for f in files):
        raise SpermInputError(
            f"None of the {plural(len(files), 'labelme file')} has any shapes; nothing to convert."
        )

    unknown = UnknownLabels(ignore_unknown)
    mapped = set()
    for f in files:
        for s in f.shapes:
            if lmap.target(s.label) is None:
                unknown.add(s.label)
            else:
                mapped.add(s.label)
    unknown.check(summary, sorted(mapped))

    # Images only embedded in their labelme file get a file of their own.
    to_write: list[tuple[Path, bytes]] = []
    if any(f.embedded is not None for f in files):
        if embedded_dir is None and out_path is None:
            first = next(f for f in files if f.embedded is not None)
            raise SpermInputError(
                f"labelme file '{first.path}' has no image file, only embedded imageData; give "
                "an output file so the image can be saved next to it."
            )
        folder = (
            Path(embedded_dir)
            if embedded_dir is not None
            else (
                out_path.parent / f"{out_path.stem}_images"  # type: ignore[union-attr]
            )
        )
        used: set[str] = set()
        for f in files:
            if f.embedded is None:
                continue
            with Image.open(io.BytesIO(f.embedded)) as img:
                suffix = _EMBEDDED_SUFFIX.get(str(img.format), ".png")
            name, k = f"{f.path.stem}{suffix}", 1
            while name.lower() in used:
                k += 1
                name = f"{f.path.stem}_{k}{suffix}"
            used.add(name.lower())
            f.image = folder / name
            to_write.append((f.image, f.embedded))

    out_dir = out_path.parent if out_path is not None else None
    builder = DatasetBuilder(summary, inputs=[str(i) for i in inputs])
    for f in files:
        image_id = builder.add_image(output_name(f.image, out_dir), f.width, f.height)  # type: ignore[arg-type]
        if not f.shapes:
            summary.images_without_labels += 1
        parts = []
        for s in f.shapes:
            role = lmap.target(s.label)
            if role is None:
                continue
            part = _part(f, s, role, line_width)
            if part is None:
                summary.skip("shapes outside their image")
            else:
                parts.append(part)
        cells = assemble_cells(parts, (f.height, f.width), join_distance)
        builder.add_cells(image_id, (f.height, f.width), cells, sperm_from_parts=True)

    for target, data in to_write:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, "wb") as fh:
            fh.write(data)
    if to_write:
        summary.notes.append(
            f"wrote {plural(len(to_write), 'embedded image')} to '{to_write[0][0].parent}'"
        )
    return builder.dataset, summary
