"""The synthetic generator: determinism, ground-truth consistency, modality realism, stacks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_sperm.synthetic import (
    MODALITIES,
    Realism,
    get_modality,
    make_field,
    make_stack,
    modality_names,
)

EIGHT = np.ones((3, 3), bool)


def test_modalities_listed():
    assert modality_names() == ["stained", "phase-low", "phase-high", "brightfield"]
    with pytest.raises(ValueError, match="choose one of"):
        get_modality("fluorescence")


@pytest.mark.parametrize("modality", list(MODALITIES))
def test_same_seed_same_field(modality):
    a = make_field(modality, seed=11, n_sperm=12)
    b = make_field(modality, seed=11, n_sperm=12)
    assert np.array_equal(a.image, b.image)
    assert [t.sperm_id for t in a.sperm] == [t.sperm_id for t in b.sperm]
    for ta, tb in zip(a.sperm, b.sperm):
        assert np.array_equal(ta.head.to_full(a.shape), tb.head.to_full(b.shape))
        assert np.array_equal(ta.tail.to_full(a.shape), tb.tail.to_full(b.shape))
        assert np.allclose(ta.centreline, tb.centreline)
    c = make_field(modality, seed=12, n_sperm=12)
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("modality", list(MODALITIES))
def test_size_dtype_and_counts(modality):
    m = get_modality(modality)
    fld = make_field(modality, seed=3, n_sperm=9)
    assert fld.image.dtype == np.uint8
    assert fld.image.shape == (m.shape + (3,) if m.rgb else m.shape)
    # Every requested cell has its head (at least partly) in the frame.
    heads = [t for t in fld.sperm if t.head.area > 0]
    assert len(heads) == 9
    assert sorted(t.sperm_id for t in fld.sperm) == list(range(1, 10))
    # Default counts fall in the modality's range.
    for seed in range(3):
        n = sum(t.head.area > 0 for t in make_field(modality, seed=seed).sperm)
        assert m.n_sperm[0] <= n <= m.n_sperm[1]


def _inside(inner, outer):
    x, y, w, h = inner
    X, Y, W, H = outer
    return X <= x and Y <= y and x + w <= X + W and y + h <= Y + H


@pytest.mark.parametrize("modality", list(MODALITIES))
def test_ground_truth_consistent(modality):
    fld = make_field(modality, seed=5, n_sperm=15)
    h, w = fld.shape
    for t in fld.sperm:
        hb, sb = t.head_box(), t.sperm_box()
        assert sb is not None
        if hb is not None:
            assert _inside(hb, sb)
            head = t.head.to_full(fld.shape)
            ys, xs = np.nonzero(head)
            assert _inside(
                (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1), hb
            )
        if t.tail.area:
            assert _inside(t.tail_box(), sb)
            n_parts = ndi.label(t.tail.to_full(fld.shape), structure=EIGHT)[1]
            pts = t.centreline
            fully_inside = (
                pts[:, 0].min() > 4
                and pts[:, 1].min() > 4
                and pts[:, 0].max() < h - 5
                and pts[:, 1].max() < w - 5
            )
            if fully_inside:
                assert n_parts == 1, f"tail of sperm {t.sperm_id} is broken into {n_parts} pieces"
            else:
                # A tail leaving and re-entering the frame may show as several pieces, each at a border.
                lab, n = ndi.label(t.tail.to_full(fld.shape), structure=EIGHT)
                if n > 1:
                    border = np.zeros(fld.shape, bool)
                    border[[0, -1], :] = border[:, [0, -1]] = True
                    assert all((border & (lab == k)).any() for k in range(1, n + 1))
        # The tail starts at the back of the head: its first centreline point is next to the head.
        if t.head.area and t.tail.area:
            head = ndi.binary_dilation(t.head.to_full(fld.shape), iterations=3)
            r, c = np.rint(t.centreline[0]).astype(int)
            if 0 <= r < h and 0 <= c < w:
                assert head[r, c]


def test_tail_masks_keep_crossing_pixels():
    fld = make_field("phase-high", seed=2, n_sperm=10, crossings=3)
    assert fld.crossings
    ids = {t.sperm_id: t for t in fld.sperm}
    a, b = fld.crossings[0]
    both = ids[a].tail.to_full(fld.shape) & ids[b].tail.to_full(fld.shape)
    assert both.any()  # the crossing pixel is in both masks
    labels = fld.tail_labels()
    assert set(np.unique(labels[both])) <= {a, b}


@pytest.mark.parametrize("modality", list(MODALITIES))
@pytest.mark.parametrize("angles", [(10.0, 30.0), (60.0, 90.0)])
def test_requested_crossings_present(modality, angles):
    stack = make_stack(modality, 1, seed=8, n_sperm=12, crossings=2, crossing_angle_deg=angles)
    assert len(stack.forced_crossings) == 2
    fld = stack.field(0)
    by_id = {t.sperm_id: t for t in fld.sperm}
    for a, b in stack.forced_crossings:
        assert (a, b) in fld.crossings
        # The crossing angle is within the requested range (tangents where the centrelines meet).
        pa, pb = by_id[a].centreline, by_id[b].centreline
        d = np.hypot(*(pa[:, None, :] - pb[None, :, :]).transpose(2, 0, 1))
        i, j = np.unravel_index(np.argmin(d), d.shape)
        assert d[i, j] < 1.0
        ta = pa[min(i + 4, len(pa) - 1)] - pa[max(i - 4, 0)]
        tb = pb[min(j + 4, len(pb) - 1)] - pb[max(j - 4, 0)]
        cos = abs(ta @ tb) / (np.linalg.norm(ta) * np.linalg.norm(tb))
        angle = np.degrees(np.arccos(np.clip(cos, 0, 1)))
        lo, hi = angles
        assert lo - 8 <= min(angle, 180 - angle) <= hi + 8


def _background(fld):
    occupied = np.zeros(fld.shape, bool)
    for t in fld.sperm:
        t.head.paste(occupied)
        t.tail.paste(occupied)
    return ~ndi.binary_dilation(occupied, iterations=12)


def test_stained_looks_like_stained_smear():
    fields = [make_field("stained", seed=s) for s in range(10)]
    areas, widths, lengths = [], [], []
    crossed = 0
    for fld in fields:
        img = fld.image.astype(float)
        bg = img[_background(fld)].mean(axis=0)
        assert bg.min() > 190  # light background
        crossed += bool(fld.crossings)
        for t in fld.sperm:
            head = t.head.to_full(fld.shape)
            if t.head.area and t.head_box()[2] > 5 and not t.edge_on:
                # Count only heads fully inside the frame for size statistics.
                x, y, w, h = t.head_box()
                if x > 0 and y > 0 and x + w < fld.shape[1] and y + h < fld.shape[0]:
                    areas.append(t.head.area)
                r, g, b = img[head].mean(axis=0)
                assert g < r - 10 and g < b - 10, "heads are purple (red and blue above green)"
                assert img[head].mean() < bg.mean() - 60, "heads are dark"
            tail = t.tail.to_full(fld.shape) & ~ndi.binary_dilation(head, iterations=4)
            if tail.sum() > 200:
                r, g, b = img[tail].mean(axis=0)
                assert b > r, "flagella are blue-grey"
                inside = (
                    (t.centreline[:, 0] >= 0)
                    & (t.centreline[:, 0] < fld.shape[0])
                    & (t.centreline[:, 1] >= 0)
                    & (t.centreline[:, 1] < fld.shape[1])
                )
                visible_length = inside.sum() * 0.5
                lengths.append(visible_length)
                widths.append(t.tail.area / max(visible_length, 1.0))
        assert 4 <= sum(t.head.area > 0 for t in fld.sperm) <= 14
    assert 3000 <= np.median(areas) <= 4300  # about 88 x 53 px ellipses: about 3,600 px
    assert 3.0 <= np.median(widths) <= 5.5
    assert 330 <= np.median(lengths) <= 560  # median visible flagellum about 440 px
    assert np.percentile(lengths, 10) < 250 and np.percentile(lengths, 90) > 550
    assert 3 <= crossed <= 9  # about half the fields have crossing tails


@pytest.mark.parametrize(
    ("modality", "head_area", "n_range"),
    [
        ("phase-low", (55, 95), (100, 500)),
        ("phase-high", (800, 1150), (19, 55)),
        ("brightfield", (400, 700), (10, 40)),
    ],
)
def test_grey_modalities_dark_heads_with_halos(modality, head_area, n_range):
    fld = make_field(modality, seed=4)
    img = fld.image.astype(float)
    assert img.ndim == 2
    bg = np.median(img[_background(fld)])
    heads = np.zeros(fld.shape, bool)
    areas = []
    for t in fld.sperm:
        if t.head.area:
            t.head.paste(heads)
            if not t.edge_on:
                areas.append(t.head.area)
    assert n_range[0] <= len(areas) + sum(t.edge_on for t in fld.sperm) <= n_range[1] + 5
    assert head_area[0] <= np.median(areas) <= head_area[1]
    assert img[heads].mean() < bg - 12, "heads are darker than the background"
    if get_modality(modality).optics == "phase":
        occupied = np.zeros(fld.shape, bool)
        for t in fld.sperm:
            t.tail.paste(occupied)
        ring = ndi.binary_dilation(heads, iterations=2) & ~heads & ~occupied
        assert img[ring].mean() > bg + 8, "phase-contrast heads have bright halos"


def test_phase_low_is_dense_with_crossings():
    fld = make_field("phase-low", seed=1)
    assert len(fld.sperm) >= 100
    assert len(fld.crossings) >= 20


def test_clean_realism_is_flat_and_noise_free():
    fld = make_field("phase-high", seed=1, n_sperm=0, realism=Realism.clean())
    assert fld.image.std() == 0


def test_edge_on_heads_are_narrow():
    m = get_modality("phase-high")
    stack = make_stack(m, 1, seed=0, n_sperm=200)
    edge = [t for t in stack.sperm[0] if t.edge_on]
    flat = [t for t in stack.sperm[0] if not t.edge_on]
    assert edge and flat
    assert np.mean([t.head_width for t in edge]) < 0.6 * np.mean([t.head_width for t in flat])


def test_stack_swims():
    stack = make_stack("phase-high", n_frames=6, seed=3, n_sperm=20)
    assert stack.images.shape == (6, 480, 640)
    assert not np.array_equal(stack.images[0], stack.images[5])
    first = {t.sperm_id: t for t in stack.sperm[0]}
    last = {t.sperm_id: t for t in stack.sperm[5]}
    moved = []
    for sid, t in first.items():
        if sid in last:
            d = np.hypot(*np.subtract(last[sid].head_centre, t.head_centre))
            moved.append(d)
            if d > 1:  # a motile cell advances roughly along where its head pointed
                step = np.subtract(last[sid].head_centre, t.head_centre)[::-1]  # (x, y)
                ang = np.radians(t.angle_deg)
                assert step @ np.array([np.cos(ang), np.sin(ang)]) > 0
    assert sum(d > 5 for d in moved) >= 5  # most cells swim
    assert sum(d == 0 for d in moved) >= 1  # some are immotile
    # Tails beat: a motile cell's tail shape changes relative to its head.
    sid = next(
        s
        for s, t in first.items()
        if s in last and np.hypot(*np.subtract(last[s].head_centre, t.head_centre)) > 5
    )
    a = first[sid].centreline - first[sid].centreline[0]
    b = last[sid].centreline - last[sid].centreline[0]
    assert not np.allclose(a, b, atol=1.0)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="n_frames"):
        make_stack("phase-high", n_frames=0)
    with pytest.raises(ValueError, match="crossing_angle_deg"):
        make_stack("phase-high", n_frames=1, crossing_angle_deg=(50, 10))


def test_modality_mix_parsing_and_weights():
    from napari_sperm.synthetic import modality_weights, parse_modality_mix

    assert parse_modality_mix("") is None
    mix = parse_modality_mix("brightfield=3,stained=0")
    assert mix == {"brightfield": 3.0, "stained": 0.0}
    names = ["brightfield", "phase-high", "phase-low", "stained"]
    assert modality_weights(names, mix).tolist() == [0.6, 0.2, 0.2, 0.0]
    assert modality_weights(names, None).tolist() == [0.25] * 4
    for bad, words in [
        ("foo=1", "unknown modality 'foo'"),
        ("brightfield=x", "not name=number"),
        ("brightfield=-1", ">= 0"),
        ("brightfield=0,phase-high=0,phase-low=0,stained=0", "every modality weight 0"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse_modality_mix(bad, names)
