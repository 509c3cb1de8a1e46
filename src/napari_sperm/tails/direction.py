"""Conformity: direction of every piece end from a local line fit.

A y-on-x slope is undefined for vertical tails; here each end gets a unit vector from a total
least-squares fit (principal axis) of the skeleton pixels within a short arc of the end, pointing out
of the piece. Near a junction the skeleton bends towards the junction point, so the fit starts a
little way in from a junction end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .skeleton import SkeletonGraph

__all__ = ["EndFits", "end_fits", "angle_deg"]


@dataclass
class EndFits:
    """Line fits at piece ends; end ``2 * p + e`` is end ``e`` (0 or 1) of piece ``p``.

    Attributes
    ----------
    point : (2P, 2) float
        ``(row, col)`` of the end pixel.
    centre : (2P, 2) float
        Centre of the fitted pixels.
    direction : (2P, 2) float
        Unit vector ``(drow, dcol)`` pointing out of the piece at this end.
    """

    point: np.ndarray
    centre: np.ndarray
    direction: np.ndarray


def angle_deg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle in degrees between unit vectors (row-wise for arrays)."""
    dot = np.clip(np.sum(np.asarray(u) * np.asarray(v), axis=-1), -1.0, 1.0)
    return np.degrees(np.arccos(dot))


def end_fits(g: SkeletonGraph, width: float, skip: float, fit_len: float) -> EndFits:
    """Fit a line at both ends of every piece.

    Parameters
    ----------
    g : SkeletonGraph
    width : float
        Tail width in pixels.
    skip : float
        Arc length (pixels) left out next to a junction end.
    fit_len : float
        Arc length (pixels) of skeleton fitted.

    Returns
    -------
    EndFits
    """
    n_p = g.n_pieces
    if n_p == 0:
        z = np.zeros((0, 2))
        return EndFits(z, z, z)
    L = g.length
    at_junction = g.end_cluster >= 0  # (P, 2)
    lo = np.where(at_junction, np.minimum(skip, 0.25 * L[:, None]), 0.0)
    hi = np.minimum(lo + fit_len, L[:, None])
    # Arc positions measured from each end: end 0 uses arc, end 1 uses L - arc.
    big = float(L.max()) + 10.0
    pid = np.repeat(np.arange(n_p), np.diff(g.start))
    key = pid * big + g.arc
    a0 = np.searchsorted(key, np.arange(n_p) * big + lo[:, 0], "left")
    b0 = np.searchsorted(key, np.arange(n_p) * big + hi[:, 0], "right")
    a1 = np.searchsorted(key, np.arange(n_p) * big + (L - hi[:, 1]), "left")
    b1 = np.searchsorted(key, np.arange(n_p) * big + (L - lo[:, 1]), "right")
    lo_i = np.stack([a0, a1], axis=1).ravel()
    hi_i = np.maximum(np.stack([b0, b1], axis=1).ravel(), lo_i + 1)
    hi_i = np.minimum(hi_i, np.repeat(g.start[1:], 2))
    lo_i = np.minimum(lo_i, hi_i - 1)
    counts = hi_i - lo_i
    end_id = np.repeat(np.arange(2 * n_p), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    px = g.order[np.repeat(lo_i, counts) + within]
    pts = g.rc[px]
    cnt = counts.astype(float)
    mean = np.stack(
        [np.bincount(end_id, pts[:, k], minlength=2 * n_p) / cnt for k in (0, 1)], axis=1
    )
    d = pts - mean[end_id]
    srr = np.bincount(end_id, d[:, 0] * d[:, 0], minlength=2 * n_p)
    scc = np.bincount(end_id, d[:, 1] * d[:, 1], minlength=2 * n_p)
    src = np.bincount(end_id, d[:, 0] * d[:, 1], minlength=2 * n_p)
    phi = 0.5 * np.arctan2(2.0 * src, srr - scc)
    direction = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    first = g.order[g.start[:-1]]
    last = g.order[g.start[1:] - 1]
    point = g.rc[np.stack([first, last], axis=1).ravel()]
    # Orient out of the piece: from the far pixel of the piece towards this end.
    other = g.rc[np.stack([last, first], axis=1).ravel()]
    outward = point - mean
    weak = np.hypot(outward[:, 0], outward[:, 1]) < 0.5
    outward[weak] = (point - other)[weak]
    flip = np.sum(direction * outward, axis=1) < 0
    direction[flip] *= -1.0
    degenerate = (counts < 2) | ((srr + scc) < 1e-9)
    if degenerate.any():
        v = (point - other)[degenerate]
        norm = np.hypot(v[:, 0], v[:, 1])
        v = np.where(norm[:, None] > 0, v / np.maximum(norm, 1e-9)[:, None], 0.0)
        direction[degenerate] = v
    return EndFits(point=point, centre=mean, direction=direction)
