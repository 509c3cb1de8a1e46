"""Detections <-> napari Shapes layer: rectangles, features, colours, identity and edit detection.

A detections layer is recognised by its metadata (``napari_sperm.kind == "detections"`` and the name
of the image it was made from), never by its own name. It also stores a fingerprint of its boxes and
features; if the layer no longer matches it, the user has edited it and it is never replaced.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..detection.results import DETECTED_CLASSES, FrameDetections
from .placement import placement

__all__ = [
    "CLASS_COLOURS",
    "shapes_from_detections",
    "detection_layer_kwargs",
    "find_detection_layer",
    "fingerprint",
    "is_unedited",
    "merge_frames",
    "box_corners",
    "corners_box",
    "merge_weak_heads",
    "split_weak_heads",
    "weak_head_detections",
]

CLASS_COLOURS = {"head": (1.0, 0.25, 0.85, 1.0), "sperm": (1.0, 0.85, 0.2, 1.0)}
KIND = "detections"


def box_corners(box, frame: int | None = None) -> np.ndarray:
    """Rectangle corners ``(row, col)`` (or ``(frame, row, col)``) of a COCO box ``(x, y, w, h)``.

    Pixel (r, c) covers [r - 0.5, r + 0.5]: a box from pixel x covers x - 0.5 .. x + w - 0.5.
    """
    x, y, w, h = box
    corners = np.array([[y, x], [y, x + w], [y + h, x + w], [y + h, x]], float) - 0.5
    if frame is not None:
        corners = np.column_stack([np.full(4, frame, float), corners])
    return corners


def corners_box(corners, is_stack: bool) -> tuple[int, tuple[float, float, float, float]]:
    """``(frame, (x, y, w, h))`` of a rectangle drawn on a 2-D or a stack layer (inverse of
    :func:`box_corners`; frame 0 on a 2-D layer)."""
    corners = np.asarray(corners, float)
    frame = int(round(corners[0, 0])) if is_stack and corners.shape[1] >= 3 else 0
    (r0, c0), (r1, c1) = corners[:, -2:].min(axis=0), corners[:, -2:].max(axis=0)
    return frame, (float(c0 + 0.5), float(r0 + 0.5), float(c1 - c0), float(r1 - r0))


def shapes_from_detections(
    results: list[FrameDetections], is_stack: bool
) -> tuple[list[np.ndarray], dict]:
    """Rectangles (napari ``(row, col)`` or ``(frame, row, col)`` corners) and a features table."""
    shapes: list[np.ndarray] = []
    feats: dict[str, list] = {"score": [], "class": [], "frame": [], "sperm_id": []}
    for det in results:
        for (x, y, w, h), score, cls, sid in zip(
            det.boxes, det.scores, det.classes, det.sperm_ids, strict=True
        ):
            shapes.append(box_corners((x, y, w, h), det.frame if is_stack else None))
            feats["score"].append(float(score))
            feats["class"].append(DETECTED_CLASSES.get(int(cls), str(cls)))
            feats["frame"].append(int(det.frame))
            feats["sperm_id"].append(int(sid))
    return shapes, _features(feats)


def _features(feats: dict[str, list]) -> dict[str, np.ndarray]:
    return {
        "score": np.asarray(feats["score"], float),
        "class": np.asarray(feats["class"], dtype=object),
        "frame": np.asarray(feats["frame"], int),
        "sperm_id": np.asarray(feats["sperm_id"], int),
    }


def fingerprint(shapes, features) -> str:
    """Hash of box corners and features, to tell whether a layer was edited.

    A ``reviewed`` flag set in the review table counts as an edit, so a rerun never drops it.
    """
    h = hashlib.sha1()
    for s in shapes:
        h.update(np.round(np.asarray(s, float), 3).tobytes())
    for key in ("score", "class", "frame", "sperm_id"):
        col = np.asarray(features[key]) if key in features else np.array([])
        h.update(key.encode())
        h.update(
            "|".join(
                str(round(v, 4)) if isinstance(v, float) else str(v) for v in col.tolist()
            ).encode()
        )
    if "reviewed" in features:
        flags = np.asarray(features["reviewed"], bool)
        if flags.any():
            h.update(b"reviewed" + np.flatnonzero(flags).tobytes())
    return h.hexdigest()


def detection_layer_kwargs(
    image_layer,
    features: dict,
    threshold: float,
    weights: str | None,
    *,
    flips: int | None = None,
    refine_boxes: bool | None = None,
    weak_heads: list[dict] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``viewer.add_shapes`` that place boxes over ``image_layer``.

    The layer's ``metadata["napari_sperm"]`` records how the boxes were made: the source layer,
    score threshold and weights, and, when given, the number of flipped copies averaged and whether
    head boxes were fitted to the heads' outlines (the same settings the CLI writes to COCO
    ``info``). ``weak_heads`` (see :func:`split_weak_heads`) are kept there too, not drawn: head
    boxes scoring under the threshold that *Segment heads & tails* keeps only when a tail that no
    other head took leads to them.
    """
    settings: dict[str, Any] = {}
    if flips is not None:
        settings["flips"] = int(flips)
    if refine_boxes is not None:
        settings["refine_boxes"] = bool(refine_boxes)
    if weak_heads is not None:
        settings["weak_heads"] = list(weak_heads)
    n_spatial = image_layer.ndim  # for RGB, ndim excludes the colour axis
    colours = np.array(
        [CLASS_COLOURS.get(c, (0.6, 0.9, 1.0, 1.0)) for c in features["class"]], float
    ).reshape(-1, 4)
    return {
        "name": f"{image_layer.name} detections",
        "shape_type": "rectangle",
        "edge_color": colours if len(colours) else "yellow",
        "face_color": "transparent",
        "edge_width": 2,
        "features": features,
        **placement(image_layer),
        "ndim": n_spatial,
        "metadata": {
            "napari_sperm": {
                "kind": KIND,
                "source": image_layer.name,
                "score_threshold": threshold,
                "weights": weights or "default",
                **settings,
            }
        },
    }


