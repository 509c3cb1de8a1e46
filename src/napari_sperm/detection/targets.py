"""Training targets for the stride-4 CenterNet-style outputs (see :mod:`.model`)."""

from __future__ import annotations

import numpy as np

from .model import N_REG, STRIDE

__all__ = ["MAX_OBJECTS", "make_targets"]

MAX_OBJECTS = 512


def make_targets(boxes: np.ndarray, out_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Heatmap and regression targets for one crop.

    Parameters
    ----------
    boxes : (N, 9) or (N, 10) float array
        Per cell, in crop input pixels: head x, y, w, h (visible part), whole-cell x, y, w, h,
        unclipped head length[, weight of the whole-cell regression].
    out_hw : (int, int)
        Output grid size (input size / 4).

    Returns
    -------
    dict with ``heat`` (1, h, w) float32, ``ind`` (M,) int64 flat cell index, ``reg`` (M, 9)
    float32 regression targets, ``mask`` (M,) float32 (1 for real entries), ``weight`` (M, 9)
    per-channel regression weights, M = MAX_OBJECTS.
    """
    oh, ow = out_hw
    heat = np.zeros((oh, ow), np.float32)
    ind = np.zeros(MAX_OBJECTS, np.int64)
    reg = np.zeros((MAX_OBJECTS, N_REG), np.float32)
    mask = np.zeros(MAX_OBJECTS, np.float32)
    weight = np.ones((MAX_OBJECTS, N_REG), np.float32)
    yy = np.arange(oh, dtype=np.float32)[:, None]
    xx = np.arange(ow, dtype=np.float32)[None, :]
    n = 0
    for b in boxes[:MAX_OBJECTS]:
        hx, hy, hw, hh, sx, sy, sw, sh, hl = (float(v) for v in b[:9])
        cx, cy = (hx + hw / 2) / STRIDE, (hy + hh / 2) / STRIDE
        ix, iy = int(cx), int(cy)
        if not (0 <= ix < ow and 0 <= iy < oh):
            continue
        sigma = max(0.5, 0.2 * np.sqrt(hw * hh) / STRIDE)
        r = int(3 * sigma) + 1
        y0, y1 = max(0, iy - r), min(oh, iy + r + 1)
        x0, x1 = max(0, ix - r), min(ow, ix + r + 1)
        # gaussian centred on the integer peak cell so that the peak equals 1 exactly
        g = np.exp(-((yy[y0:y1] - iy) ** 2 + (xx[:, x0:x1] - ix) ** 2) / (2 * sigma**2))
        np.maximum(heat[y0:y1, x0:x1], g, out=heat[y0:y1, x0:x1])
        ccx, ccy = cx * STRIDE, cy * STRIDE  # head centre, input px
        eps = 1.0
        reg[n] = [
            cx - ix,
            cy - iy,
            np.log(max(hw, eps) / STRIDE),
            np.log(max(hh, eps) / STRIDE),
            np.log(max(ccx - sx, eps) / STRIDE),
            np.log(max(ccy - sy, eps) / STRIDE),
            np.log(max(sx + sw - ccx, eps) / STRIDE),
            np.log(max(sy + sh - ccy, eps) / STRIDE),
            np.log(max(hl, eps) / STRIDE),
        ]
        if len(b) > 9:
            weight[n, 4:8] = float(b[9])
        ind[n] = iy * ow + ix
        mask[n] = 1.0
        n += 1
    return {"heat": heat[None], "ind": ind, "reg": reg, "mask": mask, "weight": weight}
