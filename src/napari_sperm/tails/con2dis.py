"""Con2Dis tail clustering: connectivity, conformity and distance, best-first.

See ``docs/con2dis.md`` for the method and its measured accuracy and speed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from functools import partial

import numpy as np

from ..io.errors import SpermInputError
from ..progress import drain
from .direction import EndFits, end_fits
from .merge import (
    Chain,
    Hubs,
    bridge_gaps,
    build_chains,
    build_hubs,
    extend_from_heads,
    match_hubs,
)
from .pairing import HeadCandidates, end_head_candidates, head_geometry, pair_chains
from .params import Con2DisParams
from .results import TailClustering, TailInstance
from .skeleton import Frame, SkeletonGraph, skeleton_graph, thin
from .thicken import assign_owners, crop_mask, disc_pixels, line_points
from .trace import head_starts, late_rule_binds, trace_from_heads

__all__ = ["cluster_tails", "iter_cluster_tails", "check_inputs", "N_STEPS"]

N_STEPS = 6
"""Progress steps yielded by :func:`iter_cluster_tails`."""


def _typical_length(g: SkeletonGraph, paths, min_paths: int) -> float | None:
    """Median skeleton length of the paths traced from heads; None with fewer than ``min_paths``."""
    if len(paths) < max(min_paths, 1):
        return None
    return float(np.median([sum(float(g.length[q]) for q, _ in c.steps) for c in paths]))


def check_inputs(tail_mask, heads=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate and convert the inputs of :func:`cluster_tails`.

    The mask may be bool, or numbers whose only values are {0, 1} or {0, 255} (an 8-bit mask saved
    by an image editor). Anything else raises :class:`~napari_sperm.io.errors.SpermInputError`.

    Returns
    -------
    mask : 2-D bool array
    heads : 2-D int array or None
    """
    m = np.asarray(tail_mask)
    if m.ndim != 2:
        raise SpermInputError(
            f"The tail mask must be a 2-D image, got {m.ndim} dimension(s) with shape {m.shape}; "
            "pass one frame at a time."
        )
    if m.dtype != bool:
        if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
            raise SpermInputError(
                f"The tail mask has data type {m.dtype}; pass a bool mask or numbers 0/1."
            )
        if np.issubdtype(m.dtype, np.floating) and np.isnan(m).any():
            raise SpermInputError("The tail mask contains NaN values; pass a mask of 0 and 1 only.")
        top = m.max() if m.size else 0
        on = 255 if top == 255 else 1
        if not np.all((m == 0) | (m == on)):
            raise SpermInputError(
                "The tail mask is not binary (values other than 0 and 1, or 0 and 255); "
                "threshold it first, e.g. mask > 0."
            )
        m = m == on
    if not m.any():
        raise SpermInputError(
            "The tail mask is empty (no tail pixels); paint or segment tails first."
        )
    h = None
    if heads is not None:
        h = np.asarray(heads)
        if h.ndim != 2:
            raise SpermInputError(
                f"The head labels must be a 2-D image, got {h.ndim} dimension(s); pass one frame."
            )
        if h.shape != m.shape:
            raise SpermInputError(
                f"The head labels have shape {h.shape} but the tail mask has shape {m.shape}; "
                "pass both for the same frame."
            )
        if np.issubdtype(h.dtype, np.floating):
            if np.isnan(h).any() or not np.all(h == np.round(h)):
                raise SpermInputError(
                    "The head labels must be whole numbers (0 = background); pass a label image."
                )
            h = h.astype(np.int64)
        elif h.dtype == bool:
            raise SpermInputError(
                "The head labels are a bool mask; label them first (one number per head)."
            )
        elif not np.issubdtype(h.dtype, np.integer):
            raise SpermInputError(f"The head labels have data type {h.dtype}; pass integer labels.")
        if h.size and h.min() < 0:
            raise SpermInputError("The head labels contain negative values; use 0 for background.")
    return m, h


