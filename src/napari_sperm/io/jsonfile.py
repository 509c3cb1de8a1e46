"""Reading JSON files the user gives, with every failure as one readable line."""

from __future__ import annotations

import json
import os
from typing import Any

from .errors import SpermInputError

__all__ = ["read_json"]


_UNREADABLE_FIX = "Check its permissions or copy it somewhere readable."


def read_json(
    path: str | os.PathLike,
    what: str,
    fix: str,
    *,
    lead: str | None = None,
    missing_fix: str | None = None,
) -> Any:
    """Parse a JSON file; every failure is one :class:`SpermInputError` line.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        What the file should be, for the message (``"labelme file"``).
    fix : str
        What to do about it, the end of the message.
    lead : str, optional
        Start of every message in place of ``"<what> '<path>' is"``, followed by a colon
        (``"Cannot import 'a.json'"`` gives ``"Cannot import 'a.json': not valid JSON (...). <fix>"``).
    missing_fix : str, optional
        The end of the message when the file does not exist (default: ``fix``).

    Returns
    -------
    object
        The parsed JSON.

    Raises
    ------
    SpermInputError
        Missing, unreadable, not UTF-8 or not valid JSON.
    """

    def fail(reason: str, is_reason: str, end: str) -> SpermInputError:
        head = f"{lead}: {reason}" if lead else f"{what} '{path}' {is_reason}"
        return SpermInputError(f"{head}. {end}")

    missing_end = missing_fix or fix
    try:
        # utf-8-sig: a byte-order mark, as some Windows tools write, is not an error.
        with open(path, encoding="utf-8-sig") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise fail("no such file", "does not exist", missing_end) from None
    except IsADirectoryError:
        raise fail("it is a folder, not a file", "is a folder, not a file", missing_end) from None
    except UnicodeDecodeError as exc:
        raise fail("not a text (JSON) file", "is not a text (JSON) file", fix) from exc
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise fail(f"not valid JSON ({where})", f"is not valid JSON ({where})", fix) from exc
    except OSError as exc:  # permission denied, a file on a drive that went away, ...
        why = exc.strerror or str(exc)
        raise fail(
            f"it cannot be read ({why})", f"cannot be read ({why})", _UNREADABLE_FIX
        ) from exc
