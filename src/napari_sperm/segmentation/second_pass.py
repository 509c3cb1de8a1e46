"""Con2Dis's second pass: the tails no head took, offered to the heads still without a tail.

:func:`~.segment.iter_segment` pairs tails with heads in two passes. The first pass clusters the
whole tail mask with the heads scoring at least ``score_threshold``. The second clusters only the
tails that pass left unpaired, with two kinds of head:

* **heads of the first pass that got no tail.** In the first pass their tail may have been joined
  to a longer path or its start taken by a neighbour; alone with the leftovers, a piece that fits
  them can pair.
* then, on what is still left, **weak heads**: boxes scoring from ``weak_score_threshold`` up to
  ``score_threshold``. The detector scores some real heads low (faint or blurred heads in noisy
  brightfield fields most of all). Letting every low-scoring box into the first pass would let
  debris take other cells' tails; here a weak head is kept only when a leftover tail meets it
  squarely (:func:`weak_pairing`), and dropped otherwise.

Heads that already have a tail keep it; weak heads lose the pixels they share with any head.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..io.errors import SpermInputError
from ..synthetic.raster import CropMask
from ..tails import Con2DisParams, TailClustering, TailInstance, cluster_tails

__all__ = ["LeftoverPairing", "pair_leftover_tails", "weak_pairing", "WEAK_PAIR_ANGLE_DEG"]

WEAK_PAIR_ANGLE_DEG = 30.0
"""Largest angle between a weak head's axis and its tail's first stretch (other heads: Con2Dis's
``pair_max_angle_deg``, 50)."""


@dataclass
class LeftoverPairing:
    """Result of :func:`pair_leftover_tails`.

    Attributes
    ----------
    cells : list of (int, CropMask, TailInstance, float)
        ``(sperm_id, head mask, tail, score)`` of every head that a leftover tail paired with.
    unpaired : list of TailInstance
        Leftover tails no head took.
    clustering : TailClustering or None
        Con2Dis's result on the leftover tails (None when there was nothing to cluster).
    """

    cells: list[tuple[int, CropMask, TailInstance, float]]
    unpaired: list[TailInstance]
    clustering: TailClustering | None


def pair_leftover_tails(
    heads: np.ndarray,
    crops: list[CropMask],
    ids: np.ndarray,
    scores: np.ndarray,
    taken: np.ndarray,
    leftover: list[TailInstance],
    con2dis: Con2DisParams | None = None,
) -> LeftoverPairing:
    """Cluster the leftover tails again with the heads that have no tail yet.

    Parameters
    ----------
    heads : (H, W) int array
        Labels (value = sperm id) of the heads still without a tail: the first pass's heads that got
        none and the weak heads.
    crops : list of CropMask
        Each of those heads' masks, in the order of ``ids``.
    ids, scores : (n,) arrays
        Their sperm ids and detection scores.
    taken : (H, W) int array
        Labels of the heads that already have a tail; weak heads lose the pixels they share with
        them.
    leftover : list of TailInstance
        The tails the first pass left unpaired.
    con2dis : Con2DisParams, optional
        Settings of the tail clustering.

    Returns
    -------
    LeftoverPairing
    """
    if not len(ids) or not leftover:
        return LeftoverPairing([], list(leftover), None)
    labels = np.where(taken > 0, 0, heads).astype(np.int32)
    tails = np.zeros(labels.shape, bool)
    for t in leftover:
        t.mask.paste(tails)
    tails &= labels == 0  # a tail may pass over a head that has its own tail: keep it whole
    if not tails.any() or not labels.any():
        return LeftoverPairing([], list(leftover), None)
    try:
        clustering = cluster_tails(tails, labels, params=con2dis)
    except SpermInputError:  # e.g. nothing tail-like is left once the head pixels are gone
        return LeftoverPairing([], list(leftover), None)
    by_head = {int(t.head): t for t in clustering.tails if t.head is not None}
    cells = []
    for sid, crop, score in zip(ids.tolist(), crops, scores.tolist(), strict=True):
        tail = by_head.get(int(sid))
        if tail is not None and crop is not None and crop.area > 0:
            cells.append((int(sid), crop, tail, float(score)))
    unpaired = [t for t in clustering.tails if t.head is None]
    return LeftoverPairing(cells, unpaired, clustering)


def weak_pairing(params: Con2DisParams | None) -> Con2DisParams:
    """Con2Dis settings for pairing weak heads: their tail must meet them squarely.

    The tail's end must lie within ``pair_max_gap`` of the head's mask with no allowance for a
    hidden rear (``pair_rear_fraction`` 0) and point along the head's axis within
    :data:`WEAK_PAIR_ANGLE_DEG`. Low-scoring boxes in phase-contrast fields are mostly not heads;
    with the ordinary allowances they took stretches of other cells' tails.
    """
    p = params or Con2DisParams()
    return replace(
        p,
        pair_max_angle_deg=min(p.pair_max_angle_deg, WEAK_PAIR_ANGLE_DEG),
        pair_rear_fraction=0.0,
    )
