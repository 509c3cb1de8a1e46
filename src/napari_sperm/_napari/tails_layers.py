"""Con2Dis results <-> napari layers: the clustered tail Labels and the centreline paths.

Output layers are recognised by their metadata (``napari_sperm.kind`` and the name of the tail layer
they came from) and carry a fingerprint of their contents, so a rerun replaces them only while they
hold exactly what napari-sperm wrote; a layer the user has painted on or edited is never replaced.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from napari.layers import Labels, Shapes

from .detection_layer import corners_box
from .placement import placement

__all__ = [
    "LABELS_KIND",
    "PATHS_KIND",
    "find_output",
    "is_unedited",
    "stamp",
    "labels_kwargs",
    "paths_kwargs",
    "heads_from_shapes",
    "is_detections_layer",
]

LABELS_KIND = "con2dis-tails"
PATHS_KIND = "con2dis-centrelines"
PAIRED, UNPAIRED = (0.2, 0.95, 0.45, 1.0), (1.0, 0.55, 0.1, 1.0)


def _fingerprint(layer) -> str:
    h = hashlib.sha1()
    if isinstance(layer, Labels):
        data = np.asarray(layer.data)
        h.update(str(data.shape).encode())
        h.update(np.ascontiguousarray(data).tobytes())
    else:
        for s in layer.data:
            h.update(np.round(np.asarray(s, float), 3).tobytes())
        for key in sorted(layer.features.columns):
            h.update(key.encode())
            h.update("|".join(map(str, layer.features[key].tolist())).encode())
    return h.hexdigest()


def stamp(layer) -> None:
    """Record the layer's current contents as napari-sperm's own."""
    meta = dict(layer.metadata)
    inner = dict(meta.get("napari_sperm", {}))
    inner["fingerprint"] = _fingerprint(layer)
    meta["napari_sperm"] = inner
    layer.metadata = meta


def is_unedited(layer) -> bool:
    """True when the layer still holds exactly what napari-sperm put in it."""
    stored = layer.metadata.get("napari_sperm", {}).get("fingerprint")
    return stored is not None and stored == _fingerprint(layer)


def find_output(viewer, kind: str, source: str):
    """The layer of ``kind`` made from the tail layer named ``source``, or None."""
    for layer in viewer.layers:
        meta = getattr(layer, "metadata", {}).get("napari_sperm", {})
        if meta.get("kind") == kind and meta.get("source") == source:
            return layer
    return None


def labels_kwargs(source_layer, summary: dict) -> dict[str, Any]:
    """``add_labels`` keyword arguments for the clustered tails of ``source_layer``."""
    return {
        "name": f"{source_layer.name} (Con2Dis)",
        **placement(source_layer),
        "metadata": {"napari_sperm": {"kind": LABELS_KIND, "source": source_layer.name, **summary}},
    }


def paths_kwargs(source_layer, features: dict, is_stack: bool) -> dict[str, Any]:
    """``add_shapes`` keyword arguments for the centreline paths of ``source_layer``."""
    colours = np.array([PAIRED if p else UNPAIRED for p in features["paired"]], float).reshape(
        -1, 4
    )
    return {
        "name": f"{source_layer.name} centrelines",
        "shape_type": "path",
        "edge_color": colours if len(colours) else "lime",
        "face_color": "transparent",
        "edge_width": 1.5,
        "features": features,
        "ndim": 3 if is_stack else 2,
        **placement(source_layer),
        "metadata": {"napari_sperm": {"kind": PATHS_KIND, "source": source_layer.name}},
    }


def is_detections_layer(layer) -> bool:
    """A Shapes layer with head boxes napari-sperm can read (``class`` and ``sperm_id`` features)."""
    return isinstance(layer, Shapes) and "class" in layer.features and "sperm_id" in layer.features


def heads_from_shapes(layer, n_frames: int, is_stack: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Head boxes per frame from a detections layer: ``[(boxes_xywh, sperm_ids), ...]``.

    Boxes are read from the rectangles' corners in data coordinates, so hand-drawn or edited boxes
    count too; rows whose class is not ``head`` are ignored.
    """
    out = [([], []) for _ in range(n_frames)]
    classes = np.asarray(layer.features["class"]).astype(str)
    ids = np.asarray(layer.features["sperm_id"])
    for corners, cls, sid in zip(layer.data, classes, ids, strict=True):
        if cls != "head":
            continue
        frame, box = corners_box(corners, is_stack)
        if not 0 <= frame < n_frames:
            continue
        out[frame][0].append(list(box))
        out[frame][1].append(int(sid))
    return [(np.asarray(b, float).reshape(-1, 4), np.asarray(i, int)) for b, i in out]
