"""``benchmarks/cell_boxes.py --misses``: each reason a true cell is missed is told apart.

The predictions are the ground truth of a synthetic field with one cell spoiled in a known way.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy import ndimage as ndi

from napari_sperm.synthetic.dataset import write_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from cell_boxes import MISS_KINDS, _cells, missed_cells  # noqa: E402


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> dict:
    out = write_dataset(tmp_path_factory.mktemp("cells"), "stained", n_images=1, seed=7)
    return json.loads(Path(out).read_text())  # write_dataset returns the annotations file


def _parts(data: dict) -> dict[int, dict[int, dict]]:
    """``{sperm id: {category id: annotation}}`` of the one image."""
    (cells,) = _cells(data).values()
    return cells


def _two_cells(data: dict) -> tuple[int, int]:
    """Two sperm ids with head, tail and whole-cell box whose tails lie apart."""
    parts = _parts(data)
    full = [s for s, p in parts.items() if {1, 2, 3} <= set(p)]
    boxes = [parts[s][1]["bbox"] for s in full]
    iou = np.asarray(mask_utils.iou(boxes, boxes, [0] * len(boxes)))
    np.fill_diagonal(iou, 0)
    # whole-cell box well beyond the head, and no other cell's box close to it
    ids = [
        s
        for s, row in zip(full, iou)
        if row.max() < 0.3
        and parts[s][1]["bbox"][2] * parts[s][1]["bbox"][3]
        >= 3 * parts[s][2]["bbox"][2] * parts[s][2]["bbox"][3]
    ]
    first = ndi.binary_dilation(mask_utils.decode(parts[ids[0]][3]["segmentation"]), iterations=3)
    for s in ids[1:]:
        if not (mask_utils.decode(parts[s][3]["segmentation"]).astype(bool) & first).any():
            return ids[0], s
    raise AssertionError("the fixture field needs two cells whose tails lie apart")


def _spoil(data: dict, sid: int, how: str, other: int | None = None) -> dict:
    pred = copy.deepcopy(data)
    parts = _parts(pred)
    cell, head = parts[sid][1], parts[sid][2]
    if how == "drop head":
        pred["annotations"] = [a for a in pred["annotations"] if a["attributes"]["sperm_id"] != sid]
        return pred
    cell["bbox"] = list(head["bbox"])  # the whole-cell box no longer covers the tail
    tail = parts[sid][3]
    if how == "drop tail":
        pred["annotations"].remove(tail)
    elif how == "other tail":
        tail["segmentation"] = copy.deepcopy(parts[other][3]["segmentation"])
    elif how == "cut tail":
        m = mask_utils.decode(tail["segmentation"]).astype(bool)
        rows, cols = np.nonzero(m)
        keep = np.zeros_like(m)
        k = np.argsort(np.hypot(rows - rows.mean(), cols - cols.mean()))[: len(rows) // 4]
        keep[rows[k], cols[k]] = True  # a quarter of the tail, around its middle
        tail["segmentation"] = mask_utils.encode(np.asfortranarray(keep.astype(np.uint8)))
        tail["segmentation"]["counts"] = tail["segmentation"]["counts"].decode()
    return pred


def test_perfect_prediction_misses_nothing(truth):
    m = missed_cells(truth, truth)
    assert m["cells"] == sum(1 for p in _parts(truth).values() if {1, 2} <= set(p))
    assert m["missed"] == 0
    assert all(m[k] == 0 for k in MISS_KINDS)


@pytest.mark.parametrize(
    "how, kind",
    [
        ("drop head", "head not found"),
        ("drop tail", "no tail"),
        ("other tail", "another cell's tail"),
        ("cut tail", "tail cut short"),
    ],
)
def test_each_reason_is_named(truth, how, kind):
    sid, other = _two_cells(truth)
    m = missed_cells(truth, _spoil(truth, sid, how, other))
    assert m["missed"] == 1
    assert m[kind] == 1, m
