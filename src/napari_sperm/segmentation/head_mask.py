"""Head masks inside detected head boxes, by a local contrast threshold, no neural network.

For each box (:func:`head_masks`): the background level is the median of a ring around the box, the
head level a high percentile of the contrast inside the box's inner ellipse, and the head is every
pixel past ``level_fraction`` of the way from background to head, in the slightly enlarged box,
after a light smoothing scaled to the box. The piece at the box centre is kept, holes filled, and
thin attachments (the tail's midpiece) are opened away. A head the threshold cuts in two (a lighter
band across a phase-contrast head, or the edge of a head lying over it) is put back together: every
other piece lying mostly inside the ellipse inscribed in the box joins the centre piece, and the
head is the convex hull of the pieces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from ..io.errors import SpermInputError
from ..synthetic.raster import CropMask
from .params import HeadMaskParams
from .tail_mask import as_grey

__all__ = ["head_labels", "head_mask", "head_masks", "head_outline_box"]


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius + 0.5


def _open_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary opening by a disk of ``radius`` (pixels outside the array count as background).

    The same result as ``ndi.binary_opening(mask, structure=_disk(radius))``. From radius 5 on it
    is computed by two Euclidean distance transforms, whose cost does not grow with the radius
    (about 0.2 ms on a 60x50 crop, where the structuring element takes 0.6 ms at radius 6 and
    1.1 ms at radius 8).
    """
    if radius < 5:
        return ndi.binary_opening(mask, structure=_disk(radius))
    limit = radius * radius + 0.5  # _disk's rule on squared integer distances
    dist = ndi.distance_transform_edt(np.pad(mask, 1))
    eroded = dist * dist > limit
    if not eroded.any():
        return np.zeros_like(mask)
    dist = ndi.distance_transform_edt(~eroded)
    return (dist * dist <= limit)[1:-1, 1:-1]


def _window(x0: float, y0: float, x1: float, y1: float, shape) -> tuple[int, int, int, int]:
    """Integer ``[r0, r1) x [c0, c1)`` covering the float box, clipped to the frame."""
    r0 = max(int(np.floor(y0)), 0)
    c0 = max(int(np.floor(x0)), 0)
    r1 = min(int(np.ceil(y1)), shape[0])
    c1 = min(int(np.ceil(x1)), shape[1])
    return r0, max(r1, r0), c0, max(c1, c0)


def _contrast_crop(
    grey: np.ndarray, box: np.ndarray, p: HeadMaskParams
) -> tuple[np.ndarray, tuple[int, int], np.ndarray, np.ndarray, np.ndarray] | None:
    """Smoothed, background-subtracted crop around one box (head positive).

    Returns ``(contrast, offset, inner, inside, ellipse)``: contrast of the crop, its (row, col)
    offset, and as bool arrays of the crop the inner-ellipse pixels, the enlarged-box pixels and the
    pixels of the ellipse inscribed in the box; None when the box misses the frame.
    """
    x, y, w, h = (float(v) for v in box)
    ring = p.ring_ratio * max(w, h)
    r0, r1, c0, c1 = _window(x - ring, y - ring, x + w + ring, y + h + ring, grey.shape)
    if r1 - r0 < 2 or c1 - c0 < 2:
        return None
    sigma = float(np.clip(p.smooth_ratio * min(w, h), p.min_smooth_px, p.max_smooth_px))
    crop = ndi.gaussian_filter(grey[r0:r1, c0:c1], sigma, mode="nearest")
    # pixel centres in the box's continuous coordinates, as a column and a row (broadcast)
    yy = (np.arange(r0, r1, dtype=np.float32) + np.float32(0.5))[:, None]
    xx = (np.arange(c0, c1, dtype=np.float32) + np.float32(0.5))[None, :]
    cx, cy = x + 0.5 * w, y + 0.5 * h
    inner = ((xx - cx) / (0.35 * w + 0.5)) ** 2 + ((yy - cy) / (0.35 * h + 0.5)) ** 2 <= 1.0
    ellipse = ((xx - cx) / (0.5 * w + 0.5)) ** 2 + ((yy - cy) / (0.5 * h + 0.5)) ** 2 <= 1.0
    mx, my = p.margin_ratio * w, p.margin_ratio * h
    inside = (xx >= x - mx) & (xx <= x + w + mx) & (yy >= y - my) & (yy <= y + h + my)
    outside = ~inside
    if not inner.any() or not outside.any():
        bg = float(np.percentile(crop, 75))
    else:
        bg = float(np.median(crop[outside]))
    contrast = bg - crop
    if p.polarity == "bright" or (
        p.polarity == "auto" and inner.any() and np.median(contrast[inner]) < 0
    ):
        contrast = -contrast
    return contrast, (r0, c0), inner, inside, ellipse


