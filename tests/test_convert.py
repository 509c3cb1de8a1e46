"""`napari-sperm convert`: YOLO, labelme and COCO part datasets into our COCO schema."""

from __future__ import annotations

import base64
import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from napari_sperm.annotations.load import load_coco
from napari_sperm.annotations.validate import validate_coco
from napari_sperm.cli import main
from napari_sperm.coco import decode_mask, encode_mask
from napari_sperm.convert import (
    convert,
    convert_coco_parts,
    convert_labelme,
    convert_yolo,
    parse_label_map,
)
from napari_sperm.convert.cells import pair_by_containment
from napari_sperm.io import SpermInputError
from napari_sperm.synthetic import make_field

# --------------------------------------------------------------------------------------------
# Helpers


def _write_png(path, shape=(60, 80), value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, dtype=np.uint8)).save(path)
    return path


def _yolo_line(cls, box, width, height, extra=""):
    x, y, w, h = box
    return (
        f"{cls} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} "
        f"{h / height:.6f}{extra}"
    )


def _pycoco(ds) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = ds
        coco.createIndex()
    return coco


def _save(ds, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ds), encoding="utf-8")
    return path


def _by_cell(ds, image_id=None):
    """``{sperm_id: {category name: annotation}}`` (one image)."""
    names = {c["id"]: c["name"] for c in ds["categories"]}
    cells: dict[int, dict[str, dict]] = {}
    for a in ds["annotations"]:
        if image_id is not None and a["image_id"] != image_id:
            continue
        cell = cells.setdefault(a["attributes"]["sperm_id"], {})
        assert names[a["category_id"]] not in cell  # one annotation per category and cell
        cell[names[a["category_id"]]] = a
    return cells


def _check_outputs(ds, out_json):
    """Our validator, pycocotools and our loader all accept the dataset written at ``out_json``."""
    _save(ds, out_json)
    validate_coco(ds, source="converted", base_dir=out_json.parent, check_files=True)
    coco = _pycoco(ds)
    assert len(coco.getAnnIds()) == len(ds["annotations"])
    assert sorted(coco.getCatIds()) == [1, 2, 3]
    for ann in ds["annotations"]:
        assert coco.annToMask(ann).sum() > 0
    return load_coco(out_json)


def _close(a, b, tol=1.0):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), atol=tol)


@pytest.fixture(scope="module")
def field():
    return make_field("phase-high", seed=3, n_sperm=6, crossings=0)


# --------------------------------------------------------------------------------------------
# YOLO


def _write_yolo_field(fld, image_path, label_path, head_cls=0, sperm_cls=1):
    h, w = fld.image.shape
    image_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(fld.image).save(image_path)
    lines = []
    for s in fld.sperm:
        for cls, box in ((sperm_cls, s.sperm_box()), (head_cls, s.head_box())):
            if box is not None:
                lines.append(_yolo_line(cls, box, w, h))
    label_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.write_text("\n".join(lines) + "\n")


def test_yolo_ultralytics_layout_recovers_the_known_boxes(field, tmp_path):
    root = tmp_path / "ds"
    _write_yolo_field(field, root / "images/train/a.png", root / "labels/train/a.txt")
    _write_png(root / "images/val/unlabelled.png")  # no label file: kept, counted
    (root / "data.yaml").write_text("path: .\nnames:\n  0: head\n  1: whole sperm\n")
    out = tmp_path / "out" / "converted.json"

    ds, summary = convert_yolo([root / "images"], label_map="whole sperm=sperm", output=out)

    assert summary.images == 2 and summary.images_without_labels == 1
    truth = [s for s in field.sperm if s.head_box() is not None]
    assert summary.heads == len(truth) and summary.sperm_boxes == len(truth)
    assert summary.cells == len(truth) and summary.tails == 0
    assert any("data.yaml" in n for n in summary.notes)
    assert [im["file_name"] for im in ds["images"]] == [
        "../ds/images/train/a.png",
        "../ds/images/val/unlabelled.png",
    ]
    assert (ds["images"][0]["width"], ds["images"][0]["height"]) == (640, 480)
    cells = _by_cell(ds, image_id=1)
    for s in truth:  # every known cell comes back, head and whole-cell box sharing a sperm_id
        match = [
            c
            for c in cells.values()
            if _close(c["head"]["bbox"], s.head_box()) and _close(c["sperm"]["bbox"], s.sperm_box())
        ]
        assert len(match) == 1, s.sperm_id
        assert match[0]["head"]["attributes"]["box_only"] is True
        assert match[0]["sperm"]["attributes"]["source_labels"] == ["whole sperm"]
    loaded = _check_outputs(ds, out)
    frames = [fr for st in loaded.stacks for fr in st.frames]
    assert sum(len(fr.sorted_cells()) for fr in frames) == len(truth)


