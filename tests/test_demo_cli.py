"""The headless main job and the command line's error handling."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from napari_sperm.cli import main
from napari_sperm.demo import run_headless
from napari_sperm.io import SpermInputError


def test_headless_demo_writes_sample_and_ground_truth(tmp_path):
    lines = []
    written = run_headless(tmp_path / "out", log=lines.append)
    assert set(written) == {
        "phase-contrast",
        "stained",
        "phase-contrast detections",
        "stained detections",
        "phase-contrast segmentation",
        "stained segmentation",
        "phase-contrast export",
        "stained export",
    }
    pred = json.loads(written["phase-contrast detections"].read_text())
    assert len(pred["images"]) == 20 and pred["annotations"]
    scores = json.loads((tmp_path / "out" / "phase-contrast" / "detection-scores.json").read_text())
    assert scores["categories"]["head"]["AP50"] > 0.8
    seg = json.loads(written["stained segmentation"].read_text())
    cats = [a["category_id"] for a in seg["annotations"]]
    assert cats.count(2) >= 3 and cats.count(3) >= 3 and cats.count(1) == cats.count(2)
    export = json.loads(written["stained export"].read_text())
    assert [a["category_id"] for a in export["annotations"]] == cats  # same cells, same order
    assert (written["stained export"].parent / export["images"][0]["file_name"]).exists()
    ds = json.loads(written["phase-contrast"].read_text())
    assert len(ds["images"]) == 20
    assert (tmp_path / "out" / "phase-contrast" / "images" / "phase-high_0001.tif").exists()
    assert any("ground truth" in line for line in lines)
    # Running again replaces its own output ...
    run_headless(tmp_path / "out", log=lines.append)


def test_headless_demo_never_replaces_foreign_data(tmp_path):
    folder = tmp_path / "out" / "stained"
    folder.mkdir(parents=True)
    (folder / "annotations.json").write_text(json.dumps({"info": {"description": "mine"}}))
    with pytest.raises(SpermInputError, match="did not write"):
        run_headless(tmp_path / "out", log=lambda _: None)
    assert json.loads((folder / "annotations.json").read_text())["info"]["description"] == "mine"


def test_cli_demo_headless(tmp_path, capsys):
    assert main(["demo", "--headless", "--out", str(tmp_path / "o")]) == 0
    assert "outputs are under" in capsys.readouterr().out


def test_cli_info_and_missing_file(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.tif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.tif" in err[0]


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "napari_sperm", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "napari-sperm" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "napari_sperm", "synth", "--help"], capture_output=True, text=True
    )
    assert "--modality" in out.stdout and "--frames" in out.stdout
