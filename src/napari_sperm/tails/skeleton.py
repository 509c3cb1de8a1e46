"""Connectivity: thin the tail mask to a 1-px skeleton and cut it into pieces at junctions.

Everything works on the list of foreground pixels (flat indices into a 1-px padded frame), never
on a full frame per component: thinning, neighbour look-ups, labelling and ordering cost time in
proportion to the number of tail pixels, not to the frame size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

__all__ = ["Frame", "SkeletonGraph", "thin", "skeleton_graph"]

# Neighbour order P2..P9 of Zhang & Suen: N, NE, E, SE, S, SW, W, NW as (drow, dcol).
_RING = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
_DIAG = np.array([abs(dr) + abs(dc) == 2 for dr, dc in _RING])


@dataclass(frozen=True)
class Frame:
    """Flat indexing into a frame padded by one pixel on every side.

    Attributes
    ----------
    shape : (int, int)
        Unpadded frame shape (rows, cols).
    """

    shape: tuple[int, int]

    @property
    def width(self) -> int:
        """Row stride of the padded frame."""
        return self.shape[1] + 2

    @property
    def size(self) -> int:
        """Number of pixels of the padded frame."""
        return (self.shape[0] + 2) * (self.shape[1] + 2)

    def offsets(self) -> np.ndarray:
        """Flat offsets of the 8 neighbours, in ring order N, NE, E, SE, S, SW, W, NW."""
        return np.array([dr * self.width + dc for dr, dc in _RING], dtype=np.int64)

    def flat(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Padded flat index of frame pixels ``(rows, cols)``."""
        return (np.asarray(rows, np.int64) + 1) * self.width + np.asarray(cols, np.int64) + 1

    def rc(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``(rows, cols)`` of padded flat indices."""
        r, c = np.divmod(np.asarray(flat, np.int64), self.width)
        return r - 1, c - 1


def _ring_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Look-up tables over the 256 neighbour codes (bit k = ring neighbour k).

    Returns the two Zhang-Suen deletion tables, the number of 8-connected groups among the set
    neighbours, and whether a code is a removable staircase corner.
    """
    sub1 = np.zeros(256, bool)
    sub2 = np.zeros(256, bool)
    groups = np.zeros(256, np.int8)
    corner = np.zeros(256, bool)
    for code in range(256):
        p = [(code >> k) & 1 for k in range(8)]
        n, ne, e, se, s, sw, w, nw = p
        b = sum(p)
        a = sum(1 for k in range(8) if p[k] == 0 and p[(k + 1) % 8] == 1)
        # Lu & Wang's variant of Zhang-Suen: a pixel needs three set neighbours (not two) to be
        # deleted, so a diagonal line two pixels thick is not eaten away from its tip.
        if 3 <= b <= 6 and a == 1:
            sub1[code] = n * e * s == 0 and e * s * w == 0
            sub2[code] = n * e * w == 0 and n * s * w == 0
        # 8-connected groups among the set neighbours: ring neighbours k, k+1 always touch;
        # two orthogonal neighbours k, k+2 touch as well (they are diagonal to each other).
        parent = list(range(8))

        def find(i, parent=parent):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for k in range(8):
            if not p[k]:
                continue
            for step in (1, 2) if k % 2 == 0 else (1,):
                j = (k + step) % 8
                if p[j]:
                    parent[find(k)] = find(j)
        groups[code] = len({find(k) for k in range(8) if p[k]})
        orth_pair = (n and e) or (e and s) or (s and w) or (w and n)
        corner[code] = bool(orth_pair) and b >= 2 and groups[code] == 1
    return sub1, sub2, groups, corner


_SUB1, _SUB2, _GROUPS, _CORNER = _ring_tables()
_BITS = (1 << np.arange(8)).astype(np.uint8)


def _codes(img: np.ndarray, idx: np.ndarray, offs: np.ndarray) -> np.ndarray:
    code = np.zeros(idx.size, np.uint8)
    for k in range(8):
        code |= img[idx + offs[k]].view(np.uint8) * _BITS[k]
    return code


def thin(frame: Frame, fg: np.ndarray) -> np.ndarray:
    """Thin foreground pixels to an 8-connected, 1-px skeleton.

    Zhang-Suen thinning with Lu & Wang's deletion rule (two parallel sub-iterations until stable;
    plain Zhang-Suen erases diagonal lines two pixels thick from the tip inwards), then staircase corners whose
    removal keeps the skeleton connected are removed one by one, so every skeleton pixel inside a
    piece has exactly two neighbours.

    Parameters
    ----------
    frame : Frame
        Geometry of the padded frame.
    fg : (n,) int64 array
        Padded flat indices of the foreground pixels (any order).

    Returns
    -------
    (m,) int64 array
        Sorted padded flat indices of the skeleton pixels.
    """
    img = np.zeros(frame.size, bool)
    img[fg] = True
    offs = frame.offsets()
    idx = np.sort(fg)
    while True:
        changed = False
        for table in (_SUB1, _SUB2):
            drop = table[_codes(img, idx, offs)]
            if drop.any():
                img[idx[drop]] = False
                idx = idx[~drop]
                changed = True
        if not changed:
            break
    # Staircase corners. Removing two touching corners at once can cut a line, so they are removed
    # in four passes over pixel classes (row % 2, col % 2), in which no two pixels touch.
    for _ in range(2):
        cand = idx[_CORNER[_codes(img, idx, offs)]]
        if cand.size == 0:
            break
        cls = (cand // frame.width % 2) * 2 + cand % 2
        for k in range(4):
            sub = cand[cls == k]
            if sub.size:
                img[sub[_CORNER[_codes(img, sub, offs)]]] = False
        idx = idx[img[idx]]
    return idx[img[idx]]


@dataclass
class SkeletonGraph:
    """A skeleton cut into pieces at its junctions.

    Pixels are numbered ``0..n-1`` (``pix`` holds their padded flat indices). Junction pixels (three
    or more neighbours) are grouped into junction clusters; the remaining pixels form pieces, each a
    simple path ordered from its end ``0`` to its end ``1``.

    Attributes
    ----------
    pix : (n,) int64
        Padded flat indices of the skeleton pixels, sorted.
    rc : (n, 2) float
        ``(row, col)`` of each skeleton pixel.
    component : (n,) int
        Connected component of each skeleton pixel.
    cluster : (n,) int
        Junction cluster of each junction pixel, -1 for piece pixels.
    piece : (n,) int
        Piece of each piece pixel, -1 for junction pixels.
    order : (m,) int
        Piece pixels ordered piece by piece, each piece from end 0 to end 1.
    start : (P + 1,) int
        ``order[start[p]:start[p + 1]]`` are the pixels of piece ``p``.
    arc : (m,) float
        Arc length of ``order[i]`` from end 0 of its piece.
    length : (P,) float
        Arc length of each piece (end to end).
    end_cluster : (P, 2) int
        Junction cluster at each end of each piece, -1 for a free end.
    n_clusters : int
    """

    pix: np.ndarray
    rc: np.ndarray
    component: np.ndarray
    cluster: np.ndarray
    piece: np.ndarray
    order: np.ndarray
    start: np.ndarray
    arc: np.ndarray
    length: np.ndarray
    end_cluster: np.ndarray
    n_clusters: int
    n_components: int
    edge_length: np.ndarray
    """(n_components,) total skeleton length per connected component."""

    @property
    def n_pieces(self) -> int:
        return int(self.length.size)

    def piece_pixels(self, p: int) -> np.ndarray:
        """Skeleton pixel numbers of piece ``p`` in order from end 0 to end 1."""
        return self.order[self.start[p] : self.start[p + 1]]

    def end_pixel(self, p: int, end: int) -> int:
        """Skeleton pixel number at end ``end`` (0 or 1) of piece ``p``."""
        return int(self.order[self.start[p] if end == 0 else self.start[p + 1] - 1])


def _edges(frame: Frame, pix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour table and the undirected edge list of skeleton pixels."""
    lookup = np.zeros(frame.size, np.int32)
    lookup[pix] = np.arange(1, pix.size + 1, dtype=np.int32)
    offs = frame.offsets()
    nb = np.stack([lookup[pix + o] for o in offs], axis=1).astype(np.int64) - 1
    # Each undirected edge once: forward offsets E, SE, S, SW (ring 2..5).
    a_list, b_list, w_list = [], [], []
    for k in (2, 3, 4, 5):
        has = nb[:, k] >= 0
        a_list.append(np.flatnonzero(has))
        b_list.append(nb[has, k])
        w_list.append(np.full(int(has.sum()), np.sqrt(2.0) if _DIAG[k] else 1.0))
    return nb, np.concatenate(a_list), np.concatenate(b_list), np.concatenate(w_list)


def skeleton_graph(frame: Frame, pix: np.ndarray) -> SkeletonGraph:
    """Cut a skeleton into pieces at junctions and order every piece.

    Parameters
    ----------
    frame : Frame
    pix : (n,) int64 array
        Sorted padded flat indices of the skeleton (from :func:`thin`).

    Returns
    -------
    SkeletonGraph
    """
    n = pix.size
    nb, ea, eb, ew = _edges(frame, pix)
    degree = (nb >= 0).sum(axis=1)
    junction = degree >= 3
    r, c = frame.rc(pix)
    rc = np.stack([r, c], axis=1).astype(float)

    full = sparse.coo_matrix((ew, (ea, eb)), shape=(n, n)).tocsr()
    n_comp, component = csgraph.connected_components(full, directed=False)
    edge_length = np.bincount(component[ea], weights=ew, minlength=n_comp)

    # Junction clusters: junction pixels linked to junction pixels.
    jj = junction[ea] & junction[eb]
    jg = sparse.coo_matrix((np.ones(int(jj.sum())), (ea[jj], eb[jj])), shape=(n, n)).tocsr()
    _, jlab = csgraph.connected_components(jg, directed=False)
    cluster = np.full(n, -1, np.int64)
    jpix = np.flatnonzero(junction)
    if jpix.size:
        _, cluster[jpix] = np.unique(jlab[jpix], return_inverse=True)
    n_clusters = int(cluster.max()) + 1 if jpix.size else 0

    # Pieces: the other pixels linked among themselves.
    pp = ~junction[ea] & ~junction[eb]
    pa, pb, pw = ea[pp], eb[pp], ew[pp]
    in_deg = np.bincount(pa, minlength=n) + np.bincount(pb, minlength=n)
    pg = sparse.coo_matrix((np.ones(pa.size), (pa, pb)), shape=(n, n)).tocsr()
    _, plab = csgraph.connected_components(pg, directed=False)
    piece = np.full(n, -1, np.int64)
    ppix = np.flatnonzero(~junction)
    if ppix.size == 0:
        empty = np.zeros(0, np.int64)
        return SkeletonGraph(
            pix, rc, component, cluster, piece, empty, np.zeros(1, np.int64), np.zeros(0),
            np.zeros(0), np.zeros((0, 2), np.int64), n_clusters, n_comp, edge_length,
        )  # fmt: skip
    _, piece[ppix] = np.unique(plab[ppix], return_inverse=True)
    n_pieces = int(piece.max()) + 1

    # One source per piece: an end pixel (in-piece degree <= 1); closed loops are cut open.
    is_end = ~junction & (in_deg <= 1)
    src = np.full(n_pieces, -1, np.int64)
    ends = np.flatnonzero(is_end)
    src[piece[ends][::-1]] = ends[::-1]  # smallest pixel number wins
    loops = np.flatnonzero(src < 0)
    if loops.size:
        first = np.full(n_pieces, -1, np.int64)
        first[piece[ppix][::-1]] = ppix[::-1]
        src[loops] = first[loops]
        cut = np.zeros(pa.size, bool)
        for p in loops.tolist():
            s = first[p]
            hit = np.flatnonzero((pa == s) | (pb == s))
            if hit.size:
                cut[hit[0]] = True
        pa, pb, pw = pa[~cut], pb[~cut], pw[~cut]
    wg = sparse.coo_matrix((pw, (pa, pb)), shape=(n, n)).tocsr()
    dist = csgraph.dijkstra(wg, directed=False, indices=src, min_only=True)
    order = ppix[np.lexsort((dist[ppix], piece[ppix]))]
    counts = np.bincount(piece[order], minlength=n_pieces)
    start = np.concatenate([[0], np.cumsum(counts)])
    arc = dist[order]
    length = arc[start[1:] - 1]

    # Junction cluster touching each end pixel.
    end_cluster = np.full((n_pieces, 2), -1, np.int64)
    first_px = order[start[:-1]]
    last_px = order[start[1:] - 1]
    for e, px in enumerate((first_px, last_px)):
        ncl = np.where(nb[px] >= 0, cluster[np.maximum(nb[px], 0)], -1)
        has = (ncl >= 0).any(axis=1)
        pick = np.argmax(ncl >= 0, axis=1)
        end_cluster[has, e] = ncl[has, pick[has]]
    # A one-pixel piece between two clusters: give its second end the other cluster.
    single = np.flatnonzero(counts == 1)
    for p in single.tolist():
        ncl = cluster[nb[first_px[p]][nb[first_px[p]] >= 0]]
        ncl = np.unique(ncl[ncl >= 0])
        if ncl.size >= 2:
            end_cluster[p] = ncl[:2]
    return SkeletonGraph(
        pix=pix,
        rc=rc,
        component=component,
        cluster=cluster,
        piece=piece,
        order=order,
        start=start,
        arc=arc,
        length=length,
        end_cluster=end_cluster,
        n_clusters=n_clusters,
        n_components=int(n_comp),
        edge_length=edge_length,
    )
