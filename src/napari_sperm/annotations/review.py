"""What the review table shows: one row per cell of a frame, and counts per frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.morphology import skeletonize

from ..segmentation.cell_score import touches_border, whole_cell_scores
from ..synthetic.raster import CropMask
from .model import AnnotatedFrame, AnnotatedStack

__all__ = ["CellRow", "FrameCounts", "cell_rows", "frame_counts", "skeleton_length"]

_SQRT2 = float(np.sqrt(2.0))


def skeleton_length(mask: CropMask | None) -> float:
    """Length in pixels of a mask's skeleton: 1 per side step, sqrt(2) per diagonal step.

    Diagonal steps between two pixels that already touch through a side neighbour on the skeleton
    are not counted twice.
    """
    if mask is None or mask.area == 0:
        return 0.0
    sk = np.pad(skeletonize(mask.mask), 1)
    side = float((sk[:, 1:] & sk[:, :-1]).sum() + (sk[1:, :] & sk[:-1, :]).sum())
    diag = 0.0
    for a, b, c, d in (
        (sk[1:, 1:], sk[:-1, :-1], sk[:-1, 1:], sk[1:, :-1]),
        (sk[1:, :-1], sk[:-1, 1:], sk[:-1, :-1], sk[1:, 1:]),
    ):
        diag += float((a & b & ~c & ~d).sum())
    return side + _SQRT2 * diag


@dataclass
class CellRow:
    """One row of the review table."""

    sperm_id: int
    score: float | None
    head_area: int
    tail_length: float
    paired: bool
    reviewed: bool
    cell_score: float | None = None
    """Whole-cell score from the current masks (see
    :func:`~napari_sperm.segmentation.cell_score.whole_cell_scores`); None for cells without a
    detection score (drawn by hand)."""


@dataclass
class FrameCounts:
    """How many cells a frame has, how many are paired and how many reviewed."""

    frame: int
    cells: int
    paired: int
    reviewed: int


def cell_rows(frame: AnnotatedFrame, order: str = "id") -> list[CellRow]:
    """Rows for the non-empty cells of ``frame``.

    Parameters
    ----------
    frame : AnnotatedFrame
    order : {"id", "confidence"}
        ``"id"``: by ``sperm_id``. ``"confidence"``: least confident first, by whole-cell score
        (cells without one, drawn by hand, last), so a reviewer starts with the cells most likely
        to need a correction.

    Returns
    -------
    list of CellRow
    """
    if order not in ("id", "confidence"):
        raise ValueError(f"order must be 'id' or 'confidence', got {order!r}")
    cells = frame.sorted_cells()
    lengths = [round(skeleton_length(c.tail), 1) for c in cells]
    scored = [i for i, c in enumerate(cells) if c.score is not None and np.isfinite(c.score)]
    whole = whole_cell_scores(
        [cells[i].score for i in scored],
        [lengths[i] for i in scored],
        [touches_border(cells[i].tail, frame.shape) for i in scored],
    )
    cell_score: list[float | None] = [None] * len(cells)
    for i, v in zip(scored, whole.tolist(), strict=True):
        cell_score[i] = float(v)
    rows = [
        CellRow(
            sperm_id=c.sperm_id,
            score=c.score,
            head_area=0 if c.head is None else c.head.area,
            tail_length=lengths[i],
            paired=c.paired,
            reviewed=c.reviewed,
            cell_score=cell_score[i],
        )
        for i, c in enumerate(cells)
    ]
    if order == "confidence":
        rows.sort(key=lambda r: (r.cell_score is None, r.cell_score or 0.0, r.sperm_id))
    return rows


def frame_counts(stack: AnnotatedStack) -> list[FrameCounts]:
    """Counts for every frame of ``stack``."""
    out = []
    for fr in stack.frames:
        cells = fr.sorted_cells()
        out.append(
            FrameCounts(
                fr.frame,
                len(cells),
                sum(c.paired for c in cells),
                sum(c.reviewed for c in cells),
            )
        )
    return out
