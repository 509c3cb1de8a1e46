"""The SAM engine of "Segment heads and tails": prompted cascade, checkpoints, torchvision shim.

Qt-free. :func:`load_sam` builds a published SAM (vit_b / vit_l / vit_h, MobileSAM when the
``mobile_sam`` package is installed) from a checkpoint found by :func:`resolve_checkpoint`;
:func:`sam_cascade` / :func:`iter_sam_cascade` segment one frame from the detector's head boxes.
segment-anything is imported through :func:`import_segment_anything`, which supplies the four
torchvision functions it needs when torchvision is unusable (see :mod:`.compat`).

Examples
--------
>>> from napari_sperm.synthetic import make_field
>>> from napari_sperm.segmentation.sam import sam_cascade, tiny_sam
>>> fld = make_field("phase-high", seed=1, n_sperm=4)
>>> boxes = [t.head_box() for t in fld.sperm if t.head_box()]
>>> res = sam_cascade(fld.image, boxes, tiny_sam())  # random weights: plumbing only
>>> len(res.heads) == len(boxes), res.residual.shape
(True, (480, 640))
"""

from .cascade import CascadeResult, iter_sam_cascade, sam_cascade, tail_test_settings
from .checkpoints import (
    CHECKPOINTS,
    ENV_CACHE,
    ENV_CHECKPOINT,
    SamUnavailable,
    cache_dir,
    download_checkpoint,
    resolve_checkpoint,
)
from .compat import import_segment_anything
from .model import MODEL_TYPES, SamHandle, load_sam, tiny_sam
from .params import CASCADE_MODES, SamCascadeParams

__all__ = [
    "CASCADE_MODES",
    "CHECKPOINTS",
    "ENV_CACHE",
    "ENV_CHECKPOINT",
    "MODEL_TYPES",
    "CascadeResult",
    "SamCascadeParams",
    "SamHandle",
    "SamUnavailable",
    "cache_dir",
    "download_checkpoint",
    "import_segment_anything",
    "iter_sam_cascade",
    "load_sam",
    "resolve_checkpoint",
    "sam_cascade",
    "tail_test_settings",
    "tiny_sam",
]
