"""Qt-free input/output: image reading, atomic writes and the user-facing error."""

from __future__ import annotations

from .atomic import atomic_write, atomic_write_json
from .errors import SpermInputError
from .images import (
    LAZY_ENV_VAR,
    SUPPORTED_SUFFIXES,
    ImageData,
    default_lazy_threshold,
    is_supported,
    read_image,
)

__all__ = [
    "LAZY_ENV_VAR",
    "SUPPORTED_SUFFIXES",
    "ImageData",
    "SpermInputError",
    "atomic_write",
    "atomic_write_json",
    "default_lazy_threshold",
    "is_supported",
    "read_image",
]
