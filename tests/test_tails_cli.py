"""`napari-sperm tails`: tail mask TIFF (+ head labels) in, tail labels TIFF (+ JSON records) out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_sperm.cli import main
from napari_sperm.synthetic import make_field


@pytest.fixture(scope="module")
def field():
    return make_field("brightfield", seed=5, n_sperm=8, crossings=2, crossing_angle_deg=(30, 90))


def _tail_union(f):
    mask = np.zeros(f.shape, bool)
    for s in f.sperm:
        s.tail.paste(mask)
    return mask


def test_tails_command_pairs_tails_with_their_heads(field, tmp_path, capsys):
    tails, heads = tmp_path / "tails.tif", tmp_path / "heads.tif"
    tifffile.imwrite(tails, _tail_union(field).astype(np.uint8) * 255)
    tifffile.imwrite(heads, field.head_labels().astype(np.uint16))
    out, records = tmp_path / "out.tif", tmp_path / "tails.json"
    argv = ["tails", str(tails), "--heads", str(heads), "-o", str(out), "--json", str(records)]
    assert main(argv) == 0
    assert "tails" in capsys.readouterr().out
    labels = tifffile.imread(out)
    assert labels.shape == field.shape
    cells = [s for s in field.sperm if s.tail.area >= 40 and s.head.area > 0]
    right = 0
    for s in cells:
        r0, c0 = s.tail.offset
        h, w = s.tail.mask.shape
        values = labels[r0 : r0 + h, c0 : c0 + w][s.tail.mask]
        values = values[values > 0]
        right += values.size > 0 and int(np.bincount(values).argmax()) == s.sperm_id
    assert right >= 0.8 * len(cells)
    data = json.loads(records.read_text())
    assert data["method"] == "con2dis" and len(data["frames"]) == 1
    tails_json = data["frames"][0]["tails"]
    assert len(tails_json) >= len(cells) * 0.8
    assert all(len(t["centreline_xy"]) >= 2 for t in tails_json)
    # an existing output is not replaced without --force
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0


@pytest.mark.parametrize("case", ["empty", "rgb", "heads size", "fractional"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    tails = tmp_path / "tails.tif"
    argv = ["tails", str(tails), "-o", str(tmp_path / "out.tif")]
    if case == "empty":
        tifffile.imwrite(tails, np.zeros((32, 32), np.uint8))
    elif case == "rgb":
        tifffile.imwrite(tails, np.zeros((32, 32, 3), np.uint8), photometric="rgb")
    elif case == "fractional":
        tifffile.imwrite(tails, np.full((32, 32), 0.5, np.float32))
    else:
        tifffile.imwrite(tails, np.ones((32, 32), np.uint8))
        tifffile.imwrite(tmp_path / "heads.tif", np.zeros((16, 16), np.uint16))
        argv += ["--heads", str(tmp_path / "heads.tif")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-sperm tails: error:") and "\n" not in err
    assert not (tmp_path / "out.tif").exists()
