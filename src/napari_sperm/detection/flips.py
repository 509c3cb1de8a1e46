"""Test-time flips: run a network on flipped copies of a frame and average what it says.

Both networks can average their outputs over 1, 2, 4 or 8 flipped copies of each frame: the frame
itself; its half turn; its row and column flips; the same four of the transposed frame. With 4 or 8
copies the average flips exactly with the frame. The average is steadier than one pass (the tail
network's mask edges, the detector's head scores and boxes), at that many times the network's time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..io.errors import SpermInputError

__all__ = ["FLIPS", "TRANSFORMS", "check_flips", "flip", "mean_over_flips", "unflip"]

FLIPS = (1, 2, 4, 8)
# (transpose, reverse rows, reverse columns), in the order they are added.
TRANSFORMS = (
    (False, False, False),
    (False, True, True),
    (False, True, False),
    (False, False, True),
    (True, False, False),
    (True, True, True),
    (True, True, False),
    (True, False, True),
)


def check_flips(flips, what: str = "flips") -> int:
    """``flips`` as an int, or a clear error when it is not one of :data:`FLIPS`."""
    if isinstance(flips, bool) or flips not in FLIPS:
        raise SpermInputError(f"{what} must be one of {', '.join(map(str, FLIPS))}, got {flips!r}.")
    return int(flips)


def _dims(rows: bool, cols: bool) -> list[int]:
    return [d for d, on in ((-2, rows), (-1, cols)) if on]


def flip(t: torch.Tensor, transform: tuple[bool, bool, bool]) -> torch.Tensor:
    """``t`` (last two axes: rows, columns) as seen through ``transform``."""
    tr, rows, cols = transform
    if tr:
        t = t.transpose(-1, -2)
    dims = _dims(rows, cols)
    return torch.flip(t, dims) if dims else t


def unflip(t: torch.Tensor, transform: tuple[bool, bool, bool]) -> torch.Tensor:
    """The inverse of :func:`flip`: a map computed on the flipped frame, back in frame axes."""
    tr, rows, cols = transform
    dims = _dims(rows, cols)
    t = torch.flip(t, dims) if dims else t
    return t.transpose(-1, -2) if tr else t


def mean_over_flips(
    run: Callable[[torch.Tensor, tuple[bool, bool, bool]], tuple[torch.Tensor, ...]],
    x: torch.Tensor,
    flips: int,
) -> tuple[torch.Tensor, ...]:
    """The mean over the first ``flips`` :data:`TRANSFORMS` of ``run(flip(x, transform), transform)``.

    ``run`` gets the flipped input and its transform and returns a tuple of tensors already back in
    the frame's own terms (:func:`unflip`, plus whatever its channels need); each is averaged.
    """
    total = None
    for transform in TRANSFORMS[:flips]:
        out = run(flip(x, transform), transform)
        total = list(out) if total is None else [a + b for a, b in zip(total, out)]
    return tuple(a / flips for a in total)
