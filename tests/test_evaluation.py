"""`napari-sperm evaluate`: COCO AP via pycocotools plus centre-distance recall, image matching."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sperm.cli import main
from napari_sperm.detection import FrameDetections
from napari_sperm.detection.coco_output import ImageRecord, detections_to_coco
from napari_sperm.evaluation import centre_distance_scores, evaluate_detections
from napari_sperm.io import SpermInputError


@pytest.fixture(scope="module")
def gt_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("gt")
    assert (
        main(
            [
                "synth",
                str(out),
                "--modality",
                "phase-low",
                "--n-images",
                "2",
                "--seed",
                "3",
                "--n-sperm",
                "60",
                "-q",
            ]
        )
        == 0
    )
    return out


def _predictions_from_gt(gt, gt_dir, shift=(0.0, 0.0), keep=1.0, rng=None):
    """Predictions that copy the ground-truth boxes (optionally shifted or thinned)."""
    records = []
    for im in gt["images"]:
        anns = [
            a for a in gt["annotations"] if a["image_id"] == im["id"] and a["category_id"] in (1, 2)
        ]
        if rng is not None and keep < 1:
            anns = [a for a in anns if rng.random() < keep]
        boxes = np.array([a["bbox"] for a in anns], float).reshape(-1, 4)
        boxes[:, :2] += np.asarray(shift, float)
        det = FrameDetections(
            boxes,
            np.linspace(0.99, 0.5, len(anns)),
            [a["category_id"] for a in anns],
            [a["attributes"]["sperm_id"] for a in anns],
        )
        records.append(
            ImageRecord(str(gt_dir / im["file_name"]), im["width"], im["height"], None, det)
        )
    return detections_to_coco(records)


def test_perfect_predictions_score_one(gt_dir):
    gt = json.loads((gt_dir / "annotations.json").read_text())
    pred = _predictions_from_gt(gt, gt_dir)
    res = evaluate_detections(gt, pred, gt_dir=gt_dir, max_dets=300)
    assert res["images"] == 2
    for name in ("head", "sperm"):
        s = res["categories"][name]
        assert s["AP50"] == pytest.approx(1.0)
        assert s["AP"] == pytest.approx(1.0)
        assert s["AR@300"] == pytest.approx(1.0)
        assert s["centre_recall"] == 1.0 and s["centre_precision"] == 1.0
    # COCO's default of 100 detections per image caps recall on these 60+-cell fields.
    capped = evaluate_detections(gt, pred, gt_dir=gt_dir)
    assert capped["categories"]["head"]["AR@100"] == pytest.approx(1.0)


def test_two_pixel_shift_hurts_ap_on_tiny_heads_but_not_centre_recall(gt_dir):
    gt = json.loads((gt_dir / "annotations.json").read_text())
    pred = _predictions_from_gt(gt, gt_dir, shift=(2.0, 0.0))  # 2 px sideways
    head = evaluate_detections(gt, pred, gt_dir=gt_dir, max_dets=300)["categories"]["head"]
    assert head["AP"] < 0.5  # strict IoU thresholds punish the shift on 10 px heads
    assert head["centre_recall"] == 1.0  # the centre-distance score does not


def test_missing_detections_lower_recall(gt_dir):
    gt = json.loads((gt_dir / "annotations.json").read_text())
    pred = _predictions_from_gt(gt, gt_dir, keep=0.5, rng=np.random.default_rng(0))
    head = evaluate_detections(gt, pred, gt_dir=gt_dir, max_dets=300)["categories"]["head"]
    assert 0.35 < head["centre_recall"] < 0.65
    assert head["centre_precision"] == 1.0
    assert 0.35 < head["AR@300"] < 0.65


def test_centre_distance_matching_is_one_to_one():
    gt = np.array([[0, 0, 10, 10], [30, 30, 10, 10]])
    pred = np.array([[1, 1, 10, 10], [0, 0, 10, 10], [80, 80, 5, 5]])
    assert centre_distance_scores(gt, pred, np.array([0.9, 0.8, 0.7])) == (1, 2, 1)


def test_cli_evaluate_writes_json(gt_dir, tmp_path, capsys):
    gt = json.loads((gt_dir / "annotations.json").read_text())
    pred_path = tmp_path / "pred.json"
    pred_path.write_text(json.dumps(_predictions_from_gt(gt, gt_dir)))
    out = tmp_path / "scores.json"
    assert (
        main(
            [
                "evaluate",
                "--gt",
                str(gt_dir / "annotations.json"),
                "--pred",
                str(pred_path),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "head" in printed and "AP50" in printed
    assert json.loads(out.read_text())["categories"]["head"]["AP50"] == pytest.approx(1.0)


def test_unmatched_and_malformed_inputs(gt_dir, tmp_path, capsys):
    gt = json.loads((gt_dir / "annotations.json").read_text())
    pred = _predictions_from_gt(gt, gt_dir)
    for im in pred["images"]:
        im["file_name"] = "elsewhere/other.png"
    with pytest.raises(SpermInputError, match="file_name"):
        evaluate_detections(gt, pred, gt_dir=gt_dir)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["evaluate", "--gt", str(gt_dir / "annotations.json"), "--pred", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid JSON" in err[0]
    no_scores = {"images": gt["images"], "annotations": gt["annotations"]}
    with pytest.raises(SpermInputError, match="score"):
        evaluate_detections(gt, no_scores, gt_dir=gt_dir)


def test_prediction_coco_is_loadable_by_pycocotools(gt_dir):
    from pycocotools.coco import COCO

    gt = json.loads((gt_dir / "annotations.json").read_text())
    pred = _predictions_from_gt(gt, gt_dir)
    assert [c["name"] for c in pred["categories"]] == ["sperm", "head", "tail"]
    assert pred["annotations"][0]["id"] == 1 and pred["images"][0]["id"] == 1
    coco = COCO()
    coco.dataset = pred
    coco.createIndex()
    assert len(coco.getAnnIds(catIds=[2])) == sum(
        a["category_id"] == 2 for a in pred["annotations"]
    )


def test_categories_scored(gt_dir):
    gt = json.loads((gt_dir / "annotations.json").read_text())
    pred = _predictions_from_gt(gt, gt_dir)
    assert set(evaluate_detections(gt, pred, gt_dir=gt_dir)["categories"]) == {
        "head",
        "sperm",
    }  # no tails predicted
    only = evaluate_detections(gt, pred, gt_dir=gt_dir, categories=["head"])
    assert set(only["categories"]) == {"head"}
    tails = evaluate_detections(gt, pred, gt_dir=gt_dir, categories=["tail"])
    assert (
        tails["categories"]["tail"]["AP50"] == 0.0
        and tails["categories"]["tail"]["centre_recall"] == 0.0
    )
    with pytest.raises(SpermInputError, match="unknown categories"):
        evaluate_detections(gt, pred, gt_dir=gt_dir, categories=["flagellum"])
