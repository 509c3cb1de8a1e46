"""Con2Dis tail clustering: API, input errors, crossings, and accuracy floors on seeded fields."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sperm.io.errors import SpermInputError
from napari_sperm.synthetic import make_field
from napari_sperm.tails import (
    Con2DisParams,
    MergeDecision,
    TailClustering,
    TailInstance,
    cluster_tails,
    iter_cluster_tails,
)
from napari_sperm.tails.published import cluster_tails_published
from napari_sperm.tails.scoring import match_iou, score_field, summarize, tail_mask_of


def _line(shape, p0, p1, width):
    """Mask of a straight band of ``width`` px from p0 to p1 (row, col)."""
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    t = np.clip(((rr - p0[0]) * d[0] + (cc - p0[1]) * d[1]) / (d @ d), 0, 1)
    dist = np.hypot(rr - (p0[0] + t * d[0]), cc - (p0[1] + t * d[1]))
    return dist <= width / 2


def _disc(shape, centre, radius):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    return np.hypot(rr - centre[0], cc - centre[1]) <= radius


def _ellipse(shape, centre, axis, a, b):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    dr, dc = rr - centre[0], cc - centre[1]
    along = dr * axis[0] + dc * axis[1]
    across = -dr * axis[1] + dc * axis[0]
    return (along / a) ** 2 + (across / b) ** 2 <= 1


def _two_tails(angle_deg, width=3.0, length=160.0, shape=(240, 240)):
    """Two straight tails crossing at their middles at ``angle_deg``; heads beyond one end."""
    c = np.array(shape, float) / 2
    lines, heads = [], np.zeros(shape, np.int32)
    for k, ang in enumerate((90.0, 90.0 + angle_deg)):
        u = np.array([np.sin(np.radians(ang)), np.cos(np.radians(ang))])  # (row, col)
        a, b = c - 0.5 * length * u, c + 0.5 * length * u
        lines.append(_line(shape, a, b, width))
        heads[_ellipse(shape, a - 10 * u, u, 10, 6)] = k + 1
    return lines, heads


# ------------------------------------------------------------------------------------------------
# API and input errors
# ------------------------------------------------------------------------------------------------


def test_api_types_and_progress():
    lines, heads = _two_tails(60)
    mask = lines[0] | lines[1]
    gen = iter_cluster_tails(mask, heads)
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as done:
            res = done.value
            break
    assert steps and steps[-1][0] == steps[-1][1]
    assert isinstance(res, TailClustering)
    assert all(isinstance(t, TailInstance) for t in res.tails)
    assert all(isinstance(m, MergeDecision) for m in res.merges)
    assert res.shape == mask.shape and res.tail_width == pytest.approx(3.0, abs=1.0)
    lab = res.labels()
    assert lab.dtype == np.int32 and lab.shape == mask.shape
    assert set(np.unique(lab)) <= {0, 1, 2}
    assert res.tail_for_head(1) is not None and res.tail_for_head(7) is None
    t = res.tail_for_head(1)
    assert t.centreline.shape[1] == 2 and t.length > 100
    assert t.pair_distance is not None and t.pair_angle_deg is not None
    assert any(m.accepted and m.reason == "head path" for m in res.merges)


@pytest.mark.parametrize(
    "mask, heads, words",
    [
        (np.zeros((4, 5, 6), bool), None, "2-D"),
        (np.zeros((20, 20), bool), None, "empty"),
        (np.full((20, 20), 0.5), None, "not binary"),
        (np.array([[0, 1], [2, 0]]), None, "not binary"),
        (np.array([[np.nan, 1.0], [0.0, 0.0]]), None, "NaN"),
        (np.ones((20, 20), bool), np.zeros((10, 10), int), "shape"),
        (np.ones((20, 20), bool), np.zeros((20, 20), bool), "label"),
    ],
)
def test_bad_input_raises_one_line(mask, heads, words):
    with pytest.raises(SpermInputError) as err:
        cluster_tails(mask, heads)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_mask_without_tails_raises():
    blob = _disc((80, 80), (40, 40), 15)
    with pytest.raises(SpermInputError, match="no tail-shaped"):
        cluster_tails(blob)


def test_accepts_0_1_ints_and_0_255_bytes():
    lines, _ = _two_tails(90)
    mask = lines[0] | lines[1]
    a = cluster_tails(mask.astype(np.uint8))
    b = cluster_tails(mask.astype(np.uint8) * 255)
    c = cluster_tails(mask.astype(float))
    assert len(a.tails) == len(b.tails) == len(c.tails) == 2


def test_params_replace_and_given_width():
    p = Con2DisParams().replace(tail_width=4.0)
    assert p.tail_width == 4.0
    with pytest.raises(TypeError):
        Con2DisParams().replace(nonsense=1)
    lines, _ = _two_tails(90)
    assert cluster_tails(lines[0] | lines[1], params=p).tail_width == 4.0


# ------------------------------------------------------------------------------------------------
# Crossings built by hand
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [90, 45, 25, 10])
def test_two_straight_tails_cross_and_pair(angle):
    lines, heads = _two_tails(angle)
    res = cluster_tails(lines[0] | lines[1], heads)
    from napari_sperm.synthetic import CropMask

    truth = [CropMask((0, 0), m) for m in lines]
    match, iou = match_iou(truth, [t.mask for t in res.tails], lines[0].shape)
    assert len(res.tails) == 2
    assert iou.min() > 0.8
    for k in range(2):
        assert res.tails[match[k]].head == k + 1


def test_vertical_tail_continues_through_crossing():
    # A vertical tail is where y-on-x slopes fail; here it must pass straight through.
    shape = (200, 200)
    vertical = _line(shape, (10, 100), (190, 100), 3)
    diagonal = _line(shape, (30, 30), (170, 170), 3)
    res = cluster_tails(vertical | diagonal)
    from napari_sperm.synthetic import CropMask

    _, iou = match_iou(
        [CropMask((0, 0), vertical), CropMask((0, 0), diagonal)], [t.mask for t in res.tails], shape
    )
    assert len(res.tails) == 2 and iou.min() > 0.8


def test_gap_is_bridged():
    shape = (120, 200)
    a = _line(shape, (60, 10), (60, 95), 3)
    b = _line(shape, (60, 104), (60, 190), 3)
    res = cluster_tails(a | b)
    assert len(res.tails) == 1
    assert any(m.reason == "gap bridge" and m.accepted for m in res.merges)
    assert res.tails[0].mask.mask.sum() > (a | b).sum()  # the gap is filled


def test_three_tails_through_one_point():
    shape = (240, 240)
    c = np.array([120.0, 120.0])
    lines = []
    for ang in (0, 60, 120):
        u = np.array([np.sin(np.radians(ang)), np.cos(np.radians(ang))])
        lines.append(_line(shape, c - 100 * u, c + 100 * u, 3))
    res = cluster_tails(lines[0] | lines[1] | lines[2])
    from napari_sperm.synthetic import CropMask

    _, iou = match_iou([CropMask((0, 0), m) for m in lines], [t.mask for t in res.tails], shape)
    assert len(res.tails) == 3 and iou.min() > 0.7


@pytest.mark.parametrize("thickness", [2, 3])
def test_thick_diagonal_tail_keeps_its_head_end(thickness):
    """Plain Zhang-Suen thinning ate a diagonal band two pixels thick away from its tip, so the
    skeleton stopped tens of pixels short of the head and the tail went unpaired."""
    shape = (140, 140)
    mask = np.zeros(shape, bool)
    for k in range(20, 120):  # a 45-degree staircase band, ``thickness`` px across each row
        mask[k, k : k + thickness] = True
    heads = np.zeros(shape, np.int32)
    heads[_ellipse(shape, (12, 12), (0.7071, 0.7071), 9, 5)] = 1
    res = cluster_tails(mask, heads)
    assert len(res.tails) == 1
    t = res.tails[0]
    assert t.head == 1
    ends = t.centreline[[0, -1]]
    assert np.hypot(*(ends[0] - (20, 20))) < 4, ends
    assert np.hypot(*(ends[1] - (119, 119 + thickness - 1))) < 4, ends


def test_path_jumps_a_gap_into_a_junction():
    """A tail that the mask loses just before a junction: beyond the gap its continuation meets a
    branch there, so the rest is one headless chain (continuation + branch) that no gap bridge
    between chain ends can reach. The path from the head jumps the gap and goes on straight."""
    shape = (200, 260)
    near = _line(shape, (100, 24), (100, 100), 3)
    far = _line(shape, (100, 114), (100, 240), 3)
    u = np.array([-np.sin(np.radians(35)), np.cos(np.radians(35))])
    branch = _line(shape, (100, 114), np.array([100, 114]) + 70 * u, 3)
    heads = np.zeros(shape, np.int32)
    heads[_ellipse(shape, (100, 13), (0, 1), 10, 6)] = 1
    res = cluster_tails(near | far | branch, heads)
    paired = [t for t in res.tails if t.head == 1]
    assert len(paired) == 1
    c = paired[0].centreline
    assert np.hypot(*(c[0] - (100, 24))) < 5, c[0]
    assert np.hypot(*(c[-1] - (100, 240))) < 5, c[-1]
    assert any(m.reason == "gap jump" and m.accepted for m in res.merges)


def test_two_tails_from_heads_share_a_stem():
    # Two heads side by side; their tails converge and run together. One-to-one matching gives the
    # stem to one tail only; the tail that starts at the other head must share it.
    shape = (240, 200)
    heads = np.zeros(shape, np.int32)
    tails = []
    for k, c0 in enumerate((70, 130)):
        top, join, end = np.array([40.0, c0]), np.array([90.0, 100.0]), np.array([230.0, 100.0])
        u = (join - top) / np.hypot(*(join - top))
        heads[_ellipse(shape, top - 11 * u, u, 10, 6)] = k + 1
        tails.append(_line(shape, top, join, 3) | _line(shape, join, end, 3))
    res = cluster_tails(tails[0] | tails[1], heads)
    from napari_sperm.synthetic import CropMask

    match, iou = match_iou([CropMask((0, 0), m) for m in tails], [t.mask for t in res.tails], shape)
    assert len(res.tails) == 2 and iou.min() > 0.9
    assert [res.tails[m].head for m in match] == [1, 2]
    assert any(m.reason == "shared stretch" for m in res.merges)


def _arc(shape, centre, radius, a0, a1, width):
    """Mask of a circular band of ``width`` px from angle a0 to a1 (radians, atan2(row, col))."""
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    d = np.hypot(rr - centre[0], cc - centre[1])
    ang = np.arctan2(rr - centre[0], cc - centre[1])
    return (np.abs(d - radius) <= width / 2) & (ang >= min(a0, a1)) & (ang <= max(a0, a1))


@pytest.mark.parametrize("cross_deg", [4, 6])
def test_curved_tail_keeps_bending_through_a_shallow_crossing(cross_deg):
    # Tail 1 bends steadily (radius 240 px); tail 2 is straight and crosses it at a few degrees on
    # the outside of the bend. Straight on, tail 1's path takes tail 2's way out (its own way bends
    # away by more than the crossing angle over the fitted distance); carried on along its bend,
    # it keeps its own.
    shape, centre, radius, w = (320, 320), np.array([330.0, 80.0]), 240.0, 3.0
    a0, ac = np.radians(-100.0), np.radians(-60.0)
    arc = _arc(shape, centre, radius, a0, np.radians(-10.0), w)
    heads = np.zeros(shape, np.int32)
    t0 = np.array([np.cos(a0), -np.sin(a0)])  # direction of travel along the arc at its start
    p0 = centre + radius * np.array([np.sin(a0), np.cos(a0)])
    heads[_ellipse(shape, p0 - 11 * t0, t0, 10, 6)] = 1
    pc = centre + radius * np.array([np.sin(ac), np.cos(ac)])
    tc = np.array([np.cos(ac), -np.sin(ac)])
    th = np.radians(-cross_deg)
    tb = np.array(
        [tc[0] * np.cos(th) - tc[1] * np.sin(th), tc[0] * np.sin(th) + tc[1] * np.cos(th)]
    )
    line = _line(shape, pc - 110 * tb, pc + 110 * tb, w)
    heads[_ellipse(shape, pc - 121 * tb, tb, 10, 6)] = 2
    from napari_sperm.synthetic import CropMask

    truth = [CropMask((0, 0), arc), CropMask((0, 0), line)]
    ious = {}
    for weight in (0.0, 1.0):
        res = cluster_tails(arc | line, heads, params=Con2DisParams(curvature_weight=weight))
        match, iou = match_iou(truth, [t.mask for t in res.tails], shape)
        assert [res.tails[m].head for m in match] == [1, 2]
        ious[weight] = iou
    assert ious[1.0].min() >= 0.8, ious
    assert ious[0.0][0] < 0.7, ious  # the case needs the bend: straight on goes wrong


def test_round_head_cut_by_border_pairs():
    # A head cut by the frame border: its moments give no usable axis; the tail still pairs.
    shape = (160, 160)
    heads = np.zeros(shape, np.int32)
    heads[_disc(shape, (150, 60), 12)] = 3
    tail = _line(shape, (137, 62), (20, 110), 3)
    res = cluster_tails(tail, heads)
    assert len(res.tails) == 1 and res.tails[0].head == 3
    assert np.hypot(*(res.tails[0].centreline[0] - (137, 62))) < 4


def test_partly_hidden_head_keeps_its_tail():
    # Head 2 lies over the front two thirds of head 1, whose visible rear is a cap wider than it is
    # long. Its tail leaves the cap straight down. The cap's axis (across the cell) says nothing
    # about the hidden head, so it must not veto the pairing, and the tail must not go to head 2
    # just because head 2's axis points the right way.
    shape = (220, 200)
    heads = np.zeros(shape, np.int32)
    heads[_ellipse(shape, (100, 100), (1, 0), 18, 9)] = 1
    heads[_ellipse(shape, (88, 100), (1, 0), 22, 14)] = 2
    tail = _line(shape, (120, 100), (210, 112), 3)
    res = cluster_tails(tail, heads)
    assert [t.head for t in res.tails] == [1]


def test_tail_ending_on_another_tail_stops_there():
    # Five plain tails 80 px long set the typical length. Tail A (head 7) comes down at 25 deg and
    # ends on tail B (head 6), which runs on for another 130 px. A 25 deg bend is within
    # max_bend_deg, so without the length rule A's path turned onto B and ran to B's end.
    shape = (260, 300)
    heads = np.zeros(shape, np.int32)
    mask = np.zeros(shape, bool)
    for i in range(5):
        y = 20 + 22 * i
        heads[_disc(shape, (y, 20), 6)] = i + 1
        mask |= _line(shape, (y, 28), (y, 108), 3)
    heads[_disc(shape, (200, 20), 6)] = 6
    mask |= _line(shape, (200, 28), (200, 250), 3)
    heads[_disc(shape, (160, 40), 6)] = 7
    a = np.radians(25.0)
    a_end = (164 + 80 * np.sin(a), 47 + 80 * np.cos(a))
    mask |= _line(shape, (164, 47), a_end, 3)

    res = cluster_tails(mask, heads)
    by_head = {t.head: t for t in res.tails}
    assert sorted(by_head) == [1, 2, 3, 4, 5, 6, 7]
    a_tail = by_head[7].centreline
    assert len(a_tail) < 90
    assert np.hypot(*(a_tail[-1] - np.array(a_end))) < 4
    assert by_head[6].centreline[-1][1] > 240  # B keeps its whole length

    off = cluster_tails(mask, heads, params=Con2DisParams(typical_length_factor=None))
    assert len({t.head: t for t in off.tails}[7].centreline) > 150  # the rule is what stops it


def test_earlier_path_gives_up_a_shared_exit_for_an_unused_one():
    # A brightfield field with shallow crossings (the benchmark's seed 1004, band 0-15 deg): at
    # two hubs a second head's path would share the exit the first took while another exit stayed
    # unused; the first path moves there instead, and two more tails get their own head.
    fld = make_field("brightfield", seed=1004, n_sperm=20, crossings=6, crossing_angle_deg=(0, 15))
    mask, heads = tail_mask_of(fld), fld.head_labels()
    on = cluster_tails(mask, heads)
    off = cluster_tails(mask, heads, params=Con2DisParams(open_exit_cost_deg=None))
    s_on = summarize([score_field(fld, on)])
    s_off = summarize([score_field(fld, off)])
    assert s_on["paired"][0] >= s_off["paired"][0] + 2, (s_on, s_off)
    assert any(m.reason == "exit swap" for m in on.merges)
    assert not any(m.reason == "exit swap" for m in off.merges)


# ------------------------------------------------------------------------------------------------
# Accuracy floors on small seeded synthetic fields (regression floors; see docs/con2dis.md for the
# full benchmark)
# ------------------------------------------------------------------------------------------------

FLOOR_FIELDS = {
    # modality: (n_sperm, crossings, seeds)
    "stained": (6, 3, (1, 2)),
    "phase-high": (12, 4, (1, 2)),
    "brightfield": (12, 4, (1, 2)),
    "phase-low": (60, 12, (1,)),
}
FLOORS = {  # modality: (crossing tails recovered, tails paired with the right head)
    # Just below the measured figures on these fields; the targets (0.90, 0.95) are not
    # reached everywhere yet (see docs/con2dis.md, "Targets not met").
    "stained": (0.9, 0.9),
    "phase-high": (0.78, 0.72),
    "brightfield": (0.9, 0.86),
    "phase-low": (0.8, 0.7),
}


@pytest.mark.parametrize("modality", list(FLOOR_FIELDS))
def test_accuracy_floors(modality):
    n, k, seeds = FLOOR_FIELDS[modality]
    ours, pub = [], []
    for seed in seeds:
        for band in ((0, 15), (15, 45), (45, 90)):
            fld = make_field(modality, seed=seed, n_sperm=n, crossings=k, crossing_angle_deg=band)
            mask, heads = tail_mask_of(fld), fld.head_labels()
            ours.append(score_field(fld, cluster_tails(mask, heads)))
    s = summarize(ours)
    cross = s["crossing"][0] / max(s["crossing"][1], 1)
    paired = s["paired"][0] / max(s["paired"][1], 1)
    assert s["crossing"][1] >= 5
    assert cross >= FLOORS[modality][0], s
    assert paired >= FLOORS[modality][1], s
    del pub


def test_ours_beats_published_on_a_crossing_field():
    fld = make_field("brightfield", seed=4, n_sperm=12, crossings=4, crossing_angle_deg=(15, 60))
    mask, heads = tail_mask_of(fld), fld.head_labels()
    ours = summarize([score_field(fld, cluster_tails(mask, heads))])
    pub_res = cluster_tails_published(mask, heads)
    assert isinstance(pub_res, TailClustering)
    pub = summarize([score_field(fld, pub_res)])
    assert ours["all"][0] > pub["all"][0]
    assert ours["paired"][0] > pub["paired"][0]


def test_head_cut_by_border_gets_the_full_head_length_allowance():
    # Head 5 lies mostly outside the frame: only its rear cap (11 px) shows. Its tail starts 18 px
    # below the cap (the midpiece faint or out of view), within the rear allowance of a whole head
    # (median length of the four whole heads) but past that of the cap's own length.
    shape = (200, 240)
    heads = np.zeros(shape, np.int32)
    for i in range(4):
        heads[_ellipse(shape, (60 + 30 * i, 40), (0, 1), 18, 9)] = i + 1
    heads[_ellipse(shape, (-8, 150), (1, 0), 18, 9)] = 5
    assert np.nonzero(heads == 5)[0].max() == 10
    tail = _line(shape, (28, 150), (190, 152), 3)
    res = cluster_tails(tail, heads)
    assert [t.head for t in res.tails] == [5]
    assert res.tails[0].pair_distance == pytest.approx(18, abs=1.5)
