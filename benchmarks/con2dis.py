"""Con2Dis tail clustering: our version against the published rules, accuracy and time.

Run: ``.venv/bin/python benchmarks/con2dis.py [--seeds N] [--no-published]``

Fields are synthetic (napari_sperm.synthetic.make_field) with many forced tail crossings in three
angle bands; the input is the union of the true tail masks plus the true head labels. Prints, per
modality and angle band, the share of crossing tails recovered (IoU >= 0.5, one-to-one) and the share
of tails paired with the right head, for both methods; then the time per 1280x1024 field with 14
sperm and how time grows with 10, 100 and 1,000 tails. Numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_sperm.synthetic import make_field
from napari_sperm.tails import cluster_tails
from napari_sperm.tails.published import cluster_tails_published
from napari_sperm.tails.scoring import ANGLE_BANDS, score_field, summarize, tail_mask_of

MODALITIES = {
    # modality: (cells per field, forced crossings per field)
    "stained": (10, 4),
    "phase-low": (120, 30),
    "phase-high": (25, 8),
    "brightfield": (20, 6),
}


def fields(modality: str, seeds: int):
    n, k = MODALITIES[modality]
    for seed in range(seeds):
        for band in ANGLE_BANDS:
            yield make_field(
                modality, seed=1000 + seed, n_sperm=n, crossings=k,
                crossing_angle_deg=(band[0], min(band[1], 90.0)),
            )  # fmt: skip


def fmt(hit_total: tuple[int, int]) -> str:
    a, b = hit_total
    return f"{100.0 * a / b:5.1f}% ({a}/{b})" if b else "   -         "


def accuracy(seeds: int, published: bool) -> None:
    keys = ["crossing", *[f"band {lo:g}-{min(hi, 90):g}" for lo, hi in ANGLE_BANDS]]
    keys += ["crosses 2+ tails", "crosses head", "all", "paired", "false instances"]
    methods = [("ours", cluster_tails)] + (
        [("published", cluster_tails_published)] if published else []
    )
    totals = {name: [] for name, _ in methods}
    times = {name: [] for name, _ in methods}
    for mod in MODALITIES:
        per = {name: [] for name, _ in methods}
        for fld in fields(mod, seeds):
            mask, heads = tail_mask_of(fld), fld.head_labels()
            for name, fn in methods:
                t0 = time.perf_counter()
                res = fn(mask, heads)
                times[name].append(time.perf_counter() - t0)
                per[name].append(score_field(fld, res))
        print(f"\n{mod}  ({3 * seeds} fields, {MODALITIES[mod][0]} cells, crossings forced)")
        print(f"  {'':18s}" + "".join(f"{name:>24s}" for name, _ in methods))
        sums = {name: summarize(per[name]) for name, _ in methods}
        for key in keys:
            print(f"  {key:18s}" + "".join(f"{fmt(sums[n][key]):>24s}" for n, _ in methods))
        for name, _ in methods:
            totals[name] += per[name]
    print("\nall modalities")
    sums = {name: summarize(totals[name]) for name, _ in methods}
    for key in keys:
        print(f"  {key:18s}" + "".join(f"{fmt(sums[n][key]):>24s}" for n, _ in methods))
    for name, _ in methods:
        t = np.array(times[name]) * 1e3
        print(f"  time {name}: median {np.median(t):.1f} ms per field, max {t.max():.1f} ms")


def _best_of(fn, *args, repeat: int = 7) -> float:
    best = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        best.append(time.perf_counter() - t0)
    return float(np.median(best))


def speed(published: bool) -> None:
    fld = make_field("stained", seed=3, n_sperm=14, crossings=3)
    mask, heads = tail_mask_of(fld), fld.head_labels()
    res = cluster_tails(mask, heads)
    t = _best_of(cluster_tails, mask, heads)
    print(f"\nstained 1280x1024, 14 sperm ({len(res.tails)} tails found, {mask.sum()} tail px):")
    print(f"  ours       {1e3 * t:7.1f} ms (median of 7)")
    if published:
        tp = _best_of(cluster_tails_published, mask, heads, repeat=1)
        print(f"  published  {1e3 * tp:7.1f} ms")
    # Growth: mosaics of 640x480 phase-high tiles with 10 cells each.
    tiles = [make_field("phase-high", seed=50 + k, n_sperm=10, crossings=3) for k in range(10)]
    print("\ngrowth with the number of tails (mosaics of 640x480 tiles, 10 cells each):")
    for n_tiles, grid in ((1, (1, 1)), (10, (2, 5)), (100, (10, 10))):
        h, w = tiles[0].shape
        big = np.zeros((grid[0] * h, grid[1] * w), bool)
        hb = np.zeros(big.shape, np.int32)
        for k in range(n_tiles):
            r, c = divmod(k, grid[1])
            f = tiles[k % len(tiles)]
            big[r * h : (r + 1) * h, c * w : (c + 1) * w] = tail_mask_of(f)
            hl = f.head_labels()
            hb[r * h : (r + 1) * h, c * w : (c + 1) * w] = np.where(hl > 0, hl + 100 * k, 0)
        n_true = sum(
            sum(1 for s in tiles[k % len(tiles)].sperm if s.tail.area) for k in range(n_tiles)
        )
        reps = 5 if n_tiles < 100 else 2
        t = _best_of(cluster_tails, big, hb, repeat=reps)
        line = f"  {n_true:5d} tails, {big.shape[0]}x{big.shape[1]}: ours {1e3 * t:8.1f} ms"
        line += f"  ({1e3 * t / n_true:.2f} ms per tail)"
        if published and n_tiles <= 10:
            tp = _best_of(cluster_tails_published, big, hb, repeat=1)
            line += f"; published {1e3 * tp:8.1f} ms"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="fields per modality and angle band")
    ap.add_argument("--no-published", action="store_true", help="skip the published baseline")
    args = ap.parse_args()
    accuracy(args.seeds, not args.no_published)
    speed(not args.no_published)


if __name__ == "__main__":
    main()
