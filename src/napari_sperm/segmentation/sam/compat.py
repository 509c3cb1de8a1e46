"""Import ``segment_anything`` (and ``mobile_sam``) on machines where torchvision is unusable.

segment-anything 1.0 imports four names from torchvision: ``resize`` and ``to_pil_image`` (a PIL
bilinear resize of the input image) and ``batched_nms`` / ``box_area`` (automatic mask generator).
On machines with the CPU build of torch, every torchvision wheel on PyPI is a CUDA build whose
import fails (``RuntimeError: operator torchvision::nms does not exist``), or torchvision is simply
not installed. This module supplies those names from our own small implementations.

The stubs are placed in :data:`sys.modules` **only** when ``import torchvision`` fails, **only** for
the duration of the import of ``segment_anything`` / ``mobile_sam`` (their ``from torchvision ...
import`` statements bind the functions at import time), and are removed again afterwards, so any
later ``import torchvision`` elsewhere behaves exactly as it would without napari-sperm. When a
working torchvision exists, :data:`sys.modules` is never touched.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

__all__ = [
    "batched_nms",
    "box_area",
    "import_mobile_sam",
    "import_segment_anything",
    "nms",
    "resize",
    "to_pil_image",
    "torchvision_stubs",
    "torchvision_usable",
]

STUB_MARK = "__napari_sperm_stub__"
_TV_NAMES = (
    "torchvision",
    "torchvision.transforms",
    "torchvision.transforms.functional",
    "torchvision.ops",
    "torchvision.ops.boxes",
)
_TIMM_NAMES = ("timm", "timm.models", "timm.models.layers", "timm.models.registry")


# --------------------------------------------------------------------------------------------
# The four torchvision functions segment-anything uses, in plain torch / PIL.
# --------------------------------------------------------------------------------------------


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.

    Parameters
    ----------
    boxes : (N, 4) tensor

    Returns
    -------
    (N,) tensor
    """
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _iou_one(box: torch.Tensor, boxes: torch.Tensor, areas: torch.Tensor) -> torch.Tensor:
    """IoU of one ``(4,)`` box with ``(N, 4)`` boxes whose areas are ``areas``."""
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area = (box[2] - box[0]) * (box[3] - box[1])
    union = area + areas - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, as ``torchvision.ops.nms``.

    Boxes are visited by decreasing score; each kept box suppresses every later box whose IoU with
    it is greater than ``iou_threshold``.

    Parameters
    ----------
    boxes : (N, 4) tensor
        ``(x1, y1, x2, y2)``.
    scores : (N,) tensor
    iou_threshold : float

    Returns
    -------
    (K,) int64 tensor
        Indices of the kept boxes, by decreasing score.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    b = boxes.detach().to(torch.float64)
    order = torch.argsort(scores.detach(), descending=True, stable=True)
    b = b[order]
    areas = box_area(b)
    alive = torch.ones(len(b), dtype=torch.bool, device=b.device)
    keep = []
    for i in range(len(b)):
        if not bool(alive[i]):
            continue
        keep.append(i)
        rest = slice(i + 1, len(b))
        alive[rest] &= _iou_one(b[i], b[rest], areas[rest]) <= iou_threshold
    return order[torch.as_tensor(keep, dtype=torch.int64, device=b.device)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS done independently per category ``idxs``, as ``torchvision.ops.batched_nms``.

    Parameters
    ----------
    boxes : (N, 4) tensor
    scores : (N,) tensor
    idxs : (N,) int tensor
        Category of each box; boxes of different categories never suppress each other.
    iou_threshold : float

    Returns
    -------
    (K,) int64 tensor
        Indices of the kept boxes, by decreasing score.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    b = boxes.detach().to(torch.float64)
    shift = idxs.to(b) * (b.max() - b.min() + 1)
    return nms(b + shift[:, None], scores, iou_threshold)


def to_pil_image(pic, mode: str | None = None) -> Image.Image:
    """A numpy ``(H, W[, C])`` array or torch ``(C, H, W)`` tensor as a PIL image.

    Floating-point tensors are taken as 0..1 and scaled to 0..255 (torchvision's convention).

    Parameters
    ----------
    pic : numpy array or torch tensor
    mode : str, optional
        PIL mode, e.g. ``"RGB"``.

    Returns
    -------
    PIL.Image.Image
    """
    if isinstance(pic, Image.Image):
        return pic
    if isinstance(pic, torch.Tensor):
        arr = pic.detach().cpu()
        if arr.is_floating_point():
            arr = (arr * 255).to(torch.uint8)
        arr = arr.numpy()
        if arr.ndim == 3:
            arr = np.moveaxis(arr, 0, -1)
    else:
        arr = np.asarray(pic)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    image = Image.fromarray(np.ascontiguousarray(arr))
    return image.convert(mode) if mode and image.mode != mode else image


def resize(img, size, interpolation=None, max_size=None, antialias=True):
    """Resize a PIL image, as ``torchvision.transforms.functional.resize`` (bilinear).

    Parameters
    ----------
    img : PIL.Image.Image
    size : int or (int, int)
        ``(height, width)``; a single int sets the shorter side, keeping the aspect ratio.
    interpolation, max_size, antialias
        Accepted for compatibility; PIL's bilinear filter is always used (``max_size`` caps the
        longer side when ``size`` is an int).

    Returns
    -------
    PIL.Image.Image
    """
    if not isinstance(img, Image.Image):
        raise TypeError("the torchvision compatibility resize only accepts PIL images")
    w, h = img.size
    if isinstance(size, int) or (isinstance(size, Sequence) and len(size) == 1):
        short = int(size if isinstance(size, int) else size[0])
        scale = short / min(w, h)
        if max_size is not None and max(w, h) * scale > max_size:
            scale = max_size / max(w, h)
        new_h, new_w = int(round(h * scale)), int(round(w * scale))
    else:
        new_h, new_w = int(size[0]), int(size[1])
    return img.resize((new_w, new_h), Image.BILINEAR)


# --------------------------------------------------------------------------------------------
# A few timm helpers MobileSAM imports (only used when mobile_sam is installed).
# --------------------------------------------------------------------------------------------


class _DropPath(torch.nn.Module):
    """Stochastic depth (identity at inference)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep) / keep


def _to_2tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


def _trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    return torch.nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)


def _register_model(fn):
    return fn


# --------------------------------------------------------------------------------------------
# Installing the stubs.
# --------------------------------------------------------------------------------------------


def _is_stub(module: object) -> bool:
    return bool(getattr(module, STUB_MARK, False))


def torchvision_usable() -> bool:
    """Whether a real torchvision with the names segment-anything needs can be imported.

    A failed import leaves partly imported ``torchvision*`` modules behind; they are removed so a
    later attempt starts clean. A working torchvision is imported (and left) as usual.

    Returns
    -------
    bool
    """
    existing = sys.modules.get("torchvision")
    if existing is not None and _is_stub(existing):
        return False
    try:
        importlib.import_module("torchvision")
        importlib.import_module("torchvision.ops.boxes")
        importlib.import_module("torchvision.transforms.functional")
        return True
    except (ImportError, RuntimeError, OSError, AttributeError):
        _drop_modules("torchvision", real_only=True)
        return False


def _drop_modules(root: str, real_only: bool = False) -> None:
    """Remove ``root`` and its submodules from :data:`sys.modules`."""
    for name in [n for n in sys.modules if n == root or n.startswith(root + ".")]:
        if real_only and _is_stub(sys.modules[name]):
            continue
        sys.modules.pop(name, None)


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name, "napari-sperm stand-in (see napari_sperm.segmentation.sam.compat)")
    setattr(mod, STUB_MARK, True)
    mod.__path__ = []  # a package, so submodule imports resolve through sys.modules
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


def _torchvision_stub_modules() -> dict[str, types.ModuleType]:
    functional = _module(
        "torchvision.transforms.functional", resize=resize, to_pil_image=to_pil_image
    )
    boxes = _module("torchvision.ops.boxes", nms=nms, batched_nms=batched_nms, box_area=box_area)
    ops = _module(
        "torchvision.ops", boxes=boxes, nms=nms, batched_nms=batched_nms, box_area=box_area
    )
    transforms = _module("torchvision.transforms", functional=functional)
    root = _module(
        "torchvision", __version__="0.0+napari_sperm.stub", ops=ops, transforms=transforms
    )
    mods = [root, transforms, functional, ops, boxes]
    return {m.__name__: m for m in mods}


def _timm_stub_modules() -> dict[str, types.ModuleType]:
    layers = _module(
        "timm.models.layers",
        DropPath=_DropPath,
        to_2tuple=_to_2tuple,
        trunc_normal_=_trunc_normal_,
    )
    registry = _module("timm.models.registry", register_model=_register_model)
    models = _module("timm.models", layers=layers, registry=registry)
    root = _module("timm", models=models)
    return {m.__name__: m for m in (root, models, layers, registry)}


@contextlib.contextmanager
def _temporary_modules(stubs: dict[str, types.ModuleType]) -> Iterator[None]:
    """Put ``stubs`` into :data:`sys.modules` for the block, then remove exactly those again."""
    added = [name for name in stubs if name not in sys.modules]
    for name in added:
        sys.modules[name] = stubs[name]
    try:
        yield
    finally:
        for name in added:
            if sys.modules.get(name) is stubs[name]:
                del sys.modules[name]


@contextlib.contextmanager
def torchvision_stubs() -> Iterator[bool]:
    """Context in which ``torchvision`` imports resolve, to our stand-ins if necessary.

    Yields
    ------
    bool
        True when the stand-ins are active (torchvision unusable), False when the real
        torchvision is used and nothing was changed.
    """
    if torchvision_usable():
        yield False
        return
    with _temporary_modules(_torchvision_stub_modules()):
        yield True


def import_segment_anything() -> types.ModuleType:
    """Import and return the ``segment_anything`` package, with or without torchvision.

    Returns
    -------
    module
        ``segment_anything`` (``SamPredictor``, ``SamAutomaticMaskGenerator``,
        ``sam_model_registry``, ``modeling``).

    Raises
    ------
    ImportError
        When segment-anything itself is not installed.
    """
    done = sys.modules.get("segment_anything")
    if done is not None and hasattr(done, "SamAutomaticMaskGenerator"):
        return done
    _drop_modules("segment_anything")  # leftovers of a failed plain `import segment_anything`
    with torchvision_stubs():
        mod = importlib.import_module("segment_anything")
        importlib.import_module("segment_anything.automatic_mask_generator")
        importlib.import_module("segment_anything.utils.transforms")
    return mod


def import_mobile_sam() -> types.ModuleType | None:
    """Import and return ``mobile_sam`` when installed (its timm helpers supplied); else None.

    Returns
    -------
    module or None
    """
    if importlib.util.find_spec("mobile_sam") is None:
        return None
    done = sys.modules.get("mobile_sam")
    if done is not None and hasattr(done, "sam_model_registry"):
        return done
    _drop_modules("mobile_sam")
    timm_ok = importlib.util.find_spec("timm") is not None
    if timm_ok:
        try:
            importlib.import_module("timm.models.layers")
            importlib.import_module("timm.models.registry")
        except Exception:  # noqa: BLE001 - timm without torchvision fails in many ways
            _drop_modules("timm", real_only=True)
            timm_ok = False
    with torchvision_stubs(), _temporary_modules({} if timm_ok else _timm_stub_modules()):
        return importlib.import_module("mobile_sam")
