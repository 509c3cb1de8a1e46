"""The widgets' choice of how many flipped copies of each frame a network is averaged over."""

from __future__ import annotations

from magicgui.widgets import ComboBox

from ..detection.flips import FLIPS

__all__ = ["flips_choice"]


def flips_choice(label: str, default: int, network: str, gains: str) -> ComboBox:
    """A ComboBox of :data:`~napari_sperm.detection.flips.FLIPS` for ``network``."""
    return ComboBox(
        label=label,
        choices=list(FLIPS),
        value=default,
        tooltip=f"average the {network} over this many flipped copies of each frame: {gains}, "
        "at that many times the network's time (1: run it once)",
    )
