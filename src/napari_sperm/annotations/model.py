"""What a user annotates: cells (head, tail, boxes) per frame, frames per stack.

A :class:`Cell` is one sperm in one frame, named by its ``sperm_id``. It may have a head mask, a
tail mask, a head box and a whole-cell (``sperm``) box. Masks win over boxes: a part with a mask is
exported with the mask's own box, and a box is written on its own ("box only") only for a part that
has no mask. This is what makes export -> import -> export exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..synthetic.raster import CropMask, union_full

__all__ = ["Box", "Cell", "AnnotatedFrame", "AnnotatedStack", "union_mask"]

Box = tuple[float, float, float, float]
"""``(x, y, width, height)`` in pixels, COCO convention (pixel ``x`` covers ``x .. x + 1``)."""


@dataclass
class Cell:
    """One sperm (or a lone head or tail) in one frame.

    Attributes
    ----------
    sperm_id : int
        Links the cell's parts; unique within its frame.
    head, tail : CropMask or None
        Part masks. A pixel where two tails cross belongs to both tails.
    head_box, sperm_box : Box or None
        Boxes as drawn or detected. Used for export only where the matching part has no mask.
    score : float or None
        Detection confidence; None for hand-made cells and ground truth.
    reviewed : bool
        Set by the user in the review table; exported.
    """

    sperm_id: int
    head: CropMask | None = None
    tail: CropMask | None = None
    head_box: Box | None = None
    sperm_box: Box | None = None
    score: float | None = None
    reviewed: bool = False

    @property
    def has_masks(self) -> bool:
        """True when the head or the tail has at least one pixel."""
        return any(p is not None and p.area > 0 for p in (self.head, self.tail))

    @property
    def has_head(self) -> bool:
        return (self.head is not None and self.head.area > 0) or self.head_box is not None

    @property
    def paired(self) -> bool:
        """True when the cell has both a head mask and a tail mask."""
        return all(p is not None and p.area > 0 for p in (self.head, self.tail))

    @property
    def is_empty(self) -> bool:
        return not self.has_masks and self.head_box is None and self.sperm_box is None


def union_mask(cell: Cell, shape: tuple[int, int]) -> np.ndarray:
    """Head plus tail as one full-frame boolean mask (the ``sperm`` category's mask)."""
    return union_full((cell.head, cell.tail), shape)


@dataclass
class AnnotatedFrame:
    """The cells of one frame.

    Attributes
    ----------
    height, width : int
    frame : int
        Index of the frame in its source stack (0 for a single image).
    cells : list of Cell
        Kept sorted by ``sperm_id`` by :meth:`sorted_cells`.
    """

    height: int
    width: int
    frame: int = 0
    cells: list[Cell] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def sorted_cells(self) -> list[Cell]:
        """Non-empty cells in ``sperm_id`` order."""
        return sorted((c for c in self.cells if not c.is_empty), key=lambda c: c.sperm_id)

    def cell(self, sperm_id: int) -> Cell:
        """The cell with ``sperm_id``, created empty when missing."""
        for c in self.cells:
            if c.sperm_id == sperm_id:
                return c
        new = Cell(int(sperm_id))
        self.cells.append(new)
        return new


@dataclass
class AnnotatedStack:
    """One image (or stack of frames) and its annotations.

    Attributes
    ----------
    name : str
        Short name; exported frame files are named after it.
    frames : list of AnnotatedFrame
        One per frame of ``pixels``, in order.
    pixels : array-like or None
        ``(F, H, W)`` or ``(F, H, W, 3)`` frames (numpy or dask); None when only annotations are
        known (then nothing can be exported).
    is_stack : bool
        False for a single 2-D (or RGB) image, whose layers are 2-D.
    source_file : str or None
        Where the pixels came from, kept in the export's ``images`` entries.
    meta : dict
        Extra per-stack facts carried through export and import (e.g. ``pixel_size_um``).
    """

    name: str
    frames: list[AnnotatedFrame]
    pixels: Any = None
    is_stack: bool = True
    source_file: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def rgb(self) -> bool:
        return self.pixels is not None and self.pixels.ndim == 4

    def frame_pixels(self, k: int) -> np.ndarray:
        """The pixels of frame ``k`` (position in :attr:`frames`) as a numpy array."""
        if self.pixels is None:
            raise ValueError(f"'{self.name}' has no pixels")
        arr = self.pixels[k]
        return np.asarray(arr.compute() if hasattr(arr, "compute") else arr)