def test_yolo_flat_layout_classes_confidence_and_seg_polygon(tmp_path):
    img = _write_png(tmp_path / "flat" / "x.png", shape=(100, 200))
    (tmp_path / "flat" / "x.txt").write_text(
        "# a comment line\n"
        + _yolo_line(1, (20, 10, 80, 60), 200, 100)
        + "\n\n"
        + _yolo_line(0, (30, 20, 20, 10), 200, 100, extra=" 0.93")  # box + confidence
        + "\n"
        # YOLO-seg polygon (its box: x 120..160, y 50..90) with a trailing confidence
        + "0 0.6 0.5 0.8 0.6 0.7 0.9 0.65 0.7 0.88\n"
    )
    out = tmp_path / "flat" / "coco.json"
    ds, summary = convert_yolo([img], classes="head,sperm", output=out)
    assert ds["images"][0]["file_name"] == "x.png"
    cells = _by_cell(ds)
    assert summary.cells == 2 and summary.heads == 2 and summary.sperm_boxes == 1
    paired = [c for c in cells.values() if "sperm" in c]
    assert len(paired) == 1 and _close(paired[0]["head"]["bbox"], (30, 20, 20, 10), 0.01)
    alone = [c for c in cells.values() if "sperm" not in c][0]["head"]
    assert _close(alone["bbox"], (120, 50, 40, 40), 0.01)
    assert alone["segmentation"] == [[120.0, 50.0, 160.0, 50.0, 160.0, 90.0, 120.0, 90.0]]
    _check_outputs(ds, out)


def test_yolo_names_file_and_label_map_of_indices(tmp_path):
    img = _write_png(tmp_path / "imgs" / "a.jpg")
    (tmp_path / "imgs" / "a.txt").write_text(_yolo_line(2, (10, 10, 20, 20), 80, 60) + "\n")
    names = tmp_path / "meta" / "obj.names"
    names.parent.mkdir()
    names.write_text("debris\nwhole\nNucleus\n")
    ds, _ = convert_yolo([img], names=names, label_map="nucleus=head")
    assert [a["category_id"] for a in ds["annotations"]] == [2]
    assert ds["images"][0]["file_name"] == str(img.resolve().as_posix())  # no output: absolute

    # without any names, classes are called by their index and a label map can name them
    ds, summary = convert_yolo([tmp_path / "imgs"], label_map="2=tail")
    assert [a["category_id"] for a in ds["annotations"]] == [3]
    assert any("index" in n for n in summary.notes)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.2", r"a\.txt line 3: expected 'class cx cy w h'"),
        ("0 0.5 zero 0.2 0.2", r"a\.txt line 3: expected 'class cx cy w h'"),
        ("5 0.5 0.5 0.2 0.2", r"a\.txt line 3: class 5 is out of range: --classes lists 2 classes"),
        ("-1 0.5 0.5 0.2 0.2", r"a\.txt line 3: class '-1' is not a class index"),
        ("1 40 30 10 10", r"a\.txt line 3: centre x 40 is outside 0\.\.1"),
        ("1 0.99 0.5 0.2 0.2", r"a\.txt line 3: right edge 1\.09 is outside 0\.\.1"),
        ("1 0.5 0.5 0 0.2", r"a\.txt line 3: the box has zero or negative width"),
    ],
)
def test_yolo_bad_lines_name_file_and_line(tmp_path, line, message):
    img = _write_png(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text(f"0 0.5 0.5 0.2 0.2\n\n{line}\n")
    with pytest.raises(SpermInputError, match=message) as info:
        convert_yolo([img], classes="head,sperm")
    assert "\n" not in str(info.value)


def test_yolo_small_overshoot_is_clipped(tmp_path):
    img = _write_png(tmp_path / "a.png", shape=(100, 100))
    (tmp_path / "a.txt").write_text("0 0.1 0.5 0.205 0.2\n")  # left edge at -0.0025
    ds, _ = convert_yolo([img], classes="head")
    x, y, w, h = ds["annotations"][0]["bbox"]
    assert x == 0 and _close((y, w, h), (40, 20.25, 20), 0.01)
    validate_coco(ds)


def test_yolo_no_labels_at_all_is_an_error(tmp_path):
    _write_png(tmp_path / "imgs" / "a.png")
    with pytest.raises(SpermInputError, match=r"None of the 1 image has a YOLO label file"):
        convert_yolo([tmp_path / "imgs"], classes="head")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpermInputError, match=r"No images \(.tif, .png, .jpg\) found in"):
        convert_yolo([tmp_path / "empty"], classes="head")
    with pytest.raises(SpermInputError, match=r"'.*a\.txt' is not an image"):
        convert_yolo([_save_text(tmp_path / "a.txt", "0 0.5 0.5 0.1 0.1")], classes="head")


