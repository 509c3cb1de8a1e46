"""Segmentation of sperm heads and flagella.

The classic engine (no neural network): :func:`head_masks` outlines each detected head inside its
box, :func:`tail_mask` finds every flagellum pixel of a frame with a multi-scale ridge filter.
Splitting the tail mask into cells and pairing tails with heads is done elsewhere.

Examples
--------
>>> from napari_sperm.synthetic import make_field
>>> from napari_sperm.segmentation import head_labels, head_masks, tail_mask
>>> fld = make_field("phase-high", seed=1, n_sperm=5)
>>> boxes = [t.head_box() for t in fld.sperm if t.head_box()]
>>> heads = head_labels(fld.shape, head_masks(fld.image, boxes))
>>> tail_mask(fld.image, heads).shape
(480, 640)
"""

from .head_mask import head_labels, head_mask, head_masks
from .params import HeadMaskParams, TailMaskParams
from .tail_mask import as_grey, estimate_head_length, ridge_strength, tail_mask, tail_scales

__all__ = [
    "HeadMaskParams",
    "TailMaskParams",
    "as_grey",
    "estimate_head_length",
    "head_labels",
    "head_mask",
    "head_masks",
    "ridge_strength",
    "tail_mask",
    "tail_scales",
]
