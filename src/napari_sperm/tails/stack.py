"""Con2Dis over stacks and the conversions around it (labels, head boxes, centreline paths, JSON).

:func:`~napari_sperm.tails.cluster_tails` works on one 2-D frame. The widget and the command line
feed it layers and files: a tail Labels image (any label > 0 is a tail pixel), heads as a label image
or as the detector's head boxes, one frame or a stack. Everything here is Qt-free.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

import numpy as np

from ..io.errors import SpermInputError
from ..progress import drain
from .con2dis import iter_cluster_tails
from .results import TailClustering

__all__ = [
    "as_tail_masks",
    "as_head_labels",
    "heads_from_boxes",
    "iter_cluster_stack",
    "cluster_stack",
    "stack_labels",
    "centreline_paths",
    "clustering_records",
    "labels_from_paths",
]


def as_tail_masks(data, name: str = "tail layer") -> tuple[np.ndarray, bool]:
    """Binary tail masks, frames first, from a labels or mask array.

    Parameters
    ----------
    data : array-like
        ``(H, W)`` or ``(F, H, W)``; integer labels (every label > 0 is a tail pixel) or bool.
    name : str
        What to call the input in error messages.

    Returns
    -------
    masks : (F, H, W) bool array
    is_stack : bool
        False when ``data`` was a single 2-D frame.
    """
    arr = np.asarray(data)
    if arr.ndim not in (2, 3):
        raise SpermInputError(
            f"{name} has shape {arr.shape}; give a 2-D mask or a stack of 2-D masks (frames first)."
        )
    if arr.size == 0:
        raise SpermInputError(f"{name} is empty (shape {arr.shape}); nothing to cluster.")
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise SpermInputError(f"{name} contains NaNs; give a label or binary mask image.")
        if not np.array_equal(arr, np.round(arr)):
            raise SpermInputError(
                f"{name} holds fractional values; give a label image (integers) or a binary mask."
            )
    elif arr.dtype.kind not in "biu":
        raise SpermInputError(f"{name} has data type {arr.dtype}; give a label or binary mask.")
    is_stack = arr.ndim == 3
    masks = (arr > 0) if arr.dtype.kind != "b" else arr.astype(bool, copy=False)
    return (masks if is_stack else masks[None]), is_stack


def as_head_labels(data, shape: tuple[int, ...], name: str = "head layer") -> np.ndarray:
    """Head label images, frames first, checked against the tail masks' ``(F, H, W)`` shape."""
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape[-2:] != tuple(shape[-2:]) or arr.shape[0] not in (1, shape[0]):
        raise SpermInputError(
            f"{name} has shape {np.asarray(data).shape} but the tails have {tuple(shape)}; "
            "give heads of the same image size."
        )
    if arr.dtype.kind not in "biu":
        raise SpermInputError(f"{name} has data type {arr.dtype}; give an integer label image.")
    if arr.shape[0] == 1 and shape[0] > 1:
        arr = np.broadcast_to(arr, (shape[0],) + arr.shape[1:])
    return arr.astype(np.int32, copy=False)


def heads_from_boxes(
    shape: tuple[int, int], boxes: Sequence[Sequence[float]], ids: Sequence[int]
) -> np.ndarray:
    """A head label image from head boxes: the ellipse inscribed in each box carries its id.

    Parameters
    ----------
    shape : (int, int)
        ``(rows, cols)`` of the frame.
    boxes : (n, 4) array-like
        ``[x, y, width, height]`` in pixels (COCO convention).
    ids : (n,) ints
        Sperm id of each box (> 0).

    Returns
    -------
    (rows, cols) int32 array
        0 outside every head; where two ellipses overlap the later box wins.
    """
    out = np.zeros(shape, np.int32)
    for (x, y, w, h), sid in zip(np.asarray(boxes, float).reshape(-1, 4), ids, strict=True):
        if w <= 0 or h <= 0:
            continue
        r0, r1 = max(int(np.floor(y)), 0), min(int(np.ceil(y + h)), shape[0])
        c0, c1 = max(int(np.floor(x)), 0), min(int(np.ceil(x + w)), shape[1])
        if r0 >= r1 or c0 >= c1:
            continue
        rr, cc = np.mgrid[r0:r1, c0:c1]
        cy, cx = y + h / 2 - 0.5, x + w / 2 - 0.5  # pixel centres sit at integer coordinates
        inside = ((rr - cy) / max(h / 2, 0.5)) ** 2 + ((cc - cx) / max(w / 2, 0.5)) ** 2 <= 1.0
        out[r0:r1, c0:c1][inside] = int(sid)
    return out


