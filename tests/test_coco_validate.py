"""COCO import validation: every problem of a malformed file in one clear, one-line error."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from napari_sperm.annotations.validate import (
    CocoFormatError,
    _compressed_rle_errors,
    coco_problems,
    looks_like_coco,
    validate_coco,
)
from napari_sperm.coco import encode_mask, mask_annotation, new_dataset
from napari_sperm.io.errors import SpermInputError

H, W = 48, 64  # every test image is 48 rows x 64 columns


def _blob(y: int, x: int, h: int = 6, w: int = 9) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y : y + h, x : x + w] = True
    return mask


@pytest.fixture
def ds() -> dict:
    """A valid two-frame dataset: one cell (sperm, head, tail) per frame, plus a prediction."""
    ds = new_dataset("test")
    for image_id in (1, 2):
        ds["images"].append(
            {
                "id": image_id,
                "width": W,
                "height": H,
                "file_name": "stack.tif",
                "frame": image_id - 1,
            }
        )
    ann_id = 1
    for image_id in (1, 2):
        for category, (y, x) in (("sperm", (10, 10)), ("head", (10, 10)), ("tail", (13, 14))):
            ds["annotations"].append(
                mask_annotation(_blob(y, x), ann_id, image_id, category, {"sperm_id": image_id})
            )
            ann_id += 1
    ds["annotations"].append(
        mask_annotation(_blob(30, 40), ann_id, 2, "head", {"sperm_id": 9}, 0.75)
    )
    return ds


def _ann(ds: dict, ann_id: int) -> dict:
    return next(a for a in ds["annotations"] if a["id"] == ann_id)


def _only(ds: dict) -> str:
    problems = coco_problems(ds)
    assert len(problems) == 1, problems
    return problems[0]


# --------------------------------------------------------------------------------------------
# Valid data


def test_valid_dataset_has_no_problems_and_is_returned_unchanged(ds):
    before = copy.deepcopy(ds)
    assert coco_problems(ds) == []
    assert validate_coco(ds, "ok.json") is ds
    assert ds == before


def test_other_valid_forms_are_accepted(ds):
    # Polygons, uncompressed RLE, a bbox without segmentation, an empty segmentation list,
    # a box touching the image border within the 0.5 px tolerance, capitalised category names.
    ds["categories"][1]["name"] = "Head"
    polygon = {"id": 50, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 10, 1, 10, 8]]}
    polygon["bbox"] = [1, 1, 9, 7]
    uncompressed = {
        "id": 51,
        "image_id": 1,
        "category_id": 2,
        "segmentation": {"size": [H, W], "counts": [5, 10, H * W - 15]},
        "iscrowd": 1,
    }
    box_only = {"id": 52, "image_id": 2, "category_id": 3, "bbox": [-0.4, 0, W + 0.4, H + 0.5]}
    empty_seg = {
        "id": 53,
        "image_id": 2,
        "category_id": 3,
        "bbox": [1, 2, 3, 4],
        "segmentation": [],
    }
    numpy_ids = {
        "id": np.int64(54),
        "image_id": np.int32(2),
        "category_id": np.int64(1),
        "bbox": [np.float32(1), 2.0, 3, 4],
        "score": np.float64(0.5),
    }
    ds["annotations"] += [polygon, uncompressed, box_only, empty_seg, numpy_ids]
    assert coco_problems(ds) == []


def test_unknown_category_that_no_annotation_uses_is_fine(ds):
    ds["categories"].append({"id": 5, "name": "midpiece"})
    assert coco_problems(ds) == []


# --------------------------------------------------------------------------------------------
# Top level


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "the top level is a list, not a JSON object"),
        ("x", "the top level is a string, not a JSON object"),
        (None, "the top level is null, not a JSON object"),
    ],
)
def test_top_level_not_an_object(data, expected):
    assert coco_problems(data) == [expected]


def test_missing_and_non_list_sections(ds):
    del ds["images"]
    ds["categories"] = {"1": "sperm"}
    problems = coco_problems(ds)
    assert "missing the 'images' list" in problems
    assert "'categories' is an object, not a list" in problems
    # Without images and categories nothing can be cross-checked, and nothing else is claimed.
    assert len(problems) == 2


# --------------------------------------------------------------------------------------------
# Images


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda im: im.pop("width"), "image 2: missing width"),
        (lambda im: [im.pop("id"), im.pop("file_name")], "image at index 1: missing id, file_name"),
        (lambda im: im.update(id="2"), "image at index 1: id '2' is not an integer"),
        (lambda im: im.update(width=0), "image 2: width 0 is not a positive integer"),
        (lambda im: im.update(height=-5), "image 2: height -5 is not a positive integer"),
        (lambda im: im.update(height=47.5), "image 2: height 47.5 is not a positive integer"),
        (lambda im: im.update(width="64"), "image 2: width '64' is not a positive integer"),
        (lambda im: im.update(file_name=3), "image 2: file_name is a number, not a string"),
        (lambda im: im.update(file_name=" "), "image 2: file_name is empty"),
        (lambda im: im.update(frame=-1), "image 2: frame -1 is not a non-negative integer"),
        (lambda im: im.update(frame=1.5), "image 2: frame 1.5 is not a non-negative integer"),
        (lambda im: im.update(frame=None), "image 2: frame null is not a non-negative integer"),
    ],
)
def test_image_problems(ds, change, expected):
    change(ds["images"][1])
    assert expected in coco_problems(ds)


def test_image_that_is_not_an_object(ds):
    ds["images"].append(["id", 3])
    assert _only(ds) == "image at index 2: is a list, not a JSON object"


def test_duplicate_image_ids(ds):
    ds["images"].append(dict(ds["images"][0], frame=5))
    ds["images"].append(dict(ds["images"][0], frame=6))
    assert _only(ds) == "image 1: id is used 3 times"


# --------------------------------------------------------------------------------------------
# Categories


def test_category_problems(ds):
    ds["categories"][2] = {"id": 3}
    ds["categories"].append({"name": "midpiece"})
    ds["categories"].append({"id": 1, "name": "sperm"})
    ds["categories"].append("tail")
    problems = coco_problems(ds)
    assert "category 3: missing name" in problems
    assert "category at index 3: missing id" in problems
    assert "category 1: id is used more than once" not in problems
    assert "category 1: id is used 2 times" in problems
    assert "category at index 5: is a string, not a JSON object" in problems


def test_unknown_category_used_by_an_annotation(ds):
    ds["categories"].append({"id": 5, "name": "midpiece"})
    _ann(ds, 3)["category_id"] = 5
    _ann(ds, 6)["category_id"] = 5
    assert (
        _only(ds) == "category 5 'midpiece' is not one of sperm, head, tail (used by 2 annotations)"
    )


# --------------------------------------------------------------------------------------------
# Annotations


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda a: a.pop("image_id"), "annotation 4: missing image_id"),
        (
            lambda a: [a.pop("id"), a.pop("category_id")],
            "annotation at index 3: missing id, category_id",
        ),
        (lambda a: a.update(id="4"), "annotation at index 3: id '4' is not an integer"),
        (lambda a: a.update(image_id=9), "annotation 4: image_id 9 is not an image"),
        (lambda a: a.update(image_id=[2]), "annotation 4: image_id [2] is not an integer"),
        (
            lambda a: a.update(image_id={"id": 2}),
            "annotation 4: image_id is an object, not an integer",
        ),
        (lambda a: a.update(category_id=9), "annotation 4: category_id 9 is not a known category"),
        (
            lambda a: [a.pop("bbox"), a.pop("segmentation")],
            "annotation 4: has neither bbox nor segmentation",
        ),
        (
            lambda a: a.update(bbox=[1, 2, 3]),
            "annotation 4: bbox [1, 2, 3] is not 4 finite numbers",
        ),
        (
            lambda a: a.update(bbox=[1, 2, float("nan"), 3]),
            "annotation 4: bbox [1, 2, nan, 3] is not 4 finite numbers",
        ),
        (
            lambda a: a.update(bbox=[1, 2, "3", 4]),
            "annotation 4: bbox [1, 2, '3', 4] is not 4 finite numbers",
        ),
        (lambda a: a.update(bbox=None), "annotation 4: bbox null is not 4 finite numbers"),
        (
            lambda a: a.update(bbox=[1, 2, 0, 4]),
            "annotation 4: bbox [1, 2, 0, 4] has zero or negative width or height",
        ),
        (
            lambda a: a.update(bbox=[60, 2, 5, 4]),
            "annotation 4: bbox [60, 2, 5, 4] (x, y, width, height) lies outside image 2 "
            "(width 64, height 48)",
        ),
        (
            lambda a: a.update(bbox=[0, -0.6, 5, 4]),
            "annotation 4: bbox [0, -0.6, 5, 4] (x, y, width, height) lies outside image 2 "
            "(width 64, height 48)",
        ),
        (lambda a: a.update(score="high"), "annotation 4: score 'high' is not a finite number"),
        (lambda a: a.update(score=float("inf")), "annotation 4: score inf is not a finite number"),
        (lambda a: a.update(score=True), "annotation 4: score true is not a finite number"),
        (lambda a: a.update(iscrowd=2), "annotation 4: iscrowd 2 is not 0 or 1"),
        (
            lambda a: a.update(attributes=[1]),
            "annotation 4: attributes is a list, not a JSON object",
        ),
        (
            lambda a: a.update(attributes={"sperm_id": "2"}),
            "annotation 4: attributes.sperm_id '2' is not an integer",
        ),
        (
            lambda a: a.update(attributes={"sperm_id": 2.0}),
            "annotation 4: attributes.sperm_id 2.0 is not an integer",
        ),
        (
            lambda a: a.update(segmentation="RLE"),
            "annotation 4: segmentation is a string, neither polygons (a list of lists of "
            "numbers) nor RLE (an object with size and counts)",
        ),
    ],
)
def test_annotation_problems(ds, change, expected):
    change(_ann(ds, 4))  # a head on image 2
    assert expected in coco_problems(ds)


def test_annotation_that_is_not_an_object(ds):
    ds["annotations"].insert(0, 17)
    assert _only(ds) == "annotation at index 0: is a number, not a JSON object"


def test_duplicate_annotation_ids(ds):
    _ann(ds, 5)["id"] = 2
    _ann(ds, 7)["id"] = 6
    problems = coco_problems(ds)
    assert problems == ["annotations 2, 6: id is used 2 times"]


def test_box_within_half_a_pixel_of_the_border_is_fine(ds):
    _ann(ds, 4)["bbox"] = [-0.5, -0.5, W + 1.0, H + 1.0]
    assert coco_problems(ds) == []
    _ann(ds, 4)["bbox"] = [-0.5, -0.5, W + 1.01, H + 1.0]
    assert coco_problems(ds) != []


# --------------------------------------------------------------------------------------------
# Segmentation


@pytest.mark.parametrize(
    ("segmentation", "expected"),
    [
        ([[1, 1, 5, 5]], "annotation 4: polygon with 2 points (needs at least 3)"),
        ([[1, 1, 5, 5, 9]], "annotation 4: polygon with 5 coordinates (needs an even number)"),
        (
            [[1, 1, 5, 5, 9, None]],
            "annotation 4: polygon holds something other than finite numbers",
        ),
        ([1, 1, 5, 5, 9, 9], "annotation 4: segmentation list holds a number instead of polygons"),
        ({"counts": "PP0"}, "annotation 4: RLE segmentation is missing size"),
        ({"size": [H, W]}, "annotation 4: RLE segmentation is missing counts"),
        ({"size": [H], "counts": "PP0"}, "annotation 4: RLE size [48] is not [height, width]"),
        ({"size": [H, W], "counts": 5}, "annotation 4: RLE counts are a number, neither a string"),
        (
            {"size": [H, W], "counts": [5, -1, 10]},
            "annotation 4: RLE counts are not all non-negative",
        ),
        (
            {"size": [H, W], "counts": [5, 10, 20]},
            "annotation 4: RLE counts add up to 35 pixels, not 48 x 64 = 3072",
        ),
        (
            {"size": [H, W], "counts": ""},
            "annotation 4: compressed RLE counts do not decode (the counts string is empty)",
        ),
        (
            {"size": [H, W], "counts": "PP0é"},
            "annotation 4: compressed RLE counts do not decode (the counts string has characters",
        ),
        (
            {"size": [H, W], "counts": "PP0 1"},
            "annotation 4: compressed RLE counts do not decode (the counts string has characters",
        ),
    ],
)
def test_segmentation_problems(ds, segmentation, expected):
    _ann(ds, 4)["segmentation"] = segmentation
    problems = coco_problems(ds)
    assert any(p.startswith(expected) for p in problems), problems


def test_rle_size_that_does_not_match_the_image_says_which_is_which(ds):
    ds["images"].append({"id": 3, "width": 640, "height": 480, "file_name": "big.tif"})
    ann = _ann(ds, 4)
    ann["image_id"] = 3
    ann["segmentation"] = encode_mask(np.zeros((100, 80), bool))
    assert _only(ds) == (
        "annotation 4: RLE size [100, 80] (height, width) does not match image 3 "
        "(height 480, width 640)"
    )


def test_broken_compressed_rle_strings(ds):
    good = _ann(ds, 1)["segmentation"]["counts"]
    _ann(ds, 2)["segmentation"]["counts"] = good[:-1] + "h"  # last run says "more follows"
    _ann(ds, 3)["segmentation"]["counts"] = good + "1"  # one run too many
    _ann(ds, 4)["segmentation"]["counts"] = "{" + good  # a char that is not RLE code
    total = sum(_reference_runs(good + "1"))
    assert total > H * W
    assert coco_problems(ds) == [
        "annotation 2: compressed RLE counts do not decode (the counts string is cut off)",
        f"annotation 3: compressed RLE counts do not decode (its runs add up to {total} pixels, "
        "not 48 x 64 = 3072)",
        "annotation 4: compressed RLE counts do not decode (the counts string has characters that "
        "are not RLE code)",
    ]


def test_a_few_different_details_stay_separate_many_are_grouped(ds):
    _ann(ds, 2)["bbox"] = [60, 0, 10, 10]
    _ann(ds, 3)["bbox"] = [0, 45, 10, 10]
    assert coco_problems(ds) == [
        "annotation 2: bbox [60, 0, 10, 10] (x, y, width, height) lies outside image 1 "
        "(width 64, height 48)",
        "annotation 3: bbox [0, 45, 10, 10] (x, y, width, height) lies outside image 1 "
        "(width 64, height 48)",
    ]
    _ann(ds, 4)["bbox"] = [0, 0, 100, 10]
    _ann(ds, 5)["bbox"] = [0, 0, 10, 100]
    assert coco_problems(ds) == ["annotations 2, 3, 4, 5: bbox lies outside its image"]


def _reference_runs(s: str) -> list[int] | None:
    """pycocotools' rleFrString in plain Python; None when the string is malformed."""
    runs: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p == len(s):
                return None  # cut off in the middle of a run
            c = ord(s[p]) - 48
            if not 0 <= c <= 63:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x -= 1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def test_compressed_rle_check_matches_a_reference_decoder():
    rng = np.random.default_rng(0)
    masks = [np.zeros((H, W), bool), np.ones((H, W), bool), _blob(0, 0), _blob(40, 50, 8, 14)]
    masks += [rng.random((H, W)) < p for p in (0.02, 0.3, 0.5, 0.9)]
    strings = [encode_mask(m)["counts"] for m in masks]
    # Single-char edits of valid strings: some still decode, most do not.
    alphabet = [chr(c) for c in range(48, 112)] + ["!", "~"]
    for _ in range(600):
        s = strings[rng.integers(len(masks))]
        pos = int(rng.integers(len(s)))
        edit = rng.integers(3)
        if edit == 0:
            s = s[:pos] + alphabet[rng.integers(len(alphabet))] + s[pos + 1 :]
        elif edit == 1:
            s = s[:pos] + s[pos + 1 :]
        else:
            s = s[:pos] + alphabet[rng.integers(len(alphabet))] + s[pos:]
        strings.append(s)
    errors = _compressed_rle_errors(strings, [(H, W)] * len(strings))
    n_ok = 0
    for s, err in zip(strings, errors):
        runs = _reference_runs(s)
        valid = runs is not None and min(runs) >= 0 and sum(runs) == H * W
        n_ok += valid
        assert (err is None) == valid, (s, err, runs)
        if valid:  # pycocotools decodes these to the same mask area
            rle = {"size": [H, W], "counts": s.encode("ascii")}
            assert mask_utils.decode(rle).sum() == sum(runs[1::2])
        elif runs is not None and 0 <= min(runs) and max(runs) <= H * W:
            assert err == f"its runs add up to {sum(runs)} pixels, not 48 x 64 = 3072"
        elif runs is not None and min(runs) < 0 <= max(runs) <= H * W:
            assert err in ("a run is negative", "a run is negative or longer than the whole mask")
    assert len(masks) < n_ok < len(strings) - 100  # the edits made both kinds
    # Chunked parsing gives the same answers.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("napari_sperm.annotations.validate._RLE_CHUNK_CHARS", 50)
        assert _compressed_rle_errors(strings, [(H, W)] * len(strings)) == errors


