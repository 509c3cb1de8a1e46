"""Augmentation added on top of the default recipe's (crops, scale jitter, the 8 flips and 90-degree
rotations, brightness/contrast/gamma and noise, see :mod:`napari_sperm.detection.train`) when
training on user data: defocus blur, as microscope fields are rarely all in focus."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["BLUR_PROBABILITY", "BLUR_SIGMA", "random_blur"]

BLUR_PROBABILITY = 0.3
BLUR_SIGMA = (0.4, 1.5)
"""Range of the Gaussian blur sigma, in network-input pixels."""


def _kernel(sigma: float) -> torch.Tensor:
    r = max(1, int(round(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def random_blur(t: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Blur a ``(C, H, W)`` crop with a random Gaussian, with probability ``BLUR_PROBABILITY``.

    Parameters
    ----------
    t : (C, H, W) float tensor
    rng : numpy.random.Generator

    Returns
    -------
    (C, H, W) float tensor
        ``t`` itself when not blurred.
    """
    if rng.random() >= BLUR_PROBABILITY:
        return t
    sigma = float(rng.uniform(*BLUR_SIGMA))
    k = _kernel(sigma)
    c = t.shape[0]
    r = (len(k) - 1) // 2
    x = F.pad(t[None], (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x[0]
