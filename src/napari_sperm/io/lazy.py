"""Lazy loading: when to go lazy, and Dask arrays with one chunk per frame."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import partial

import dask.array as da
import numpy as np
from dask.base import tokenize

__all__ = ["LAZY_ENV_VAR", "default_lazy_threshold", "file_token", "lazy_frames", "want_lazy"]

LAZY_ENV_VAR = "NAPARI_SPERM_LAZY_BYTES"
"""Environment variable overriding the default lazy-loading threshold (bytes)."""

_FALLBACK_LAZY_BYTES = 2 * 1024**3


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


def want_lazy(lazy: bool | None, nbytes: int, threshold: int | None) -> bool:
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


def file_token(path: str) -> tuple[str, int, int]:
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


def lazy_frames(
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
    lead_shape, frame_shape = tuple(lead_shape), tuple(frame_shape)
    chunks = tuple((1,) * int(s) for s in lead_shape) + tuple((int(s),) for s in frame_shape)
    ndim = len(lead_shape) + len(frame_shape)
    return da.map_blocks(
        partial(_read_block, read_frame, lead_shape, frame_shape),
        chunks=chunks,
        dtype=dtype,
        meta=np.empty((0,) * ndim, dtype=dtype),
        name=f"napari-sperm-read-{tokenize(token, lead_shape, frame_shape, str(dtype))}",
    )
