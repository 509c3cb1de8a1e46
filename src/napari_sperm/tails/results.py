"""Result types of Con2Dis tail clustering."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..synthetic.raster import CropMask
from .params import Con2DisParams

__all__ = ["MergeDecision", "TailInstance", "TailClustering"]


@dataclass
class MergeDecision:
    """One decision to join (or not) two skeleton pieces, kept for inspection.

    Attributes
    ----------
    pieces : (int, int)
        The two skeleton pieces.
    ends : (int, int)
        Which end (0 or 1) of each piece.
    distance : float
        Distance in pixels between the two end pixels.
    angle_deg : float
        Bend in degrees: 0 means the second piece continues the first in a straight line.
    cost : float
        Matching cost (degrees; bend plus sideways offset); lower is better.
    accepted : bool
    reason : str
        ``"through junction"``, ``"pass through"``, ``"gap bridge"``, ``"head path"``,
        ``"shared stretch"``, ``"exit swap"`` (a path from a head moved to a hub's unused exit,
        leaving the one it took to a later path), ``"gap jump"`` (a path from a head jumping a
        gap), or
        ``"rejected: ..."``.
    position : (float, float)
        ``(row, col)`` where the decision was taken (midpoint of the two ends).
    """

    pieces: tuple[int, int]
    ends: tuple[int, int]
    distance: float
    angle_deg: float
    cost: float
    accepted: bool
    reason: str
    position: tuple[float, float] = (0.0, 0.0)


@dataclass
class TailInstance:
    """One tail (flagellum).

    Attributes
    ----------
    label : int
        Instance number, 1..n.
    mask : CropMask
        The tail's pixels; a pixel where two tails cross belongs to both.
    centreline : (N, 2) float array
        ``(row, col)`` 1-px centreline, from the head end to the tip when paired, otherwise from an
        arbitrary end.
    head : int or None
        Label of the head it is paired with.
    pair_distance : float or None
        Distance in pixels from the tail's head end to the head's rear end.
    pair_angle_deg : float or None
        Angle between the tail's end direction and the head axis.
    pieces : tuple of int
        Skeleton pieces merged into this tail.
    """

    label: int
    mask: CropMask
    centreline: np.ndarray
    head: int | None = None
    pair_distance: float | None = None
    pair_angle_deg: float | None = None
    pieces: tuple[int, ...] = ()

    @property
    def length(self) -> float:
        """Arc length of the centreline in pixels."""
        if len(self.centreline) < 2:
            return 0.0
        step = np.diff(np.asarray(self.centreline, float), axis=0)
        return float(np.hypot(step[:, 0], step[:, 1]).sum())


@dataclass
class TailClustering:
    """Result of :func:`~napari_sperm.tails.cluster_tails`.

    Attributes
    ----------
    tails : list of TailInstance
    merges : list of MergeDecision
        Every join considered, accepted or not.
    shape : (int, int)
        Frame shape.
    params : Con2DisParams
    tail_width : float
        Tail width in pixels used to scale the thresholds (estimated or given).
    unpaired_heads : list of int
        Head labels with no tail.
    """

    tails: list[TailInstance]
    merges: list[MergeDecision]
    shape: tuple[int, int]
    params: Con2DisParams
    tail_width: float
    unpaired_heads: list[int] = field(default_factory=list)

    def labels(self) -> np.ndarray:
        """Label image of the tails, int32.

        A paired tail carries its head's label; an unpaired one a fresh label above the largest head
        label (and above every paired label). Tails are painted in instance order, so where tails
        cross, the pixel shows the tail with the higher instance label.
        """
        out = np.zeros(self.shape, np.int32)
        heads = [t.head for t in self.tails if t.head is not None]
        nxt = max([0, *heads, *self.unpaired_heads]) + 1
        for t in self.tails:
            if t.head is not None:
                value = int(t.head)
            else:
                value, nxt = nxt, nxt + 1
            t.mask.paste(out, value)
        return out

    def tail_for_head(self, head: int) -> TailInstance | None:
        """The tail paired with head label ``head``, or ``None``."""
        for t in self.tails:
            if t.head == head:
                return t
        return None
