"""The single-tail test and the skeleton helpers of the SAM cascade.

A mask is one single tail when, after dropping specks, it is one connected piece whose skeleton
(short spurs pruned) has exactly two endpoints and no junction, whose centreline is long enough and
whose mean width is tail-like, and which bends nowhere more sharply than a set angle. Every length
is given in pixels by the caller from the head length, so the test scales with the resolution.
Endpoints and junctions use the crossing number (0 -> 1 transitions around a pixel), which is not
fooled by the diagonal steps of a skeleton; lengths are geodesic (diagonal steps count sqrt 2), so
there are no all-pairs pixel distances and no per-pixel distance transforms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from skimage.morphology import skeletonize

__all__ = [
    "TailTestSettings",
    "TailVerdict",
    "centreline",
    "crossing_number",
    "prune_spurs",
    "single_tail_test",
]

_RING = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
_EIGHT = np.ones((3, 3), bool)


@dataclass(frozen=True)
class TailTestSettings:
    """Pixel thresholds of :func:`single_tail_test` (derived from the head length by the caller).

    Attributes
    ----------
    min_length_px : float
        Shortest centreline.
    max_width_px : float
        Largest mean width (area / centreline length).
    spur_px : int
        Spurs shorter than this are pruned before counting endpoints.
    kink_arm_px : float
        Arm length of the bend measurement along the centreline.
    kink_end_px : float
        Points closer than this to an end are not tested.
    min_bend_deg : float
        Smallest allowed angle at a tested point (180 = straight).
    speck_fraction : float
        Pieces smaller than this fraction of the largest are ignored.
    max_gap_px : float
        Two pieces closer than this are bridged for the test (a head or another tail lying across
        the tail cuts it); 0: one piece only.
    """

    min_length_px: float
    max_width_px: float
    spur_px: int
    kink_arm_px: float
    kink_end_px: float
    min_bend_deg: float = 130.0
    speck_fraction: float = 0.1
    max_gap_px: float = 0.0


@dataclass
class TailVerdict:
    """Outcome of :func:`single_tail_test`.

    Attributes
    ----------
    ok : bool
    reason : str
        ``""`` when accepted, else one of ``"empty"``, ``"pieces"``, ``"short"``, ``"endpoints"``,
        ``"thick"``, ``"kink"``.
    mask : (h, w) bool array
        The cleaned mask (specks removed), same shape as the input.
    length : float
        Centreline length, pixels (0 when not measured).
    """

    ok: bool
    reason: str
    mask: np.ndarray
    length: float = 0.0


def crossing_number(skel: np.ndarray) -> np.ndarray:
    """Number of background-to-skeleton transitions around each skeleton pixel (0 elsewhere).

    1 marks an endpoint, 2 a line pixel (diagonal steps included), 3 or more a junction.

    Parameters
    ----------
    skel : (H, W) bool array

    Returns
    -------
    (H, W) int array
    """
    s = np.pad(skel.astype(np.int8), 1)
    h, w = skel.shape
    ring = [s[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] for dr, dc in _RING]
    count = np.zeros((h, w), np.int16)
    for a, b in zip(ring, ring[1:] + ring[:1]):
        count += (a == 0) & (b == 1)
    # A pixel whose whole ring is set (inside a blob) counts as a line pixel, not an endpoint.
    return np.where(skel, count, 0)


def prune_spurs(skel: np.ndarray, spur_px: int) -> np.ndarray:
    """Remove side branches shorter than ``spur_px`` and keep the ends of the main line.

    Endpoints are peeled ``spur_px`` times; the peeled pieces that touch a surviving endpoint (the
    ends of longer lines) are put back, those that do not (whole spurs) stay removed.

    Parameters
    ----------
    skel : (H, W) bool array
    spur_px : int

    Returns
    -------
    (H, W) bool array
    """
    if spur_px <= 0 or not skel.any():
        return skel.copy()
    cur = skel.copy()
    for _ in range(int(spur_px)):
        ends = crossing_number(cur) == 1
        if not ends.any():
            break
        cur &= ~ends
    if not cur.any():
        return cur
    removed, n = ndi.label(skel & ~cur, _EIGHT)
    if n == 0:
        return cur
    tips = cur & (crossing_number(cur) <= 1)
    touching = np.unique(removed[ndi.binary_dilation(tips, _EIGHT)])
    return cur | np.isin(removed, touching[touching > 0])


def centreline(skel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The longest geodesic path through a skeleton piece (two sweeps of Dijkstra).

    Parameters
    ----------
    skel : (H, W) bool array
        One 8-connected piece (others are ignored only if unreachable from the first pixel).

    Returns
    -------
    path : (n, 2) int array
        ``(row, col)`` from one end to the other.
    arc : (n,) float array
        Arc length at each path point (diagonal steps sqrt 2).
    """
    rows, cols = np.nonzero(skel)
    n = rows.size
    if n == 0:
        return np.zeros((0, 2), int), np.zeros(0)
    if n == 1:
        return np.stack([rows, cols], 1), np.zeros(1)
    index = np.full(skel.shape, -1, np.int64)
    index[rows, cols] = np.arange(n)
    pad = np.pad(index, 1, constant_values=-1)
    src, dst, wts = [], [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
        other = pad[1 + rows + dr, 1 + cols + dc]
        ok = other >= 0
        src.append(np.arange(n)[ok])
        dst.append(other[ok])
        wts.append(np.full(ok.sum(), np.hypot(dr, dc)))
    src, dst, wts = np.concatenate(src), np.concatenate(dst), np.concatenate(wts)
    graph = coo_matrix((wts, (src, dst)), shape=(n, n)).tocsr()
    ends = np.flatnonzero(crossing_number(skel)[rows, cols] == 1)
    start = int(ends[0]) if ends.size else 0
    d0 = dijkstra(graph, directed=False, indices=start)
    a = int(np.argmax(np.where(np.isfinite(d0), d0, -1)))
    da, pred = dijkstra(graph, directed=False, indices=a, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(da), da, -1)))
    order = [b]
    while order[-1] != a:
        order.append(int(pred[order[-1]]))
    order = np.asarray(order[::-1])
    return np.stack([rows[order], cols[order]], 1), da[order]


