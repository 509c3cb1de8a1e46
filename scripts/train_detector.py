"""Train the default sperm detector and write its weights file (the one reproducible command).

    .venv/bin/python scripts/train_detector.py            # full recipe (see docs/model-card.md)
    .venv/bin/python scripts/train_detector.py --iterations 50 --no-stage2 --fields 0.02 --val-fields 1 --cache /tmp/s.pkl --out /tmp/x.pt

Seeds: training fields use seeds >= 1_000_000 (``napari_sperm.detection.datacache``), the validation
printed at the end uses seeds 2_000_000.. (never < 1_000_000, which tests and benchmarks use).
The rendered field cache is kept under /tmp (``--cache``) and reused when its recipe matches.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import torch

from napari_sperm.detection.datacache import TRAIN_SEED_BASE, build_cache
from napari_sperm.detection.detector import (
    DEFAULT_INFERENCE,
    DEFAULT_WEIGHTS,
    WEIGHTS_FORMAT,
    Detector,
)
from napari_sperm.detection.evaluate import coco_eval_fields
from napari_sperm.detection.model import DEFAULT_ARCH
from napari_sperm.detection.train import train_model
from napari_sperm.synthetic import parse_modality_mix

COUNTS = {"phase-low": 360, "phase-high": 360, "brightfield": 300, "stained": 220}
VAL_SEED_BASE = 2_000_000


# Fine-tuning stages of the shipped recipe, after stages 1 and 2 (iterations, lr, seed, mix): more
# brightfield and phase-high crops, whose heads the equal mix left under-confident.
FINETUNE = [
    "2000:1e-3:3:brightfield=2.5,phase-high=1.2,phase-low=1,stained=0.8",
]


def _parse_stage(text: str) -> tuple[int, float, int, dict[str, float] | None]:
    """``"ITER:LR:SEED:MIX"`` -> (iterations, lr, seed, mix)."""
    parts = text.split(":")
    if len(parts) != 4:
        raise ValueError(f"--finetune wants ITER:LR:SEED:MIX, got {text!r}")
    return int(parts[0]), float(parts[1]), int(parts[2]), parse_modality_mix(parts[3], list(COUNTS))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--iterations", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--fields", type=float, default=1.0, help="scale of the per-modality field counts"
    )
    ap.add_argument("--cache", default="/tmp/napari-sperm-train-cache.pkl")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--val-fields", type=int, default=4, help="validation fields per modality")
    ap.add_argument(
        "--stage2-iterations",
        type=int,
        default=2600,
        help="second stage: restart from the first stage's (fp16-rounded) weights with "
        "a fresh warm-up + cosine schedule, seed + 1 (0 = no second stage)",
    )
    ap.add_argument("--stage2-lr", type=float, default=1e-3)
    ap.add_argument("--no-stage2", action="store_true", help="same as --stage2-iterations 0")
    ap.add_argument("--init", default=None, help="start from this weights file (fine-tuning)")
    ap.add_argument(
        "--mix",
        default="",
        help="modality sampling weights of stages 1 and 2, e.g. brightfield=2,phase-low=0.8 "
        "(default: equal)",
    )
    ap.add_argument(
        "--finetune",
        action="append",
        metavar="ITER:LR:SEED:MIX",
        help="a further stage from the previous one's (fp16-rounded) weights, e.g. "
        "2000:1e-3:3:brightfield=2.5,stained=0.8; repeat for more stages (default without "
        "--init: the shipped recipe's, see FINETUNE)",
    )
    ap.add_argument("--no-finetune", action="store_true", help="no further stages")
    ap.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    a = ap.parse_args(argv)
    t_start = time.time()
    torch.set_num_threads(a.threads)
    counts = {m: max(1, round(n * a.fields)) for m, n in COUNTS.items()}
    try:
        mix = parse_modality_mix(a.mix, list(COUNTS))
        default_ft = [] if a.init else FINETUNE
        finetune = [] if a.no_finetune else [_parse_stage(t) for t in (a.finetune or default_ft)]
    except ValueError as exc:
        ap.error(str(exc))

    key = {"counts": counts, "seed_base": TRAIN_SEED_BASE, "v": 1}
    cache_path = Path(a.cache)
    cache = None
    if cache_path.is_file():
        with cache_path.open("rb") as fh:
            stored = pickle.load(fh)
        if isinstance(stored, dict) and stored.get("key") == key:
            cache = stored["records"]
            log(f"reusing field cache {cache_path} ({len(cache)} fields)")
    if cache is None:
        log(f"rendering training fields {counts} (seeds >= {TRAIN_SEED_BASE})")
        cache = build_cache(counts, TRAIN_SEED_BASE, a.workers, log=log)
        with cache_path.open("wb") as fh:
            pickle.dump({"key": key, "records": cache}, fh, protocol=4)
    by_mod: dict[str, list[dict]] = {}
    for rec in cache:
        by_mod.setdefault(rec["modality"], []).append(rec)
    t_cache = time.time() - t_start

    init_state = None
    if a.init:
        init_state = {
            k: (v.float() if v.is_floating_point() else v)
            for k, v in torch.load(a.init, weights_only=True)["state_dict"].items()
        }
    log(f"training {a.iterations} iterations x {a.batch} crops of {a.size} px")
    # stage 1 (from scratch) learns whole-cell boxes clipped to each crop; later stages (stage 2 or
    # --init) learn the unclipped frame box, with a lower weight where the crop cuts the cell
    clip = a.init is None
    model = train_model(
        by_mod,
        a.iterations,
        a.batch,
        a.size,
        a.lr,
        a.seed,
        DEFAULT_ARCH,
        log,
        init_state,
        clip_cells=clip,
        mix=mix,
    )
    # Later stages restart from the previous stage's fp16-rounded weights: identical to running the
    # script again with --init <previous file> (stage 2: --seed SEED+1; fine-tuning: --mix ...).
    later = list(finetune)
    if a.stage2_iterations > 0 and not a.no_stage2:
        later.insert(0, (a.stage2_iterations, a.stage2_lr, a.seed + 1, mix))
    for n, (iters, lr, seed, stage_mix) in enumerate(later, start=2):
        state = {
            k: (v.half().float() if v.is_floating_point() else v)
            for k, v in model.state_dict().items()
        }
        log(f"stage {n}: {iters} iterations, lr {lr}, seed {seed}, mix {stage_mix or 'equal'}")
        model = train_model(
            by_mod, iters, a.batch, a.size, lr, seed, DEFAULT_ARCH, log, state, mix=stage_mix
        )
    t_train = time.time() - t_start - t_cache

    config = {
        "arch": dict(DEFAULT_ARCH),
        "inference": dict(DEFAULT_INFERENCE),
        "normalize": "per-frame 1..99.5 percentile to 0..1, grey replicated to 3 channels",
    }
    metrics = {}
    if a.val_fields > 0:
        from napari_sperm.synthetic import make_field

        # the network's own boxes: what training changes (fitted head boxes are added at use)
        det = Detector(model, config, torch.device("cpu"), refine_boxes=False)
        for mi, mod in enumerate(sorted(COUNTS)):
            fields = [
                make_field(mod, seed=VAL_SEED_BASE + 1000 * mi + i) for i in range(a.val_fields)
            ]
            res = det.detect(_stack(fields), 0.05, 4)
            m = coco_eval_fields(fields, res)
            metrics[mod] = m
            log(
                f"val {mod:12s} head AP50 {m['head']['AP50']:.3f} AP {m['head']['AP']:.3f} "
                f"AR100 {m['head']['AR100']:.3f} AR1000 {m['head']['AR1000']:.3f} | sperm AP50 "
                f"{m['sperm']['AP50']:.3f} AP {m['sperm']['AP']:.3f} AR100 {m['sperm']['AR100']:.3f} "
                f"AR1000 {m['sperm']['AR1000']:.3f}"
            )
    ckpt = {
        "format": WEIGHTS_FORMAT,
        "version": 1,
        "config": config,
        "state_dict": {
            k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()
        },
        "training": {
            "seed": a.seed,
            "iterations": a.iterations,
            "batch": a.batch,
            "crop": a.size,
            "lr": a.lr,
            "stage2_iterations": 0 if a.no_stage2 else a.stage2_iterations,
            "stage2_lr": a.stage2_lr,
            "stage1_clip_cell_boxes": clip,
            "fields": counts,
            "train_seed_base": TRAIN_SEED_BASE,
            "val_seed_base": VAL_SEED_BASE,
            "mix": mix or {},
            "finetune": [
                {"iterations": i, "lr": lr, "seed": sd, "mix": m} for i, lr, sd, m in finetune
            ],
            "init": a.init or "",
            "cache_seconds": round(t_cache, 1),
            "train_seconds": round(t_train, 1),
            "torch": str(torch.__version__),
            "val_metrics_json": json.dumps(metrics),
        },
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    log(
        f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); total {time.time() - t_start:.0f} s "
        f"(cache {t_cache:.0f} s, training {t_train:.0f} s)"
    )
    return 0


def _stack(fields):
    import numpy as np

    return np.stack([f.image for f in fields])


if __name__ == "__main__":
    sys.exit(main())
