"""User-facing error type for bad input files and folders."""

from __future__ import annotations

__all__ = ["SpermInputError", "one_line"]


def one_line(text: object, max_len: int | None = None) -> str:
    """Collapse any text to a single line of normal spacing.

    Parameters
    ----------
    text : object
        Message (or anything with a ``str``) that may contain newlines or
        runs of whitespace.
    max_len : int, optional
        If given, longer results are cut and end with ``"..."``.

    Returns
    -------
    str
        The text on one line.
    """
    line = " ".join(str(text).split())
    if max_len is not None and len(line) > max_len:
        line = line[: max(0, max_len - 3)].rstrip() + "..."
    return line


class SpermInputError(ValueError):
    """Bad input that the user can fix (missing, unsupported or broken files).

    The message is always one readable line saying what is wrong and what to
    do about it, e.g. ``"Cannot read 'x.tif': not a TIFF file. Open a
    .tif/.tiff stack, or a folder of .tif/.png/.jpg frames."``. Raise it
    ``from`` the original exception so the cause stays available.

    Parameters
    ----------
    message : str
        What is wrong and what to do. Newlines are collapsed to spaces.
    """

    def __init__(self, message: object) -> None:
        super().__init__(one_line(message))

    @property
    def message(self) -> str:
        """str: The one-line message."""
        return str(self.args[0]) if self.args else ""
