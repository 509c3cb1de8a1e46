"""Scoring tail instances against synthetic ground truth.

Instances are matched to true tails one to one by IoU (Hungarian assignment on the IoU matrix,
computed as a sparse product of pixel-incidence matrices, so no pairwise mask loops). A true tail is
*recovered* when its match has IoU >= 0.5, and *paired right* when that match carries the true
cell's head label. Pairing is scored over tails whose head shows in the head labels the clustering
was given (``SyntheticField.head_labels()``, where a later head covers an earlier one). Crossing
tails are grouped by their smallest crossing angle (measured between the true centrelines where
they meet).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ..synthetic.field import SyntheticField
from ..synthetic.raster import CropMask

__all__ = [
    "ANGLE_BANDS",
    "TailTruthScore",
    "FieldScore",
    "tail_mask_of",
    "crossing_angles",
    "match_iou",
    "score_field",
    "summarize",
]

ANGLE_BANDS: tuple[tuple[float, float], ...] = ((0.0, 15.0), (15.0, 45.0), (45.0, 90.01))
"""Crossing angle bands in degrees: near-parallel/shallow, medium, steep."""


@dataclass
class TailTruthScore:
    """How one true tail came out."""

    sperm_id: int
    scored: bool
    """False for tails with too little of them in the frame to judge."""
    crossing_angle: float | None
    """Smallest angle (deg, 0-90) at which it crosses another tail; None if it crosses none."""
    n_crossings: int
    crosses_head: bool
    """Its mask runs over another cell's head."""
    head_visible: bool
    """Its head shows in the head labels given as input (at least one pixel): a head lying wholly
    under another head, or outside the frame, cannot be paired with."""
    iou: float
    """IoU of its matched instance (0 if none)."""
    paired_head: int | None
    """Head label on the matched instance."""

    @property
    def recovered(self) -> bool:
        return self.iou >= 0.5

    @property
    def paired_right(self) -> bool:
        return self.recovered and self.paired_head == self.sperm_id


@dataclass
class FieldScore:
    tails: list[TailTruthScore]
    n_instances: int
    n_false: int
    """Instances matched to no true tail at IoU >= 0.5."""
    extra: dict = field(default_factory=dict)


def tail_mask_of(fld: SyntheticField) -> np.ndarray:
    """Union of the true tail masks (the input Con2Dis gets)."""
    out = np.zeros(fld.shape, bool)
    for s in fld.sperm:
        if s.tail.mask.size:
            s.tail.paste(out)
    return out


def _visible_line(fld: SyntheticField, s) -> np.ndarray:
    c = s.centreline
    h, w = fld.shape
    ok = (c[:, 0] >= 0) & (c[:, 0] <= h - 1) & (c[:, 1] >= 0) & (c[:, 1] <= w - 1)
    return c[ok]


def crossing_angles(fld: SyntheticField) -> dict[tuple[int, int], float]:
    """Angle (deg, 0-90) between the true centrelines of every crossing pair, where they meet."""
    by_id = {s.sperm_id: s for s in fld.sperm}
    out = {}
    for a, b in fld.crossings:
        ca, cb = _visible_line(fld, by_id[a]), _visible_line(fld, by_id[b])
        if len(ca) < 5 or len(cb) < 5:
            out[(a, b)] = 90.0
            continue
        d, j = cKDTree(cb).query(ca)
        i = int(np.argmin(d))
        j = int(j[i])
        ta = ca[min(i + 4, len(ca) - 1)] - ca[max(i - 4, 0)]
        tb = cb[min(j + 4, len(cb) - 1)] - cb[max(j - 4, 0)]
        cos = abs(float(ta @ tb)) / max(float(np.hypot(*ta) * np.hypot(*tb)), 1e-9)
        out[(a, b)] = float(np.degrees(np.arccos(min(cos, 1.0))))
    return out


def _incidence(masks: list[CropMask], shape: tuple[int, int]) -> sparse.csr_matrix:
    rows, cols = [], []
    for k, m in enumerate(masks):
        if m.mask.size == 0:
            continue
        r, c = np.nonzero(m.mask)
        flat = (r + m.offset[0]) * shape[1] + (c + m.offset[1])
        rows.append(np.full(flat.size, k))
        cols.append(flat)
    if not rows:
        return sparse.csr_matrix((len(masks), shape[0] * shape[1]), dtype=np.float64)
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    return sparse.csr_matrix((np.ones(r.size), (r, c)), shape=(len(masks), shape[0] * shape[1]))


