"""Train the head box edge classifier shipped with napari-sperm (one reproducible command).

    .venv/bin/python scripts/train_head_edges.py              # full recipe (docs/model-card.md)
    .venv/bin/python scripts/train_head_edges.py --fields 2 --val-fields 1 --steps 50 \
        --out /tmp/e.npz                                      # a quick check of the plumbing

For every synthetic training field: the shipped detector (2 flipped copies, scores >= 0.05) finds
the heads, each head box is outlined as ``--refine-boxes`` does, and every outline box that
replaces a detector box gives four examples: the contrast profile across one edge and the box's
size (``napari_sperm.detection.head_edges.edge_features``), and as the answer how many whole pixels
the true head box's edge lies outside the outline's (clipped to -3..+3). The true box is the one
of the true head that overlaps the outline box most (IoU >= 0.3). A two-hidden-layer perceptron is
trained on them with cross-entropy, each modality weighing the same. Training fields use seeds
4_000_000 + 100_000 x modality index + i, validation fields 4_500_000 + ... (tests and benchmarks
use seeds below 1000, the detector 1_000_000.., the tail network 2_500_000.. and 3_000_000..).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils

from napari_sperm.detection import load_detector
from napari_sperm.detection.head_edges import DEFAULT_EDGE_MODEL, edge_features, save_edge_model
from napari_sperm.detection.refine import agreeing_outlines
from napari_sperm.segmentation.head_boxes import PROFILE_OFFSETS
from napari_sperm.segmentation.tail_mask import as_grey
from napari_sperm.synthetic import make_field, modality_names

TRAIN_SEED, VAL_SEED = 4_000_000, 4_500_000
# stained fields hold few heads (about 7), phase-low fields hundreds
COUNTS = {"stained": 120, "phase-low": 24, "phase-high": 48, "brightfield": 64}
MAX_SHIFT = 3


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def examples(modality: str, seeds, detector) -> tuple[np.ndarray, np.ndarray]:
    """Features and true outward shifts of every outline box edge in the fields of ``seeds``."""
    xs, ys = [], []
    for seed in seeds:
        f = make_field(modality, seed=seed)
        cells = [s for s in f.sperm if s.head.area > 0]
        det = detector.detect(f.image, 0.05, 1)[0]
        k = np.flatnonzero(det.classes == 2)
        if not cells or not k.size:
            continue
        dboxes = det.boxes[k].astype(np.float64)
        ok, boxes, prof = agreeing_outlines(as_grey(f.image), dboxes, profiles=True)
        if not ok.any():
            continue
        boxes, prof = boxes[ok], prof[ok]
        gt = np.array([s.head_box() for s in cells], np.float64)
        iou = np.asarray(mask_utils.iou(boxes.tolist(), gt.tolist(), [0] * len(gt)))
        hit = iou.max(axis=1) >= 0.3
        if not hit.any():
            continue
        b, g = boxes[hit], gt[iou.argmax(axis=1)[hit]]
        out = np.stack(
            [
                b[:, 0] - g[:, 0],
                b[:, 1] - g[:, 1],
                g[:, 0] + g[:, 2] - b[:, 0] - b[:, 2],
                g[:, 1] + g[:, 3] - b[:, 1] - b[:, 3],
            ],
            axis=1,
        )
        xs.append(edge_features(prof[hit], b))
        ys.append(np.clip(np.rint(out), -MAX_SHIFT, MAX_SHIFT).astype(np.int64).ravel())
    return np.concatenate(xs), np.concatenate(ys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--fields", type=int, default=None, help="fields per modality (default: recipe)"
    )
    ap.add_argument("--val-fields", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(DEFAULT_EDGE_MODEL))
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    detector = load_detector(None, "cpu", 2, False)
    mods = modality_names()
    train, val = {}, {}
    for i, mod in enumerate(mods):
        n = a.fields or COUNTS.get(mod, 48)
        train[mod] = examples(
            mod, range(TRAIN_SEED + 100_000 * i, TRAIN_SEED + 100_000 * i + n), detector
        )
        val[mod] = examples(
            mod, range(VAL_SEED + 100_000 * i, VAL_SEED + 100_000 * i + a.val_fields), detector
        )
        log(f"{mod}: {len(train[mod][1])} training edges, {len(val[mod][1])} validation edges")

    x = torch.tensor(np.concatenate([train[m][0] for m in mods]))
    y = torch.tensor(np.concatenate([train[m][1] for m in mods]) + MAX_SHIFT)
    w = torch.cat([torch.full((len(train[m][1]),), 1.0 / len(train[m][1])) for m in mods])
    w = w / w.mean()
    n_in, n_out = x.shape[1], 2 * MAX_SHIFT + 1
    net = torch.nn.Sequential(
        torch.nn.Linear(n_in, a.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(a.hidden, a.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(a.hidden, n_out),
    )
    opt = torch.optim.AdamW(net.parameters(), a.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.steps)
    for step in range(a.steps):
        idx = torch.randint(0, len(x), (a.batch,))
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx], reduction="none")
        loss = (loss * w[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 1000 == 0 or step == a.steps - 1:
            log(f"step {step}: loss {loss.item():.3f}")

    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    weights = [m.weight.detach().numpy().T.copy() for m in layers]
    biases = [m.bias.detach().numpy().copy() for m in layers]
    report = {}
    with torch.no_grad():
        for mod in mods:
            xv, yv = val[mod]
            pred = net(torch.tensor(xv)).argmax(1).numpy() - MAX_SHIFT
            report[mod] = {
                "edges": int(len(yv)),
                "exact_before": float(np.mean(yv == 0)),
                "exact_after": float(np.mean(pred == yv)),
                "within_1px_before": float(np.mean(np.abs(yv) <= 1)),
                "within_1px_after": float(np.mean(np.abs(pred - yv) <= 1)),
            }
            r = report[mod]
            log(
                f"{mod}: edges on the true edge {r['exact_before']:.3f} -> {r['exact_after']:.3f}, "
                f"within 1 px {r['within_1px_before']:.3f} -> {r['within_1px_after']:.3f}"
            )
    info = {
        "trained_by": "scripts/train_head_edges.py",
        "fields": {m: a.fields or COUNTS.get(m, 48) for m in mods},
        "val_fields": a.val_fields,
        "steps": a.steps,
        "hidden": a.hidden,
        "profile_offsets": PROFILE_OFFSETS.tolist(),
        "validation": report,
    }
    save_edge_model(a.out, weights, biases, MAX_SHIFT, PROFILE_OFFSETS.size, info)
    Path(a.out).with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
