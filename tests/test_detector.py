"""The shipped sperm detector: weights, accuracy on fresh synthetic fields, inputs, API, errors.

Accuracy thresholds are margins below what benchmarks/detect_accuracy.py measured (see
docs/model-card.md); fields use seeds < 1000, never used in training (training seeds >= 1_000_000).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sperm.detection import (
    DEFAULT_WEIGHTS,
    Detector,
    FrameDetections,
    available_devices,
    detect,
    load_detector,
    resolve_device,
)
from napari_sperm.io.errors import SpermInputError
from napari_sperm.synthetic import make_field

torch.set_num_threads(2)

# (modality, seeds, min head recall, min head precision, min whole-cell recall) at IoU 0.5 and
# score 0.3. Measured with the shipped weights on these seeds: phase-low 0.88 / 0.98 / 0.40,
# phase-high 0.93 / 0.93 / 0.54, brightfield 0.65 / 0.91 / 0.31, stained 0.91 / 1.0 / 0.45.
ACCURACY = {
    "phase-low": ([901], 0.80, 0.90, 0.30),
    "phase-high": ([902, 903], 0.85, 0.85, 0.40),
    "brightfield": ([904, 905], 0.55, 0.80, 0.20),
    "stained": ([906], 0.80, 0.85, 0.30),
}


@pytest.fixture(scope="module")
def det() -> Detector:
    return load_detector(None, "cpu")


@pytest.fixture(scope="module")
def phase_high():
    return make_field("phase-high", seed=907)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xywh boxes a (N, 4) and b (M, 4)."""
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    return inter / (a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter + 1e-9)


def _greedy_matches(pred: np.ndarray, gt: np.ndarray, thr: float = 0.5) -> int:
    if len(pred) == 0 or len(gt) == 0:
        return 0
    iou = _iou(pred, gt)
    n = 0
    used = np.zeros(len(gt), bool)
    for i in range(len(pred)):  # pred sorted by score
        cand = np.where(~used & (iou[i] >= thr))[0]
        if len(cand):
            used[cand[np.argmax(iou[i, cand])]] = True
            n += 1
    return n


def test_default_weights_load(det):
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size < 5_000_000
    assert det.device == torch.device("cpu")
    ckpt = torch.load(DEFAULT_WEIGHTS, weights_only=True)
    assert ckpt["format"] == "napari-sperm-detector" and ckpt["version"] == 1
    assert min(ckpt["training"]["fields"].values()) > 0


@pytest.mark.parametrize("modality", list(ACCURACY))
def test_accuracy_on_fresh_fields(det, modality):
    seeds, min_rec, min_prec, min_sperm_rec = ACCURACY[modality]
    tp = n_pred = n_gt = sperm_tp = 0
    for seed in seeds:
        fld = make_field(modality, seed=seed)
        (res,) = det.detect(fld.image)
        order = np.argsort(-res.scores, kind="stable")
        res = res.select(order)
        heads, cells = res.classes == 2, res.classes == 1
        gt_heads = np.array([t.head_box() for t in fld.sperm if t.head_box()], float)
        gt_cells = np.array([t.sperm_box() for t in fld.sperm if t.sperm_box()], float)
        tp += _greedy_matches(res.boxes[heads], gt_heads)
        sperm_tp += _greedy_matches(res.boxes[cells], gt_cells)
        n_pred += int(heads.sum())
        n_gt += len(gt_heads)
    assert tp / n_gt >= min_rec, (tp, n_gt)
    assert tp / max(1, n_pred) >= min_prec, (tp, n_pred)
    assert sperm_tp / n_gt >= min_sperm_rec, (sperm_tp, n_gt)