def _head_pieces(
    candidates: np.ndarray,
    inner: np.ndarray,
    ellipse: np.ndarray,
    inside_fraction: float,
    hull: bool = True,
) -> np.ndarray:
    """The head's pixels among the thresholded candidates (empty if none).

    The centre piece is the connected piece with most pixels in the inner ellipse. Every other piece
    with at least ``inside_fraction`` of its pixels in the box's ellipse belongs to the same head
    (cut off by a lighter band or by another head's edge); when there are such pieces the result is
    the convex hull of them all, since a head is a convex blob (``hull`` False: their union).
    """
    labels, n = ndi.label(candidates)
    if n == 0:
        return candidates
    hits = np.bincount(labels[inner & candidates], minlength=n + 1)
    hits[0] = 0
    if hits.max() == 0:
        return np.zeros_like(candidates)
    keep = np.zeros(n + 1, bool)
    keep[int(np.argmax(hits))] = True
    if inside_fraction <= 1:
        size = np.bincount(labels.ravel(), minlength=n + 1)
        in_ellipse = np.bincount(labels[ellipse], minlength=n + 1)
        keep |= in_ellipse >= inside_fraction * size
    keep[0] = False
    piece = keep[labels]
    if hull and np.count_nonzero(keep) > 1:
        piece = convex_hull_image(piece)
    return piece


