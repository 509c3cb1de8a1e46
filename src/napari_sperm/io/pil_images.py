"""PNG / JPEG reading through Pillow (grey or RGB, alpha dropped)."""

from __future__ import annotations

from functools import partial

import numpy as np
from PIL import Image

from ._common import WHAT_TO_OPEN, check_not_empty, product, short
from .errors import SpermInputError
from .image_data import ImageData
from .lazy import file_token, lazy_frames, want_lazy

__all__ = ["probe_pil", "read_pil", "read_pil_array"]

_PIL_GREY8 = {"1", "L", "LA", "La"}
_PIL_UINT16 = {"I;16", "I;16L", "I;16B", "I;16N"}
_PIL_NATIVE = {"L": np.uint8, "I": np.int32, "F": np.float32}


def _pil_target(mode: str) -> tuple[str | None, np.dtype, tuple[int, ...]]:
    """Decide how a Pillow mode is converted.

    Parameters
    ----------
    mode : str
        Pillow image mode.

    Returns
    -------
    convert_to : str or None
        Mode to ``convert`` to first, or None to keep.
    dtype : numpy.dtype
        Resulting array dtype.
    samples : tuple of int
        ``(3,)`` for RGB results, ``()`` for grey.
    """
    if mode == "RGB":
        return None, np.dtype(np.uint8), (3,)
    if mode in _PIL_GREY8:
        return (None if mode == "L" else "L"), np.dtype(np.uint8), ()
    if mode in _PIL_UINT16:
        return None, np.dtype(np.uint16), ()
    if mode in _PIL_NATIVE:
        return None, np.dtype(_PIL_NATIVE[mode]), ()
    return "RGB", np.dtype(np.uint8), (3,)


def _pil_error(source: str, exc: BaseException) -> SpermInputError:
    """Explain why a PNG/JPEG could not be read.

    Parameters
    ----------
    source : str
        File path.
    exc : BaseException
        Original error.

    Returns
    -------
    SpermInputError
        One-line error to raise ``from exc``.
    """
    return SpermInputError(
        f"Cannot read {source!r}: not a readable PNG/JPEG image ({short(exc)}). {WHAT_TO_OPEN}"
    )


def probe_pil(source: str) -> tuple[tuple[int, ...], np.dtype, str]:
    """Shape, dtype and axes of a PNG/JPEG after conversion, without decoding pixels.

    Parameters
    ----------
    source : str
        File path.

    Returns
    -------
    shape : tuple of int
        ``(H, W)`` or ``(H, W, 3)``.
    dtype : numpy.dtype
        Array dtype.
    axes : str
        ``"YX"`` or ``"YXS"``.
    """
    try:
        with Image.open(source) as img:
            width, height = img.size
            _, dtype, samples = _pil_target(img.mode)
    except Exception as exc:  # Pillow raises many types for broken files
        raise _pil_error(source, exc) from exc
    return (int(height), int(width)) + samples, dtype, "YXS" if samples else "YX"


def read_pil_array(source: str) -> np.ndarray:
    """Decode a PNG/JPEG to an array (RGB or grey, alpha dropped).

    Parameters
    ----------
    source : str
        File path.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` or ``(H, W, 3)``; 16-bit grey stays uint16.
    """
    try:
        with Image.open(source) as img:
            img.load()
            convert_to, dtype, _ = _pil_target(img.mode)
            if convert_to is not None:
                img = img.convert(convert_to)
            arr = np.asarray(img)
    except Exception as exc:  # Pillow raises many types for broken files
        raise _pil_error(source, exc) from exc
    return np.ascontiguousarray(arr.astype(dtype, copy=False))


def _read_single_pil(
    source: str, shape: tuple[int, ...], dtype: np.dtype, index: int
) -> np.ndarray:
    """Lazy-chunk reader for a single PNG/JPEG (``index`` is always 0).

    Parameters
    ----------
    source : str
        File path.
    shape : tuple of int
        Expected shape.
    dtype : numpy.dtype
        Expected dtype.
    index : int
        Ignored frame index.

    Returns
    -------
    numpy.ndarray
        The decoded image.
    """
    arr = read_pil_array(source)
    if arr.shape != shape or arr.dtype != dtype:
        raise SpermInputError(
            f"Cannot read {source!r}: the image changed since it was opened "
            f"({arr.shape} {arr.dtype}, expected {shape} {dtype}). Re-open it."
        )
    return arr


def read_pil(source: str, lazy: bool | None, threshold: int | None) -> ImageData:
    """Read a single PNG/JPEG image.

    Parameters
    ----------
    source : str
        File path.
    lazy : bool or None
        See :func:`~napari_sperm.io.read_image`.
    threshold : int or None
        See :func:`~napari_sperm.io.read_image`.

    Returns
    -------
    ImageData
        ``(H, W)`` grey or ``(H, W, 3)`` RGB image.
    """
    shape, dtype, axes = probe_pil(source)
    check_not_empty(source, shape)
    use_lazy = want_lazy(lazy, product(shape) * dtype.itemsize, threshold)
    if use_lazy:
        reader = partial(_read_single_pil, source, shape, dtype)
        data = lazy_frames(reader, (), shape, dtype, file_token(source))
    else:
        data = read_pil_array(source)
    return ImageData(
        data=data,
        rgb=len(shape) == 3,
        axes=axes,
        scale=None,
        unit=None,
        lazy=use_lazy,
        source=source,
    )
