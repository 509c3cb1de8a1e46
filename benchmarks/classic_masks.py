"""Accuracy and speed of the classic (no neural network) head and tail masks.

Per modality, over N synthetic fields (seeds 0..N-1): the heads are outlined inside the *truth* head
boxes (:func:`head_masks`), painted into a label image and passed to :func:`tail_mask` together with
the median longer side of the boxes as head length. Printed:

- tail pixels: precision, recall and IoU of the tail mask against the union of the truth tails;
  ``tol`` precision / recall count a pixel as matched within ``TOL`` px (1-px tails are unforgiving);
- per-sperm coverage: fraction of each truth tail's pixels in the mask (median over cells; cells
  with a visible tail only), plain and within ``TOL`` px;
- head IoU: median over heads of the IoU of the mask with the truth head mask;
- milliseconds per frame for the tail mask and for all head masks of the frame.

Usage: .venv/bin/python benchmarks/classic_masks.py [N_FIELDS] [MODALITY ...]   (default 5, all)
"""

from __future__ import annotations

import sys
import time

import numpy as np
from scipy import ndimage as ndi

from napari_sperm.segmentation import head_labels, head_masks, tail_mask
from napari_sperm.synthetic import make_field, modality_names

TOL = 1.5


def mask_iou(a, b) -> float:
    """IoU of two CropMasks."""
    if a.mask.size == 0 or b.mask.size == 0:
        return 0.0
    r0 = min(a.offset[0], b.offset[0])
    c0 = min(a.offset[1], b.offset[1])
    r1 = max(a.offset[0] + a.mask.shape[0], b.offset[0] + b.mask.shape[0])
    c1 = max(a.offset[1] + a.mask.shape[1], b.offset[1] + b.mask.shape[1])
    fa = np.zeros((r1 - r0, c1 - c0), bool)
    fb = np.zeros_like(fa)
    fa[a.offset[0] - r0 :][: a.mask.shape[0], a.offset[1] - c0 :][:, : a.mask.shape[1]] = a.mask
    fb[b.offset[0] - r0 :][: b.mask.shape[0], b.offset[1] - c0 :][:, : b.mask.shape[1]] = b.mask
    union = (fa | fb).sum()
    return float((fa & fb).sum() / union) if union else 0.0


def evaluate_field(fld, tail_params=None, head_params=None) -> dict:
    """Masks for one field and their scores against its ground truth."""
    cells = [t for t in fld.sperm if t.head.area > 0]
    boxes = np.array([t.head_box() for t in cells], float).reshape(-1, 4)
    t0 = time.perf_counter()
    masks = head_masks(fld.image, boxes, params=head_params)
    t1 = time.perf_counter()
    labels = head_labels(fld.shape, masks, [t.sperm_id for t in cells])
    head_len = float(np.median(boxes[:, 2:].max(axis=1))) if len(boxes) else None
    t2 = time.perf_counter()
    pred = tail_mask(fld.image, labels, head_length=head_len, params=tail_params)
    t3 = time.perf_counter()

    truth = fld.tail_labels() > 0
    for t in fld.sperm:  # tail_labels keeps one id per crossing pixel; the union needs all
        t.tail.paste(truth)
    near_pred = ndi.distance_transform_edt(~pred) <= TOL
    near_truth = ndi.distance_transform_edt(~truth) <= TOL
    cover, cover_tol = [], []
    for t in fld.sperm:
        if t.tail.area == 0:
            continue
        r0, c0 = t.tail.offset
        h, w = t.tail.mask.shape
        m = t.tail.mask
        cover.append(pred[r0 : r0 + h, c0 : c0 + w][m].mean())
        cover_tol.append(near_pred[r0 : r0 + h, c0 : c0 + w][m].mean())
    return {
        "tp": int((pred & truth).sum()),
        "pred": int(pred.sum()),
        "truth": int(truth.sum()),
        "tp_tol_p": int((pred & near_truth).sum()),
        "tp_tol_r": int((truth & near_pred).sum()),
        "cover": cover,
        "cover_tol": cover_tol,
        "head_iou": [mask_iou(m, t.head) for m, t in zip(masks, cells)],
        "ms_tail": 1000 * (t3 - t2),
        "ms_heads": 1000 * (t1 - t0),
    }


def report(name: str, n: int, tail_params=None, head_params=None, fields=None) -> dict:
    """Evaluate ``n`` fields of one modality, print one line and return the figures."""
    fields = fields or [make_field(name, seed=s) for s in range(n)]
    rows = [evaluate_field(f, tail_params, head_params) for f in fields]
    tp = sum(r["tp"] for r in rows)
    pred = max(sum(r["pred"] for r in rows), 1)
    truth = max(sum(r["truth"] for r in rows), 1)
    out = {
        "precision": tp / pred,
        "recall": tp / truth,
        "iou": tp / max(pred + truth - tp, 1),
        "tol_precision": sum(r["tp_tol_p"] for r in rows) / pred,
        "tol_recall": sum(r["tp_tol_r"] for r in rows) / truth,
        "coverage": float(np.median(np.concatenate([r["cover"] for r in rows]))),
        "coverage_tol": float(np.median(np.concatenate([r["cover_tol"] for r in rows]))),
        "head_iou": float(np.median(np.concatenate([r["head_iou"] for r in rows]))),
        "ms_tail": float(np.median([r["ms_tail"] for r in rows])),
        "ms_heads": float(np.median([r["ms_heads"] for r in rows])),
    }
    print(
        f"{name:12s} tail P {out['precision']:.3f} R {out['recall']:.3f} IoU {out['iou']:.3f} | "
        f"tol({TOL:g}px) P {out['tol_precision']:.3f} R {out['tol_recall']:.3f} | "
        f"per-sperm coverage median {out['coverage']:.3f} (tol {out['coverage_tol']:.3f}) | "
        f"head IoU median {out['head_iou']:.3f} | "
        f"ms/frame tail {out['ms_tail']:.0f} heads {out['ms_heads']:.0f}",
        flush=True,
    )
    return out


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 5
    names = argv[1:] or modality_names()
    print(f"classic masks over {n} fields per modality (truth head boxes as input)")
    for name in names:
        report(name, n)


if __name__ == "__main__":
    main(sys.argv[1:])
