"""Merging: join skeleton pieces into whole tails.

1. **Hubs.** Junction clusters joined by very short pieces form one crossing hub (an X crossing is
   often two 3-way junctions a few pixels apart). A stem shared by two tails that run together in a
   shallow crossing (a Y at each end whose branches both continue the stem) is folded into one hub
   as well, so both tails may use it.
2. **Best-first matching through each hub.** Every pair of piece ends at a hub gets a cost: the bend
   between their fitted directions plus a penalty for sideways offset between the fitted lines. Pairs
   are accepted cheapest first, each end at most once, so a tail continues straight through a
   crossing whatever the piece numbering.
3. **Chains.** Following accepted pairs from piece to piece gives chains, one per tail.
4. **Gap bridging.** Free chain ends that face each other across a short gap are joined, cheapest
   first, using a k-d tree over end points only (no all-pairs pixel distances).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from .direction import EndFits, angle_deg
from .pairing import HeadCandidates
from .results import MergeDecision
from .skeleton import SkeletonGraph

__all__ = [
    "Hubs",
    "Chain",
    "build_hubs",
    "match_hubs",
    "build_chains",
    "bridge_gaps",
    "extend_from_heads",
    "gap_angles",
]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        p = self.parent
        root = i
        while p[root] != root:
            root = p[root]
        while p[i] != root:
            p[i], i = root, p[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class Hubs:
    """Junction clusters grouped into crossing hubs.

    Attributes
    ----------
    hub_of_cluster : (C,) int
        Hub of every junction cluster.
    role : (P,) int
        0 ordinary piece, 1 internal to a hub, 2 pruned spur, 3 not part of a tail.
    ends : dict hub -> list of end ids
        Piece ends (``2 * piece + end``) of ordinary pieces at each hub.
    internal : dict hub -> list of piece ids
    """

    hub_of_cluster: np.ndarray
    role: np.ndarray
    ends: dict[int, list[int]]
    internal: dict[int, list[int]]
    spurs: dict[int, list[int]] = field(default_factory=dict)

    def hub_of_end(self, g: SkeletonGraph, end_id: int) -> int:
        c = g.end_cluster[end_id // 2, end_id % 2]
        return -1 if c < 0 else int(self.hub_of_cluster[c])


def continuation_cost(
    c1: np.ndarray,
    u: np.ndarray,
    c2: np.ndarray,
    v: np.ndarray,
    width: float,
    lateral_weight: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bend (deg), relative sideways offset and cost of continuing line (c1, u) by line (c2, v).

    Row-wise over ``(n, 2)`` arrays: centres ``c``, unit directions ``u`` (the way the first line
    runs out) and ``v`` (the way the second runs on). The offset is the mean distance of each centre
    from the other line, in units of ``width + 0.15 x chord``.
    """
    bend = angle_deg(u, v)
    vec = c2 - c1
    chord = np.hypot(vec[:, 0], vec[:, 1])
    p1 = np.abs(vec[:, 0] * u[:, 1] - vec[:, 1] * u[:, 0])
    p2 = np.abs(vec[:, 0] * v[:, 1] - vec[:, 1] * v[:, 0])
    lateral = 0.5 * (p1 + p2) / (width + 0.15 * chord)
    return bend, lateral, bend + lateral_weight * lateral


