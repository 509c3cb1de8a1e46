"""The network: a tiny depthwise-separable encoder-decoder with CenterNet-style outputs at stride 4.

Outputs per stride-4 cell (``SpermNet.forward`` returns ``(heat_logits, reg)``):

* ``heat`` (1 channel): head-centre heatmap logits;
* ``reg`` (9 channels): sub-cell offset (dx, dy), log head size (log w/4, log h/4), log distances
  from the head centre to the whole-cell box edges (log l/4, log t/4, log r/4, log b/4) and the
  log unclipped head length (log L/4) used to pick the pyramid level that owns a cell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DEFAULT_ARCH", "N_REG", "STRIDE", "SpermNet"]

STRIDE = 4
N_REG = 9
DEFAULT_ARCH = {"widths": [16, 32, 48, 64, 96], "dec": 32, "head": 32}


class ConvBN(nn.Sequential):
    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 3,
        s: int = 1,
        d: int = 1,
        groups: int = 1,
        act: bool = True,
    ):
        pad = d * (k - 1) // 2
        layers = [
            nn.Conv2d(cin, cout, k, s, pad, dilation=d, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DWSep(nn.Module):
    """Depthwise 3x3 + pointwise 1x1, with a residual when shapes allow."""

    def __init__(self, cin: int, cout: int, s: int = 1, d: int = 1):
        super().__init__()
        self.dw = ConvBN(cin, cin, 3, s, d, groups=cin, act=True)
        self.pw = ConvBN(cin, cout, 1, act=True)
        self.res = s == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return x + y if self.res else y


class SpermNet(nn.Module):
    def __init__(self, widths: list[int] | None = None, dec: int = 32, head: int = 32):
        super().__init__()
        w = widths or DEFAULT_ARCH["widths"]
        self.stem = ConvBN(3, w[0], 3, 2)  # /2
        self.s4 = nn.Sequential(DWSep(w[0], w[1], 2), DWSep(w[1], w[1]))  # /4
        self.s8 = nn.Sequential(DWSep(w[1], w[2], 2), DWSep(w[2], w[2]))  # /8
        self.s16 = nn.Sequential(DWSep(w[2], w[3], 2), DWSep(w[3], w[3]), DWSep(w[3], w[3], d=2))
        self.s32 = nn.Sequential(
            DWSep(w[3], w[4], 2), DWSep(w[4], w[4], d=2), DWSep(w[4], w[4], d=4)
        )  # /32, wide RF
        self.lat32 = ConvBN(w[4], dec * 2, 1)
        self.lat16 = ConvBN(w[3], dec * 2, 1)
        self.up16 = DWSep(dec * 2, dec * 2)
        self.red16 = ConvBN(dec * 2, dec, 1)
        self.lat8 = ConvBN(w[2], dec, 1)
        self.up8 = DWSep(dec, dec)
        self.lat4 = ConvBN(w[1], dec, 1)
        self.up4 = DWSep(dec, dec)
        self.heat_head = nn.Sequential(DWSep(dec, head), nn.Conv2d(head, 1, 1))
        self.reg_head = nn.Sequential(DWSep(dec, head), nn.Conv2d(head, N_REG, 1))
        nn.init.constant_(self.heat_head[-1].bias, -4.0)

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="nearest")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c4 = self.s4(self.stem(x))
        c8 = self.s8(c4)
        c16 = self.s16(c8)
        c32 = self.s32(c16)
        p16 = self.up16(self.lat16(c16) + self._up(self.lat32(c32), c16))
        p8 = self.up8(self.lat8(c8) + self._up(self.red16(p16), c8))
        p4 = self.up4(self.lat4(c4) + self._up(p8, c4))
        return self.heat_head(p4), self.reg_head(p4)