def test_heads_and_cells_linked_by_id(det, phase_high):
    (res,) = det.detect(phase_high.image)
    assert len(res) > 0
    heads, cells = res.select(res.classes == 2), res.select(res.classes == 1)
    assert sorted(heads.sperm_ids) == sorted(cells.sperm_ids)
    assert len(set(heads.sperm_ids.tolist())) == len(heads)
    by_id = {int(i): (b, s) for b, s, i in zip(cells.boxes, cells.scores, cells.sperm_ids)}
    for b, s, i in zip(heads.boxes, heads.scores, heads.sperm_ids):
        cb, cs = by_id[int(i)]
        assert cs == s
        # the whole-cell box contains its head box
        assert cb[0] <= b[0] + 1e-3 and cb[1] <= b[1] + 1e-3
        assert cb[0] + cb[2] >= b[0] + b[2] - 1e-3 and cb[1] + cb[3] >= b[1] + b[3] - 1e-3


def test_boxes_enclose_whole_pixels_inside_the_frame(det, phase_high):
    (res,) = det.detect(phase_high.image)
    h, w = phase_high.shape
    b = res.boxes
    np.testing.assert_array_equal(b, np.rint(b))
    assert (b[:, :2] >= 0).all() and (b[:, 2:] >= 1).all()
    assert (b[:, 0] + b[:, 2] <= w).all() and (b[:, 1] + b[:, 3] <= h).all()


def test_box_edges_snap_to_the_nearest_pixel_boundary():
    # columns: score, head x y w h, cell x0 y0 x1 y1, rest unused
    d = np.zeros((4, 14), np.float32)
    d[0, :9] = [0.9, 3.4, 5.6, 4.2, 2.3, 1.2, 2.7, 20.6, 9.4]  # head 3.4..7.6 x 5.6..7.9
    d[1, :9] = [0.8, 10.2, 10.1, 0.2, 0.3, 10.0, 10.0, 10.4, 10.4]  # smaller than a pixel
    d[2, :9] = [0.7, 60.0, 5.0, 4.0, 4.0, 60.0, 5.0, 64.0, 9.0]  # outside a 50 px wide frame
    d[3, :9] = [0.6, -2.6, 47.0, 5.0, 5.0, -3.0, 40.0, 3.0, 52.0]  # cut by the frame's corner
    out = Detector._clip(d, 50, 50)
    assert len(out) == 3
    np.testing.assert_array_equal(out[0, 1:9], [3, 6, 5, 2, 1, 3, 21, 9])
    np.testing.assert_array_equal(out[1, 1:9], [10, 10, 1, 1, 10, 10, 11, 11])
    np.testing.assert_array_equal(out[2, 1:9], [0, 47, 2, 3, 0, 40, 3, 50])


def test_input_types_give_detections(det, phase_high):
    img = phase_high.image
    (ref,) = det.detect(img)
    n_ref = int((ref.classes == 2).sum())
    as_u16 = img.astype(np.uint16) * 257
    as_float = img.astype(np.float32) / 255.0
    as_float[:3, :3] = np.nan
    rgb = np.repeat(img[..., None], 3, axis=-1)
    for variant in (as_u16, as_float, rgb):
        (res,) = det.detect(variant)
        n = int((res.classes == 2).sum())
        assert abs(n - n_ref) <= max(2, 0.1 * n_ref), (variant.dtype, variant.shape, n, n_ref)


def test_stack_and_progress(det):
    frames = np.stack([make_field("phase-high", seed=s).image for s in (908, 909, 910)])
    gen = det.iter_detect(frames, batch_size=2)
    progress = []
    while True:
        try:
            progress.append(next(gen))
        except StopIteration as stop:
            results = stop.value
            break
    assert progress == [(2, 3), (3, 3)]
    assert [r.frame for r in results] == [0, 1, 2]
    assert all(isinstance(r, FrameDetections) and len(r) > 0 for r in results)
    again = det.detect(frames, batch_size=3)
    for a, b in zip(results, again):
        assert np.allclose(a.boxes, b.boxes, atol=0.05)


def test_dask_stack(det):
    da = pytest.importorskip("dask.array")
    frames = np.stack([make_field("phase-high", seed=s).image for s in (911, 912)])
    res = det.detect(da.from_array(frames, chunks=(1, 480, 640)))
    assert [r.frame for r in res] == [0, 1]


