"""Prompted SAM cascade vs the automatic-mask-generator (``amg``) cascade of CS3: speed.

Same images, same SAM model (random weights: only speed is measured, masks are meaningless). For
each image and mode: seconds, mask-decoder calls (prompts decoded) and image embeddings. The
``amg`` cascade runs ``--amg-rounds`` passes of SAM's automatic mask generator with
``--pps`` x ``--pps`` prompts (CS3: points_per_side 32 and at least 6 passes per image, typically
7-12); with random weights no mask survives the published filters, so the number of passes is
forced (``min_rounds = max_rounds``) instead of stopping early.

Usage::

    .venv/bin/python benchmarks/cascade_speed.py                 # tiny SAM, 3 images, pps 32
    .venv/bin/python benchmarks/cascade_speed.py --model vit_b --images 1 --amg-rounds 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_sperm.segmentation.sam import SamCascadeParams, import_segment_anything, sam_cascade
from napari_sperm.segmentation.sam.compat import import_mobile_sam
from napari_sperm.segmentation.sam.model import SamHandle, tiny_sam
from napari_sperm.synthetic import make_field


def _model(name: str) -> SamHandle:
    if name == "tiny":
        return tiny_sam(seed=0)
    if name == "mobile_sam":
        ms = import_mobile_sam()
        if ms is None:
            raise SystemExit("mobile_sam is not installed (pip install mobilesam-mirror)")
        model = ms.sam_model_registry["vit_t"](checkpoint=None).eval()
        return SamHandle(ms.SamPredictor(model), name, torch.device("cpu"), 1024, None)
    sa = import_segment_anything()
    model = sa.sam_model_registry[name](checkpoint=None).eval()  # random weights: speed only
    return SamHandle(sa.SamPredictor(model), name, torch.device("cpu"), 1024, None)


def _images(n: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    kinds = ("phase-high", "stained", "brightfield", "phase-low")
    for i in range(n):
        kind = kinds[i % len(kinds)]
        fld = make_field(kind, seed=10 + i, n_sperm=10)
        boxes = np.array([t.head_box() for t in fld.sperm if t.head_box()], float)
        out.append((f"{kind}/{10 + i}", fld.image, boxes))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", default="tiny", choices=["tiny", "mobile_sam", "vit_b", "vit_l", "vit_h"]
    )
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--pps", type=int, default=32, help="AMG points per side (CS3: 32)")
    ap.add_argument("--amg-rounds", type=int, default=6, help="AMG passes per image (CS3: >= 6)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reembed", default="once", choices=["never", "once", "each_round"])
    ap.add_argument(
        "--amg-seconds",
        type=float,
        default=None,
        help="skip the AMG runs and use this measured seconds-per-pass figure instead",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sam = _model(args.model)
    prompted_p = SamCascadeParams(reembed=args.reembed)
    amg_p = SamCascadeParams(
        amg_points_per_side=args.pps, max_rounds=args.amg_rounds, min_rounds=args.amg_rounds
    )
    print(
        f"model {args.model}, {torch.get_num_threads()} threads, amg pps {args.pps} x "
        f"{args.amg_rounds} passes, prompted max_rounds {prompted_p.max_rounds} "
        f"(reembed={prompted_p.reembed})"
    )
    head = f"{'image':<16}{'heads':>6} | {'prompted s':>10}{'calls':>7}{'emb':>5} | {'amg s':>8}{'calls':>7}{'emb':>5} | {'x faster':>8}{'calls ratio':>12}"
    print(head)
    print("-" * len(head))
    totals = np.zeros(4)
    for name, image, boxes in _images(args.images):
        t = time.perf_counter()
        pr = sam_cascade(image, boxes, sam, mode="prompted", params=prompted_p)
        tp = time.perf_counter() - t
        if args.amg_seconds is None:
            t = time.perf_counter()
            am = sam_cascade(image, boxes, sam, mode="amg", params=amg_p)
            ta = time.perf_counter() - t
            am_calls, am_emb = am.decoder_calls, am.embeddings
        else:  # reuse a measured pass time (AMG cost does not depend on the content)
            ta = args.amg_seconds * args.amg_rounds
            am_calls, am_emb = args.pps**2 * args.amg_rounds, args.amg_rounds
        totals += (tp, ta, pr.decoder_calls, am_calls)
        print(
            f"{name:<16}{len(boxes):>6} | {tp:>10.2f}{pr.decoder_calls:>7}{pr.embeddings:>5} | "
            f"{ta:>8.2f}{am_calls:>7}{am_emb:>5} | {ta / tp:>8.1f}"
            f"{am_calls / max(pr.decoder_calls, 1):>12.1f}"
        )
    n = max(args.images, 1)
    print("-" * len(head))
    print(
        f"{'mean':<22} | {totals[0] / n:>10.2f}{totals[2] / n:>7.0f}{'':>5} | {totals[1] / n:>8.2f}"
        f"{totals[3] / n:>7.0f}{'':>5} | {totals[1] / totals[0]:>8.1f}{totals[3] / max(totals[2], 1):>12.1f}"
    )
    print(f"per AMG pass: {totals[1] / n / args.amg_rounds:.2f} s")


if __name__ == "__main__":
    main()