def test_large_masks_with_long_runs_decode():
    # Runs longer than 2**15 pixels need several chars each.
    ds = new_dataset("big")
    ds["images"].append({"id": 1, "width": 700, "height": 600, "file_name": "big.tif"})
    mask = np.zeros((600, 700), bool)
    mask[590:, 690:] = True
    ds["annotations"].append(mask_annotation(mask, 1, 1, "sperm"))
    ds["annotations"].append(mask_annotation(~mask, 2, 1, "sperm"))
    assert coco_problems(ds) == []
    ds["images"][0]["height"] = 599
    ds["annotations"][0]["segmentation"]["size"] = [599, 700]
    ds["annotations"][0]["bbox"] = [0, 0, 1, 1]
    assert coco_problems(ds) == [
        "annotation 1: compressed RLE counts do not decode (its runs add up to 420000 pixels, "
        "not 599 x 700 = 419300)",
        "annotation 2: bbox [0.0, 0.0, 700.0, 600.0] (x, y, width, height) lies outside image 1 "
        "(width 700, height 599)",
        "annotation 2: RLE size [600, 700] (height, width) does not match image 1 "
        "(height 599, width 700)",
    ]


# --------------------------------------------------------------------------------------------
# One error for everything, grouping


def test_many_problems_in_one_single_line_error(ds):
    ds["images"][0].pop("width")
    _ann(ds, 2)["category_id"] = 9
    _ann(ds, 5)["segmentation"] = [[1, 2, 3, 4]]
    _ann(ds, 6)["score"] = "x\ny"
    with pytest.raises(CocoFormatError) as info:
        validate_coco(ds, "labels.json")
    err = info.value
    assert isinstance(err, SpermInputError) and isinstance(err, ValueError)
    assert err.problems == [
        "image 1: missing width",
        "annotation 2: category_id 9 is not a known category",
        "annotation 5: polygon with 2 points (needs at least 3)",
        "annotation 6: score 'x\\ny' is not a finite number",
    ]
    message = str(err)
    assert "\n" not in message
    assert message == (
        "Cannot import 'labels.json': 4 problems: image 1: missing width; annotation 2: "
        "category_id 9 is not a known category; annotation 5: polygon with 2 points (needs at "
        "least 3); annotation 6: score 'x\\ny' is not a finite number. Fix the file or export it "
        "again from napari-sperm."
    )
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == message and again.problems == err.problems


