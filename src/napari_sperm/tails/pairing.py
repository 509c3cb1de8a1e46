"""Pairing tails with heads by end distance and direction.

A tail starts at its head: its end lies on (or just off) the head mask and its direction points into
the head. Distances are measured to the head's mask (a k-d tree over head boundary pixels), not to a
rear point from pixel moments, so round heads, heads seen edge-on and heads cut by the image border
pair as well as elongated ones. Where a head is clearly elongated and lies inside the frame, its
major axis (second moments) adds a second gate: the tail end must run along it.

Every (piece end, head) candidate gets one cost; the same costs decide whether a tail stops at a head
inside a junction (see :func:`~napari_sperm.tails.merge.match_hubs`) and, at the end, which head each
tail gets, best-first and one to one. There is no fallback that attaches tails failing the gates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["Heads", "HeadCandidates", "head_geometry", "end_head_candidates", "pair_chains"]


@dataclass
class Heads:
    """Geometry of labelled heads.

    Attributes
    ----------
    ids : (H,) int
        Head labels.
    centre : (H, 2) float
        ``(row, col)`` centroids of the visible pixels.
    axis : (H, 2) float
        Unit major axis ``(drow, dcol)`` (sign arbitrary).
    length : (H,) float
        Major axis length (4 standard deviations along the axis).
    axis_ok : (H,) bool
        The axis is trusted: the head is elongated, does not touch the frame border and is not
        partly hidden under another head.
    boundary : (B, 2) float
        ``(row, col)`` of head boundary pixels.
    boundary_head : (B,) int
        Index of the head of each boundary pixel.
    """

    ids: np.ndarray
    centre: np.ndarray
    axis: np.ndarray
    length: np.ndarray
    axis_ok: np.ndarray
    boundary: np.ndarray
    boundary_head: np.ndarray


def head_geometry(
    heads: np.ndarray, min_elongation: float = 1.3, min_contact: float = 0.05
) -> Heads:
    """Centroid, axis, boundary pixels of every labelled head (vectorised over heads).

    A head whose outline borders another head over at least ``min_contact`` of its boundary pixels
    counts as partly hidden: one of the two lies over the other, so the visible pixels may be a
    cut-off part. Its axis is not trusted (the visible part's axis can point anywhere) and its length is
    taken as at least the median length of the heads that are neither occluded nor cut by the frame
    border (its rear, where the tail starts, may be the hidden part). A head touching the frame
    border gets the same length: what shows of it may be its front part.
    """
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
    disc = np.sqrt(np.maximum(0.25 * tr**2 - det, 0.0))
    lam1, lam2 = 0.5 * tr + disc, np.maximum(0.5 * tr - disc, 1e-9)
    h, w = heads.shape
    edge = (rows == 0) | (cols == 0) | (rows == h - 1) | (cols == w - 1)
    touches = np.bincount(inv, edge, minlength=ids.size) > 0
    axis_ok = (np.sqrt(lam1 / lam2) >= min_elongation) & ~touches
    # Boundary: a head pixel with a 4-neighbour of another value (or the frame edge); contact: a
    # 4-neighbour that is another head.
    bnd = edge.copy()
    contact = np.zeros(rows.size, bool)
    for ddr, ddc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        rr = np.clip(rows + ddr, 0, h - 1)
        cc = np.clip(cols + ddc, 0, w - 1)
        other = heads[rr, cc]
        bnd |= other != vals
        contact |= (other != vals) & (other != 0)
    n_bnd = np.bincount(inv[bnd], minlength=ids.size)
    n_contact = np.bincount(inv[contact], minlength=ids.size)
    occluded = n_contact >= np.maximum(min_contact * n_bnd, 1)
    length = 4.0 * np.sqrt(lam1)
    partial = occluded | touches
    if (~partial).any():
        length = np.where(partial, np.maximum(length, np.median(length[~partial])), length)
    return Heads(
        ids=ids,
        centre=np.stack([mr, mc], axis=1),
        axis=axis,
        length=length,
        axis_ok=axis_ok & ~occluded,
        boundary=np.stack([rows[bnd], cols[bnd]], axis=1).astype(float),
        boundary_head=inv[bnd],
    )


@dataclass
class HeadCandidates:
    """Every (end, head) pair that passes the pairing gates.

    Attributes
    ----------
    end, head : (K,) int
        Row of the end arrays given to :func:`end_head_candidates`, and index into ``Heads.ids``.
    distance : (K,) float
        Distance in pixels from the end to the head mask.
    angle : (K,) float
        Angle (deg) between the end direction and the way into the head.
    cost : (K,) float
        Degrees: the angles plus 10 degrees per tail width of distance.
    """

    end: np.ndarray
    head: np.ndarray
    distance: np.ndarray
    angle: np.ndarray
    cost: np.ndarray

    @classmethod
    def empty(cls) -> HeadCandidates:
        z = np.zeros(0, np.int64)
        f = np.zeros(0)
        return cls(z, z, f, f, f)


def end_head_candidates(
    points: np.ndarray,
    directions: np.ndarray,
    heads: Heads,
    width: float,
    max_gap: float,
    rear_fraction: float,
    max_angle: float,
) -> HeadCandidates:
    """Heads each end may start at.

    Parameters
    ----------
    points, directions : (E, 2) float
        End pixel and outward unit direction of every end.
    heads : Heads
    width : float
        Tail width in pixels.
    max_gap, rear_fraction : float
        Largest distance from the end to the head mask: ``max_gap`` x ``width`` (at least 3 px) plus
        ``rear_fraction`` x the head's length (the rear of a head may be hidden under another head).
    max_angle : float
        Largest angle (deg) between the end direction and the way into the head (towards its
        centre, and along its axis where the axis is trusted).

    Returns
    -------
    HeadCandidates
    """
    if points.shape[0] == 0 or heads.ids.size == 0 or heads.boundary.shape[0] == 0:
        return HeadCandidates.empty()
    gate = max(max_gap * width, 3.0) + rear_fraction * heads.length
    tree = cKDTree(heads.boundary)
    near = tree.query_ball_point(points, float(gate.max()) + 1e-6)
    counts = np.fromiter((len(x) for x in near), np.int64, points.shape[0])
    ei = np.repeat(np.arange(points.shape[0]), counts)
    if ei.size == 0:
        return HeadCandidates.empty()
    bi = np.fromiter((b for x in near for b in x), np.int64, int(counts.sum()))
    hd = heads.boundary_head[bi]
    dd = np.hypot(*(heads.boundary[bi] - points[ei]).T)
    if ei.size == 0:
        return HeadCandidates.empty()
    # Nearest boundary pixel per (end, head).
    key = ei * (heads.ids.size + 1) + hd
    order = np.lexsort((dd, key))
    first = np.ones(order.size, bool)
    first[1:] = key[order][1:] != key[order][:-1]
    sel = order[first]
    ei, hd, dd = ei[sel], hd[sel], dd[sel]
    u = directions[ei]
    to_c = heads.centre[hd] - points[ei]
    norm = np.hypot(to_c[:, 0], to_c[:, 1])
    to_c = np.where(norm[:, None] > 1e-6, to_c / np.maximum(norm, 1e-6)[:, None], u)
    a_c = np.degrees(np.arccos(np.clip(np.sum(u * to_c, axis=1), -1.0, 1.0)))
    a_x = np.degrees(np.arccos(np.clip(np.abs(np.sum(u * heads.axis[hd], axis=1)), 0.0, 1.0)))
    a_x = np.where(heads.axis_ok[hd], a_x, 0.0)
    ok = (a_c <= max_angle) & (a_x <= max_angle) & (dd <= gate[hd])
    ang = np.maximum(a_c, a_x)
    cost = a_c + a_x + 10.0 * dd / width
    return HeadCandidates(ei[ok], hd[ok], dd[ok], ang[ok], cost[ok])


def pair_chains(
    chain_ends: np.ndarray, cand: HeadCandidates, n_heads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pair tails (two candidate ends each) with heads, best-first and one to one.

    Parameters
    ----------
    chain_ends : (T, 2) int
        End ids (rows of the candidate table) at both ends of every tail.
    cand : HeadCandidates
        Candidates over all end ids.
    n_heads : int

    Returns
    -------
    head_index : (T,) int
        Index into the heads per tail, -1 when unpaired.
    end : (T,) int
        Which end (0 or 1) is the head end.
    distance, angle : (T,) float
        Distance to the head mask and angle of the chosen pairing (NaN when unpaired).
    """
    t = chain_ends.shape[0]
    head_index = np.full(t, -1, np.int64)
    end = np.zeros(t, np.int64)
    distance = np.full(t, np.nan)
    angle = np.full(t, np.nan)
    if t == 0 or cand.end.size == 0:
        return head_index, end, distance, angle
    flat = chain_ends.ravel()
    order = np.argsort(flat, kind="stable")
    srt = flat[order]
    lo = np.searchsorted(srt, cand.end, "left")
    hi = np.searchsorted(srt, cand.end, "right")
    rows, slots = [], []
    for k in np.flatnonzero(hi > lo).tolist():
        for s in order[lo[k] : hi[k]].tolist():
            rows.append(k)
            slots.append(s)
    if not rows:
        return head_index, end, distance, angle
    rows_a = np.asarray(rows)
    slots_a = np.asarray(slots)
    tail_used = np.zeros(t, bool)
    head_used = np.zeros(n_heads, bool)
    for j in np.argsort(cand.cost[rows_a], kind="stable").tolist():
        k, s = int(rows_a[j]), int(slots_a[j])
        tt, h = s // 2, int(cand.head[k])
        if tail_used[tt] or head_used[h]:
            continue
        tail_used[tt] = head_used[h] = True
        head_index[tt], end[tt] = h, s % 2
        distance[tt], angle[tt] = cand.distance[k], cand.angle[k]
    return head_index, end, distance, angle