def test_tiling_matches_untiled(phase_high):
    """Force 256 px tiles on a 640x480 frame: same heads as without tiles.

    The margin (96 px; 128 by default) must hold the context the network looks at around a head:
    with 64 px, 2 of the 31 heads here change under the shipped weights (a head cut by the frame
    edge, and one box to IoU 0.70).
    """
    whole = load_detector(None, "cpu")
    tiled = load_detector(None, "cpu")
    tiled.inference["tile"] = 256
    tiled.inference["tile_margin"] = 96
    (a,) = whole.detect(phase_high.image)
    (b,) = tiled.detect(phase_high.image)
    ha, hb = a.boxes[a.classes == 2], b.boxes[b.classes == 2]
    assert abs(len(ha) - len(hb)) <= max(2, 0.05 * len(ha))
    matched = _greedy_matches(hb, ha, 0.7)
    assert matched >= 0.95 * len(ha)


def test_detect_function_single_image(phase_high):
    res = detect(phase_high.image, score_threshold=0.5, device="cpu")
    assert len(res) == 1 and res[0].frame == 0
    assert np.all(res[0].scores >= 0.5)


def test_bad_weights_raise(tmp_path):
    with pytest.raises(SpermInputError, match="--weights"):
        load_detector(tmp_path / "missing.pt")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"this is not a torch file")
    with pytest.raises(SpermInputError, match="--weights"):
        load_detector(bad)
    wrong = tmp_path / "wrong.pt"
    torch.save({"format": "something-else", "state_dict": {}}, wrong)
    with pytest.raises(SpermInputError, match="--weights"):
        load_detector(wrong)
    mismatched = tmp_path / "mismatched.pt"
    torch.save(
        {
            "format": "napari-sperm-detector",
            "version": 1,
            "config": {},
            "state_dict": {"x": torch.zeros(1)},
        },
        mismatched,
    )
    with pytest.raises(SpermInputError, match="--weights"):
        load_detector(mismatched)


def test_empty_input_raises(det):
    for empty in (
        np.zeros((0, 64, 64), np.uint8),
        np.zeros((2, 0, 64), np.uint8),
        np.zeros((0, 0), np.uint8),
    ):
        with pytest.raises(SpermInputError):
            det.detect(empty)


def test_devices():
    devs = available_devices()
    assert devs[:2] == ["auto", "cpu"]
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(SpermInputError, match="cpu"):
        resolve_device("tpu")
    if "cuda" not in devs:
        with pytest.raises(SpermInputError, match="available"):
            resolve_device("cuda")


def test_flipped_copies_flip_with_the_frame(det):
    # sides that stay multiples of 32 down the pyramid: the padding does not break the symmetry
    img = make_field("phase-high", seed=908).image[:384, :512]

    def table(res):
        heads, cells = res.boxes[res.classes == 2], res.boxes[res.classes == 1]
        order = np.lexsort((heads[:, 1], heads[:, 0]))
        return heads[order], cells[order], res.scores[res.classes == 2][order]

    def mirror(boxes, w):
        out = boxes.copy()
        out[:, 0] = w - boxes[:, 0] - boxes[:, 2]
        return out

    for k in (4, 8):
        h, c, s = table(det.detect(img, 0.3, flips=k)[0])
        h2, c2, s2 = table(det.detect(img[:, ::-1], 0.3, flips=k)[0])
        assert len(h) > 10 and len(h) == len(h2)
        o = np.lexsort((mirror(h2, 512)[:, 1], mirror(h2, 512)[:, 0]))
        np.testing.assert_allclose(mirror(h2, 512)[o], h, atol=0.05)
        np.testing.assert_allclose(mirror(c2, 512)[o], c, atol=0.05)
        np.testing.assert_allclose(s2[o], s, atol=1e-4)
    # 8 copies include the transposes: the transposed frame gives the transposed boxes
    h, c, _ = table(det.detect(img, 0.3, flips=8)[0])
    ht, ct, _ = table(det.detect(np.ascontiguousarray(img.T), 0.3, flips=8)[0])
    swap = [1, 0, 3, 2]
    o = np.lexsort((ht[:, swap][:, 1], ht[:, swap][:, 0]))
    np.testing.assert_allclose(ht[:, swap][o], h, atol=0.05)
    np.testing.assert_allclose(ct[:, swap][o], c, atol=0.05)
    # one pass is not exactly symmetric, so the averaging is what makes it so
    one = det.detect(img, 0.3, flips=1)[0]
    one_m = det.detect(img[:, ::-1], 0.3, flips=1)[0]
    a, b = one.scores[one.classes == 2], one_m.scores[one_m.classes == 2]
    assert len(a) != len(b) or np.abs(np.sort(a) - np.sort(b)).max() > 1e-3