def test_yolo_unknown_classes_stop_or_are_dropped(tmp_path):
    img = _write_png(tmp_path / "a.png")
    lines = [_yolo_line(c, (10, 10, 10, 10), 80, 60) for c in (0, 1, 1, 2, 2, 2)]
    (tmp_path / "a.txt").write_text("\n".join(lines))
    with pytest.raises(SpermInputError) as info:
        convert_yolo([img], classes="head,debris,Bubble")
    msg = str(info.value)
    assert "'Bubble' (3), 'debris' (2)" in msg and "--label-map" in msg
    assert "--ignore-unknown" in msg and "\n" not in msg

    ds, summary = convert_yolo([img], classes="head,debris,Bubble", ignore_unknown=True)
    assert summary.dropped == {"Bubble": 3, "debris": 2}
    assert summary.heads == 1 and len(ds["annotations"]) == 1
    assert "Dropped unknown labels: 'Bubble' (3), 'debris' (2)" in summary.text()


def test_pairing_takes_the_smallest_box_and_one_head_per_box():
    big, small = (0, 0, 100, 100), (10, 10, 30, 30)
    heads = [(12, 12, 10, 10), (30, 30, 20, 20), (200, 200, 5, 5)]
    # head 0 lies fully inside the small box, head 1 only partly: head 0 gets it, head 1 the big one
    assert pair_by_containment([big, small], heads) == {0: 1, 1: 0}
    # one box, two heads inside: the one lying more fully inside wins, the other stays alone
    assert pair_by_containment([small], heads[:2]) == {0: 0}


# --------------------------------------------------------------------------------------------
# labelme