def find_detection_layer(viewer, image_layer):
    """The detections layer made from ``image_layer``, or None."""
    for layer in viewer.layers:
        meta = getattr(layer, "metadata", {}).get("napari_sperm", {})
        if meta.get("kind") == KIND and meta.get("source") == image_layer.name:
            return layer
    return None


def is_unedited(layer) -> bool:
    """True when the layer still holds exactly what napari-sperm put in it."""
    stored = layer.metadata.get("napari_sperm", {}).get("fingerprint")
    return stored is not None and stored == fingerprint(layer.data, layer.features)


def stamp(layer) -> None:
    """Record the layer's current contents as napari-sperm's own (see :func:`is_unedited`)."""
    meta = dict(layer.metadata)
    inner = dict(meta.get("napari_sperm", {}))
    inner["fingerprint"] = fingerprint(layer.data, layer.features)
    meta["napari_sperm"] = inner
    layer.metadata = meta


def merge_frames(previous, shapes, features, frames: set[int]) -> tuple[list[np.ndarray], dict]:
    """Shapes of ``previous`` outside ``frames`` followed by the new ``shapes`` (for one-frame reruns)."""
    old = previous.features
    keep = [i for i, f in enumerate(np.asarray(old["frame"], int)) if f not in frames]
    merged_shapes = [np.asarray(previous.data[i]) for i in keep] + list(shapes)
    merged = {
        key: np.concatenate([np.asarray(old[key])[keep], np.asarray(features[key])]).astype(
            features[key].dtype
        )
        for key in ("score", "class", "frame", "sperm_id")
    }
    return merged_shapes, merged


def split_weak_heads(
    results: list[FrameDetections], threshold: float
) -> tuple[list[FrameDetections], list[dict]]:
    """Detections scoring at least ``threshold``, and the head rows below it as plain records.

    Returns
    -------
    kept : list of FrameDetections
        Every row scoring at least ``threshold``, per frame.
    weak : list of dict
        ``{"frame", "box": [x, y, w, h], "score", "sperm_id"}`` of each head box under it (their
        whole-cell rows are dropped), for a detections layer's metadata.
    """
    kept, weak = [], []
    for det in results:
        kept.append(det.above(threshold))
        for k in np.flatnonzero((det.scores < threshold) & (det.classes == 2)).tolist():
            weak.append(
                {
                    "frame": int(det.frame),
                    "box": [float(v) for v in det.boxes[k]],
                    "score": float(det.scores[k]),
                    "sperm_id": int(det.sperm_ids[k]),
                }
            )
    return kept, weak


def _weak_records(layer) -> list[dict]:
    """The weak-head records in a layer's ``metadata["napari_sperm"]`` (empty if none)."""
    meta = getattr(layer, "metadata", None) or {}
    return list(meta.get("napari_sperm", {}).get("weak_heads", []) or [])


def merge_weak_heads(previous, weak: list[dict], frames: set[int]) -> list[dict]:
    """``previous``'s weak-head records outside ``frames``, then ``weak`` (the frames just run):
    the metadata twin of :func:`merge_frames`."""
    kept = [r for r in _weak_records(previous) if int(r.get("frame", -1)) not in frames]
    return kept + list(weak)


def weak_head_detections(
    layer, n_frames: int, low: float, high: float, taken
) -> list[FrameDetections]:
    """The weak head boxes a detections layer keeps in its metadata, per frame.

    Only boxes scoring from ``low`` up to (not including) ``high`` are returned. Their sperm ids are
    renumbered above ``taken[frame]`` (the largest id of the frame's drawn boxes), so that a box the
    user drew since cannot share one.
    """
    out = [[] for _ in range(n_frames)]
    for rec in _weak_records(layer):
        frame, score = int(rec.get("frame", 0)), float(rec.get("score", 0.0))
        if 0 <= frame < n_frames and low <= score < high:
            out[frame].append((list(map(float, rec["box"])), score))
    dets = []
    for f, rows in enumerate(out):
        n = len(rows)
        boxes = np.array([b for b, _ in rows], float).reshape(n, 4)
        scores = np.array([s for _, s in rows], float)
        ids = np.arange(1, n + 1) + int(taken[f])
        dets.append(FrameDetections(boxes, scores, np.full(n, 2), ids, frame=f))
    return dets
