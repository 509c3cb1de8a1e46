"""Segment heads and tails of detected sperm: the cascade, then Con2Dis, per frame.

Per frame: the head boxes (class ``head`` of the detector's output) are outlined (classic engine:
:func:`~.head_mask.head_masks`; SAM engine: one prompted mask-decoder call per box); the flagellum
pixels are found (classic: :func:`~.tail_mask.tail_mask`; SAM: single tails picked off round after
round plus what is left); Con2Dis (:func:`napari_sperm.tails.cluster_tails`) splits the tail pixels
into single tails and pairs each with its head. A head and its tail carry the same sperm id, the one
the detector gave the cell, so boxes, labels and COCO records line up.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..detection.results import FrameDetections
from ..io.errors import SpermInputError
from ..progress import drain
from ..synthetic.raster import CropMask, union_full
from ..tails import Con2DisParams, TailClustering, cluster_tails
from ..tails.stack import heads_from_boxes
from .cell_score import touches_border, whole_cell_scores
from .head_mask import head_masks
from .params import WEAK_SCORE_THRESHOLD, HeadMaskParams, TailMaskParams
from .second_pass import pair_leftover_tails, weak_pairing
from .tail_mask import tail_mask
from .tail_net_mask import tail_mask_net

__all__ = [
    "ENGINES",
    "WEAK_SCORE_THRESHOLD",
    "TAIL_FINDERS",
    "resolve_tail_finder",
    "SpermRecord",
    "FrameSegmentation",
    "iter_segment",
    "segment",
]

ENGINES = ("classic", "sam")
TAIL_FINDERS = ("net", "ridge")


def resolve_tail_finder(tail_finder, device: str = "cpu", flips: int | None = None):
    """``"ridge"`` -> None (the ridge filter); ``"net"`` -> the shipped tail network; a path -> that
    network's weights; a loaded :class:`~.tailnet.TailFinder` is returned as it is. ``flips``
    (default: the finder's own, :data:`~.tailnet.infer.DEFAULT_FLIPS` for a loaded one) sets how many
    flipped copies of each frame the network's probability is averaged over."""
    if tail_finder is None or tail_finder == "ridge":
        return None
    from .tailnet import TailFinder, load_tail_net

    if isinstance(tail_finder, TailFinder):
        finder = tail_finder
    else:
        finder = load_tail_net(None if tail_finder == "net" else tail_finder, device=device)
    return finder if flips is None else finder.with_flips(flips)


@dataclass
class SpermRecord:
    """One segmented cell (or an unpaired tail) in one frame.

    Attributes
    ----------
    sperm_id : int
        The detector's id for the cell (head and tail share it); unpaired tails get fresh ids above
        every head id.
    head : CropMask or None
        Head pixels; None for a tail without a head.
    tail : CropMask or None
        Flagellum pixels; None when no tail was paired. A pixel where two tails cross belongs to both.
    centreline : (N, 2) float array or None
        Tail centreline ``(row, col)`` from the head end to the tip.
    score : float
        The head detection's score (0 for an unpaired tail).
    engine : str
        ``"classic"`` or ``"sam"``.
    cell_score : float or None
        Confidence in the whole cell, head and traced tail together: the head score scaled down
        when the tail is missing or shorter than the frame's typical tail (see
        :func:`~.cell_score.whole_cell_scores`). None means not computed; ``whole_cell_score`` then
        falls back to ``score``.
    """

    sperm_id: int
    head: CropMask | None
    tail: CropMask | None
    centreline: np.ndarray | None
    score: float
    engine: str
    cell_score: float | None = None

    @property
    def whole_cell_score(self) -> float:
        """``cell_score`` when computed, else the head score."""
        return self.score if self.cell_score is None else self.cell_score

    @property
    def paired(self) -> bool:
        """True when the cell has both a head and a tail."""
        return self.head is not None and self.tail is not None

    @property
    def head_area(self) -> int:
        return 0 if self.head is None else self.head.area

    @property
    def tail_length(self) -> float:
        """Centreline arc length in pixels (0 without a tail)."""
        if self.centreline is None or len(self.centreline) < 2:
            return 0.0
        step = np.diff(np.asarray(self.centreline, float), axis=0)
        return float(np.hypot(step[:, 0], step[:, 1]).sum())

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The whole cell (head plus tail) as a full-frame boolean mask."""
        return union_full((self.head, self.tail), shape)


@dataclass
class FrameSegmentation:
    """Everything segmented in one frame.

    Attributes
    ----------
    frame : int
        Index in the stack (0 for a single image).
    shape : (int, int)
    sperm : list of SpermRecord
        Detected cells in detection order, then unpaired tails.
    clustering : TailClustering or None
        Con2Dis's full result (merge decisions, centrelines) for the heads scoring at least the
        score threshold; None when there were no tail pixels.
    stats : dict
        Engine counters (e.g. SAM decoder calls, rounds, seconds).
    second_clustering : TailClustering or None
        Con2Dis's second pass: the tails ``clustering`` left unpaired, offered to the heads still
        without a tail (see :mod:`~.second_pass`); None when there was no such pass.
    weak_clustering : TailClustering or None
        The tails still unpaired after that, offered to the weak heads; None when there was no
        such pass.
    """

    frame: int
    shape: tuple[int, int]
    sperm: list[SpermRecord]
    clustering: TailClustering | None = None
    stats: dict = field(default_factory=dict)
    second_clustering: TailClustering | None = None
    weak_clustering: TailClustering | None = None

    def head_labels(self) -> np.ndarray:
        """``(H, W)`` int32 labels of heads, value = sperm id."""
        out = np.zeros(self.shape, np.int32)
        for rec in self.sperm:
            if rec.head is not None:
                rec.head.paste(out, rec.sperm_id)
        return out

    def tail_labels(self) -> np.ndarray:
        """``(H, W)`` int32 labels of tails, value = sperm id (at a crossing the later cell shows)."""
        out = np.zeros(self.shape, np.int32)
        for rec in self.sperm:
            if rec.tail is not None:
                rec.tail.paste(out, rec.sperm_id)
        return out


def _as_frames(images) -> tuple[np.ndarray, bool]:
    arr = images if hasattr(images, "ndim") else np.asarray(images)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3):
        return arr[None], False
    if arr.ndim in (3, 4):
        return arr, True
    raise SpermInputError(
        f"image with shape {tuple(arr.shape)} is not a frame or a stack of frames; "
        "give (H, W), (H, W, 3), (F, H, W) or (F, H, W, 3)."
    )


def _as_detections(boxes, n_frames: int) -> list[FrameDetections]:
    """Head boxes per frame from FrameDetections (one or a list) or an (n, 4) array (one frame)."""
    if isinstance(boxes, FrameDetections):
        boxes = [boxes]
    if isinstance(boxes, Sequence) and boxes and isinstance(boxes[0], FrameDetections):
        dets = list(boxes)
    else:
        arr = np.asarray(boxes, float)
        if arr.size == 0:
            arr = arr.reshape(0, 4)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise SpermInputError(
                f"head boxes have shape {arr.shape}; give an (n, 4) array of [x, y, width, height] "
                "or the detector's FrameDetections."
            )
        n = len(arr)
        dets = [FrameDetections(arr, np.ones(n), np.full(n, 2), np.arange(1, n + 1))]
    if len(dets) != n_frames:
        raise SpermInputError(
            f"got detections for {len(dets)} frame(s) but the image has {n_frames}; "
            "give one FrameDetections per frame."
        )
    return dets


def _head_label_image(shape, masks: list[CropMask], boxes, ids) -> tuple[np.ndarray, list]:
    """Head labels from masks; a box whose mask came out empty gets its inscribed ellipse."""
    labels = np.zeros(shape, np.int32)
    heads: list[CropMask] = []
    for m, box, sid in zip(masks, boxes, ids, strict=True):
        if m.area < 3:
            ellipse = heads_from_boxes(shape, [box], [1]) > 0
            m = CropMask.from_full(ellipse)
        m.paste(labels, int(sid))
        heads.append(m)
    return labels, heads


def _set_cell_scores(records: list[SpermRecord], shape: tuple[int, int]) -> None:
    """Fill ``cell_score`` of the cells (records with a head) of one frame."""
    cells = whole_cell_scores(
        [r.score for r in records],
        [r.tail_length for r in records],  # 0 without a tail
        [touches_border(r.tail, shape) for r in records],
    )
    for r, c in zip(records, cells.tolist(), strict=True):
        r.cell_score = float(c)


def _segment_frame(
    image: np.ndarray,
    det: FrameDetections,
    frame: int,
    engine: str,
    sam,
    score_threshold: float,
    con2dis: Con2DisParams | None,
    sam_params,
    sam_mode: str,
    head_params: HeadMaskParams | None,
    tail_params: TailMaskParams | None,
    finder=None,
    weak_score_threshold: float | None = None,
) -> Generator[tuple[int, int], None, FrameSegmentation]:
    shape = image.shape[:2]
    keep = (det.classes == 2) & (det.scores >= score_threshold)
    boxes = det.boxes[keep].astype(float)
    ids = det.sperm_ids[keep].astype(int)
    scores = det.scores[keep].astype(float)
    weak = np.zeros_like(keep)
    if weak_score_threshold is not None and weak_score_threshold < score_threshold:
        weak = (det.classes == 2) & (det.scores >= weak_score_threshold) & ~keep
    stats: dict = {}
    extra_tails = np.zeros(shape, bool)
    if engine == "sam":
        from .sam.cascade import iter_sam_cascade

        result = yield from iter_sam_cascade(image, boxes, sam, mode=sam_mode, params=sam_params)
        masks = list(result.heads)
        for t in result.tails:
            t.paste(extra_tails)
        extra_tails |= np.asarray(result.residual, bool)
        stats = {
            "decoder_calls": result.decoder_calls,
            "embeddings": result.embeddings,
            "rounds": result.rounds,
            "seconds": result.seconds,
            "mode": result.mode,
        }
    else:
        masks = head_masks(image, boxes, params=head_params) if len(boxes) else []
    heads, head_crops = _head_label_image(shape, masks, boxes, ids)
    if engine == "sam":
        tails = extra_tails & (heads == 0)
    else:
        head_length = float(np.median(np.maximum(boxes[:, 2], boxes[:, 3]))) if len(boxes) else None
        if finder is not None:
            tails = tail_mask_net(
                image,
                heads if len(boxes) else None,
                head_length=head_length,
                params=tail_params,
                finder=finder,
            )
        else:
            tails = tail_mask(
                image, heads if len(boxes) else None, head_length=head_length, params=tail_params
            )
    clustering = None
    if tails.any():
        try:
            clustering = cluster_tails(tails, heads if len(boxes) else None, params=con2dis)
        except SpermInputError as exc:
            if "no tail" not in str(exc).lower():
                raise
    tails_found = [] if clustering is None else clustering.tails
    by_head = {int(t.head): t for t in tails_found if t.head is not None}
    unpaired = [t for t in tails_found if t.head is None]
    records = []
    for sid, crop, score in zip(ids, head_crops, scores, strict=True):
        t = by_head.get(int(sid))
        records.append(
            SpermRecord(
                int(sid),
                crop,
                None if t is None else t.mask,
                None if t is None else np.asarray(t.centreline, float),
                float(score),
                engine,
            )
        )
    # second pass (segmentation.second_pass): leftover tails to the heads without one, then to
    # the weak heads, which must meet their tail squarely
    second = weak_pass = None
    lone = [r for r in records if r.tail is None]
    if unpaired and lone:
        lone_ids = np.array([r.sperm_id for r in lone], int)
        mine = np.isin(heads, lone_ids)
        second = pair_leftover_tails(
            np.where(mine, heads, 0),
            [r.head for r in lone],
            lone_ids,
            np.array([r.score for r in lone], float),
            np.where(mine, 0, heads),
            unpaired,
            con2dis,
        )
        unpaired = second.unpaired
        by_id = {r.sperm_id: r for r in lone}
        for sid, _, t, _ in second.cells:
            by_id[sid].tail, by_id[sid].centreline = t.mask, np.asarray(t.centreline, float)
    if unpaired and weak.any():
        w_boxes, w_ids = det.boxes[weak].astype(float), det.sperm_ids[weak].astype(int)
        w_masks = head_masks(image, w_boxes, params=head_params)
        w_labels, w_crops = _head_label_image(shape, w_masks, w_boxes, w_ids)
        weak_pass = pair_leftover_tails(
            w_labels,
            w_crops,
            w_ids,
            det.scores[weak].astype(float),
            heads,
            unpaired,
            weak_pairing(con2dis),
        )
        unpaired = weak_pass.unpaired
        for sid, crop, t, score in weak_pass.cells:
            line = np.asarray(t.centreline, float)
            records.append(SpermRecord(sid, crop, t.mask, line, score, engine))
    _set_cell_scores(records, shape)
    next_id = max([0, *det.sperm_ids.tolist()]) + 1
    for t in unpaired:
        records.append(
            SpermRecord(next_id, None, t.mask, np.asarray(t.centreline, float), 0.0, engine, 0.0)
        )
        next_id += 1
    return FrameSegmentation(
        frame,
        shape,
        records,
        clustering,
        stats,
        None if second is None else second.clustering,
        None if weak_pass is None else weak_pass.clustering,
    )


def iter_segment(
    images,
    boxes,
    *,
    engine: str = "classic",
    sam=None,
    score_threshold: float = 0.3,
    con2dis: Con2DisParams | None = None,
    sam_params=None,
    sam_mode: str = "prompted",
    head_params: HeadMaskParams | None = None,
    tail_params: TailMaskParams | None = None,
    tail_finder="net",
    tail_flips: int | None = None,
    weak_score_threshold: float | None = WEAK_SCORE_THRESHOLD,
) -> Generator[tuple[int, int], None, list[FrameSegmentation]]:
    """Segment heads and tails frame by frame; yields ``(frames_done, total)``.

    Parameters
    ----------
    images : array
        ``(H, W)``, ``(H, W, 3)``, ``(F, H, W)`` or ``(F, H, W, 3)``; any real dtype.
    boxes : FrameDetections, list of FrameDetections, or (n, 4) array
        The detector's output (one per frame; head rows are used), or head boxes
        ``[x, y, w, h]`` for a single frame (ids 1..n).
    engine : {"classic", "sam"}
        ``classic`` needs no weights; ``sam`` needs ``sam`` (see
        :func:`napari_sperm.segmentation.sam.load_sam`).
    sam : SamHandle, optional
        A loaded SAM model for ``engine="sam"``.
    score_threshold : float
        Head boxes scoring at least this are segmented and paired with tails.
    weak_score_threshold : float or None
        Head boxes scoring from this up to ``score_threshold`` are *weak heads*. Once the others
        are paired (and the tails left over offered again to those that got none), the tails
        still unpaired are clustered with the weak heads, and a weak head is kept only when one
        of them meets it squarely (see :mod:`~.second_pass`). Default 0.1; None, or a value at or
        above ``score_threshold``, turns this off. Only boxes that carry a score
        (``FrameDetections``) can be weak.
    con2dis : Con2DisParams, optional
        Settings of the tail clustering.
    sam_params, sam_mode
        Settings of the SAM cascade (``"prompted"`` or ``"amg"``).
    head_params, tail_params : HeadMaskParams, TailMaskParams, optional
        Settings of the classic engine's head and tail masks.
    tail_finder : {"net", "ridge"}, path or TailFinder
        How the classic engine finds flagellum pixels: ``"net"`` (default) the tail network shipped
        with the package (:mod:`~napari_sperm.segmentation.tailnet`, CPU), ``"ridge"`` the oriented
        ridge filter (:func:`~.tail_mask.tail_mask`, no network at all), a path to other tail-network
        weights, or a loaded :class:`~.tailnet.TailFinder`. Unused by the ``sam`` engine.
    tail_flips : {1, 2, 4, 8}, optional
        The tail network's probability is averaged over this many flipped copies of each frame
        (default 4, or a loaded finder's own setting): steadier tail edges, at that many times the
        network's time. 1 runs the network once.

    Returns
    -------
    list of FrameSegmentation
        The generator's return value, one per frame.
    """
    if engine not in ENGINES:
        raise SpermInputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    if engine == "sam" and sam is None:
        raise SpermInputError("engine 'sam' needs a loaded SAM model; pass sam=load_sam(...).")
    if weak_score_threshold is not None and not 0.0 <= float(weak_score_threshold) <= 1.0:
        raise SpermInputError(
            f"weak_score_threshold {weak_score_threshold!r} is not a score; give one between 0 "
            "and 1, or None to keep only heads at the score threshold."
        )
    frames, _ = _as_frames(images)
    if frames.shape[0] == 0 or 0 in frames.shape[1:3]:
        raise SpermInputError(f"the image is empty (shape {tuple(frames.shape)}).")
    dets = _as_detections(boxes, frames.shape[0])
    finder = resolve_tail_finder(tail_finder, flips=tail_flips) if engine == "classic" else None
    out: list[FrameSegmentation] = []
    n = frames.shape[0]
    for f in range(n):
        frame = np.asarray(frames[f])
        inner = _segment_frame(
            frame,
            dets[f],
            f,
            engine,
            sam,
            score_threshold,
            con2dis,
            sam_params,
            sam_mode,
            head_params,
            tail_params,
            finder,
            weak_score_threshold,
        )
        out.append(drain(inner))
        yield f + 1, n
    return out


def segment(images, boxes, **kwargs) -> list[FrameSegmentation]:
    """:func:`iter_segment` without progress; same parameters and result."""
    return drain(iter_segment(images, boxes, **kwargs))
