"""Flagellum (tail) pixels of a whole frame by a multi-scale ridge filter, no neural network.

Steps (:func:`tail_mask`):

1. The frame becomes one grey float channel (:func:`as_grey`), robustly scaled, and is flipped when
   tails are brighter than the background so a tail is always a dark line.
2. A bank of oriented, elongated second-derivative filters (FFT, 1-3 scales set from the tail
   width, itself a fraction of the head length) gives a ridge strength in units of its noise.
3. Candidate pixels must be darker than the background on *both* sides of their line (the rim of a
   dark blob is dark on its inner side), then hysteresis thresholding; each line is trimmed to
   where its strength is a fair fraction of the strongest strength across it (the visible width).
4. Heads (grown by a tail width) are removed, then pieces that are short (in head lengths) or thick
   (area over centreline length, in tail widths) are dropped as debris.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage as ndi
from skimage.filters import apply_hysteresis_threshold

from ..detection.normalize import grey_of_normalized, normalize_frame
from ..io.errors import SpermInputError
from .params import TailMaskParams

__all__ = [
    "as_grey",
    "check_frame",
    "estimate_head_length",
    "resolve_heads",
    "ridge_strength",
    "tail_mask",
    "tail_scales",
]

_MAX_SAMPLES = 60_000
_WORKERS = 2


def check_frame(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Check that ``image`` is one grey or colour frame a tail finder can work on.

    Returns the frame as an array and, for float frames, its finiteness mask (None otherwise).

    Raises
    ------
    SpermInputError
        As :func:`as_grey`.
    """
    img = np.asarray(image)
    if img.dtype == object or not (np.issubdtype(img.dtype, np.number) or img.dtype == bool):
        raise SpermInputError(
            f"Cannot segment an image of type {img.dtype}: give a numeric grey or RGB frame."
        )
    if np.iscomplexobj(img):
        raise SpermInputError("Cannot segment a complex-valued image: give its magnitude.")
    colour = img.ndim == 3 and img.shape[-1] in (1, 3, 4)
    if img.ndim != 2 and not colour:
        raise SpermInputError(
            f"Cannot segment an image of shape {img.shape}: give one 2-D grey (H, W) or RGB "
            "(H, W, 3) frame; split stacks into frames first."
        )
    if img.shape[0] < 3 or img.shape[1] < 3:
        raise SpermInputError(
            f"Cannot segment an image of shape {img.shape}: it needs at least 3x3 pixels."
        )
    finite = np.isfinite(img) if img.dtype.kind == "f" else None
    if finite is not None and not finite.any():
        raise SpermInputError("Cannot segment an image with no finite pixels (all NaN/inf).")
    return img, finite


def as_grey(image: np.ndarray) -> np.ndarray:
    """Check a frame and return it as one robustly scaled grey float32 channel.

    Parameters
    ----------
    image : array
        ``(H, W)`` grey or ``(H, W, 3|4)`` colour (alpha dropped), any real dtype (uint8, uint16,
        float with NaNs).

    Returns
    -------
    (H, W) float32 array
        The channel mean after :func:`~napari_sperm.detection.normalize.normalize_frame` (1st to
        99.5th percentile to 0..1; NaN and infinities become the median of the finite pixels).

    Raises
    ------
    SpermInputError
        For anything that is not one 2-D grey or 3-channel frame, an empty frame, or a frame without
        finite pixels.
    """
    img, finite = check_frame(image)
    return grey_of_normalized(normalize_frame(img), finite)


def estimate_head_length(heads: np.ndarray | None) -> float | None:
    """Median longer box side of the heads in a label image or mask; None without heads."""
    if heads is None:
        return None
    labels = heads if heads.dtype != bool else ndi.label(heads)[0]
    sides = [
        max(s[0].stop - s[0].start, s[1].stop - s[1].start)
        for s in ndi.find_objects(labels.astype(np.int64, copy=False))
        if s is not None
    ]
    return float(np.median(sides)) if sides else None


