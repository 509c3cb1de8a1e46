"""npe2 reader and writer for napari-sperm COCO files.

Reader: a COCO ``.json`` opens as image, boxes, heads and tails layers per stack (non-COCO JSON is
declined after reading at most 1 MiB). Writer: *File > Save Selected Layers...* with a ``.json`` name
exports the selected images (and their boxes, heads and tails layers) as ``images/`` plus that JSON,
in the folder of the chosen file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..annotations.export import export_coco
from ..annotations.load import load_coco
from ..annotations.validate import looks_like_coco
from ..io import SpermInputError
from .annotation_layers import LayerData, layer_data_from_stack

__all__ = ["get_coco_reader", "read_coco_layers", "write_coco"]


def get_coco_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """:func:`read_coco_layers` for COCO JSON files, None for anything else (quickly)."""
    paths = path if isinstance(path, list) else [path]
    if not paths or not all(str(p).lower().endswith(".json") and looks_like_coco(p) for p in paths):
        return None
    return read_coco_layers


def read_coco_layers(path: str | os.PathLike | list) -> list[LayerData]:
    """Every stack of every COCO file as image, boxes, heads and tails layer data.

    Raises
    ------
    SpermInputError
        One line listing every problem; nothing is loaded then.
    """
    paths = path if isinstance(path, list) else [path]
    results = [(p, load_coco(p)) for p in paths]  # everything is checked before a layer is made
    out: list[LayerData] = []
    for p, res in results:
        if res.warnings:
            from napari.utils.notifications import show_warning

            show_warning(f"napari-sperm: {Path(p).name}: " + "; ".join(res.warnings))
        for stack in res.stacks:
            out.extend(layer_data_from_stack(stack, imported_from=str(p)))
    return out


def write_coco(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """npe2 writer: export selected image layers and their annotation layers as COCO.

    Annotation layers are matched to images by their metadata (``napari_sperm.source``), so select
    the image with its boxes / heads / tails layers. napari's save dialog has already asked before
    overwriting, so existing files are replaced.
    """
    from napari.layers import Image, Labels, Shapes

    from .annotation_layers import find_annotation_layers, stack_from_layers

    layers = []
    for data, attrs, kind in layer_data:
        cls = {"image": Image, "labels": Labels, "shapes": Shapes}.get(kind)
        if cls is None:
            continue
        keep = {k: v for k, v in attrs.items() if k in _ALLOWED[kind]}
        layers.append(cls(data, **keep))
    images = [ly for ly in layers if isinstance(ly, Image)]
    if not images:
        raise SpermInputError("Select an image layer (with its boxes, heads and tails) to export.")
    stacks = [stack_from_layers(img, **find_annotation_layers(layers, img)) for img in images]
    p = Path(path)
    if p.suffix.lower() != ".json":
        p = p.with_suffix(".json")
    result = export_coco(stacks, p.parent, force=True, json_name=p.name)
    return [str(result.path)]


_ALLOWED = {
    "image": {"name", "metadata", "rgb", "scale", "translate"},
    "labels": {"name", "metadata", "scale", "translate", "features"},
    "shapes": {"name", "metadata", "scale", "translate", "features", "shape_type", "ndim"},
}
