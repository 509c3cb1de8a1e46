"""Image pyramid levels: level ``k`` is the frame shrunk by ``2**k`` with 2x2 mean pooling.

The network is trained for heads of roughly 8..30 px at its input; each pyramid level "owns" the
cells whose (predicted, unclipped) head length in frame pixels falls in its range, so one weights
file serves 10 px phase-contrast heads and 90 px stained heads alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LEVEL_BOUNDS", "build_pyramid", "downsample2"]

LEVEL_BOUNDS = (17.0, 58.0)
"""Head length (frame pixels) limits: level 0 below 17, level 1 from 17 to 58, level 2 above."""


def downsample2(x: torch.Tensor) -> torch.Tensor:
    """Halve ``(N, C, H, W)`` with 2x2 mean pooling (odd edges: mean of what exists)."""
    return F.avg_pool2d(x, 2, ceil_mode=True)


def build_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``[x, x/2, x/4, ...]`` (``levels`` entries)."""
    out = [x]
    for _ in range(levels - 1):
        out.append(downsample2(out[-1]))
    return out
