"""Where an output layer sits: the same scale, translation and units as the layer it came from."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["current_frame", "placement"]


def current_frame(viewer, layer, n_frames: int) -> int:
    """Index of the frame of ``layer`` (frames first) that the viewer's sliders show."""
    point = viewer.dims.point[-layer.ndim :]
    return int(np.clip(round(float(layer.world_to_data(point)[0])), 0, n_frames - 1))


def placement(source_layer) -> dict[str, Any]:
    """``scale``, ``translate`` and ``units`` keyword arguments matching ``source_layer``.

    Uses the source's spatial axes only (for RGB images ``ndim`` already excludes the colour axis),
    so boxes, labels and paths drawn from it line up with it in world coordinates.
    """
    n = source_layer.ndim
    return {
        "scale": tuple(source_layer.scale[-n:]),
        "translate": tuple(source_layer.translate[-n:]),
        "units": tuple(source_layer.units[-n:]),
    }
