"""The :class:`ImageData` record every reader returns."""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numpy as np

__all__ = ["ImageData"]


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
        The path as given to :func:`~napari_sperm.io.read_image`.
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
