"""Check a COCO dataset before napari-sperm imports it, and list every problem at once.

A malformed file should fail with one readable message that names everything that is wrong,
before any layer is created. :func:`coco_problems` collects the problems as short sentences
naming the ids involved (``"annotation 7: category_id 9 is not a known category"``); the same
problem in many items becomes one line (``"annotations 3, 4, 5, ... (500 in all): bbox lies
outside its image"``). :func:`validate_coco` raises :class:`CocoFormatError` when there are any,
and :func:`looks_like_coco` is the cheap test a reader uses to claim a ``.json`` file.

Nothing here needs Qt or napari. Compressed RLE strings are checked without decoding any mask:
the run lengths of all annotations are parsed together with numpy and must be non-negative and
add up to exactly ``height * width``. (pycocotools accepts a string whose runs fall short and
fills the rest of the mask with whatever the memory held, and reads past the end of a cut-off
string, so "it decodes" is not a test it can give.)
"""

from __future__ import annotations

import numbers
import os
from collections import Counter
from collections.abc import Callable
from functools import partial
from math import isfinite
from pathlib import Path
from typing import Any

import numpy as np

from ..coco import CATEGORIES
from ..io.errors import SpermInputError, one_line

__all__ = [
    "CocoFormatError",
    "coco_problems",
    "looks_like_coco",
    "resolve_image_path",
    "validate_coco",
]

#: Problems spelled out in a :class:`CocoFormatError` message; the rest are counted.
MAX_SHOWN_PROBLEMS = 8
#: How much of a file :func:`looks_like_coco` reads.
SNIFF_BYTES = 1 << 20

_OUR_NAMES = tuple(str(c["name"]).lower() for c in CATEGORIES)
_OUR_NAMES_TEXT = ", ".join(_OUR_NAMES)
_LISTS = ("images", "annotations", "categories")
_PLURAL = {"image": "images", "category": "categories", "annotation": "annotations"}
# Sections, in the order their problems are reported.
_TOP, _IMAGES, _CATEGORIES, _ANNOTATIONS = range(4)
# Ids named in a grouped problem before "... (N in all)".
_GROUP_SHOWN = 3
# Largest image or RLE side taken as a size (pycocotools keeps sizes in 32 bits).
_MAX_SIDE = 2**31 - 1
_NUM = (int, float)
# A compressed RLE run takes at most this many chars (7 chars = 34 bits plus sign).
_RLE_MAX_CHARS = 7
# Chars of compressed RLE parsed in one go (small enough to stay in cache).
_RLE_CHUNK_CHARS = 1 << 16
_RLE_REASONS = (
    None,
    "the counts string has characters that are not RLE code",
    "the counts string is cut off",
    "a run is negative or longer than the whole mask",
    "a run is negative",
)


