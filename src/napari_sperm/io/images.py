"""Qt-free image reader: TIFF/OME-TIFF stacks, PNG/JPEG images, folders of frames.

Everything here returns frames-first arrays (``(H, W)``, ``(H, W, 3)``,
``(F, H, W)``, ``(F, H, W, 3)``, ...) wrapped in :class:`ImageData`, either
in memory (NumPy) or lazily (a Dask array with one frame per chunk, each
chunk read from disk only when computed). All input problems are reported as
:class:`~napari_sperm.io.errors.SpermInputError` with a one-line message.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Union

import dask.array as da
import numpy as np
import tifffile
from dask.base import tokenize
from PIL import Image

from .errors import SpermInputError, one_line

__all__ = [
    "LAZY_ENV_VAR",
    "SUPPORTED_SUFFIXES",
    "ImageData",
    "default_lazy_threshold",
    "is_supported",
    "read_image",
]

PathLike = Union[str, "os.PathLike[str]"]

SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".tif",
    ".tiff",
    ".ome.tif",
    ".ome.tiff",
    ".png",
    ".jpg",
    ".jpeg",
)
"""File name endings the reader accepts (case-insensitive)."""

_TIFF_SUFFIXES = (".tif", ".tiff")
_PIL_SUFFIXES = (".png", ".jpg", ".jpeg")

LAZY_ENV_VAR = "NAPARI_SPERM_LAZY_BYTES"
"""Environment variable overriding the default lazy-loading threshold (bytes)."""

_FALLBACK_LAZY_BYTES = 2 * 1024**3

_WHAT_TO_OPEN = "Open a .tif/.tiff (or .ome.tif) stack, a .png/.jpg image, or a folder of .tif/.png/.jpg frames."

_UNIT_ALIASES = {
    "um": "um",
    "µm": "um",  # micro sign U+00B5
    "μm": "um",  # greek mu U+03BC
    "\\u00b5m": "um",  # ImageJ's escaped form
    "\\u03bcm": "um",
    "micron": "um",
    "microns": "um",
    "micrometer": "um",
    "micrometre": "um",
    "micrometers": "um",
    "micrometres": "um",
    "nm": "nm",
    "nanometer": "nm",
    "nanometre": "nm",
    "mm": "mm",
    "millimeter": "mm",
    "millimetre": "mm",
    "cm": "cm",
    "centimeter": "cm",
    "centimetre": "cm",
    "m": "m",
    "meter": "m",
    "metre": "m",
    "pm": "pm",
    "å": "Å",
    "angstrom": "Å",
    "inch": "inch",
    "in": "inch",
}
_UNCALIBRATED = {"", "pixel", "pixels", "px", "none"}
_UNIT_IN_UM = {
    "pm": 1e-6,
    "Å": 1e-4,
    "nm": 1e-3,
    "um": 1.0,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
    "inch": 25400.0,
}


@dataclass
class ImageData:
    """Pixels of an opened image plus what is known about them.

    Attributes
    ----------
    data : numpy.ndarray or dask.array.Array
        Frames first: ``(H, W)``, ``(H, W, 3)``, ``(F, H, W)``,
        ``(F, H, W, 3)``; hyperstacks may have more leading axes. The dtype
        is kept as stored.
    rgb : bool
        True when the last axis holds RGB(A) samples.
    axes : str
        One tifffile axis letter per axis of ``data``, e.g. ``"YX"``,
        ``"YXS"``, ``"TYX"``, ``"ZYX"`` (``S`` = samples).
    scale : tuple of float or None
        Pixel size for every axis except a trailing RGB samples axis
        (``len(scale) == data.ndim - rgb``); 1.0 for frame/channel axes, the
        Z spacing for ``Z`` when known. None when the pixel size is unknown.
    unit : str or None
        Length unit of ``scale`` (``"um"``, ``"nm"``, ...), None if unknown.
    lazy : bool
        True when ``data`` is a Dask array.
    source : str
        The path as given to :func:`read_image`.
    frame_names : list of str or None
        For folders: the frame file names in stacking order.
    """

    data: np.ndarray | da.Array
    rgb: bool
    axes: str
    scale: tuple[float, ...] | None
    unit: str | None
    lazy: bool
    source: str
    frame_names: list[str] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """tuple of int: Shape of ``data``."""
        return tuple(int(s) for s in self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        """numpy.dtype: Data type of ``data``."""
        return np.dtype(self.data.dtype)


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def _suffix(path: Path) -> str:
    """Return the lower-case supported suffix of ``path`` (or its last suffix).

    Parameters
    ----------
    path : Path
        A file path.

    Returns
    -------
    str
        E.g. ``".ome.tif"``, ``".png"``, ``".bmp"`` or ``""``.
    """
    name = path.name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return path.suffix.lower()


def _is_frame_file(entry: os.DirEntry[str]) -> bool:
    """Tell whether a directory entry is a visible, supported image file.

    Parameters
    ----------
    entry : os.DirEntry
        Entry from :func:`os.scandir`.

    Returns
    -------
    bool
        True for non-hidden regular files with a supported suffix.
    """
    if entry.name.startswith("."):
        return False
    try:
        if not entry.is_file():
            return False
    except OSError:
        return False
    return _suffix(Path(entry.name)) in SUPPORTED_SUFFIXES


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting ``frame2`` before ``frame10``.

    Parameters
    ----------
    name : str
        File name.

    Returns
    -------
    tuple
        Comparable key: digit runs compare as numbers, text case-insensitively.
    """
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p)) if p.isdigit() else (1, p.casefold()) for p in parts if p)


