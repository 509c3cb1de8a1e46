"""Dock widget *Export / import COCO*: write ``images/`` + ``annotations.json``; read one back.

Export reads the chosen image's boxes, heads and tails layers (found by their metadata), or those of
every image that has any, and writes them in the background with a progress bar and Cancel. An
existing ``annotations.json`` is never replaced without asking. Import opens a COCO file with the
napari-sperm reader: the images plus boxes, heads and tails layers, ready to correct further.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, PushButton
from napari.layers import Image
from napari.utils.notifications import show_error, show_info

from ..annotations.export import ANNOTATIONS_FILE, ExportResult, iter_export_coco
from ..io.errors import SpermInputError
from .annotation_layers import find_annotation_layers, stack_from_layers
from .background import BackgroundRunner

if TYPE_CHECKING:
    import napari

__all__ = ["ExportWidget"]

ONE, ALL = "this image", "every annotated image"


class ExportWidget(Container):
    """Export the corrected annotations as COCO, or import an earlier export."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.which = ComboBox(label="export", choices=[ONE, ALL], value=ONE)
        self.folder = FileEdit(label="to folder", mode="d", value="")
        self.include_empty = CheckBox(text="also export frames without annotations", value=False)
        self.runner = BackgroundRunner("Export COCO", self._job)
        self.import_file = FileEdit(label="COCO file", mode="r", filter="*.json", value="")
        self.import_button = PushButton(text="Import COCO")
        super().__init__(
            widgets=[
                self.image,
                self.which,
                self.folder,
                self.include_empty,
                self.runner,
                self.import_file,
                self.import_button,
            ]
        )
        self.import_button.changed.connect(lambda *_: self.import_coco())
        self.last_result: ExportResult | None = None

    def _image_choices(self, _widget=None) -> list[tuple[str, Image]]:
        return [(ly.name, ly) for ly in self._viewer.layers if isinstance(ly, Image)]

    def confirm_overwrite(self, path: Path) -> bool:
        """Ask before replacing an existing export (tests replace this method)."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self.native,
            "Overwrite export?",
            f"'{path}' already exists. Replace it (and image files of the same names)?",
        )
        return answer == QMessageBox.StandardButton.Yes

    def _stacks(self):
        if self.which.value == ALL:
            images = [ly for _, ly in self._image_choices()]
        else:
            images = [self.image.value] if self.image.value is not None else []
        if not images:
            raise SpermInputError("Open an image first, then detect or draw sperm to export.")
        stacks = []
        for img in images:
            found = find_annotation_layers(self._viewer, img)
            if self.which.value == ALL and all(v is None for v in found.values()):
                continue
            stacks.append(stack_from_layers(img, **found))
        if not stacks:
            raise SpermInputError("No image has boxes, heads or tails layers to export.")
        return stacks

    def _job(self):
        folder = str(self.folder.value or "")
        if not folder or folder == ".":
            show_error("napari-sperm: choose a folder to export to.")
            return None
        out = Path(folder)
        try:
            stacks = self._stacks()  # read the layers on the GUI thread
        except SpermInputError as exc:
            show_error(f"napari-sperm: {exc}")
            return None
        force = False
        if (out / ANNOTATIONS_FILE).exists():
            if not self.confirm_overwrite(out / ANNOTATIONS_FILE):
                show_info("napari-sperm: export cancelled; nothing was written.")
                return None
            force = True
        include_empty = bool(self.include_empty.value)

        def work():
            result = None
            for item in iter_export_coco(stacks, out, force=force, include_empty=include_empty):
                if isinstance(item, ExportResult):
                    result = item
                else:
                    yield item
            return result

        def done(result: ExportResult):
            self.last_result = result
            self.import_file.value = str(result.path)
            show_info(
                f"napari-sperm: exported {result.n_images} image(s) and {result.n_annotations} "
                f"annotation(s) to {result.path}"
            )

        return work, done

    def import_coco(self) -> None:
        """Open the chosen COCO file as layers (nothing is added if it is malformed)."""
        path = str(self.import_file.value or "")
        if not path or not path.lower().endswith(".json"):
            show_error("napari-sperm: choose a COCO .json file to import.")
            return
        try:
            self._viewer.open(path, plugin="napari-sperm")
        except Exception as exc:  # noqa: BLE001 - napari wraps reader errors; show one line
            cause = exc
            while cause.__cause__ is not None and not isinstance(cause, SpermInputError):
                cause = cause.__cause__
            show_error(f"napari-sperm: {cause}")
