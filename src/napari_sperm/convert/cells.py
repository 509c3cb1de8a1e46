"""Parts of sperm cells as other tools draw them, and the rules that put them together into cells.

A :class:`Part` is one drawn shape (or one box) already mapped onto our roles ``sperm`` (whole
cell), ``head`` or ``tail``. :func:`assemble_cells` groups the parts of one image into
:class:`Cell` objects:

1. parts sharing a group (labelme ``group_id``, a COCO grouping attribute) form one cell;
2. ungrouped head parts that overlap or touch (8-neighbours) form one head, one cell each;
3. an ungrouped tail part joins the cell whose head or tail parts one of its two ends comes
   nearest to, when that is at most ``join_distance`` pixels, and only cells with a head take tail
   parts. This is repeated until nothing more joins, so a principal piece can join through the
   midpiece that joined the head;
4. tail parts that joined nothing are chained the same way among themselves and become cells
   without a head;
5. an ungrouped whole-cell part takes the cell (without a whole-cell part of its own) whose head's
   centre it contains, or for a cell without a head its tail's centre: the smallest such box
   first, each box at most one cell (:func:`pair_by_containment`); the rest are cells of their own.

The ends of a line or line strip are its first and last points; the ends of any other shape are
two of its pixels that lie about farthest apart (:func:`.geometry.far_ends`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..synthetic.raster import CropMask
from .geometry import box_mask, distance_to_mask, mask_ends, masks_touch

__all__ = ["ROLES", "Cell", "Part", "assemble_cells", "pair_by_containment", "union_box"]

#: Our roles, in the order a cell's annotations are written.
ROLES = ("sperm", "head", "tail")

Box = tuple[float, float, float, float]


@dataclass
class Part:
    """One shape of a source file, mapped onto one of our roles.

    Attributes
    ----------
    role : {"sperm", "head", "tail"}
    label : str
        The label in the source file (kept in ``attributes.source_labels``).
    box : (x, y, w, h)
        Bounding box in pixels, inside the image, positive width and height.
    mask : CropMask or None
        The drawn outline as a mask; None when only a box is known.
    ends : (2, 2) array or None
        The shape's two ends ``(x, y)``; None means "work them out from the mask".
    group : hashable or None
        Cell the source file puts the shape in (labelme ``group_id``, ...); None when it says
        nothing.
    """

    role: str
    label: str
    box: Box
    mask: CropMask | None = None
    ends: np.ndarray | None = None
    group: Hashable | None = None

    @property
    def centre(self) -> tuple[float, float]:
        """Centre ``(x, y)`` of the box."""
        x, y, w, h = self.box
        return (x + w / 2, y + h / 2)

    def area_mask(self, shape: tuple[int, int]) -> CropMask:
        """The mask, or the box's pixels when only a box is known."""
        return self.mask if self.mask is not None else box_mask(self.box, shape)


@dataclass
class Cell:
    """The parts of one sperm cell.

    Attributes
    ----------
    parts : list of Part
    """

    parts: list[Part] = field(default_factory=list)

    def of(self, role: str) -> list[Part]:
        """The parts with this role."""
        return [p for p in self.parts if p.role == role]

    @property
    def has_head(self) -> bool:
        """True when the cell has a head part."""
        return any(p.role == "head" for p in self.parts)


def union_box(boxes: Sequence[Box]) -> Box:
    """The smallest box ``(x, y, w, h)`` holding all of ``boxes`` (at least one)."""
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


def _inside_fraction(box: Box, item: Box) -> float:
    """Fraction of ``item``'s area that lies inside ``box`` (1 for a point inside it)."""
    x0, y0 = max(box[0], item[0]), max(box[1], item[1])
    x1, y1 = min(box[0] + box[2], item[0] + item[2]), min(box[1] + box[3], item[1] + item[3])
    area = item[2] * item[3]
    if area <= 0:
        return 1.0
    return max(x1 - x0, 0.0) * max(y1 - y0, 0.0) / area


def pair_by_containment(boxes: Sequence[Box], items: Sequence[Box]) -> dict[int, int]:
    """Give each item (a head) the smallest box (whole cell) containing its centre.

    Candidate pairs, a box containing an item's centre, are taken smallest box first; when two
    items compete for one box, the one lying more fully inside it wins (then the earlier one). A
    pair is kept when neither its box nor its item is taken yet, so each box gets at most one
    item and each item at most one box.

    Parameters
    ----------
    boxes : sequence of (x, y, w, h)
        Whole-cell boxes.
    items : sequence of (x, y, w, h)
        Boxes of the heads (or other parts) to pair with them.

    Returns
    -------
    dict
        Item index -> box index, for the items that got a box.
    """
    candidates = []
    for bi, b in enumerate(boxes):
        for ii, it in enumerate(items):
            cx, cy = it[0] + it[2] / 2, it[1] + it[3] / 2
            if b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]:
                candidates.append((b[2] * b[3], bi, -_inside_fraction(b, it), ii))
    candidates.sort()
    taken_boxes: set[int] = set()
    pairs: dict[int, int] = {}
    for _, bi, _, ii in candidates:
        if bi in taken_boxes or ii in pairs:
            continue
        pairs[ii] = bi
        taken_boxes.add(bi)
    return pairs


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return list(out.values())


