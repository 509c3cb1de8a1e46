"""The COCO reader and writer inside napari: open an export as layers, save layers as an export,
decline non-COCO JSON, and refuse a malformed file without adding any layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sperm._napari.reader import get_reader
from napari_sperm.annotations.export import export_coco
from napari_sperm.annotations.load import load_coco
from napari_sperm.synthetic.dataset import write_dataset

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    gt = write_dataset(root / "gt", "phase-high", n_images=1, frames=2, seed=21, crossings=3)
    return export_coco(load_coco(gt).stacks, root / "export").path


def test_reader_declines_other_json(tmp_path, exported):
    other = tmp_path / "settings.json"
    other.write_text(json.dumps({"colour": "red", "size": 3}))
    assert get_reader(str(other)) is None
    assert get_reader(str(exported)) is not None


def test_open_export_then_save_it_again(make_napari_viewer, exported, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(exported), plugin="napari-sperm")
    names = [ly.name for ly in viewer.layers]
    assert names == [
        "phase-high_0001",
        "phase-high_0001 boxes",
        "phase-high_0001 heads",
        "phase-high_0001 tails",
    ]
    image, boxes, heads, tails = viewer.layers
    assert image.data.shape == (2, 480, 640)
    assert {"score", "class", "frame", "sperm_id", "reviewed"} <= set(boxes.features.columns)
    assert set(np.unique(boxes.features["class"])) == {"head", "sperm"}
    assert tuple(image.scale) == tuple(heads.scale) == tuple(boxes.scale)
    assert heads.data.max() > 0 and tails.data.max() > 0
    # File > Save Selected Layers with a .json name is the export
    out = tmp_path / "saved" / "mine.json"
    out.parent.mkdir()
    viewer.layers.selection = set(viewer.layers)
    written = viewer.layers.save(str(out), selected=True, plugin="napari-sperm")
    assert written == [str(out)]
    a, b = json.loads(exported.read_text()), json.loads(out.read_text())
    assert a["images"] == b["images"]
    assert a["annotations"] == b["annotations"]
    assert (out.parent / a["images"][0]["file_name"]).exists()


def test_malformed_file_adds_no_layer(make_napari_viewer, exported, tmp_path):
    ds = json.loads(exported.read_text())
    ds["annotations"][0]["image_id"] = 77
    ds["annotations"][1]["segmentation"] = [[1, 2, 3, 4]]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(ds))
    (tmp_path / "images").symlink_to(exported.parent / "images")
    viewer = make_napari_viewer()
    with pytest.raises(Exception) as err:
        viewer.open(str(bad), plugin="napari-sperm")
    text = str(err.value) + str(err.value.__cause__)
    assert "77" in text and "polygon" in text
    assert len(viewer.layers) == 0