def iter_cluster_stack(
    tail_masks: np.ndarray, heads: np.ndarray | None = None, *, params=None
) -> Generator[tuple[int, int], None, list[TailClustering]]:
    """Run Con2Dis on every frame; yields ``(frames_done, total)``.

    Parameters
    ----------
    tail_masks : (F, H, W) bool array
        From :func:`as_tail_masks`.
    heads : (F, H, W) int array, optional
        From :func:`as_head_labels` or :func:`heads_from_boxes`.
    params : Con2DisParams, optional

    Returns
    -------
    list of TailClustering
        One per frame (the generator's return value). A frame without any tail pixel gives an
        empty result instead of an error, so one empty frame does not stop a stack.
    """
    n = tail_masks.shape[0]
    if not tail_masks.any():
        raise SpermInputError(
            "the tail layer has no tail pixels (all 0); paint tails or run the segmentation first."
        )
    results: list[TailClustering] = []
    for f in range(n):
        frame_heads = None if heads is None else heads[f]
        if not tail_masks[f].any():
            results.append(_empty(tail_masks[f].shape, frame_heads, params))
        else:
            try:
                inner = iter_cluster_tails(tail_masks[f], frame_heads, params=params)
                # one frame: pass its own steps on; a stack reports whole frames
                results.append((yield from inner) if n == 1 else drain(inner))
            except SpermInputError as exc:
                if n == 1 or "no tail" not in str(exc).lower():
                    raise SpermInputError(f"frame {f}: {exc}" if n > 1 else str(exc)) from None
                results.append(_empty(tail_masks[f].shape, frame_heads, params))
        yield f + 1, n
    if not any(r.tails for r in results):
        raise SpermInputError(
            "no tails were found in any frame: the tail layer holds no elongated structures."
        )
    return results


def _empty(shape, heads, params) -> TailClustering:
    from .params import Con2DisParams

    unpaired = [] if heads is None else sorted(int(v) for v in np.unique(heads) if v > 0)
    return TailClustering(
        tails=[],
        merges=[],
        shape=tuple(shape),
        params=params or Con2DisParams(),
        tail_width=float("nan"),
        unpaired_heads=unpaired,
    )


def cluster_stack(tail_masks, heads=None, *, params=None) -> list[TailClustering]:
    """:func:`iter_cluster_stack` without progress."""
    return drain(iter_cluster_stack(tail_masks, heads, params=params))


def stack_labels(results: list[TailClustering]) -> np.ndarray:
    """``(F, H, W)`` int32 tail labels: a paired tail carries its head's id (the sperm id)."""
    return np.stack([r.labels() for r in results]).astype(np.int32, copy=False)


def _tail_ids(result: TailClustering) -> list[int]:
    """The id each tail carries in :meth:`TailClustering.labels`, in instance order."""
    heads = [t.head for t in result.tails if t.head is not None]
    nxt = max([0, *heads, *result.unpaired_heads]) + 1
    ids = []
    for t in result.tails:
        if t.head is not None:
            ids.append(int(t.head))
        else:
            ids.append(nxt)
            nxt += 1
    return ids


