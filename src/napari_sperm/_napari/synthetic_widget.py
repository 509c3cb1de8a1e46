"""Dock widget *Synthetic sperm*: generate a synthetic field or stack with ground-truth layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, Container, SpinBox

from ..synthetic import iter_stack, modality_names
from ..synthetic.layers import image_layer_data, truth_layer_data
from .background import BackgroundRunner

if TYPE_CHECKING:
    import napari

__all__ = ["SyntheticWidget"]


class SyntheticWidget(Container):
    """Generate synthetic sperm images (with exact ground truth) into the viewer.

    The same generator as ``napari-sperm synth`` and :func:`napari_sperm.synthetic.make_stack`.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.modality = ComboBox(
            label="modality",
            choices=modality_names(),
            value="phase-high",
            tooltip="kind of microscopy to imitate",
        )
        self.frames = SpinBox(
            label="frames",
            value=20,
            min=1,
            max=1000,
            tooltip="1 for a still field, more for a video in which the sperm swim",
        )
        self.seed = SpinBox(
            label="seed",
            value=0,
            min=0,
            max=2**31 - 1,
            tooltip="the same seed gives the same images",
        )
        self.n_sperm = SpinBox(
            label="sperm",
            value=0,
            min=0,
            max=5000,
            tooltip="sperm per field; 0 draws from the modality's typical range",
        )
        self.truth = CheckBox(text="add ground-truth layers (heads, tails, boxes)", value=True)
        self.runner = BackgroundRunner("Generate", self._job)
        super().__init__(
            widgets=[self.modality, self.frames, self.seed, self.n_sperm, self.truth, self.runner]
        )

    def _job(self):
        modality = self.modality.value
        frames = int(self.frames.value)
        seed = int(self.seed.value)
        n_sperm = int(self.n_sperm.value) or None
        add_truth = bool(self.truth.value)

        def work():
            return (yield from iter_stack(modality, frames, seed, n_sperm=n_sperm))

        def done(stack):
            obj = stack if frames > 1 else stack.field(0)
            name = f"synthetic {modality} #{seed}"
            layers = [image_layer_data(obj, name)]
            if add_truth:
                layers += truth_layer_data(obj, name)
            for data, kwargs, kind in layers:
                getattr(self._viewer, f"add_{kind}")(data, **kwargs)

        return work, done
