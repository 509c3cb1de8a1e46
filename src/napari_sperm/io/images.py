"""Qt-free image reader: TIFF/OME-TIFF stacks, PNG/JPEG images, folders of frames.

Everything here returns frames-first arrays (``(H, W)``, ``(H, W, 3)``,
``(F, H, W)``, ``(F, H, W, 3)``, ...) wrapped in :class:`ImageData`, either
in memory (NumPy) or lazily (a Dask array with one frame per chunk, each
chunk read from disk only when computed). All input problems are reported as
:class:`~napari_sperm.io.errors.SpermInputError` with a one-line message.

The formats live in their own modules (:mod:`.tiff`, :mod:`.pil_images`,
:mod:`.folders`); this module picks one by path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from ._common import (
    PIL_SUFFIXES,
    SUPPORTED_SUFFIXES,
    TIFF_SUFFIXES,
    WHAT_TO_OPEN,
    is_frame_file,
    suffix_of,
)
from .errors import SpermInputError
from .folders import natural_key, read_folder  # noqa: F401  (natural_key re-exported)
from .image_data import ImageData
from .lazy import LAZY_ENV_VAR, default_lazy_threshold
from .pil_images import read_pil
from .tiff import read_tiff
from .units import normalise_unit  # noqa: F401  (re-exported)

__all__ = [
    "LAZY_ENV_VAR",
    "SUPPORTED_SUFFIXES",
    "ImageData",
    "default_lazy_threshold",
    "is_supported",
    "read_image",
]

PathLike = Union[str, "os.PathLike[str]"]


def _as_source(path: PathLike) -> str:
    """Return the path as a string, exactly as given.

    Parameters
    ----------
    path : str or os.PathLike
        Path.

    Returns
    -------
    str
        ``os.fspath(path)`` (bytes decoded).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    return os.fsdecode(os.fspath(path))


def is_supported(path: PathLike) -> bool:
    """Cheap check whether :func:`read_image` can handle ``path``.

    Looks only at the file name, or for a directory at whether it holds at
    least one visible supported image file. Nothing is decoded.

    Parameters
    ----------
    path : str or os.PathLike
        Candidate path.

    Returns
    -------
    bool
        True for ``.tif/.tiff/.ome.tif/.ome.tiff/.png/.jpg/.jpeg`` files and
        folders of such frames.
    """
    try:
        p = Path(_as_source(path))
    except TypeError:
        return False
    try:
        if p.is_dir():
            with os.scandir(p) as it:
                return any(is_frame_file(entry) for entry in it)
    except OSError:
        return False
    return suffix_of(p) in SUPPORTED_SUFFIXES


def read_image(
    path: PathLike,
    lazy: bool | None = None,
    lazy_threshold_bytes: int | None = None,
) -> ImageData:
    """Open a microscopy image, stack or folder of frames.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tif/.tiff`` (ImageJ, OME or plain; single image or multi-page
        stack), a ``.png/.jpg/.jpeg`` image, or a folder of such frames
        (stacked in natural name order, hidden and other files ignored).
    lazy : bool, optional
        True: return a Dask array with one frame per chunk, read only when
        computed. False: read everything into memory. None (default): lazy
        when the image is larger than ``lazy_threshold_bytes``.
    lazy_threshold_bytes : int, optional
        Size limit for automatic lazy loading. Default: the
        ``NAPARI_SPERM_LAZY_BYTES`` environment variable if set, else a
        quarter of the available memory (2 GiB if that is unknown).

    Returns
    -------
    ImageData
        Pixels (dtype as stored), axes, RGB flag, pixel size and unit.

    Raises
    ------
    SpermInputError
        If the path does not exist, has an unsupported type, is corrupt,
        empty, or (for folders) holds frames of different shape or dtype.
    """
    source = _as_source(path)
    p = Path(source)
    if not p.exists():
        raise SpermInputError(
            f"Cannot read {source!r}: no such file or folder. "
            f"Check the path, then {WHAT_TO_OPEN[0].lower()}{WHAT_TO_OPEN[1:]}"
        )
    if p.is_dir():
        return read_folder(source, lazy, lazy_threshold_bytes)
    suffix = suffix_of(p)
    if suffix in TIFF_SUFFIXES:
        return read_tiff(source, lazy, lazy_threshold_bytes)
    if suffix in PIL_SUFFIXES:
        return read_pil(source, lazy, lazy_threshold_bytes)
    shown = suffix or "(no extension)"
    raise SpermInputError(
        f"Cannot read {source!r}: unsupported file type {shown!r}. Supported: "
        f"{', '.join(SUPPORTED_SUFFIXES)} files or a folder of such frames."
    )
