"""The published Con2Dis rules, implemented straight, as a baseline for comparison.

Follows SpeHeaTal's ``clustering_segmentation_process`` and ``tail_recovery_process`` as summarised in
``published-methods.md`` sections 5.3 and 5.4: fixed pixel thresholds (set for 720x540 stained images),
y-on-x least-squares slopes, merging in label order (at most one merge per label per pass), tangent
merging that ignores vertical tangents, gap filling with straight 10-point lines, greedy head pairing
with the first-candidate fallback, and re-thickening to a +/-5 px square window around the centreline.

Two computations are done faster than the published code: farthest pixel pairs come from the convex
hull instead of all pairs (same values), and DBSCAN with ``min_samples=1`` (single linkage) is
approximated by connected components of the mask grown by a disc of half the radius (equal up to
pixel rounding). The timing of this baseline is therefore a lower bound on the published code's.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError, cKDTree
from skimage.morphology import disk, skeletonize

from ..synthetic.raster import CropMask
from .con2dis import check_inputs
from .params import Con2DisParams
from .results import MergeDecision, TailClustering, TailInstance

__all__ = ["cluster_tails_published"]

_EIGHT = np.ones((3, 3), bool)


def _farthest_pair(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two points of ``pts`` farthest apart (via the convex hull)."""
    if len(pts) < 2:
        return pts[0], pts[0]
    cand = pts
    if len(pts) > 3:
        try:
            cand = pts[ConvexHull(pts).vertices]
        except QhullError:  # collinear
            cand = pts[[np.argmin(pts[:, 0] + pts[:, 1]), np.argmax(pts[:, 0] + pts[:, 1])]]
            cand = np.unique(
                np.vstack([cand, pts[[pts[:, 0].argmin(), pts[:, 0].argmax()]]]), axis=0
            )
    d = ((cand[:, None, :] - cand[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(np.argmax(d), d.shape)
    return cand[i], cand[j]


def _single_linkage(mask: np.ndarray, eps: float) -> tuple[np.ndarray, int]:
    """Connected components of pixels closer than ``eps`` (DBSCAN, min_samples=1)."""
    grown = ndi.binary_dilation(mask, disk(max(int(eps // 2), 0)))
    lab, n = ndi.label(grown, _EIGHT)
    return np.where(mask, lab, 0), n


def _slope(pts: np.ndarray) -> float:
    """Least-squares slope of y (row) on x (col); inf for a vertical set."""
    x, y = pts[:, 1].astype(float), pts[:, 0].astype(float)
    vx = np.var(x)
    if vx == 0:
        return np.inf
    return float(np.mean((x - x.mean()) * (y - y.mean())) / vx)


def _acute(m1: float, m2: float) -> float:
    """Angle (deg) between two lines given by slopes; 90 when one is vertical."""
    if not np.isfinite(m1) or not np.isfinite(m2):
        return 90.0
    den = 1 + m1 * m2
    if den == 0:
        return 90.0
    return float(np.degrees(np.arctan(abs((m2 - m1) / den))))


def _prune_and_split(skel: np.ndarray) -> list[np.ndarray]:
    """Published pruning, then the junction cut: pieces as (n, 2) pixel arrays (crop coords)."""
    nb = ndi.convolve(skel.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - skel
    branch = skel & (nb >= 3)
    rest = skel & ~branch
    lab, n = ndi.label(rest, _EIGHT)
    if n:
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        near_branch = ndi.binary_dilation(branch, _EIGHT)
        nb_rest = ndi.convolve(rest.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant")
        ends = rest & (nb_rest - rest == 1)
        for k in np.flatnonzero(sizes[1:] < 8) + 1:
            comp = lab == k
            e = comp & ends
            if e.sum() != 2:
                continue
            if not np.all(near_branch[e]):
                rest[comp] = False
    skel = rest | branch
    nb = ndi.convolve(skel.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - skel
    n_end = int((skel & (nb == 1)).sum())
    if n_end == 2:
        return [np.argwhere(skel)]
    junction = skel & (nb >= 3)
    if junction.any():
        near = ndi.binary_dilation(junction, disk(3))
        skel = skel & ~near
    lab, n = ndi.label(skel, _EIGHT)
    out = []
    for k in range(1, n + 1):
        pts = np.argwhere(lab == k)
        if len(pts) >= 10:
            out.append(pts)
    if not out and n_end:
        out = [np.argwhere(skel)] if skel.any() else []
    return out


def _bls(labels: list[np.ndarray], dmax: float, nmax: float, decisions) -> list[np.ndarray]:
    """One pass of BLS(D, N): label order, at most one merge per label."""
    if len(labels) < 2:
        return labels
    slopes = [_slope(p) for p in labels]
    ends = [_farthest_pair(p) for p in labels]
    used: set[int] = set()
    merge: list[tuple[int, int]] = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            (a0, a1), (b0, b1) = ends[i], ends[j]
            combos = [(a0, a1, b0, b1), (a0, a1, b1, b0), (a1, a0, b0, b1), (a1, a0, b1, b0)]
            dists = [float(np.hypot(*(e1 - e2))) for e1, _, e2, _ in combos]
            k = int(np.argmin(dists))
            if dists[k] >= dmax:
                continue
            e1, o1, e2, o2 = combos[k]
            v1, v2 = (o1 - e1).astype(float), (o2 - e2).astype(float)
            n1, n2 = np.hypot(*v1), np.hypot(*v2)
            opp = np.degrees(np.arccos(np.clip(v1 @ v2 / max(n1 * n2, 1e-9), -1, 1)))
            phi = _acute(slopes[i], slopes[j])
            ok = phi < nmax and opp >= 90 and i not in used and j not in used
            reason = "BLS merge" if ok else "rejected: BLS"
            decisions.append(
                MergeDecision((i, j), (0, 0), dists[k], phi, phi, ok, reason, tuple(map(float, e1)))
            )
            if ok:
                merge.append((i, j))
                used.update((i, j))
    return _apply(labels, {j: i for i, j in merge})


def _apply(labels: list[np.ndarray], into: dict[int, int]) -> list[np.ndarray]:
    groups: dict[int, list[np.ndarray]] = {}
    for k, pts in enumerate(labels):
        groups.setdefault(into.get(k, k), []).append(pts)
    return [np.vstack(groups[k]) for k in sorted(groups)]


def _tangent_merge(labels: list[np.ndarray], decisions) -> list[np.ndarray]:
    info = []
    for k, pts in enumerate(labels):
        a, b = _farthest_pair(pts)
        tangents = []
        for e in (a, b):
            d = np.hypot(*(pts - e).T)
            far = d > 15
            if not far.any():
                tangents = None
                break
            e1 = pts[far][np.argmin(d[far])]
            if e1[1] == e[1]:  # vertical tangent: the published code drops the label
                tangents = None
                break
            tangents.append((e, (e1[0] - e[0]) / (e1[1] - e[1])))
        if tangents is not None:
            info.append((k, tangents))
    cands = []
    for x in range(len(info)):
        for y in range(len(info)):
            if x == y:
                continue
            for e1, k1 in info[x][1]:
                for e2, k2 in info[y][1]:
                    dist = float(np.hypot(*(e1 - e2)))
                    ang = _acute(k1, k2)
                    if dist < 10 and ang < 30:
                        cands.append((dist, ang, info[x][0], info[y][0]))
    cands.sort()
    into: dict[int, int] = {}
    seen = set()
    for dist, ang, i, j in cands:
        a, b = min(i, j), max(i, j)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        into[b] = a
        decisions.append(MergeDecision((a, b), (0, 0), dist, ang, ang, True, "tangent merge"))
    return _apply(labels, into)


def _gapfill(labels: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for pts in labels:
        tree = cKDTree(pts)
        pairs = tree.query_pairs(20, output_type="ndarray")
        n = len(pts)
        from scipy import sparse
        from scipy.sparse import csgraph

        g = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        k, lab = csgraph.connected_components(g, directed=False)
        if k <= 1:
            out.append(pts)
            continue
        subs = [pts[lab == i] for i in range(k)]
        links = []
        for i in range(k):
            for j in range(i + 1, k):
                d, idx = cKDTree(subs[j]).query(subs[i])
                m = int(np.argmin(d))
                links.append((float(d[m]), subs[i][m], subs[j][idx[m]]))
        links.sort(key=lambda t: t[0])
        extra = [pts]
        for _, p, q in links[: k - 1]:
            t = np.linspace(0, 1, 10)[:, None]
            extra.append(np.rint(p + t * (q - p)).astype(np.int64))
        out.append(np.unique(np.vstack(extra), axis=0))
    return out


def _keep(labels: list[np.ndarray], n: int) -> list[np.ndarray]:
    return [p for p in labels if len(p) >= n]


def cluster_tails_published(tail_mask, heads=None) -> TailClustering:
    """Cluster tails with the published Con2Dis rules (the baseline).

    Parameters
    ----------
    tail_mask, heads
        As for :func:`~napari_sperm.tails.cluster_tails`.

    Returns
    -------
    TailClustering
        Same type as :func:`~napari_sperm.tails.cluster_tails`; ``tail_width`` is NaN (the
        published rules never measure it) and merge decisions carry label numbers, not pieces.
    """
    mask, head_img = check_inputs(tail_mask, heads)
    shape = mask.shape
    lab, n = ndi.label(mask, _EIGHT)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    mask = mask & (sizes[lab] >= 25)
    clus, n_cl = _single_linkage(mask, 4.0)
    decisions: list[MergeDecision] = []
    simple: list[np.ndarray] = []
    complex_: list[np.ndarray] = []
    for k, sl in enumerate(ndi.find_objects(clus), start=1):
        if sl is None:
            continue
        sub = clus[sl] == k
        pts = np.argwhere(sub)
        npx = len(pts)
        a, b = _farthest_pair(pts)
        far2 = float(((a - b) ** 2).sum())
        if npx < 100 or far2 == 0 or npx / far2 > 0.08:
            continue
        pad = 6
        crop = np.pad(sub, pad)
        closed = ndi.binary_closing(crop, disk(5))
        skel = skeletonize(closed)
        if skel.sum() < 15:
            continue
        pieces = _prune_and_split(skel)
        off = np.array([sl[0].start - pad, sl[1].start - pad])
        pieces = [p + off for p in pieces]
        (simple if len(pieces) == 1 else complex_).extend(pieces)
    labels = [p for p in simple + complex_ if len(p) > 1]
    labels = _bls(labels, 15, 15, decisions)
    labels = _keep(labels, 16)
    labels = _tangent_merge(labels, decisions)
    labels = _keep(labels, 20)
    labels = _bls(labels, 20, 20, decisions)
    labels = _keep(labels, 45)
    labels = _bls(labels, 20, 25, decisions)
    labels = _gapfill(labels)
    labels = _keep(labels, 30)
    labels = [np.clip(p, 0, np.array(shape) - 1) for p in labels]

    pairing = _pair_published(labels, head_img) if head_img is not None else {}
    masks = _rethicken(labels, mask)
    tails = []
    for k, pts in enumerate(labels):
        head, dist, ang, end = pairing.get(k, (None, None, None, None))
        ref = end if end is not None else _farthest_pair(pts)[0]
        order = np.argsort(np.hypot(*(pts - ref).T), kind="stable")
        tails.append(
            TailInstance(
                label=k + 1, mask=masks[k], centreline=pts[order].astype(float), head=head,
                pair_distance=dist, pair_angle_deg=ang, pieces=(k,),
            )
        )  # fmt: skip
    ids = np.unique(head_img[head_img > 0]) if head_img is not None else np.zeros(0, int)
    used = {t.head for t in tails}
    return TailClustering(
        tails=tails, merges=decisions, shape=shape, params=Con2DisParams(),
        tail_width=float("nan"), unpaired_heads=[int(h) for h in ids if int(h) not in used],
    )  # fmt: skip


def _pair_published(labels: list[np.ndarray], heads: np.ndarray) -> dict:
    """Stage C gates: d <= 20 px, psi <= 25 deg, greedy by d; first-candidate fallback."""
    objs = ndi.find_objects(heads)
    head_ends = {}
    for hid, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        pts = np.argwhere(heads[sl] == hid) + [sl[0].start, sl[1].start]
        head_ends[hid] = _farthest_pair(pts)
    tail_ends = []
    for pts in labels:
        ends = []
        for c in _farthest_pair(pts):
            d = np.hypot(*(pts - c).T)
            far = d > 20
            dd = pts[far][np.argmin(d[far])] if far.any() else pts[np.argmax(d)]
            ends.append((c, dd))
        tail_ends.append(ends)
    rows = []
    for hid, (a, b) in head_ends.items():
        for t, ends in enumerate(tail_ends):
            best = None
            for h_end, h_other in ((a, b), (b, a)):
                for c, dd in ends:
                    d = float(np.hypot(*(h_end - c)))
                    if best is None or d < best[0]:
                        best = (d, h_end, h_other, c, dd)
            d, h_end, h_other, c, dd = best
            hv = (h_other - h_end).astype(float)
            tv = (dd - c).astype(float)
            cos = hv @ tv / max(np.hypot(*hv) * np.hypot(*tv), 1e-9)
            psi = 180.0 - float(np.degrees(np.arccos(np.clip(cos, -1, 1))))
            rows.append((d, psi, hid, t, c))
    rows.sort(key=lambda r: r[0])
    out: dict = {}
    used_h: set[int] = set()
    passing = [r for r in rows if r[0] <= 20 and r[1] <= 25]
    if not passing and rows:
        passing = rows[:1]  # the published fallback
    for d, psi, hid, t, c in passing:
        if hid in used_h or t in out:
            continue
        used_h.add(hid)
        out[t] = (int(hid), d, psi, c)
    return out


def _rethicken(labels: list[np.ndarray], mask: np.ndarray) -> list[CropMask]:
    """Cluster pixels (single linkage, 15 px) within +/-5 px of each centreline."""
    clus, _ = _single_linkage(mask, 15.0)
    sizes = np.bincount(clus.ravel())
    out = []
    h, w = mask.shape
    for pts in labels:
        cl = clus[pts[:, 0], pts[:, 1]]
        cl = cl[(cl > 0) & (sizes[cl] >= 20)]
        if cl.size == 0:
            out.append(CropMask.empty())
            continue
        best = np.bincount(cl).argmax()
        r0, c0 = max(pts[:, 0].min() - 5, 0), max(pts[:, 1].min() - 5, 0)
        r1, c1 = min(pts[:, 0].max() + 6, h), min(pts[:, 1].max() + 6, w)
        line = np.zeros((r1 - r0, c1 - c0), bool)
        line[pts[:, 0] - r0, pts[:, 1] - c0] = True
        win = ndi.maximum_filter(line, size=11)
        out.append(CropMask((int(r0), int(c0)), win & (clus[r0:r1, c0:c1] == best)))
    return out
