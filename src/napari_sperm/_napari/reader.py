"""npe2 reader: TIFF / OME-TIFF files and folders of frames as image layers; COCO JSON via :mod:`.coco_io`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..io import is_supported, read_image
from ..io._common import suffix_of

__all__ = ["get_reader", "read_layers"]

LayerData = tuple[Any, dict[str, Any], str]


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return :func:`read_layers` if napari-sperm can open ``path``, else None (quickly)."""
    paths = path if isinstance(path, list) else [path]
    if paths and all(str(p).lower().endswith(".json") for p in paths):
        from .coco_io import get_coco_reader

        return get_coco_reader(paths)
    if not paths or not all(is_supported(p) for p in paths):
        return None
    return read_layers


def read_layers(path: str | os.PathLike | list) -> list[LayerData]:
    """Read each path into an image layer; the file's pixel size becomes the layer scale.

    Raises
    ------
    SpermInputError
        With a one-line explanation when a file cannot be read.
    """
    paths = path if isinstance(path, list) else [path]
    out: list[LayerData] = []
    for p in paths:
        img = read_image(p)
        path = Path(p)
        name = path.name[: len(path.name) - len(suffix_of(path))] if path.is_file() else path.name
        kwargs: dict[str, Any] = {
            "name": name,
            "rgb": img.rgb,
            "metadata": {
                "napari_sperm": {"source": str(p), "axes": img.axes, "lazy": img.lazy},
            },
        }
        if img.scale is not None:
            kwargs["scale"] = tuple(img.scale)
        if img.unit:
            kwargs["units"] = img.unit
        if img.frame_names:
            kwargs["metadata"]["napari_sperm"]["frame_names"] = list(img.frame_names)
        if img.lazy:
            kwargs["multiscale"] = False
            kwargs["contrast_limits"] = _lazy_contrast_limits(img)
        out.append((img.data, kwargs, "image"))
    return out


def _lazy_contrast_limits(img) -> tuple[float, float] | None:
    """Contrast limits from the first frame only, so napari does not scan a huge lazy stack."""
    if img.rgb and img.data.dtype.kind == "u" and img.data.dtype.itemsize == 1:
        return None
    first = img.data
    while first.ndim > (3 if img.rgb else 2):
        first = first[0]
    arr = np.asarray(first.compute() if hasattr(first, "compute") else first)
    finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
    if finite.size == 0:
        return (0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi if hi > lo else lo + 1.0)
