"""What the review table shows: one row per cell of a frame, and counts per frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.morphology import skeletonize

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


@dataclass
class FrameCounts:
    """How many cells a frame has, how many are paired and how many reviewed."""

    frame: int
    cells: int
    paired: int
    reviewed: int


def cell_rows(frame: AnnotatedFrame) -> list[CellRow]:
    """Rows for the non-empty cells of ``frame`` in ``sperm_id`` order."""
    return [
        CellRow(
            sperm_id=c.sperm_id,
            score=c.score,
            head_area=0 if c.head is None else c.head.area,
            tail_length=round(skeleton_length(c.tail), 1),
            paired=c.paired,
            reviewed=c.reviewed,
        )
        for c in frame.sorted_cells()
    ]


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
