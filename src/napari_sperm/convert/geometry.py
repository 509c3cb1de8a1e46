"""Rasterising drawn shapes into crop masks, and the distances used to pair parts into cells.

Coordinates are COCO's: ``(x, y)`` in pixels, pixel ``(row r, col c)`` covering ``[c, c + 1) x
[r, r + 1)``, so its centre is ``(c + 0.5, r + 0.5)``. A pixel belongs to a shape when its centre
does (polygons, boxes, discs) or lies within half the line width of it (lines). Every mask is a
:class:`~napari_sperm.synthetic.raster.CropMask` (a crop and its offset), clipped to the image, so
a large image with many shapes never holds more than one full-frame mask at a time.
"""

from __future__ import annotations

import numpy as np
from skimage.draw import polygon as draw_polygon

from ..synthetic.raster import CropMask

__all__ = [
    "box_mask",
    "disc_mask",
    "distance_to_mask",
    "far_ends",
    "mask_box",
    "mask_ends",
    "masks_touch",
    "polygon_mask",
    "polyline_mask",
    "union_masks",
]

Box = tuple[float, float, float, float]


def _from_indices(rr: np.ndarray, cc: np.ndarray) -> CropMask:
    """A crop mask holding the pixels ``(rr, cc)`` (empty when there are none)."""
    if rr.size == 0:
        return CropMask.empty()
    r0, c0 = int(rr.min()), int(cc.min())
    out = np.zeros((int(rr.max()) - r0 + 1, int(cc.max()) - c0 + 1), dtype=bool)
    out[rr - r0, cc - c0] = True
    return CropMask((r0, c0), out)


def _trim(offset: tuple[int, int], mask: np.ndarray) -> CropMask:
    """``mask`` placed at ``offset``, cut down to its set pixels."""
    crop = CropMask.from_full(mask)
    if crop.mask.size == 0:
        return crop
    return CropMask((offset[0] + crop.offset[0], offset[1] + crop.offset[1]), crop.mask)


def _window(
    x0: float, y0: float, x1: float, y1: float, shape: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """Rows ``r0:r1`` and columns ``c0:c1`` whose pixel centres may fall in ``[x0, x1] x [y0, y1]``,
    clipped to the image; None when nothing of it is inside."""
    h, w = shape
    c0, c1 = max(int(np.floor(x0 - 0.5)), 0), min(int(np.ceil(x1 - 0.5)) + 1, w)
    r0, r1 = max(int(np.floor(y0 - 0.5)), 0), min(int(np.ceil(y1 - 0.5)) + 1, h)
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1


def polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> CropMask:
    """Pixels whose centres lie inside a polygon.

    Parameters
    ----------
    points : (N, 2) array
        Vertices ``(x, y)``; the polygon closes itself.
    shape : (int, int)
        Image ``(height, width)``; the mask is clipped to it.

    Returns
    -------
    CropMask
        Empty when the polygon covers no pixel centre (too thin, or outside the image).
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) < 3:
        return CropMask.empty()
    rr, cc = draw_polygon(pts[:, 1] - 0.5, pts[:, 0] - 0.5, shape)
    return _from_indices(np.asarray(rr), np.asarray(cc))


def box_mask(box: Box, shape: tuple[int, int]) -> CropMask:
    """Pixels whose centres lie inside a box (at least the pixel holding its centre).

    Parameters
    ----------
    box : (x, y, w, h)
    shape : (int, int)
        Image ``(height, width)``.

    Returns
    -------
    CropMask
        Empty only when the box lies outside the image.
    """
    x, y, w, h = (float(v) for v in box)
    win = _window(x, y, x + w, y + h, shape)
    if win is None:
        return CropMask.empty()
    r0, r1, c0, c1 = win
    cols = np.arange(c0, c1) + 0.5
    rows = np.arange(r0, r1) + 0.5
    inside = ((rows >= y) & (rows <= y + h))[:, None] & ((cols >= x) & (cols <= x + w))[None, :]
    if not inside.any():
        cx, cy = int(np.floor(x + w / 2)), int(np.floor(y + h / 2))
        if 0 <= cy < shape[0] and 0 <= cx < shape[1]:
            return CropMask((cy, cx), np.ones((1, 1), dtype=bool))
        return CropMask.empty()
    return _trim((r0, c0), inside)


def disc_mask(cx: float, cy: float, radius: float, shape: tuple[int, int]) -> CropMask:
    """Pixels whose centres lie within ``radius`` of ``(cx, cy)`` (at least the pixel holding it).

    Parameters
    ----------
    cx, cy : float
        Centre.
    radius : float
    shape : (int, int)
        Image ``(height, width)``.

    Returns
    -------
    CropMask
    """
    r = max(float(radius), 0.5)
    return polyline_mask(np.array([[cx, cy]]), 2 * r, shape)


def polyline_mask(
    points: np.ndarray, width: float, shape: tuple[int, int], closed: bool = False
) -> CropMask:
    """Pixels whose centres lie within ``width / 2`` of a polyline (a disc for a single point).

    Parameters
    ----------
    points : (N, 2) array
        Vertices ``(x, y)`` in drawing order.
    width : float
        Line width in pixels (at least 1 is used).
    shape : (int, int)
        Image ``(height, width)``.
    closed : bool
        Also join the last point to the first (a polygon's outline).

    Returns
    -------
    CropMask
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) == 0:
        return CropMask.empty()
    half = max(float(width), 1.0) / 2
    if closed and len(pts) > 2:
        pts = np.vstack([pts, pts[:1]])
    segments = [(pts[0], pts[0])] if len(pts) == 1 else list(zip(pts[:-1], pts[1:]))
    lo, hi = pts.min(axis=0) - half, pts.max(axis=0) + half
    win = _window(lo[0], lo[1], hi[0], hi[1], shape)
    if win is None:
        return CropMask.empty()
    r0, r1, c0, c1 = win
    out = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    for a, b in segments:
        lo, hi = np.minimum(a, b) - half, np.maximum(a, b) + half
        seg_win = _window(lo[0], lo[1], hi[0], hi[1], shape)
        if seg_win is None:
            continue
        sr0, sr1, sc0, sc1 = seg_win
        ys = (np.arange(sr0, sr1) + 0.5)[:, None]
        xs = (np.arange(sc0, sc1) + 0.5)[None, :]
        d = b - a
        length2 = float(d @ d)
        if length2 > 0:
            t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / length2, 0.0, 1.0)
        else:
            t = np.zeros((1, 1))
        dist2 = (xs - a[0] - t * d[0]) ** 2 + (ys - a[1] - t * d[1]) ** 2
        out[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] |= dist2 <= half * half
    if not out.any():
        # A line thinner than the pixel grid: keep the pixel under each vertex.
        inside = (
            (pts[:, 0] >= 0) & (pts[:, 0] < shape[1]) & (pts[:, 1] >= 0) & (pts[:, 1] < shape[0])
        )
        p = np.floor(pts[inside]).astype(int)
        return _from_indices(p[:, 1], p[:, 0])
    return _trim((r0, c0), out)


