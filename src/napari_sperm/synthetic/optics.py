"""Turn drawn objects into a microscope image: stain absorbance, phase halos, lamp and camera.

A frame is built in two physical maps:

- *optical density* per colour channel (Beer-Lambert absorbance: stain, pigment), and
- *phase* (optical path difference), which phase-contrast optics turn into a dark object with a
  bright halo: ``I ~ 1 + k (G_sigma * P - P)`` is below 1 inside an object and above 1 just outside.

Then an uneven lamp, a point-spread blur, shot and read noise and optional JPEG compression are
applied, and the result is quantised to 8 bits like a camera would.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from .modalities import Modality
from .raster import Crop

__all__ = ["Canvas", "illumination_field", "expose"]

# Absorbance colours (R, G, B optical density at full coverage) for the stained modality.
STAIN_NUCLEUS = np.array([1.00, 1.50, 0.55], np.float32)  # dark purple
STAIN_ACROSOME = np.array([0.45, 0.75, 0.22], np.float32)  # lighter lilac cap
STAIN_MIDPIECE = np.array([0.62, 0.66, 0.36], np.float32)  # purple-grey
STAIN_TAIL = np.array([0.40, 0.34, 0.20], np.float32)  # blue-grey
STAIN_DEBRIS = np.array([0.35, 0.70, 0.25], np.float32)  # pink-purple smudges
STAIN_BACTERIA = np.array([0.85, 1.25, 0.45], np.float32)


class Canvas:
    """Accumulates optical density and phase for one frame."""

    def __init__(self, shape: tuple[int, int], channels: int):
        self.shape = shape
        self.od = np.zeros((*shape, channels), np.float32)
        self.phase = np.zeros(shape, np.float32)

    def absorb(self, crop: Crop, colour, values: np.ndarray | None = None) -> None:
        """Add ``colour`` (one OD per channel) times the crop's coverage (or ``values``)."""
        colour = np.asarray(colour, np.float32).reshape(-1)
        if colour.size != self.od.shape[2]:
            colour = np.full(self.od.shape[2], float(colour.mean()), np.float32)
        crop.add_to(self.od, colour, values)

    def retard(self, crop: Crop, amount: float, values: np.ndarray | None = None) -> None:
        """Add ``amount`` times the crop's coverage (or ``values``) to the phase map."""
        crop.add_to(self.phase, float(amount), values)


def illumination_field(
    shape: tuple[int, int], strength: float, rng: np.random.Generator
) -> np.ndarray:
    """Relative lamp brightness: a tilted plane times a soft vignette, mean about 1."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy = yy / h - 0.5
    xx = xx / w - 0.5
    ang = rng.uniform(0, 2 * np.pi)
    tilt = (np.cos(ang) * xx + np.sin(ang) * yy) * strength * rng.uniform(0.5, 1.0) * 2
    cy, cx = rng.uniform(-0.2, 0.2, 2)
    vignette = -strength * rng.uniform(0.3, 1.0) * ((xx - cx) ** 2 + (yy - cy) ** 2) * 2
    return (1.0 + tilt + vignette).astype(np.float32)


def background_texture(
    shape: tuple[int, int], rng: np.random.Generator, sigma: float
) -> np.ndarray:
    """Smooth random mottling (uneven stain or medium), zero mean, unit-ish amplitude."""
    small = (max(2, shape[0] // 16), max(2, shape[1] // 16))
    noise = ndi.gaussian_filter(rng.normal(0, 1, small).astype(np.float32), sigma / 16)
    big = ndi.zoom(noise, (shape[0] / small[0], shape[1] / small[1]), order=1)
    big = big[: shape[0], : shape[1]]
    if big.shape != shape:
        big = np.pad(big, [(0, shape[0] - big.shape[0]), (0, shape[1] - big.shape[1])], mode="edge")
    return big / max(float(np.abs(big).max()), 1e-6)


def expose(
    canvas: Canvas,
    m: Modality,
    illumination: np.ndarray | None,
    blur_sigma: float,
    noise: bool,
    jpeg_quality: int | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Form the 8-bit image from the canvas.

    Parameters
    ----------
    canvas
        Accumulated optical density and phase.
    m
        The modality (background level, halo, noise figures).
    illumination
        Relative lamp field (``None`` for flat light).
    blur_sigma
        Gaussian point-spread sigma in px (0 for none).
    noise
        Add Poisson shot noise and Gaussian read noise.
    jpeg_quality
        Compress and decompress with this JPEG quality, or ``None`` for no compression artefacts.
    rng
        Random generator for the noise.

    Returns
    -------
    uint8 array of shape ``(H, W, 3)`` for colour modalities, ``(H, W)`` otherwise.
    """
    bg = np.asarray(m.background, np.float32)
    img = np.exp(-canvas.od) * bg  # (H, W, C)
    if m.halo_strength != 0 and m.halo_sigma > 0:  # < 0: negative phase contrast
        p = canvas.phase
        halo = 1.0 + m.halo_strength * (ndi.gaussian_filter(p, m.halo_sigma) - p)
        img *= np.clip(halo, 0.05, None)[..., None]
    if illumination is not None:
        img *= illumination[..., None]
    if blur_sigma > 0:
        img = ndi.gaussian_filter(img, (blur_sigma, blur_sigma, 0))
    if noise:
        scale = m.photons / 255.0
        img = rng.poisson(np.clip(img, 0, None) * scale).astype(np.float32) / scale
        img += rng.normal(0.0, m.read_noise, img.shape).astype(np.float32)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if not m.rgb:
        out = out[..., 0]
    if jpeg_quality is not None:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(jpeg_quality))
        buf.seek(0)
        out = np.asarray(Image.open(buf).convert("RGB" if m.rgb else "L"))
    return out
