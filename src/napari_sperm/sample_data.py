"""Sample data for napari's File > Open Sample, generated on the fly (no downloads).

Each function returns napari layer-data tuples ``[(data, kwargs, "image")]``; the pixel size of the
modality becomes the layer scale (micrometres), as it does when the same data is read from a TIFF.
``napari-sperm synth OUT --modality M --seed 7`` (with the same number of frames) writes these very
images together with their ground truth.
"""

from __future__ import annotations

from typing import Any

from .synthetic import make_field, make_stack
from .synthetic.dataset import image_seed
from .synthetic.layers import image_layer_data

__all__ = [
    "SAMPLES",
    "SAMPLE_SEED",
    "phase_contrast_stack",
    "phase_low_stack",
    "stained_field",
    "brightfield_field",
]

SAMPLE_SEED = 7
_SEED = image_seed(SAMPLE_SEED, 0)  # first image of a dataset written with --seed 7


def phase_contrast_stack() -> list[tuple[Any, dict, str]]:
    """20-frame phase-contrast video (high magnification, about 20-55 swimming sperm)."""
    return [
        image_layer_data(make_stack("phase-high", n_frames=20, seed=_SEED), "phase-contrast sample")
    ]


def phase_low_stack() -> list[tuple[Any, dict, str]]:
    """10-frame low-magnification phase-contrast video with hundreds of sperm."""
    return [image_layer_data(make_stack("phase-low", n_frames=10, seed=_SEED), "phase-low sample")]


def stained_field() -> list[tuple[Any, dict, str]]:
    """One stained colour field (100x oil, 1280x1024 RGB) with crossing tails."""
    return [image_layer_data(make_field("stained", seed=_SEED, crossings=1), "stained sample")]


def brightfield_field() -> list[tuple[Any, dict, str]]:
    """One unstained brightfield field (grey, low contrast)."""
    return [image_layer_data(make_field("brightfield", seed=_SEED), "brightfield sample")]


SAMPLES = {
    "phase_stack": phase_contrast_stack,
    "phase_low_stack": phase_low_stack,
    "stained_field": stained_field,
    "brightfield_field": brightfield_field,
}
