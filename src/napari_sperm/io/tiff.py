"""TIFF / OME-TIFF / ImageJ reading: series layout and per-frame readers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import dask.array as da
import numpy as np
import tifffile

from ._common import WHAT_TO_OPEN, check_not_empty, is_rgb, product, short
from .calibration import scale_for_axes, tiff_calibration
from .errors import SpermInputError
from .image_data import ImageData
from .lazy import file_token, lazy_frames, want_lazy

__all__ = ["probe_tiff", "read_tiff"]

_Seq = TypeVar("_Seq", str, tuple)


@dataclass(frozen=True)
class _TiffLayout:
    """How a TIFF series maps onto frames (all plain, picklable values)."""

    shape: tuple[int, ...]  # series shape as stored (squeezed)
    axes: str
    dtype: np.dtype
    lead_shape: tuple[int, ...]  # frame (page) axes
    frame_shape: tuple[int, ...]  # one page
    samples_axis: int | None  # index of a non-trailing RGB 'S' axis to move last
    contiguous_offset: int | None  # file offset of contiguous, final pixel data
    file_dtype: str  # dtype with the file's byte order
    page_offsets: tuple[int, ...] | None  # IFD offset of each page, if all present


def _move_to_end(seq: _Seq, index: int | None) -> _Seq:
    """Move item ``index`` of a shape or axes string to the end (None: keep)."""
    if index is None:
        return seq
    return seq[:index] + seq[index + 1 :] + seq[index : index + 1]


def _tiff_error(source: str, exc: BaseException) -> SpermInputError:
    """Explain why a TIFF file could not be opened.

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
    if isinstance(exc, tifffile.TiffFileError) and "not a" in str(exc).lower():
        what = "not a TIFF file"
    else:
        what = f"the TIFF file is corrupt or truncated ({short(exc)})"
    return SpermInputError(f"Cannot read {source!r}: {what}. {WHAT_TO_OPEN}")


@contextmanager
def _tiff_errors(source: str) -> Iterator[None]:
    """Turn any error of tifffile into a :class:`SpermInputError`.

    Parameters
    ----------
    source : str
        File path for messages.

    Yields
    ------
    None
    """
    try:
        yield
    except (SpermInputError, MemoryError):
        raise
    except Exception as exc:  # tifffile raises many types for broken files
        raise _tiff_error(source, exc) from exc


def _check_file_length(source: str, needed: int) -> None:
    """Raise if a file is shorter than its pixel data claims.

    Parameters
    ----------
    source : str
        File path.
    needed : int
        Offset just past the last pixel byte.

    Returns
    -------
    None
    """
    size = os.path.getsize(source)
    if size < needed:
        raise SpermInputError(
            f"Cannot read {source!r}: the TIFF file is truncated ({size} bytes, but its pixel data "
            f"needs {needed}). Copy or export the file again."
        )


