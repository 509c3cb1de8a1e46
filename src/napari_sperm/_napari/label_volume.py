"""Label volumes for whole stacks that do not have to fit in memory.

A ``heads`` or ``tails`` layer of a stack is one int32 label per pixel of every frame: four times
the size of an 8-bit stack. When that is more than the lazy-loading threshold
(:func:`napari_sperm.io.lazy.default_lazy_threshold`: a quarter of the free memory, or
``NAPARI_SPERM_LAZY_BYTES``), or the image itself was opened lazily, the volume lives in a
memory-mapped scratch file instead of in RAM: the operating system keeps only the frames in use in
memory, and napari paints into it like into any array. The file is unlinked as soon as it is mapped,
so nothing is left on disk when the layer goes away (or napari crashes).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ..io.lazy import default_lazy_threshold

__all__ = ["is_disk_backed", "new_label_volume"]


def _is_lazy(data) -> bool:
    return hasattr(data, "compute") or hasattr(data, "dask")


def new_label_volume(shape: tuple[int, ...], like=None, threshold: int | None = None) -> np.ndarray:
    """A zero int32 array of ``shape``, in RAM or memory-mapped from a scratch file.

    Parameters
    ----------
    shape : tuple of int
        ``(frames, H, W)`` (or ``(H, W)``).
    like : array, optional
        The image data it labels: a lazy (dask) image always gets a disk-backed volume.
    threshold : int, optional
        Size in bytes above which the volume is disk-backed (default: the lazy-loading threshold).

    Returns
    -------
    numpy.ndarray
        ``np.zeros`` or an :class:`numpy.memmap` of zeros.
    """
    nbytes = int(np.prod(shape, dtype=np.int64)) * 4
    limit = default_lazy_threshold() if threshold is None else int(threshold)
    if nbytes == 0 or (nbytes <= limit and not (like is not None and _is_lazy(like))):
        return np.zeros(shape, np.int32)
    folder = os.environ.get("NAPARI_SPERM_SCRATCH") or None
    fd, path = tempfile.mkstemp(prefix="napari-sperm-labels-", suffix=".int32", dir=folder)
    try:
        os.ftruncate(fd, nbytes)  # sparse: zeros cost no disk until written
        volume = np.memmap(path, dtype=np.int32, mode="r+", shape=tuple(shape))
    finally:
        os.close(fd)
        os.unlink(path)  # the mapping keeps the data; nothing stays behind
    return volume


def is_disk_backed(data) -> bool:
    """True for volumes made by :func:`new_label_volume` on disk (and views of them)."""
    return isinstance(data, np.memmap) or isinstance(getattr(data, "base", None), np.memmap)
