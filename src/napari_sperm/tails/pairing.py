"""Pairing tails with heads by end distance and direction.

A head's axis comes from the second moments of its pixels; its rear is the axis end nearer the tail
end. A tail end pairs with a head when it lies near that rear end and its fitted direction points
along the head axis (into the head). All (tail, head) candidates are accepted best-first, one tail
per head and one head per tail; there is no fallback that attaches tails failing the gates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["Heads", "head_geometry", "pair_ends"]


@dataclass
class Heads:
    """Geometry of labelled heads.

    Attributes
    ----------
    ids : (H,) int
        Head labels.
    centre : (H, 2) float
        ``(row, col)`` centroids.
    axis : (H, 2) float
        Unit major axis ``(drow, dcol)`` (sign arbitrary).
    length : (H,) float
        Major axis length (4 standard deviations along the axis).
    """

    ids: np.ndarray
    centre: np.ndarray
    axis: np.ndarray
    length: np.ndarray


def head_geometry(heads: np.ndarray) -> Heads:
    """Centroid, major axis and length of every labelled head (vectorised over heads)."""
    rows, cols = np.nonzero(heads)
    vals = heads[rows, cols].astype(np.int64)
    ids, inv = np.unique(vals, return_inverse=True)
    n = np.bincount(inv).astype(float)
    mr = np.bincount(inv, rows) / n
    mc = np.bincount(inv, cols) / n
    dr, dc = rows - mr[inv], cols - mc[inv]
    srr = np.bincount(inv, dr * dr) / n + 1.0 / 12.0
    scc = np.bincount(inv, dc * dc) / n + 1.0 / 12.0
    src = np.bincount(inv, dr * dc) / n
    phi = 0.5 * np.arctan2(2 * src, srr - scc)
    axis = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    tr, det = srr + scc, srr * scc - src**2
    lam1 = 0.5 * tr + np.sqrt(np.maximum(0.25 * tr**2 - det, 0.0))
    return Heads(ids, np.stack([mr, mc], axis=1), axis, 4.0 * np.sqrt(lam1))


def pair_ends(
    points: np.ndarray,
    directions: np.ndarray,
    heads: Heads,
    width: float,
    max_gap: float,
    rear_fraction: float,
    max_angle: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pair tails (two candidate ends each) with heads, best-first and one to one.

    Parameters
    ----------
    points, directions : (T, 2, 2) float
        End pixel and outward unit direction of both ends of every tail.
    heads : Heads
    width : float
        Tail width in pixels.
    max_gap, rear_fraction, max_angle
        Gates: the end lies within ``rear_fraction * head length + max_gap * width`` of the rear
        end, and its direction is within ``max_angle`` degrees of the head axis.

    Returns
    -------
    head_index : (T,) int
        Index into ``heads.ids`` per tail, -1 when unpaired.
    end : (T,) int
        Which end (0 or 1) is the head end.
    distance, angle : (T,) float
        Rear-end distance and angle of the chosen pairing (NaN when unpaired).
    """
    t = points.shape[0]
    head_index = np.full(t, -1, np.int64)
    end = np.zeros(t, np.int64)
    distance = np.full(t, np.nan)
    angle = np.full(t, np.nan)
    if t == 0 or heads.ids.size == 0:
        return head_index, end, distance, angle
    flat_pts = points.reshape(-1, 2)
    flat_dir = directions.reshape(-1, 2)
    reach = float(0.5 * heads.length.max() + rear_fraction * heads.length.max() + max_gap * width)
    tree = cKDTree(heads.centre)
    cand = tree.query_ball_point(flat_pts, reach)
    ei = np.repeat(np.arange(flat_pts.shape[0]), [len(c) for c in cand])
    if ei.size == 0:
        return head_index, end, distance, angle
    hj = np.concatenate([np.asarray(c, np.int64) for c in cand if len(c)])
    p = flat_pts[ei]
    half = 0.5 * heads.length[hj][:, None] * heads.axis[hj]
    r1, r2 = heads.centre[hj] + half, heads.centre[hj] - half
    d1, d2 = np.hypot(*(p - r1).T), np.hypot(*(p - r2).T)
    rear = np.where((d1 <= d2)[:, None], r1, r2)
    dist = np.minimum(d1, d2)
    inward = heads.centre[hj] - rear
    inward /= np.maximum(np.hypot(*inward.T), 1e-9)[:, None]
    ang = np.degrees(np.arccos(np.clip(np.sum(flat_dir[ei] * inward, axis=1), -1, 1)))
    gate = rear_fraction * heads.length[hj] + max_gap * width
    ok = (dist <= gate) & (ang <= max_angle)
    ei, hj, dist, ang = ei[ok], hj[ok], dist[ok], ang[ok]
    cost = dist / np.maximum(heads.length[hj], 1.0) + ang / 90.0
    tail_used = np.zeros(t, bool)
    head_used = np.zeros(heads.ids.size, bool)
    for k in np.argsort(cost, kind="stable").tolist():
        tt, h = int(ei[k] // 2), int(hj[k])
        if tail_used[tt] or head_used[h]:
            continue
        tail_used[tt] = head_used[h] = True
        head_index[tt], end[tt] = h, int(ei[k] % 2)
        distance[tt], angle[tt] = dist[k], ang[k]
    return head_index, end, distance, angle
