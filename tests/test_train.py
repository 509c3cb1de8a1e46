"""Retraining: COCO data loading and pairing, short training runs that lower the loss and write
loadable weights and a report, resume, head-only data, and bad datasets stopped before training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sperm.cli import main
from napari_sperm.detection import load_detector
from napari_sperm.detection.model import SpermNet
from napari_sperm.detection.train import augmented_crop, collate, focal_loss, pick_level, reg_loss
from napari_sperm.io.errors import SpermInputError
from napari_sperm.synthetic import write_dataset
from napari_sperm.training import (
    TrainSettings,
    check_output,
    iter_train,
    iter_train_from_coco,
    load_training_set,
    resume_path,
    split_by_image,
    train,
)
from napari_sperm.training.dataset import cells_from_annotations, owning_level

TINY = {"widths": [8, 8, 16, 16, 16], "dec": 8, "head": 8}


def tiny(**kw) -> TrainSettings:
    base = dict(
        init="scratch", arch=TINY, epochs=2, steps_per_epoch=4, batch_size=4, crop=128, lr=5e-3
    )
    base.update(kw)
    return TrainSettings(**base)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trainset")
    return write_dataset(root / "ph", "phase-high", 4, seed=31, n_sperm=12)


def _copy(src: Path, dst: Path, edit=None) -> Path:
    shutil.copytree(src.parent, dst)
    path = dst / "annotations.json"
    if edit is not None:
        ds = json.loads(path.read_text())
        edit(ds)
        path.write_text(json.dumps(ds))
    return path


def _fixed_batch_loss(model: SpermNet, ts, seed: int = 123) -> float:
    rng = np.random.default_rng(seed)
    samples = []
    for k in range(8):
        im = ts.images[k % len(ts.images)]
        rec = {"levels": im.levels, "boxes": im.boxes}
        samples.append(augmented_crop(rec, pick_level(im.level_weights, rng), 128, rng))
    x, heat, ind, reg, mask, wt = collate(samples, 128)
    model.eval()
    with torch.no_grad():
        ho, ro = model(x)
        return float(focal_loss(ho, heat) + reg_loss(ro, ind, reg, mask, wt))


# -- default recipe -------------------------------------------------------------------------------


def test_default_recipe_batches_follow_the_modality_mix(monkeypatch):
    # scripts/train_detector.py --mix: modalities are drawn in proportion to their weights.
    from collections import Counter

    from napari_sperm.detection import train as recipe
    from napari_sperm.detection.datacache import MODALITY_LEVELS

    monkeypatch.setattr(recipe, "augmented_crop", lambda rec, *args: rec["modality"])
    monkeypatch.setattr(recipe, "collate", lambda samples, size: samples)
    cache = {m: [{"modality": m}] for m in MODALITY_LEVELS}
    rng = np.random.default_rng(0)
    mixed = Counter(recipe.sample_batch(cache, 4000, 64, rng, mix={"brightfield": 3, "stained": 0}))
    assert mixed["stained"] == 0
    assert 2.6 < mixed["brightfield"] / mixed["phase-low"] < 3.4
    assert 0.8 < mixed["phase-high"] / mixed["phase-low"] < 1.25
    equal = Counter(recipe.sample_batch(cache, 4000, 64, rng))
    assert all(900 < equal[m] < 1100 for m in MODALITY_LEVELS)


# -- data -----------------------------------------------------------------------------------------


def test_pairing_by_group_then_by_containment():
    anns = [
        {"category_id": 2, "bbox": [10, 10, 8, 8], "attributes": {"sperm_id": 5}},
        {"category_id": 1, "bbox": [0, 0, 100, 100], "attributes": {"sperm_id": 7}},
        {"category_id": 1, "bbox": [5, 5, 40, 40], "attributes": {"sperm_id": 5}},
        {"category_id": 2, "bbox": [60, 60, 10, 6]},  # no group: inside the 100 px box
        {"category_id": 2, "bbox": [300, 300, 9, 9]},  # no cell anywhere: head only
        {"category_id": 1, "bbox": [500, 500, 50, 50]},  # a cell without a head
        {"category_id": 3, "bbox": [0, 0, 5, 5]},  # tails are not trained on
    ]
    boxes, unpaired = cells_from_annotations(anns)
    assert unpaired == 1
    assert boxes.shape == (3, 10)
    np.testing.assert_allclose(boxes[0, 4:8], [5, 5, 40, 40])  # same sperm_id
    np.testing.assert_allclose(boxes[1, 4:8], [0, 0, 100, 100])  # contains the head centre
    assert boxes[2, 9] == 0.0 and boxes[0, 9] == boxes[1, 9] == 1.0  # head only: no cell weight
    np.testing.assert_allclose(boxes[:, 8], [8, 10, 9])  # head length: the longer box side


def test_owning_level_follows_the_detector_bounds():
    assert [owning_level(v) for v in (10, 16.9, 17, 57.9, 58, 90)] == [0, 0, 1, 1, 2, 2]


def test_load_training_set_reads_boxes_and_levels(dataset):
    ts = load_training_set(dataset, keep_pixels=True)
    gt = json.loads(dataset.read_text())
    n_heads = sum(1 for a in gt["annotations"] if a["category_id"] == 2)
    assert len(ts.images) == 4 and ts.n_heads == n_heads and ts.has_cells
    im = ts.images[0]
    assert im.pixels.shape == im.shape == (480, 640)
    # phase-high heads (~40 px) are owned by level 1; levels 0 and 2 are trained less often
    assert max(im.level_weights, key=im.level_weights.get) == 1
    assert set(im.levels) == {0, 1, 2}
    assert im.levels[1].shape == (3, 240, 320) and im.levels[1].dtype == np.float16


def test_split_by_image_is_disjoint_reproducible_and_checked():
    tr, va = split_by_image(10, 0.2, seed=3)
    assert sorted(tr + va) == list(range(10)) and len(va) == 2
    assert split_by_image(10, 0.2, seed=3) == (tr, va)
    assert split_by_image(2, 0.9)[0]  # always one image left for training
    with pytest.raises(SpermInputError, match="at least 2 images"):
        split_by_image(1)


def test_bad_datasets_stop_before_training(dataset, tmp_path):
    def missing(ds):
        ds["images"][1]["file_name"] = "images/nowhere.png"

    with pytest.raises(SpermInputError, match="nowhere.png"):
        load_training_set(_copy(dataset, tmp_path / "a", missing))

    def empty(ds):
        ds["annotations"] = []

    with pytest.raises(SpermInputError, match="no head annotations"):
        load_training_set(_copy(dataset, tmp_path / "b", empty))

    def renamed(ds):
        for c in ds["categories"]:
            c["name"] = {"head": "Kopf", "sperm": "Spermium", "tail": "Schwanz"}[c["name"]]

    path = _copy(dataset, tmp_path / "c", renamed)
    with pytest.raises(SpermInputError, match="--category-map"):
        load_training_set(path)
    ts = load_training_set(path, {"kopf": "head", "spermium": "sperm"}, ignore_unknown=True)
    assert ts.n_heads > 0 and ts.has_cells
    assert ts.category_map["dropped"]  # the tails were left out, and counted

    def no_images(ds):
        ds["images"], ds["annotations"] = [], []

    with pytest.raises(SpermInputError, match="no images"):
        load_training_set(_copy(dataset, tmp_path / "d", no_images))


# -- training -------------------------------------------------------------------------------------


def test_short_training_lowers_the_loss_and_writes_weights_and_report(dataset, tmp_path):
    out = tmp_path / "model.pt"
    settings = tiny(epochs=3, steps_per_epoch=10, lr=1e-2)
    ts = load_training_set(dataset)
    torch.manual_seed(settings.seed)
    before = _fixed_batch_loss(SpermNet(**TINY), ts)  # the same initialisation as training uses
    result = train(
        ts.subset([0, 1, 2]), load_training_set(dataset, keep_pixels=True), out, settings
    )
    assert result.weights == out and out.is_file()
    det = load_detector(out, "cpu")
    after = _fixed_batch_loss(det.model, ts)
    assert after < 0.8 * before, (before, after)
    rep = json.loads(result.report.read_text())
    assert result.report == tmp_path / "model.json"
    assert rep["epochs_run"] == 3 and len(rep["history"]) == 3
    assert {"head_AP50", "head_AR100", "sperm_AP50"} <= set(rep["final"])
    assert rep["train_data"]["images"] == 3 and rep["val_data"]["images"] == 4
    assert rep["settings"]["steps_per_epoch"] == 10 and rep["init"] == "scratch"
    assert not resume_path(out).exists()  # the checkpoint goes when training ends
    dets = det.detect(np.zeros((64, 64), np.uint8))
    assert len(dets) == 1


def test_split_is_recorded_and_head_only_data_trains(dataset, tmp_path):
    def heads_only(ds):
        ds["annotations"] = [a for a in ds["annotations"] if a["category_id"] == 2]

    path = _copy(dataset, tmp_path / "h", heads_only)
    gen = iter_train_from_coco(path, tmp_path / "m.pt", settings=tiny(epochs=1))
    texts = []
    while True:
        try:
            texts.append(next(gen)[2])
        except StopIteration as stop:
            result = stop.value
            break
    rep = result.summary
    assert rep["classes_trained"] == ["head"]
    assert set(rep["final"]) == {"head_AP50", "head_AP", "head_AR100"}
    assert "held out" in rep["val_data"]["how"]
    names = set(rep["train_data"]["image_names"]) | set(rep["val_data"]["image_names"])
    assert len(names) == 4 and not set(rep["train_data"]["image_names"]) & set(
        rep["val_data"]["image_names"]
    )
    assert any("validation head AP50" in t for t in texts)


def test_interrupted_training_resumes(dataset, tmp_path):
    out = tmp_path / "r.pt"
    ts = load_training_set(dataset)
    val = load_training_set(dataset, keep_pixels=True)
    s = tiny(epochs=2, steps_per_epoch=3)
    gen = iter_train(ts, val, out, s)
    for _done, _total, _text, kind in gen:
        if kind == "epoch":
            break  # stop after the first epoch's checkpoint
    gen.close()
    assert resume_path(out).is_file() and not out.exists()
    with pytest.raises(SpermInputError, match="--resume"):
        check_output(out)
    check_output(out, resume=True)
    with pytest.raises(SpermInputError, match="other data or settings"):
        train(ts, val, out, tiny(epochs=2, steps_per_epoch=4), resume=True)
    result = train(ts, val, out, s, resume=True)
    assert [h["epoch"] for h in result.summary["history"]] == [1, 2]
    assert out.is_file() and not resume_path(out).exists()


def test_train_command_end_to_end(dataset, tmp_path, capsys):
    out = tmp_path / "cli.pt"
    args = ["train", str(dataset), "-o", str(out), "--init", "scratch", "--epochs", "1"]
    args += ["--steps-per-epoch", "2", "--batch-size", "2", "-q"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "validation head AP50" in printed and out.is_file()
    assert (tmp_path / "cli.json").is_file()
    # no silent overwrite; fine-tune from the new file
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    init = ["--init", str(out), "--val", str(dataset), "--force"]
    assert main([*args[:2], "-o", str(tmp_path / "ft.pt"), *init, *args[6:]]) == 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--epochs", "0"], "--epochs"),
        (["--init", "missing.pt"], "missing.pt"),
        (["--category-map", "Foo=bar"], "bar"),
        (["-o", "model.txt"], ".pt"),
    ],
)
def test_train_command_bad_input_is_one_line(dataset, tmp_path, capsys, extra, message):
    args = ["train", str(dataset), "-o", str(tmp_path / "x.pt"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()
