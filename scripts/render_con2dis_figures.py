"""Render the Con2Dis pictures for docs/con2dis.md into docs/images/.

For a few crossings in synthetic fields, one picture each: left, the tail mask coloured by connected
component (what connectivity alone gives: crossing tails are one object); right, the same pixels
coloured by Con2Dis tail instance, with the 1-px centrelines in black, heads in light grey and a red
dot where a tail is paired with its head. Crossing pixels show the instance painted last.

Usage: .venv/bin/python scripts/render_con2dis_figures.py [OUT_DIR]   (default: docs/images)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from napari_sperm.synthetic import make_field
from napari_sperm.tails import cluster_tails
from napari_sperm.tails.scoring import crossing_angles, tail_mask_of

COLOURS = np.array(
    [
        (230, 25, 75), (60, 160, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
        (70, 190, 190), (240, 50, 230), (150, 120, 40), (0, 0, 128), (128, 128, 0),
        (170, 110, 195), (0, 128, 128),
    ],
    np.uint8,
)  # fmt: skip

CASES = [
    # name, modality, seed, n_sperm, crossings, angle band, panel size
    ("con2dis-crossing-steep", "brightfield", 11, 8, 3, (50, 90), 200),
    ("con2dis-crossing-shallow", "stained", 2, 6, 3, (5, 15), 360),
    ("con2dis-crossing-many", "phase-high", 4, 14, 6, (20, 70), 260),
]


def _panel(shape, mask, heads, labels_of):
    rgb = np.full(shape + (3,), 255, np.uint8)
    rgb[heads > 0] = (215, 215, 215)
    for value, pix in labels_of:
        rgb[pix] = COLOURS[value % len(COLOURS)]
    return rgb


def render(name, modality, seed, n, k, band, size, out_dir: Path) -> Path:
    fld = make_field(modality, seed=seed, n_sperm=n, crossings=k, crossing_angle_deg=band)
    mask, heads = tail_mask_of(fld), fld.head_labels()
    res = cluster_tails(mask, heads)
    # Centre the picture on the crossing whose angle is nearest the band's middle.
    angles = crossing_angles(fld)
    by_id = {s.sperm_id: s for s in fld.sperm}
    (a, b), _ = min(angles.items(), key=lambda kv: abs(kv[1] - np.mean(band)))
    both = by_id[a].tail.to_full(fld.shape) & by_id[b].tail.to_full(fld.shape)
    cy, cx = (int(v) for v in np.argwhere(both).mean(axis=0))
    half = size // 2
    r0 = int(np.clip(cy - half, 0, fld.shape[0] - size))
    c0 = int(np.clip(cx - half, 0, fld.shape[1] - size))
    sl = (slice(r0, r0 + size), slice(c0, c0 + size))
    m, h = mask[sl], heads[sl]
    comp, _ = ndi.label(mask, np.ones((3, 3)))
    comp = comp[sl]
    before = _panel(m.shape, m, h, [(v, comp == v) for v in np.unique(comp[comp > 0])])
    after_parts = []
    for t in res.tails:
        full = np.zeros(fld.shape, bool)
        t.mask.paste(full)
        after_parts.append((t.label, full[sl]))
    after = _panel(m.shape, m, h, after_parts)
    scale = max(1, 640 // size)
    big = [np.kron(p, np.ones((scale, scale, 1), np.uint8)) for p in (before, after)]
    gap = np.full((big[0].shape[0], 12, 3), 255, np.uint8)
    img = Image.fromarray(np.concatenate([big[0], gap, big[1]], axis=1))
    draw = ImageDraw.Draw(img)
    dx = big[0].shape[1] + 12
    for t in res.tails:
        c = (t.centreline - [r0, c0]) * scale + scale / 2
        inside = (
            (c[:, 0] >= 0) & (c[:, 0] < size * scale) & (c[:, 1] >= 0) & (c[:, 1] < size * scale)
        )
        if inside.sum() < 2:
            continue
        pts = [(float(x) + dx, float(y)) for y, x in c[inside]]
        draw.line(pts, fill=(0, 0, 0), width=max(1, scale // 2))
        if t.head is not None and inside[0]:
            y, x = c[0]
            rad = max(3, scale)
            draw.ellipse([x + dx - rad, y - rad, x + dx + rad, y + rad], fill=(255, 0, 0))
    draw.text((6, 4), "before: connected components", fill=(0, 0, 0))
    draw.text((dx + 6, 4), "after: Con2Dis tail instances", fill=(0, 0, 0))
    path = out_dir / f"{name}.png"
    img.save(path)
    return path


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/images")
    out_dir.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        print(render(*case, out_dir))


if __name__ == "__main__":
    main()
