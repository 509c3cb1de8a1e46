"""Crash-safe file writing: write to a temporary file, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_json"]


def _temp_path(target: Path) -> Path:
    """Return an unused hidden temporary path next to ``target``.

    Parameters
    ----------
    target : Path
        The file that will eventually be replaced.

    Returns
    -------
    Path
        A path in the same directory (so ``os.replace`` is atomic).
    """
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")


def _open_new(path: Path, mode: str) -> IO[Any]:
    """Create ``path`` exclusively (honouring the umask) and open it.

    Parameters
    ----------
    path : Path
        Path that must not exist yet.
    mode : str
        A write mode such as ``"wb"`` or ``"w"``.

    Returns
    -------
    file object
        Open for writing; text modes use UTF-8.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        if "b" in mode:
            return os.fdopen(fd, mode)
        return os.fdopen(fd, mode, encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Write a file so that it is either fully replaced or left untouched.

    The block writes into a temporary file in the same directory; only if it
    finishes without an exception is that file flushed, synced and moved onto
    ``path`` with :func:`os.replace`. On error the temporary file is removed
    and any existing ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    mode : str, optional
        ``"wb"`` (default) for bytes or ``"w"`` for UTF-8 text.

    Returns
    -------
    contextlib.AbstractContextManager
        Yields the open temporary file object.

    Raises
    ------
    ValueError
        If ``mode`` is not a plain write mode.
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_write mode must be 'w', 'wt' or 'wb', not {mode!r}")
    target = Path(os.fspath(path))
    tmp = _temp_path(target)
    handle = _open_new(tmp, mode)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            with contextlib.suppress(OSError):
                shutil.copymode(target, tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as compact UTF-8 JSON, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    obj : Any
        JSON-serialisable object.

    Returns
    -------
    None
    """
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=None, ensure_ascii=False)
