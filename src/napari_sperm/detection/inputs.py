"""Expand the command line's inputs (files and folders) into image files to detect on."""

from __future__ import annotations

import os
from pathlib import Path

from ..io.errors import SpermInputError
from ..io.folders import list_frames
from ..io.images import is_supported

__all__ = ["expand_inputs", "frame_stack"]


def expand_inputs(paths: list[str | os.PathLike]) -> list[str]:
    """Image files named by ``paths``: files as given, folders replaced by their image files.

    Folders are not searched recursively; their files come in natural order (``f2`` before
    ``f10``); hidden files are skipped.

    Raises
    ------
    SpermInputError
        A path does not exist, a file is not a supported image, or nothing is left to process.
    """
    out: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = list_frames(p)
            if not files:
                raise SpermInputError(f"'{raw}' holds no .tif/.tiff/.png/.jpg images.")
            out.extend(str(Path(raw) / c.name) for c in files)
        elif p.is_file():
            if not is_supported(p):
                raise SpermInputError(
                    f"'{raw}' is not a supported image; give .tif/.tiff (stacks too), .png or .jpg files or folders."
                )
            out.append(str(raw))
        else:
            raise SpermInputError(f"'{raw}' does not exist.")
    if not out:
        raise SpermInputError("no input images given.")
    return out


def frame_stack(data, rgb: bool):
    """View image data as frames-first: returns ``(frames, is_stack)``.

    ``(H, W)`` and ``(H, W, 3)`` are single images (one frame); ``(F, H, W)`` and ``(F, H, W, 3)``
    are stacks. Anything with more axes (e.g. a T x Z hyperstack) is rejected with a clear message.
    """
    single = 3 if rgb else 2
    if data.ndim == single:
        return data[None], False
    if data.ndim == single + 1:
        return data, True
    raise SpermInputError(
        f"image with shape {tuple(data.shape)} has more than one frame axis; "
        "give a single image or a single stack of frames (split hyperstacks first)."
    )