def _box_gap(point: np.ndarray, box: Box) -> float:
    """Distance from a point to a box (0 inside)."""
    x, y, w, h = box
    dx = max(x - point[0], 0.0, point[0] - (x + w))
    dy = max(y - point[1], 0.0, point[1] - (y + h))
    return math.hypot(dx, dy)


class _Geometry:
    """Masks and ends of the parts of one image, worked out once."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self._masks: dict[int, CropMask] = {}
        self._ends: dict[int, np.ndarray] = {}

    def mask(self, part: Part) -> CropMask:
        key = id(part)
        if key not in self._masks:
            self._masks[key] = part.area_mask(self.shape)
        return self._masks[key]

    def ends(self, part: Part) -> np.ndarray:
        key = id(part)
        if key not in self._ends:
            self._ends[key] = part.ends if part.ends is not None else mask_ends(self.mask(part))
        return self._ends[key]

    def end_distance(self, part: Part, target: Part, limit: float) -> float:
        """Distance from the nearer end of ``part`` to ``target``'s pixels (inf beyond ``limit``)."""
        best = math.inf
        for end in self.ends(part):
            if not np.all(np.isfinite(end)) or _box_gap(end, target.box) > limit + 1:
                continue
            best = min(best, distance_to_mask(end, self.mask(target)))
        return best if best <= limit else math.inf


def assemble_cells(
    parts: Sequence[Part], shape: tuple[int, int], join_distance: float = 5.0
) -> list[Cell]:
    """Group the parts of one image into cells (rules in the module docstring).

    Parameters
    ----------
    parts : sequence of Part
        Every mapped part of one image.
    shape : (int, int)
        Image ``(height, width)``.
    join_distance : float
        Largest gap in pixels between a tail part's end and the part it joins.

    Returns
    -------
    list of Cell
        Grouped cells in the order their first part appears, then the cells built from ungrouped
        heads, then cells of tail parts only, then lone whole-cell parts.
    """
    geo = _Geometry(shape)
    grouped: dict[Hashable, Cell] = {}
    free: dict[str, list[Part]] = {role: [] for role in ROLES}
    for part in parts:
        if part.group is None:
            free[part.role].append(part)
        else:
            grouped.setdefault(part.group, Cell()).parts.append(part)
    cells = list(grouped.values())

    # Ungrouped heads: parts that overlap or touch are one head.
    heads = free["head"]
    uf = _UnionFind(len(heads))
    for i in range(len(heads)):
        for j in range(i + 1, len(heads)):
            if masks_touch(geo.mask(heads[i]), geo.mask(heads[j])):
                uf.union(i, j)
    cells.extend(Cell([heads[i] for i in members]) for members in uf.groups())

    # Ungrouped tail parts join the nearest cell with a head, in rounds.
    loose = list(free["tail"])
    anchored = [c for c in cells if c.has_head]
    while loose:
        joins: list[tuple[Part, Cell]] = []
        for part in loose:
            best, best_cell = math.inf, None
            for cell in anchored:
                for target in cell.parts:
                    if target.role == "sperm":
                        continue
                    d = geo.end_distance(part, target, join_distance)
                    if d < best:
                        best, best_cell = d, cell
            if best_cell is not None:
                joins.append((part, best_cell))
        if not joins:
            break
        for part, cell in joins:
            cell.parts.append(part)
        joined = {id(p) for p, _ in joins}
        loose = [p for p in loose if id(p) not in joined]

    # Tail parts that reached no head: chained among themselves.
    uf = _UnionFind(len(loose))
    for i in range(len(loose)):
        for j in range(i + 1, len(loose)):
            d = min(
                geo.end_distance(loose[i], loose[j], join_distance),
                geo.end_distance(loose[j], loose[i], join_distance),
            )
            if d <= join_distance:
                uf.union(i, j)
    cells.extend(Cell([loose[i] for i in members]) for members in uf.groups())

    # Ungrouped whole-cell parts take the cell whose head (else tail) centre they contain.
    open_cells = [c for c in cells if not c.of("sperm")]
    items = [union_box([p.box for p in (c.of("head") or c.of("tail"))]) for c in open_cells]
    pairs = pair_by_containment([p.box for p in free["sperm"]], items)
    for ci, bi in pairs.items():
        open_cells[ci].parts.append(free["sperm"][bi])
    taken = set(pairs.values())
    cells.extend(Cell([p]) for i, p in enumerate(free["sperm"]) if i not in taken)
    return cells