def _labelme(path, shapes, image_path="img.png", size=(60, 80), **extra):
    doc = {
        "version": "5.2.1",
        "flags": {},
        "shapes": [
            {
                "label": label,
                "points": [list(map(float, p)) for p in points],
                "group_id": group,
                "shape_type": kind,
                "flags": {},
            }
            for label, kind, points, group in shapes
        ],
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": size[0],
        "imageWidth": size[1],
    }
    doc.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _rect(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


LABELME_MAP = "Acrosome,Nucleus,Vacuole=head Midpiece,Tail=tail"


def test_labelme_grouped_parts_become_one_head_one_tail_and_a_box(tmp_path):
    _write_png(tmp_path / "data" / "img.png", shape=(60, 80))
    src = _labelme(
        tmp_path / "data" / "a.json",
        [
            ("Acrosome", "polygon", _rect(10, 10, 20, 16), 1),
            ("Nucleus", "polygon", _rect(10, 16, 20, 24), 1),
            ("Midpiece", "polygon", _rect(20, 15, 30, 19), 1),
            ("Tail", "linestrip", [(30, 17), (50, 17), (60, 30)], 1),
            # group 2: a head drawn as a rectangle only (kept as a box)
            ("nucleus", "rectangle", [(70, 40), (62, 50)], 2),
        ],
    )
    out = tmp_path / "out.json"
    ds, summary = convert_labelme([src], label_map=LABELME_MAP, output=out)
    assert ds["images"][0]["file_name"] == "data/img.png"
    assert (summary.cells, summary.heads, summary.tails, summary.sperm_boxes) == (2, 2, 1, 2)
    cells = _by_cell(ds)
    one, two = cells[1], cells[2]
    head = decode_mask(one["head"]["segmentation"])
    expected = np.zeros((60, 80), bool)
    expected[10:24, 10:20] = True  # acrosome and nucleus: one head, one mask
    assert np.array_equal(head, expected)
    assert one["head"]["bbox"] == [10.0, 10.0, 10.0, 14.0] and one["head"]["area"] == 140.0
    assert one["head"]["attributes"]["source_labels"] == ["Acrosome", "Nucleus"]
    tail = decode_mask(one["tail"]["segmentation"])
    assert tail[15:19, 20:30].all() and tail[17, 30:50].all()  # midpiece plus the tail line
    assert 2 <= tail[10:25, 40].sum() <= 4  # about 3 px wide
    # the line's end (60, 30) covers the pixel centres within 1.5 px: up to column 60, row 30
    assert one["sperm"]["bbox"] == [10.0, 10.0, 51.0, 21.0]
    assert one["sperm"]["attributes"]["box_only"] is True
    assert two["head"]["bbox"] == [62.0, 40.0, 8.0, 10.0]
    assert two["head"]["attributes"]["box_only"] is True and "tail" not in two
    _check_outputs(ds, out)


def test_labelme_ungrouped_shapes_pair_by_geometry(tmp_path):
    _write_png(tmp_path / "img.png", shape=(100, 120))
    src = _labelme(
        tmp_path / "a.json",
        [
            ("Nucleus", "polygon", _rect(10, 10, 20, 20), None),
            ("Acrosome", "polygon", _rect(20, 10, 24, 20), None),  # touches: the same head
            ("Tail", "line", [(80, 80), (60, 60)], None),  # far from every head: its own cell
            ("Midpiece", "linestrip", [(26, 15), (40, 15)], None),  # starts 2 px from the head
            ("Tail", "linestrip", [(43, 16), (55, 30)], None),  # chains on through the midpiece
            ("Nucleus", "circle", [(100, 20), (104, 20)], None),  # a second head, alone
            ("sperm", "rectangle", [(5, 5), (60, 35)], None),  # whole cell around head 1
        ],
        size=(100, 120),
    )
    ds, summary = convert_labelme([src], label_map=LABELME_MAP, output=tmp_path / "o.json")
    cells = list(_by_cell(ds).values())
    assert summary.cells == 3 and summary.heads == 2 and summary.tails == 2
    first = next(c for c in cells if "head" in c and c["head"]["bbox"][0] == 10)
    assert first["head"]["bbox"] == [10.0, 10.0, 14.0, 10.0]
    assert first["tail"]["attributes"]["source_labels"] == ["Midpiece", "Tail"]
    assert first["sperm"]["bbox"] == pytest.approx([5.0, 5.0, 55.0, 30.0])
    second = next(c for c in cells if "head" in c and c["head"]["bbox"][0] > 90)
    assert "tail" not in second and second["sperm"]["bbox"] == second["head"]["bbox"]
    lone = next(c for c in cells if "head" not in c)
    assert decode_mask(lone["tail"]["segmentation"])[70, 70]
    _check_outputs(ds, tmp_path / "o.json")


def test_labelme_join_distance_decides(tmp_path):
    _write_png(tmp_path / "img.png", shape=(60, 80))
    shapes = [
        ("head", "polygon", _rect(10, 10, 20, 20), None),
        ("tail", "line", [(30, 15), (60, 15)], None),  # its end lies 10 px from the head
    ]
    src = _labelme(tmp_path / "a.json", shapes)
    _, near = convert_labelme([src], join_distance=12)
    _, far = convert_labelme([src])
    assert near.cells == 1 and far.cells == 2


def _b64_png(mask):
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_labelme_synthetic_masks_and_centrelines_round_trip(field, tmp_path):
    """Heads as labelme mask shapes, tails as ungrouped line strips along the known centrelines."""
    Image.fromarray(field.image).save(tmp_path / "f.png")
    h, w = field.image.shape
    doc_shapes, lines = [], {}
    for s in field.sperm:
        if not s.head.area:
            continue
        (r0, c0), crop = s.head.offset, s.head.mask
        corner = [c0 + crop.shape[1] - 1, r0 + crop.shape[0] - 1]
        doc_shapes.append(
            {
                "label": "head",
                "points": [[c0, r0], corner],
                "shape_type": "mask",
                "mask": _b64_png(crop),
            }
        )
        pts = s.centreline[:, ::-1] + 0.5  # (row, col) -> (x, y) of pixel centres
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
        stop = int(np.argmin(inside)) if not inside.all() else len(pts)  # first point outside
        if s.tail.area and stop >= 20:
            lines[s.sperm_id] = pts[:stop:4].tolist() + [pts[stop - 1].tolist()]
            doc_shapes.append(
                {
                    "label": "tail",
                    "points": lines[s.sperm_id],
                    "group_id": None,
                    "shape_type": "linestrip",
                }
            )
    doc = {"shapes": doc_shapes, "imagePath": "f.png", "imageHeight": h, "imageWidth": w}
    (tmp_path / "f.json").write_text(json.dumps(doc))
    assert len(lines) >= 3  # the field has tails to pair

    out = tmp_path / "f.coco.json"
    ds, summary = convert_labelme([tmp_path], output=out)
    cells = _by_cell(ds)
    for s in field.sperm:
        if not s.head.area:
            continue
        truth = s.head.to_full((h, w))
        same = [
            c
            for c in cells.values()
            if np.array_equal(decode_mask(c["head"]["segmentation"]), truth)
        ]
        assert len(same) == 1  # head masks come back exactly
        if s.sperm_id in lines:
            tail = same[0].get("tail")
            assert tail is not None, s.sperm_id  # the ungrouped line strip joined its own head
            overlap = (decode_mask(tail["segmentation"]) & s.tail.to_full((h, w))).sum()
            assert overlap > 0.5 * s.tail.area
        else:
            assert "tail" not in same[0]
    assert summary.heads == sum(1 for s in field.sperm if s.head.area)
    _check_outputs(ds, out)


def test_labelme_embedded_image_is_written_next_to_the_output(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 50), 90, np.uint8)).save(buf, format="PNG")
    src = _labelme(
        tmp_path / "in" / "emb.json",
        [("head", "polygon", _rect(5, 5, 15, 12), None)],
        image_path=None,
        size=(40, 50),
        imageData=base64.b64encode(buf.getvalue()).decode(),
    )
    with pytest.raises(SpermInputError, match="only embedded imageData"):
        convert_labelme([src])
    out = tmp_path / "out" / "set.json"
    ds, summary = convert_labelme([src], output=out)
    assert ds["images"][0]["file_name"] == "set_images/emb.png"
    assert (tmp_path / "out" / "set_images" / "emb.png").is_file()
    assert any("embedded image" in n for n in summary.notes)
    _check_outputs(ds, out)