def test_message_shows_at_most_eight_problems(ds):
    ds["images"][0]["frame"] = -1
    ds["images"][1]["width"] = 0
    ds["categories"][0]["name"] = None
    _ann(ds, 1)["iscrowd"] = 2
    _ann(ds, 2)["score"] = None
    _ann(ds, 3)["attributes"] = None
    _ann(ds, 4)["image_id"] = 7
    _ann(ds, 5)["category_id"] = 7
    _ann(ds, 6)["bbox"] = [0, 0, 0, 0]
    with pytest.raises(CocoFormatError) as info:
        validate_coco(ds, "x.json")
    err = info.value
    assert err.problems == [
        "image 1: frame -1 is not a non-negative integer",
        "image 2: width 0 is not a positive integer",
        "category 1: name is null, not a string",
        "annotation 1: iscrowd 2 is not 0 or 1",
        "annotation 2: score null is not a finite number",
        "annotation 3: attributes is null, not a JSON object",
        "annotation 4: image_id 7 is not an image",
        "annotation 5: category_id 7 is not a known category",
        "annotation 6: bbox [0, 0, 0, 0] has zero or negative width or height",
    ]
    message = str(err)
    assert message.startswith("Cannot import 'x.json': 9 problems: image 1: frame -1")
    assert "annotation 6" not in message
    assert message.endswith(
        "annotation 5: category_id 7 is not a known category (and 1 more). "
        "Fix the file or export it again from napari-sperm."
    )


