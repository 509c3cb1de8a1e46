"""Classic (no neural network) head and tail masks on small seeded synthetic fields."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sperm.io.errors import SpermInputError
from napari_sperm.segmentation import (
    HeadMaskParams,
    TailMaskParams,
    head_labels,
    head_masks,
    tail_mask,
)
from napari_sperm.synthetic import CropMask, make_field

# Floors well below what the benchmark reaches (benchmarks/classic_masks.py), per modality:
# (head IoU median, tail precision within 1.5 px, median per-sperm tail coverage within 1.5 px).
FLOORS = {
    "stained": (0.88, 0.75, 0.85),
    "phase-high": (0.88, 0.80, 0.85),
    "brightfield": (0.88, 0.65, 0.85),
    "phase-low": (0.85, 0.75, 0.70),
}
N_SPERM = {"stained": 5, "phase-high": 12, "brightfield": 10, "phase-low": 60}


def _iou(a: CropMask, b: CropMask, shape) -> float:
    fa, fb = a.to_full(shape), b.to_full(shape)
    union = (fa | fb).sum()
    return float((fa & fb).sum() / union) if union else 0.0


def _masks(fld):
    cells = [t for t in fld.sperm if t.head.area > 0]
    boxes = np.array([t.head_box() for t in cells], float)
    masks = head_masks(fld.image, boxes)
    labels = head_labels(fld.shape, masks, [t.sperm_id for t in cells])
    pred = tail_mask(fld.image, labels, head_length=float(np.median(boxes[:, 2:].max(axis=1))))
    return cells, masks, pred


def _dilate(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.distance_transform_edt(~mask) <= 1.5


@pytest.mark.parametrize("modality", list(FLOORS))
def test_accuracy_floors(modality):
    fld = make_field(modality, seed=11, n_sperm=N_SPERM[modality])
    cells, masks, pred = _masks(fld)
    head_floor, precision_floor, coverage_floor = FLOORS[modality]
    assert len(masks) == len(cells)
    assert np.median([_iou(m, t.head, fld.shape) for m, t in zip(masks, cells)]) >= head_floor

    truth = np.zeros(fld.shape, bool)
    for t in fld.sperm:
        t.tail.paste(truth)
    assert pred.dtype == bool and pred.shape == fld.shape
    assert (pred & _dilate(truth)).sum() / max(pred.sum(), 1) >= precision_floor
    near = _dilate(pred)
    cover = [near[t.tail.to_full(fld.shape)].mean() for t in fld.sperm if t.tail.area > 0]
    assert np.median(cover) >= coverage_floor
    heads = head_labels(fld.shape, masks) > 0
    assert not (pred & heads).any()  # head pixels are never tail


def test_dtypes_and_polarity():
    fld = make_field("phase-high", seed=5, n_sperm=8)
    base = tail_mask(fld.image, head_length=38.0)
    assert base.sum() > 500
    as_u16 = tail_mask(fld.image.astype(np.uint16) * 257, head_length=38.0)
    as_float = fld.image.astype(np.float32) / 255.0
    as_float[0, 0] = np.nan
    for other in (as_u16, tail_mask(as_float, head_length=38.0)):
        assert (other & base).sum() >= 0.9 * base.sum()
    # Bright tails on a dark background: automatic polarity finds the same lines.
    inverted = tail_mask(255 - fld.image, head_length=38.0)
    assert (inverted & base).sum() >= 0.8 * base.sum()
    dark_only = tail_mask(255 - fld.image, head_length=38.0, params=TailMaskParams(polarity="dark"))
    assert (dark_only & base).sum() < 0.5 * base.sum()


def test_rgb_and_defaults():
    fld = make_field("stained", seed=2, n_sperm=4)
    assert fld.image.ndim == 3
    pred = tail_mask(fld.image)  # no heads, no head length: documented defaults
    assert pred.shape == fld.shape and pred.any()
    rgba = np.concatenate([fld.image, np.full((*fld.shape, 1), 255, np.uint8)], axis=-1)
    assert np.array_equal(tail_mask(rgba), pred)


def test_empty_and_constant():
    img = np.full((64, 80), 100, np.uint8)
    assert not tail_mask(img).any()
    assert head_masks(img, np.zeros((0, 4))) == []
    masks = head_masks(img, np.array([[10, 10, 8, 6]], float))
    assert masks[0].area == 0
    labels = head_labels(img.shape, masks)
    assert labels.dtype == np.int32 and not labels.any()


def test_head_labels_ids_and_clipping():
    a = CropMask((2, 3), np.ones((4, 4), bool))
    b = CropMask((60, 70), np.ones((10, 10), bool))  # runs off the frame
    out = head_labels((64, 80), [a, b], [7, 9])
    assert out[2, 3] == 7 and out[63, 79] == 9 and out.dtype == np.int32
    with pytest.raises(ValueError):
        head_labels((64, 80), [a], [1, 2])


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 32, 32), np.uint8),
        np.zeros((2, 3, 32, 32), np.uint8),
        np.zeros((0, 10), np.uint8),
        np.full((20, 20), np.nan, np.float32),
        np.array([["a"] * 5] * 5),
    ],
)
def test_bad_images_raise(image):
    with pytest.raises(SpermInputError):
        tail_mask(image)
    with pytest.raises(SpermInputError):
        head_masks(image, np.array([[1, 1, 3, 3]], float))


def test_bad_arguments_raise():
    img = np.zeros((32, 32), np.uint8)
    with pytest.raises(SpermInputError):
        tail_mask(img, heads=np.zeros((16, 16), np.int32))
    with pytest.raises(SpermInputError):
        tail_mask(img, head_length=-3)
    with pytest.raises(SpermInputError):
        head_masks(img, np.zeros((2, 3)))
    with pytest.raises(ValueError):
        TailMaskParams(polarity="sideways")
    with pytest.raises(ValueError):
        HeadMaskParams(level_fraction=1.5)


def _ellipse(shape, cy, cx, ry, rx):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def test_head_cut_by_a_light_band_is_put_back_together():
    img = np.full((80, 100), 200.0)
    head = _ellipse(img.shape, 40, 50, 12, 18)
    img[head] = 60.0
    img[:, 44:47] = 200.0  # a light band across the head, left of its centre
    neighbour = _ellipse(img.shape, 40, 85, 12, 15)  # the next head, reaching into the box
    img[neighbour] = 60.0
    box = np.array([[32, 28, 36, 24]], float)  # [x, y, w, h] of the head
    truth = CropMask((0, 0), head)

    whole = head_masks(img, box)[0]
    assert _iou(whole, truth, img.shape) >= 0.85
    assert not whole.to_full(img.shape)[neighbour & ~head].any()

    centre_only = head_masks(img, box, params=HeadMaskParams(join_inside_fraction=2.0))[0]
    assert _iou(centre_only, truth, img.shape) < 0.65
    with pytest.raises(ValueError, match="join_inside_fraction"):
        HeadMaskParams(join_inside_fraction=0.0)


def test_phase_high_heads_are_rarely_cut():
    ious = []
    for seed in (0, 1, 2):
        fld = make_field("phase-high", seed=seed)
        cells = [t for t in fld.sperm if t.head.area > 0]
        masks = head_masks(fld.image, np.array([t.head_box() for t in cells], float))
        ious += [_iou(m, t.head, fld.shape) for m, t in zip(masks, cells)]
    # Overlapping phase-contrast heads used to lose half their outline (13 % below 0.5).
    assert np.mean(np.asarray(ious) < 0.5) <= 0.06
