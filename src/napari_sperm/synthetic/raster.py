"""Rasterise heads, flagella and debris into small crops.

Every object is drawn into a crop around itself, never into a full frame, so a field with 500 cells
stays cheap. A drawn object is a :class:`Crop`: a soft *coverage* (0..1, anti-aliased edge) and the
binary ground-truth mask taken from the same geometry (coverage >= 0.5, plus the 1-px centreline for
flagella so thin tails stay connected). What the image shows and what the ground truth says therefore
agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .geometry import Pose, SpermShape, centreline, head_axis

__all__ = [
    "CropMask",
    "Crop",
    "union_full",
    "draw_head",
    "draw_tail",
    "draw_disc_blob",
    "draw_polygon_blob",
]


@dataclass
class CropMask:
    """A binary mask stored as a crop and its position in the frame.

    Attributes
    ----------
    offset : (int, int)
        ``(row, col)`` of the crop's top-left pixel in the frame.
    mask : (h, w) bool array
    """

    offset: tuple[int, int]
    mask: np.ndarray

    @property
    def area(self) -> int:
        """Number of pixels in the mask."""
        return int(self.mask.sum())

    def bbox(self) -> tuple[int, int, int, int] | None:
        """Tight box ``(x, y, width, height)`` in pixels, COCO convention; ``None`` when empty."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(self.mask.any(axis=0))
        r0, c0 = self.offset
        return (
            c0 + int(cols[0]),
            r0 + int(rows[0]),
            int(cols[-1] - cols[0] + 1),
            int(rows[-1] - rows[0] + 1),
        )

    def to_full(self, shape: tuple[int, int]) -> np.ndarray:
        """The mask pasted into an all-False frame of ``shape`` (rows, cols)."""
        out = np.zeros(shape, dtype=bool)
        self.paste(out)
        return out

    def paste(self, frame: np.ndarray, value=True) -> None:
        """Write ``value`` into ``frame`` wherever the mask is set."""
        r0, c0 = self.offset
        h, w = self.mask.shape
        frame[r0 : r0 + h, c0 : c0 + w][self.mask] = value

    @classmethod
    def from_full(cls, mask: np.ndarray) -> CropMask:
        """The tight crop of a full-frame boolean mask (empty when nothing is set)."""
        mask = np.asarray(mask, bool)
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return cls.empty()
        cols = np.flatnonzero(mask.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        return cls((r0, c0), mask[r0:r1, c0:c1].copy())

    @classmethod
    def empty(cls) -> CropMask:
        return cls((0, 0), np.zeros((0, 0), dtype=bool))


def union_full(parts, shape: tuple[int, int]) -> np.ndarray:
    """The union of crop masks (``None`` entries skipped) as one full-frame boolean mask."""
    out = np.zeros(shape, dtype=bool)
    for part in parts:
        if part is not None:
            part.paste(out)
    return out


@dataclass
class Crop:
    """Soft coverage of one drawn object inside the frame, plus its ground-truth mask."""

    offset: tuple[int, int]
    coverage: np.ndarray
    mask: np.ndarray

    def as_mask(self) -> CropMask:
        return CropMask(self.offset, self.mask)

    def add_to(self, frame: np.ndarray, weight=1.0, values: np.ndarray | None = None) -> None:
        """Add ``weight * coverage`` (or ``weight * values``) into ``frame`` (2-D, or 3-D channel-last)."""
        r0, c0 = self.offset
        h, w = self.coverage.shape
        src = self.coverage if values is None else values
        target = frame[r0 : r0 + h, c0 : c0 + w]
        if frame.ndim == 3:
            target += src[..., None] * np.asarray(weight, dtype=frame.dtype)
        else:
            target += src * weight


def _window(
    lo_r: float, hi_r: float, lo_c: float, hi_c: float, shape: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """Integer window [r0, r1) x [c0, c1) covering the bounds, clipped to the frame; None if outside."""
    r0 = max(int(np.floor(lo_r)), 0)
    c0 = max(int(np.floor(lo_c)), 0)
    r1 = min(int(np.ceil(hi_r)) + 1, shape[0])
    c1 = min(int(np.ceil(hi_c)) + 1, shape[1])
    if r0 >= r1 or c0 >= c1:
        return None
    return r0, r1, c0, c1


def _empty_crop() -> Crop:
    z = np.zeros((0, 0), dtype=np.float32)
    return Crop((0, 0), z, z.astype(bool))


def draw_head(
    shape: SpermShape, pose: Pose, frame_shape: tuple[int, int]
) -> tuple[Crop, np.ndarray]:
    """Draw the head.

    Returns
    -------
    crop : Crop
        Coverage and mask of the head, clipped to the frame.
    axial : float array like ``crop.coverage``
        Position along the head axis, -1 at the rear (tail end) to +1 at the tip; used to shade the
        acrosome (front) lighter than the nucleus (back).
    """
    a = 0.5 * shape.head_length
    b = 0.5 * shape.head_width
    reach = a + 2.0
    win = _window(pose.y - reach, pose.y + reach, pose.x - reach, pose.x + reach, frame_shape)
    if win is None:
        return _empty_crop(), np.zeros((0, 0), np.float32)
    r0, r1, c0, c1 = win
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    th = head_axis(shape, pose)
    dx, dy = xx - pose.x, yy - pose.y
    u = dx * np.cos(th) + dy * np.sin(th)
    v = -dx * np.sin(th) + dy * np.cos(th)
    un = u / a
    # Pear: width grows towards the front (un > 0), narrows towards the tail.
    bw = b * np.clip(1.0 + shape.pear * un, 0.3, None) / (1.0 + 0.5 * shape.pear)
    f = un**2 + (v / bw) ** 2
    sf = np.sqrt(f)
    grad = np.sqrt((u / a**2) ** 2 + (v / bw**2) ** 2) / np.maximum(sf, 1e-6)
    signed = (1.0 - sf) / np.maximum(grad, 1e-6)  # approx. distance inside the outline, px
    cov = np.clip(signed + 0.5, 0.0, 1.0).astype(np.float32)
    return Crop((r0, c0), cov, cov >= 0.5), np.clip(un, -1, 1).astype(np.float32)


def draw_tail(
    shape: SpermShape, pose: Pose, frame_shape: tuple[int, int]
) -> tuple[Crop, np.ndarray, np.ndarray]:
    """Draw the flagellum.

    Returns
    -------
    crop : Crop
        Coverage and mask of the flagellum inside the frame.
    midpiece : float array like ``crop.coverage``
        1 where the nearest centreline point is on the midpiece, else 0.
    points : (N, 2) float array
        The full centreline ``(x, y)`` (it may leave the frame).
    """
    pts, widths = centreline(shape, pose)
    margin = float(widths.max()) + 3.0
    win = _window(
        pts[:, 1].min() - margin,
        pts[:, 1].max() + margin,
        pts[:, 0].min() - margin,
        pts[:, 0].max() + margin,
        frame_shape,
    )
    if win is None:
        return _empty_crop(), np.zeros((0, 0), np.float32), pts
    r0, r1, c0, c1 = win
    # Crop in which distances are computed: the frame window grown by the margin, so pixels near the
    # frame border still find their nearest centreline point.
    m = int(np.ceil(margin))
    R0, C0 = r0 - m, c0 - m
    H, W = (r1 - r0) + 2 * m, (c1 - c0) + 2 * m
    ri = np.floor(pts[:, 1] + 0.5).astype(np.int64) - R0
    ci = np.floor(pts[:, 0] + 0.5).astype(np.int64) - C0
    inside = (ri >= 0) & (ri < H) & (ci >= 0) & (ci < W)
    if not inside.any():
        return _empty_crop(), np.zeros((0, 0), np.float32), pts
    sample_index = np.full((H, W), -1, dtype=np.int64)
    idx = np.flatnonzero(inside)
    sample_index[ri[idx], ci[idx]] = idx  # later samples win; they are within 0.5 px anyway
    line = sample_index >= 0
    _, (nr, nc) = ndi.distance_transform_edt(~line, return_indices=True)
    sl = (slice(m, m + r1 - r0), slice(m, m + c1 - c0))
    near = sample_index[nr[sl], nc[sl]]
    yy, xx = np.mgrid[r0:r1, c0:c1]
    d = np.hypot(xx - pts[near, 0], yy - pts[near, 1])
    half = 0.5 * widths[near]
    cov = np.clip(half + 0.5 - d, 0.0, 1.0).astype(np.float32)
    mask = (d <= half) | line[sl]
    cov = np.maximum(cov, np.where(line[sl], 0.5, 0.0).astype(np.float32))
    s = near * (shape.tail_length / max(len(pts) - 1, 1))  # arc length of the nearest sample
    midpiece = (s <= shape.midpiece_length).astype(np.float32)
    return Crop((r0, c0), cov, mask), midpiece, pts


def draw_disc_blob(
    cx: float, cy: float, radii: np.ndarray, frame_shape: tuple[int, int], phase0: float = 0.0
) -> Crop:
    """Draw a roundish blob whose radius varies with angle (``radii`` sampled evenly over 360 deg)."""
    rmax = float(np.max(radii)) + 2.0
    win = _window(cy - rmax, cy + rmax, cx - rmax, cx + rmax, frame_shape)
    if win is None:
        return _empty_crop()
    r0, r1, c0, c1 = win
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    ang = (np.arctan2(yy - cy, xx - cx) + phase0) % (2 * np.pi)
    k = len(radii)
    pos = ang / (2 * np.pi) * k
    i0 = np.floor(pos).astype(int) % k
    frac = pos - np.floor(pos)
    r_at = radii[i0] * (1 - frac) + radii[(i0 + 1) % k] * frac
    dist = np.hypot(xx - cx, yy - cy)
    cov = np.clip(r_at - dist + 0.5, 0.0, 1.0).astype(np.float32)
    return Crop((r0, c0), cov, cov >= 0.5)


def draw_polygon_blob(
    cx: float, cy: float, radius: float, rng: np.random.Generator, frame_shape
) -> Crop:
    """An irregular blob of about ``radius`` px (stain debris, round cells, droplets)."""
    k = 24
    noise = ndi.gaussian_filter1d(rng.normal(0.0, 1.0, k), 2.0, mode="wrap")
    noise /= max(np.abs(noise).max(), 1e-6)
    radii = radius * (1.0 + 0.25 * noise)
    return draw_disc_blob(cx, cy, np.maximum(radii, 0.8), frame_shape)
