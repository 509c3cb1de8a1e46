"""The tail network: shipped weights on fresh seeded fields, the probability-to-mask step, loading
errors, a short training run that learns, and the tail finder through segment() and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_sperm.cli import main
from napari_sperm.detection import FrameDetections
from napari_sperm.io.errors import SpermInputError
from napari_sperm.segmentation.params import TailMaskParams
from napari_sperm.segmentation.segment import segment
from napari_sperm.segmentation.tail_mask import tail_mask
from napari_sperm.segmentation.tail_net_mask import tail_mask_from_probability, tail_mask_net
from napari_sperm.segmentation.tailnet import TailNet, load_tail_net, save_tail_net
from napari_sperm.segmentation.tailnet.train import (
    _batch,
    field_arrays,
    loss_fn,
    pixel_iou,
    train_tail_net,
)

# Pixel IoU of the shipped network on fresh fields (seed 7), well below what
# benchmarks/segment_accuracy.py and the training report reach; the ridge filter must do worse.
NET_FLOORS = {"stained": 0.6, "phase-high": 0.6, "brightfield": 0.45, "phase-low": 0.4}


def _truth(modality: str, seed: int, n_sperm: int | None = None):
    from napari_sperm.synthetic import make_field

    f = make_field(modality, seed=seed, n_sperm=n_sperm)
    cells = [s for s in f.sperm if s.head.area > 0]
    heads = np.zeros(f.shape, np.int32)
    tails = np.zeros(f.shape, bool)
    for s in f.sperm:
        if s.head.area:
            s.head.paste(heads, s.sperm_id)
        if s.tail.area:
            s.tail.paste(tails)
    return f, cells, heads, tails


def _iou(a, b) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


@pytest.mark.parametrize("modality", list(NET_FLOORS))
def test_shipped_network_finds_tail_pixels_better_than_the_ridge_filter(modality):
    f, _, heads, truth = _truth(modality, seed=7)
    finder = load_tail_net(device="cpu")
    prob = finder.probability(f.image)
    assert prob.shape == f.shape and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    net = tail_mask_net(f.image, heads, finder=finder)
    ridge = tail_mask(f.image, heads)
    excluded = tail_mask_from_probability(prob, heads, exclude_heads=True)
    assert not (excluded & (heads > 0)).any()
    assert _iou(net, truth) >= NET_FLOORS[modality]
    assert _iou(net, truth) > _iou(ridge, truth)


def test_probability_to_mask_keeps_lines_and_drops_heads_and_specks():
    prob = np.zeros((120, 160), np.float32)
    prob[60:62, 20:140] = 0.9  # a tail, 120 px
    prob[10:13, 10:14] = 0.9  # a speck
    prob[59:64, 15:25] = 0.8  # runs into the head
    heads = np.zeros(prob.shape, np.int32)
    heads[55:68, 5:20] = 3
    mask = tail_mask_from_probability(prob, heads, head_length=15.0)
    assert mask[60:62, 30:140].all()
    assert not mask[10:13, 10:14].any()
    assert mask[59:64, 15:20].all()  # the network's tail over the head is kept...
    cut = tail_mask_from_probability(prob, heads, head_length=15.0, exclude_heads=True)
    assert not (cut & (heads > 0)).any() and cut[60:62, 30:140].all()  # ...unless asked
    # hysteresis: a faint stretch joined to a confident one is kept, a faint island is not
    prob[100, 20:140] = 0.35
    prob[100, 60:70] = 0.9
    prob[110, 20:140] = 0.35
    both = tail_mask_from_probability(prob, head_length=15.0, low_threshold=0.3)
    assert both[100, 20:140].all() and not both[110].any()
    assert not tail_mask_from_probability(prob, head_length=15.0)[100, 20:59].any()
    # a higher threshold drops everything
    assert not tail_mask_from_probability(prob, heads, head_length=15.0, threshold=0.95).any()
    with pytest.raises(SpermInputError, match="2-D"):
        tail_mask_from_probability(prob[None])
    with pytest.raises(SpermInputError, match="shape"):
        tail_mask_from_probability(prob, heads[:10])
    with pytest.raises(SpermInputError, match="head_length"):
        tail_mask_from_probability(prob, head_length=-1.0)


def test_faint_stretch_between_two_pieces_is_joined_without_widening():
    prob = np.zeros((120, 200), np.float32)
    prob[59:62, 10:80] = 0.9  # a tail, 3 px wide ...
    prob[59:62, 80:100] = 0.35  # ... fading for 20 px ...
    prob[59:62, 100:190] = 0.9  # ... and on again
    prob[58, 30:60] = 0.4  # a faint rim along the first piece
    prob[62:64, 150:170] = 0.35
    prob[30:33, 20:190] = 0.9  # another tail, with a faint stretch that leads nowhere
    prob[30:33, 190:200] = 0.35
    params = TailMaskParams()
    mask = tail_mask_from_probability(prob, head_length=15.0, params=params)
    gap = mask[40:80, 80:100]
    assert gap.any(axis=0).all()  # every column of the gap is crossed ...
    assert gap.sum() <= 22  # ... by a line about one pixel wide, not the 3-px faint band
    lab, n = ndi.label(mask[40:80], np.ones((3, 3), bool))
    assert n == 1  # one tail
    assert not mask[58, 30:60].any() and not mask[62:64, 150:170].any()  # no widening
    assert not mask[30:33, 191:].any()  # a faint end is not grown
    off = tail_mask_from_probability(
        prob, head_length=15.0, params=TailMaskParams(net_bridge_threshold=None)
    )
    assert not off[40:80, 80:100].any() and ndi.label(off[40:80], np.ones((3, 3), bool))[1] == 2
    deeper = prob.copy()
    deeper[59:62, 88:92] = 0.1  # the stretch fades below the bridge threshold: left open
    assert not tail_mask_from_probability(deeper, head_length=15.0)[40:80, 88:92].any()
    with pytest.raises(ValueError, match="net_bridge_threshold"):
        TailMaskParams(net_bridge_threshold=1.5)


def test_any_dtype_and_rgb_frames_give_the_same_map():
    f, _, _, _ = _truth("phase-high", seed=8, n_sperm=6)
    finder = load_tail_net(device="cpu")
    base = finder.probability(f.image)
    as16 = finder.probability(f.image.astype(np.uint16) * 257)
    asf = finder.probability(f.image.astype(np.float32) / 255.0)
    rgb = finder.probability(np.repeat(f.image[..., None], 3, axis=-1))
    for other in (as16, asf, rgb):
        assert np.abs(other - base).max() < 1e-3


def test_large_frames_run_in_tiles_that_agree_with_one_pass(monkeypatch):
    from napari_sperm.segmentation.tailnet import infer

    f, _, _, _ = _truth("phase-high", seed=9, n_sperm=8)
    finder = load_tail_net(device="cpu")
    whole = finder.probability(f.image)
    monkeypatch.setattr(infer, "TILE", 200)
    tiled = finder.probability(f.image)
    # away from the frame border tiles see the same context (64 px margins)
    assert np.abs(tiled - whole)[8:-8, 8:-8].max() < 0.05
    assert ((tiled >= 0.5) == (whole >= 0.5)).mean() > 0.999


def test_bad_weights_are_one_clear_line(tmp_path):
    with pytest.raises(SpermInputError, match="no such file"):
        load_tail_net(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(SpermInputError, match="not a readable weights file"):
        load_tail_net(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(SpermInputError, match="not a napari-sperm-tailnet file"):
        load_tail_net(other)
    wrong = tmp_path / "wrong.pt"
    save_tail_net(TailNet([4, 8, 8, 8]), wrong, {"arch": {"widths": [4, 8, 8, 16]}})
    with pytest.raises(SpermInputError, match="do not fit"):
        load_tail_net(wrong)


def test_a_short_training_run_learns_and_writes_loadable_weights(tmp_path):
    torch.manual_seed(0)
    cache = {"phase-high": [field_arrays("phase-high", 3_000_000 + i) for i in range(2)]}
    val = {"phase-high": [field_arrays("phase-high", 2_500_000)]}
    x, y = _batch(cache, 8, 96, np.random.default_rng(5))
    untrained = TailNet([8, 8, 16, 16])
    untrained.eval()
    with torch.no_grad():
        before = float(loss_fn(untrained(x), y))
    model, report = train_tail_net(
        cache,
        val,
        steps=60,
        batch=8,
        size=96,
        lr=1e-2,
        val_every=30,
        arch={"widths": [8, 8, 16, 16]},
        log=lambda line: None,
    )
    with torch.no_grad():
        after = float(loss_fn(model(x), y))
    assert after < 0.8 * before
    assert [h["step"] for h in report["history"]] == [30, 60]
    path = tmp_path / "tn.pt"
    save_tail_net(model, path, {"arch": {"widths": [8, 8, 16, 16]}, "threshold": 0.4})
    finder = load_tail_net(path, device="cpu")
    assert finder.threshold == 0.4
    img, truth = val["phase-high"][0]
    assert pixel_iou(finder.probability(np.moveaxis(img.astype(np.float32), 0, -1)), truth) > 0.1


def test_segment_uses_the_network_by_default_and_the_ridge_filter_on_request():
    f, cells, _, _ = _truth("brightfield", seed=11, n_sperm=8)
    boxes = np.array([s.head_box() for s in cells], float)
    det = FrameDetections(
        boxes, np.ones(len(cells)), np.full(len(cells), 2), [s.sperm_id for s in cells]
    )
    by_net = segment(f.image, det)[0]
    by_ridge = segment(f.image, det, tail_finder="ridge")[0]

    def median_tail_iou(res):
        out = []
        for s in cells:
            rec = next((r for r in res.sperm if r.sperm_id == s.sperm_id), None)
            if s.tail.area < 20:
                continue
            pred = rec.tail.to_full(f.shape) if rec is not None and rec.tail is not None else None
            out.append(0.0 if pred is None else _iou(pred, s.tail.to_full(f.shape)))
        return float(np.median(out))

    assert median_tail_iou(by_net) >= 0.6
    assert median_tail_iou(by_net) > median_tail_iou(by_ridge)
    with pytest.raises(SpermInputError, match="no such file"):
        segment(f.image, det, tail_finder="/no/such/tailnet.pt")


def test_segment_command_records_and_switches_the_tail_finder(tmp_path, capsys):
    from napari_sperm.synthetic import write_dataset

    data = write_dataset(tmp_path / "d", "phase-high", 1, seed=12, n_sperm=6).parent
    out = tmp_path / "net.json"
    assert main(["segment", str(data / "images"), "-o", str(out), "-q"]) == 0
    assert json.loads(out.read_text())["info"]["tail_finder"] == "net"
    out2 = tmp_path / "ridge.json"
    assert (
        main(["segment", str(data / "images"), "-o", str(out2), "-q", "--tail-finder", "ridge"])
        == 0
    )
    assert json.loads(out2.read_text())["info"]["tail_finder"] == "ridge"
    capsys.readouterr()
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    code = main(
        [
            "segment",
            str(data / "images"),
            "-o",
            str(tmp_path / "x.json"),
            "--tail-weights",
            str(bad),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "tail-network weights" in err[0]


def test_flip_averaging_flips_with_the_frame_and_is_the_mean_of_the_copies():
    from napari_sperm.detection.normalize import normalize_frame
    from napari_sperm.segmentation.tailnet.infer import FLIPS, probability_from_normalised

    f, _, _, truth = _truth("brightfield", seed=13, n_sperm=6)
    img = f.image[:200, :264]  # sides not multiples of 8: the padding is one-sided
    finder = load_tail_net(device="cpu")
    assert finder.flips == 4 and FLIPS == (1, 2, 4, 8)
    once = finder.with_flips(1)
    assert once.net is finder.net and finder.flips == 4  # a view, not a copy or a change
    p1 = once.probability(img)
    # a single pass is not exactly flip-equivariant; 4 and 8 copies are
    assert np.abs(once.probability(img[:, ::-1])[:, ::-1] - p1).max() > 1e-3
    for k in (4, 8):
        pk = finder.probability(img, flips=k)
        for flipped, back in (
            (img[:, ::-1], lambda p: p[:, ::-1]),
            (img[::-1], lambda p: p[::-1]),
            (img[::-1, ::-1], lambda p: p[::-1, ::-1]),
        ):
            assert np.abs(back(finder.probability(flipped, flips=k)) - pk).max() < 1e-5
    assert (
        np.abs(finder.probability(img, flips=8) - finder.probability(img.T, flips=8).T).max() < 1e-5
    )
    # 2 copies: the frame and its half turn, averaged
    x = normalize_frame(img)
    half = probability_from_normalised(once.net, np.ascontiguousarray(x[:, ::-1, ::-1]))[::-1, ::-1]
    np.testing.assert_allclose(finder.probability(img, flips=2), (p1 + half) / 2, atol=1e-6)
    # averaging does not lose the tails: the mask is at least as good on this field
    assert (
        _iou(finder.probability(f.image) >= 0.5, truth)
        >= _iou(once.probability(f.image) >= 0.5, truth) - 0.01
    )
    for bad in (3, 0, True, "4"):
        with pytest.raises(SpermInputError, match="flips must be one of 1, 2, 4, 8"):
            finder.with_flips(bad)


def test_tail_flips_through_segment_and_the_command(tmp_path, capsys):
    from napari_sperm.cli import build_parser
    from napari_sperm.segmentation.segment import resolve_tail_finder
    from napari_sperm.segmentation.tailnet.infer import DEFAULT_FLIPS, FLIPS
    from napari_sperm.synthetic import write_dataset

    parse = build_parser().parse_args
    assert parse(["segment", "in", "-o", "out.json"]).tail_flips == DEFAULT_FLIPS
    for k in FLIPS:
        assert parse(["segment", "in", "-o", "out.json", "--tail-flips", str(k)]).tail_flips == k
    assert resolve_tail_finder("net").flips == DEFAULT_FLIPS
    assert resolve_tail_finder("net", flips=1).flips == 1
    assert resolve_tail_finder("ridge", flips=2) is None
    with pytest.raises(SpermInputError, match="flips"):
        segment(np.zeros((64, 64), np.uint8), np.zeros((0, 4)), tail_flips=5)

    data = write_dataset(tmp_path / "d", "phase-high", 1, seed=14, n_sperm=6).parent
    runs = {}
    for k in (1, 4):
        out = tmp_path / f"x{k}.json"
        argv = ["segment", str(data / "images"), "-o", str(out), "-q", "--tail-flips", str(k)]
        assert main(argv) == 0
        runs[k] = json.loads(out.read_text())
        assert runs[k]["info"]["tail_flips"] == k
    # the masks differ a little, the cells do not
    heads = [[a["bbox"] for a in runs[k]["annotations"] if a["category_id"] == 2] for k in (1, 4)]
    assert heads[0] == heads[1]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["segment", str(data / "images"), "-o", str(tmp_path / "y.json"), "--tail-flips", "3"])
    assert exc.value.code == 2 and "--tail-flips" in capsys.readouterr().err