def _sharpest_bend(path: np.ndarray, arc: np.ndarray, arm: float, end: float) -> float:
    """Smallest angle (degrees) between the arms at any point farther than ``end`` from both ends."""
    total = arc[-1] if arc.size else 0.0
    margin = max(arm, end)
    inner = np.flatnonzero((arc >= margin) & (arc <= total - margin))
    if inner.size == 0:
        return 180.0
    s = arc[inner]
    before = np.clip(np.searchsorted(arc, s - arm), 0, arc.size - 1)
    after = np.clip(np.searchsorted(arc, s + arm), 0, arc.size - 1)
    p = path[inner].astype(float)
    v1 = path[before] - p
    v2 = path[after] - p
    norm = np.hypot(*v1.T) * np.hypot(*v2.T)
    cos = np.einsum("ij,ij->i", v1, v2) / np.maximum(norm, 1e-9)
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))).min())


def _bridge(a: np.ndarray, b: np.ndarray, max_gap: float) -> np.ndarray | None:
    """``a | b`` joined by a straight line at their closest pixels; None if farther than max_gap.

    One distance transform of the complement of ``a`` gives, for every pixel of ``b``, its distance
    to and nearest pixel of ``a`` (no all-pairs distances).
    """
    dist, (ir, ic) = ndi.distance_transform_edt(~a, return_indices=True)
    rows, cols = np.nonzero(b)
    k = int(np.argmin(dist[rows, cols]))
    if dist[rows[k], cols[k]] > max_gap:
        return None
    r0, c0, r1, c1 = rows[k], cols[k], ir[rows[k], cols[k]], ic[rows[k], cols[k]]
    n = int(max(abs(r1 - r0), abs(c1 - c0))) + 1
    out = a | b
    out[
        np.rint(np.linspace(r0, r1, n)).astype(int), np.rint(np.linspace(c0, c1, n)).astype(int)
    ] = True
    return out


def single_tail_test(mask: np.ndarray, s: TailTestSettings) -> TailVerdict:
    """Whether a mask is one single tail: one piece, two endpoints, tail-like width, no sharp kink.

    Parameters
    ----------
    mask : (h, w) bool array
        Usually a crop around the mask.
    s : TailTestSettings

    Returns
    -------
    TailVerdict
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return TailVerdict(False, "empty", mask)
    labels, n = ndi.label(mask, _EIGHT)
    if n > 1:
        sizes = np.bincount(labels.ravel())[1:]
        big = np.flatnonzero(sizes >= s.speck_fraction * sizes.max()) + 1
        mask = np.isin(labels, big)
        if big.size > 2 or (big.size == 2 and s.max_gap_px <= 0):
            return TailVerdict(False, "pieces", mask)
        if big.size == 2:
            bridged = _bridge(labels == big[0], labels == big[1], s.max_gap_px)
            if bridged is None:
                return TailVerdict(False, "pieces", mask)
            verdict = single_tail_test(bridged, s)
            return TailVerdict(verdict.ok, verdict.reason, mask, verdict.length)
    skel = skeletonize(mask)
    if mask.sum() > s.max_width_px * np.sqrt(2) * max(int(skel.sum()), 1):
        return TailVerdict(False, "thick", mask)  # blob: wider than allowed whatever the pruning
    skel = prune_spurs(skel, s.spur_px)
    if not skel.any():
        return TailVerdict(False, "short", mask)
    cn = crossing_number(skel)
    if int((cn == 1).sum()) != 2 or bool((cn >= 3).any()):
        return TailVerdict(False, "endpoints", mask)
    path, arc = centreline(skel)
    length = float(arc[-1]) + 1.0
    if length < s.min_length_px:
        return TailVerdict(False, "short", mask, length)
    if mask.sum() / length > s.max_width_px:
        return TailVerdict(False, "thick", mask, length)
    if _sharpest_bend(path, arc, s.kink_arm_px, s.kink_end_px) < s.min_bend_deg:
        return TailVerdict(False, "kink", mask, length)
    return TailVerdict(True, "", mask, length)
