"""Tight head boxes: replace each detected head box by the bounding box of the head's outline.

The network regresses a head box from the centre cell of each head; its edges are often a pixel or
two off (head AP over IoU 0.5-0.95 of 0.62-0.72 on the synthetic modalities with 2 copies). The head
is a compact blob that stands out from its surroundings, so the same local-contrast outline that
``segment`` uses for head masks gives its extent to about a pixel; then each edge of the outline's
box is moved to where a small classifier, from the contrast across the edge, puts the head's true
edge (:mod:`.head_edges`). All the heads of a frame are
outlined together (:func:`~napari_sperm.segmentation.head_boxes.head_outline_boxes`: the same boxes
as :func:`~napari_sperm.segmentation.head_mask.head_outline_box` head by head, 2-5 times faster).
An outline is used only where it agrees with the detector's box (IoU at least ``min_iou``), so a
neighbouring head or debris caught by the threshold cannot move a box elsewhere. The whole-cell box
of the same cell is widened to contain the new head box.
"""

from __future__ import annotations

import numpy as np

from ..io.errors import SpermInputError
from .head_edges import load_edge_model, place_edges
from .results import FrameDetections

__all__ = ["DEFAULT_MIN_IOU", "agreeing_outlines", "box_iou", "refine_head_boxes"]

DEFAULT_MIN_IOU = 0.5
"""Least IoU between the detector's head box and the outline's box for the outline to be used."""


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two ``(n, 4)`` arrays of ``[x, y, w, h]`` boxes."""
    iw = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def agreeing_outlines(
    grey: np.ndarray,
    boxes: np.ndarray,
    params=None,
    *,
    min_iou: float = DEFAULT_MIN_IOU,
    profiles: bool = False,
):
    """The head outlines that :func:`refine_head_boxes` uses: found, and agreeing with their box.

    Parameters
    ----------
    grey : (H, W) float32 array
        The frame (:func:`~napari_sperm.segmentation.tail_mask.as_grey`).
    boxes : (n, 4) float array
        ``[x, y, w, h]`` head boxes.
    params : HeadMaskParams, optional
    min_iou : float
        Least IoU between a box and its outline's box.
    profiles : bool
        Also return the edge profiles
        (:func:`~napari_sperm.segmentation.head_boxes.head_outline_boxes`).

    Returns
    -------
    use : (n,) bool array
        The boxes whose outline was found and overlaps them by at least ``min_iou``.
    outlines : (n, 4) float64 array
        Every box's outline box (NaN rows where none was found).
    profiles : (n, 4, 2 * k) float32 array or None
        Their edge profiles, with ``profiles``.
    """
    from ..segmentation.head_boxes import head_outline_boxes  # segmentation imports detection

    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if profiles:
        found, prof = head_outline_boxes(grey, b, params, profiles=True)
    else:
        found, prof = head_outline_boxes(grey, b, params), None
    use = ~np.isnan(found).any(axis=1)
    use[use] = box_iou(b[use], found[use]) >= min_iou
    return use, found, prof


def refine_head_boxes(
    image: np.ndarray,
    detections: FrameDetections,
    *,
    min_iou: float = DEFAULT_MIN_IOU,
    params=None,
    edges: bool = True,
    edge_model=None,
    grey: np.ndarray | None = None,
) -> FrameDetections:
    """Head boxes fitted to the heads' outlines in one frame.

    Parameters
    ----------
    image : array
        The frame the detections come from: ``(H, W)`` grey or ``(H, W, 3)`` RGB, any real dtype.
    detections : FrameDetections
        Detections of that frame (head boxes are class 2, whole-cell boxes class 1).
    min_iou : float
        An outline replaces a head box only when their boxes overlap by at least this IoU
        (0 < ``min_iou`` <= 1); otherwise the detector's box stays.
    params : HeadMaskParams, optional
        Outline settings (:class:`~napari_sperm.segmentation.params.HeadMaskParams`).
    edges : bool
        Move each edge of an outline's box to the head's edge by the edge classifier
        (:func:`~.head_edges.place_edges`; the classifier was trained on outlines with the default
        ``params``). False: the outline's box as it is.
    edge_model : EdgeModel, optional
        The classifier (:func:`~.head_edges.load_edge_model`); default: the shipped one.
    grey : (H, W) float32 array, optional
        ``image`` as :func:`~napari_sperm.segmentation.tail_mask.as_grey` gives it, when the caller
        has it already (the detector does); not checked. Default: computed from ``image``.

    Returns
    -------
    FrameDetections
        A copy with the head boxes replaced and each whole-cell box widened to contain its head
        box; scores, classes, ids and frame unchanged. ``extra["refined_heads"]`` counts the head
        boxes that were replaced.

    Raises
    ------
    SpermInputError
        For a frame :func:`~napari_sperm.segmentation.tail_mask.as_grey` cannot read, or an edge
        model file that cannot be read or does not fit the profiles.
    ValueError
        For ``min_iou`` outside (0, 1].
    """
    # segmentation imports detection
    from ..segmentation.head_boxes import PROFILE_OFFSETS
    from ..segmentation.tail_mask import as_grey

    if not 0 < min_iou <= 1:
        raise ValueError(f"min_iou must be in (0, 1], not {min_iou!r}")
    model = None
    if edges:
        model = edge_model or load_edge_model()
        if model.n_offsets != PROFILE_OFFSETS.size:
            raise SpermInputError(
                f"The head edge model reads {model.n_offsets} pixel lines per edge, this version "
                f"of napari-sperm gives {PROFILE_OFFSETS.size}. Retrain it with "
                "scripts/train_head_edges.py."
            )
    boxes = detections.boxes.astype(np.float64).copy()
    refined = np.zeros(len(boxes), bool)
    heads = np.flatnonzero(detections.classes == 2)
    if heads.size:
        grey = as_grey(image) if grey is None else grey
        use, found, prof = agreeing_outlines(
            grey, boxes[heads], params, min_iou=min_iou, profiles=model is not None
        )
        if use.any():
            rows, new = heads[use], found[use]
            if model is not None:
                new = place_edges(new, prof[use], grey.shape, model)
            boxes[rows] = new
            refined[rows] = True
            _widen_cells(boxes, detections, rows)
    extra = dict(detections.extra)
    extra["refined_heads"] = int(refined.sum())
    return FrameDetections(
        boxes.astype(np.float32),
        detections.scores.copy(),
        detections.classes.copy(),
        detections.sperm_ids.copy(),
        detections.frame,
        extra,
    )


def _widen_cells(boxes: np.ndarray, det: FrameDetections, head_rows: np.ndarray) -> None:
    """Grow (in place) each whole-cell box to contain the head box of the same sperm id."""
    cells = np.flatnonzero(det.classes == 1)
    if cells.size == 0 or head_rows.size == 0:
        return
    row_of = {int(det.sperm_ids[k]): int(k) for k in cells}
    for h in head_rows.tolist():
        c = row_of.get(int(det.sperm_ids[h]))
        if c is None:
            continue
        x0 = min(boxes[c, 0], boxes[h, 0])
        y0 = min(boxes[c, 1], boxes[h, 1])
        x1 = max(boxes[c, 0] + boxes[c, 2], boxes[h, 0] + boxes[h, 2])
        y1 = max(boxes[c, 1] + boxes[c, 3], boxes[h, 1] + boxes[h, 3])
        boxes[c] = (x0, y0, x1 - x0, y1 - y0)
