"""Pixel size from TIFF metadata (ImageJ, OME-XML) and per-axis scales."""

from __future__ import annotations

import math

import tifffile

from .units import convert_length, normalise_unit

__all__ = ["Calibration", "scale_for_axes", "tiff_calibration"]

Calibration = tuple[float, float, float | None, str | None]
"""``(size_y, size_x, size_z or None, unit or None)``."""


def _resolution(page: tifffile.TiffPage, name: str) -> float | None:
    """Pixels per unit from an X/YResolution tag.

    Parameters
    ----------
    page : tifffile.TiffPage
        Page holding the tag.
    name : str
        ``"XResolution"`` or ``"YResolution"``.

    Returns
    -------
    float or None
        Positive resolution, or None when missing or zero.
    """
    tag = page.tags.get(name)
    if tag is None:
        return None
    value = tag.value
    try:
        if isinstance(value, (tuple, list)):
            num, den = float(value[0]), float(value[1])
            res = num / den if den else 0.0
        else:
            res = float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return res if res > 0 and math.isfinite(res) else None


def _imagej_calibration(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> Calibration | None:
    """Pixel size from ImageJ metadata and resolution tags.

    Parameters
    ----------
    tif : tifffile.TiffFile
        Open ImageJ file.
    page : tifffile.TiffPage
        First page of the series.

    Returns
    -------
    Calibration or None
        ``(size_y, size_x, spacing_z or None, unit or None)``, or None when
        the file is not calibrated.
    """
    meta = tif.imagej_metadata or {}
    unit = normalise_unit(meta.get("unit"))
    xres = _resolution(page, "XResolution")
    yres = _resolution(page, "YResolution") or xres
    if xres is None:
        return None
    if unit is None and xres == 1.0 and yres == 1.0:
        return None
    spacing = meta.get("spacing")
    try:
        z = float(spacing) if spacing is not None else None
    except (TypeError, ValueError):
        z = None
    return (1.0 / float(yres), 1.0 / xres, z, unit)


def _ome_size(pixels: dict, axis: str) -> tuple[float | None, str | None]:
    """One ``PhysicalSize{axis}`` of an OME ``Pixels`` element.

    Parameters
    ----------
    pixels : dict
        The ``Pixels`` element as parsed by :func:`tifffile.xml2dict`.
    axis : str
        ``"X"``, ``"Y"`` or ``"Z"``.

    Returns
    -------
    size : float or None
        Positive, finite size; None when missing or invalid.
    unit : str or None
        Its canonical unit (OME's default is µm).
    """
    value = pixels.get(f"PhysicalSize{axis}")
    unit = normalise_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
    try:
        number = float(value) if value is not None else None
    except (TypeError, ValueError):
        number = None
    if number is not None and not (number > 0 and math.isfinite(number)):
        number = None
    return number, unit


def _ome_calibration(tif: tifffile.TiffFile) -> Calibration | None:
    """Pixel size from OME-XML ``PhysicalSizeX/Y/Z``.

    Parameters
    ----------
    tif : tifffile.TiffFile
        Open OME-TIFF file.

    Returns
    -------
    Calibration or None
        ``(size_y, size_x, size_z or None, unit)`` in the X unit (default
        µm), or None when no physical size is given.
    """
    xml = tif.ome_metadata
    if not xml:
        return None
    image = tifffile.xml2dict(xml).get("OME", {}).get("Image")
    if isinstance(image, (list, tuple)):
        image = image[0] if image else None
    pixels = image.get("Pixels") if isinstance(image, dict) else None
    if not isinstance(pixels, dict):
        return None
    sx, unit = _ome_size(pixels, "X")
    sy, uy = _ome_size(pixels, "Y")
    sz, uz = _ome_size(pixels, "Z")
    if sx is None and sy is None:
        return None
    if sx is None:
        sx, unit = sy, uy
    sy = sx if sy is None else convert_length(sy, uy, unit)
    sz = None if sz is None else convert_length(sz, uz, unit)
    return (float(sy), float(sx), sz, unit)


def tiff_calibration(tif: tifffile.TiffFile) -> Calibration | None:
    """Pixel size of the first series of an open TIFF file.

    Parameters
    ----------
    tif : tifffile.TiffFile
        Open file with at least one series.

    Returns
    -------
    Calibration or None
        From OME-XML or ImageJ metadata; None for plain TIFFs and
        uncalibrated files.
    """
    if tif.is_ome:
        return _ome_calibration(tif)
    if tif.is_imagej:
        return _imagej_calibration(tif, tif.series[0].keyframe)
    return None


def scale_for_axes(
    axes: str, rgb: bool, calibration: Calibration | None
) -> tuple[tuple[float, ...] | None, str | None]:
    """Build the per-axis scale tuple.

    Parameters
    ----------
    axes : str
        Axis letters of the final data (samples last when ``rgb``).
    rgb : bool
        Whether the last axis is RGB samples (gets no scale entry).
    calibration : Calibration or None
        ``(size_y, size_x, spacing_z, unit)``.

    Returns
    -------
    scale : tuple of float or None
        One entry per axis except trailing RGB samples.
    unit : str or None
        Unit of the scale.
    """
    if calibration is None:
        return None, None
    size_y, size_x, size_z, unit = calibration
    spatial = axes[:-1] if rgb else axes
    values = {"Y": size_y, "X": size_x, "Z": size_z if size_z else 1.0}
    return tuple(float(values.get(ax, 1.0)) for ax in spatial), unit
