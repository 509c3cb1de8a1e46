"""COCO export and import: exact round trips, pycocotools compatibility, overlaps, the CLI."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from napari_sperm.annotations.export import export_coco
from napari_sperm.annotations.labels import labels_from_masks, masks_from_labels
from napari_sperm.annotations.load import load_coco
from napari_sperm.annotations.model import AnnotatedFrame, AnnotatedStack, Cell
from napari_sperm.annotations.review import cell_rows, skeleton_length
from napari_sperm.annotations.validate import CocoFormatError
from napari_sperm.cli import main
from napari_sperm.coco import decode_mask
from napari_sperm.io import SpermInputError
from napari_sperm.synthetic.dataset import write_dataset
from napari_sperm.synthetic.raster import CropMask


@pytest.fixture(scope="module")
def gt(tmp_path_factory):
    """A 3-frame phase-contrast stack with crossing tails, and its ground truth."""
    out = tmp_path_factory.mktemp("gt")
    return write_dataset(out, "phase-high", n_images=1, frames=3, seed=11, n_sperm=12, crossings=4)


@pytest.fixture(scope="module")
def stained(tmp_path_factory):
    out = tmp_path_factory.mktemp("stained")
    return write_dataset(out, "stained", n_images=1, frames=1, seed=3, n_sperm=6, crossings=2)


def _load(path):
    with open(path) as fh:
        return json.load(fh)


def _quiet_coco(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_export_import_export_is_exact(gt, tmp_path):
    first = export_coco(load_coco(gt).stacks, tmp_path / "a")
    second = export_coco(load_coco(first.path).stacks, tmp_path / "b")
    a, b = _load(first.path), _load(second.path)
    assert a["images"] == b["images"]
    assert a["annotations"] == b["annotations"]
    assert a["categories"] == [
        {"id": 1, "name": "sperm", "supercategory": "cell"},
        {"id": 2, "name": "head", "supercategory": "sperm"},
        {"id": 3, "name": "tail", "supercategory": "sperm"},
    ]
    assert [img["file_name"] for img in a["images"]] == [
        f"images/phase-high_0001_{k:04d}.tif" for k in range(3)
    ]
    # the frames are real files with the stack's pixels
    res = load_coco(first.path)
    src = load_coco(gt)
    np.testing.assert_array_equal(res.stacks[0].pixels, src.stacks[0].pixels)


def test_export_keeps_ground_truth_masks(gt, tmp_path):
    """Every ground-truth head and tail mask comes out pixel for pixel (tails share crossings)."""
    truth = _quiet_coco(gt)
    out = export_coco(load_coco(gt).stacks, tmp_path / "x")
    ours = _quiet_coco(out.path)
    for img_t, img_o in zip(truth.dataset["images"], ours.dataset["images"], strict=True):
        for cat in (2, 3):
            t = {
                a["attributes"]["sperm_id"]: truth.annToMask(a)
                for a in truth.loadAnns(truth.getAnnIds(imgIds=img_t["id"], catIds=[cat]))
            }
            o = {
                a["attributes"]["sperm_id"]: ours.annToMask(a)
                for a in ours.loadAnns(ours.getAnnIds(imgIds=img_o["id"], catIds=[cat]))
            }
            assert t.keys() == o.keys()
            for sid in t:
                np.testing.assert_array_equal(t[sid], o[sid])
    # crossing tails really overlap, and both keep the shared pixels
    tails = [ours.annToMask(a) for a in ours.loadAnns(ours.getAnnIds(catIds=[3]))]
    shared = sum(
        int((tails[i] & tails[j]).sum())
        for i in range(len(tails))
        for j in range(i + 1, len(tails))
    )
    assert shared > 0


def test_pycocotools_reads_export_and_scores_it_perfectly(gt, tmp_path):
    out = export_coco(load_coco(gt).stacks, tmp_path / "e")
    ds = _load(out.path)
    coco = _quiet_coco(out.path)
    for ann in ds["annotations"]:
        rle = ann["segmentation"]
        if isinstance(rle, dict):
            m = decode_mask(rle)
            assert ann["area"] == float(m.sum())
            enc = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            assert ann["bbox"] == [float(v) for v in mask_utils.toBbox(enc)]
        assert set(ann["attributes"]) >= {"sperm_id", "reviewed"}
        assert ann["iscrowd"] == 0 and ann["id"] >= 1
    results = [{**a, "score": 1.0} for a in ds["annotations"]]
    for iou_type in ("bbox", "segm"):
        with contextlib.redirect_stdout(io.StringIO()):
            dt = coco.loadRes([dict(r) for r in results])
            ev = COCOeval(coco, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0), iou_type  # AP[.5:.95]
        assert ev.stats[1] == pytest.approx(1.0), iou_type  # AP50


def test_several_stacks_get_distinct_ids_and_files(gt, stained, tmp_path):
    stacks = load_coco(gt).stacks + load_coco(stained).stacks + load_coco(gt).stacks
    out = export_coco(stacks, tmp_path / "many")
    ds = _load(out.path)
    img_ids = [i["id"] for i in ds["images"]]
    ann_ids = [a["id"] for a in ds["annotations"]]
    assert img_ids == list(range(1, len(img_ids) + 1))
    assert ann_ids == list(range(1, len(ann_ids) + 1))
    names = [i["file_name"] for i in ds["images"]]
    assert len(set(names)) == len(names) == 7
    assert sum(n.startswith("images/phase-high_0001-2_") for n in names) == 3
    back = load_coco(out.path)
    assert [s.name for s in back.stacks] == ["phase-high_0001", "stained_0001", "phase-high_0001-2"]
    assert back.stacks[1].pixels.shape[-1] == 3 and not back.stacks[1].is_stack


def test_box_only_cells_and_review_flags_round_trip(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (2, 40, 50), dtype=np.uint8)
    head = np.zeros((40, 50), bool)
    head[5:9, 6:12] = True
    frames = [
        AnnotatedFrame(
            40,
            50,
            0,
            [
                Cell(
                    3,
                    head_box=(10.25, 12.5, 6.0, 4.75),
                    sperm_box=(8.0, 10.0, 30.0, 20.0),
                    score=0.8,
                ),
                Cell(7, head=CropMask.from_full(head), score=0.55, reviewed=True),
            ],
        ),
        AnnotatedFrame(40, 50, 1, []),
    ]
    stack = AnnotatedStack("tiny", frames, pixels=pixels)
    out = export_coco([stack], tmp_path / "e")
    ds = _load(out.path)
    assert len(ds["images"]) == 1  # the empty frame is not exported by default
    by = {(a["attributes"]["sperm_id"], a["category_id"]): a for a in ds["annotations"]}
    assert by[(3, 2)]["bbox"] == [10.25, 12.5, 6.0, 4.75]
    assert by[(3, 2)]["attributes"]["box_only"] is True
    assert by[(3, 1)]["attributes"]["score"] == 0.8
    assert by[(7, 2)]["attributes"] == {
        "sperm_id": 7,
        "score": 0.55,
        "reviewed": True,
        "paired": False,
        "box_only": False,
    }
    assert by[(7, 2)]["area"] == 24.0 and by[(7, 1)]["area"] == 24.0
    again = export_coco(load_coco(out.path).stacks, tmp_path / "f")
    assert _load(again.path)["annotations"] == ds["annotations"]
    with_empty = export_coco([stack], tmp_path / "g", include_empty=True)
    assert with_empty.n_images == 2


def test_export_never_overwrites_without_force(gt, tmp_path):
    stacks = load_coco(gt).stacks
    export_coco(stacks, tmp_path / "e")
    before = (tmp_path / "e" / "annotations.json").read_bytes()
    with pytest.raises(SpermInputError, match="already exists"):
        export_coco(stacks, tmp_path / "e")
    assert (tmp_path / "e" / "annotations.json").read_bytes() == before
    export_coco(stacks, tmp_path / "e", force=True)
    empty = AnnotatedStack("e", [AnnotatedFrame(10, 10, 0, [])], pixels=np.zeros((1, 10, 10)))
    with pytest.raises(SpermInputError, match="Nothing to export"):
        export_coco([empty], tmp_path / "n")
    assert not (tmp_path / "n" / "annotations.json").exists()


def test_malformed_file_loads_nothing(gt, tmp_path):
    ds = _load(gt)
    ds["annotations"][0]["category_id"] = 42
    ds["annotations"][1]["image_id"] = 999
    ds["annotations"][2]["segmentation"]["size"] = [10, 10]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(ds))
    with pytest.raises(CocoFormatError) as err:
        load_coco(bad)
    text = str(err.value)
    assert "\n" not in text
    assert "42" in text and "999" in text and "[10, 10]" in text


def test_bom_and_unreadable_files(gt, monkeypatch):
    from napari_sperm.io import jsonfile

    with_bom = gt.parent / "bom.json"  # next to the images it names
    with_bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(_load(gt)).encode())
    stacks = load_coco(with_bom).stacks  # as written by some Windows tools: not an error
    assert sum(len(f.cells) for s in stacks for f in s.frames) > 0

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(jsonfile, "open", denied, raising=False)
    with pytest.raises(SpermInputError, match="cannot be read .Permission denied.") as err:
        load_coco(with_bom)
    assert "\n" not in str(err.value) and str(with_bom) in str(err.value)


def test_labels_keep_shared_pixels_until_erased():
    a = np.zeros((20, 20), bool)
    a[10, 2:18] = True
    b = np.zeros((20, 20), bool)
    b[2:18, 10] = True
    masks = {1: CropMask.from_full(a), 2: CropMask.from_full(b)}
    labels, extras = labels_from_masks(masks, (20, 20))
    assert labels[10, 10] == 2 and list(extras) == ["1"]
    back = masks_from_labels(labels, extras)
    np.testing.assert_array_equal(back[1].to_full((20, 20)), a)
    np.testing.assert_array_equal(back[2].to_full((20, 20)), b)
    labels[10, 10] = 0  # erasing the crossing erases it for both tails
    back = masks_from_labels(labels, extras)
    assert not back[1].to_full((20, 20))[10, 10] and not back[2].to_full((20, 20))[10, 10]
    assert back[1].area == a.sum() - 1


def test_review_rows_measure_cells():
    tail = np.zeros((30, 40), bool)
    tail[10, 5:35] = True  # 30 px long
    diag = np.zeros((30, 40), bool)
    for k in range(10):
        diag[5 + k, 5 + k] = True
    assert skeleton_length(CropMask.from_full(tail)) == pytest.approx(29.0)
    assert skeleton_length(CropMask.from_full(diag)) == pytest.approx(9 * np.sqrt(2))
    head = np.zeros((30, 40), bool)
    head[2:6, 2:6] = True
    fr = AnnotatedFrame(
        30, 40, 0, [Cell(4, head=CropMask.from_full(head), tail=CropMask.from_full(tail))]
    )
    (row,) = cell_rows(fr)
    assert (row.sperm_id, row.head_area, row.paired, row.reviewed) == (4, 16, True, False)
    assert row.tail_length == pytest.approx(29.0)


def test_review_rows_put_the_least_confident_cells_first():
    def tail_of(length):
        m = np.zeros((60, 80), bool)
        m[30, 10 : 10 + length] = True
        return CropMask.from_full(m)

    head = np.zeros((60, 80), bool)
    head[2:6, 2:6] = True
    h = CropMask.from_full(head)
    cells = [
        Cell(1, head=h, tail=tail_of(41), score=0.9),  # a typical tail: keeps its score
        Cell(2, head=h, tail=tail_of(41), score=0.8),
        Cell(3, head=h, tail=tail_of(21), score=0.95),  # half as long: about half the score
        Cell(4, head=h, score=0.99),  # no tail: the floor (0.2)
        Cell(5, head=h, tail=tail_of(11)),  # drawn by hand: no score
        Cell(6, head=h, tail=tail_of(41), score=0.7),
    ]
    fr = AnnotatedFrame(60, 80, 0, cells)
    by_id = [r.sperm_id for r in cell_rows(fr)]
    assert by_id == [1, 2, 3, 4, 5, 6]
    rows = cell_rows(fr, "confidence")
    assert [r.sperm_id for r in rows] == [4, 3, 6, 2, 1, 5]
    got = {r.sperm_id: r.cell_score for r in rows}
    assert got[1] == pytest.approx(0.9) and got[5] is None
    assert got[3] == pytest.approx(0.95 * 20 / 40) and got[4] == pytest.approx(0.99 * 0.2)
    with pytest.raises(ValueError, match="order"):
        cell_rows(fr, "score")


def test_cli_export_and_errors(gt, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["export", str(gt), "-o", str(out), "-q"]) == 0
    assert "3 image(s)" in capsys.readouterr().out
    assert main(["export", str(gt), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--force" in err
    assert main(["export", str(gt), "-o", str(out), "-q", "--force"]) == 0
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [], "annotations": [{"id": 1}], "categories": []}')
    assert main(["export", str(broken), "-o", str(tmp_path / "z"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "image_id" in err
    assert not (tmp_path / "z").exists()


def test_outputs_of_segment_resolve_inputs_from_the_current_folder(gt, tmp_path, monkeypatch):
    """`napari-sperm segment` records inputs as given (relative to where it ran), not to the JSON."""
    monkeypatch.chdir(gt.parent)
    seg = tmp_path / "out" / "segmentation.json"
    seg.parent.mkdir()
    assert main(["segment", "images/phase-high_0001.tif", "-o", str(seg), "-q"]) == 0
    res = load_coco(seg)
    assert res.stacks[0].pixels.shape == (3, 480, 640)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CocoFormatError, match="not found .looked in .* and the current folder"):
        load_coco(seg)
