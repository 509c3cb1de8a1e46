"""Folders of frames: natural sort, probing and stacking into ``(F, H, W[, 3])``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ._common import PIL_SUFFIXES, check_not_empty, is_frame_file, is_rgb, product, short, suffix_of
from .calibration import Calibration, scale_for_axes, tiff_calibration
from .errors import SpermInputError
from .image_data import ImageData
from .lazy import file_token, lazy_frames, want_lazy
from .pil_images import probe_pil, read_pil_array
from .tiff import probe_tiff, read_tiff

__all__ = ["natural_key", "read_folder"]


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


@dataclass(frozen=True)
class _FrameInfo:
    """Shape, dtype and axes of one frame file."""

    shape: tuple[int, ...]
    dtype: np.dtype
    axes: str


def _is_pil(path: Path) -> bool:
    """Tell whether a frame file is read by Pillow (else by tifffile)."""
    return suffix_of(path) in PIL_SUFFIXES


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
    probe = probe_pil if _is_pil(path) else probe_tiff
    return _FrameInfo(*probe(str(path)))


def _read_frame_file(path: Path) -> np.ndarray:
    """Read one frame file eagerly.

    Parameters
    ----------
    path : Path
        Frame file (.tif/.tiff/.png/.jpg/.jpeg).

    Returns
    -------
    numpy.ndarray
        The frame as it would be returned by :func:`~napari_sperm.io.read_image`.
    """
    if _is_pil(path):
        return read_pil_array(str(path))
    return np.asarray(read_tiff(str(path), lazy=False, threshold=None).data)


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
    """Read one frame of a folder and check it matches the first frame.

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


def list_frames(folder: Path) -> list[Path]:
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
        names = [entry.name for entry in it if is_frame_file(entry)]
    return [folder / name for name in sorted(names, key=natural_key)]


def _first_frame_calibration(path: Path) -> Calibration | None:
    """Pixel size of a folder taken from its first frame (TIFF only).

    Parameters
    ----------
    path : Path
        First frame file.

    Returns
    -------
    Calibration or None
        As from :func:`~napari_sperm.io.calibration.tiff_calibration`.
    """
    if _is_pil(path):
        return None
    try:
        with tifffile.TiffFile(str(path)) as tif:
            return tiff_calibration(tif)
    except Exception:  # noqa: BLE001  (metadata is optional; pixels were read fine)
        return None


def read_folder(source: str, lazy: bool | None, threshold: int | None) -> ImageData:
    """Stack a folder of frames into ``(F, H, W[, 3])``.

    Parameters
    ----------
    source : str
        Folder path.
    lazy : bool or None
        See :func:`~napari_sperm.io.read_image`.
    threshold : int or None
        See :func:`~napari_sperm.io.read_image`.

    Returns
    -------
    ImageData
        Frames stacked along a new leading ``T`` axis. Files that are stacks themselves (a
        recording saved in several multi-page TIFFs) contribute all their frames, in order, to
        that one axis (``frame_names`` then reads ``file.tif#k``).
    """
    folder = Path(source)
    try:
        paths = list_frames(folder)
    except OSError as exc:
        raise SpermInputError(
            f"Cannot read folder {source!r}: {short(exc)}. Check the folder permissions."
        ) from exc
    if not paths:
        raise SpermInputError(
            f"Cannot read folder {source!r}: it contains no .tif/.tiff/.png/.jpg/.jpeg frames. "
            "Choose a folder of image frames, or open a single image file."
        )
    infos = [_probe_frame(p) for p in paths]
    want = infos[0]
    for path, info in zip(paths, infos, strict=True):
        if info.shape != want.shape or info.dtype != want.dtype:
            raise _mismatch_error(source, path.name, info, paths[0].name, want)
    check_not_empty(str(paths[0]), want.shape)

    lead = (len(paths),)
    str_paths = tuple(str(p) for p in paths)
    use_lazy = want_lazy(lazy, len(paths) * product(want.shape) * want.dtype.itemsize, threshold)
    if use_lazy:
        token = (tuple(file_token(p) for p in str_paths), want)
        reader = partial(_read_folder_frame, source, str_paths, want)
        data: Any = lazy_frames(reader, lead, want.shape, want.dtype, token)
    else:
        data = np.empty(lead + want.shape, dtype=want.dtype)
        for i in range(len(paths)):
            data[i] = _read_folder_frame(source, str_paths, want, i)

    axes = "T" + want.axes
    names = [p.name for p in paths]
    inner = want.axes.find("Y")
    if inner > 0:
        # the files are stacks themselves (a recording saved in parts): their frames follow each
        # other along one frame axis, instead of making a hyperstack no widget can use
        per_file = product(want.shape[:inner])
        data = data.reshape((len(paths) * per_file,) + tuple(want.shape[inner:]))
        axes = "T" + want.axes[inner:]
        names = [f"{n}#{k}" for n in names for k in range(per_file)]
    rgb = is_rgb(data.shape, axes)
    scale, unit = scale_for_axes(axes, rgb, _first_frame_calibration(paths[0]))
    return ImageData(
        data=data,
        rgb=rgb,
        axes=axes,
        scale=scale,
        unit=unit,
        lazy=use_lazy,
        source=source,
        frame_names=names,
    )