def test_labelme_bad_inputs(tmp_path):
    _write_png(tmp_path / "img.png")
    broken = tmp_path / "broken.json"
    broken.write_text('{"shapes": [')
    with pytest.raises(SpermInputError, match=r"broken\.json' is not valid JSON \(line 1"):
        convert_labelme([broken])

    missing = _labelme(tmp_path / "m.json", [("head", "point", [(3, 3)], None)], "gone.png")
    with pytest.raises(SpermInputError, match=r"its image 'gone\.png' does not exist"):
        convert_labelme([missing])

    wrong_size = _labelme(tmp_path / "s.json", [("head", "point", [(3, 3)], None)], size=(61, 80))
    with pytest.raises(SpermInputError, match=r"says the image is 80 x 61 px but .* is 80 x 60"):
        convert_labelme([wrong_size])

    bad_points = _labelme(tmp_path / "p.json", [("head", "polygon", [(1, 2)], None)])
    doc = json.loads(bad_points.read_text())
    doc["shapes"][0]["points"] = [[1, "a"]]
    bad_points.write_text(json.dumps(doc))
    with pytest.raises(SpermInputError, match=r"shape 1 \('head'\): points must be a list"):
        convert_labelme([bad_points])

    odd = _labelme(tmp_path / "o.json", [("head", "ellipse", [(1, 2), (3, 4)], None)])
    with pytest.raises(SpermInputError, match=r"shape_type 'ellipse' is not supported"):
        convert_labelme([odd])

    not_labelme = tmp_path / "coco.json"
    not_labelme.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(SpermInputError, match=r"is not a labelme file"):
        convert_labelme([not_labelme])

    empty = _labelme(tmp_path / "e" / "e.json", [], "../img.png")
    with pytest.raises(SpermInputError, match=r"has any shapes"):
        convert_labelme([empty])


