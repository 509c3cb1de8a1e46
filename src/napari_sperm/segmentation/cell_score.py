"""Whole-cell confidence: how much to trust a segmented cell's head *and* traced tail together.

The head detection's score says a head is there; it says nothing about the tail traced from it. A
cell whose tail was cut short, or that got no tail, has a whole-cell outline (and box) much smaller
than the true cell's, so ranking whole cells by the head score alone puts these near the top. The
whole-cell score scales the head score by the tail's share of the frame's typical tail length, so
cells with complete tails rank first. It ranks; it removes nothing.
"""

from __future__ import annotations

import numpy as np

from ..synthetic.raster import CropMask

__all__ = ["whole_cell_scores", "touches_border"]


def touches_border(mask: CropMask | None, shape: tuple[int, int]) -> bool:
    """Whether any pixel of ``mask`` lies on the edge of a frame of ``shape`` (False when empty)."""
    box = None if mask is None else mask.bbox()
    if box is None:
        return False
    x, y, w, h = box
    return x <= 0 or y <= 0 or x + w >= shape[1] or y + h >= shape[0]


def whole_cell_scores(
    head_scores,
    tail_lengths,
    tail_at_border,
    *,
    floor: float = 0.2,
    min_tails: int = 3,
) -> np.ndarray:
    """Whole-cell confidence of the cells of one frame.

    ``head score x clip(tail length / typical tail length, floor, 1)``, where the typical length is
    the median length of the frame's tails (those longer than 0). A tail that reaches the frame
    border may run on outside the image, so its length says nothing and its factor is 1. A cell with
    no tail gets ``floor``.

    Parameters
    ----------
    head_scores : (N,) array_like of float
        The head detection's score of every cell.
    tail_lengths : (N,) array_like of float
        Centreline length in pixels of every cell's tail, 0 for a cell without one.
    tail_at_border : (N,) array_like of bool
        The cell's tail mask touches the frame border.
    floor : float
        Smallest factor, given to cells without a tail and to very short ones (0 < floor <= 1).
    min_tails : int
        With fewer tails than this in the frame there is no typical length to compare with: every
        cell with a tail keeps its head score and cells without one get ``floor``.

    Returns
    -------
    (N,) float array
        Never above the head score.
    """
    s = np.asarray(head_scores, float).ravel()
    length = np.asarray(tail_lengths, float).ravel()
    border = np.asarray(tail_at_border, bool).ravel()
    if not (s.shape == length.shape == border.shape):
        raise ValueError("head_scores, tail_lengths and tail_at_border must have the same length")
    if not 0.0 < floor <= 1.0:
        raise ValueError(f"floor must be in (0, 1], got {floor}")
    has_tail = length > 0
    factor = np.where(has_tail, 1.0, floor)
    if int(has_tail.sum()) >= max(min_tails, 1):
        typical = float(np.median(length[has_tail]))
        ratio = np.clip(length / typical, floor, 1.0)
        factor = np.where(has_tail & ~border, ratio, factor)
    return s * factor