def match_iou(
    truth: list[CropMask], pred: list[CropMask], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching by IoU.

    Returns
    -------
    match : (n_truth,) int
        Index of the matched prediction, -1 if none.
    iou : (n_truth,) float
        IoU with it (0 if none).
    """
    match = np.full(len(truth), -1)
    iou = np.zeros(len(truth))
    if not truth or not pred:
        return match, iou
    t = _incidence(truth, shape)
    p = _incidence(pred, shape)
    inter = (t @ p.T).toarray()
    at = np.asarray(t.sum(axis=1)).ravel()
    ap = np.asarray(p.sum(axis=1)).ravel()
    union = at[:, None] + ap[None, :] - inter
    m = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    ri, ci = linear_sum_assignment(-m)
    for r, c in zip(ri, ci):
        if m[r, c] > 0:
            match[r], iou[r] = c, m[r, c]
    return match, iou


def score_field(fld: SyntheticField, result, min_visible_widths: float = 8.0) -> FieldScore:
    """Score a clustering of ``tail_mask_of(fld)`` against the field's ground truth.

    Parameters
    ----------
    fld : SyntheticField
    result : TailClustering
    min_visible_widths : float
        True tails with less than this many (true) tail widths of centreline inside the frame (and
        at least 12 px) are left out of the figures (``scored`` False): mostly outside the frame.

    Returns
    -------
    FieldScore
    """
    sperm = [s for s in fld.sperm if s.tail.area > 0]
    truth = [s.tail for s in sperm]
    pred = [t.mask for t in result.tails]
    match, iou = match_iou(truth, pred, fld.shape)
    angles = crossing_angles(fld)
    per: dict[int, list[float]] = {}
    for (a, b), ang in angles.items():
        per.setdefault(a, []).append(ang)
        per.setdefault(b, []).append(ang)
    heads = fld.head_labels()
    shown = set(np.unique(heads).tolist())
    vis_lens = [0.5 * max(len(_visible_line(fld, s)) - 1, 0) for s in sperm]
    widths = [s.tail.area / v for s, v in zip(sperm, vis_lens) if v > 0]
    w = float(np.median(widths)) if widths else 1.0  # true tail width, not the method's estimate
    out = []
    for k, s in enumerate(sperm):
        vis_len = vis_lens[k]
        r0, c0 = s.tail.offset
        hh, ww = s.tail.mask.shape
        under = heads[r0 : r0 + hh, c0 : c0 + ww][s.tail.mask]
        crosses_head = bool(np.any((under > 0) & (under != s.sperm_id)))
        pi = match[k]
        out.append(
            TailTruthScore(
                sperm_id=s.sperm_id,
                scored=vis_len >= max(min_visible_widths * w, 12.0),
                crossing_angle=min(per[s.sperm_id]) if s.sperm_id in per else None,
                n_crossings=len(per.get(s.sperm_id, ())),
                crosses_head=crosses_head,
                head_visible=s.head.area > 0 and s.sperm_id in shown,
                iou=float(iou[k]),
                paired_head=result.tails[pi].head if pi >= 0 else None,
            )
        )
    matched = {int(m) for m, v in zip(match, iou) if m >= 0 and v >= 0.5}
    return FieldScore(out, len(pred), len(pred) - len(matched))


def summarize(scores: list[FieldScore]) -> dict[str, tuple[int, int]]:
    """Counts ``(hits, total)`` per category over many fields.

    Keys: ``"all"`` (tails recovered), ``"crossing"`` (crossing tails recovered), ``"band a-b"``
    (crossing tails by smallest crossing angle), ``"crosses 2+ tails"`` (triples and more),
    ``"crosses head"``, ``"paired"`` (tails with a
    visible head paired with the right head), ``"false instances"`` (instances matching no tail,
    against all instances).
    """
    rows = [t for s in scores for t in s.tails if t.scored]
    out: dict[str, tuple[int, int]] = {}

    def put(key, sel, hit):
        sel = list(sel)
        out[key] = (sum(1 for t in sel if hit(t)), len(sel))

    put("all", rows, lambda t: t.recovered)
    put("crossing", [t for t in rows if t.crossing_angle is not None], lambda t: t.recovered)
    for lo, hi in ANGLE_BANDS:
        sel = [t for t in rows if t.crossing_angle is not None and lo <= t.crossing_angle < hi]
        put(f"band {lo:g}-{min(hi, 90):g}", sel, lambda t: t.recovered)
    put("crosses 2+ tails", [t for t in rows if t.n_crossings >= 2], lambda t: t.recovered)
    put("crosses head", [t for t in rows if t.crosses_head], lambda t: t.recovered)
    put("paired", [t for t in rows if t.head_visible], lambda t: t.paired_right)
    out["false instances"] = (
        sum(s.n_false for s in scores),
        sum(s.n_instances for s in scores),
    )
    return out