def test_labelme_unknown_labels(tmp_path):
    _write_png(tmp_path / "img.png")
    src = _labelme(
        tmp_path / "a.json",
        [
            ("Nucleus", "polygon", _rect(10, 10, 20, 20), None),
            ("Vacuole", "point", [(12, 12)], None),
            ("Bubble", "point", [(40, 40)], None),
            ("bubble", "point", [(50, 40)], None),
        ],
    )
    with pytest.raises(SpermInputError) as info:
        convert_labelme([src], label_map="nucleus=head")
    assert "'Bubble' (2), 'Vacuole' (1)" in str(info.value)
    assert "(mapped: Nucleus)" in str(info.value)
    ds, summary = convert_labelme([src], label_map="nucleus=head", ignore_unknown=True)
    assert summary.dropped == {"Bubble": 2, "Vacuole": 1} and summary.heads == 1


# --------------------------------------------------------------------------------------------
# COCO parts


def _parts_dataset(tmp_path, group=True, key="sperm_id", where="attributes"):
    _write_png(tmp_path / "src" / "imgs" / "p.png", shape=(60, 80))
    _write_png(tmp_path / "src" / "imgs" / "q.png", shape=(60, 80))
    nucleus = np.zeros((60, 80), bool)
    nucleus[16:24, 10:20] = True
    tail_mask = np.zeros((60, 80), bool)
    tail_mask[19:21, 30:60] = True
    rle = encode_mask(nucleus)
    uncompressed = {"size": [60, 80], "counts": _uncompressed_counts(tail_mask)}

    def ann(i, cat, bbox, seg, cell):
        a = {"id": i, "image_id": 1, "category_id": cat, "bbox": bbox, "area": 1.0, "iscrowd": 0}
        if seg is not None:
            a["segmentation"] = seg
        if group and cell is not None:
            if where == "attributes":
                a["attributes"] = {key: cell}
            else:
                a[key] = cell
        return a

    ds = {
        "images": [
            {"id": 1, "file_name": "imgs/p.png", "width": 80, "height": 60},
            {"id": 2, "file_name": "imgs/q.png", "width": 80, "height": 60},
        ],
        "categories": [
            {"id": 1, "name": "Acrosome"},
            {"id": 2, "name": "Nucleus"},
            {"id": 3, "name": "Midpiece"},
            {"id": 4, "name": "Tail"},
            {"id": 5, "name": "Sperm cell"},
        ],
        "annotations": [
            ann(1, 1, [10, 10, 10, 6], [[10, 10, 20, 10, 20, 16, 10, 16]], "c1"),
            ann(2, 2, [10, 16, 10, 8], rle, "c1"),
            ann(3, 3, [20, 18, 10, 4], [[20, 18, 30, 18, 30, 22, 20, 22]], "c1"),
            ann(4, 4, [30, 19, 30, 2], uncompressed, "c1"),
            ann(5, 2, [65, 40, 10, 10], None, "c2"),  # box only: kept as a box
            ann(6, 5, [60, 35, 18, 18], None, "c2"),  # whole-cell category -> sperm
        ],
    }
    return _save(ds, tmp_path / "src" / "parts.json"), nucleus


