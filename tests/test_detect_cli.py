"""`napari-sperm detect` end to end with the shipped weights: files in, COCO predictions out."""

from __future__ import annotations

import json

import pytest

from napari_sperm.cli import main


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    out = tmp_path_factory.mktemp("stacks")
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
                "2",
                "--seed",
                "11",
                "-q",
            ]
        )
        == 0
    )
    return out


def test_detect_writes_coco_predictions_and_evaluate_reads_them(stacks, tmp_path, capsys):
    pred = tmp_path / "pred.json"
    assert main(["detect", str(stacks / "images"), "-o", str(pred), "-q"]) == 0
    ds = json.loads(pred.read_text())
    assert [c["name"] for c in ds["categories"]] == ["sperm", "head", "tail"]
    assert [(im["file_name"], im["frame"]) for im in ds["images"]] == [
        (str(stacks / "images" / "phase-high_0001.tif"), 0),
        (str(stacks / "images" / "phase-high_0001.tif"), 1),
        (str(stacks / "images" / "phase-high_0002.tif"), 0),
        (str(stacks / "images" / "phase-high_0002.tif"), 1),
    ]
    assert all(im["width"] == 640 and im["height"] == 480 for im in ds["images"])
    anns = ds["annotations"]
    assert anns and [a["id"] for a in anns] == list(range(1, len(anns) + 1))
    assert {a["category_id"] for a in anns} == {1, 2}
    for a in anns:
        assert (
            a["iscrowd"] == 0
            and 0 <= a["score"] <= 1
            and a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3], rel=1e-3)
        )
    # Every head has the whole-cell box of the same sperm id in its frame.
    heads = {(a["image_id"], a["attributes"]["sperm_id"]) for a in anns if a["category_id"] == 2}
    cells = {(a["image_id"], a["attributes"]["sperm_id"]) for a in anns if a["category_id"] == 1}
    assert heads == cells
    capsys.readouterr()
    scores = tmp_path / "scores.json"
    assert (
        main(
            [
                "evaluate",
                "--gt",
                str(stacks / "annotations.json"),
                "--pred",
                str(pred),
                "--json",
                str(scores),
            ]
        )
        == 0
    )
    result = json.loads(scores.read_text())
    assert result["images"] == 4
    assert set(result["categories"]) == {"head", "sperm"}


def test_detect_refuses_to_overwrite_and_reports_bad_input(stacks, tmp_path, capsys):
    out = tmp_path / "pred.json"
    out.write_text("{}")
    assert main(["detect", str(stacks / "images"), "-o", str(out)]) == 2
    assert out.read_text() == "{}"
    assert main(["detect", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "x.json")]) == 2
    assert (
        main(
            [
                "detect",
                str(stacks / "images"),
                "-o",
                str(tmp_path / "y.json"),
                "--weights",
                str(tmp_path / "nope.pt"),
            ]
        )
        == 2
    )
    assert (
        main(["detect", str(stacks / "images"), "-o", str(tmp_path / "z.json"), "--device", "tpu"])
        == 2
    )
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4
    assert (
        "--force" in errors[0]
        and "missing.tif" in errors[1]
        and "nope.pt" in errors[2]
        and "tpu" in errors[3]
    )
    assert not (tmp_path / "x.json").exists()


def test_detect_flips_are_recorded_and_checked(stacks, tmp_path, capsys):
    from napari_sperm.detection.detector import DEFAULT_FLIPS

    out = {}
    for k in (None, 1):
        pred = tmp_path / f"pred{k}.json"
        extra = [] if k is None else ["--flips", str(k)]
        assert main(["detect", str(stacks / "images"), "-o", str(pred), "-q", *extra]) == 0
        out[k] = json.loads(pred.read_text())
    assert out[None]["info"]["detector_flips"] == DEFAULT_FLIPS
    assert out[1]["info"]["detector_flips"] == 1
    # one pass and the default average find about as many heads; their scores differ
    n = {k: sum(a["category_id"] == 2 for a in ds["annotations"]) for k, ds in out.items()}
    assert abs(n[None] - n[1]) <= 0.2 * n[1]
    assert [a["score"] for a in out[None]["annotations"]] != [
        a["score"] for a in out[1]["annotations"]
    ]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(stacks / "images"), "-o", str(tmp_path / "x.json"), "--flips", "3"])
    assert exc.value.code == 2 and "--flips" in capsys.readouterr().err


def test_detect_refine_boxes_fits_heads_and_is_recorded(stacks, tmp_path, capsys):
    out = {}
    for name, extra in (
        ("default", []),
        (True, ["--refine-boxes"]),
        (False, ["--no-refine-boxes"]),
    ):
        pred = tmp_path / f"pred{name}.json"
        assert main(["detect", str(stacks / "images"), "-o", str(pred), "-q", *extra]) == 0
        out[name] = json.loads(pred.read_text())
    assert out[False]["info"]["refine_boxes"] is False
    assert out[True]["info"]["refine_boxes"] is True
    # fitted head boxes are the default
    assert out.pop("default")["annotations"] == out[True]["annotations"]
    heads = {k: [a for a in ds["annotations"] if a["category_id"] == 2] for k, ds in out.items()}
    # the same detections (scores, ids), other head boxes
    assert [a["score"] for a in heads[True]] == [a["score"] for a in heads[False]]
    moved = sum(a["bbox"] != b["bbox"] for a, b in zip(heads[True], heads[False]))
    assert moved >= 0.5 * len(heads[False]) > 0
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    assert "--no-refine-boxes" in capsys.readouterr().out