class CocoFormatError(SpermInputError):
    """A COCO file that cannot be imported, with every problem found.

    The message is one line, e.g. ``"Cannot import 'a.json': 2 problems: annotation 7:
    category_id 9 is not a known category; image 3: missing width. Fix the file or export it
    again from napari-sperm."``. At most :data:`MAX_SHOWN_PROBLEMS` problems are spelled out,
    followed by ``"(and K more)"``.

    Parameters
    ----------
    source : str
        The file (or other name) the dataset came from.
    problems : list of str
        Every problem found, as returned by :func:`coco_problems`.

    Attributes
    ----------
    source : str
        As given.
    problems : list of str
        All problems, including those left out of the message.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = str(source)
        self.problems = [one_line(p) for p in problems]
        super().__init__(_error_message(self.source, self.problems))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.problems))


def _error_message(source: str, problems: list[str]) -> str:
    n = len(problems)
    if n == 0:
        listed = "it is not a valid COCO dataset"
    else:
        shown = "; ".join(problems[:MAX_SHOWN_PROBLEMS])
        more = f" (and {n - MAX_SHOWN_PROBLEMS} more)" if n > MAX_SHOWN_PROBLEMS else ""
        listed = f"{n} problem{'s' if n != 1 else ''}: {shown}{more}"
    return f"Cannot import {source!r}: {listed}. Fix the file or export it again from napari-sperm."


def validate_coco(
    ds: object,
    source: str = "<dataset>",
    base_dir: str | os.PathLike[str] | None = None,
    check_files: bool = False,
) -> dict[str, Any]:
    """Check a COCO dataset and return it unchanged, or raise with every problem found.

    Parameters
    ----------
    ds : object
        The parsed JSON (normally a dict).
    source : str, optional
        Name of the file it came from, for the error message.
    base_dir : str or os.PathLike, optional
        Folder that relative image ``file_name`` entries are relative to.
    check_files : bool, optional
        Also check that the image files exist (see :func:`coco_problems`).

    Returns
    -------
    dict
        ``ds`` itself.

    Raises
    ------
    CocoFormatError
        If :func:`coco_problems` finds anything; its ``problems`` attribute lists them all.
    """
    problems = coco_problems(ds, base_dir=base_dir, check_files=check_files)
    if problems:
        raise CocoFormatError(source, problems)
    return ds  # type: ignore[return-value]


def looks_like_coco(path: object) -> bool:
    """Cheap test for a reader: does this file look like a COCO dataset?

    Only the first :data:`SNIFF_BYTES` (1 MiB) are read; the file is never parsed.

    Parameters
    ----------
    path : str or os.PathLike
        Candidate file. Anything else (a list of paths, None) gives False.

    Returns
    -------
    bool
        True when ``path`` is a readable ``.json`` file that starts as a JSON object and whose
        first MiB holds an ``"images"`` key and an ``"annotations"`` or ``"categories"`` key;
        False for other suffixes, directories, and missing or unreadable files.
    """
    if not isinstance(path, (str, os.PathLike)):
        return False
    try:
        p = Path(path)
        if p.suffix.lower() != ".json" or not p.is_file():
            return False
        with open(p, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except (OSError, TypeError, ValueError):
        return False
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    return (
        text.startswith("{")
        and '"images"' in text
        and ('"annotations"' in text or '"categories"' in text)
    )


def coco_problems(
    ds: object,
    base_dir: str | os.PathLike[str] | None = None,
    check_files: bool = False,
) -> list[str]:
    """Every problem that stops a COCO dataset from being imported.

    Parameters
    ----------
    ds : object
        The parsed JSON (normally a dict with ``images``, ``annotations`` and ``categories``).
    base_dir : str or os.PathLike, optional
        Folder that relative image ``file_name`` entries are relative to (normally the folder of
        the JSON file). Only used with ``check_files``.
    check_files : bool, optional
        Also check that each distinct image ``file_name`` is an existing file: absolute names as
        they are, relative ones inside ``base_dir`` (relative names are not checked when
        ``base_dir`` is None).

    Returns
    -------
    list of str
        One short sentence per problem, naming the ids involved (items without a usable id are
        named by their index in their list); the same problem in several items is one line.
        Empty when the dataset can be imported.

    Notes
    -----
    Checked:

    - the top level is an object with ``images``, ``annotations`` and ``categories`` lists;
    - images have an integer ``id``, positive integer ``width`` and ``height``, a non-empty
      ``file_name`` and, optionally, a non-negative integer ``frame``;
    - categories have an integer ``id`` and a ``name``; a category that some annotation uses
      must be named ``sperm``, ``head`` or ``tail`` (any case);
    - ids are unique within each list;
    - annotations have an integer ``id``, an ``image_id`` that is an image, a ``category_id``
      that is a category, and a ``bbox`` or a ``segmentation`` (an empty list counts as none);
    - a ``bbox`` is 4 finite numbers with positive width and height, inside its image with
      0.5 px to spare;
    - polygons have an even number of coordinates and at least 3 points; RLE has a ``size``
      equal to the image's ``[height, width]`` and ``counts`` (a string or a list of integers)
      whose runs are non-negative and cover exactly ``height * width`` pixels;
    - ``score``, when present, is a finite number, ``iscrowd`` is 0 or 1, and ``attributes`` is
      an object whose ``sperm_id`` (when present) is an integer.
    """
    found = _Problems()
    if not isinstance(ds, dict):
        found.add(_TOP, 0, None, None, f"the top level is {_json_type(ds)}, not a JSON object")
        return found.render()

    lists: dict[str, list[Any] | None] = {}
    for key in _LISTS:
        value = ds.get(key)
        if key not in ds:
            found.add(_TOP, 0, None, None, f"missing the {key!r} list")
            value = None
        elif not isinstance(value, list):
            found.add(_TOP, 0, None, None, f"{key!r} is {_json_type(value)}, not a list")
            value = None
        lists[key] = value

    sizes, files = _check_images(lists["images"], found)
    categories = _check_categories(lists["categories"], found)
    _check_annotations(lists["annotations"], sizes, categories, found)
    if check_files and files:
        found.extra.extend(_missing_files(files, base_dir))
    return found.render()


# --------------------------------------------------------------------------------------------
# Collecting and grouping problems


class _Problems:
    """Problems as ``(order, kind, ref, generic, detail)`` records, grouped when rendered.

    ``kind`` is ``"image"``, ``"category"``, ``"annotation"`` or None (the whole dataset);
    ``ref`` is ``(False, id)``, or ``(True, index)`` for an item without a usable id. Problems
    with the same kind and ``generic`` text become one line naming all their items, with the
    ``detail`` text when all of them share it; up to ``_GROUP_SHOWN`` problems with different
    details stay lines of their own. A detail that is costly to write (and rarely shared) can
    be a function returning it; it is only called for a line of its own.
    """

    def __init__(self) -> None:
        self.records: list[tuple[tuple[int, int, int], str | None, Any, str, Any]] = []
        self.extra: list[str] = []

    def add(
        self,
        section: int,
        index: int,
        kind: str | None,
        ref: Any,
        generic: str,
        detail: str | Callable[[], str] | None = None,
    ) -> None:
        order = (section, index, len(self.records))
        self.records.append((order, kind, ref, generic, generic if detail is None else detail))

    def reporter(self, section: int, index: int, kind: str, ref: Any) -> Callable[..., None]:
        """``report(generic, detail=None)`` for one item."""
        return partial(self.add, section, index, kind, ref)

    def render(self) -> list[str]:
        groups: dict[tuple[str | None, str], list[tuple[Any, Any]]] = {}
        for _, kind, ref, generic, detail in sorted(self.records, key=lambda r: r[0]):
            groups.setdefault((kind, generic), []).append((ref, detail))
        out = []
        for (kind, generic), members in groups.items():
            first = members[0][1]
            if not callable(first) and all(detail == first for _, detail in members):
                text = first
            elif len(members) <= _GROUP_SHOWN:
                # A few different details: each on its own line.
                lines = {}
                for ref, detail in members:
                    text = detail() if callable(detail) else detail
                    lines[text if kind is None else f"{_refs_text(kind, [ref])}: {text}"] = None
                out.extend(lines)
                continue
            else:
                text = generic
            if kind is None:
                out.append(text)
            else:
                # An item can have the same problem twice (e.g. two short polygons).
                refs = list(dict.fromkeys(ref for ref, _ in members))
                out.append(f"{_refs_text(kind, refs)}: {text}")
        return out + self.extra


def _refs_text(kind: str, refs: list[tuple[bool, Any]]) -> str:
    n = len(refs)
    shown = refs if n <= _GROUP_SHOWN + 1 else refs[:_GROUP_SHOWN]
    ids = [str(v) for is_index, v in shown if not is_index]
    idx = [str(v) for is_index, v in shown if is_index]
    parts = []
    if ids:
        parts.append(", ".join(ids))
    if idx:
        parts.append("at index " + ", ".join(idx))
    text = " and ".join(parts)
    if len(shown) < n:
        text += f", ... ({n} in all)"
    return f"{kind if n == 1 else _PLURAL[kind]} {text}"


def _listed(names: list[str], n_shown: int = _GROUP_SHOWN) -> str:
    n = len(names)
    if n <= n_shown + 1:
        return ", ".join(names)
    return ", ".join(names[:n_shown]) + f", ... ({n} in all)"


# --------------------------------------------------------------------------------------------
# Value helpers


def _is_int(v: object) -> bool:
    return type(v) is int or (isinstance(v, numbers.Integral) and not isinstance(v, bool))


def _is_num(v: object) -> bool:
    """A finite real number (bools excluded)."""
    if type(v) is int:
        return True
    if type(v) is float:
        return isfinite(v)
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return False
    return isfinite(float(v))


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, numbers.Number):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _scalar_text(v: object) -> str:
    if type(v) is int:
        return str(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        f = float(v)
        text = repr(f)
        return text if len(text) <= 12 else f"{f:.6g}"
    if isinstance(v, str):
        return repr(v)
    return ""


def _short(v: object, max_len: int = 40) -> str:
    """A value as it might appear in the file, cut to ``max_len`` characters."""
    text = _scalar_text(v)
    if not text and isinstance(v, (list, tuple)):
        items = [_scalar_text(x) for x in v[:9]]
        if len(v) <= 8 and all(items):
            text = "[" + ", ".join(items) + "]"
        else:
            text = f"a list of {len(v)} items"
    elif not text:
        text = _json_type(v)
    return one_line(text, max_len)


def _is_not(name: str, value: object, what: str) -> str:
    """``"width -3 is not a positive integer"``, or ``"id is a list, not an integer"``."""
    shown = _short(value)
    if isinstance(value, dict) or shown.startswith("a list of"):
        return f"{name} is {_json_type(value)}, not {what}"
    return f"{name} {shown} is not {what}"


def _missing(item: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    absent = [k for k in keys if k not in item]
    return "missing " + ", ".join(absent) if absent else None


# --------------------------------------------------------------------------------------------
# The checks


def _check_images(
    images: list[Any] | None, found: _Problems
) -> tuple[dict[int, tuple[int, int] | None] | None, list[str]]:
    """Check images; return ``{id: (height, width) or None}`` (None without a list) and file names."""
    files: list[str] = []
    if images is None:
        return None, files
    sizes: dict[int, tuple[int, int] | None] = {}
    ids = []
    for i, img in enumerate(images):
        if not isinstance(img, dict):
            report = found.reporter(_IMAGES, i, "image", (True, i))
            report("is not a JSON object", f"is {_json_type(img)}, not a JSON object")
            continue
        img_id = img.get("id")
        has_id = _is_int(img_id)
        report = found.reporter(_IMAGES, i, "image", (False, img_id) if has_id else (True, i))
        missing = _missing(img, ("id", "width", "height", "file_name"))
        if missing:
            report(missing)
        if "id" in img and not has_id:
            report("id is not an integer", _is_not("id", img_id, "an integer"))
        dims = []
        for key in ("height", "width"):
            if key in img:
                v = img[key]
                if _is_int(v) and v > 0:
                    dims.append(int(v))
                else:
                    report(
                        f"{key} is not a positive integer",
                        _is_not(key, v, "a positive integer"),
                    )
        if "file_name" in img:
            name = img["file_name"]
            if not isinstance(name, str):
                report(
                    "file_name is not a string", f"file_name is {_json_type(name)}, not a string"
                )
            elif not name.strip():
                report("file_name is empty")
            else:
                files.append(name)
        if "frame" in img:
            v = img["frame"]
            if not (_is_int(v) and v >= 0):
                report(
                    "frame is not a non-negative integer",
                    _is_not("frame", v, "a non-negative integer"),
                )
        if has_id:
            ids.append(img_id)
            if img_id not in sizes:
                ok = len(dims) == 2 and max(dims) <= _MAX_SIDE
                sizes[img_id] = (dims[0], dims[1]) if ok else None
    _check_duplicates(images, ids, "image", _IMAGES, found)
    return sizes, files


def _check_categories(
    categories: list[Any] | None, found: _Problems
) -> dict[int, tuple[int, str | None]] | None:
    """Check categories; return ``{id: (index in the list, name or None)}`` (None without a list)."""
    if categories is None:
        return None
    known: dict[int, tuple[int, str | None]] = {}
    ids = []
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict):
            report = found.reporter(_CATEGORIES, i, "category", (True, i))
            report("is not a JSON object", f"is {_json_type(cat)}, not a JSON object")
            continue
        cat_id = cat.get("id")
        has_id = _is_int(cat_id)
        report = found.reporter(
            _CATEGORIES, i, "category", (False, cat_id) if has_id else (True, i)
        )
        missing = _missing(cat, ("id", "name"))
        if missing:
            report(missing)
        if "id" in cat and not has_id:
            report("id is not an integer", _is_not("id", cat_id, "an integer"))
        name = cat.get("name")
        if "name" in cat and not isinstance(name, str):
            report("name is not a string", f"name is {_json_type(name)}, not a string")
            name = None
        if has_id:
            ids.append(cat_id)
            known.setdefault(cat_id, (i, name))
    _check_duplicates(categories, ids, "category", _CATEGORIES, found)
    return known


def _check_duplicates(
    items: list[Any], ids: list[Any], kind: str, section: int, found: _Problems
) -> None:
    counts = Counter(ids)
    if len(counts) == len(ids):
        return
    first: dict[Any, int] = {}
    for i, item in enumerate(items):
        if isinstance(item, dict) and _is_int(item.get("id")):
            first.setdefault(item["id"], i)
    for item_id, n in counts.items():
        if n > 1:
            report = found.reporter(section, first[item_id], kind, (False, item_id))
            report("id is used more than once", f"id is used {n} times")


class _RleBatch:
    """Compressed RLE strings collected from the annotations, checked together at the end.

    Only strings, the sizes (tuples the image table already holds) and annotation indices are
    kept, so the common case allocates no new objects per annotation.
    """

    def __init__(self) -> None:
        self.strings: list[str] = []
        self.sizes: list[tuple[int, int]] = []
        self.indices: list[int] = []


def _check_annotations(
    anns: list[Any] | None,
    sizes: dict[int, tuple[int, int] | None] | None,
    categories: dict[int, tuple[int, str | None]] | None,
    found: _Problems,
) -> None:
    if anns is None:
        return
    ids: list[Any] = []
    used: list[int] = []
    rles = _RleBatch()
    for i, ann in enumerate(anns):
        counts = _fast_rle_counts(ann, sizes, categories)
        if counts is None:
            _check_annotation(i, ann, sizes, categories, found, ids, used, rles)
            continue
        # The common case: a well-formed annotation with compressed RLE.
        ids.append(ann["id"])
        used.append(ann["category_id"])
        rles.strings.append(counts)
        rles.sizes.append(sizes[ann["image_id"]])  # type: ignore[index, arg-type]
        rles.indices.append(i)

    _check_duplicates(anns, ids, "annotation", _ANNOTATIONS, found)

    for i, err in zip(rles.indices, _compressed_rle_errors(rles.strings, rles.sizes)):
        if err is not None:
            ann_id = anns[i]["id"]
            ref = (False, ann_id) if _is_int(ann_id) else (True, i)
            report = found.reporter(_ANNOTATIONS, i, "annotation", ref)
            report(
                "compressed RLE counts do not decode",
                f"compressed RLE counts do not decode ({err})",
            )

    # A category that is not ours is a problem only when something uses it.
    if categories is not None:
        for cat_id, n in Counter(used).items():
            index, name = categories[cat_id]
            if name is None or name.strip().lower() in _OUR_NAMES:
                continue
            users = f"{n} annotation{'s' if n != 1 else ''}"
            found.add(
                _CATEGORIES,
                index,
                None,
                None,
                f"category {cat_id} {_short(name)} is not one of {_OUR_NAMES_TEXT} (used by {users})",
            )


def _fast_rle_counts(
    ann: Any,
    sizes: dict[int, tuple[int, int] | None] | None,
    categories: dict[int, tuple[int, str | None]] | None,
) -> str | None:
    """The RLE string of an annotation that passes every check of :func:`_check_annotation`.

    A quick test for the common case: integer ids that resolve, a bbox inside the image,
    compressed RLE of the image's size, valid optional fields. Anything else (polygons, no
    bbox, numpy numbers, any problem) gives None and goes through :func:`_check_annotation`.
    """
    if type(ann) is not dict or sizes is None or categories is None:
        return None
    image_id = ann.get("image_id")
    cat_id = ann.get("category_id")
    if type(ann.get("id")) is not int or type(image_id) is not int or type(cat_id) is not int:
        return None
    size = sizes.get(image_id)
    if size is None or cat_id not in categories:
        return None
    height, width = size
    bbox = ann.get("bbox")
    if type(bbox) is not list or len(bbox) != 4:
        return None
    x, y, w, h = bbox
    if not (type(x) in _NUM and type(y) in _NUM and type(w) in _NUM and type(h) in _NUM):
        return None
    if not (isfinite(x) and isfinite(y) and isfinite(w) and isfinite(h)):
        return None
    if w <= 0 or h <= 0 or x < -0.5 or y < -0.5 or x + w > width + 0.5 or y + h > height + 0.5:
        return None
    seg = ann.get("segmentation")
    if type(seg) is not dict:
        return None
    rle_size = seg.get("size")
    counts = seg.get("counts")
    if type(counts) is not str or type(rle_size) is not list or len(rle_size) != 2:
        return None
    rle_h, rle_w = rle_size
    if type(rle_h) is not int or type(rle_w) is not int or rle_h != height or rle_w != width:
        return None
    if "score" in ann:
        score = ann["score"]
        if type(score) not in _NUM or not isfinite(score):
            return None
    if "iscrowd" in ann:
        crowd = ann["iscrowd"]
        if type(crowd) is not int or (crowd != 0 and crowd != 1):
            return None
    if "attributes" in ann:
        attrs = ann["attributes"]
        if type(attrs) is not dict or ("sperm_id" in attrs and type(attrs["sperm_id"]) is not int):
            return None
    return counts


def _check_annotation(
    i: int,
    ann: Any,
    sizes: dict[int, tuple[int, int] | None] | None,
    categories: dict[int, tuple[int, str | None]] | None,
    found: _Problems,
    ids: list[Any],
    used: list[int],
    rles: _RleBatch,
) -> None:
    """Every check of one annotation; ids, used category ids and RLE strings go to the lists."""
    if not isinstance(ann, dict):
        report = found.reporter(_ANNOTATIONS, i, "annotation", (True, i))
        report("is not a JSON object", f"is {_json_type(ann)}, not a JSON object")
        return
    ann_id = ann.get("id")
    has_id = _is_int(ann_id)
    report = found.reporter(_ANNOTATIONS, i, "annotation", (False, ann_id) if has_id else (True, i))
    if has_id:
        ids.append(ann_id)
    missing = _missing(ann, ("id", "image_id", "category_id"))
    if missing:
        report(missing)
    if "id" in ann and not has_id:
        report("id is not an integer", _is_not("id", ann_id, "an integer"))

    size = None
    image_id = ann.get("image_id")
    if "image_id" in ann:
        if not _is_int(image_id):
            report("image_id is not an integer", _is_not("image_id", image_id, "an integer"))
        elif sizes is not None:
            if image_id in sizes:
                size = sizes[image_id]
            else:
                report("image_id is not an image", f"image_id {image_id} is not an image")

    if "category_id" in ann:
        cat_id = ann["category_id"]
        if not _is_int(cat_id):
            report("category_id is not an integer", _is_not("category_id", cat_id, "an integer"))
        elif categories is not None:
            if cat_id in categories:
                used.append(cat_id)
            else:
                report(
                    "category_id is not a known category",
                    f"category_id {cat_id} is not a known category",
                )

    has_bbox = "bbox" in ann
    seg = ann.get("segmentation")
    has_seg = "segmentation" in ann and not (isinstance(seg, list) and len(seg) == 0)
    if not has_bbox and not has_seg:
        report("has neither bbox nor segmentation")
    if has_bbox:
        _check_bbox(ann["bbox"], size, image_id, report)
    if has_seg:
        if isinstance(seg, dict):
            _check_rle(seg, size, image_id, report, rles, i)
        elif isinstance(seg, list):
            _check_polygons(seg, report)
        else:
            report(
                "segmentation is neither polygons nor RLE",
                f"segmentation is {_json_type(seg)}, neither polygons (a list of lists of numbers) "
                "nor RLE (an object with size and counts)",
            )

    if "score" in ann and not _is_num(ann["score"]):
        report("score is not a finite number", _is_not("score", ann["score"], "a finite number"))
    if "iscrowd" in ann:
        crowd = ann["iscrowd"]
        if not (_is_int(crowd) and crowd in (0, 1)):
            report("iscrowd is not 0 or 1", _is_not("iscrowd", crowd, "0 or 1"))
    if "attributes" in ann:
        attrs = ann["attributes"]
        if not isinstance(attrs, dict):
            report(
                "attributes is not a JSON object",
                f"attributes is {_json_type(attrs)}, not a JSON object",
            )
        elif "sperm_id" in attrs and not _is_int(attrs["sperm_id"]):
            report(
                "attributes.sperm_id is not an integer",
                _is_not("attributes.sperm_id", attrs["sperm_id"], "an integer"),
            )


def _check_bbox(
    bbox: Any, size: tuple[int, int] | None, image_id: Any, report: Callable[..., None]
) -> None:
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_is_num(v) for v in bbox)):
        report("bbox is not 4 finite numbers", lambda: _is_not("bbox", bbox, "4 finite numbers"))
        return
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        report(
            "bbox has zero or negative width or height",
            lambda: f"bbox {_short(bbox)} has zero or negative width or height",
        )
    elif size is not None:
        height, width = size
        if x < -0.5 or y < -0.5 or x + w > width + 0.5 or y + h > height + 0.5:
            report(
                "bbox lies outside its image",
                lambda: (
                    f"bbox {_short(bbox)} (x, y, width, height) lies outside image "
                    f"{image_id} (width {width}, height {height})"
                ),
            )


def _check_rle(
    seg: dict[str, Any],
    size: tuple[int, int] | None,
    image_id: Any,
    report: Callable[..., None],
    rles: _RleBatch,
    index: int,
) -> None:
    missing = _missing(seg, ("size", "counts"))
    if missing:
        report(f"RLE segmentation is {missing}")
    rle_hw = None
    if "size" in seg:
        rle_size = seg["size"]
        if (
            isinstance(rle_size, (list, tuple))
            and len(rle_size) == 2
            and all(_is_int(v) and 0 < v <= _MAX_SIDE for v in rle_size)
        ):
            rle_hw = (int(rle_size[0]), int(rle_size[1]))
            if size is not None and rle_hw != size:
                report(
                    "RLE size does not match its image",
                    f"RLE size [{rle_hw[0]}, {rle_hw[1]}] (height, width) does not match image "
                    f"{image_id} (height {size[0]}, width {size[1]})",
                )
        else:
            report(
                "RLE size is not [height, width]",
                _is_not("RLE size", rle_size, "[height, width] (two positive integers)"),
            )
    if "counts" not in seg:
        return
    counts = seg["counts"]
    if isinstance(counts, str):
        if rle_hw is not None:
            rles.strings.append(counts)
            rles.sizes.append(rle_hw)
            rles.indices.append(index)
    elif isinstance(counts, list):
        if not all(_is_int(c) and c >= 0 for c in counts):
            report("RLE counts are not all non-negative integers")
        elif rle_hw is not None:
            total = sum(int(c) for c in counts)
            h, w = rle_hw
            if total != h * w:
                report(
                    "RLE counts do not cover the mask",
                    f"RLE counts add up to {total} pixels, not {h} x {w} = {h * w}",
                )
    else:
        report(
            "RLE counts are neither a string nor a list of integers",
            f"RLE counts are {_json_type(counts)}, neither a string nor a list of integers",
        )


def _check_polygons(polys: list[Any], report: Callable[..., None]) -> None:
    for poly in polys:
        if not isinstance(poly, (list, tuple)):
            report(
                "segmentation list does not hold polygons",
                f"segmentation list holds {_json_type(poly)} instead of polygons (lists of numbers)",
            )
            continue
        n = len(poly)
        if not all(_is_num(v) for v in poly):
            report("polygon holds something other than finite numbers")
        elif n % 2:
            report(
                "polygon with an odd number of coordinates",
                f"polygon with {n} coordinates (needs an even number)",
            )
        elif n < 6:
            report(
                "polygon with fewer than 3 points",
                f"polygon with {n // 2} point{'s' if n != 2 else ''} (needs at least 3)",
            )


# --------------------------------------------------------------------------------------------
# Compressed RLE


def _compressed_rle_errors(strings: list[str], sizes: list[tuple[int, int]]) -> list[str | None]:
    """Why each compressed RLE string does not decode to an ``h x w`` mask (None when it does).

    The strings are parsed the way pycocotools' ``rleFrString`` reads them: each run is a
    little-endian sequence of 5-bit groups (chars ``'0'`` + 0..63; bit 0x20 means "more
    follows", bit 0x10 of the last char is the sign) and from the fourth run on, each value is
    the difference to the run two before. The runs must be non-negative and add up to exactly
    ``h * w``. Strings are parsed in chunks with numpy; no mask is decoded.
    """
    errors: list[str | None] = [None] * len(strings)
    keep = []
    for r, s in enumerate(strings):
        if not s:
            errors[r] = "the counts string is empty"
        elif not s.isascii():
            errors[r] = _RLE_REASONS[1]
        else:
            keep.append(r)
    start = 0
    while start < len(keep):
        stop, n_chars = start, 0
        while stop < len(keep) and n_chars < _RLE_CHUNK_CHARS:
            n_chars += len(strings[keep[stop]])
            stop += 1
        chunk = keep[start:stop]
        chunk_sizes = [sizes[r] for r in chunk]
        hw = np.fromiter((h * w for h, w in chunk_sizes), dtype=np.int64, count=len(chunk))
        reason, sums = _parse_rle_chunk([strings[r] for r in chunk], hw)
        for q in np.flatnonzero(reason):
            errors[chunk[q]] = _RLE_REASONS[reason[q]]
        for q in np.flatnonzero((sums != hw) & (reason == 0)):
            h, w = chunk_sizes[q]
            errors[chunk[q]] = f"its runs add up to {int(sums[q])} pixels, not {h} x {w} = {h * w}"
        start = stop
    return errors


def _parse_rle_chunk(strings: list[str], hw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse non-empty ASCII RLE strings.

    Parameters
    ----------
    strings : list of str
        Compressed RLE counts, none empty, all ASCII.
    hw : (N,) int64 array
        Pixels in each mask (``h * w``).

    Returns
    -------
    reason : (N,) int8 array
        Index into ``_RLE_REASONS`` of what is wrong with each string; 0 when nothing (yet).
    sums : (N,) int64 array
        Sum of each string's runs (meaningless where ``reason`` is not 0).
    """
    m = len(strings)
    lens = np.fromiter(map(len, strings), dtype=np.int64, count=m)
    # Chars as 6-bit codes; anything outside '0'..'o' wraps round to more than 63.
    codes = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8) - 48
    starts = np.zeros(m, dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    last = starts + lens - 1
    reason = np.zeros(m, dtype=np.int8)

    bad_chars = np.flatnonzero(codes > 63)
    if bad_chars.size:
        _set_reason(reason, starts, bad_chars, 1)
    more = (codes & 0x20).astype(bool)
    reason[more[last] & (reason == 0)] = 2

    # Split the chars into runs; a run never crosses the end of its string.
    end = ~more
    end[last] = True
    ends = np.flatnonzero(end)
    n_runs = ends.size
    run_start = np.empty_like(ends)
    run_start[0] = 0
    np.add(ends[:-1], 1, out=run_start[1:])
    raw = (codes[run_start] & 0x1F).astype(np.int64)
    # Sign extension: bit 4 of the last char is the top bit of the 5 * n_chars bit value.
    top = np.full(n_runs, 16, dtype=np.int64)
    longer = np.arange(n_runs)
    for k in range(1, _RLE_MAX_CHARS + 1):
        longer = longer[ends[longer] - run_start[longer] >= k]
        if not longer.size:
            break
        if k == _RLE_MAX_CHARS:
            _set_reason(reason, starts, run_start[longer], 3)
            break
        raw[longer] += (codes[run_start[longer] + k] & 0x1F).astype(np.int64) << (5 * k)
        top[longer] = np.int64(1) << (5 * k + 4)
    vals = (raw ^ top) - top
    huge = np.flatnonzero(np.abs(vals) > hw.max())
    if huge.size:
        _set_reason(reason, starts, run_start[huge], 3)
    first_run = np.searchsorted(run_start, starts)
    runs_per_rle = np.diff(np.append(first_run, n_runs))
    if reason.any():
        vals[np.repeat(reason != 0, runs_per_rle)] = 0

    # Undo the differences. From the fourth run on each run adds the run two before it, so the
    # runs at odd and at even positions are running sums: take them over the whole chunk (by
    # position parity) and subtract what had gathered before each string's chain starts.
    cum = np.empty(n_runs + 1, dtype=np.int64)
    cum[0] = 0
    np.cumsum(vals[0::2], out=cum[1::2])
    np.cumsum(vals[1::2], out=cum[2::2])
    first_of = np.repeat(first_run, runs_per_rle)
    odd = (np.arange(n_runs) ^ first_of) & 1
    runs = cum[1:] - cum[first_of + 1 - odd]
    runs[first_run] = vals[first_run]
    negative = np.flatnonzero(runs < 0)
    if negative.size:
        _set_reason(reason, starts, run_start[negative], 4)
    return reason, np.add.reduceat(runs, first_run)


def _set_reason(reason: np.ndarray, starts: np.ndarray, chars: np.ndarray, code: int) -> None:
    """Give the strings holding these char positions reason ``code``, unless they have one."""
    rles = np.unique(np.searchsorted(starts, chars, side="right") - 1)
    reason[rles[reason[rles] == 0]] = code


# --------------------------------------------------------------------------------------------
# Image files


def resolve_image_path(name: str, base_dir: str | os.PathLike[str] | None) -> Path:
    """Where an ``images[].file_name`` points: absolute as it is; a relative name inside
    ``base_dir`` (the JSON's folder, the COCO convention), else in the current folder (how
    ``napari-sperm detect`` and ``segment`` record the inputs they were given)."""
    path = Path(name)
    if path.is_absolute():
        return path
    if base_dir is not None:
        inside = Path(base_dir).expanduser() / path
        if inside.is_file() or not path.is_file():
            return inside
    return path.resolve()


def _missing_files(files: list[str], base_dir: str | os.PathLike[str] | None) -> list[str]:
    base = Path(base_dir).expanduser().resolve() if base_dir is not None else None
    missing: dict[str, list[str]] = {}
    for name in dict.fromkeys(files):
        path = Path(name)
        if path.is_absolute():
            where = ""
        elif base is not None:
            where = f"{base} and the current folder"
            path = resolve_image_path(name, base)
        else:
            continue
        try:
            ok = path.is_file()
        except (OSError, ValueError):
            ok = False
        if not ok:
            missing.setdefault(where, []).append(name)
    out = []
    for where, names in missing.items():
        plural = "s" if len(names) != 1 else ""
        text = f"image file{plural} {_listed([_short(s, 200) for s in names])} not found"
        out.append(f"{text} (looked in {where})" if where else text)
    return out