def _uncompressed_counts(mask):
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return counts


PARTS_MAP = "Acrosome,Nucleus=head Midpiece,Tail=tail Sperm cell=sperm"


def test_coco_parts_grouped_by_attribute(tmp_path):
    src, _ = _parts_dataset(tmp_path)
    out = tmp_path / "elsewhere" / "ours.json"
    ds, summary = convert_coco_parts(
        [src], label_map=PARTS_MAP.replace(" Sperm", ", Sperm"), output=out
    )
    assert [im["file_name"] for im in ds["images"]] == ["../src/imgs/p.png", "../src/imgs/q.png"]
    assert summary.images_without_labels == 1
    assert (summary.cells, summary.heads, summary.tails, summary.sperm_boxes) == (2, 2, 1, 2)
    assert any("attributes.sperm_id" in n for n in summary.notes)
    cells = _by_cell(ds)
    first, second = cells[1], cells[2]
    head = decode_mask(first["head"]["segmentation"])
    assert head.sum() == 140 and head[10:24, 10:20].all()  # polygon + RLE: one head
    tail = decode_mask(first["tail"]["segmentation"])
    assert tail[18:22, 20:30].all() and tail[19:21, 30:60].all() and tail.sum() == 100
    assert first["sperm"]["bbox"] == [10.0, 10.0, 50.0, 14.0]
    assert second["head"]["attributes"]["box_only"] is True
    assert second["sperm"]["bbox"] == [60.0, 35.0, 18.0, 18.0]
    assert second["sperm"]["attributes"]["source_labels"] == ["Sperm cell"]
    _check_outputs(ds, out)


def test_coco_parts_group_keys(tmp_path):
    src, _ = _parts_dataset(tmp_path, key="group_id", where="top")
    ds, summary = convert_coco_parts([src], label_map=PARTS_MAP, output=src)
    assert summary.cells == 2 and any("'group_id'" in n for n in summary.notes)
    assert ds["images"][0]["file_name"] == "imgs/p.png"

    src, _ = _parts_dataset(tmp_path, key="cell")
    ds, summary = convert_coco_parts([src], label_map=PARTS_MAP, group_key="attributes.cell")
    assert summary.cells == 2
    with pytest.raises(SpermInputError, match=r"--group-key 'attributes\.nope': no annotation"):
        convert_coco_parts([src], label_map=PARTS_MAP, group_key="attributes.nope")


def test_coco_parts_without_groups_pair_by_geometry(tmp_path):
    src, nucleus = _parts_dataset(tmp_path, group=False)
    ds, summary = convert_coco_parts([src], label_map=PARTS_MAP)
    assert any("geometry" in n for n in summary.notes)
    # acrosome and nucleus touch (one head); the midpiece starts at the head and the tail
    # continues it; the lone box head pairs with the whole-cell box around it
    assert (summary.cells, summary.heads, summary.tails, summary.sperm_boxes) == (2, 2, 1, 2)
    cell = next(c for c in _by_cell(ds).values() if "tail" in c)
    assert decode_mask(cell["head"]["segmentation"]).sum() == 140


