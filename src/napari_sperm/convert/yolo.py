"""YOLO / darknet ``.txt`` labels -> our COCO schema.

One ``.txt`` per image, one object per line: ``class cx cy w h``, the centre, width and height
divided by the image width and height (0..1). Found for ``IMG.png`` as:

- ``.../labels/.../IMG.txt`` when the image is under a folder called ``images`` (the Ultralytics
  layout: ``images/train/a.jpg`` -> ``labels/train/a.txt``), else
- ``IMG.txt`` next to the image (darknet, LabelImg).

After the class index, 4 numbers are a box, 5 are a box and a confidence (ignored), 6 or more are a
YOLO-seg polygon ``x1 y1 x2 y2 ...`` whose bounding box is used (an odd count: the last number is a
confidence and is ignored). Coordinates may stray :data:`TOLERANCE` outside 0..1 (they are clipped);
further out is an error.

Class names come from ``classes`` (``--classes a,b,c``), a names file (``names``: one name per line
like darknet's ``obj.names`` / LabelImg's ``classes.txt``, or a ``.yaml`` with a ``names:`` list or
``{index: name}`` mapping like Ultralytics' ``data.yaml``), or else the first such file found in the
input folders, next to the label files, or up to two folders above the inputs. Without any, a class
is named by its index (``0``, ``1``, ...), which a label map can map (``0=head,1=sperm``).

Heads and whole-cell boxes of one image are paired by :func:`.cells.pair_by_containment`: a head goes
with the smallest whole-cell box that contains its centre, each box taking at most one head (tail
boxes likewise, at most one per box). A pair shares a ``sperm_id``; anything unpaired gets its own.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..io.errors import SpermInputError
from .builder import DatasetBuilder
from .cells import Cell, Part, pair_by_containment
from .common import (
    ConvertSummary,
    PathLike,
    find_files,
    image_size,
    image_stem,
    is_image_file,
    output_name,
    plural,
)
from .label_map import LabelMap, UnknownLabels, parse_label_map

__all__ = ["NAMES_FILES", "TOLERANCE", "convert_yolo", "find_label_file", "read_names"]

#: How far (as a fraction of the image) coordinates may lie outside 0..1 before it is an error.
TOLERANCE = 0.01
#: File names searched for class names, in this order.
NAMES_FILES = ("classes.txt", "obj.names", "data.yaml", "dataset.yaml", "data.yml")

_FORMAT = "expected 'class cx cy w h' (a class index, then numbers normalised to 0..1)"


def read_names(path: PathLike) -> list[str]:
    """Class names from a names file.

    Parameters
    ----------
    path : path
        A ``.yaml``/``.yml`` file with a ``names:`` list or ``{index: name}`` mapping, or a text
        file with one name per line (blank lines ignored).

    Returns
    -------
    list of str
        Name of class 0, 1, ... (a class missing from a mapping is named by its index).

    Raises
    ------
    SpermInputError
        Missing or unreadable file, no ``names`` in a YAML file, or no names at all.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpermInputError(f"Names file '{p}' does not exist; check --names.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpermInputError(f"Cannot read names file '{p}' ({exc}).") from exc
    if p.suffix.lower() in (".yaml", ".yml"):
        names = _yaml_names(p, text)
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise SpermInputError(f"Names file '{p}' holds no class names; write one name per line.")
    return names


def _yaml_names(p: Path, text: str) -> list[str]:
    import yaml  # a dependency of dask, so always installed

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpermInputError(
            f"Names file '{p}' is not valid YAML ({exc}).".replace("\n", " ")
        ) from exc
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, list):
        return [str(n).strip() for n in names]
    if isinstance(names, Mapping):
        try:
            by_index = {int(k): str(v).strip() for k, v in names.items()}
        except (TypeError, ValueError):
            by_index = {}
        if by_index and min(by_index) >= 0:
            return [by_index.get(i, str(i)) for i in range(max(by_index) + 1)]
    raise SpermInputError(
        f"Names file '{p}' has no 'names:' list (or {{index: name}} mapping) of class names; "
        "add one or pass --classes a,b,c."
    )


def find_label_file(image: Path) -> Path | None:
    """The YOLO label file of an image, or None (see the module docstring for where it looks).

    Parameters
    ----------
    image : Path

    Returns
    -------
    Path or None
    """
    name = image_stem(image) + ".txt"
    parts = image.parent.parts
    candidates = []
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        candidates.append(Path(*parts[:i], "labels", *parts[i + 1 :]) / name)
    candidates.append(image.parent / name)
    for c in candidates:
        if c.is_file():
            return c
    return None