def _width(g: SkeletonGraph, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skeleton length and mask area / length (width) of every connected component."""
    got = owner >= 0
    area = np.bincount(g.component[owner[got]], minlength=g.n_components).astype(float)
    length = g.edge_length + 1.0
    return length, area / length


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def _hub_route(g: SkeletonGraph, hubs: Hubs, hub: int, c_from: int, c_to: int):
    """Internal pieces (with direction) and clusters on the shortest way through a hub."""
    if c_from == c_to or c_from < 0 or c_to < 0:
        return [], [c for c in (c_from, c_to) if c >= 0]
    adj: dict[int, list[tuple[int, int, bool]]] = {}
    for p in hubs.internal.get(hub, ()):
        a, b = int(g.end_cluster[p, 0]), int(g.end_cluster[p, 1])
        adj.setdefault(a, []).append((b, p, True))
        adj.setdefault(b, []).append((a, p, False))
    prev: dict[int, tuple[int, int, bool]] = {c_from: (-1, -1, True)}
    queue = deque([c_from])
    while queue:
        c = queue.popleft()
        if c == c_to:
            break
        for nxt, p, fwd in sorted(adj.get(c, ()), key=lambda t: g.length[t[1]]):
            if nxt not in prev:
                prev[nxt] = (c, p, fwd)
                queue.append(nxt)
    if c_to not in prev:
        return [], [c_from, c_to]
    steps, clusters, c = [], [c_to], c_to
    while c != c_from:
        c_prev, p, fwd = prev[c]
        steps.append((p, fwd))
        clusters.append(c_prev)
        c = c_prev
    return steps[::-1], clusters[::-1]


def _chain_geometry(g: SkeletonGraph, hubs: Hubs, chain: Chain, width: float, shape):
    """Pieces, hub clusters, centreline and gap-fill pixels of one chain."""
    pieces: list[int] = []
    clusters: list[int] = []
    blocks: list[np.ndarray] = []
    gap_pts: list[np.ndarray] = []
    for k, (p, fwd) in enumerate(chain.steps):
        px = g.piece_pixels(p)
        blocks.append(g.rc[px if fwd else px[::-1]])
        pieces.append(p)
        if k < len(chain.links):
            kind, hub = chain.links[k]
            out_end = 2 * p + (1 if fwd else 0)
            q, qf = chain.steps[k + 1]
            in_end = 2 * q + (0 if qf else 1)
            if kind == "hub" and hub is not None:
                c_out = int(g.end_cluster[out_end // 2, out_end % 2])
                c_in = int(g.end_cluster[in_end // 2, in_end % 2])
                route, cl = _hub_route(g, hubs, hub, c_out, c_in)
                clusters += cl
                for rp, rf in route:
                    rpx = g.piece_pixels(rp)
                    blocks.append(g.rc[rpx if rf else rpx[::-1]])
                    pieces.append(rp)
            else:
                a = g.rc[g.end_pixel(p, 1 if fwd else 0)]
                b = g.rc[g.end_pixel(q, 0 if qf else 1)]
                gap_pts.append(line_points(a, b, 0.5))
    # Fill jumps between blocks with straight segments.
    line: list[np.ndarray] = []
    for blk in blocks:
        if line and len(blk):
            line.append(line_points(line[-1][-1], blk[0], 1.0))
        line.append(blk)
    centre = np.concatenate(line) if line else np.zeros((0, 2))
    gap = (
        disc_pixels(np.concatenate(gap_pts), max(0.5 * width, 0.7), shape)
        if gap_pts
        else np.zeros((0, 2), np.int64)
    )
    return pieces, clusters, centre, gap


def iter_cluster_tails(
    tail_mask, heads=None, *, params: Con2DisParams | None = None
) -> Generator[tuple[int, int], None, TailClustering]:
    """Cluster a tail mask into tail instances, yielding ``(steps_done, N_STEPS)`` as it goes.

    The generator's return value (``StopIteration.value``, or the result of ``yield from``) is the
    :class:`TailClustering`. Parameters as for :func:`cluster_tails`.
    """
    p = params or Con2DisParams()
    mask, head_img = check_inputs(tail_mask, heads)
    shape = (int(mask.shape[0]), int(mask.shape[1]))
    frame = Frame(shape)
    rows, cols = np.nonzero(mask)
    fg = frame.flat(rows, cols)

    # 1. Connectivity: skeleton, pieces, junctions.
    skel = thin(frame, fg)
    g = skeleton_graph(frame, skel)
    yield 1, N_STEPS
    owner = assign_owners(frame, fg, skel, max_steps=64)
    comp_len, comp_width = _width(g, owner)
    w = float(p.tail_width) if p.tail_width else _weighted_median(comp_width, comp_len)
    w = max(w, 1.0)
    min_len = max(p.min_component_length * w, p.min_length_px)
    keep_comp = (comp_len >= min_len) & (comp_width <= p.max_component_width * w)
    if not keep_comp.any():
        raise SpermInputError(
            "The tail mask has no tail-shaped objects (nothing long and thin enough); "
            "check that it marks flagella, not heads or debris."
        )
    if g.n_pieces:
        piece_comp = g.component[g.order[g.start[:-1]]]
        dropped = ~keep_comp[piece_comp]
    else:
        dropped = np.zeros(0, bool)
    yield 2, N_STEPS

    # 2. Conformity: directions at piece ends.
    fit_len = max(p.fit_length * w, p.fit_length_px)
    fits = end_fits(g, w, p.junction_skip * w, fit_len)
    yield 3, N_STEPS

    # 3. Merge through junctions, best-first; then bridge gaps.
    hubs = build_hubs(
        g, fits, w,
        spur_len=max(p.spur_length * w, 2.0),
        merge_len=p.hub_merge_length * w,
        shared_len=p.shared_max_length * w,
        max_bend=p.max_bend_deg,
        max_split=p.shared_max_split_deg,
        dropped=dropped,
    )  # fmt: skip
    hg = head_geometry(head_img) if head_img is not None else None
    if hg is not None and hg.ids.size:
        cand = end_head_candidates(
            fits.point,
            fits.direction,
            hg,
            w,
            p.pair_max_gap,
            p.pair_rear_fraction,
            p.pair_max_angle_deg,
        )
    else:
        cand = HeadCandidates.empty()
    n_heads = 0 if hg is None else int(hg.ids.size)
    head_ids = None if hg is None else hg.ids
    blocked = _ends_at_heads(fits, head_img, w) if head_img is not None else None
    gap_len = max(p.gap_length * w, 4.0)
    decisions: list = []
    if cand.end.size:
        starts = head_starts(cand, hubs.role, n_heads)
        trace = partial(
            trace_from_heads, g, fits, hubs, starts, w,
            fit_len=max(p.trace_fit_length * w, p.fit_length_px),
            skip=p.junction_skip * w,
            max_bend=p.max_bend_deg,
            lateral_weight=p.lateral_weight_deg,
            max_lateral=p.max_lateral,
            share_cost=p.share_cost_deg,
            open_exit_cost=p.open_exit_cost_deg,
            curvature_weight=p.curvature_weight,
            curvature_tolerance=p.curvature_tolerance,
            gap_len=gap_len,
            gap_max_bend=p.gap_max_bend_deg,
        )  # fmt: skip
        paths, _, decisions = trace()
        typical = _typical_length(g, paths, p.typical_length_min_paths)
        if typical is not None and p.typical_length_factor is not None:
            # Second pass: past the typical tail length a path only goes on where the way is
            # plain (a tail that ended against another one is not carried along it).
            late = {
                "soft_length": p.typical_length_factor * typical,
                "late_max_cost": p.late_max_cost_deg,
            }
            if late_rule_binds(g, paths, decisions, **late):
                paths, _, decisions = trace(**late)
        rest_hubs, rest_cand = _without_paths(hubs, cand, paths, n_heads)
        partner, rest_dec = match_hubs(
            g, fits, rest_hubs, w, p.max_bend_deg, p.lateral_weight_deg, p.max_lateral,
            stops=rest_cand, n_heads=n_heads, head_ids=head_ids,
        )  # fmt: skip
        decisions += rest_dec
        chains = paths + build_chains(g, rest_hubs, partner)
        chains, gap_decisions = bridge_gaps(chains, fits, w, gap_len, p.gap_max_bend_deg, blocked)
        decisions += gap_decisions
    else:
        rest_cand = cand
        partner, decisions = match_hubs(
            g, fits, hubs, w, p.max_bend_deg, p.lateral_weight_deg, p.max_lateral,
            stops=cand, n_heads=n_heads, head_ids=head_ids,
        )  # fmt: skip
        chains = build_chains(g, hubs, partner)
        chains, gap_decisions = bridge_gaps(chains, fits, w, gap_len, p.gap_max_bend_deg, blocked)
        decisions += gap_decisions
        if hg is not None and chains:
            ends = np.array([[c.head_end(), c.tail_end()] for c in chains])
            hidx, which, _, _ = pair_chains(ends, cand, int(hg.ids.size))
            head_end = np.where(hidx >= 0, ends[np.arange(len(chains)), which], -1)
            chains, share_decisions = extend_from_heads(
                g, fits, hubs, chains, partner, head_end, w, p.max_bend_deg,
                p.lateral_weight_deg,
            )  # fmt: skip
            decisions += share_decisions
    yield 4, N_STEPS

    # 4. Re-thicken: centrelines and masks.
    min_tail = max(p.min_tail_length * w, p.min_length_px)
    geo = [_chain_geometry(g, hubs, c, w, shape) for c in chains]
    lengths = np.array([_polyline_length(c) for _, _, c, _ in geo])
    keep = np.flatnonzero(lengths >= min_tail)
    chains = [chains[k] for k in keep]
    geo = [geo[k] for k in keep]
    masks = _tail_masks(frame, fg, owner, g, hubs, geo, shape)
    yield 5, N_STEPS

    # 5. Pair with heads.
    t = len(chains)
    head_idx = np.full(t, -1)
    which = np.zeros(t, np.int64)
    pdist = np.full(t, np.nan)
    pang = np.full(t, np.nan)
    head_ids = np.zeros(0, np.int64)
    if hg is not None and t:
        head_ids = hg.ids
        ends = np.array([[c.head_end(), c.tail_end()] for c in chains])
        traced = np.array([c.head for c in chains])
        free_heads = np.ones(int(hg.ids.size), bool)
        free_heads[traced[traced >= 0]] = False
        sel = free_heads[rest_cand.head]
        sub = HeadCandidates(
            rest_cand.end[sel], rest_cand.head[sel], rest_cand.distance[sel],
            rest_cand.angle[sel], rest_cand.cost[sel],
        )  # fmt: skip
        rest = np.flatnonzero(traced < 0)
        head_idx[rest], which[rest], pdist[rest], pang[rest] = pair_chains(
            ends[rest], sub, int(hg.ids.size)
        )
        for k in np.flatnonzero(traced >= 0).tolist():
            e, h = int(ends[k, 0]), int(traced[k])
            j = np.flatnonzero((cand.end == e) & (cand.head == h))
            head_idx[k], which[k] = h, 0
            if j.size:
                pdist[k], pang[k] = cand.distance[j[0]], cand.angle[j[0]]
    tails: list[TailInstance] = []
    for k in range(t):
        pieces, _, centre, _ = geo[k]
        paired = head_idx[k] >= 0
        if paired and which[k] == 1:
            centre = centre[::-1]
        tails.append(
            TailInstance(
                label=k + 1,
                mask=masks[k],
                centreline=centre,
                head=int(head_ids[head_idx[k]]) if paired else None,
                pair_distance=float(pdist[k]) if paired else None,
                pair_angle_deg=float(pang[k]) if paired else None,
                pieces=tuple(int(x) for x in pieces),
            )
        )
    used = {tl.head for tl in tails if tl.head is not None}
    unpaired = [int(h) for h in head_ids if int(h) not in used]
    yield 6, N_STEPS
    return TailClustering(
        tails=tails, merges=decisions, shape=shape, params=p, tail_width=w, unpaired_heads=unpaired
    )


def _without_paths(hubs: Hubs, cand: HeadCandidates, paths: list[Chain], n_heads: int):
    """Hubs and head candidates restricted to the pieces no head path claims."""
    claimed = np.zeros(hubs.role.size, bool)
    used = np.zeros(max(n_heads, 1), bool)
    for c in paths:
        claimed[[q for q, _ in c.steps]] = True
        used[c.head] = True
    role = hubs.role.copy()
    role[claimed & (role == 0)] = 3
    ends = {}
    for h, es in hubs.ends.items():
        keep = [e for e in es if not claimed[e // 2]]
        if keep:
            ends[h] = keep
    rest = Hubs(hubs.hub_of_cluster, role, ends, hubs.internal, hubs.spurs)
    sel = ~claimed[cand.end // 2] & ~used[cand.head]
    sub = HeadCandidates(
        cand.end[sel], cand.head[sel], cand.distance[sel], cand.angle[sel], cand.cost[sel]
    )
    return rest, sub


def _polyline_length(c: np.ndarray) -> float:
    if len(c) < 2:
        return 0.0
    d = np.diff(c, axis=0)
    return float(np.hypot(d[:, 0], d[:, 1]).sum())


def _ends_at_heads(fits: EndFits, heads: np.ndarray, width: float) -> np.ndarray:
    """Piece ends that touch a head (within about one tail width)."""
    r = int(np.ceil(width)) + 1
    pts = np.rint(fits.point).astype(np.int64)
    hit = np.zeros(len(pts), bool)
    h, w = heads.shape
    for dr in range(-r, r + 1):
        for dc in range(-r, r + 1):
            rr = np.clip(pts[:, 0] + dr, 0, h - 1)
            cc = np.clip(pts[:, 1] + dc, 0, w - 1)
            hit |= heads[rr, cc] > 0
    return hit


def _tail_masks(frame, fg, owner, g: SkeletonGraph, hubs: Hubs, geo, shape):
    """Masks of all tails: pixels owned by their pieces and hub clusters, plus gap fills."""
    n_p = g.n_pieces
    # Element of each skeleton pixel: its piece, or n_p + its junction cluster.
    element = np.where(g.piece >= 0, g.piece, n_p + g.cluster)
    # Spurs and pieces internal to a hub that no tail routes through go with the hub's clusters.
    routed_clusters: dict[int, set[int]] = {}
    inc_e, inc_t = [], []
    for k, (pieces, clusters, _, _) in enumerate(geo):
        for pc in pieces:
            inc_e.append(pc)
            inc_t.append(k)
        for c in set(clusters):
            inc_e.append(n_p + c)
            inc_t.append(k)
            routed_clusters.setdefault(c, set()).add(k)
    # Spurs belong with their junction cluster.
    spur_cluster = np.full(n_p, -1)
    for plist in hubs.spurs.values():
        for sp in plist:
            ec = g.end_cluster[sp]
            spur_cluster[sp] = ec[0] if ec[0] >= 0 else ec[1]
    remap = np.arange(n_p + g.n_clusters)
    has = spur_cluster >= 0
    remap[np.flatnonzero(has)] = n_p + spur_cluster[has]
    # Clusters no tail passes through go to the tails that end there.
    for k, (pieces, _, _, _) in enumerate(geo):
        for pc in (pieces[0], pieces[-1]):
            for c in g.end_cluster[pc]:
                if c >= 0 and c not in routed_clusters:
                    inc_e.append(n_p + int(c))
                    inc_t.append(k)
    inc_e = np.asarray(inc_e, np.int64)
    inc_t = np.asarray(inc_t, np.int64)
    got = owner >= 0
    pix = fg[got]
    el = remap[element[owner[got]]]
    order = np.argsort(inc_e, kind="stable")
    inc_e, inc_t = inc_e[order], inc_t[order]
    lo = np.searchsorted(inc_e, el, "left")
    hi = np.searchsorted(inc_e, el, "right")
    cnt = hi - lo
    rep_pix = np.repeat(pix, cnt)
    within = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    rep_tail = inc_t[np.repeat(lo, cnt) + within]
    order = np.argsort(rep_tail, kind="stable")
    rep_pix, rep_tail = rep_pix[order], rep_tail[order]
    bounds = np.searchsorted(rep_tail, np.arange(len(geo) + 1))
    rr, cc = frame.rc(rep_pix)
    masks = []
    for k in range(len(geo)):
        r = rr[bounds[k] : bounds[k + 1]]
        c = cc[bounds[k] : bounds[k + 1]]
        gap = geo[k][3]
        if len(gap):
            r = np.concatenate([r, gap[:, 0]])
            c = np.concatenate([c, gap[:, 1]])
        masks.append(crop_mask(r, c))
    return masks


def cluster_tails(tail_mask, heads=None, *, params: Con2DisParams | None = None) -> TailClustering:
    """Split a binary mask of tail (flagellum) pixels into tail instances and pair them with heads.

    Parameters
    ----------
    tail_mask : (H, W) array
        Tail pixels: bool, or numbers whose only values are {0, 1} or {0, 255}. From any engine, or
        hand-painted. Where tails cross, the pixels are simply set.
    heads : (H, W) int array, optional
        Head labels, 0 = background, each value a head's id (the sperm id).
    params : Con2DisParams, optional
        Thresholds; the defaults scale with the tail width.

    Returns
    -------
    TailClustering
        Tail instances (masks, 1-px centrelines, head pairing) and every merge decision.

    Raises
    ------
    SpermInputError
        Non-2-D input, shape mismatch, non-binary mask, NaNs, an empty mask, or a mask with no
        tail-shaped object.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_sperm.synthetic import make_field
    >>> fld = make_field("phase-high", seed=1, n_sperm=10, crossings=3)
    >>> mask = np.zeros(fld.shape, bool)
    >>> for s in fld.sperm:
    ...     s.tail.paste(mask)
    >>> result = cluster_tails(mask, fld.head_labels())
    >>> len(result.tails) > 0
    True
    """
    return drain(iter_cluster_tails(tail_mask, heads, params=params))
