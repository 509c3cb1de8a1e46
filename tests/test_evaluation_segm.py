"""`napari-sperm evaluate` on masks: COCO segm AP, matched-instance IoU, per-image table, maps."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy import ndimage as ndi

from napari_sperm.category_map import map_categories, parse_category_map
from napari_sperm.cli import main
from napari_sperm.coco import mask_annotation, new_dataset
from napari_sperm.evaluation import evaluate_detections, format_report
from napari_sperm.evaluation_segm import (
    PER_IMAGE_COLUMNS,
    evaluate_segmentation,
    format_segm_report,
    match_masks,
    per_image_table,
)
from napari_sperm.io import SpermInputError
from napari_sperm.synthetic import make_field
from napari_sperm.synthetic.dataset import field_annotations

N_SPERM = 18


@pytest.fixture(scope="module")
def fields():
    return [make_field("phase-low", seed=s, n_sperm=N_SPERM) for s in (11, 12)]


@pytest.fixture(scope="module")
def gt(fields):
    ds = new_dataset("test ground truth")
    ann_id = 1
    for i, fld in enumerate(fields, start=1):
        h, w = fld.shape
        ds["images"].append({"id": i, "file_name": f"images/f{i}.png", "width": w, "height": h})
        anns = field_annotations(fld, i, ann_id)
        ann_id += len(anns)
        ds["annotations"] += anns
    return ds


def _full(cm, shape):
    return cm.to_full(shape) if cm.area else None


def _predictions(fields, head=None, tail=None, sperm=True, extra=None):
    """Predictions from the true masks; ``head``/``tail`` map (image index, cell index, mask) to a
    new mask or ``None`` (dropped); ``extra`` maps an image index to a list of (category, mask,
    score) false masks."""
    ds = new_dataset("test predictions")
    ann_id = 1
    for i, fld in enumerate(fields):
        h, w = fld.shape
        ds["images"].append({"id": i + 1, "file_name": f"f{i + 1}.png", "width": w, "height": h})
        items = []
        for k, t in enumerate(fld.sperm):
            parts = [("sperm", _full(t.sperm_mask(), fld.shape), None)] if sperm else []
            parts += [
                ("head", _full(t.head, fld.shape), head),
                ("tail", _full(t.tail, fld.shape), tail),
            ]
            for cat, m, fn in parts:
                if m is not None and fn is not None:
                    m = fn(i, k, m)
                if m is not None and m.any():
                    items.append((cat, m, 0.9 - 0.001 * k))
        items += list((extra or {}).get(i, []))
        for cat, m, score in items:
            ds["annotations"].append(mask_annotation(m, ann_id, i + 1, cat, score=score))
            ann_id += 1
    return ds


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def _empty_spots(fields, i, n, size=6):
    """``n`` square masks far from every cell of image ``i``."""
    fld = fields[i]
    occupied = np.zeros(fld.shape, bool)
    for t in fld.sperm:
        for cm in (t.head, t.tail):
            if cm.area:
                cm.paste(occupied)
    free = ~ndi.binary_dilation(occupied, iterations=size + 2)
    out = []
    h, w = fld.shape
    for r in range(0, h - size, 3 * size):
        for c in range(0, w - size, 3 * size):
            if free[r : r + size, c : c + size].all():
                m = np.zeros(fld.shape, bool)
                m[r : r + size, c : c + size] = True
                out.append(m)
                if len(out) == n:
                    return out
    raise AssertionError("not enough free space for false masks")


def test_perfect_masks_score_one(fields, gt):
    res = evaluate_segmentation(gt, _predictions(fields), max_dets=300)
    assert res["images"] == 2 and res["skipped"] == {}
    n_heads = sum(1 for a in gt["annotations"] if a["category_id"] == 2)
    for name in ("sperm", "head", "tail"):
        s = res["categories"][name]
        assert s["AP50"] == pytest.approx(1.0) and s["AP"] == pytest.approx(1.0)
        assert s["AR@300"] == pytest.approx(1.0)
        assert s["iou_median"] == 1.0 and s["iou_mean"] == pytest.approx(1.0)
        assert s["missed"] == 0 and s["false"] == 0 and s["matched"] == s["n_gt"]
    assert res["categories"]["head"]["n_gt"] == n_heads


def test_eroded_heads_have_known_iou(fields, gt):
    def erode(i, k, m):
        return ndi.binary_erosion(m)

    expected = []
    for fld in fields:
        for t in fld.sperm:
            m = _full(t.head, fld.shape)
            if m is not None:
                e = ndi.binary_erosion(m)
                if e.any():
                    expected.append(_iou(m, e))
    res = evaluate_segmentation(gt, _predictions(fields, head=erode), max_dets=300)
    head = res["categories"]["head"]
    assert head["matched"] == sum(v >= 0.1 for v in expected)
    assert head["iou_median"] == pytest.approx(np.median(expected), abs=1e-9)
    assert head["iou_mean"] == pytest.approx(np.mean(expected), abs=1e-9)
    assert 0.2 < head["iou_median"] < 0.9  # erosion of a ~70 px head removes a lot
    assert head["AP"] < 1.0
    assert res["categories"]["tail"]["iou_median"] == 1.0  # tails untouched


def test_dropped_tails_are_missed(fields, gt):
    def drop_odd(i, k, m):
        return None if k % 2 else m

    res = evaluate_segmentation(gt, _predictions(fields, tail=drop_odd), max_dets=300)
    tail = res["categories"]["tail"]
    n_tails = sum(1 for a in gt["annotations"] if a["category_id"] == 3)
    kept = sum(1 for fld in fields for k, t in enumerate(fld.sperm) if t.tail.area and k % 2 == 0)
    assert (tail["matched"], tail["missed"], tail["false"]) == (kept, n_tails - kept, 0)
    assert tail["iou_median"] == 1.0
    assert tail["AR@300"] == pytest.approx(kept / n_tails)
    assert tail["AP50"] == pytest.approx(kept / n_tails, abs=0.02)
    rows = per_image_table(gt, _predictions(fields, tail=drop_odd), segm=res)
    assert sum(r["masks_missed_tail"] for r in rows) == n_tails - kept
    assert all(r["masks_missed_head"] == 0 for r in rows)


@pytest.mark.parametrize("false_score", [0.1, 0.99])
def test_false_masks(fields, gt, false_score):
    extra = {0: [("head", m, false_score) for m in _empty_spots(fields, 0, 4)]}
    res = evaluate_segmentation(gt, _predictions(fields, extra=extra), max_dets=300)
    head = res["categories"]["head"]
    assert head["false"] == 4 and head["missed"] == 0 and head["iou_median"] == 1.0
    if false_score < 0.9:  # ranked below every true head: AP does not notice them
        assert head["AP50"] == pytest.approx(1.0)
    else:
        assert head["AP50"] < 1.0
    # ... but a score threshold on the matching does
    cut = evaluate_segmentation(
        gt, _predictions(fields, extra=extra), max_dets=300, mask_score_threshold=0.5
    )
    assert cut["categories"]["head"]["false"] == (0 if false_score < 0.5 else 4)
    rows = {
        r["image_id"]: r for r in per_image_table(gt, _predictions(fields, extra=extra), segm=res)
    }
    assert rows[1]["masks_false_head"] == 4 and rows[2]["masks_false_head"] == 0


def test_shifted_masks_match_dense_iou(fields, gt):
    def shift(i, k, m):
        return ndi.shift(m, (0, 2), order=0, mode="constant", cval=False)

    expected = []
    for fld in fields:
        for t in fld.sperm:
            m = _full(t.head, fld.shape)
            if m is not None:
                s = shift(0, 0, m)
                if s.any():
                    expected.append(_iou(m, s))
    res = evaluate_segmentation(gt, _predictions(fields, head=shift), max_dets=300)
    head = res["categories"]["head"]
    assert head["iou_median"] == pytest.approx(np.median(expected), abs=1e-9)
    assert head["matched"] == sum(v >= 0.1 for v in expected)
    assert head["AP"] < head["AP50"] < 1.0  # some heads fall below IoU 0.5, most below 0.75


def test_matching_maximises_total_iou_and_respects_threshold():
    def strip(a, b):
        m = np.zeros((1, 20), bool)
        m[0, a:b] = True
        return m

    gt_masks = [strip(0, 10), strip(10, 20)]
    pred = [strip(3, 15), strip(0, 4)]  # IoU: p0-g0 7/15, p0-g1 5/17, p1-g0 4/10
    m = match_masks(gt_masks, pred, iou_threshold=0.1)
    # greedy best-first would take p0-g0 and leave g1 unmatched; the assignment finds both
    assert [(g, p) for g, p, _ in m.pairs] == [(0, 1), (1, 0)]
    assert [v for _, _, v in m.pairs] == pytest.approx([0.4, 5 / 17])
    assert m.missed == [] and m.false == []
    strict = match_masks(gt_masks, pred, iou_threshold=0.3)  # p0-g1 no longer counts
    assert [(g, p) for g, p, _ in strict.pairs] == [(0, 0)]
    assert strict.missed == [1] and strict.false == [1]
    assert match_masks([], pred) == ([], [], [0, 1])
    assert match_masks(gt_masks, []) == ([], [0, 1], [])


def _uncompressed(mask):
    flat = np.asarray(mask, np.uint8).ravel(order="F")
    edges = np.flatnonzero(np.diff(np.r_[0, flat, 2 if flat[-1] == 0 else 0]) != 0)
    counts = np.diff(np.r_[0, edges]).tolist()
    assert sum(counts) == flat.size
    return {"size": list(mask.shape), "counts": counts}


def test_uncompressed_rle_and_polygon_ground_truth():
    shape = (40, 50)
    sq = np.zeros(shape, bool)
    sq[10:20, 5:25] = True
    diamond = [[37, 22, 45, 30, 37, 38, 29, 30]]  # x, y
    dia = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(diamond, 40, 50))).astype(bool)
    assert 0 < dia.sum() < 0.7 * 16 * 16  # a diamond, not its box
    gt = new_dataset("gt")
    gt["images"].append({"id": 1, "file_name": "a.png", "height": 40, "width": 50})
    gt["annotations"] = [
        {**mask_annotation(sq, 1, 1, "head"), "segmentation": _uncompressed(sq)},
        {**mask_annotation(dia, 2, 1, "head"), "segmentation": diamond},
    ]
    pred = new_dataset("pred")
    pred["images"].append({"id": 1, "file_name": "a.png", "height": 40, "width": 50})
    pred["annotations"] = [
        mask_annotation(sq, 1, 1, "head", score=0.9),
        mask_annotation(dia, 2, 1, "head", score=0.8),
        mask_annotation(dia & (np.arange(50) < 37), 3, 1, "tail", score=0.8),
    ]
    gt["annotations"].append({**mask_annotation(dia, 3, 1, "tail"), "segmentation": diamond})
    res = evaluate_segmentation(gt, pred)
    head, tail = res["categories"]["head"], res["categories"]["tail"]
    assert head["matched"] == 2 and head["AP50"] == pytest.approx(1.0)
    assert head["iou_median"] == 1.0 and head["iou_mean"] == 1.0
    half = dia & (np.arange(50) < 37)
    assert tail["iou_median"] == pytest.approx(half.sum() / dia.sum())


def test_missing_masks_are_skipped_not_failed(fields, gt):
    # detector-style predictions: boxes only
    boxes = copy.deepcopy(_predictions(fields))
    for a in boxes["annotations"]:
        del a["segmentation"]
    res = evaluate_segmentation(gt, boxes)
    assert res["categories"] == {}
    assert res["skipped"]["head"] == "the predictions have no masks"
    assert format_segm_report(res).startswith("segmentation: not scored (")
    # one image's tails lack masks: that image is left out of the tail scores only
    partial = copy.deepcopy(gt)
    for a in partial["annotations"]:
        if a["image_id"] == 2 and a["category_id"] == 3:
            a["segmentation"] = []
    pred = _predictions(fields)
    res = evaluate_segmentation(partial, pred, max_dets=300)
    tail = res["categories"]["tail"]
    assert tail["images"] == 1 and tail["images_without_masks"] == 1
    assert tail["n_gt"] == sum(
        1 for a in gt["annotations"] if a["image_id"] == 1 and a["category_id"] == 3
    )
    assert res["categories"]["head"]["images"] == 2
    report = format_segm_report(res)
    assert "tail: 1 image(s) skipped" in report
    rows = {r["image_id"]: r for r in per_image_table(partial, pred, segm=res)}
    assert rows[2]["iou_median_tail"] is None and rows[2]["iou_median_head"] == 1.0


def test_mask_size_mismatch_is_one_line_error(fields, gt):
    pred = _predictions(fields)
    small = np.zeros((10, 10), bool)
    small[2:5, 2:5] = True
    pred["annotations"].append(mask_annotation(small, 999, 1, "head", score=0.5))
    with pytest.raises(SpermInputError, match=r"predictions: the mask of annotation 999 is 10x10"):
        evaluate_segmentation(gt, pred)
    bad = _predictions(fields)
    bad["annotations"][0]["segmentation"] = {"size": [480, 640], "counts": 42}
    with pytest.raises(SpermInputError, match="malformed segmentation"):
        evaluate_segmentation(gt, bad)


def test_format_report_has_segm_section(fields, gt):
    pred = _predictions(fields)
    result = evaluate_detections(gt, pred, max_dets=300)
    result["segm"] = evaluate_segmentation(gt, pred, max_dets=300)
    text = format_report(result)
    box, segm = text.split("\n\n")
    assert "centre P/R/F1" in box and "IoU med" not in box
    assert segm.startswith("segmentation (mask IoU") and "IoU med" in segm
    assert [ln.split()[0] for ln in segm.splitlines()[2:5]] == ["sperm", "head", "tail"]


# ---- the command line ----------------------------------------------------------------------


def _foreign_gt(gt, debris=0):
    """The ground truth as another tool might write it: other names, other ids."""
    names = {1: (13, "Cell"), 2: (11, "Nucleus"), 3: (12, "Flagellum")}
    ds = copy.deepcopy(gt)
    ds["categories"] = [{"id": i, "name": n} for i, n in names.values()]
    for a in ds["annotations"]:
        a["category_id"] = names[a["category_id"]][0]
    if debris:
        ds["categories"].append({"id": 20, "name": "Debris"})
        for k in range(debris):
            d = dict(ds["annotations"][k])
            d.update(id=10_000 + k, category_id=20)
            ds["annotations"].append(d)
    return ds


@pytest.fixture()
def cli_files(fields, gt, tmp_path):
    def drop_odd(i, k, m):
        return None if k % 2 else m

    pred = _predictions(fields, tail=drop_odd)
    paths = {
        "pred": tmp_path / "pred.json",
        "gt": tmp_path / "gt.json",
        "dirty": tmp_path / "dirty.json",
    }
    paths["pred"].write_text(json.dumps(pred))
    paths["gt"].write_text(json.dumps(_foreign_gt(gt)))
    paths["dirty"].write_text(json.dumps(_foreign_gt(gt, debris=3)))
    return paths


def test_cli_segm_per_image_json_and_category_map(cli_files, tmp_path, capsys, gt):
    table, out = tmp_path / "per_image.csv", tmp_path / "scores.json"
    args = ["evaluate", "--gt", str(cli_files["gt"]), "--pred", str(cli_files["pred"])]
    args += [
        "--max-dets",
        "300",
        "--category-map",
        "Nucleus=head",
        "--category-map",
        "Flagellum=tail Cell=sperm",
    ]
    assert main([*args, "--per-image", str(table), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "segmentation (mask IoU" in printed and "Nucleus -> head" in printed
    res = json.loads(out.read_text())
    assert res["categories"]["head"]["AP50"] == pytest.approx(1.0)  # boxes
    assert res["segm"]["categories"]["head"]["iou_median"] == 1.0
    tail = res["segm"]["categories"]["tail"]
    assert tail["missed"] > 0 and tail["false"] == 0
    assert res["category_map"]["ground truth"]["mapped"] == {
        "Cell": "sperm",
        "Nucleus": "head",
        "Flagellum": "tail",
    }
    with table.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == PER_IMAGE_COLUMNS
    assert [r["file_name"] for r in rows] == ["images/f1.png", "images/f2.png"]
    assert sum(int(r["masks_missed_tail"]) for r in rows) == tail["missed"]
    assert all(r["iou_median_head"] == "1.0" and r["centre_recall_head"] == "1.0" for r in rows)
    assert rows == [
        {k: "" if v is None else str(v) for k, v in r.items()} for r in res["per_image"]
    ]
    # --no-segm: boxes only
    assert main([*args, "--no-segm", "--json", str(out)]) == 0
    assert "segmentation" not in capsys.readouterr().out
    assert "segm" not in json.loads(out.read_text())


def test_cli_unknown_categories(cli_files, tmp_path, capsys):
    base = ["evaluate", "--pred", str(cli_files["pred"])]
    cmap = ["--category-map", "Nucleus=head,Flagellum=tail Cell=sperm"]
    assert main([*base, "--gt", str(cli_files["gt"])]) == 2  # no map for foreign names
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ground truth:" in err[0]
    assert "'Nucleus' (" in err[0] and "--category-map NAME=sperm|head|tail" in err[0]
    assert main([*base, "--gt", str(cli_files["dirty"]), *cmap]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'Debris' (3 annotations)" in err[0] and "--ignore-unknown" in err[0]
    out = tmp_path / "s.json"
    assert (
        main(
            [*base, "--gt", str(cli_files["dirty"]), *cmap, "--ignore-unknown", "--json", str(out)]
        )
        == 0
    )
    assert json.loads(out.read_text())["category_map"]["ground truth"]["dropped"] == {"Debris": 3}
    assert "dropped 3 Debris" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--category-map", "Nucleus=nucleus"], "unknown target category 'nucleus'"),
        (["--category-map", "Nucleus=head nucleus=tail"], "mapped to both head and tail"),
        (["--category-map", "Nucleus=head,Flagellum"], "has no target"),
    ],
)
def test_cli_bad_maps(cli_files, capsys, extra, message):
    args = ["evaluate", "--gt", str(cli_files["gt"]), "--pred", str(cli_files["pred"]), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_cli_bad_masks_one_line(fields, gt, tmp_path, capsys):
    pred = _predictions(fields)
    pred["annotations"][0]["segmentation"] = {"size": [7, 7], "counts": "0"}
    p, g = tmp_path / "p.json", tmp_path / "g.json"
    p.write_text(json.dumps(pred))
    g.write_text(json.dumps(gt))
    assert main(["evaluate", "--gt", str(g), "--pred", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is 7x7" in err[0]
    # the same files score when masks are switched off
    assert main(["evaluate", "--gt", str(g), "--pred", str(p), "--no-segm"]) == 0


def test_map_then_score_equals_native(fields, gt):
    mapped, _ = map_categories(
        _foreign_gt(gt), parse_category_map("Nucleus=head Flagellum=tail Cell=sperm"), what="gt"
    )
    assert mapped["annotations"] == gt["annotations"]