def _search_dirs(inputs: Sequence[PathLike], label_files: Sequence[Path]) -> list[Path]:
    dirs: list[Path] = []
    starts = [Path(i) if Path(i).is_dir() else Path(i).parent for i in inputs]
    for d in starts:
        dirs.append(d)
    for f in label_files:
        dirs.append(f.parent)
    for d in starts:
        dirs.extend([d.parent, d.parent.parent])
    seen: dict[str, Path] = {}
    for d in dirs:
        seen.setdefault(os.path.abspath(d), d)
    return list(seen.values())


def _class_names(
    classes: str | Sequence[str] | None,
    names: PathLike | None,
    inputs: Sequence[PathLike],
    label_files: Sequence[Path],
    summary: ConvertSummary,
) -> list[str] | None:
    if classes is not None:
        items = classes.split(",") if isinstance(classes, str) else list(classes)
        out = [str(c).strip() for c in items]
        if not out or not all(out):
            raise SpermInputError(
                f"--classes '{classes if isinstance(classes, str) else ','.join(items)}' has an "
                "empty name; give the class names in index order, e.g. --classes head,sperm."
            )
        return out
    if names is not None:
        return read_names(names)
    for d in _search_dirs(inputs, label_files):
        for fname in NAMES_FILES:
            f = d / fname
            if f.is_file():
                found = read_names(f)
                summary.notes.append(f"class names from '{f}': {', '.join(found)}")
                return found
    summary.notes.append(
        "no class names file found (classes.txt, obj.names, data.yaml); classes are named by "
        "their index: 0, 1, ..."
    )
    return None