def _product(shape: Sequence[int]) -> int:
    """Return the product of ``shape`` (1 for an empty shape)."""
    return int(math.prod(int(s) for s in shape))


def _short(exc: BaseException) -> str:
    """Return a short one-line description of an exception.

    Parameters
    ----------
    exc : BaseException
        Any exception.

    Returns
    -------
    str
        ``"message"`` or the exception class name when the message is empty.
    """
    text = one_line(exc, max_len=160)
    return text or type(exc).__name__


def normalise_unit(unit: object) -> str | None:
    """Map unit spellings to a short canonical form.

    Parameters
    ----------
    unit : object
        Unit from metadata, e.g. ``"micron"``, ``"µm"``, ``"\\u00B5m"``.

    Returns
    -------
    str or None
        ``"um"``, ``"nm"``, ... ; None for missing or pixel ("uncalibrated")
        units. Unknown spellings are returned stripped but unchanged.
    """
    if unit is None:
        return None
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    text = str(unit).strip()
    key = text.lower().replace("\\u00b5", "µ").replace("\\u03bc", "μ")
    if key in _UNCALIBRATED:
        return None
    return _UNIT_ALIASES.get(key, _UNIT_ALIASES.get(text.lower(), text))


def _env_threshold() -> int | None:
    """Read the lazy threshold override from :data:`LAZY_ENV_VAR`.

    Returns
    -------
    int or None
        Bytes, or None when unset or unparsable (a warning is issued).
    """
    raw = os.environ.get(LAZY_ENV_VAR, "").strip()
    if not raw:
        return None
    try:
        return int(float(raw))
    except ValueError:
        warnings.warn(
            f"Ignoring {LAZY_ENV_VAR}={raw!r}: expected a number of bytes.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def default_lazy_threshold() -> int:
    """Size above which images are opened lazily when ``lazy`` is None.

    Returns
    -------
    int
        :data:`LAZY_ENV_VAR` if set, else a quarter of the available memory,
        else 2 GiB.
    """
    env = _env_threshold()
    if env is not None:
        return env
    try:
        avail = int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_AVPHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_LAZY_BYTES
    return avail // 4 if avail > 0 else _FALLBACK_LAZY_BYTES


def _want_lazy(lazy: bool | None, nbytes: int, threshold: int | None) -> bool:
    """Decide between eager and lazy loading.

    Parameters
    ----------
    lazy : bool or None
        Explicit choice, or None for automatic.
    nbytes : int
        Size of the full image in memory.
    threshold : int or None
        Bytes above which to go lazy; None uses :func:`default_lazy_threshold`.

    Returns
    -------
    bool
        True to build a Dask array.
    """
    if lazy is not None:
        return bool(lazy)
    limit = default_lazy_threshold() if threshold is None else int(threshold)
    return nbytes > limit


def _file_token(path: str) -> tuple[str, int, int]:
    """Identify a file's current version (for unique Dask keys).

    Parameters
    ----------
    path : str
        File or folder path.

    Returns
    -------
    tuple
        ``(absolute path, mtime_ns, size)``.
    """
    st = os.stat(path)
    return (os.path.abspath(path), st.st_mtime_ns, st.st_size)


def _read_block(
    read_frame: Callable[[int], np.ndarray],
    lead_shape: tuple[int, ...],
    frame_shape: tuple[int, ...],
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Read the one frame that makes up a Dask block.

    Parameters
    ----------
    read_frame : callable
        ``read_frame(flat_index) -> ndarray`` of shape ``frame_shape``.
    lead_shape : tuple of int
        Shape of the frame (leading) axes.
    frame_shape : tuple of int
        Shape of one frame.
    block_id : tuple of int
        Block position, supplied by :func:`dask.array.map_blocks`.

    Returns
    -------
    numpy.ndarray
        The frame with a length-1 axis for each leading axis.
    """
    assert block_id is not None
    index = int(np.ravel_multi_index(block_id[: len(lead_shape)], lead_shape)) if lead_shape else 0
    frame = np.asarray(read_frame(index))
    return frame.reshape((1,) * len(lead_shape) + tuple(frame_shape))


def _lazy_frames(
    read_frame: Callable[[int], np.ndarray],
    lead_shape: tuple[int, ...],
    frame_shape: tuple[int, ...],
    dtype: np.dtype,
    token: object,
) -> da.Array:
    """Build a Dask array with one chunk (one task) per frame.

    Parameters
    ----------
    read_frame : callable
        ``read_frame(flat_index) -> ndarray``; only called on compute.
    lead_shape : tuple of int
        Shape of the frame axes (empty for a single frame).
    frame_shape : tuple of int
        Shape of one frame.
    dtype : numpy.dtype
        Data type of every frame.
    token : object
        Anything identifying the source version (makes the Dask name unique).

    Returns
    -------
    dask.array.Array
        Shape ``lead_shape + frame_shape``.
    """
    chunks = tuple((1,) * int(s) for s in lead_shape) + tuple((int(s),) for s in frame_shape)
    ndim = len(lead_shape) + len(frame_shape)
    return da.map_blocks(
        partial(_read_block, read_frame, tuple(lead_shape), tuple(frame_shape)),
        chunks=chunks,
        dtype=dtype,
        meta=np.empty((0,) * ndim, dtype=dtype),
        name=f"napari-sperm-read-{tokenize(token, lead_shape, frame_shape, str(dtype))}",
    )


def _check_not_empty(source: str, shape: Sequence[int]) -> None:
    """Raise if an image has no pixels.

    Parameters
    ----------
    source : str
        Path for the message.
    shape : sequence of int
        Image shape.

    Returns
    -------
    None
    """
    if len(shape) == 0 or any(int(s) == 0 for s in shape):
        raise SpermInputError(
            f"Cannot read {source!r}: the image is empty (shape {tuple(int(s) for s in shape)}). "
            "Choose a file that contains at least one frame."
        )


# --------------------------------------------------------------------------
# TIFF
# --------------------------------------------------------------------------


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


def _resolution(page: tifffile.TiffPage, name: str) -> float | None:
    """Pixels per unit from an X/YResolution tag.

    Parameters
    ----------
    page : tifffile.TiffPage
        Page holding the tag.
    name : str
        ``"XResolution"`` or ``"YResolution"``.

    Returns
    -------
    float or None
        Positive resolution, or None when missing or zero.
    """
    tag = page.tags.get(name)
    if tag is None:
        return None
    value = tag.value
    try:
        if isinstance(value, (tuple, list)):
            num, den = float(value[0]), float(value[1])
            res = num / den if den else 0.0
        else:
            res = float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return res if res > 0 and math.isfinite(res) else None


def _imagej_calibration(
    tif: tifffile.TiffFile, page: tifffile.TiffPage
) -> tuple[float, float, float | None, str | None] | None:
    """Pixel size from ImageJ metadata and resolution tags.

    Parameters
    ----------
    tif : tifffile.TiffFile
        Open ImageJ file.
    page : tifffile.TiffPage
        First page of the series.

    Returns
    -------
    tuple or None
        ``(size_y, size_x, spacing_z or None, unit or None)``, or None when
        the file is not calibrated.
    """
    meta = tif.imagej_metadata or {}
    unit = normalise_unit(meta.get("unit"))
    xres = _resolution(page, "XResolution")
    yres = _resolution(page, "YResolution") or xres
    if xres is None:
        return None
    if unit is None and xres == 1.0 and yres == 1.0:
        return None
    spacing = meta.get("spacing")
    try:
        z = float(spacing) if spacing is not None else None
    except (TypeError, ValueError):
        z = None
    return (1.0 / float(yres), 1.0 / xres, z, unit)


def _convert(value: float, unit: str | None, target: str | None) -> float:
    """Convert a length between units when both are known lengths.

    Parameters
    ----------
    value : float
        Length in ``unit``.
    unit, target : str or None
        Canonical units.

    Returns
    -------
    float
        Length in ``target`` (unchanged when conversion is not possible).
    """
    if unit == target or unit not in _UNIT_IN_UM or target not in _UNIT_IN_UM:
        return value
    return value * _UNIT_IN_UM[unit] / _UNIT_IN_UM[target]


def _ome_calibration(
    tif: tifffile.TiffFile,
) -> tuple[float, float, float | None, str | None] | None:
    """Pixel size from OME-XML ``PhysicalSizeX/Y/Z``.

    Parameters
    ----------
    tif : tifffile.TiffFile
        Open OME-TIFF file.

    Returns
    -------
    tuple or None
        ``(size_y, size_x, size_z or None, unit)`` in the X unit (default
        µm), or None when no physical size is given.
    """
    xml = tif.ome_metadata
    if not xml:
        return None
    image = tifffile.xml2dict(xml).get("OME", {}).get("Image")
    if isinstance(image, (list, tuple)):
        image = image[0] if image else None
    pixels = image.get("Pixels") if isinstance(image, dict) else None
    if not isinstance(pixels, dict):
        return None

    def size(axis: str) -> tuple[float | None, str | None]:
        value = pixels.get(f"PhysicalSize{axis}")
        unit = normalise_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        try:
            number = float(value) if value is not None else None
        except (TypeError, ValueError):
            number = None
        if number is not None and not (number > 0 and math.isfinite(number)):
            number = None
        return number, unit

    sx, ux = size("X")
    sy, uy = size("Y")
    sz, uz = size("Z")
    if sx is None and sy is None:
        return None
    if sx is None:
        sx, ux = sy, uy
    unit = ux
    sy = sx if sy is None else _convert(sy, uy, unit)
    sz = None if sz is None else _convert(sz, uz, unit)
    return (float(sy), float(sx), sz, unit)


def _scale_for_axes(
    axes: str, rgb: bool, calibration: tuple[float, float, float | None, str | None] | None
) -> tuple[tuple[float, ...] | None, str | None]:
    """Build the per-axis scale tuple.

    Parameters
    ----------
    axes : str
        Axis letters of the final data (samples last when ``rgb``).
    rgb : bool
        Whether the last axis is RGB samples (gets no scale entry).
    calibration : tuple or None
        ``(size_y, size_x, spacing_z, unit)``.

    Returns
    -------
    scale : tuple of float or None
        One entry per axis except trailing RGB samples.
    unit : str or None
        Unit of the scale.
    """
    if calibration is None:
        return None, None
    size_y, size_x, size_z, unit = calibration
    spatial = axes[:-1] if rgb else axes
    values = {"Y": size_y, "X": size_x, "Z": size_z if size_z else 1.0}
    return tuple(float(values.get(ax, 1.0)) for ax in spatial), unit


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
            f"Cannot read {source!r}: the TIFF file contains no images. {_WHAT_TO_OPEN}"
        )
    series = tif.series[0]
    shape = tuple(int(s) for s in series.shape)
    axes = str(series.axes)
    _check_not_empty(source, shape)
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

    contiguous = None
    bits = getattr(page, "bitspersample", 0)
    if (
        series.transform is None
        and not series.is_multifile
        and series.dataoffset is not None
        and series.dtype.kind in "uif"
        and bits == series.dtype.itemsize * 8
    ):
        contiguous = int(series.dataoffset)

    offsets = None
    if contiguous is not None:
        _check_file_length(source, contiguous + _product(shape) * series.dtype.itemsize)

    if contiguous is None and series.transform is None and not series.is_multifile:
        nframes = _product(lead_shape)
        if len(series) == nframes:
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


def _tiff_frame_error(source: str, index: int, exc: BaseException) -> SpermInputError:
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
        f"Cannot read frame {index} of {source!r}: {_short(exc)}. The file may be truncated, "
        "corrupt or changed since it was opened; re-open it or re-export the stack."
    )


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
    count = _product(layout.frame_shape)
    file_dtype = np.dtype(layout.file_dtype)
    assert layout.contiguous_offset is not None
    try:
        with open(source, "rb") as fh:
            fh.seek(layout.contiguous_offset + index * count * file_dtype.itemsize)
            frame = np.fromfile(fh, dtype=file_dtype, count=count)
        if frame.size != count:
            raise EOFError(f"expected {count} values, found {frame.size} (end of file)")
    except (OSError, ValueError, EOFError) as exc:
        raise _tiff_frame_error(source, index, exc) from exc
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
            page = tifffile.TiffPage(tif, index=index)
            frame = page.asarray()
    except Exception as exc:  # tifffile raises many types for broken files
        raise _tiff_frame_error(source, index, exc) from exc
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
        raise _tiff_frame_error(source, index, exc) from exc
    return _fit_frame(source, index, frame, layout)


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
    if frame.size != _product(layout.frame_shape):
        raise SpermInputError(
            f"Cannot read frame {index} of {source!r}: it has shape {frame.shape}, expected "
            f"{layout.frame_shape}. Re-export the stack so all frames have the same size."
        )
    return frame.astype(layout.dtype, copy=False).reshape(layout.frame_shape)


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
    return _lazy_frames(
        partial(reader, source, layout),
        layout.lead_shape,
        layout.frame_shape,
        layout.dtype,
        (_file_token(source), layout),
    )


def _finish_axes(data: Any, axes: str, samples_axis: int | None) -> tuple[Any, str]:
    """Move a planar RGB samples axis to the end.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
        Image as stored.
    axes : str
        Axis letters as stored.
    samples_axis : int or None
        Index of the samples axis to move, or None.

    Returns
    -------
    data : numpy.ndarray or dask.array.Array
        Image with samples last.
    axes : str
        Updated axis letters.
    """
    if samples_axis is None:
        return data, axes
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(np.moveaxis(data, samples_axis, -1))
    else:
        data = da.moveaxis(data, samples_axis, -1)
    return data, axes[:samples_axis] + axes[samples_axis + 1 :] + axes[samples_axis]


def _is_rgb(shape: Sequence[int], axes: str) -> bool:
    """Tell whether the last axis holds RGB(A) samples.

    Parameters
    ----------
    shape : sequence of int
        Final data shape.
    axes : str
        Final axis letters.

    Returns
    -------
    bool
        True when ``axes`` ends with ``S`` and there are 3 or 4 samples.
    """
    return len(shape) >= 3 and axes.endswith("S") and int(shape[-1]) in (3, 4)


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
        what = f"the TIFF file is corrupt or truncated ({_short(exc)})"
    return SpermInputError(f"Cannot read {source!r}: {what}. {_WHAT_TO_OPEN}")


def _read_tiff(source: str, lazy: bool | None, threshold: int | None) -> ImageData:
    """Read a TIFF / OME-TIFF / ImageJ hyperstack.

    Parameters
    ----------
    source : str
        File path.
    lazy : bool or None
        See :func:`read_image`.
    threshold : int or None
        See :func:`read_image`.

    Returns
    -------
    ImageData
        The first series of the file.
    """
    try:
        with tifffile.TiffFile(source) as tif:
            layout, series = _tiff_layout(tif, source)
            if tif.is_ome:
                calibration = _ome_calibration(tif)
            elif tif.is_imagej:
                calibration = _imagej_calibration(tif, series.keyframe)
            else:
                calibration = None
            nbytes = _product(layout.shape) * layout.dtype.itemsize
            use_lazy = _want_lazy(lazy, nbytes, threshold)
            data = _lazy_tiff(source, layout) if use_lazy else series.asarray()
    except (SpermInputError, MemoryError):
        raise
    except Exception as exc:  # tifffile raises many types for broken files
        raise _tiff_error(source, exc) from exc
    if not use_lazy and tuple(data.shape) != layout.shape:
        data = np.asarray(data).reshape(layout.shape)
    data, axes = _finish_axes(data, layout.axes, layout.samples_axis)
    rgb = _is_rgb(data.shape, axes)
    scale, unit = _scale_for_axes(axes, rgb, calibration)
    return ImageData(
        data=data, rgb=rgb, axes=axes, scale=scale, unit=unit, lazy=use_lazy, source=source
    )


# --------------------------------------------------------------------------
# PNG / JPEG (Pillow)
# --------------------------------------------------------------------------

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
        f"Cannot read {source!r}: not a readable PNG/JPEG image ({_short(exc)}). {_WHAT_TO_OPEN}"
    )


def _probe_pil(source: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a PNG/JPEG after conversion, without decoding pixels.

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
    """
    try:
        with Image.open(source) as img:
            width, height = img.size
            _, dtype, samples = _pil_target(img.mode)
    except Exception as exc:  # Pillow raises many types for broken files
        raise _pil_error(source, exc) from exc
    return (int(height), int(width)) + samples, dtype


def _read_pil_array(source: str) -> np.ndarray:
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


def _read_pil(source: str, lazy: bool | None, threshold: int | None) -> ImageData:
    """Read a single PNG/JPEG image.

    Parameters
    ----------
    source : str
        File path.
    lazy : bool or None
        See :func:`read_image`.
    threshold : int or None
        See :func:`read_image`.

    Returns
    -------
    ImageData
        ``(H, W)`` grey or ``(H, W, 3)`` RGB image.
    """
    shape, dtype = _probe_pil(source)
    _check_not_empty(source, shape)
    use_lazy = _want_lazy(lazy, _product(shape) * dtype.itemsize, threshold)
    if use_lazy:
        data = _lazy_frames(
            partial(_read_single_pil, source, shape, dtype), (), shape, dtype, _file_token(source)
        )
    else:
        data = _read_pil_array(source)
    rgb = len(shape) == 3
    return ImageData(
        data=data,
        rgb=rgb,
        axes="YXS" if rgb else "YX",
        scale=None,
        unit=None,
        lazy=use_lazy,
        source=source,
    )


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
    arr = _read_pil_array(source)
    if arr.shape != shape or arr.dtype != dtype:
        raise SpermInputError(
            f"Cannot read {source!r}: the image changed since it was opened "
            f"({arr.shape} {arr.dtype}, expected {shape} {dtype}). Re-open it."
        )
    return arr


# --------------------------------------------------------------------------
# Folders of frames
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _FrameInfo:
    """Shape, dtype and axes of one frame file."""

    shape: tuple[int, ...]
    dtype: np.dtype
    axes: str


def _probe_frame(path: Path) -> _FrameInfo:
    """Describe a frame file cheaply (headers only).

    Parameters
    ----------
    path : Path
        Frame file.

    Returns
    -------
    _FrameInfo
        Final shape, dtype and axes of the frame.
    """
    source = str(path)
    if _suffix(path) in _PIL_SUFFIXES:
        shape, dtype = _probe_pil(source)
        return _FrameInfo(shape, dtype, "YXS" if len(shape) == 3 else "YX")
    try:
        with tifffile.TiffFile(source) as tif:
            layout, _ = _tiff_layout(tif, source)
    except (SpermInputError, MemoryError):
        raise
    except Exception as exc:  # tifffile raises many types for broken files
        raise _tiff_error(source, exc) from exc
    shape, axes = list(layout.shape), layout.axes
    if layout.samples_axis is not None:
        shape.append(shape.pop(layout.samples_axis))
        axes = (
            axes[: layout.samples_axis]
            + axes[layout.samples_axis + 1 :]
            + axes[layout.samples_axis]
        )
    return _FrameInfo(tuple(shape), layout.dtype, axes)


def _read_frame_file(path: Path) -> np.ndarray:
    """Read one frame file eagerly.

    Parameters
    ----------
    path : Path
        Frame file (.tif/.tiff/.png/.jpg/.jpeg).

    Returns
    -------
    numpy.ndarray
        The frame as it would be returned by :func:`read_image`.
    """
    if _suffix(path) in _PIL_SUFFIXES:
        return _read_pil_array(str(path))
    return np.asarray(_read_tiff(str(path), lazy=False, threshold=None).data)


def _mismatch_error(
    folder: str, name: str, got: _FrameInfo, first: str, want: _FrameInfo
) -> SpermInputError:
    """Error for a frame that does not match the first frame.

    Parameters
    ----------
    folder : str
        Folder path.
    name : str
        Offending file name.
    got : _FrameInfo
        Its shape and dtype.
    first : str
        Name of the first frame.
    want : _FrameInfo
        Expected shape and dtype.

    Returns
    -------
    SpermInputError
        One-line error.
    """
    return SpermInputError(
        f"Cannot read folder {folder!r}: frame {name!r} has shape {got.shape} ({got.dtype}) but "
        f"expected shape {want.shape} ({want.dtype}) like the first frame {first!r}. "
        f"All frames must have the same size and type; fix or remove {name!r}."
    )


def _read_folder_frame(
    folder: str, paths: tuple[str, ...], want: _FrameInfo, index: int
) -> np.ndarray:
    """Lazy-chunk reader for one frame of a folder.

    Parameters
    ----------
    folder : str
        Folder path (for messages).
    paths : tuple of str
        All frame paths in order.
    want : _FrameInfo
        Expected shape and dtype.
    index : int
        Frame index.

    Returns
    -------
    numpy.ndarray
        The frame.
    """
    path = Path(paths[index])
    frame = _read_frame_file(path)
    if frame.shape != want.shape or frame.dtype != want.dtype:
        got = _FrameInfo(tuple(frame.shape), frame.dtype, "")
        raise _mismatch_error(folder, path.name, got, Path(paths[0]).name, want)
    return frame


def _list_frames(folder: Path) -> list[Path]:
    """List the image frames of a folder in natural order.

    Parameters
    ----------
    folder : Path
        Directory.

    Returns
    -------
    list of Path
        Visible files with supported suffixes, ``f2`` before ``f10``.
    """
    with os.scandir(folder) as it:
        names = [entry.name for entry in it if _is_frame_file(entry)]
    return [folder / name for name in sorted(names, key=natural_key)]


def _read_folder(source: str, lazy: bool | None, threshold: int | None) -> ImageData:
    """Stack a folder of frames into ``(F, H, W[, 3])``.

    Parameters
    ----------
    source : str
        Folder path.
    lazy : bool or None
        See :func:`read_image`.
    threshold : int or None
        See :func:`read_image`.

    Returns
    -------
    ImageData
        Frames stacked along a new leading ``T`` axis.
    """
    folder = Path(source)
    try:
        paths = _list_frames(folder)
    except OSError as exc:
        raise SpermInputError(
            f"Cannot read folder {source!r}: {_short(exc)}. Check the folder permissions."
        ) from exc
    if not paths:
        raise SpermInputError(
            f"Cannot read folder {source!r}: it contains no .tif/.tiff/.png/.jpg/.jpeg frames. "
            "Choose a folder of image frames, or open a single image file."
        )
    infos = [_probe_frame(p) for p in paths]
    want = infos[0]
    for path, info in zip(paths, infos):
        if info.shape != want.shape or info.dtype != want.dtype:
            raise _mismatch_error(source, path.name, info, paths[0].name, want)
    _check_not_empty(str(paths[0]), want.shape)

    lead = (len(paths),)
    nbytes = len(paths) * _product(want.shape) * want.dtype.itemsize
    use_lazy = _want_lazy(lazy, nbytes, threshold)
    if use_lazy:
        str_paths = tuple(str(p) for p in paths)
        token = (tuple(_file_token(p) for p in str_paths), want)
        reader = partial(_read_folder_frame, source, str_paths, want)
        data: Any = _lazy_frames(reader, lead, want.shape, want.dtype, token)
    else:
        str_paths = tuple(str(p) for p in paths)
        data = np.empty(lead + want.shape, dtype=want.dtype)
        for i in range(len(paths)):
            data[i] = _read_folder_frame(source, str_paths, want, i)

    axes = "T" + want.axes
    rgb = _is_rgb(data.shape, axes)
    calibration = _first_frame_calibration(paths[0])
    scale, unit = _scale_for_axes(axes, rgb, calibration)
    return ImageData(
        data=data,
        rgb=rgb,
        axes=axes,
        scale=scale,
        unit=unit,
        lazy=use_lazy,
        source=source,
        frame_names=[p.name for p in paths],
    )


def _first_frame_calibration(path: Path) -> tuple[float, float, float | None, str | None] | None:
    """Pixel size of a folder taken from its first frame (TIFF only).

    Parameters
    ----------
    path : Path
        First frame file.

    Returns
    -------
    tuple or None
        Calibration as from :func:`_ome_calibration` / :func:`_imagej_calibration`.
    """
    if _suffix(path) in _PIL_SUFFIXES:
        return None
    try:
        with tifffile.TiffFile(str(path)) as tif:
            if tif.is_ome:
                return _ome_calibration(tif)
            if tif.is_imagej:
                return _imagej_calibration(tif, tif.series[0].keyframe)
    except Exception:  # metadata is optional; pixels were already read fine
        return None
    return None


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


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
                return any(_is_frame_file(entry) for entry in it)
    except OSError:
        return False
    return _suffix(p) in SUPPORTED_SUFFIXES


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
            f"Cannot read {source!r}: no such file or folder. Check the path, then {_WHAT_TO_OPEN[0].lower()}{_WHAT_TO_OPEN[1:]}"
        )
    if p.is_dir():
        return _read_folder(source, lazy, lazy_threshold_bytes)
    suffix = _suffix(p)
    if suffix in _TIFF_SUFFIXES or suffix in (".ome.tif", ".ome.tiff"):
        return _read_tiff(source, lazy, lazy_threshold_bytes)
    if suffix in _PIL_SUFFIXES:
        return _read_pil(source, lazy, lazy_threshold_bytes)
    shown = suffix or "(no extension)"
    raise SpermInputError(
        f"Cannot read {source!r}: unsupported file type {shown!r}. Supported: "
        f"{', '.join(SUPPORTED_SUFFIXES)} files or a folder of such frames."
    )
