"""Bring existing public datasets into the napari-sperm COCO schema (no Qt).

Three source formats, each a function returning ``(dataset, summary)``:

- :func:`convert_yolo`: YOLO / darknet ``.txt`` boxes (and YOLO-seg polygons) beside the images;
- :func:`convert_labelme`: labelme ``.json`` shapes (polygons, rectangles, lines, ...);
- :func:`convert_coco_parts`: COCO datasets whose categories are sperm parts.

A label map (:func:`parse_label_map`) says which source labels are our ``sperm`` (whole cell),
``head`` and ``tail``; parts are put together into cells by the rules in :mod:`.cells`, and written
by :class:`.builder.DatasetBuilder`. ``napari-sperm convert`` (:mod:`.cli`) wraps :func:`convert`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..io.errors import SpermInputError
from .coco_parts import convert_coco_parts
from .common import ConvertSummary, PathLike
from .label_map import LabelMap, parse_label_map
from .labelme import convert_labelme
from .yolo import convert_yolo

__all__ = [
    "FORMATS",
    "ConvertSummary",
    "LabelMap",
    "convert",
    "convert_coco_parts",
    "convert_labelme",
    "convert_yolo",
    "parse_label_map",
]

#: Source formats :func:`convert` understands, with the function for each.
_CONVERTERS = {"yolo": convert_yolo, "labelme": convert_labelme, "coco-parts": convert_coco_parts}
FORMATS = tuple(_CONVERTERS)


def convert(
    source_format: str, inputs: PathLike | Sequence[PathLike], **options: Any
) -> tuple[dict, ConvertSummary]:
    """Convert a dataset in one of :data:`FORMATS` into our COCO schema.

    Parameters
    ----------
    source_format : {"yolo", "labelme", "coco-parts"}
    inputs : path or sequence of paths
        Files and folders, as the format's function takes them.
    **options
        Keyword arguments of :func:`convert_yolo`, :func:`convert_labelme` or
        :func:`convert_coco_parts` (``label_map``, ``ignore_unknown``, ``output``, ...).

    Returns
    -------
    dataset : dict
        COCO dataset in our schema.
    summary : ConvertSummary

    Raises
    ------
    SpermInputError
        An unknown format, or any problem with the inputs.
    """
    func = _CONVERTERS.get(source_format)
    if func is None:
        raise SpermInputError(
            f"Unknown source format '{source_format}'; use one of {', '.join(FORMATS)}."
        )
    return func(inputs, **options)
