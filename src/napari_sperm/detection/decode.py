"""Turn network outputs into boxes: 3x3 max-pool peaks, regressions, level gating, merging."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .model import STRIDE

__all__ = ["decode_level", "suppress_by_centre"]


def decode_level(
    heat_logits: torch.Tensor, reg: torch.Tensor, score_threshold: float, max_dets: int = 2000
) -> list[np.ndarray]:
    """Peaks of one output map batch -> per image ``(K, 14)`` float arrays in input pixels.

    Columns: score, head x, y, w, h, whole-cell x0, y0, x1, y1, head length, centre x, y, 0, 0.
    """
    heat = torch.sigmoid(heat_logits.float())
    reg = reg.float()
    peak = F.max_pool2d(heat, 3, 1, 1)
    keep = (heat == peak) & (heat >= score_threshold)
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


def suppress_by_centre(dets: np.ndarray, radius_frac: float = 0.5) -> np.ndarray:
    """Greedy duplicate removal by head-centre distance (highest score first).

    A detection is dropped when its centre lies within ``radius_frac * min(w, h)`` of a kept,
    higher-scoring head centre (``w, h`` of the kept head). Returns the kept rows, best first.
    """
    if len(dets) < 2:
        return dets
    from scipy.spatial import cKDTree

    dets = dets[np.argsort(-dets[:, 0], kind="stable")]
    c = dets[:, 10:12].astype(np.float64)
    rad = radius_frac * np.minimum(dets[:, 3], dets[:, 4])
    pairs = cKDTree(c).query_pairs(float(rad.max()), output_type="ndarray")
    if len(pairs) == 0:
        return dets
    i, j = pairs.min(1), pairs.max(1)  # i scores higher than j
    d = np.hypot(*(c[i] - c[j]).T)
    close = d < rad[i]
    i, j = i[close], j[close]
    if len(i) == 0:
        return dets
    order = np.argsort(i, kind="stable")
    i, j = i[order], j[order]
    keep = np.ones(len(dets), bool)
    for a, b in zip(i.tolist(), j.tolist()):
        if keep[a]:
            keep[b] = False
    return dets[keep]
