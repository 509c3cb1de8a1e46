"""`napari-sperm synth` and write_dataset: files, COCO schema, pycocotools, exact masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from napari_sperm.cli import main
from napari_sperm.coco import CATEGORIES
from napari_sperm.io import read_image
from napari_sperm.synthetic import make_stack, write_dataset
from napari_sperm.synthetic.dataset import image_seed


@pytest.fixture(scope="module")
def stack_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert (
        main(
            [
                "synth",
                str(out),
                "--modality",
                "phase-high",
                "--n-images",
                "2",
                "--frames",
                "3",
                "--seed",
                "5",
                "--n-sperm",
                "8",
                "-q",
            ]
        )
        == 0
    )
    return out


def test_layout_and_schema(stack_dataset):
    ds = json.loads((stack_dataset / "annotations.json").read_text())
    assert ds["categories"] == CATEGORIES
    assert [c["name"] for c in ds["categories"]] == ["sperm", "head", "tail"]
    assert sorted((stack_dataset / "images").iterdir()) == [
        stack_dataset / "images" / "phase-high_0001.tif",
        stack_dataset / "images" / "phase-high_0002.tif",
    ]
    assert [im["id"] for im in ds["images"]] == list(range(1, 7))
    assert [im["frame"] for im in ds["images"]] == [0, 1, 2, 0, 1, 2]
    assert ds["images"][0]["file_name"] == "images/phase-high_0001.tif"
    ids = [a["id"] for a in ds["annotations"]]
    assert ids == list(range(1, len(ids) + 1))
    for a in ds["annotations"]:
        assert a["iscrowd"] == 0
        assert isinstance(a["segmentation"]["counts"], str)
        assert "sperm_id" in a["attributes"]
    # Each cell with a visible head has its three parts linked by sperm_id in each frame.
    by_image = {}
    for a in ds["annotations"]:
        by_image.setdefault((a["image_id"], a["attributes"]["sperm_id"]), set()).add(
            a["category_id"]
        )
    assert sum(cats == {1, 2, 3} for cats in by_image.values()) >= 6 * 6


def test_pycocotools_reads_it_and_masks_are_exact(stack_dataset):
    coco = COCO(str(stack_dataset / "annotations.json"))
    assert len(coco.getImgIds()) == 6
    # Regenerate the first stack from its recorded seed and compare every mask pixel for pixel.
    img0 = coco.loadImgs(1)[0]
    stack = make_stack("phase-high", 3, img0["seed"], n_sperm=8)
    assert img0["seed"] == image_seed(5, 0)
    pixels = tifffile.imread(stack_dataset / img0["file_name"])
    assert np.array_equal(pixels, stack.images)
    for frame in range(3):
        image_id = frame + 1
        truths = {t.sperm_id: t for t in stack.sperm[frame]}
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            t = truths[ann["attributes"]["sperm_id"]]
            expected = {1: t.sperm_mask(), 2: t.head, 3: t.tail}[ann["category_id"]]
            got = coco.annToMask(ann).astype(bool)
            assert np.array_equal(got, expected.to_full(stack.images.shape[1:3]))
            assert ann["area"] == expected.area
            x, y, w, h = expected.bbox()
            assert ann["bbox"] == [x, y, w, h]
    # The ground truth evaluated against itself is perfect.
    dets = []
    for a in coco.dataset["annotations"]:
        dets.append({**a, "score": 1.0})
    pred = coco.loadRes(dets)
    for iou_type in ("bbox", "segm"):
        ev = COCOeval(coco, pred, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)


def test_tail_centreline_in_attributes(stack_dataset):
    ds = json.loads((stack_dataset / "annotations.json").read_text())
    tails = [a for a in ds["annotations"] if a["category_id"] == 3]
    line = np.array(tails[0]["attributes"]["centreline"]).reshape(-1, 2)  # (x, y)
    x, y, w, h = tails[0]["bbox"]
    inside = (
        (line[:, 0] >= x - 3)
        & (line[:, 0] <= x + w + 3)
        & (line[:, 1] >= y - 3)
        & (line[:, 1] <= y + h + 3)
    )
    assert inside.mean() > 0.3


def test_stack_tiff_carries_pixel_size(stack_dataset):
    img = read_image(stack_dataset / "images" / "phase-high_0001.tif")
    assert img.data.shape == (3, 480, 640)
    assert img.scale[-2:] == pytest.approx((0.125, 0.125))
    assert img.unit == "um"


def test_still_fields_are_png(tmp_path):
    ann = write_dataset(tmp_path / "d", modality="stained", n_images=1, frames=1, seed=1, n_sperm=4)
    ds = json.loads(ann.read_text())
    assert ds["images"][0]["file_name"] == "images/stained_0001.png"
    assert "frame" not in ds["images"][0]
    im = np.asarray(Image.open(tmp_path / "d" / ds["images"][0]["file_name"]))
    assert im.shape == (1024, 1280, 3)


def test_existing_dataset_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["synth", str(out), "--modality", "phase-low", "--n-sperm", "5", "-q"]) == 0
    before = (out / "annotations.json").read_bytes()
    assert main(["synth", str(out), "--modality", "phase-low", "--seed", "9", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0]
    assert (out / "annotations.json").read_bytes() == before
    assert main(["synth", str(out), "--modality", "phase-low", "--seed", "9", "--force", "-q"]) == 0
    assert (out / "annotations.json").read_bytes() != before


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--n-images", "0"], "--n-images"),
        (["--frames", "0"], "--frames"),
    ],
)
def test_bad_arguments_give_one_line(tmp_path, capsys, argv, needle):
    assert main(["synth", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_unknown_modality_is_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["synth", str(tmp_path / "x"), "--modality", "fluorescence"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_existing_image_files_are_not_overwritten(tmp_path, capsys):
    images = tmp_path / "d" / "images"
    images.mkdir(parents=True)
    mine = images / "phase-low_0001.png"
    mine.write_bytes(b"my own picture")
    assert main(["synth", str(tmp_path / "d"), "--modality", "phase-low", "-q"]) == 2
    assert "phase-low_0001.png" in capsys.readouterr().err
    assert mine.read_bytes() == b"my own picture"
    assert not (tmp_path / "d" / "annotations.json").exists()
