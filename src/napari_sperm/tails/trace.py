"""Head-anchored tracing: follow every tail from its head through the skeleton graph.

A tail starts at its head. From every head's start end, a path is traced piece by piece through the
hubs of the skeleton graph. At each hub every exit is scored against the direction of the path so far,
fitted over its last several tail widths (not over the short piece between two junctions, whose
direction is noise in a pile-up), and against the direction of the exit fitted over the same length
ahead — looking through short pieces to the hubs beyond them. Paths may share pieces (two tails that
run together), at a cost; a path never runs into another tail's head or back along another head's
path. Where a path finds no way on (a free end, or a hub none of whose exits fits), it may jump a
gap to a piece end that lies ahead in line with it: a stretch the tail finder missed, a crossing
whose pixels it lost, a head the tail passes under.

All paths advance together, best-first: the cheapest pending decision of any path is taken first, so
where two paths meet at a hub, the one that continues straighter picks its exit first and the other
takes what fits it next (sharing only when that is clearly better). Where the later path would
share the exit the earlier one took while another exit of that hub stays unused, the two are weighed
jointly: the earlier path may move to the unused exit and leave its first choice to the later one
(an *exit swap*). Pieces no head path claims are
matched and chained as before (see :mod:`~napari_sperm.tails.merge`) and stay unpaired unless they
start at a head left without a path.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from .direction import EndFits, angle_deg
from .merge import Chain, Hubs, continuation_cost, gap_angles
from .results import MergeDecision
from .skeleton import SkeletonGraph

__all__ = ["head_starts", "trace_from_heads"]


@dataclass
class _Path:
    head: int
    start: int
    steps: list[tuple[int, bool]]
    links: list[tuple[str, int | None]]
    pts: list[np.ndarray]
    pieces: set[int] = field(default_factory=set)
    front: int = -1
    decs: list[MergeDecision] = field(default_factory=list)
    length: float = 0.0
    """Skeleton length of the pieces in ``steps`` (px)."""
    options: list[tuple[int, dict[int, tuple[float, float]]] | None] = field(default_factory=list)
    """Per step after the first: the hub it left and (cost without sharing, bend) of every exit
    that fitted there, or None for a gap jump."""


def _fit(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and unit direction (oriented first -> last point) of a principal-axis line fit."""
    c = pts.mean(axis=0)
    d = pts - c
    srr = float(d[:, 0] @ d[:, 0])
    scc = float(d[:, 1] @ d[:, 1])
    src = float(d[:, 0] @ d[:, 1])
    if srr + scc < 1e-9:
        return c, np.zeros(2)
    phi = 0.5 * np.arctan2(2.0 * src, srr - scc)
    v = np.array([np.cos(phi), np.sin(phi)])
    if v @ (pts[-1] - pts[0]) < 0:
        v = -v
    return c, v


def _cost(c1, u, c2, v, width, lateral_weight) -> tuple[float, float, float]:
    """:func:`~.merge.continuation_cost` for one pair of lines."""
    bend, lateral, cost = continuation_cost(
        np.reshape(c1, (1, 2)),
        np.reshape(u, (1, 2)),
        np.reshape(c2, (1, 2)),
        np.reshape(v, (1, 2)),
        width,
        lateral_weight,
    )
    return float(bend[0]), float(lateral[0]), float(cost[0])