def test_flips_find_the_same_heads_and_bad_values_are_refused(det, phase_high):
    assert det.flips == 2
    gt = np.array([t.head_box() for t in phase_high.sperm if t.head_box()], float)
    found = {}
    for k in (1, 4):
        res = det.detect(phase_high.image, 0.3, flips=k)[0]
        res = res.select(np.argsort(-res.scores, kind="stable"))
        heads = res.boxes[res.classes == 2]
        found[k] = (_greedy_matches(heads, gt), len(heads))
    # the average finds the true heads one pass finds (or more), without more false ones
    assert found[4][0] >= found[1][0] - 1 and found[4][0] >= 0.85 * len(gt), (found, len(gt))
    assert found[4][1] - found[4][0] <= found[1][1] - found[1][0] + 1, found
    for bad in (3, 0, True):
        with pytest.raises(SpermInputError, match="detector flips must be one of 1, 2, 4, 8"):
            det.detect(phase_high.image, 0.3, flips=bad)
    with pytest.raises(SpermInputError, match="detector flips"):
        load_detector(None, "cpu", flips=5)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(48, 64), (48, 64, 3), (48, 64, 4), (48, 64, 1)])
def test_integer_frames_normalise_exactly_as_their_float_values(dtype, shape):
    """8- and 16-bit frames go through a lookup table; it must give the float path's values."""
    from napari_sperm.detection.normalize import normalize_frame

    rng = np.random.default_rng(7)
    top = 255 if dtype == np.uint8 else 4095
    img = rng.integers(0, top + 1, shape).astype(dtype)
    img[:4] = 0  # a dark band, so the low percentile sits on the darkest level
    out = normalize_frame(img)
    assert out.shape == (3, 48, 64) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, normalize_frame(img.astype(np.float32)))
    assert -0.5 <= out.min() and out.max() <= 1.5
    if len(shape) == 2 or shape[-1] == 1:
        assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])


def test_integer_frame_percentiles_are_numpys_exactly():
    """8- and 16-bit frames take their percentiles from a count of each level; they must be
    numpy.percentile's on the same subsample, bit for bit, also for constant, tiny and
    subsampled frames."""
    from napari_sperm.detection import normalize as nz

    rng = np.random.default_rng(11)
    sizes = [1, 2, 3, 7, 199, 1000, 4096, nz._MAX_SAMPLES + 1, 640 * 480]
    for k, n in enumerate(sizes * 4):
        dtype = (np.uint8, np.uint16)[k % 2]
        top = int(rng.integers(1, np.iinfo(dtype).max + 1))
        x = rng.integers(0, top + 1, n).astype(dtype)
        if k % 3 == 0:
            x[:] = x[0]
        flat = x if n <= nz._MAX_SAMPLES else x[:: n // nz._MAX_SAMPLES + 1]
        want = np.percentile(flat.astype(np.float32), [nz.LOW_PERCENTILE, nz.HIGH_PERCENTILE])
        assert nz._percentiles(x) == (float(want[0]), float(want[1])), (n, dtype)


def test_frames_without_finite_pixels_are_refused_by_name(det):
    good = make_field("phase-high", seed=2).image.astype(np.float32)
    good[:20, :30] = np.nan  # part NaN: fine
    assert len(det.detect(good, 0.3)[0].boxes) > 0
    with pytest.raises(SpermInputError, match="the image: it has no finite pixels"):
        det.detect(np.full((64, 80), np.nan, np.float32))
    stack = np.stack([good, np.full_like(good, np.inf), good])
    with pytest.raises(SpermInputError, match="frame 1: it has no finite pixels"):
        det.detect(stack)
