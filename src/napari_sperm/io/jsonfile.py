"""Reading JSON files the user gives, with every failure as one readable line."""

from __future__ import annotations

import json
import os
from typing import Any

from .errors import SpermInputError

__all__ = ["read_json"]


def read_json(path: str | os.PathLike, what: str, fix: str) -> Any:
    """Parse a JSON file; every failure is one :class:`SpermInputError` line.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        What the file should be, for the message (``"labelme file"``).
    fix : str
        What to do about it, the end of the message.

    Returns
    -------
    object
        The parsed JSON.

    Raises
    ------
    SpermInputError
        Missing, unreadable, not UTF-8 or not valid JSON.
    """
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise SpermInputError(f"{what} '{path}' does not exist. {fix}") from None
    except UnicodeDecodeError as exc:
        raise SpermInputError(f"{what} '{path}' is not a text (JSON) file. {fix}") from exc
    except json.JSONDecodeError as exc:
        raise SpermInputError(
            f"{what} '{path}' is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}). {fix}"
        ) from exc
    except OSError as exc:
        raise SpermInputError(f"Cannot read {what} '{path}' ({exc.strerror or exc}).") from exc
