"""The progress protocol shared by every long computation.

Long work is a generator that yields ``(done, total)`` after each step and returns its result
(``StopIteration.value``), so the same code runs in a napari worker (progress bar, cancel between
steps), on the command line (progress lines) or plainly via :func:`drain`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TypeVar

__all__ = ["drain"]

T = TypeVar("T")


def drain(gen: Generator[tuple, None, T], each: Callable[[tuple], None] | None = None) -> T:
    """Run a progress generator to the end and return its result.

    Parameters
    ----------
    gen : generator
        Yields ``(done, total, ...)`` tuples, returns the result.
    each : callable, optional
        Called with every yielded tuple (e.g. to print progress lines).
    """
    while True:
        try:
            item = next(gen)
        except StopIteration as done:
            return done.value
        if each is not None:
            each(item)