def _tiff_layout(
    tif: tifffile.TiffFile, source: str
) -> tuple[_TiffLayout, tifffile.TiffPageSeries]:
    """Describe the first series of an open TIFF file.

    Parameters
    ----------
    tif : tifffile.TiffFile
        Open file.
    source : str
        Path for messages.

    Returns
    -------
    layout : _TiffLayout
        Shapes, axes and where the pixel data live.
    series : tifffile.TiffPageSeries
        The first series.
    """
    if not tif.series:
        raise SpermInputError(
            f"Cannot read {source!r}: the TIFF file contains no images. {WHAT_TO_OPEN}"
        )
    series = tif.series[0]
    shape = tuple(int(s) for s in series.shape)
    axes = str(series.axes)
    check_not_empty(source, shape)
    page = series.keyframe
    frame_shape = tuple(int(s) for s in page.shape)
    nframe = len(frame_shape)
    if nframe <= len(shape) and shape[len(shape) - nframe :] == frame_shape:
        lead_shape = shape[: len(shape) - nframe]
    else:  # unusual layout: treat the whole series as one frame
        lead_shape, frame_shape = (), shape

    samples_axis = None
    s_pos = axes.find("S")
    is_rgb_photometric = int(getattr(page, "photometric", 0) or 0) == int(tifffile.PHOTOMETRIC.RGB)
    if 0 <= s_pos < len(axes) - 1 and shape[s_pos] in (3, 4) and is_rgb_photometric:
        samples_axis = s_pos

    simple = series.transform is None and not series.is_multifile
    contiguous = offsets = None
    if (
        simple
        and series.dataoffset is not None
        and series.dtype.kind in "uif"
        and getattr(page, "bitspersample", 0) == series.dtype.itemsize * 8
    ):
        contiguous = int(series.dataoffset)
        _check_file_length(source, contiguous + product(shape) * series.dtype.itemsize)
    elif simple and len(series) == product(lead_shape):
        pages = list(series)
        if all(p is not None and getattr(p, "offset", None) for p in pages):
            offsets = tuple(int(p.offset) for p in pages)

    layout = _TiffLayout(
        shape=shape,
        axes=axes,
        dtype=np.dtype(series.dtype),
        lead_shape=lead_shape,
        frame_shape=frame_shape,
        samples_axis=samples_axis,
        contiguous_offset=contiguous,
        file_dtype=np.dtype(series.dtype).newbyteorder(tif.byteorder).str,
        page_offsets=offsets,
    )
    return layout, series


def _frame_error(source: str, index: int, exc: BaseException) -> SpermInputError:
    """Build the error for a frame that cannot be read on compute.

    Parameters
    ----------
    source : str
        File path.
    index : int
        Flat frame index.
    exc : BaseException
        Original error.

    Returns
    -------
    SpermInputError
        One-line error to raise ``from exc``.
    """
    return SpermInputError(
        f"Cannot read frame {index} of {source!r}: {short(exc)}. The file may be truncated, "
        "corrupt or changed since it was opened; re-open it or re-export the stack."
    )


def _fit_frame(source: str, index: int, frame: np.ndarray, layout: _TiffLayout) -> np.ndarray:
    """Check a decoded frame against the expected shape and dtype.

    Parameters
    ----------
    source : str
        File path.
    index : int
        Flat frame index.
    frame : numpy.ndarray
        Decoded frame.
    layout : _TiffLayout
        Expected layout.

    Returns
    -------
    numpy.ndarray
        ``frame`` reshaped to ``layout.frame_shape`` with ``layout.dtype``.
    """
    frame = np.asarray(frame)
    if frame.size != product(layout.frame_shape):
        raise SpermInputError(
            f"Cannot read frame {index} of {source!r}: it has shape {frame.shape}, expected "
            f"{layout.frame_shape}. Re-export the stack so all frames have the same size."
        )
    return frame.astype(layout.dtype, copy=False).reshape(layout.frame_shape)


def _read_contiguous_frame(source: str, layout: _TiffLayout, index: int) -> np.ndarray:
    """Read one uncompressed frame straight from its byte offset.

    Parameters
    ----------
    source : str
        File path.
    layout : _TiffLayout
        Layout with ``contiguous_offset`` set.
    index : int
        Flat frame index.

    Returns
    -------
    numpy.ndarray
        Frame of shape ``layout.frame_shape`` and native-order dtype.
    """
    count = product(layout.frame_shape)
    file_dtype = np.dtype(layout.file_dtype)
    assert layout.contiguous_offset is not None
    try:
        with open(source, "rb") as fh:
            fh.seek(layout.contiguous_offset + index * count * file_dtype.itemsize)
            frame = np.fromfile(fh, dtype=file_dtype, count=count)
        if frame.size != count:
            raise EOFError(f"expected {count} values, found {frame.size} (end of file)")
    except (OSError, ValueError, EOFError) as exc:
        raise _frame_error(source, index, exc) from exc
    return frame.astype(layout.dtype, copy=False).reshape(layout.frame_shape)


