"""Whole-cell score: the head score scaled by how complete the traced tail is."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from napari_sperm.coco import new_dataset
from napari_sperm.detection import load_detector
from napari_sperm.evaluation import evaluate_detections
from napari_sperm.segmentation.cell_score import whole_cell_scores
from napari_sperm.segmentation.coco_output import SegmentedImage, segmentation_to_coco
from napari_sperm.segmentation.segment import segment
from napari_sperm.synthetic import make_field
from napari_sperm.synthetic.dataset import field_annotations


def test_scores_follow_tail_length_against_the_frames_median():
    heads = [0.9, 0.8, 1.0, 0.5, 0.7, 0.6]
    lengths = [100.0, 50.0, 200.0, 0.0, 10.0, 20.0]  # median of the tails: 50
    border = [False, False, False, False, False, True]
    out = whole_cell_scores(heads, lengths, border)
    np.testing.assert_allclose(out, [0.9, 0.8, 1.0, 0.5 * 0.2, 0.7 * 0.2, 0.6])
    # short, but at the border: it may go on outside the frame, so the head score stays
    assert out[5] == 0.6
    half = whole_cell_scores([1.0] * 4, [40.0, 40.0, 40.0, 20.0], [False] * 4)
    np.testing.assert_allclose(half, [1.0, 1.0, 1.0, 0.5])


def test_too_few_tails_keep_the_head_score_and_tailless_cells_the_floor():
    out = whole_cell_scores([0.9, 0.8, 0.7], [30.0, 5.0, 0.0], [False] * 3, floor=0.25)
    np.testing.assert_allclose(out, [0.9, 0.8, 0.7 * 0.25])
    assert whole_cell_scores([], [], []).size == 0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="same length"):
        whole_cell_scores([1.0, 1.0], [1.0], [False, False])
    with pytest.raises(ValueError, match="floor"):
        whole_cell_scores([1.0], [1.0], [False], floor=0.0)


@pytest.fixture(scope="module")
def phase_high():
    """Two phase-high fields, the shipped detector, the classic engine: results and ground truth."""
    det = load_detector(device="cpu")
    gt = new_dataset("truth")
    results = []
    for image_id, seed in enumerate((9101, 9102), start=1):
        f = make_field("phase-high", seed=seed)
        h, w = f.shape
        gt["images"].append({"id": image_id, "file_name": f"f{seed}.png", "width": w, "height": h})
        gt["annotations"] += field_annotations(f, image_id, len(gt["annotations"]) + 1)
        res = segment(f.image, det.detect(f.image[None])[0])[0]
        results.append(SegmentedImage(f"f{seed}.png", None, res))
    return gt, results


def test_records_and_coco_carry_the_whole_cell_score(phase_high):
    _, results = phase_high
    recs = [r for item in results for r in item.result.sperm]
    cells = [r for r in recs if r.head is not None]
    assert all(r.cell_score is not None and r.cell_score <= r.score + 1e-12 for r in cells)
    tailless = [r for r in cells if r.tail is None]
    assert tailless, "the fields should hold cells whose tail was not found"
    assert all(r.cell_score == pytest.approx(0.2 * r.score) for r in tailless)
    assert all(r.cell_score == 0.0 for r in recs if r.head is None)
    ds = segmentation_to_coco(results)
    by_id = {
        (a["image_id"], a["attributes"]["sperm_id"], a["category_id"]): a for a in ds["annotations"]
    }
    for image_id, item in enumerate(results, start=1):
        for r in item.result.sperm:
            if r.head is None:
                continue
            assert by_id[(image_id, r.sperm_id, 2)]["score"] == round(r.score, 4)
            assert by_id[(image_id, r.sperm_id, 1)]["score"] == round(r.cell_score, 4)
            if r.tail is not None:
                assert by_id[(image_id, r.sperm_id, 3)]["score"] == round(r.cell_score, 4)


def test_whole_cell_boxes_rank_better_by_the_whole_cell_score(phase_high):
    gt, results = phase_high
    pred = segmentation_to_coco(results)
    for im, g in zip(pred["images"], gt["images"], strict=True):
        im["file_name"] = g["file_name"]
    by_head = copy.deepcopy(pred)
    heads = {
        (a["image_id"], a["attributes"]["sperm_id"]): a["score"]
        for a in pred["annotations"]
        if a["category_id"] == 2
    }
    for a in by_head["annotations"]:
        if a["category_id"] == 1:
            a["score"] = heads[(a["image_id"], a["attributes"]["sperm_id"])]

    def ap50(p):
        return evaluate_detections(gt, p, categories=["sperm"])["categories"]["sperm"]["AP50"]

    with_cell, with_head = ap50(pred), ap50(by_head)
    assert with_cell >= with_head + 0.03, (with_cell, with_head)