def _pair_cost(
    fits: EndFits, i: np.ndarray, j: np.ndarray, width: float, lateral_weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bend (deg), sideways offset (in widths, relative) and cost for continuing end i into end j."""
    return continuation_cost(
        fits.centre[i], fits.direction[i], fits.centre[j], -fits.direction[j], width, lateral_weight
    )


def build_hubs(
    g: SkeletonGraph,
    fits: EndFits,
    width: float,
    spur_len: float,
    merge_len: float,
    shared_len: float,
    max_bend: float,
    max_split: float,
    dropped: np.ndarray | None = None,
) -> Hubs:
    """Prune spurs and group junction clusters into hubs.

    Parameters
    ----------
    g : SkeletonGraph
    fits : EndFits
    width : float
        Tail width in pixels.
    spur_len, merge_len, shared_len : float
        Pixel lengths: spur pruning, short-piece hub merging, longest shared stem.
    max_bend, max_split : float
        Degrees: largest bend for a branch to continue a shared stem, and largest angle between the
        two branches of a shallow crossing.
    dropped : (P,) bool array, optional
        Pieces of components that are not tails; they take no part.

    Returns
    -------
    Hubs
    """
    n_p = g.n_pieces
    role = np.zeros(n_p, np.int8)
    ec = g.end_cluster
    free = ec < 0
    spur = (free[:, 0] ^ free[:, 1]) & (g.length < spur_len)
    role[spur] = 2
    if dropped is not None:
        role[dropped] = 3
    uf = _UnionFind(max(g.n_clusters, 1))
    both = (ec[:, 0] >= 0) & (ec[:, 1] >= 0)
    short = both & (g.length < merge_len) & (role != 3)
    for p in np.flatnonzero(short).tolist():
        uf.union(int(ec[p, 0]), int(ec[p, 1]))
        role[p] = 1

    def collect():
        hub_of = np.array([uf.find(c) for c in range(g.n_clusters)], np.int64)
        ends: dict[int, list[int]] = {}
        for p in np.flatnonzero(role == 0).tolist():
            for e in (0, 1):
                c = ec[p, e]
                if c >= 0:
                    ends.setdefault(int(hub_of[c]), []).append(2 * p + e)
        return hub_of, ends

    hub_of, ends = collect()
    # Shared stems of shallow crossings: Y - stem - Y.
    stems = np.flatnonzero((role == 0) & both & (g.length <= shared_len))
    changed: set[int] = set()
    for s in stems[np.argsort(g.length[stems])].tolist():
        h0, h1 = int(hub_of[ec[s, 0]]), int(hub_of[ec[s, 1]])
        if h0 == h1 or h0 in changed or h1 in changed:
            continue
        if len(ends.get(h0, ())) != 3 or len(ends.get(h1, ())) != 3:
            continue
        ok = True
        for h, se in ((h0, 2 * s), (h1, 2 * s + 1)):
            others = np.array([e for e in ends[h] if e != se])
            if others.size != 2:
                ok = False
                break
            bend, _, _ = _pair_cost(fits, others, np.array([se, se]), width, 0.0)
            split = angle_deg(fits.direction[others[0]], fits.direction[others[1]])
            if bend.max() > max_bend or split > max_split:
                ok = False
                break
        if ok:
            uf.union(int(ec[s, 0]), int(ec[s, 1]))
            role[s] = 1
            changed.update((h0, h1))
    hub_of, ends = collect()
    internal: dict[int, list[int]] = {}
    spurs: dict[int, list[int]] = {}
    for p in np.flatnonzero(role == 1).tolist():
        internal.setdefault(int(hub_of[ec[p, 0]]), []).append(p)
    for p in np.flatnonzero(role == 2).tolist():
        c = ec[p, 0] if ec[p, 0] >= 0 else ec[p, 1]
        spurs.setdefault(int(hub_of[c]), []).append(p)
    return Hubs(hub_of, role, ends, internal, spurs)


def match_hubs(
    g: SkeletonGraph,
    fits: EndFits,
    hubs: Hubs,
    width: float,
    max_bend: float,
    lateral_weight: float,
    max_lateral: float,
    stops: HeadCandidates | None = None,
    n_heads: int = 0,
    head_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, list[MergeDecision]]:
    """Best-first matching of piece ends through every hub, jointly with tails stopping at heads.

    Every pair of ends at a hub is a candidate (cost: bend plus sideways offset), and so is every end
    that may start at a head (cost from :func:`~napari_sperm.tails.pairing.end_head_candidates`).
    All candidates of all hubs are accepted cheapest first, each end at most once and each head at
    most once: a tail that starts at a head inside a crossing stops there instead of running on into
    another tail, and the tail passing over the head continues through.

    Returns
    -------
    partner : (2P,) int
        The end each end continues into, -1 where a tail stops.
    decisions : list of MergeDecision
    """
    partner = np.full(2 * g.n_pieces, -1, np.int64)
    stopped = np.zeros(2 * g.n_pieces, bool)
    decisions: list[MergeDecision] = []
    ci, cj, cb, cl, cc, cthrough = [], [], [], [], [], []
    for _hub, ends in hubs.ends.items():
        e = np.asarray(ends, np.int64)
        if e.size < 2:
            continue
        ii, jj = np.triu_indices(e.size, 1)
        i, j = e[ii], e[jj]
        keep = (i // 2) != (j // 2)  # never join a piece to itself
        i, j = i[keep], j[keep]
        if i.size == 0:
            continue
        bend, lateral, cost = _pair_cost(fits, i, j, width, lateral_weight)
        ci.append(i)
        cj.append(j)
        cb.append(bend)
        cl.append(lateral)
        cc.append(cost)
        cthrough.append(np.full(i.size, e.size == 2))
    n_pair = int(sum(x.size for x in ci))
    if n_pair:
        i = np.concatenate(ci)
        j = np.concatenate(cj)
        bend = np.concatenate(cb)
        lateral = np.concatenate(cl)
        cost = np.concatenate(cc)
        through = np.concatenate(cthrough)
    else:
        i = j = np.zeros(0, np.int64)
        bend = lateral = cost = np.zeros(0)
        through = np.zeros(0, bool)
    # Stops at heads: only ends at a hub matter here (a free end stops anyway), but free ends
    # compete for the same heads.
    if stops is not None and stops.end.size:
        s_end, s_head, s_cost = stops.end, stops.head, stops.cost
    else:
        s_end = s_head = np.zeros(0, np.int64)
        s_cost = np.zeros(0)
    # Pass-through pairs first; then everything by cost.
    all_cost = np.concatenate([np.where(through, -1.0, cost), s_cost])
    head_used = np.zeros(max(n_heads, 1), bool)
    dist = np.hypot(*(fits.point[i] - fits.point[j]).T) if n_pair else np.zeros(0)
    for k in np.argsort(all_cost, kind="stable").tolist():
        if k >= n_pair:
            s = k - n_pair
            a, h = int(s_end[s]), int(s_head[s])
            if partner[a] >= 0 or stopped[a] or head_used[h]:
                continue
            head_used[h] = True
            stopped[a] = True
            if g.end_cluster[a // 2, a % 2] >= 0:
                pt = fits.point[a]
                hid = int(head_ids[h]) if head_ids is not None else h
                decisions.append(
                    MergeDecision(
                        (a // 2, a // 2), (a % 2, a % 2), float(stops.distance[s]),
                        float(stops.angle[s]), float(s_cost[s]), True,
                        f"stops at head {hid}", (float(pt[0]), float(pt[1])),
                    )
                )  # fmt: skip
            continue
        a, b = int(i[k]), int(j[k])
        if partner[a] >= 0 or partner[b] >= 0 or stopped[a] or stopped[b]:
            continue
        mid = 0.5 * (fits.point[a] + fits.point[b])
        if through[k]:
            reason, ok = "pass through", True
        elif bend[k] > max_bend:
            reason, ok = "rejected: angle", False
        elif lateral[k] > max_lateral:
            reason, ok = "rejected: offset", False
        else:
            reason, ok = "through junction", True
        decisions.append(
            MergeDecision(
                (a // 2, b // 2), (a % 2, b % 2), float(dist[k]), float(bend[k]),
                float(cost[k]), ok, reason, (float(mid[0]), float(mid[1])),
            )
        )  # fmt: skip
        if ok:
            partner[a], partner[b] = b, a
    return partner, decisions


@dataclass
class Chain:
    """Pieces of one tail in order, each with its orientation.

    ``steps[k] = (piece, forward)``; ``links[k]`` says how ``steps[k]`` joins ``steps[k + 1]``:
    ``("hub", hub)`` or ``("gap", None)``.
    """

    steps: list[tuple[int, bool]]
    links: list[tuple[str, int | None]]
    head: int = -1
    """Index of the head this chain was traced from (it starts there), -1 if none."""

    def head_end(self) -> int:
        """End id at the chain's start."""
        p, fwd = self.steps[0]
        return 2 * p + (0 if fwd else 1)

    def tail_end(self) -> int:
        """End id at the chain's finish."""
        p, fwd = self.steps[-1]
        return 2 * p + (1 if fwd else 0)

    def reversed(self) -> Chain:
        return Chain(
            [(p, not f) for p, f in reversed(self.steps)], list(reversed(self.links)), self.head
        )


def build_chains(g: SkeletonGraph, hubs: Hubs, partner: np.ndarray) -> list[Chain]:
    """Follow accepted pairs from piece to piece; every ordinary piece ends up in one chain."""
    ordinary = np.flatnonzero(hubs.role == 0)
    seen = np.zeros(g.n_pieces, bool)
    chains: list[Chain] = []

    def walk(p: int, fwd: bool) -> Chain:
        steps, links = [], []
        while True:
            seen[p] = True
            steps.append((p, fwd))
            out_end = 2 * p + (1 if fwd else 0)
            nxt = int(partner[out_end])
            if nxt < 0 or seen[nxt // 2]:
                return Chain(steps, links)
            links.append(("hub", hubs.hub_of_end(g, out_end)))
            p, fwd = nxt // 2, nxt % 2 == 0

    # Start from ends that stop (free or unmatched) so chains run end to end.
    for p in ordinary.tolist():
        if seen[p]:
            continue
        for e in (0, 1):
            if partner[2 * p + e] < 0:
                chains.append(walk(p, e == 0))
                break
    for p in ordinary.tolist():  # closed loops
        if not seen[p]:
            chains.append(walk(p, True))
    return chains


def gap_angles(
    out_dir: np.ndarray, start: np.ndarray, end: np.ndarray, into_dir: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angles of crossing a gap from ``start`` (leaving along ``out_dir``) to ``end`` (going on
    along ``into_dir``), row-wise over ``(n, 2)`` arrays.

    Returns
    -------
    worst : (n,) float
        Largest of: the bend from ``out_dir`` to ``into_dir``, and (for gaps of 1 px or more) the
        angles of ``out_dir`` and of ``into_dir`` to the gap itself.
    bend : (n,) float
        Bend from ``out_dir`` to ``into_dir`` (degrees).
    dist : (n,) float
        Gap length in pixels.
    """
    v = end - start
    dist = np.hypot(v[:, 0], v[:, 1])
    u = v / np.maximum(dist, 1e-9)[:, None]
    short = dist < 1.0
    leave = np.where(short, 0.0, angle_deg(out_dir, u))
    enter = np.where(short, 0.0, angle_deg(into_dir, u))
    bend = angle_deg(out_dir, into_dir)
    return np.maximum(np.maximum(leave, enter), bend), bend, dist


def bridge_gaps(
    chains: list[Chain],
    fits: EndFits,
    width: float,
    gap_len: float,
    max_bend: float,
    blocked: np.ndarray | None = None,
) -> tuple[list[Chain], list[MergeDecision]]:
    """Join chain ends that face each other across a gap, cheapest first.

    Parameters
    ----------
    chains : list of Chain
    fits : EndFits
    width : float
    gap_len : float
        Largest gap in pixels.
    max_bend : float
        Largest angle (degrees) between the bridge and either end direction.
    blocked : (2P,) bool array, optional
        Ends that must not be bridged (e.g. ends at a head).

    Two chains traced from heads (``Chain.head >= 0``) are never joined; a chain joined to one keeps
    its head and starts there.

    Returns
    -------
    chains : list of Chain
    decisions : list of MergeDecision
    """
    if len(chains) < 2:
        return chains, []
    term = np.array([[c.head_end(), c.tail_end()] for c in chains], np.int64).ravel()
    owner = np.repeat(np.arange(len(chains)), 2)
    pts = fits.point[term]
    tree = cKDTree(pts)
    pairs = tree.query_pairs(gap_len, output_type="ndarray")
    if pairs.size == 0:
        return chains, []
    a, b = pairs[:, 0], pairs[:, 1]
    keep = owner[a] != owner[b]
    if blocked is not None:
        keep &= ~blocked[term[a]] & ~blocked[term[b]]
    a, b = a[keep], b[keep]
    if a.size == 0:
        return chains, []
    ea, eb = term[a], term[b]
    worst, bend, dist = gap_angles(
        fits.direction[ea], fits.point[ea], fits.point[eb], -fits.direction[eb]
    )
    cost = worst + 10.0 * dist / width
    decisions: list[MergeDecision] = []
    uf = _UnionFind(len(chains))
    has_head = np.array([c.head >= 0 for c in chains], bool)
    used = np.zeros(term.size, bool)
    joins: list[tuple[int, int]] = []
    for k in np.argsort(cost, kind="stable").tolist():
        x, y = int(a[k]), int(b[k])
        if used[x] or used[y]:
            continue
        rx, ry = uf.find(owner[x]), uf.find(owner[y])
        ok = worst[k] <= max_bend and rx != ry and not (has_head[rx] and has_head[ry])
        reason = "gap bridge" if ok else "rejected: gap angle"
        mid = 0.5 * (fits.point[ea[k]] + fits.point[eb[k]])
        decisions.append(
            MergeDecision(
                (int(ea[k] // 2), int(eb[k] // 2)), (int(ea[k] % 2), int(eb[k] % 2)),
                float(dist[k]), float(bend[k]), float(cost[k]), ok, reason,
                (float(mid[0]), float(mid[1])),
            )
        )  # fmt: skip
        if ok:
            used[x] = used[y] = True
            uf.union(int(owner[x]), int(owner[y]))
            has_head[uf.find(int(owner[x]))] = has_head[rx] or has_head[ry]
            joins.append((x, y))
    if not joins:
        return chains, decisions
    # Stitch: each terminal slot x (chain x // 2, side x % 2) links to one other slot.
    link = np.full(term.size, -1, np.int64)
    for x, y in joins:
        link[x], link[y] = y, x
    out: list[Chain] = []
    done = np.zeros(len(chains), bool)
    for start in range(len(chains)):
        if done[start]:
            continue
        # Walk to one extreme of this group first.
        c, side = start, 0
        guard = 0
        while link[2 * c + side] >= 0 and guard <= len(chains):
            nxt = int(link[2 * c + side])
            c, side = nxt // 2, 1 - nxt % 2
            guard += 1
            if c == start:
                break
        # Now c's "side" end is free: build forward from there.
        steps: list[tuple[int, bool]] = []
        links: list[tuple[str, int | None]] = []
        head, head_start = -1, -1
        cur, entry = c, side
        while True:
            done[cur] = True
            piece = chains[cur] if entry == 0 else chains[cur].reversed()
            if chains[cur].head >= 0:
                head, head_start = chains[cur].head, chains[cur].head_end()
            if steps:
                links.append(("gap", None))
            steps += piece.steps
            links += piece.links
            exit_slot = 2 * cur + (1 - entry)
            nxt = int(link[exit_slot])
            if nxt < 0 or done[nxt // 2]:
                break
            cur, entry = nxt // 2, nxt % 2
        chain = Chain(steps, links, head)
        if head >= 0 and chain.head_end() != head_start:
            chain = chain.reversed()
        out.append(chain)
    return out, decisions


def extend_from_heads(
    g: SkeletonGraph,
    fits: EndFits,
    hubs: Hubs,
    chains: list[Chain],
    partner: np.ndarray,
    head_end: np.ndarray,
    width: float,
    max_bend: float,
    lateral_weight: float,
) -> tuple[list[Chain], list[MergeDecision]]:
    """Let a tail that starts at a head continue along a stretch it shares with another tail.

    A tail that leaves its head and meets another tail at a shallow angle (or in a crossing near the
    head) often loses its continuation to the other tail in the one-to-one matching: it stops at the
    junction as a short stub. Here such a stub (a chain paired with a head at one end whose other end
    stops at a hub) takes the cheapest continuation through that hub even if another tail already
    uses it, and follows that tail, sharing its pixels, until a hub where a free tail end continues
    it better than the tail it follows (the two tails split again): there it takes that free tail.

    Parameters
    ----------
    head_end : (T,) int
        Per chain, the end id paired with a head, or -1.

    Returns
    -------
    chains : list of Chain
        With stubs extended and free tails they took removed.
    decisions : list of MergeDecision
    """
    where: dict[int, tuple[int, int]] = {}
    for ci, c in enumerate(chains):
        for si, (p, _) in enumerate(c.steps):
            where.setdefault(p, (ci, si))
    chain_end = {}
    for ci, c in enumerate(chains):
        chain_end[c.head_end()] = (ci, 0)
        chain_end[c.tail_end()] = (ci, 1)
    paired = {int(e) for e in head_end if e >= 0}
    absorbed: set[int] = set()
    decisions: list[MergeDecision] = []
    new_chains = list(chains)

    def cost_of(a: int, b: int) -> tuple[float, float]:
        bend, _, cost = _pair_cost(fits, np.array([a]), np.array([b]), width, lateral_weight)
        return float(bend[0]), float(cost[0])

    for ci, c in enumerate(chains):
        he = int(head_end[ci])
        if he < 0 or ci in absorbed:
            continue
        cur = c if c.head_end() == he else c.reversed()
        f = cur.tail_end()
        if partner[f] >= 0 or g.end_cluster[f // 2, f % 2] < 0:
            continue
        hub = hubs.hub_of_end(g, f)
        own = {p for p, _ in cur.steps}
        best, best_cost = -1, np.inf
        for x in hubs.ends.get(hub, ()):
            if x // 2 in own or x in paired:
                continue
            bend, cost = cost_of(f, x)
            if bend <= max_bend and cost < best_cost:
                best, best_cost = x, cost
        if best < 0 or partner[best] < 0:
            continue  # nothing to share (a free end would have been matched already)
        d_idx, _ = where[best // 2]
        d = chains[d_idx]
        # Orient d so that it runs from the shared entry onwards.
        pos = next(k for k, (p, _) in enumerate(d.steps) if p == best // 2)
        fwd = d.steps[pos][1]
        entry = 2 * (best // 2) + (0 if fwd else 1)
        if entry != best:
            d = d.reversed()
            pos = len(d.steps) - 1 - pos
        if int(head_end[d_idx]) >= 0 and d.tail_end() == int(head_end[d_idx]):
            continue  # would run into another tail's head
        steps = list(cur.steps)
        links = list(cur.links) + [("hub", hub)]
        k = pos
        while True:
            steps.append(d.steps[k])
            if k + 1 >= len(d.steps):
                break
            kind, lhub = d.links[k]
            p, pf = d.steps[k]
            out_end = 2 * p + (1 if pf else 0)
            if kind == "hub" and lhub is not None:
                q, qf = d.steps[k + 1]
                in_end = 2 * q + (0 if qf else 1)
                _, follow = cost_of(out_end, in_end)
                alt, alt_cost = -1, follow
                for z in hubs.ends.get(lhub, ()):
                    if z in chain_end and partner[z] < 0 and z not in paired and z != out_end:
                        zc = chain_end[z][0]
                        if zc in absorbed or zc == ci or zc == d_idx or head_end[zc] >= 0:
                            continue
                        bend, cz = cost_of(out_end, z)
                        if bend <= max_bend and cz < alt_cost:
                            alt, alt_cost = z, cz
                if alt >= 0:
                    zc, side = chain_end[alt]
                    tail = chains[zc] if side == 0 else chains[zc].reversed()
                    links.append(("hub", lhub))
                    steps += tail.steps
                    links += tail.links
                    absorbed.add(zc)
                    break
            links.append(d.links[k])
            k += 1
        mid = fits.point[f]
        decisions.append(
            MergeDecision(
                (f // 2, best // 2), (f % 2, best % 2),
                float(np.hypot(*(fits.point[f] - fits.point[best]))), float(cost_of(f, best)[0]),
                float(best_cost), True, "shared stretch", (float(mid[0]), float(mid[1])),
            )
        )  # fmt: skip
        new_chains[ci] = Chain(steps, links)
    keep = [k for k in range(len(new_chains)) if k not in absorbed]
    return [new_chains[k] for k in keep], decisions
