"""Benchmark and realism report of the synthetic generator.

Prints, per modality, over N fields: generation speed (fields per second, seconds per field), peak
memory of one field (tracemalloc), and the realism statistics the modality is tuned to (sperm per
field, head size, visible flagellum length and width, share of fields with crossing tails).

Usage: .venv/bin/python benchmarks/synthetic.py [N_FIELDS]   (default 20)
"""

from __future__ import annotations

import sys
import time
import tracemalloc

import numpy as np

from napari_sperm.synthetic import MODALITIES, make_field, make_stack


def visible_length(t, shape) -> float:
    c = t.centreline
    inside = (c[:, 0] >= 0) & (c[:, 0] < shape[0]) & (c[:, 1] >= 0) & (c[:, 1] < shape[1])
    return float(inside.sum() * 0.5)


def report(name: str, n: int) -> None:
    t0 = time.perf_counter()
    fields = [make_field(name, seed=s) for s in range(n)]
    dt = (time.perf_counter() - t0) / n
    tracemalloc.start()
    make_field(name, seed=n + 1)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    counts, head_len, head_wid, areas, lengths, widths, crossed = [], [], [], [], [], [], 0
    for f in fields:
        counts.append(sum(t.head.area > 0 for t in f.sperm))
        crossed += bool(f.crossings)
        for t in f.sperm:
            box = t.head_box()
            if box and not t.edge_on:
                x, y, w, h = box
                if x > 0 and y > 0 and x + w < f.shape[1] and y + h < f.shape[0]:
                    head_len.append(t.head_length)
                    head_wid.append(t.head_width)
                    areas.append(t.head.area)
            if t.tail.area > 20:
                vl = visible_length(t, f.shape)
                lengths.append(vl)
                widths.append(t.tail.area / max(vl, 1.0))
    p10, p50, p90 = np.percentile(lengths, [10, 50, 90])
    print(
        f"{name:12s} {f.image.shape!s:17s} {1 / dt:6.2f} fields/s ({dt * 1000:6.0f} ms) peak {peak:6.0f} MiB | "
        f"sperm/field {min(counts)}-{max(counts)} (median {int(np.median(counts))}) | "
        f"head {np.median(head_len):.0f}x{np.median(head_wid):.0f} px, area {np.median(areas):.0f} px | "
        f"visible tail p10/50/90 {p10:.0f}/{p50:.0f}/{p90:.0f} px, width {np.median(widths):.1f} px | "
        f"fields with crossing tails {crossed / n:.0%}"
    )


def main(n: int = 20) -> None:
    print(f"synthetic generator, {n} fields per modality, seeds 0..{n - 1}")
    for name in MODALITIES:
        report(name, n)
    t0 = time.perf_counter()
    stack = make_stack("phase-high", n_frames=20, seed=0)
    dt = time.perf_counter() - t0
    print(f"phase-high stack of 20 frames: {dt:.2f} s ({stack.n_frames / dt:.1f} frames/s)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
