"""Category maps: parsing the command-line form and rewriting datasets onto sperm/head/tail."""

from __future__ import annotations

import copy

import pytest

from napari_sperm.category_map import map_categories, parse_category_map
from napari_sperm.coco import CATEGORIES
from napari_sperm.io import SpermInputError


def test_parse_forms():
    assert parse_category_map(None) == {}
    assert parse_category_map("") == {}
    assert parse_category_map([]) == {}
    assert parse_category_map("NAME=sperm,NAME2=head") == {"name": "sperm", "name2": "head"}
    assert parse_category_map("A,B=head C=tail") == {"a": "head", "b": "head", "c": "tail"}
    assert parse_category_map(["Nucleus=head", " Flagellum = TAIL "]) == {
        "nucleus": "head",
        "flagellum": "tail",
    }
    # a name with an inner space, and the same pair twice is not ambiguous
    assert parse_category_map(["sperm head=head", "Sperm Head=head"]) == {"sperm head": "head"}


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("Nucleus=nucleus", r"unknown target category 'nucleus'; use one of sperm, head, tail"),
        ("A=head,B", r"'B' has no target"),
        ("=head", r"no source category name"),
        ("A=", r"unknown target category ''"),
        ("A=head a=tail", r"'a' is mapped to both head and tail"),
        (["A=head", "B,A=sperm"], r"'a' is mapped to both head and sperm"),
    ],
)
def test_parse_errors_are_one_line(spec, match):
    with pytest.raises(SpermInputError, match=match) as info:
        parse_category_map(spec)
    assert "\n" not in str(info.value)


def _dataset():
    return {
        "images": [{"id": 1, "file_name": "a.png"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 1, 1]},
            {"id": 2, "image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1]},
            {"id": 3, "image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1]},
            {"id": 4, "image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1]},
            {"id": 5, "image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1]},
        ],
        "categories": [
            {"id": 7, "name": "Nucleus"},
            {"id": 9, "name": "Flagellum"},
            {"id": 4, "name": "Sperm"},  # already one of ours (any case)
            {"id": 5, "name": "Debris"},
        ],
    }


def test_map_categories_rewrites_ids_without_mutating_input():
    ds = _dataset()
    before = copy.deepcopy(ds)
    out, report = map_categories(ds, parse_category_map("nucleus=head flagellum=tail debris=sperm"))
    assert ds == before
    assert out["categories"] == CATEGORIES
    assert [a["category_id"] for a in out["annotations"]] == [2, 3, 3, 1, 1]
    assert [a["id"] for a in out["annotations"]] == [1, 2, 3, 4, 5]
    assert report == {
        "mapped": {"Nucleus": "head", "Flagellum": "tail", "Sperm": "sperm", "Debris": "sperm"},
        "dropped": {},
    }
    assert out["images"] == ds["images"] and out["images"][0] is not ds["images"][0]


def test_map_overrides_own_names_and_ignores_names_not_present():
    ds = _dataset()
    ds["annotations"] = [a for a in ds["annotations"] if a["category_id"] == 4]
    out, report = map_categories(ds, {"Sperm": "head", "Unused": "tail"})
    assert [a["category_id"] for a in out["annotations"]] == [2]
    assert report["mapped"] == {"Sperm": "head"}


def test_unmapped_categories_error_or_drop():
    ds = _dataset()
    with pytest.raises(SpermInputError) as info:
        map_categories(ds, {"nucleus": "head"}, what="ground truth")
    msg = str(info.value)
    assert msg.startswith("ground truth:")
    assert "'Flagellum' (2 annotations)" in msg and "'Debris' (1 annotation)" in msg
    assert "--category-map NAME=sperm|head|tail" in msg and "Nucleus" not in msg
    out, report = map_categories(ds, {"nucleus": "head"}, drop_unmapped=True)
    assert [a["id"] for a in out["annotations"]] == [1, 4]
    assert report["dropped"] == {"Flagellum": 2, "Debris": 1}


def test_unmapped_category_without_annotations_is_fine():
    ds = _dataset()
    ds["annotations"] = ds["annotations"][:1]
    out, report = map_categories(ds, {"nucleus": "head"})
    assert len(out["annotations"]) == 1 and report["dropped"] == {}


def test_malformed_datasets():
    ds = _dataset()
    ds["annotations"].append({"id": 9, "image_id": 1, "category_id": 42, "bbox": [0, 0, 1, 1]})
    with pytest.raises(SpermInputError, match=r"predictions: annotation 9 has category_id 42"):
        map_categories(ds, {}, drop_unmapped=True, what="predictions")
    no_cats = {"images": [], "annotations": []}
    with pytest.raises(SpermInputError, match=r"no 'categories' list"):
        map_categories(no_cats, {})
    with pytest.raises(SpermInputError, match=r"unknown target category 'nucleus'"):
        map_categories(_dataset(), {"a": "nucleus"})
