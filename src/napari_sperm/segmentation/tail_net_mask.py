"""Flagellum pixels of a whole frame from the tail network's probability map.

The learned alternative to the ridge filter of :mod:`.tail_mask` (the classic engine's tail finder
``"net"``, the default): the network gives each pixel a tail probability, pixels at or above the
network's threshold are kept, with hysteresis down to its low threshold when its weights name one;
otherwise pieces that a faint stretch cuts apart are joined by a 1-px line through the pixels above
a lower probability (``TailMaskParams.net_bridge_threshold``). The same cleanup as the ridge filter
then drops pieces that are short, thick or ring-shaped compared with a flagellum
(``min_length_ratio``, ``max_thickness_ratio`` of :class:`~.params.TailMaskParams`). Unlike the
ridge filter, head pixels are kept where the network marks a tail over (or under) a head: the
flagellum is visible there, and Con2Dis then follows it through the head.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import apply_hysteresis_threshold
from skimage.morphology import skeletonize

from ..io.errors import SpermInputError
from .params import TailMaskParams
from .tail_mask import _component_filter, check_frame, resolve_heads, tail_scales

__all__ = ["join_pieces", "tail_mask_from_probability", "tail_mask_net"]


def tail_mask_from_probability(
    probability: np.ndarray,
    heads: np.ndarray | None = None,
    *,
    head_length: float | None = None,
    params: TailMaskParams | None = None,
    threshold: float = 0.5,
    low_threshold: float | None = None,
    exclude_heads: bool = False,
) -> np.ndarray:
    """Binary tail mask from a per-pixel tail probability.

    Parameters
    ----------
    probability : (H, W) float array
        Tail probability in 0..1 (e.g. :meth:`~.tailnet.TailFinder.probability`).
    heads : (H, W) int label image or bool mask, optional
        The heads; they give the head length and, with ``exclude_heads``, are removed.
    head_length : float, optional
        Typical head length in pixels; sets the shortest kept piece. Default: from ``heads``, else
        ``params.default_head_length_px``.
    params : TailMaskParams, optional
        ``min_length_ratio``, ``max_thickness_ratio``, ``tail_width_ratio``,
        ``min_tail_width_px`` and ``net_bridge_threshold`` are used.
    threshold : float
        Probability at or above which a pixel is tail.
    low_threshold : float, optional
        Hysteresis: pixels down to this probability are kept where they connect to pixels at or
        above ``threshold`` (this widens every tail as well). None: no hysteresis, and instead
        pieces are joined across faint stretches as ``params.net_bridge_threshold`` says.
    exclude_heads : bool
        Remove head pixels (grown by one pixel) from the mask. Off by default: a flagellum that
        passes over or under another cell's head is visible there, the network marks it, and
        keeping it lets Con2Dis follow the tail through that head instead of cutting it.

    Returns
    -------
    (H, W) bool array
    """
    p = params or TailMaskParams()
    prob = np.asarray(probability, np.float32)
    if prob.ndim != 2:
        raise SpermInputError(f"a tail probability map must be 2-D, got shape {prob.shape}.")
    if low_threshold is not None and low_threshold < threshold:
        mask = apply_hysteresis_threshold(prob, low_threshold, threshold)
    else:
        mask = prob >= threshold
        low = p.net_bridge_threshold
        if low is not None and low < threshold and mask.any():
            mask |= join_pieces(prob, mask, low, threshold)
    head_px, head_length = resolve_heads(heads, prob.shape, head_length, p)
    if exclude_heads and head_px is not None and head_px.any():
        mask &= ~ndi.binary_dilation(head_px)
    if not mask.any():
        return mask
    width, _ = tail_scales(head_length, p)
    return _component_filter(mask, skeletonize(mask), width, head_length, p)


def join_pieces(
    probability: np.ndarray, mask: np.ndarray, low: float, threshold: float
) -> np.ndarray:
    """Lines that join pieces of a thresholded tail mask across faint stretches.

    Parameters
    ----------
    probability : (H, W) float array
        Tail probability.
    mask : (H, W) bool array
        ``probability >= threshold``.
    low, threshold : float
        The faint stretch must stay above ``low`` and connect (4-neighbourhood, as
        :func:`skimage.filters.apply_hysteresis_threshold` counts it) to pixels above
        ``threshold``.

    Returns
    -------
    (H, W) bool array
        Pixels outside ``mask`` on the skeleton of those faint pixels, in connected
        runs that touch (8-neighbourhood) at least two different pieces of ``mask``. A run that
        touches one piece only (a side bump, a spur into noise) is left out, so no tail is widened.
    """
    ring = np.ones((3, 3), bool)
    weak = apply_hysteresis_threshold(probability, low, threshold)
    line = skeletonize(weak) & ~mask
    if not line.any():
        return line
    runs, n = ndi.label(line, ring)
    pieces, n_pieces = ndi.label(mask, ring)
    none = n_pieces + 1
    near_max = ndi.maximum_filter(pieces, footprint=ring)
    near_min = ndi.minimum_filter(np.where(pieces > 0, pieces, none), footprint=ring)
    index = np.arange(1, n + 1)
    hi = np.asarray(ndi.maximum(near_max, runs, index))
    lo = np.asarray(ndi.minimum(near_min, runs, index))
    keep = np.zeros(n + 1, bool)
    keep[1:] = (hi > 0) & (lo < none) & (hi != lo)
    return keep[runs]


def tail_mask_net(
    image: np.ndarray,
    heads: np.ndarray | None = None,
    *,
    head_length: float | None = None,
    params: TailMaskParams | None = None,
    finder=None,
) -> np.ndarray:
    """Binary mask of flagellum pixels in one frame, found by the tail network.

    Parameters
    ----------
    image : array
        ``(H, W)`` grey or ``(H, W, 3)`` RGB frame, any real dtype.
    heads, head_length, params
        As :func:`tail_mask_from_probability`.
    finder : TailFinder, optional
        A loaded tail network (:func:`~.tailnet.load_tail_net`); default: the shipped one.

    Returns
    -------
    (H, W) bool array
        True on flagellum pixels, False elsewhere, heads included.
    """
    from .tailnet import load_tail_net

    check_frame(image)  # the same input checks and messages as the ridge filter
    finder = finder or load_tail_net(device="cpu")
    prob = finder.probability(image)
    return tail_mask_from_probability(
        prob,
        heads,
        head_length=head_length,
        params=params,
        threshold=finder.threshold,
        low_threshold=finder.low_threshold,
    )
