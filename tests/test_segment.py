"""segment(): classic engine on synthetic fields with known truth; COCO output; the CLI command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from scipy import ndimage as ndi

from napari_sperm.cli import main
from napari_sperm.detection import FrameDetections
from napari_sperm.io.errors import SpermInputError
from napari_sperm.segmentation.coco_output import SegmentedImage, segmentation_to_coco
from napari_sperm.segmentation.segment import segment
from napari_sperm.synthetic import make_field


def _truth_detections(f):
    cells = [s for s in f.sperm if s.head.area > 0]
    boxes = np.array([s.head_box() for s in cells], float)
    n = len(cells)
    return FrameDetections(boxes, np.ones(n), np.full(n, 2), [s.sperm_id for s in cells]), cells


def _iou(a, b):
    union = (a | b).sum()
    return (a & b).sum() / union if union else 0.0


@pytest.fixture(scope="module")
def stained():
    f = make_field("stained", seed=2, n_sperm=6)
    det, cells = _truth_detections(f)
    return f, cells, segment(f.image, det)[0]


def test_heads_and_tails_share_the_detectors_sperm_ids(stained):
    f, cells, res = stained
    by_id = {r.sperm_id: r for r in res.sperm}
    head_ious = [
        _iou(s.head.to_full(f.shape), by_id[s.sperm_id].head.to_full(f.shape)) for s in cells
    ]
    assert np.median(head_ious) >= 0.85
    tail_ious = []
    for s in cells:
        if s.tail.area < 50:
            continue
        rec = by_id[s.sperm_id]
        tail_ious.append(
            0.0 if rec.tail is None else _iou(s.tail.to_full(f.shape), rec.tail.to_full(f.shape))
        )
    assert np.median(tail_ious) >= 0.6, tail_ious
    heads, tails = res.head_labels(), res.tail_labels()
    assert set(np.unique(heads)) - {0} <= {s.sperm_id for s in cells}
    paired = [r for r in res.sperm if r.paired]
    assert all((tails == r.sperm_id).any() for r in paired)
    assert all(r.tail_length > 0 and r.head_area > 0 for r in paired)


def test_coco_output_has_linked_masks_pycocotools_reads(stained, tmp_path):
    f, _, res = stained
    ds = segmentation_to_coco([SegmentedImage("field.png", None, res)])
    path = tmp_path / "seg.json"
    path.write_text(json.dumps(ds))
    coco = COCO(str(path))
    anns = coco.loadAnns(coco.getAnnIds())
    assert {a["category_id"] for a in anns} == {1, 2, 3}
    for rec in (r for r in res.sperm if r.paired):
        parts = {a["category_id"]: a for a in anns if a["attributes"]["sperm_id"] == rec.sperm_id}
        assert set(parts) == {1, 2, 3}
        whole = mask_utils.decode(parts[1]["segmentation"]).astype(bool)
        head = mask_utils.decode(parts[2]["segmentation"]).astype(bool)
        tail = mask_utils.decode(parts[3]["segmentation"]).astype(bool)
        assert np.array_equal(whole, head | tail)
        assert np.array_equal(tail, rec.tail.to_full(f.shape))


def test_bad_input_is_a_clear_error():
    f = make_field("phase-high", seed=1, n_sperm=3)
    with pytest.raises(SpermInputError, match="engine"):
        segment(f.image, np.zeros((0, 4)), engine="nope")
    with pytest.raises(SpermInputError, match="SAM"):
        segment(f.image, np.zeros((0, 4)), engine="sam")
    with pytest.raises(SpermInputError, match=r"\(n, 4\)"):
        segment(f.image, np.zeros((3, 3)))
    with pytest.raises(SpermInputError, match="frame"):
        segment(np.stack([f.image, f.image]), [FrameDetections.empty()])


def test_no_boxes_gives_only_unpaired_tails():
    f = make_field("phase-high", seed=1, n_sperm=3)
    res = segment(f.image, np.zeros((0, 4)))[0]
    assert all(r.head is None and not r.paired for r in res.sperm)


def test_segment_command_writes_coco_masks(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    assert (
        main(
            ["synth", str(data), "--modality", "phase-high", "--seed", "4", "--n-sperm", "5", "-q"]
        )
        == 0
    )
    out = tmp_path / "seg.json"
    assert main(["segment", str(data / "images"), "-o", str(out), "-q"]) == 0
    assert "heads" in capsys.readouterr().out
    ds = json.loads(out.read_text())
    cats = [a["category_id"] for a in ds["annotations"]]
    assert cats.count(2) >= 3 and cats.count(3) >= 1 and cats.count(1) == cats.count(2)
    assert all("sperm_id" in a["attributes"] for a in ds["annotations"])
    assert ds["info"]["weak_score_threshold"] == 0.1
    with pytest.raises(SystemExit):  # argparse: one usage line and the reason, exit status 2
        main(["segment", str(data / "images"), "-o", str(out), "--weak-score-threshold", "2"])
    assert "between 0 and 1 or 'off'" in capsys.readouterr().err
    args = ["segment", str(data / "images"), "-o", str(out), "-q", "--force"]
    assert main([*args, "--weak-score-threshold", "off"]) == 0
    off = json.loads(out.read_text())
    assert off["info"]["weak_score_threshold"] is None
    assert len(off["annotations"]) <= len(ds["annotations"])
    # no checkpoint anywhere: sam falls back to classic with one warning line
    monkeypatch.delenv("NAPARI_SPERM_SAM_CHECKPOINT", raising=False)
    monkeypatch.setenv("NAPARI_SPERM_CACHE", str(tmp_path / "empty-cache"))
    out2 = tmp_path / "seg2.json"
    assert main(["segment", str(data / "images"), "-o", str(out2), "-q", "--engine", "sam"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "classic" in err
    assert main(["segment", str(data / "images"), "-o", str(out2), "-q"]) == 2


def test_sam_engine_through_segment_with_a_tiny_model():
    from napari_sperm.segmentation.sam import tiny_sam

    f = make_field("phase-high", seed=1, n_sperm=4)
    det, cells = _truth_detections(f)
    res = segment(f.image, det, engine="sam", sam=tiny_sam())[0]
    heads = [r for r in res.sperm if r.head is not None]
    assert [r.sperm_id for r in heads] == [s.sperm_id for s in cells]
    assert all(r.engine == "sam" for r in res.sperm)
    assert res.stats["decoder_calls"] >= len(cells) and res.stats["embeddings"] >= 1


@pytest.fixture(scope="module")
def weak_field():
    """A phase-high field, its true head boxes, two of them scored as weak (0.2), plus a weak box
    on empty background where no tail leads."""
    f = make_field("phase-high", seed=5, n_sperm=6)
    det, cells = _truth_detections(f)
    weak = [k for k, s in enumerate(cells) if s.tail.area >= 80][:2]
    scores = np.ones(len(cells))
    scores[weak] = 0.2
    free = np.ones(f.shape, bool)
    for s in f.sperm:
        free &= ~ndi.binary_dilation(
            s.head.to_full(f.shape) | s.tail.to_full(f.shape), iterations=25
        )
    r, c = np.argwhere(free[20:-40, 20:-40])[0] + 20
    boxes = np.vstack([det.boxes, [[c, r, 14.0, 9.0]]])
    ids = np.append(det.sperm_ids, 999)
    det = FrameDetections(boxes, np.append(scores, 0.2), np.full(len(ids), 2), ids)
    return f, det, [cells[k] for k in weak]


def test_weak_heads_are_kept_only_with_a_tail_no_other_head_took(weak_field):
    f, det, weak_cells = weak_field
    assert len(weak_cells) == 2
    res = segment(f.image, det)[0]  # default weak_score_threshold 0.1
    by_id = {r.sperm_id: r for r in res.sperm}
    for s in weak_cells:
        rec = by_id[s.sperm_id]
        assert rec.score == pytest.approx(0.2) and rec.paired
        assert _iou(s.tail.to_full(f.shape), rec.tail.to_full(f.shape)) >= 0.5
    assert 999 not in by_id  # the weak box with no tail is dropped
    # weak heads are paired after the heads without a tail, under stricter pairing
    assert res.weak_clustering is not None
    assert res.weak_clustering.params.pair_max_angle_deg == 30.0
    assert res.weak_clustering.params.pair_rear_fraction == 0.0
    strong = {r.sperm_id for r in res.sperm if r.head is not None and r.score >= 0.3}
    off = segment(f.image, det, weak_score_threshold=None)[0]
    off_heads = {r.sperm_id for r in off.sperm if r.head is not None}
    assert off_heads == strong  # the first pass's heads are the same either way
    assert not off_heads & {s.sperm_id for s in weak_cells}
    # the weak cells' tails were left over as unpaired tails
    assert sum(r.head is None for r in off.sperm) >= sum(r.head is None for r in res.sperm) + 2
    with pytest.raises(SpermInputError, match="weak_score_threshold"):
        segment(f.image, det, weak_score_threshold=1.5)


def test_leftover_tails_go_to_heads_without_a_tail_not_to_taken_ones():
    from napari_sperm.segmentation.second_pass import pair_leftover_tails
    from napari_sperm.tails import cluster_tails

    f = make_field("phase-high", seed=5, n_sperm=6)
    s = max(f.sperm, key=lambda c: c.tail.area if c.head.area > 40 else 0)
    tail = s.tail.to_full(f.shape)
    leftover = cluster_tails(tail).tails  # no heads: every tail unpaired
    head = np.where(s.head.to_full(f.shape), s.sperm_id, 0).astype(np.int32)
    none = np.zeros_like(head)
    got = pair_leftover_tails(
        head, [s.head], np.array([s.sperm_id]), np.array([0.9]), none, leftover
    )
    assert [c[0] for c in got.cells] == [s.sperm_id]
    assert _iou(tail, got.cells[0][2].mask.to_full(f.shape)) >= 0.8
    assert not got.unpaired
    taken = pair_leftover_tails(
        head, [s.head], np.array([s.sperm_id]), np.array([0.9]), head, leftover
    )
    assert not taken.cells and len(taken.unpaired) == len(leftover)