def _parse_line(
    path: Path, k: int, line: str, names: list[str] | None, names_from: str
) -> tuple[int, tuple[float, float, float, float]] | None:
    """Class index and normalised ``(x0, y0, x1, y1)`` of one line (None for blank/comments)."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    where = f"{path} line {k}"
    shown = text if len(text) <= 60 else text[:57] + "..."
    try:
        values = [float(t) for t in text.split()]
    except ValueError:
        raise SpermInputError(f"{where}: {_FORMAT}, got '{shown}'.") from None
    if len(values) < 5 or not all(math.isfinite(v) for v in values):
        raise SpermInputError(f"{where}: {_FORMAT}, got '{shown}'.")
    cls_value, coords = values[0], values[1:]
    if cls_value < 0 or cls_value != int(cls_value):
        raise SpermInputError(
            f"{where}: class '{text.split()[0]}' is not a class index (0, 1, 2, ...)."
        )
    cls = int(cls_value)
    if names is not None and cls >= len(names):
        raise SpermInputError(
            f"{where}: class {cls} is out of range: {names_from} lists {plural(len(names), 'class', 'classes')} "
            f"(0..{len(names) - 1}). Fix the label or give every class name with --classes or --names."
        )

    def check(v: float, what: str) -> None:
        if v < -TOLERANCE or v > 1 + TOLERANCE:
            raise SpermInputError(
                f"{where}: {what} {v:g} is outside 0..1; YOLO coordinates are divided by the image "
                "width and height (pixel coordinates are not YOLO labels)."
            )

    if len(coords) <= 5:
        cx, cy, w, h = coords[:4]
        for v, what in ((cx, "centre x"), (cy, "centre y"), (w, "width"), (h, "height")):
            check(v, what)
        if w <= 0 or h <= 0:
            raise SpermInputError(f"{where}: the box has zero or negative width or height.")
        x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        for v, what in (
            (x0, "left edge"),
            (y0, "top edge"),
            (x1, "right edge"),
            (y1, "bottom edge"),
        ):
            check(v, what)
    else:
        pts = coords[: len(coords) - len(coords) % 2]
        xs, ys = pts[0::2], pts[1::2]
        for v in xs + ys:
            check(v, "polygon coordinate")
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        if x1 <= x0 or y1 <= y0:
            raise SpermInputError(f"{where}: the polygon has zero width or height.")
    return cls, (_clip01(x0), _clip01(y0), _clip01(x1), _clip01(y1))


def _clip01(v: float) -> float:
    return min(max(v, 0.0), 1.0)


def _read_labels(
    path: Path, names: list[str] | None, names_from: str
) -> list[tuple[int, tuple[float, float, float, float]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpermInputError(f"Cannot read YOLO label file '{path}' ({exc}).") from exc
    out = []
    for k, line in enumerate(text.splitlines(), start=1):
        item = _parse_line(path, k, line, names, names_from)
        if item is not None:
            out.append(item)
    return out


def convert_yolo(
    inputs: PathLike | Sequence[PathLike],
    *,
    classes: str | Sequence[str] | None = None,
    names: PathLike | None = None,
    label_map: str | Sequence[str] | Mapping[str, str] | LabelMap | None = None,
    ignore_unknown: bool = False,
    output: PathLike | None = None,
) -> tuple[dict, ConvertSummary]:
    """Convert YOLO / darknet ``.txt`` labels into a COCO dataset in our schema.

    Parameters
    ----------
    inputs : path or sequence of paths
        Image files, and folders searched recursively for ``.tif``/``.png``/``.jpg`` images.
    classes : str or sequence of str, optional
        Class names in index order (``"head,sperm"``); wins over ``names`` and any names file.
    names : path, optional
        A names file (one name per line, or YAML with ``names:``).
    label_map : str, sequence of str, mapping or LabelMap, optional
        Class name -> ``sperm``/``head``/``tail`` (see :mod:`.label_map`); our own names need no
        entry.
    ignore_unknown : bool
        Drop boxes of classes the label map does not know (counted in the summary) instead of
        stopping.
    output : path, optional
        Where the dataset will be written; ``file_name`` entries are made relative to its folder
        (absolute when None).

    Returns
    -------
    dataset : dict
        COCO dataset: one image per input image (images without a label file included, with no
        annotations), box-only ``sperm``/``head``/``tail`` annotations linked by
        ``attributes.sperm_id``.
    summary : ConvertSummary

    Raises
    ------
    SpermInputError
        No images, no label file for any of them, a malformed line, a class index out of range,
        coordinates outside 0..1, an unreadable image, unknown class names (without
        ``ignore_unknown``), or a bad label map.
    """
    lmap = parse_label_map(label_map)
    summary = ConvertSummary("yolo")
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    found = find_files(inputs, is_image_file, "images (.tif, .png, .jpg)")
    for path, explicit in found:
        if explicit and not is_image_file(path):
            raise SpermInputError(
                f"'{path}' is not an image (.tif, .png, .jpg); give the images or their folders, "
                "the label files are found next to them or in a sibling labels/ folder."
            )
    images = [p for p, _ in found]
    labels = [find_label_file(p) for p in images]
    label_files = [f for f in labels if f is not None]
    if not label_files:
        raise SpermInputError(
            f"None of the {plural(len(images), 'image')} has a YOLO label file (looked for "
            "NAME.txt next to each image and in the labels/ folder beside images/); check the "
            "folder layout."
        )
    class_names = _class_names(classes, names, inputs, label_files, summary)
    names_from = (
        "--classes"
        if classes is not None
        else f"'{names}'"
        if names is not None
        else "the names file"
    )

    rows = [[] if f is None else _read_labels(f, class_names, names_from) for f in labels]
    unknown = UnknownLabels(ignore_unknown)
    mapped = set()
    targets: dict[int, str | None] = {}
    for row in rows:
        for cls, _ in row:
            if cls not in targets:
                targets[cls] = lmap.target(_class_name(class_names, cls))
            if targets[cls] is None:
                unknown.add(_class_name(class_names, cls))
            else:
                mapped.add(_class_name(class_names, cls))
    unknown.check(summary, sorted(mapped))

    out_dir = Path(output).parent if output is not None else None
    builder = DatasetBuilder(
        summary, inputs=[str(i) for i in inputs], class_names=class_names or []
    )
    for image, label_file, row in zip(images, labels, rows):
        width, height = image_size(image)
        image_id = builder.add_image(output_name(image, out_dir), width, height)
        if label_file is None:
            summary.images_without_labels += 1
            continue
        parts: dict[str, list[Part]] = {"sperm": [], "head": [], "tail": []}
        for cls, (x0, y0, x1, y1) in row:
            role = targets[cls]
            if role is None:
                continue
            box = (x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height)
            if box[2] <= 0 or box[3] <= 0:
                summary.skip("boxes outside their image")
                continue
            parts[role].append(Part(role, _class_name(class_names, cls), box))
        builder.add_cells(image_id, (height, width), _pair(parts), sperm_from_parts=False)
    return builder.dataset, summary


def _class_name(names: list[str] | None, cls: int) -> str:
    return names[cls] if names is not None else str(cls)


def _pair(parts: dict[str, list[Part]]) -> list[Cell]:
    """Cells of one image: each whole-cell box with the head (and tail) paired to it."""
    cells = [Cell([s]) for s in parts["sperm"]]
    boxes = [s.box for s in parts["sperm"]]
    for role in ("head", "tail"):
        items = parts[role]
        pairs = pair_by_containment(boxes, [p.box for p in items])
        for i, b in pairs.items():
            cells[b].parts.append(items[i])
        cells.extend(Cell([p]) for i, p in enumerate(items) if i not in pairs)
    return cells