def test_one_problem_is_singular(ds):
    ds["images"][0]["frame"] = -1
    with pytest.raises(CocoFormatError, match=r"^Cannot import '<dataset>': 1 problem: image 1"):
        validate_coco(ds)


def test_repeated_problems_are_grouped(ds):
    template = _ann(ds, 1)
    ds["annotations"] = []
    for ann_id in range(3, 503):
        ann = copy.deepcopy(template)
        ann["id"] = ann_id
        ann["bbox"] = [50.0 + ann_id % 3, 10, 20, 5]  # sticks out on the right, differently
        ds["annotations"].append(ann)
    assert coco_problems(ds) == [
        "annotations 3, 4, 5, ... (500 in all): bbox lies outside its image"
    ]


def test_grouped_problems_keep_a_shared_detail(ds):
    for ann in ds["annotations"]:
        ann["category_id"] = 9
    del ds["annotations"][2]["id"]
    assert coco_problems(ds) == [
        "annotations 1, 2 and at index 2, ... (7 in all): category_id 9 is not a known category",
        "annotation at index 2: missing id",
    ]


def test_small_groups_list_every_id(ds):
    for ann_id in (2, 3, 5, 7):
        _ann(ds, ann_id)["iscrowd"] = 3
    assert coco_problems(ds) == ["annotations 2, 3, 5, 7: iscrowd 3 is not 0 or 1"]