def centreline_paths(
    results: list[TailClustering], is_stack: bool
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Centrelines as napari path vertices plus a features table.

    Returns
    -------
    paths : list of (N, 2) or (N, 3) float arrays
        ``(row, col)`` vertices, or ``(frame, row, col)`` for a stack; from the head end to the tip
        when the tail is paired.
    features : dict
        ``label`` (the id in the tail labels), ``sperm_id`` (the head's id, 0 when unpaired),
        ``paired``, ``length`` (px) and ``frame``.
    """
    paths: list[np.ndarray] = []
    feats: dict[str, list] = {"label": [], "sperm_id": [], "paired": [], "length": [], "frame": []}
    for f, res in enumerate(results):
        for tail, tail_id in zip(res.tails, _tail_ids(res)):
            line = np.asarray(tail.centreline, float).reshape(-1, 2)
            if len(line) < 2:
                continue
            line = _thin_vertices(line)
            if is_stack:
                line = np.column_stack([np.full(len(line), f, float), line])
            paths.append(line)
            feats["label"].append(tail_id)
            feats["sperm_id"].append(int(tail.head or 0))
            feats["paired"].append(tail.head is not None)
            feats["length"].append(float(tail.length))
            feats["frame"].append(f)
    return paths, {
        "label": np.asarray(feats["label"], int),
        "sperm_id": np.asarray(feats["sperm_id"], int),
        "paired": np.asarray(feats["paired"], bool),
        "length": np.asarray(feats["length"], float),
        "frame": np.asarray(feats["frame"], int),
    }


def _thin_vertices(line: np.ndarray, step: float = 3.0) -> np.ndarray:
    """Keep about one vertex every ``step`` px (ends kept) so paths stay easy to edit."""
    if len(line) <= 3:
        return line
    seg = np.hypot(*np.diff(line, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    marks = np.floor(arc / step)
    keep = np.concatenate([[True], marks[1:] != marks[:-1]])
    keep[-1] = True
    return line[keep]


def clustering_records(results: list[TailClustering], is_stack: bool) -> dict:
    """A JSON-ready summary: per frame, every tail (label, head, length, centreline in x, y) and
    every merge decision Con2Dis took, for inspection outside napari."""
    frames = []
    for f, res in enumerate(results):
        frames.append(
            {
                "frame": f if is_stack else None,
                "tail_width": None if not np.isfinite(res.tail_width) else float(res.tail_width),
                "unpaired_heads": [int(h) for h in res.unpaired_heads],
                "tails": [
                    {
                        "label": tail_id,
                        "sperm_id": None if t.head is None else int(t.head),
                        "length": round(float(t.length), 2),
                        "pair_distance": _num(t.pair_distance),
                        "pair_angle_deg": _num(t.pair_angle_deg),
                        "pieces": [int(p) for p in t.pieces],
                        "centreline_xy": [
                            [round(float(c), 2), round(float(r), 2)] for r, c in t.centreline
                        ],
                    }
                    for t, tail_id in zip(res.tails, _tail_ids(res))
                ],
                "merges": [_merge_record(m) for m in res.merges],
            }
        )
    return {"method": "con2dis", "frames": frames}


def _num(value) -> float | None:
    return None if value is None else round(float(value), 3)


def _merge_record(m) -> dict:
    out = {}
    for key, value in vars(m).items():
        if isinstance(value, (bool, np.bool_)):
            out[key] = bool(value)
        elif isinstance(value, (int, np.integer)):
            out[key] = int(value)
        elif isinstance(value, (float, np.floating)):
            out[key] = None if not np.isfinite(value) else round(float(value), 3)
        elif isinstance(value, (tuple, list)):
            out[key] = [v.item() if isinstance(v, np.generic) else v for v in value]
        else:
            out[key] = value if isinstance(value, (str, type(None))) else str(value)
    return out


def labels_from_paths(
    tail_mask: np.ndarray,
    paths: Sequence[np.ndarray],
    ids: Sequence[int],
    tail_width: float,
) -> np.ndarray:
    """Tail labels rebuilt from (hand-edited) centreline paths.

    Every path is drawn as a tube: the tail-mask pixels within ``tail_width`` of it, plus a disc of
    half the tail width along the path itself, so a path drawn across a gap fills the gap.

    Parameters
    ----------
    tail_mask : (H, W) bool array
        The tail pixels the paths run along.
    paths : list of (N, 2) float arrays
        ``(row, col)`` vertices of each centreline.
    ids : list of int
        The label each path's tail gets (its sperm id).
    tail_width : float
        Tail width in pixels.

    Returns
    -------
    (H, W) int32 array
        Where two tubes overlap the later path wins.
    """
    from .thicken import disc_pixels, line_points

    shape = tail_mask.shape
    out = np.zeros(shape, np.int32)
    width = max(float(tail_width), 1.0)
    for path, tail_id in zip(paths, ids, strict=True):
        vertices = np.asarray(path, float).reshape(-1, 2)
        if len(vertices) == 0 or tail_id <= 0:
            continue
        dense = [vertices[:1]]
        for a, b in zip(vertices[:-1], vertices[1:]):
            dense += [line_points(a, b, 0.5), b[None]]
        points = np.concatenate(dense)
        near = disc_pixels(points, width, shape)
        near = near[tail_mask[near[:, 0], near[:, 1]]]
        core = disc_pixels(points, max(width / 2, 0.75), shape)
        px = np.concatenate([near, core])
        out[px[:, 0], px[:, 1]] = int(tail_id)
    return out