def resolve_heads(
    heads: np.ndarray | None,
    shape: tuple[int, int],
    head_length: float | None,
    params: TailMaskParams,
) -> tuple[np.ndarray | None, float]:
    """Head pixels (or None) and the head length used by both tail finders.

    ``heads`` must have the frame's ``shape``; without ``head_length`` it is estimated from the
    heads, else ``params.default_head_length_px``.

    Raises
    ------
    SpermInputError
        For heads of another shape or a head length that is not a positive number.
    """
    head_px = None
    if heads is not None:
        heads = np.asarray(heads)
        if heads.shape != shape:
            raise SpermInputError(
                f"heads has shape {heads.shape} but the image is {shape}: give a head label "
                "image or mask of the image's size."
            )
        head_px = heads > 0 if heads.dtype != bool else heads
    if head_length is None:
        head_length = estimate_head_length(heads) or params.default_head_length_px
    if not np.isfinite(head_length) or head_length <= 0:
        raise SpermInputError(
            f"head_length must be a positive number of pixels, got {head_length}."
        )
    return head_px, float(head_length)


def tail_scales(head_length: float, params: TailMaskParams) -> tuple[float, list[float]]:
    """Tail width in pixels and the Gaussian scales of the ridge filter.

    Parameters
    ----------
    head_length : float
        Typical head length, pixels.
    params : TailMaskParams

    Returns
    -------
    width : float
        ``max(min_tail_width_px, tail_width_ratio * head_length)``.
    sigmas : list of float
        ``width * scales``, each at least ``min_sigma_px``, duplicates removed.
    """
    width = max(params.min_tail_width_px, params.tail_width_ratio * head_length)
    sigmas = sorted({round(max(params.min_sigma_px, width * f), 2) for f in params.scales})
    return width, sigmas


