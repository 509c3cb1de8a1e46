"""What every converter shares: the summary, finding input files, image sizes and output names."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io._common import SUPPORTED_SUFFIXES, suffix_of
from ..io.errors import SpermInputError
from ..io.folders import natural_key
from ..io.images import read_image
from ..io.jsonfile import read_json

__all__ = [
    "ConvertSummary",
    "PathLike",
    "find_files",
    "image_size",
    "image_stem",
    "is_image_file",
    "output_name",
    "plural",
    "read_json",
]

PathLike = str | os.PathLike


def plural(n: int, word: str, many: str | None = None) -> str:
    """``"1 head"``, ``"3 heads"`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


@dataclass
class ConvertSummary:
    """What a conversion found and wrote.

    Attributes
    ----------
    source_format : str
        ``"yolo"``, ``"labelme"`` or ``"coco-parts"``.
    images : int
        Images in the output.
    images_without_labels : int
        Images kept without any label: no YOLO ``.txt`` for them, a labelme file without shapes,
        or a COCO image without annotations. (An empty YOLO ``.txt`` is a labelled image with
        nothing in it.)
    cells : int
        Cells (distinct ``attributes.sperm_id`` values, per image) written.
    heads, tails, sperm_boxes : int
        Annotations of each category written.
    dropped : dict
        Source label -> number of shapes dropped because the label map does not know it (only
        with ``ignore_unknown``).
    skipped : dict
        Reason -> number of shapes or files left out for another reason (e.g. a shape lying
        entirely outside its image).
    notes : list of str
        Anything else worth telling (where class names came from, images written, ...).
    """

    source_format: str
    images: int = 0
    images_without_labels: int = 0
    cells: int = 0
    heads: int = 0
    tails: int = 0
    sperm_boxes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str, n: int = 1) -> None:
        """Count ``n`` things left out for ``reason``."""
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def text(self) -> str:
        """One paragraph for the command line.

        Returns
        -------
        str
            E.g. ``"Converted 3 images from yolo (1 without labels): 12 cells, 12 heads, 0 tails
            and 11 sperm boxes."`` followed by what was dropped or skipped.
        """
        without = (
            f" ({self.images_without_labels} without labels)" if self.images_without_labels else ""
        )
        out = (
            f"Converted {plural(self.images, 'image')} from {self.source_format}{without}: "
            f"{plural(self.cells, 'cell')}, {plural(self.heads, 'head')}, "
            f"{plural(self.tails, 'tail')} and {plural(self.sperm_boxes, 'sperm box', 'sperm boxes')}."
        )
        if self.dropped:
            listed = ", ".join(f"'{k}' ({v})" for k, v in self.dropped.items())
            out += f" Dropped unknown labels: {listed}."
        if self.skipped:
            listed = ", ".join(f"{v} {k}" for k, v in self.skipped.items())
            out += f" Skipped: {listed}."
        return out


def _walk(folder: Path) -> Iterable[Path]:
    """Visible files under ``folder``, recursively, hidden folders skipped."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)
        for name in sorted(files, key=natural_key):
            if not name.startswith("."):
                yield Path(root) / name


def find_files(
    inputs: Sequence[PathLike],
    keep: Any,
    what: str,
    exclude: Path | None = None,
) -> list[tuple[Path, bool]]:
    """Expand files and folders (searched recursively) into the files to convert.

    Parameters
    ----------
    inputs : sequence of path
        Files and folders as the user gave them.
    keep : callable
        ``keep(path) -> bool``: whether a file found in a folder is one to convert.
    what : str
        What the files are, plural, for the message (``"labelme .json files"``).
    exclude : Path, optional
        A file never to take from a folder (the output being written); named directly, it is
        returned.

    Returns
    -------
    list of (Path, bool)
        Each file once, in the order given (folders in natural name order), with True when the
        user named it directly (so it must be convertible) rather than it being found in a folder.

    Raises
    ------
    SpermInputError
        A path that does not exist, or no files at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    skip = os.path.abspath(exclude) if exclude is not None else None
    out: dict[str, tuple[Path, bool]] = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in _walk(p):
                key = os.path.abspath(f)
                if key != skip and key not in out and keep(f):
                    out[key] = (f, False)
        elif p.is_file():
            out[os.path.abspath(p)] = (p, True)
        else:
            raise SpermInputError(f"'{p}' does not exist; give existing files or folders.")
    if not out:
        listed = ", ".join(f"'{Path(i)}'" for i in inputs) or "nothing"
        raise SpermInputError(f"No {what} found in {listed}; check the paths.")
    return list(out.values())


def is_image_file(path: Path) -> bool:
    """True for a file name napari-sperm reads as an image (``.tif``, ``.png``, ``.jpg``...)."""
    return suffix_of(path) in SUPPORTED_SUFFIXES


def image_stem(path: Path) -> str:
    """File name without its image suffix (``a.ome.tif`` -> ``a``)."""
    suffix = suffix_of(path)
    return path.name[: -len(suffix)] if suffix else path.name


def image_size(path: Path) -> tuple[int, int]:
    """Width and height of an image, from its header (no pixels are decoded).

    Parameters
    ----------
    path : Path
        A ``.tif``/``.png``/``.jpg`` file; for a stack, the size of one frame.

    Returns
    -------
    (int, int)
        ``(width, height)``.

    Raises
    ------
    SpermInputError
        Missing, unsupported or broken file.
    """
    img = read_image(path, lazy=True)
    shape = tuple(img.data.shape)
    h, w = shape[-3:-1] if img.rgb else shape[-2:]
    return int(w), int(h)


def output_name(image: Path, out_dir: Path | None) -> str:
    """The ``file_name`` an output JSON in ``out_dir`` uses for ``image``.

    Parameters
    ----------
    image : Path
    out_dir : Path or None
        Folder the JSON is written to; None gives absolute names.

    Returns
    -------
    str
        Relative to ``out_dir`` (with ``/`` separators, ``..`` where needed); absolute when no
        relative path exists (another drive) or ``out_dir`` is None.
    """
    absolute = os.path.abspath(image)
    if out_dir is None:
        return Path(absolute).as_posix()
    try:
        return Path(os.path.relpath(absolute, os.path.abspath(out_dir))).as_posix()
    except ValueError:  # e.g. another drive on Windows
        return Path(absolute).as_posix()