def test_coco_parts_bad_inputs(tmp_path):
    src, _ = _parts_dataset(tmp_path)
    with pytest.raises(SpermInputError) as info:
        convert_coco_parts([src], label_map="Acrosome,Nucleus=head")
    # Tail is one of our own names; Midpiece and the whole-cell category are not mapped
    assert "'Midpiece' (1), 'Sperm cell' (1) (mapped: Acrosome, Nucleus, Tail)" in str(info.value)

    ds = json.loads(src.read_text())
    ds["annotations"][0]["image_id"] = 9
    ds["images"][1]["file_name"] = "imgs/missing.png"
    bad = _save(ds, tmp_path / "src" / "bad.json")
    with pytest.raises(SpermInputError) as info:
        convert_coco_parts([bad], label_map=PARTS_MAP)
    msg = str(info.value)
    assert msg.startswith(f"Cannot convert '{bad}': 2 problems")
    assert "image_id 9 is not an image" in msg and "missing.png" in msg and "\n" not in msg

    with pytest.raises(SpermInputError, match="not valid JSON"):
        convert_coco_parts([_save_text(tmp_path / "x.json", "{")])


def _save_text(path, text):
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# Label maps


def test_label_map_forms():
    m = parse_label_map("Acrosome,Nucleus,Vacuole=head Midpiece,Tail=tail")
    assert m.target(" NUCLEUS ") == "head" and m.target("tail") == "tail"
    assert m.target("Sperm") == "sperm" and m.target("debris") is None
    m = parse_label_map("NAME=head,NAME2=sperm")
    assert m.target("name") == "head" and m.target("Name2") == "sperm"
    assert parse_label_map(["a=head", "b=tail"]).target("B") == "tail"
    assert parse_label_map({"Big Cell": "SPERM"}).target("big cell") == "sperm"
    with pytest.raises(SpermInputError, match=r"--label-map: .*'nucleus'"):
        parse_label_map("x=nucleus")
    with pytest.raises(SpermInputError, match="has no target"):
        parse_label_map("a=head,b")
    with pytest.raises(SpermInputError, match="Unknown source format"):
        convert("pascal-voc", [])


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_end_to_end_and_force(field, tmp_path, capsys):
    root = tmp_path / "ds"
    _write_yolo_field(field, root / "images" / "a.png", root / "labels" / "a.txt", 1, 0)
    out = tmp_path / "conv" / "a.json"
    args = [
        "convert",
        "--from",
        "yolo",
        str(root / "images"),
        "-o",
        str(out),
        "--classes",
        "sperm,head",
    ]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "Converted 1 image from yolo" in printed.out and str(out) in printed.out
    ds = json.loads(out.read_text())
    assert ds["images"][0]["file_name"] == "../ds/images/a.png"
    assert len(load_coco(out).stacks) == 1

    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "--force" in err and len(err.splitlines()) == 1
    assert main([*args, "--force"]) == 0


def test_cli_labelme_and_coco_parts(tmp_path, capsys):
    _write_png(tmp_path / "img.png")
    src = _labelme(tmp_path / "a.json", [("Tail", "line", [(5, 5), (30, 5)], None)])
    out = tmp_path / "l.json"
    assert (
        main(["convert", "--from", "labelme", str(src), "-o", str(out), "--line-width", "5"]) == 0
    )
    ds = json.loads(out.read_text())
    assert decode_mask(ds["annotations"][1]["segmentation"])[3:8, 10].all()
    capsys.readouterr()

    parts, _ = _parts_dataset(tmp_path / "p")
    out = tmp_path / "p.json"
    argv = ["convert", "--from", "coco-parts", str(parts), "-o", str(out), "--label-map", PARTS_MAP]
    assert main([*argv, "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main([*argv, "--force", "--group-key", "attributes.sperm_id"]) == 0
    assert "note: parts grouped into cells by 'attributes.sperm_id'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--group-key", "x"], "--group-key does not apply to --from yolo"),
        (["--classes", "a"], "line 1: expected 'class cx cy w h'"),
        (["--classes", "a", "--label-map", "a=nucleus"], "unknown target category 'nucleus'"),
        (["--classes", "x,y"], "Unknown labels: 'x' (1)"),
    ],
)
def test_cli_bad_input_is_one_line_and_status_2(tmp_path, capsys, extra, message):
    img = _write_png(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("0 0.5 0.5\n")
    if "x,y" in extra:
        (tmp_path / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    out = tmp_path / "o.json"
    assert main(["convert", "--from", "yolo", str(img), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("napari-sperm convert: error:")
    assert message in err
    assert not out.exists()
