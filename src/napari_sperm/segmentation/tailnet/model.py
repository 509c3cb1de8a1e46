"""The tail network: a small full-resolution encoder-decoder that maps a frame to tail logits.

Flagella are 1-5 px wide, so the output is at full resolution; the encoder reaches stride 8 with
dilated blocks for a receptive field of about 150 px, enough to follow a faint line through noise and
to tell a tail from the dark rim of a head or a droplet. About 38 k parameters, depthwise-separable
except at full resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...detection.model import ConvBN, DWSep

__all__ = ["DEFAULT_TAIL_ARCH", "MULTIPLE", "TailNet"]

DEFAULT_TAIL_ARCH = {"widths": [16, 32, 48, 64]}
MULTIPLE = 8  # input sides are padded to a multiple of this


class TailNet(nn.Module):
    """Frame ``(B, 3, H, W)`` (normalised, minus 0.5) to tail logits ``(B, 1, H, W)``."""

    def __init__(self, widths: list[int] | None = None):
        super().__init__()
        w = list(widths or DEFAULT_TAIL_ARCH["widths"])
        self.widths = w  # the ``arch`` to save with the weights
        self.enc0 = nn.Sequential(ConvBN(3, w[0], 3), ConvBN(w[0], w[0], 3))
        self.enc1 = nn.Sequential(DWSep(w[0], w[1], 2), DWSep(w[1], w[1]))  # /2
        self.enc2 = nn.Sequential(DWSep(w[1], w[2], 2), DWSep(w[2], w[2]), DWSep(w[2], w[2], d=2))
        self.enc3 = nn.Sequential(
            DWSep(w[2], w[3], 2), DWSep(w[3], w[3], d=2), DWSep(w[3], w[3], d=4)
        )  # /8
        self.lat2 = ConvBN(w[3], w[2], 1)
        self.dec2 = DWSep(w[2], w[2])
        self.lat1 = ConvBN(w[2], w[1], 1)
        self.dec1 = DWSep(w[1], w[1])
        self.lat0 = ConvBN(w[1], w[0], 1)
        self.dec0 = nn.Sequential(ConvBN(w[0], w[0], 3), nn.Conv2d(w[0], 1, 1))
        nn.init.constant_(self.dec0[-1].bias, -2.0)

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(e2 + self._up(self.lat2(e3), e2))
        d1 = self.dec1(e1 + self._up(self.lat1(d2), e1))
        return self.dec0(e0 + self._up(self.lat0(d1), e0))