# --------------------------------------------------------------------------------------------
# Image files


def test_check_files_reports_missing_image_files(ds, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.tif").write_bytes(b"")
    ds["images"][0]["file_name"] = "images/a.tif"
    ds["images"][1]["file_name"] = "images/b.tif"
    for k in range(3, 9):
        ds["images"].append(dict(ds["images"][1], id=k, file_name=f"images/c{k}.tif"))
    ds["images"].append(dict(ds["images"][1], id=20, file_name=str(tmp_path / "abs.tif")))
    ds["images"].append(dict(ds["images"][1], id=21, file_name=str(tmp_path / "images" / "a.tif")))
    assert coco_problems(ds) == []  # files are not looked at unless asked
    problems = coco_problems(ds, base_dir=tmp_path, check_files=True)
    assert problems == [
        f"image files 'images/b.tif', 'images/c3.tif', 'images/c4.tif', ... (7 in all) not found (looked in {tmp_path.resolve()} and the current folder)",
        f"image file '{tmp_path / 'abs.tif'}' not found",
    ]
    with pytest.raises(CocoFormatError, match="not found"):
        validate_coco(ds, "x.json", base_dir=str(tmp_path), check_files=True)


def test_check_files_single_missing_file(ds, tmp_path):
    ds["images"][1]["file_name"] = "images/a.tif"
    (tmp_path / "stack.tif").write_bytes(b"")
    assert coco_problems(ds, base_dir=tmp_path, check_files=True) == [
        f"image file 'images/a.tif' not found (looked in {tmp_path.resolve()} and the current folder)"
    ]


# --------------------------------------------------------------------------------------------
# looks_like_coco


def test_looks_like_coco(ds, tmp_path):
    coco = tmp_path / "labels.json"
    coco.write_text(json.dumps(ds, indent=1))
    assert looks_like_coco(coco)
    assert looks_like_coco(str(coco))

    upper = tmp_path / "LABELS.JSON"
    upper.write_text(json.dumps({"categories": [], "images": []}))
    assert looks_like_coco(upper)

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"foo": 1}))
    assert not looks_like_coco(other)

    array = tmp_path / "array.json"
    array.write_text(json.dumps(["images", "annotations"]))
    assert not looks_like_coco(array)

    text = tmp_path / "labels.txt"
    text.write_text(json.dumps(ds))
    assert not looks_like_coco(text)

    folder = tmp_path / "folder.json"
    folder.mkdir()
    assert not looks_like_coco(folder)
    assert not looks_like_coco(tmp_path)
    assert not looks_like_coco(tmp_path / "missing.json")
    assert not looks_like_coco([str(coco)])
    assert not looks_like_coco(None)


