"""Turn network outputs into boxes: candidate cells, their regressed boxes, duplicate removal."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .model import STRIDE

__all__ = ["candidate_cells", "decode_level", "suppress_overlapping"]


def candidate_cells(heat: torch.Tensor, score_threshold: float, ratio: float = 0.0) -> torch.Tensor:
    """Candidate head centres: cells that reach the threshold and come near their neighbours' top.

    Parameters
    ----------
    heat : (N, 1, h, w) tensor
        Head-centre probabilities (0..1).
    score_threshold : float
    ratio : float
        A cell is kept when its probability is at least ``ratio`` times that of each of the four
        cells sharing an edge with it. 1 keeps local maxima only; 0 (the default) keeps every cell
        that reaches the threshold and leaves duplicates to :func:`suppress_overlapping`. Two
        overlapping heads can share one broad maximum on the stride-4 grid, with the second head's
        centre on a neighbouring cell that is not a maximum; every cell regresses its own head box,
        so keeping such cells finds the second head while the box-overlap rule merges the cells of
        one head.

    Returns
    -------
    (N, 1, h, w) bool tensor
    """
    keep = heat >= score_threshold
    if ratio > 0:
        p = F.pad(heat, (1, 1, 1, 1), value=0.0)
        best = torch.maximum(
            torch.maximum(p[..., 1:-1, :-2], p[..., 1:-1, 2:]),
            torch.maximum(p[..., :-2, 1:-1], p[..., 2:, 1:-1]),
        )
        keep &= heat >= ratio * best
    return keep


def decode_level(
    heat_logits: torch.Tensor,
    reg: torch.Tensor,
    score_threshold: float,
    max_dets: int = 10000,
    ratio: float = 0.0,
) -> list[np.ndarray]:
    """Candidate cells of one output map batch -> per image ``(K, 14)`` float arrays, input pixels.

    Columns: score, head x, y, w, h, whole-cell x0, y0, x1, y1, head length, centre x, y, 0, 0.
    Candidate cells come from :func:`candidate_cells` with ``ratio``; at most ``max_dets`` per image,
    the best-scoring ones.
    """
    heat = torch.sigmoid(heat_logits.float())
    reg = reg.float()
    keep = candidate_cells(heat, score_threshold, ratio)
    n, _, _h, w = heat.shape
    out = []
    for i in range(n):
        idx = torch.nonzero(keep[i, 0].reshape(-1)).reshape(-1)
        scores = heat[i, 0].reshape(-1)[idx]
        if idx.numel() > max_dets:
            scores, order = scores.topk(max_dets)
            idx = idx[order]
        r = reg[i].reshape(reg.shape[1], -1)[:, idx]  # 9, K
        iy = torch.div(idx, w, rounding_mode="floor").float()
        ix = (idx % w).float()
        cx = (ix + r[0]) * STRIDE
        cy = (iy + r[1]) * STRIDE
        e = torch.exp(r[2:].clamp(-6, 8)) * STRIDE
        hw, hh, dl, dt, dr, db, hl = e
        x0 = torch.minimum(cx - dl, cx - hw / 2)
        y0 = torch.minimum(cy - dt, cy - hh / 2)
        x1 = torch.maximum(cx + dr, cx + hw / 2)
        y1 = torch.maximum(cy + db, cy + hh / 2)
        z = torch.zeros_like(cx)
        arr = torch.stack(
            [scores, cx - hw / 2, cy - hh / 2, hw, hh, x0, y0, x1, y1, hl, cx, cy, z, z], 1
        )
        out.append(arr.cpu().numpy())
    return out


def suppress_overlapping(
    dets: np.ndarray, iou_threshold: float = 0.5, radius_frac: float = 0.4
) -> np.ndarray:
    """Greedy duplicate removal by head-box overlap and head-centre distance (best score first).

    A detection is dropped when its head box overlaps a kept, higher-scoring head box by an IoU
    above ``iou_threshold``, or when its head centre lies within ``radius_frac`` times the kept
    head's shorter side of the kept head's centre. The cells, levels and tiles that see one head
    regress nearly the same box, or a box around nearly the same centre; two heads that really
    overlap rarely share more than 0.45 of their boxes (synthetic phase-high pairs: 0.2-0.42) and
    keep their centres about half a head width or more apart.

    Parameters
    ----------
    dets : (K, 14) float array
        Rows of :func:`decode_level` (head box in columns 1-4) in frame pixels.
    iou_threshold : float
    radius_frac : float
        0 turns the centre-distance rule off.

    Returns
    -------
    (K', 14) array
        The kept rows, best first.
    """
    if len(dets) < 2:
        return dets
    from scipy.spatial import cKDTree

    dets = dets[np.argsort(-dets[:, 0], kind="stable")]
    x0, y0, w, h = (dets[:, k].astype(np.float64) for k in (1, 2, 3, 4))
    # boxes can only overlap when their centres are closer than the largest half-diagonal sum
    c = np.stack([x0 + w / 2, y0 + h / 2], 1)
    reach = float(np.hypot(w, h).max())
    pairs = cKDTree(c).query_pairs(reach, output_type="ndarray")
    if len(pairs) == 0:
        return dets
    i, j = pairs.min(1), pairs.max(1)  # i scores at least as high as j
    iw = np.minimum(x0[i] + w[i], x0[j] + w[j]) - np.maximum(x0[i], x0[j])
    ih = np.minimum(y0[i] + h[i], y0[j] + h[j]) - np.maximum(y0[i], y0[j])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = w[i] * h[i] + w[j] * h[j] - inter
    near = np.hypot(*(c[i] - c[j]).T) < radius_frac * np.minimum(w[i], h[i])
    dup = (inter > iou_threshold * np.maximum(union, 1e-12)) | near
    i, j = i[dup], j[dup]
    if len(i) == 0:
        return dets
    order = np.argsort(i, kind="stable")
    keep = np.ones(len(dets), bool)
    for a, b in zip(i[order].tolist(), j[order].tolist()):
        if keep[a]:  # a's fate is settled: only pairs with a smaller first index can drop it
            keep[b] = False
    return dets[keep]
