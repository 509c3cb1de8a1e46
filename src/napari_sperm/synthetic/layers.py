"""Synthetic data as napari layer-data tuples ``(data, kwargs, layer_type)``.

Plain tuples of numpy arrays and dicts: no Qt, no napari import. The sample-data contributions and
the *Synthetic sperm* widget both build their layers here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .field import SyntheticField, SyntheticStack

__all__ = ["image_layer_data", "truth_layer_data"]

LayerData = tuple[Any, dict[str, Any], str]


def _as_stack(obj: SyntheticField | SyntheticStack) -> tuple[bool, SyntheticStack]:
    if isinstance(obj, SyntheticStack):
        return True, obj
    return False, SyntheticStack(
        images=obj.image[None],
        sperm=[obj.sperm],
        crossings=[obj.crossings],
        modality=obj.modality,
        pixel_size_um=obj.pixel_size_um,
        seed=obj.seed,
    )


def _scale(obj, stack: bool) -> tuple[float, ...]:
    px = obj.pixel_size_um
    return ((1.0,) if stack else ()) + (px, px)


def _metadata(obj) -> dict[str, Any]:
    return {
        "napari_sperm": {
            "source": "synthetic",
            "modality": obj.modality,
            "seed": obj.seed,
            "pixel_size_um": obj.pixel_size_um,
        }
    }


def image_layer_data(obj: SyntheticField | SyntheticStack, name: str) -> LayerData:
    """The image (or stack) as an image layer, scaled in micrometres."""
    stack = isinstance(obj, SyntheticStack)
    data = obj.images if stack else obj.image
    kwargs = {
        "name": name,
        "rgb": data.ndim == (4 if stack else 3),
        "scale": _scale(obj, stack),
        "units": "um",
        "axis_labels": ("frame", "y", "x") if stack else ("y", "x"),
        "metadata": _metadata(obj),
    }
    return data, kwargs, "image"


def truth_layer_data(obj: SyntheticField | SyntheticStack, name: str) -> list[LayerData]:
    """Ground truth as layers: head labels, tail labels and whole-cell boxes.

    Label values are sperm ids (a head and its tail share one). Where two tails cross, the label
    image shows one of them; the full masks stay in the :class:`SpermTruth` records.

    Returns
    -------
    list of layer-data tuples
        ``[heads (labels), tails (labels), boxes (shapes)]``.
    """
    is_stack, st = _as_stack(obj)
    heads = np.stack([st.field(f).head_labels() for f in range(st.n_frames)])
    tails = np.stack([st.field(f).tail_labels() for f in range(st.n_frames)])
    rects, ids, frames = [], [], []
    for f, truths in enumerate(st.sperm):
        for t in truths:
            box = t.sperm_box()
            if box is None:
                continue
            x, y, w, h = box
            corners = np.array([[y, x], [y, x + w], [y + h, x + w], [y + h, x]], float) - 0.5
            if is_stack:
                corners = np.column_stack([np.full(4, f, float), corners])
            rects.append(corners)
            ids.append(t.sperm_id)
            frames.append(f)
    if not is_stack:
        heads, tails = heads[0], tails[0]
    scale = _scale(obj, is_stack)
    meta = _metadata(obj)
    common = {"scale": scale, "units": "um", "metadata": meta}
    boxes_kwargs = {
        "name": f"{name} boxes",
        "shape_type": "rectangle",
        "edge_color": "#ffd54a",
        "face_color": "transparent",
        "edge_width": 2,
        "features": {"sperm_id": np.asarray(ids, int), "frame": np.asarray(frames, int)},
        **common,
    }
    if not rects:
        boxes_kwargs["ndim"] = 3 if is_stack else 2
    return [
        (heads, {"name": f"{name} heads", **common}, "labels"),
        (tails, {"name": f"{name} tails", **common}, "labels"),
        (rects, boxes_kwargs, "shapes"),
    ]