def test_looks_like_coco_reads_only_the_start(tmp_path):
    late = tmp_path / "late.json"
    late.write_text('{"info": "' + "x" * (1 << 20) + '", "images": [], "annotations": []}')
    assert not looks_like_coco(late)
    early = tmp_path / "early.json"
    early.write_text(
        '{"images": [], "annotations": [], "info": "' + "x" * (2 << 20) + '"'
    )  # broken JSON
    assert looks_like_coco(early)


# --------------------------------------------------------------------------------------------
# Scale (the time is measured in benchmarks/coco_io.py, not asserted here)


def test_fifty_thousand_annotations_validate():
    rng = np.random.default_rng(1)
    ds = new_dataset("speed")
    ds["images"] = [
        {"id": k, "width": 640, "height": 480, "file_name": "s.tif", "frame": k - 1}
        for k in range(1, 51)
    ]
    pool = []
    for _ in range(50):
        mask = np.zeros((480, 640), bool)
        y, x = rng.integers(0, 440, 1)[0], rng.integers(0, 600, 1)[0]
        yy, xx = np.ogrid[:480, :640]
        mask |= (yy - y - 20) ** 2 / 60 + (xx - x - 20) ** 2 / 300 < 1
        pool.append(mask_annotation(mask, 1, 1, "head", {"sperm_id": 1}, 0.9))
    anns = []
    for ann_id in range(1, 50_001):
        ann = dict(pool[ann_id % 50], id=ann_id, image_id=ann_id % 50 + 1)
        anns.append(ann)
    ds["annotations"] = anns
    assert coco_problems(ds) == []
    anns[777]["segmentation"] = dict(
        anns[777]["segmentation"], counts=anns[777]["segmentation"]["counts"] + "0"
    )
    (problem,) = coco_problems(ds)
    assert problem.startswith(
        "annotation 778: compressed RLE counts do not decode (its runs add up to"
    )
