"""Small helpers shared by the image readers: suffixes, shapes and messages."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from .errors import SpermInputError, one_line

TIFF_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".ome.tif", ".ome.tiff")
PIL_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")

SUPPORTED_SUFFIXES: tuple[str, ...] = TIFF_SUFFIXES + PIL_SUFFIXES
"""File name endings the reader accepts (case-insensitive)."""

_LONGEST_FIRST = tuple(sorted(SUPPORTED_SUFFIXES, key=len, reverse=True))

WHAT_TO_OPEN = "Open a .tif/.tiff (or .ome.tif) stack, a .png/.jpg image, or a folder of .tif/.png/.jpg frames."


def suffix_of(path: Path) -> str:
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
    for suffix in _LONGEST_FIRST:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return path.suffix.lower()


def is_frame_file(entry: os.DirEntry[str]) -> bool:
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
    return suffix_of(Path(entry.name)) in SUPPORTED_SUFFIXES


def product(shape: Sequence[int]) -> int:
    """Return the product of ``shape`` (1 for an empty shape)."""
    return int(math.prod(int(s) for s in shape))


def short(exc: BaseException) -> str:
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
    return one_line(exc, max_len=160) or type(exc).__name__


def check_not_empty(source: str, shape: Sequence[int]) -> None:
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


def is_rgb(shape: Sequence[int], axes: str) -> bool:
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
