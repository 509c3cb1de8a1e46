"""Length units found in image metadata: canonical spellings and conversion."""

from __future__ import annotations

__all__ = ["convert_length", "normalise_unit"]

_UNIT_ALIASES = {
    "um": "um",
    "µm": "um",  # micro sign U+00B5
    "μm": "um",  # greek mu U+03BC
    "micron": "um",
    "microns": "um",
    "micrometer": "um",
    "micrometre": "um",
    "micrometers": "um",
    "micrometres": "um",
    "nm": "nm",
    "nanometer": "nm",
    "nanometre": "nm",
    "mm": "mm",
    "millimeter": "mm",
    "millimetre": "mm",
    "cm": "cm",
    "centimeter": "cm",
    "centimetre": "cm",
    "m": "m",
    "meter": "m",
    "metre": "m",
    "pm": "pm",
    "å": "Å",
    "angstrom": "Å",
    "inch": "inch",
    "in": "inch",
}
_UNCALIBRATED = {"", "pixel", "pixels", "px", "none"}
_UNIT_IN_UM = {
    "pm": 1e-6,
    "Å": 1e-4,
    "nm": 1e-3,
    "um": 1.0,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
    "inch": 25400.0,
}


def normalise_unit(unit: object) -> str | None:
    """Map unit spellings to a short canonical form.

    Parameters
    ----------
    unit : object
        Unit from metadata, e.g. ``"micron"``, ``"µm"``, ``"\\u00B5m"``
        (ImageJ's escaped form).

    Returns
    -------
    str or None
        ``"um"``, ``"nm"``, ... ; None for missing or pixel ("uncalibrated")
        units. Unknown spellings are returned stripped but unchanged.
    """
    if unit is None:
        return None
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    text = str(unit).strip()
    key = text.lower().replace("\\u00b5", "µ").replace("\\u03bc", "μ")
    if key in _UNCALIBRATED:
        return None
    return _UNIT_ALIASES.get(key, text)


def convert_length(value: float, unit: str | None, target: str | None) -> float:
    """Convert a length between units when both are known lengths.

    Parameters
    ----------
    value : float
        Length in ``unit``.
    unit, target : str or None
        Canonical units (as returned by :func:`normalise_unit`).

    Returns
    -------
    float
        Length in ``target`` (unchanged when conversion is not possible).
    """
    if unit == target or unit not in _UNIT_IN_UM or target not in _UNIT_IN_UM:
        return value
    return value * _UNIT_IN_UM[unit] / _UNIT_IN_UM[target]
