"""Synthetic sperm microscopy with exact ground truth.

The project's test bed, sample data and detector training data. Four modalities are imitated
(``stained``, ``phase-low``, ``phase-high``, ``brightfield``); see :mod:`.modalities` for the numbers.

Examples
--------
>>> from napari_sperm.synthetic import make_field
>>> fld = make_field("phase-high", seed=1, n_sperm=20)
>>> fld.image.shape, len(fld.sperm) >= 20
((480, 640), True)
"""

from .dataset import write_dataset
from .field import (
    Realism,
    SpermTruth,
    SyntheticField,
    SyntheticStack,
    iter_stack,
    make_field,
    make_stack,
)
from .modalities import (
    HELD_OUT_MODALITIES,
    MODALITIES,
    Modality,
    get_modality,
    modality_names,
    modality_weights,
    parse_modality_mix,
)
from .raster import CropMask

__all__ = [
    "HELD_OUT_MODALITIES",
    "MODALITIES",
    "CropMask",
    "Modality",
    "Realism",
    "SpermTruth",
    "SyntheticField",
    "SyntheticStack",
    "get_modality",
    "iter_stack",
    "make_field",
    "make_stack",
    "modality_names",
    "modality_weights",
    "parse_modality_mix",
    "write_dataset",
]
