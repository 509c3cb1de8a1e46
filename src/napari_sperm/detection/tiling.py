"""Overlapping tiles for large frames.

Each tile owns a *core* region; tiles partition the frame into cores, and a tile extends its core by
``margin`` pixels on every side (clipped to the frame) for context. A detection is kept only by the
tile whose core contains its head centre, so no head is reported twice and every head is at least
``margin`` pixels away from the border of the tile it was found in (except at the frame border).
"""

from __future__ import annotations

__all__ = ["Tile", "plan_tiles"]

from typing import NamedTuple


class Tile(NamedTuple):
    y0: int
    y1: int
    x0: int
    x1: int
    core_y0: int
    core_y1: int
    core_x0: int
    core_x1: int


def _splits(n: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    if n <= tile:
        return [(0, n, 0, n)]
    core = tile - 2 * margin
    k = -(-(n - 2 * margin) // core)  # ceil
    bounds = [round(i * n / k) for i in range(k + 1)]
    out = []
    for i in range(k):
        c0, c1 = bounds[i], bounds[i + 1]
        out.append((max(0, c0 - margin), min(n, c1 + margin), c0, c1))
    return out


def plan_tiles(height: int, width: int, tile: int, margin: int) -> list[Tile]:
    """Tiles covering a ``height x width`` image; a single tile when it fits in ``tile``."""
    if tile <= 2 * margin:
        raise ValueError("tile must be larger than twice the margin")
    out = []
    for y0, y1, cy0, cy1 in _splits(height, tile, margin):
        for x0, x1, cx0, cx1 in _splits(width, tile, margin):
            out.append(Tile(y0, y1, x0, x1, cy0, cy1, cx0, cx1))
    return out