def _robust_std(values: np.ndarray) -> float:
    flat = values.reshape(-1)
    if flat.size > _MAX_SAMPLES:  # fixed stride: fast and deterministic
        flat = flat[:: flat.size // _MAX_SAMPLES + 1]
    med = np.median(flat)
    return float(1.4826 * np.median(np.abs(flat - med)))


def _frequencies(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Angular frequencies (rows as a column, cols as a row) of an rfft2 of ``shape``."""
    wr = (2 * np.pi * sp_fft.fftfreq(shape[0])).astype(np.float32)[:, None]
    wc = (2 * np.pi * sp_fft.rfftfreq(shape[1])).astype(np.float32)[None, :]
    return wr, wc


def _oriented_bank(
    grey: np.ndarray, sigmas: list[float], n_orientations: int, elongation: float
) -> tuple[np.ndarray, np.ndarray]:
    """Largest noise-normalised oriented second derivative and its angle, at full resolution."""
    pad = int(np.ceil(2 * elongation * max(sigmas)))
    pad = min(pad, min(grey.shape) - 1)
    padded = np.pad(grey - np.float32(grey.mean()), pad, mode="reflect")
    shape = (sp_fft.next_fast_len(padded.shape[0]), sp_fft.next_fast_len(padded.shape[1]))
    spectrum = sp_fft.rfft2(padded, s=shape, workers=_WORKERS)
    wr, wc = _frequencies(shape)
    best = np.full(grey.shape, -np.inf, np.float32)
    best_angle = np.zeros(grey.shape, np.float32)
    crop = (slice(pad, pad + grey.shape[0]), slice(pad, pad + grey.shape[1]))
    for theta in np.pi * np.arange(n_orientations) / n_orientations:
        cos, sin = np.float32(np.cos(theta)), np.float32(np.sin(theta))
        u2 = np.square(wc * cos + wr * sin)
        v2 = np.square(wr * cos - wc * sin)
        for sigma in sigmas:
            s2, e2 = np.float32(sigma * sigma), np.float32((sigma * elongation) ** 2)
            kernel = np.exp(np.float32(-0.5) * (s2 * u2 + e2 * v2))
            kernel *= -s2 * u2
            resp = sp_fft.irfft2(spectrum * kernel, s=shape, workers=_WORKERS)[crop]
            resp *= np.float32(1.0 / max(_robust_std(resp), 1e-9))
            better = resp > best
            np.maximum(best, resp, out=best)
            best_angle[better] = theta
    return best, best_angle


def _block_mean(grey: np.ndarray, k: int) -> np.ndarray:
    """Mean over ``k x k`` blocks (the frame cropped to a multiple of ``k``)."""
    h, w = (grey.shape[0] // k) * k, (grey.shape[1] // k) * k
    return grey[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3), dtype=np.float32)


def _upsample(values: np.ndarray, k: int, shape: tuple[int, int], order: int) -> np.ndarray:
    """Back from :func:`_block_mean` resolution to ``shape`` (block centres aligned)."""
    rows = (np.arange(shape[0], dtype=np.float32) + 0.5) / k - 0.5
    cols = (np.arange(shape[1], dtype=np.float32) + 0.5) / k - 0.5
    if order == 0:
        ri = np.clip(np.rint(rows).astype(np.intp), 0, values.shape[0] - 1)
        ci = np.clip(np.rint(cols).astype(np.intp), 0, values.shape[1] - 1)
        return values[ri[:, None], ci[None, :]]
    rr = np.clip(rows, 0, values.shape[0] - 1)
    cc = np.clip(cols, 0, values.shape[1] - 1)
    r0 = np.minimum(np.floor(rr).astype(np.intp), values.shape[0] - 2).clip(0)
    c0 = np.minimum(np.floor(cc).astype(np.intp), values.shape[1] - 2).clip(0)
    fr = (rr - r0)[:, None].astype(np.float32)
    fc = (cc - c0)[None, :].astype(np.float32)
    r1 = np.minimum(r0 + 1, values.shape[0] - 1)
    c1 = np.minimum(c0 + 1, values.shape[1] - 1)
    top = values[r0[:, None], c0[None, :]] * (1 - fc) + values[r0[:, None], c1[None, :]] * fc
    bot = values[r1[:, None], c0[None, :]] * (1 - fc) + values[r1[:, None], c1[None, :]] * fc
    return (top * (1 - fr) + bot * fr).astype(np.float32)


def ridge_strength(
    grey: np.ndarray, sigmas: list[float], params: TailMaskParams
) -> tuple[np.ndarray, np.ndarray]:
    """Dark-line strength in units of noise, and the direction across the line.

    A bank of oriented filters: the second derivative across the line of an anisotropic Gaussian
    (``sigma`` across, ``elongation * sigma`` along), scale normalised (``sigma**2``), applied in the
    Fourier domain to the reflect-padded frame. Each response is divided by its robust standard
    deviation over the frame (the noise it passes, JPEG blocks included); the strength is the largest
    over scales and orientations. When the smallest scale is at least 3 x ``min_sigma_px`` / 2 (wide
    tails, high magnification) the filters run on a frame binned ``k x k`` and the results are
    interpolated back, which costs ``k**2`` times less.

    Parameters
    ----------
    grey : (H, W) float32 array
        Image in which lines are darker than the background.
    sigmas : list of float
        Scales across the line, pixels.
    params : TailMaskParams
        ``n_orientations``, ``elongation`` and ``min_sigma_px``.

    Returns
    -------
    strength : (H, W) float32 array
        Positive on dark lines, in noise units.
    angle : (H, W) float32 array
        Angle (radians, from +col towards +row) of the direction *across* the strongest line.
    """
    k = int(min(4, max(1, min(sigmas) // (1.5 * params.min_sigma_px))))
    k = min(k, max(1, min(grey.shape) // 16))
    if k == 1:
        return _oriented_bank(grey, sigmas, params.n_orientations, params.elongation)
    small = _block_mean(grey, k)
    strength, angle = _oriented_bank(
        small, [s / k for s in sigmas], params.n_orientations, params.elongation
    )
    return _upsample(strength, k, grey.shape, 1), _upsample(angle, k, grey.shape, 0)


def _two_sided(
    grey: np.ndarray,
    candidates: np.ndarray,
    angle: np.ndarray,
    distance: float,
    sigma: float,
    gate: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Which candidate pixels are darker than both sides of their line, and the sides' level.

    The smoothed frame is sampled at ``distance`` px either side across the line, averaged over
    three points along it; the weaker side must be brighter than the centre by ``gate`` times the
    stronger side (``gate <= 0``: no test). Returns the kept pixels and an image holding the mean
    level of the two sides at the candidate pixels (0 elsewhere).
    """
    rows, cols = np.nonzero(candidates)
    out = np.zeros_like(candidates)
    background = np.zeros(candidates.shape, np.float32)
    if rows.size == 0:
        return out, background
    smooth = ndi.gaussian_filter(grey, sigma, mode="nearest")
    th = angle[rows, cols]
    nr, nc = np.sin(th), np.cos(th)  # across the line
    centre = smooth[rows, cols]
    sides = []
    for sign in (1.0, -1.0):
        acc = np.zeros(rows.size, np.float32)
        for t in (-1.0, 0.0, 1.0):  # along the line
            r = rows + sign * distance * nr + t * distance * nc
            c = cols + sign * distance * nc - t * distance * nr
            ri = np.clip(np.rint(r).astype(np.intp), 0, smooth.shape[0] - 1)
            ci = np.clip(np.rint(c).astype(np.intp), 0, smooth.shape[1] - 1)
            acc += smooth[ri, ci]
        sides.append(acc / 3 - centre)
    lo, hi = np.minimum(*sides), np.maximum(*sides)
    out[rows, cols] = (lo > 0) & (lo >= gate * hi) if gate > 0 else True
    background[rows, cols] = centre + 0.5 * (sides[0] + sides[1])
    return out, background


def _ridge_centres(strength: np.ndarray, angle: np.ndarray, low: float) -> np.ndarray:
    """Pixels at least ``low`` and not weaker than both neighbours across their line."""
    cand = strength >= low
    dr = np.rint(np.sin(angle)).astype(np.int8)
    dc = np.rint(np.cos(angle)).astype(np.int8)
    padded = np.pad(strength, 1, mode="edge")
    h, w = strength.shape
    out = cand.copy()
    for sr, sc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        sel = ((dr == sr) & (dc == sc)) | ((dr == -sr) & (dc == -sc))
        sel &= cand
        if not sel.any():
            continue
        fwd = padded[1 + sr : 1 + sr + h, 1 + sc : 1 + sc + w]
        bwd = padded[1 - sr : 1 - sr + h, 1 - sc : 1 - sc + w]
        out[sel] = (strength[sel] >= fwd[sel]) & (strength[sel] >= bwd[sel])
    return out


def _widen(
    centre: np.ndarray,
    grey: np.ndarray,
    background: np.ndarray,
    width: float,
    fraction: float,
) -> np.ndarray:
    """Grow line centres to the visible line width.

    A pixel within half a tail width (plus one) of centre pixels joins when it is darker than their
    background by at least ``fraction`` of their contrast (the centre's depth below the mean of its
    two sides), averaged over the centres nearby: ``fraction = 0.5`` gives the width at half depth.
    """
    if fraction <= 0 or not centre.any():
        return centre
    fine = ndi.gaussian_filter(grey, 0.7, mode="nearest")
    level = np.where(centre, background - fraction * (background - fine), 0.0).astype(np.float32)
    size = 2 * int(np.ceil(0.5 * width)) + 1
    weight = ndi.uniform_filter(centre.astype(np.float32), size=size)
    near = weight > 0
    threshold = ndi.uniform_filter(level, size=size)
    threshold[near] /= weight[near]
    return centre | (near & (fine <= threshold))


def _polarity(grey: np.ndarray, heads: np.ndarray | None, width: float, mode: str) -> str:
    """``"dark"`` or ``"bright"``: the sign of the tails relative to the background."""
    if mode != "auto":
        return mode
    if heads is not None and heads.any():
        ring = ndi.binary_dilation(heads, iterations=max(2, int(round(2 * width)))) & ~heads
        if ring.any():
            return "dark" if np.median(grey[heads]) <= np.median(grey[ring]) else "bright"
    # No heads: the side with the heavier tail of thin structure (top-hat-like residual).
    resid = grey - ndi.uniform_filter(grey, size=int(6 * width) | 1, mode="nearest")
    lo, med, hi = np.percentile(resid[::3, ::3], [0.5, 50, 99.5])
    return "dark" if (med - lo) >= (hi - med) else "bright"


def _component_filter(
    mask: np.ndarray,
    centre: np.ndarray,
    width: float,
    head_length: float,
    params: TailMaskParams,
) -> np.ndarray:
    """Drop pieces that are short, compact or thick compared with a flagellum.

    Per 8-connected piece of ``mask``: its centreline length is the number of line-centre pixels in
    it, its extent the long axis of those pixels (from their second moments; a straight line of
    length ``l`` gives ``l``), its thickness the area over the length. A piece is kept when length and
    extent are at least ``min_length_ratio`` head lengths, the thickness at most
    ``max_thickness_ratio`` tail widths, and it is not a ring (a piece whose enclosed hole is nearly
    as wide as the piece itself: the dark rim of a bright droplet).
    """
    labels, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask
    idx = np.arange(1, n + 1)
    area = ndi.sum_labels(mask, labels, idx)
    lab_c = labels[centre & mask]
    rows, cols = np.nonzero(centre & mask)
    count = np.bincount(lab_c, minlength=n + 1)[1:].astype(np.float64)
    safe = np.maximum(count, 1.0)

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(lab_c, weights=values, minlength=n + 1)[1:] / safe

    mr, mc = mean(rows), mean(cols)
    crr = mean(rows.astype(np.float64) ** 2) - mr**2
    ccc = mean(cols.astype(np.float64) ** 2) - mc**2
    crc = mean(rows.astype(np.float64) * cols) - mr * mc
    lam = 0.5 * (crr + ccc) + np.sqrt(0.25 * (crr - ccc) ** 2 + crc**2)
    extent = np.sqrt(12.0 * np.maximum(lam, 0.0))
    # Rings (the dark rim around a bright droplet): a hole about as wide as the whole piece.
    filled = ndi.binary_fill_holes(mask)
    hole_area = np.zeros(n)
    if (filled & ~mask).any():
        hole_labels = ndi.grey_dilation(labels, size=3) * (filled & ~mask)
        hole_area = np.bincount(hole_labels.ravel(), minlength=n + 1)[1:].astype(np.float64)
    ring = (hole_area > 0) & (extent <= 1.5 * (np.sqrt(4 * hole_area / np.pi) + 2 * width))
    min_len = params.min_length_ratio * head_length
    keep = ~ring & (
        (count >= min_len)
        & (extent >= min_len)
        & (area / safe <= params.max_thickness_ratio * width)
    )
    lut = np.zeros(n + 1, bool)
    lut[1:] = keep
    return lut[labels]


def tail_mask(
    image: np.ndarray,
    heads: np.ndarray | None = None,
    *,
    head_length: float | None = None,
    params: TailMaskParams | None = None,
) -> np.ndarray:
    """Binary mask of flagellum pixels in one frame.

    Parameters
    ----------
    image : array
        ``(H, W)`` grey or ``(H, W, 3)`` RGB frame, any real dtype.
    heads : (H, W) int label image or bool mask, optional
        Heads to exclude: their pixels (grown by ``head_margin_ratio`` tail widths) are never tail.
        They also set the tail polarity in ``"auto"`` mode and, without ``head_length``, the head
        length (median longer side of their boxes).
    head_length : float, optional
        Typical head length in pixels (e.g. the median longer side of detected head boxes); sets the
        ridge scales and the shortest kept piece. Default: estimated from ``heads``, else
        ``params.default_head_length_px``.
    params : TailMaskParams, optional
        Filter and cleanup settings; defaults as documented there.

    Returns
    -------
    (H, W) bool array
        True on flagellum pixels (midpiece and principal piece), False elsewhere, heads included.

    Raises
    ------
    SpermInputError
        For a frame that is not 2-D grey / 3-channel, empty, or without finite pixels, or ``heads``
        of another shape.
    """
    p = params or TailMaskParams()
    grey = as_grey(image)
    head_px, head_length = resolve_heads(heads, grey.shape, head_length, p)
    width, sigmas = tail_scales(float(head_length), p)
    if float(grey.max() - grey.min()) < 1e-6:
        return np.zeros(grey.shape, bool)
    if _polarity(grey, head_px, width, p.polarity) == "bright":
        grey = 1.0 - grey

    strength, angle = ridge_strength(grey, sigmas, p)
    centre = _ridge_centres(strength, angle, p.low_threshold)
    distance = p.side_distance * width + p.side_blur_px
    centre, background = _two_sided(grey, centre, angle, distance, sigmas[0], p.side_gate)
    # Hysteresis on the centres grown by one pixel (bridges one-pixel gaps of the thin centres).
    grown = ndi.maximum_filter(centre, size=3)
    grown &= strength >= p.low_threshold
    lines = apply_hysteresis_threshold(
        np.where(grown, strength, 0.0), p.low_threshold, p.high_threshold
    )
    lines &= centre
    if p.gap_max_ratio > 0:
        lines = _bridge_gaps(lines, strength, width, float(head_length), p)
    mask = _widen(lines, grey, background, width, p.width_fraction)
    if head_px is not None and head_px.any():
        grow = max(1, int(round(p.head_margin_ratio * width)))
        mask &= ~ndi.binary_dilation(head_px, iterations=grow)
    return _component_filter(mask, lines, width, float(head_length), p)


def _end_directions(lines: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Free ends of the 1-px line centres, their outward unit directions and component labels."""
    from scipy.spatial import cKDTree

    labels, _ = ndi.label(lines, structure=np.ones((3, 3), bool))
    neighbours = ndi.convolve(lines.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant")
    ends = np.argwhere(lines & (neighbours == 2))
    if len(ends) == 0:
        return ends, np.zeros((0, 2)), np.zeros(0, int)
    pixels = np.argwhere(lines)
    pixel_label = labels[pixels[:, 0], pixels[:, 1]]
    end_label = labels[ends[:, 0], ends[:, 1]]
    radius = max(3.0 * width, 6.0)
    tree = cKDTree(pixels)
    dirs = np.zeros((len(ends), 2))
    for k, near in enumerate(tree.query_ball_point(ends, radius)):
        near = np.asarray(near)
        near = near[pixel_label[near] == end_label[k]]
        if near.size < 3:
            continue
        v = ends[k] - pixels[near].mean(axis=0)
        norm = np.hypot(*v)
        if norm > 1e-6:
            dirs[k] = v / norm
    return ends, dirs, end_label


def _bridge_gaps(
    lines: np.ndarray, strength: np.ndarray, width: float, head_length: float, p: TailMaskParams
) -> np.ndarray:
    """Join two free line ends that point at each other across a faint stretch.

    Faint parts of a tail fall below the hysteresis threshold and break it into pieces. Two free
    ends of different pieces, each at least ``gap_min_piece_ratio`` head lengths long, are joined by a straight line when they are within ``gap_max_ratio``
    head lengths, each lies within ``gap_max_angle_deg`` of the other's direction (they continue
    each other, end to end), and the ridge strength along the line averages at least
    ``gap_min_strength`` noise units (the image still shows a line there, only weaker). Best-first
    by cost = distance x (1 + bends / 30°); each end is used once and no loop is closed.
    """
    from scipy.spatial import cKDTree

    ends, dirs, end_label = _end_directions(lines, width)
    # only pieces long enough to be tail stretches: short noise fragments must not chain up
    labels, n = ndi.label(lines, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    min_piece = max(p.gap_min_piece_ratio * head_length, 4.0 * width)
    usable = np.flatnonzero(dirs.any(axis=1) & (sizes[end_label] >= min_piece))
    if usable.size < 2:
        return lines
    ends, dirs, end_label = ends[usable], dirs[usable], end_label[usable]
    reach = max(p.gap_max_ratio * head_length, 3.0 * width)
    cos_max = np.cos(np.deg2rad(p.gap_max_angle_deg))
    candidates = []
    for i, j in cKDTree(ends).query_pairs(reach, output_type="ndarray"):
        if end_label[i] == end_label[j]:
            continue
        vec = (ends[j] - ends[i]).astype(float)
        dist = float(np.hypot(*vec))
        if dist < 1.5:
            continue
        unit = vec / dist
        cos_i, cos_j = float(unit @ dirs[i]), float(-unit @ dirs[j])
        if cos_i < cos_max or cos_j < cos_max:
            continue
        n = int(np.ceil(dist)) + 1
        t = np.linspace(0.0, 1.0, n)
        path = np.rint(ends[i][None] + t[:, None] * vec[None]).astype(int)
        if strength[path[:, 0], path[:, 1]].mean() < p.gap_min_strength:
            continue
        bends = np.degrees(np.arccos(np.clip([cos_i, cos_j], -1, 1))).sum()
        candidates.append((dist * (1.0 + bends / 30.0), i, j, path))
    out = lines.copy()
    used: set[int] = set()
    parent: dict[int, int] = {}

    def root(a: int) -> int:
        while parent.get(a, a) != a:
            a = parent[a]
        return a

    for _, i, j, path in sorted(candidates, key=lambda c: c[0]):
        if i in used or j in used:
            continue
        ri, rj = root(int(end_label[i])), root(int(end_label[j]))
        if ri == rj:
            continue
        parent[ri] = rj
        used.update((i, j))
        out[path[:, 0], path[:, 1]] = True
    return out
