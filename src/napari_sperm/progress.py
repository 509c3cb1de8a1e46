"""The progress protocol shared by every long computation.

Long work is a generator that yields ``(done, total)`` after each step and returns its result
(``StopIteration.value``), so the same code runs in a napari worker (progress bar, cancel between
steps), on the command line (progress lines) or plainly via :func:`drain`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

__all__ = ["drain"]

T = TypeVar("T")


def drain(gen: Generator[tuple[int, int], None, T]) -> T:
    """Run a progress generator to the end and return its result."""
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value
