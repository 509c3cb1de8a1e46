"""Render one picture per modality of the classic engine's result for docs/segmentation.md.

Each picture: left, a crop of a synthetic field (seed 0, never used in training); right, the same
crop with the segmentation drawn over it: every cell in its own colour (head filled, tail drawn),
unpaired tails in red, head boxes from the shipped detector in white.

Usage: .venv/bin/python scripts/render_segmentation_gallery.py [OUT_DIR]   (default docs/images)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from napari_sperm.detection import load_detector
from napari_sperm.segmentation.segment import segment
from napari_sperm.synthetic import make_field, modality_names

CROP = 512  # px of the field shown (its top-left corner), so the pair is at most 1024 px wide


def _grey(image: np.ndarray) -> np.ndarray:
    img = image.astype(float) if image.ndim == 2 else image.astype(float).mean(axis=-1)
    lo, hi = np.percentile(img, [0.5, 99.5])
    return (np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype(np.uint8)


def _hue(h: float) -> np.ndarray:
    """A bright RGB colour of hue ``h`` in [0, 1)."""
    import colorsys

    return (np.array(colorsys.hsv_to_rgb(h, 0.75, 1.0)) * 255).astype(int)


def render(modality: str, detector) -> Image.Image:
    fld = make_field(modality, seed=0)
    det = detector.detect(fld.image, 0.3)
    det = det[0] if isinstance(det, list) else det
    res = segment(fld.image, det)[0]
    grey = _grey(fld.image)
    base = np.stack([grey] * 3, axis=-1) if fld.image.ndim == 2 else fld.image.astype(np.uint8)
    over = (np.stack([grey] * 3, axis=-1) * 0.6).astype(np.uint8)
    rng = np.random.default_rng(3)
    for rec in res.sperm:
        # paired cells: hues from yellow through green and blue to violet; red is kept for unpaired
        hue = rng.uniform(0.15, 0.8)
        colour = np.array([255, 40, 40]) if rec.head is None else _hue(hue)
        if rec.tail is not None:
            over[rec.tail.to_full(res.shape)] = colour
        if rec.head is not None:
            m = rec.head.to_full(res.shape)
            over[m] = (0.5 * over[m] + 0.5 * colour).astype(np.uint8)
    h, w = res.shape
    size = min(CROP, h, w)
    pair = np.concatenate([base[:size, :size], over[:size, :size]], axis=1)
    img = Image.fromarray(pair)
    draw = ImageDraw.Draw(img)
    for (x, y, bw, bh), cls in zip(det.boxes, det.classes, strict=True):
        if cls == 2 and x < size and y < size:
            draw.rectangle([size + x, y, size + x + bw, y + bh], outline=(255, 255, 255))
    draw.text((6, 4), modality, fill=(255, 255, 0))
    return img


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/images")
    out.mkdir(parents=True, exist_ok=True)
    detector = load_detector(None, "cpu", refine_boxes=False)  # as napari-sperm segment
    for modality in modality_names():
        path = out / f"segmentation-{modality}.png"
        render(modality, detector).save(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