def _turn(u: np.ndarray, angle: float) -> np.ndarray:
    """``u`` ``(row, col)`` turned by ``angle`` radians, in the sense in which a positive
    ``arctan2(cross(a, b), a . b)`` turns ``a`` into ``b``."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([u[0] * c - u[1] * s, u[0] * s + u[1] * c])


def _turn_rate(fits: list[tuple[np.ndarray, np.ndarray]]) -> list[float] | None:
    """Signed turn rates (rad/px) between consecutive line fits ``(centre, direction)``, in the
    order travelled; None when a fit is degenerate."""
    rates = []
    for (ca, ua), (cb, ub) in zip(fits[:-1], fits[1:]):
        d = float(np.hypot(*(cb - ca)))
        if d < 1.0 or not ua.any() or not ub.any():
            return None
        rates.append(float(np.arctan2(ua[0] * ub[1] - ua[1] * ub[0], ua @ ub) / d))
    return rates


def _curved_cost(c1, u, kappa, c2, v, width, lateral_weight) -> tuple[float, float, float]:
    """:func:`_cost` for a path that turns steadily at ``kappa`` rad/px: the bend is measured
    from the direction the path would have reached at ``c2``, and the sideways offsets against
    the chord of that arc (each direction turned half-way towards the other)."""
    t = kappa * float(np.hypot(*(np.asarray(c2) - np.asarray(c1))))
    bend = float(angle_deg(_turn(u, t), v))
    _, lateral, _ = _cost(c1, _turn(u, 0.5 * t), c2, _turn(v, -0.5 * t), width, lateral_weight)
    return bend, lateral, bend + lateral_weight * lateral


def trace_from_heads(
    g: SkeletonGraph,
    fits: EndFits,
    hubs: Hubs,
    starts: list[tuple[int, int]],
    width: float,
    fit_len: float,
    skip: float,
    max_bend: float,
    lateral_weight: float,
    max_lateral: float,
    share_cost: float,
    gap_len: float = 0.0,
    gap_max_bend: float = 35.0,
    soft_length: float = np.inf,
    late_max_cost: float = np.inf,
    open_exit_cost: float | None = None,
    curvature_weight: float = 0.0,
    curvature_tolerance: float = 0.25,
) -> tuple[list[Chain], list[int], list[MergeDecision]]:
    """Trace one path per head start through the skeleton graph.

    Parameters
    ----------
    g, fits, hubs
        Skeleton graph, end fits and hubs.
    starts : list of (end id, head index)
        The piece end where each head's tail starts.
    width : float
        Tail width in pixels.
    fit_len, skip : float
        Pixels fitted for a direction, and pixels skipped next to a junction.
    max_bend, lateral_weight, max_lateral : float
        As for the matching through hubs.
    share_cost : float
        Extra cost (deg) of continuing into a piece another path already uses.
    gap_len : float
        Largest gap in pixels a path may jump where it finds no way on: from a free end, or from a
        hub none of whose exits fits, to the end of a piece within this distance (also one that
        starts at a junction, which the gap bridging of whole chains cannot reach). A jump may
        cross a head the tail passes under, but never lands on the end where another head's tail
        starts. 0 disables it.
    gap_max_bend : float
        Largest angle (degrees) between the path's direction, the jump and the piece it lands on.
    soft_length, late_max_cost : float
        A path whose skeleton is already ``soft_length`` pixels long goes on through a hub only
        where the exit costs (bend, offset and sharing, degrees) at most ``late_max_cost``;
        otherwise it may still jump a gap, or it ends there. A tail that ends against another tail
        is then not carried on along it. Default: no limit.
    open_exit_cost : float or None
        Where path k would share the exit x that an earlier path j took from the same hub while an
        exit y of that hub is used by no path, j moves to y (dropping its steps beyond the hub) and
        k takes x alone, when y costs j less than ``share_cost + open_exit_cost`` more than x did.
        Each pair of paths swaps at most once per hub. None (the default) never swaps.
    curvature_weight, curvature_tolerance : float
        Where the path's last three fitted stretches (``fit_len`` each) turn at rates that agree
        within ``curvature_tolerance`` times the larger (plus 0.001 rad/px), the path is taken to
        bend steadily, and each exit is scored against the direction the path reaches at the
        exit's fit: turned by ``curvature_weight`` times the mean of the path's latest turn rate
        and the exit's own (from its first two stretches, where it has them) times the distance
        between the fits. A wavy or short path is scored straight on. 0 (the default) never turns.

    Returns
    -------
    paths : list of Chain
        One per start, starting at the head.
    heads : list of int
        Head index of each path.
    decisions : list of MergeDecision
    """
    n_fit = max(int(round(fit_len)), 3)
    n_skip = max(int(round(skip)), 0)
    start_end = {int(e): k for k, (e, _) in enumerate(starts)}
    # entered[piece] = {path: end id where it entered the piece}
    entered: dict[int, dict[int, int]] = {}
    cache: dict[tuple[int, bool], np.ndarray] = {}

    def piece_pts(p: int, fwd: bool) -> np.ndarray:
        key = (p, fwd)
        arr = cache.get(key)
        if arr is None:
            px = g.piece_pixels(p)
            arr = g.rc[px if fwd else px[::-1]]
            cache[key] = arr
        return arr

    def hub_of(end: int) -> int:
        c = g.end_cluster[end // 2, end % 2]
        return -1 if c < 0 else int(hubs.hub_of_cluster[c])

    ordinary = np.flatnonzero(hubs.role == 0)
    jump_ends = np.stack([2 * ordinary, 2 * ordinary + 1], axis=1).ravel()
    jump_tree = cKDTree(fits.point[jump_ends]) if gap_len > 0 and jump_ends.size else None

    paths: list[_Path] = []
    for k, (e, h) in enumerate(starts):
        p, fwd = int(e) // 2, int(e) % 2 == 0
        path = _Path(h, int(e), [(p, fwd)], [], [piece_pts(p, fwd)], {p}, int(e) ^ 1)
        path.length = float(g.length[p])
        entered.setdefault(p, {})[k] = int(e)
        paths.append(path)

    def last_points(path: _Path, need: int) -> np.ndarray:
        """The path's last ``need`` skeleton points (fewer when it is shorter), in order."""
        blocks, n = [], 0
        for arr in reversed(path.pts):
            blocks.append(arr)
            n += len(arr)
            if n >= need:
                break
        pts = np.concatenate(blocks[::-1]) if len(blocks) > 1 else blocks[0]
        return pts[-need:]

    def path_fit(path: _Path):
        pts = last_points(path, n_fit + n_skip)
        if len(pts) - n_skip >= 3:
            pts = pts[: len(pts) - n_skip]
        return _fit(pts)

    def path_curvature(path: _Path) -> float | None:
        """Turn rate (rad/px) of the path's latest stretch where its last three stretches bend
        steadily (see ``curvature_tolerance``); None otherwise."""
        need = 3 * n_fit + n_skip
        if curvature_weight == 0.0 or path.length < need:
            return None
        pts = last_points(path, need)
        if len(pts) < need:
            return None
        rates = _turn_rate([_fit(pts[b * n_fit : (b + 1) * n_fit]) for b in range(3)])
        if rates is None:
            return None
        lo, hi = min(rates), max(rates)
        if hi - lo > curvature_tolerance * max(abs(lo), abs(hi)) + 1e-3:
            return None
        return rates[-1]

    def exit_curvature(run: np.ndarray) -> float | None:
        """Turn rate of a run ahead of an exit, from its first two stretches past the skip."""
        pts = run[n_skip:]
        if len(pts) < 2 * n_fit:
            return None
        rates = _turn_rate([_fit(pts[:n_fit]), _fit(pts[n_fit : 2 * n_fit])])
        return None if rates is None else rates[0]

    def used_by_other(x: int, k: int) -> bool:
        """Another path already runs along the piece of end x (continuing into it shares it)."""
        return any(j != k for j in entered.get(x // 2, {}))

    def forbidden(x: int, k: int) -> bool:
        owner = start_end.get(x)
        if owner is not None and owner != k:
            return True
        for j, e in entered.get(x // 2, {}).items():
            if j != k and e != x:
                return True  # would run back along another path towards its head
        return False

    def continuations(x: int, path: _Path, stretches: int = 1) -> list[np.ndarray]:
        """Point runs ahead of end x, through short pieces, up to ``stretches`` fitted lengths."""
        need = stretches * n_fit + n_skip
        out: list[np.ndarray] = []
        stack = [(x, [], 0, {x // 2})]
        while stack and len(out) < 24:
            y, acc, n, seen = stack.pop()
            arr = piece_pts(y // 2, y % 2 == 0)
            acc = acc + [arr]
            n += len(arr)
            far = y ^ 1
            h2 = hub_of(far)
            nxt = []
            if n < need and h2 >= 0 and len(acc) < 4:
                nxt = [
                    z
                    for z in hubs.ends.get(h2, ())
                    if z != far and z // 2 not in seen and z // 2 not in path.pieces
                ]
            if not nxt:
                out.append(np.concatenate(acc) if len(acc) > 1 else acc[0])
            for z in nxt:
                stack.append((z, acc, n, seen | {z // 2}))
        return out

    def cont_fit(run: np.ndarray):
        pts = run[n_skip : n_skip + n_fit] if len(run) - n_skip >= 3 else run[:n_fit]
        return _fit(pts)

    def jump(k: int, h: int):
        """Cheapest jump across a gap for path k: (cost, landing end, bend, shared, "gap")."""
        path = paths[k]
        f = path.front
        if jump_tree is None:
            return None
        pf = fits.point[f]
        near = jump_tree.query_ball_point(pf, gap_len)
        if not near:
            return None
        _, u = path_fit(path)
        if not u.any():
            return None
        xs = np.array(
            [
                x
                for x in jump_ends[near].tolist()
                if x // 2 not in path.pieces
                and not forbidden(x, k)
                and not (h >= 0 and hub_of(x) == h)
            ],
            np.int64,
        )
        if xs.size == 0:
            return None
        n = xs.size
        worst, bend, dist = gap_angles(
            np.broadcast_to(u, (n, 2)), np.broadcast_to(pf, (n, 2)), fits.point[xs],
            -fits.direction[xs],
        )  # fmt: skip
        best = None
        for i in np.flatnonzero(worst <= gap_max_bend).tolist():
            x = int(xs[i])
            shared = used_by_other(x, k)
            cost = float(worst[i] + 10.0 * dist[i] / width) + (share_cost if shared else 0.0)
            if best is None or cost < best[0]:
                best = (cost, x, float(bend[i]), shared, "gap", None)
        return best

    def decide(k: int):
        """Best way on for path k: (cost, entry end, bend, shared, kind) or None.

        ``kind`` is ``"hub"`` for an exit of the hub at the path's front, ``"gap"`` for a jump
        across a gap (only where no exit fits)."""
        path = paths[k]
        f = path.front
        late = path.length >= soft_length
        h = hub_of(f)
        if h < 0:
            return jump(k, h)
        ends = hubs.ends.get(h, ())
        cands = [x for x in ends if x != f and x // 2 not in path.pieces and not forbidden(x, k)]
        if not cands:
            return jump(k, h)
        through = len(ends) == 2
        c1, u = path_fit(path)
        kp = path_curvature(path)
        best = None
        opts: dict[int, tuple[float, float]] = {}
        for x in cands:
            shared = used_by_other(x, k)
            bx = None
            for run in continuations(x, path, 1 if kp is None else 2):
                c2, v = cont_fit(run)
                if not v.any():
                    continue
                kappa = 0.0
                if kp is not None:
                    kx = exit_curvature(run)
                    kappa = curvature_weight * (kp if kx is None else 0.5 * (kp + kx))
                if kappa:
                    bend, lat, cost = _curved_cost(c1, u, kappa, c2, v, width, lateral_weight)
                else:
                    bend, lat, cost = _cost(c1, u, c2, v, width, lateral_weight)
                if not through and (bend > max_bend or lat > max_lateral):
                    continue
                if bx is None or cost < bx[0]:
                    bx = (cost, bend)
            if bx is None:
                if not through:
                    continue
                bx = (0.0, 0.0)
            opts[x] = bx
            eff = bx[0] + (share_cost if shared else 0.0)
            if best is None or eff < best[0]:
                best = (eff, x, bx[1], shared, "hub", opts)
        if late and best is not None and best[0] > late_max_cost:
            best = None
        return best if best is not None else jump(k, h)

    def take(k, f, x, eff, bend, shared, kind, opts, reason=None) -> None:
        """Path k steps from its front f into end x."""
        path = paths[k]
        p, fwd = x // 2, x % 2 == 0
        path.steps.append((p, fwd))
        path.links.append(("hub", hub_of(f)) if kind == "hub" else ("gap", None))
        path.options.append((hub_of(f), opts) if kind == "hub" else None)
        path.pts.append(piece_pts(p, fwd))
        path.pieces.add(p)
        path.length += float(g.length[p])
        entered.setdefault(p, {})[k] = x
        path.front = x ^ 1
        mid = 0.5 * (fits.point[f] + fits.point[x])
        path.decs.append(
            MergeDecision(
                (f // 2, p), (f % 2, x % 2),
                float(np.hypot(*(fits.point[f] - fits.point[x]))), float(bend), float(eff), True,
                reason or ("gap jump" if kind == "gap" else "shared stretch" if shared else "head path"),
                (float(mid[0]), float(mid[1])),
            )
        )  # fmt: skip

    def truncate(j: int, i: int) -> None:
        """Path j gives up its steps from step i on (step 0 is the start piece)."""
        path = paths[j]
        for p, _ in path.steps[i:]:
            path.pieces.discard(p)
            path.length -= float(g.length[p])
            got = entered.get(p)
            if got is not None:
                got.pop(j, None)
        p, fwd = path.steps[i - 1]
        path.front = 2 * p + (1 if fwd else 0)
        del path.steps[i:], path.links[i - 1 :], path.options[i - 1 :], path.pts[i:]
        del path.decs[i - 1 :]

    def swap_for(k: int, f: int, x: int):
        """Where path k would share end x with a path j that left the same hub into x while
        another exit of that hub stays unused by every path, whether j should take that exit
        instead, leaving x to k: (j, step index of x in j, exit for j) or None."""
        h = hub_of(f)
        for j, e in entered.get(x // 2, {}).items():
            if j == k or e != x or (j, k, h) in swaps:
                continue
            pj = paths[j]
            i = next((n for n, (q, _) in enumerate(pj.steps) if q == x // 2), None)
            if i is None or i == 0 or pj.options[i - 1] is None or pj.options[i - 1][0] != h:
                continue
            opts_j = pj.options[i - 1][1]
            if x not in opts_j:
                continue
            cx = opts_j[x][0]
            late_j = sum(float(g.length[q]) for q, _ in pj.steps[:i]) >= soft_length
            best = None
            for y, (cy, _) in opts_j.items():
                if y == x or entered.get(y // 2) or forbidden(y, j):
                    continue
                if late_j and cy > late_max_cost:
                    continue  # past the typical length j would not have gone that way
                if any(q == y // 2 for q, _ in pj.steps[:i]):
                    continue
                gain = share_cost + open_exit_cost - (cy - cx)
                if gain > 0 and (best is None or gain > best[0]):
                    best = (gain, y)
            if best is not None:
                return j, i, best[1]
        return None

    swaps: set[tuple[int, int, int]] = set()

    heap: list[tuple[float, int, int]] = []
    seq = 0

    def push(k: int, d=None) -> None:
        """Queue path k's next decision (``d`` if it is already known)."""
        nonlocal seq
        if d is None:
            d = decide(k)
        if d is not None:
            heapq.heappush(heap, (d[0], seq, k))
            seq += 1

    for k in range(len(paths)):
        push(k)
    while heap:
        cost, _, k = heapq.heappop(heap)
        d = decide(k)
        if d is None:
            continue
        if d[0] > cost + 1e-9:
            push(k, d)
            continue
        eff, x, bend, shared, kind, opts = d
        path = paths[k]
        f = path.front
        if shared and kind == "hub" and open_exit_cost is not None:
            swap = swap_for(k, f, x)
            if swap is not None:
                # The earlier path j moves to the unused exit y; k then finds x free.
                j, i, y = swap
                h, opts_j = paths[j].options[i - 1]
                truncate(j, i)
                swaps.add((j, k, h))
                cy, by = opts_j[y]
                take(j, paths[j].front, y, cy, by, False, "hub", opts_j, "exit swap")
                push(j)
                push(k)
                continue
        take(k, f, x, eff, bend, shared, kind, opts)
        push(k)
    decisions = [dec for pa in paths for dec in pa.decs]
    chains = [Chain(pa.steps, pa.links, pa.head) for pa in paths]
    return chains, [pa.head for pa in paths], decisions


def late_rule_binds(
    g: SkeletonGraph,
    paths: list[Chain],
    decisions: list[MergeDecision],
    soft_length: float,
    late_max_cost: float,
) -> bool:
    """Whether a tracing done without a length limit took a step that ``soft_length`` and
    ``late_max_cost`` (see :func:`trace_from_heads`) would refuse; if not, tracing again with them
    gives the same paths. ``decisions`` is the list :func:`trace_from_heads` returned, in order."""
    k = 0
    for c in paths:
        length = 0.0
        for q, _ in c.steps[:-1]:
            length += float(g.length[q])
            dec = decisions[k]
            k += 1
            if length >= soft_length and dec.cost > late_max_cost and dec.reason != "gap jump":
                return True
    return False


def head_starts(cand, role: np.ndarray, n_heads: int) -> list[tuple[int, int]]:
    """Start end of every head: (end, head) candidates accepted best-first, one to one."""
    out: list[tuple[int, int]] = []
    if cand.end.size == 0:
        return out
    ok = (role[cand.end // 2] == 0) | (role[cand.end // 2] == 2)
    used_end: set[int] = set()
    used_piece: set[int] = set()
    used_head = np.zeros(max(n_heads, 1), bool)
    idx = np.flatnonzero(ok)
    for j in idx[np.argsort(cand.cost[idx], kind="stable")].tolist():
        e, h = int(cand.end[j]), int(cand.head[j])
        if used_head[h] or e in used_end or e // 2 in used_piece:
            continue
        used_head[h] = True
        used_end.add(e)
        used_piece.add(e // 2)
        out.append((e, h))
    return out