def union_masks(masks: list[CropMask]) -> CropMask:
    """The union of crop masks (empty ones skipped).

    Parameters
    ----------
    masks : list of CropMask

    Returns
    -------
    CropMask
    """
    parts = [m for m in masks if m.mask.size and m.mask.any()]
    if not parts:
        return CropMask.empty()
    if len(parts) == 1:
        return parts[0]
    r0 = min(p.offset[0] for p in parts)
    c0 = min(p.offset[1] for p in parts)
    r1 = max(p.offset[0] + p.mask.shape[0] for p in parts)
    c1 = max(p.offset[1] + p.mask.shape[1] for p in parts)
    out = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    for p in parts:
        pr, pc = p.offset[0] - r0, p.offset[1] - c0
        out[pr : pr + p.mask.shape[0], pc : pc + p.mask.shape[1]] |= p.mask
    return CropMask((r0, c0), out)


def _pixel_centres(m: CropMask) -> np.ndarray:
    """``(N, 2)`` float array of the ``(x, y)`` centres of a mask's pixels."""
    rr, cc = np.nonzero(m.mask)
    return np.column_stack([cc + m.offset[1] + 0.5, rr + m.offset[0] + 0.5]).astype(float)


def distance_to_mask(point: np.ndarray, m: CropMask) -> float:
    """Distance from a point ``(x, y)`` to the nearest pixel centre of a mask (inf when empty).

    Parameters
    ----------
    point : (2,) array
    m : CropMask

    Returns
    -------
    float
    """
    pts = _pixel_centres(m)
    if len(pts) == 0:
        return float("inf")
    d = pts - np.asarray(point, dtype=float)[None, :]
    return float(np.sqrt((d * d).sum(axis=1).min()))


def masks_touch(a: CropMask, b: CropMask) -> bool:
    """True when two masks share a pixel or have pixels side by side (8-neighbours).

    Parameters
    ----------
    a, b : CropMask

    Returns
    -------
    bool
    """
    if not (a.mask.size and b.mask.size):
        return False
    (ar, ac), (br, bc) = a.offset, b.offset
    if (
        ar > br + b.mask.shape[0]
        or br > ar + a.mask.shape[0]
        or ac > bc + b.mask.shape[1]
        or bc > ac + a.mask.shape[1]
    ):
        return False
    # Grow a by one pixel on every side, then look for overlap in the shared window.
    grown = np.zeros((a.mask.shape[0] + 2, a.mask.shape[1] + 2), dtype=bool)
    for dr in range(3):
        for dc in range(3):
            grown[dr : dr + a.mask.shape[0], dc : dc + a.mask.shape[1]] |= a.mask
    gr, gc = ar - 1, ac - 1
    r0, r1 = max(gr, br), min(gr + grown.shape[0], br + b.mask.shape[0])
    c0, c1 = max(gc, bc), min(gc + grown.shape[1], bc + b.mask.shape[1])
    if r0 >= r1 or c0 >= c1:
        return False
    return bool(
        (
            grown[r0 - gr : r1 - gr, c0 - gc : c1 - gc]
            & b.mask[r0 - br : r1 - br, c0 - bc : c1 - bc]
        ).any()
    )


def far_ends(points: np.ndarray) -> np.ndarray:
    """The two ends of an elongated shape: two of its points that lie (about) farthest apart.

    The point farthest from the centroid is one end, the point farthest from it the other (exact
    for convex elongated shapes, close for bent ones).

    Parameters
    ----------
    points : (N, 2) array
        ``(x, y)`` points of the shape: its vertices or pixel centres.

    Returns
    -------
    (2, 2) array
        The two ends; a single point twice when ``N == 1``.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    first = pts[np.argmax(((pts - pts.mean(axis=0)) ** 2).sum(axis=1))]
    second = pts[np.argmax(((pts - first) ** 2).sum(axis=1))]
    return np.array([first, second])


def mask_ends(m: CropMask) -> np.ndarray:
    """:func:`far_ends` of a mask's pixel centres (``(2, 2)`` array; NaN when empty)."""
    pts = _pixel_centres(m)
    if len(pts) == 0:
        return np.full((2, 2), np.nan)
    return far_ends(pts)


def mask_box(m: CropMask) -> Box | None:
    """Tight box ``(x, y, w, h)`` of a mask, or None when it is empty."""
    bb = m.bbox()
    return None if bb is None else tuple(float(v) for v in bb)