def _read_page_frame(source: str, layout: _TiffLayout, index: int) -> np.ndarray:
    """Read one page of a (possibly compressed) TIFF via its IFD offset.

    Parameters
    ----------
    source : str
        File path.
    layout : _TiffLayout
        Layout with ``page_offsets`` set.
    index : int
        Flat frame index.

    Returns
    -------
    numpy.ndarray
        Frame of shape ``layout.frame_shape``.
    """
    assert layout.page_offsets is not None
    try:
        with tifffile.TiffFile(source) as tif:
            tif.filehandle.seek(layout.page_offsets[index])
            frame = tifffile.TiffPage(tif, index=index).asarray()
    except Exception as exc:  # tifffile raises many types for broken files
        raise _frame_error(source, index, exc) from exc
    return _fit_frame(source, index, frame, layout)


def _read_series_frame(source: str, layout: _TiffLayout, index: int) -> np.ndarray:
    """Read one frame through tifffile's series machinery (slow fallback).

    Parameters
    ----------
    source : str
        File path.
    layout : _TiffLayout
        Layout of series 0.
    index : int
        Flat frame index.

    Returns
    -------
    numpy.ndarray
        Frame of shape ``layout.frame_shape``.
    """
    try:
        with tifffile.TiffFile(source) as tif:
            if layout.lead_shape:
                frame = tif.asarray(series=0, key=index)
            else:
                frame = tif.series[0].asarray()
    except Exception as exc:  # tifffile raises many types for broken files
        raise _frame_error(source, index, exc) from exc
    return _fit_frame(source, index, frame, layout)


def _lazy_tiff(source: str, layout: _TiffLayout) -> da.Array:
    """Open a TIFF series as a Dask array, one page per chunk.

    Parameters
    ----------
    source : str
        File path.
    layout : _TiffLayout
        Layout of series 0.

    Returns
    -------
    dask.array.Array
        Series shape as stored (samples not yet moved).
    """
    if layout.contiguous_offset is not None:
        reader = _read_contiguous_frame
    elif layout.page_offsets is not None:
        reader = _read_page_frame
    else:
        reader = _read_series_frame
    return lazy_frames(
        partial(reader, source, layout),
        layout.lead_shape,
        layout.frame_shape,
        layout.dtype,
        (file_token(source), layout),
    )


def probe_tiff(source: str) -> tuple[tuple[int, ...], np.dtype, str]:
    """Shape, dtype and axes a TIFF would be read with, without reading pixels.

    Parameters
    ----------
    source : str
        File path.

    Returns
    -------
    shape : tuple of int
        Final shape (RGB samples last).
    dtype : numpy.dtype
        Data type as stored.
    axes : str
        Final axis letters.
    """
    with _tiff_errors(source), tifffile.TiffFile(source) as tif:
        layout, _ = _tiff_layout(tif, source)
    return (
        _move_to_end(layout.shape, layout.samples_axis),
        layout.dtype,
        _move_to_end(layout.axes, layout.samples_axis),
    )


def _samples_last(data: Any, samples_axis: int | None) -> Any:
    """Move a planar RGB samples axis of NumPy or Dask ``data`` to the end."""
    if samples_axis is None:
        return data
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(np.moveaxis(data, samples_axis, -1))
    return da.moveaxis(data, samples_axis, -1)


def read_tiff(source: str, lazy: bool | None, threshold: int | None) -> ImageData:
    """Read a TIFF / OME-TIFF / ImageJ hyperstack.

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
        The first series of the file.
    """
    with _tiff_errors(source), tifffile.TiffFile(source) as tif:
        layout, series = _tiff_layout(tif, source)
        calibration = tiff_calibration(tif)
        use_lazy = want_lazy(lazy, product(layout.shape) * layout.dtype.itemsize, threshold)
        data = _lazy_tiff(source, layout) if use_lazy else series.asarray()
    if not use_lazy and tuple(data.shape) != layout.shape:
        data = np.asarray(data).reshape(layout.shape)
    data = _samples_last(data, layout.samples_axis)
    axes = _move_to_end(layout.axes, layout.samples_axis)
    rgb = is_rgb(data.shape, axes)
    scale, unit = scale_for_axes(axes, rgb, calibration)
    return ImageData(
        data=data, rgb=rgb, axes=axes, scale=scale, unit=unit, lazy=use_lazy, source=source
    )