def _outline(
    grey: np.ndarray, box, p: HeadMaskParams, fill: bool
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The head's pixels in a crop around one box and the crop's (row, col) offset; None if none.

    ``fill`` False skips filling holes and the convex hull of several pieces: neither changes the
    outline's bounding box.
    """
    box = np.asarray(box, dtype=np.float64)
    if box[2] <= 0 or box[3] <= 0 or not np.isfinite(box).all():
        return None
    found = _contrast_crop(grey, box, p)
    if found is None:
        return None
    contrast, offset, inner, inside, ellipse = found
    level = float(np.percentile(contrast[inner], p.head_percentile)) if inner.any() else 0.0
    if level <= 0:
        return None
    cand = contrast >= p.level_fraction * level
    if p.clip_to_box:
        cand &= inside
    radius = int(round(p.open_ratio * min(box[2], box[3])))
    if radius >= 1:
        opened = _open_disk(cand, radius)
        if (opened & inner).any():
            cand = opened
    piece = _head_pieces(cand, inner, ellipse, p.join_inside_fraction, hull=fill)
    if fill:
        piece = ndi.binary_fill_holes(piece)
    if not piece.any():
        return None
    return piece, offset


def _extent(piece: np.ndarray) -> tuple[int, int, int, int]:
    """``(r0, r1, c0, c1)``: the half-open rows and columns holding a non-empty mask's pixels."""
    rows = np.flatnonzero(piece.any(axis=1))
    cols = np.flatnonzero(piece.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def head_mask(grey: np.ndarray, box, params: HeadMaskParams | None = None) -> CropMask:
    """Mask of the head in one box of a grey frame from :func:`~.tail_mask.as_grey`.

    Parameters
    ----------
    grey : (H, W) float array
        Frame as one grey channel.
    box : sequence of 4 floats
        ``[x, y, w, h]`` COCO pixel box of the head.
    params : HeadMaskParams, optional

    Returns
    -------
    CropMask
        Offset ``(row, col)`` and the local bool mask; empty when nothing stands out.
    """
    found = _outline(grey, box, params or HeadMaskParams(), fill=True)
    if found is None:
        return CropMask.empty()
    piece, offset = found
    r0, r1, c0, c1 = _extent(piece)
    return CropMask((offset[0] + r0, offset[1] + c0), piece[r0:r1, c0:c1].copy())


def head_outline_box(
    grey: np.ndarray, box, params: HeadMaskParams | None = None
) -> np.ndarray | None:
    """Bounding box of the head outline :func:`head_mask` would give, found a little faster.

    Parameters
    ----------
    grey : (H, W) float array
        Frame as one grey channel (:func:`~.tail_mask.as_grey`).
    box : sequence of 4 floats
        ``[x, y, w, h]`` COCO pixel box of the head, e.g. from the detector.
    params : HeadMaskParams, optional

    Returns
    -------
    (4,) float array or None
        ``[x, y, w, h]`` of the outline's pixels (COCO convention: pixel edges), None when nothing
        stands out.
    """
    found = _outline(grey, box, params or HeadMaskParams(), fill=False)
    if found is None:
        return None
    piece, (dr, dc) = found
    r0, r1, c0, c1 = _extent(piece)
    return np.array([dc + c0, dr + r0, c1 - c0, r1 - r0], float)


def head_masks(
    image: np.ndarray, boxes: np.ndarray, *, params: HeadMaskParams | None = None
) -> list[CropMask]:
    """Head masks, one per head box.

    Parameters
    ----------
    image : array
        ``(H, W)`` grey or ``(H, W, 3)`` RGB frame, any real dtype.
    boxes : (n, 4) float array
        Head boxes ``[x, y, w, h]`` in pixels (COCO convention), e.g. from the detector.
    params : HeadMaskParams, optional
        Threshold settings; defaults as documented there.

    Returns
    -------
    list of CropMask
        ``n`` masks in box order; a box where no head stands out gets an empty mask.

    Raises
    ------
    SpermInputError
        For a bad frame (see :func:`~.tail_mask.as_grey`) or boxes that are not ``(n, 4)``.
    """
    grey = as_grey(image)
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return []
    if b.ndim != 2 or b.shape[1] != 4:
        raise SpermInputError(
            f"Head boxes have shape {b.shape}: give an (n, 4) array of [x, y, width, height]."
        )
    return [head_mask(grey, row, params) for row in b]


def head_labels(
    shape: tuple[int, int], masks: Sequence[CropMask], ids: Sequence[int] | None = None
) -> np.ndarray:
    """Paint head masks into one label image.

    Parameters
    ----------
    shape : (int, int)
        Frame size ``(rows, cols)``.
    masks : sequence of CropMask
        Masks as returned by :func:`head_masks`.
    ids : sequence of int, optional
        Label of each mask (default 1..n). Where masks overlap the later one wins.

    Returns
    -------
    (rows, cols) int32 array
        0 for background.
    """
    out = np.zeros(tuple(int(v) for v in shape[:2]), np.int32)
    if ids is None:
        ids = range(1, len(masks) + 1)
    ids = list(ids)
    if len(ids) != len(masks):
        raise ValueError(f"got {len(masks)} masks but {len(ids)} ids")
    for label, cm in zip(ids, masks):
        if cm.mask.size == 0:
            continue
        r0, c0 = cm.offset
        h, w = cm.mask.shape
        # Clip to the frame so masks from another frame size never raise.
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + h, out.shape[0]), min(c0 + w, out.shape[1])
        if rr0 >= rr1 or cc0 >= cc1:
            continue
        sub = cm.mask[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0]
        out[rr0:rr1, cc0:cc1][sub] = int(label)
    return out
