"""The SAM cascade: heads from head-box prompts, then single tails picked off round after round.

``mode="prompted"`` (default, ours):

1. The frame becomes uint8 RGB (robust 1st..99.5th percentile scaling; grey replicated) and is
   embedded once.
2. Heads: one box prompt per detected head box, decoded in batches; the best-scoring of SAM's
   three outputs is kept (not ``masks[0]``), limited to the box grown by ``head_margin_ratio``.
3. Heads are painted over with their local background (per-channel median of a ring around each
   head: works for grey phase contrast and stained colour alike) and, with ``reembed="once"``, the
   edited frame is embedded a second time. This is the only re-embedding: later rounds subtract
   accepted tails from the decoded masks instead of re-embedding (``reembed="each_round"`` paints
   them over and re-embeds every round, as CS3 does; ``"never"`` keeps one embedding and puts
   negative points on nearby heads).
4. Tail candidates are the classic ridge-filter tail pixels (:func:`~..tail_mask.tail_mask`, with
   the box ellipses as heads). The first round skeletonises them, cuts the skeleton at junctions
   (crossings) and places one prompt per piece: up to ``max_points_per_prompt`` positive points
   ``prompt_spacing_ratio`` head lengths apart along it. Decoded masks (heads removed) that pass the
   single-tail test (:mod:`.tailtest`) are accepted; a mask may share a crossing with a tail
   accepted before, one sharing more is tested without it.
5. Later rounds do what CS3's "remove and run again" does, without re-embedding: masks rejected
   before are tested again without the tails accepted since (no decoding: an "X" minus one tail is
   the other), those still rejected next to an accepted tail are prompted once more with that
   tail's nearest pixels as negative points, and new pieces of unexplained candidates get prompts.
   Rounds stop when one accepts nothing new (after ``min_rounds``), nothing is left to prompt, or
   at ``max_rounds``. Candidate pixels not explained by accepted tails are the ``residual``
   (crossings, tangles) for Con2Dis.

``mode="amg"`` (CS3 as published, for comparison): every round runs SAM's automatic mask generator
(``amg_points_per_side``^2 prompts, one embedding), assigns to each head box its best-overlapping
mask, accepts masks that pass the same single-tail test, paints heads and tails over, and repeats.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from ...detection.normalize import normalize_frame
from ...io.errors import SpermInputError
from ...progress import drain
from ...synthetic.raster import CropMask
from ..tail_mask import as_grey, tail_mask
from .compat import import_segment_anything
from .params import CASCADE_MODES, SamCascadeParams
from .tailtest import TailTestSettings, centreline, crossing_number, single_tail_test

__all__ = ["CascadeResult", "iter_sam_cascade", "sam_cascade", "tail_test_settings"]

_EIGHT = np.ones((3, 3), bool)


@dataclass
class CascadeResult:
    """What the SAM cascade found in one frame.

    Attributes
    ----------
    heads : list of CropMask
        One per input box, in order; ``CropMask.empty()`` where SAM found no head.
    tails : list of CropMask
        Single tails accepted by the rounds.
    residual : (H, W) bool array
        Tail-like pixels not explained by accepted tails (crossings, tangles), for Con2Dis.
    decoder_calls : int
        Prompts decoded by SAM's mask decoder (one per box / point prompt / AMG grid point).
    embeddings : int
        Image-encoder passes (``set_image``).
    rounds : int
        Tail rounds run.
    seconds : float
        Wall time of the whole cascade.
    mode : str
        ``"prompted"`` or ``"amg"``.
    """

    heads: list[CropMask]
    tails: list[CropMask]
    residual: np.ndarray
    decoder_calls: int
    embeddings: int
    rounds: int
    seconds: float
    mode: str


class _Counter:
    """Counts mask-decoder prompts and image-encoder passes with forward pre-hooks."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.decoder_calls = 0
        self.embeddings = 0
        self._hooks: list = []

    def _on_decoder(self, module, args, kwargs) -> None:
        sparse = kwargs.get("sparse_prompt_embeddings")
        if sparse is None and len(args) > 2:
            sparse = args[2]
        self.decoder_calls += int(sparse.shape[0]) if sparse is not None else 1

    def _on_encoder(self, module, args) -> None:
        self.embeddings += int(args[0].shape[0]) if args else 1

    def __enter__(self) -> _Counter:
        self._hooks = [
            self.model.mask_decoder.register_forward_pre_hook(self._on_decoder, with_kwargs=True),
            self.model.image_encoder.register_forward_pre_hook(self._on_encoder),
        ]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []


# ------------------------------------------------------------------------------------------
# Inputs and scales
# ------------------------------------------------------------------------------------------


def _as_rgb8(image: np.ndarray) -> np.ndarray:
    """Any grey / RGB frame as ``(H, W, 3)`` uint8 (robust scaling, grey replicated)."""
    as_grey(image)  # validates (one-line SpermInputError for bad frames)
    x = normalize_frame(np.asarray(image))
    x = np.clip(x, 0.0, 1.0) * 255.0 + 0.5
    return np.ascontiguousarray(np.moveaxis(x.astype(np.uint8), 0, -1))


def _check_boxes(boxes, shape: tuple[int, int]) -> np.ndarray:
    b = np.asarray(boxes if boxes is not None else np.zeros((0, 4)), float)
    if b.size == 0:
        return np.zeros((0, 4))
    if b.ndim != 2 or b.shape[1] != 4 or not np.isfinite(b).all():
        raise SpermInputError(
            f"Head boxes must be an (n, 4) array of finite [x, y, width, height], got shape {b.shape}."
        )
    return b


def _head_length(boxes: np.ndarray, p: SamCascadeParams) -> float:
    if p.head_length_px:
        return float(p.head_length_px)
    if len(boxes):
        return float(max(2.0, np.median(np.maximum(boxes[:, 2], boxes[:, 3]))))
    return float(p.default_head_length_px)


def _tail_width(head_length: float, p: SamCascadeParams) -> float:
    return max(p.min_tail_width_px, p.tail_width_ratio * head_length)


def tail_test_settings(head_length: float, p: SamCascadeParams | None = None) -> TailTestSettings:
    """Pixel thresholds of the single-tail test for a head length.

    Parameters
    ----------
    head_length : float
        Typical head length, pixels.
    p : SamCascadeParams, optional

    Returns
    -------
    TailTestSettings
    """
    p = p or SamCascadeParams()
    width = _tail_width(head_length, p)
    return TailTestSettings(
        min_length_px=p.min_length_ratio * head_length,
        max_width_px=p.max_width_ratio * width,
        spur_px=max(2, int(round(p.spur_ratio * head_length))),
        kink_arm_px=max(3.0, p.kink_arm_ratio * head_length),
        kink_end_px=p.kink_end_ratio * head_length,
        min_bend_deg=p.min_bend_angle_deg,
        speck_fraction=p.speck_fraction,
        max_gap_px=p.max_gap_ratio * head_length,
    )


# ------------------------------------------------------------------------------------------
# Masks
# ------------------------------------------------------------------------------------------


def _crop(mask: np.ndarray) -> CropMask:
    """Full-frame mask as a tight CropMask (empty when nothing is set)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return CropMask.empty()
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return CropMask((int(r0), int(c0)), mask[r0:r1, c0:c1].copy())


def _box_window(box, margin: float, shape) -> tuple[slice, slice]:
    x, y, w, h = box
    r0 = max(0, int(np.floor(y - margin * h)))
    c0 = max(0, int(np.floor(x - margin * w)))
    r1 = min(shape[0], int(np.ceil(y + h + margin * h)))
    c1 = min(shape[1], int(np.ceil(x + w + margin * w)))
    return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


def _head_from_mask(mask: np.ndarray, box, p: SamCascadeParams) -> CropMask:
    """The piece of ``mask`` that overlaps ``box`` most, inside the grown box; empty if too small."""
    win = _box_window(box, p.head_margin_ratio, mask.shape)
    local = mask[win]
    x, y, w, h = box
    if not local.any() or w <= 0 or h <= 0:
        return CropMask.empty()
    labels, n = ndi.label(local, _EIGHT)
    inner = np.zeros(local.shape, bool)
    inner[
        max(0, int(y) - win[0].start) : max(0, int(np.ceil(y + h)) - win[0].start),
        max(0, int(x) - win[1].start) : max(0, int(np.ceil(x + w)) - win[1].start),
    ] = True
    overlap = np.bincount(labels[inner].ravel(), minlength=n + 1)[1:]
    if overlap.size == 0 or overlap.max() == 0:
        return CropMask.empty()
    piece = labels == int(np.argmax(overlap)) + 1
    if piece.sum() < p.min_head_fill * w * h:
        return CropMask.empty()
    full = np.zeros(mask.shape, bool)
    full[win] = piece
    return _crop(full)


def _ellipse(box, shape) -> np.ndarray:
    """Filled ellipse inscribed in a box, as a full-frame mask."""
    x, y, w, h = box
    win = _box_window(box, 0.0, shape)
    rr, cc = np.mgrid[win[0], win[1]]
    inside = ((cc + 0.5 - x - w / 2) / max(w / 2, 0.5)) ** 2 + (
        (rr + 0.5 - y - h / 2) / max(h / 2, 0.5)
    ) ** 2 <= 1
    out = np.zeros(shape, bool)
    out[win] = inside
    return out


def _paint_background(rgb: np.ndarray, regions: list[np.ndarray], ring: int) -> np.ndarray:
    """Copy of ``rgb`` with each region filled with the median colour of a ring around it."""
    out = rgb.copy()
    if not regions:
        return out
    union = np.logical_or.reduce(regions)
    for region in regions:
        sl = ndi.find_objects(region.astype(np.uint8))
        if not sl or sl[0] is None:
            continue
        r, c = sl[0]
        win = (
            slice(max(0, r.start - ring - 1), min(rgb.shape[0], r.stop + ring + 1)),
            slice(max(0, c.start - ring - 1), min(rgb.shape[1], c.stop + ring + 1)),
        )
        local = region[win]
        band = ndi.binary_dilation(local, _EIGHT, iterations=ring) & ~union[win]
        if not band.any():
            band = ~union[win]
        if not band.any():
            continue
        colour = np.median(rgb[win][band], axis=0)
        out[win][local] = colour.astype(np.uint8)
    return out


# ------------------------------------------------------------------------------------------
# Prompting
# ------------------------------------------------------------------------------------------


def _decode(
    predictor,
    points: list[tuple[np.ndarray, np.ndarray]] | None = None,
    boxes: np.ndarray | None = None,
    batch: int = 16,
) -> list[tuple[np.ndarray, float]]:
    """Decode prompts on the current embedding; best-scoring of the 3 outputs per prompt.

    ``points`` is a list of ``(coords (k, 2) xy, labels (k,))``, padded with label -1 to a common
    length; ``boxes`` is ``(n, 4)`` xyxy. Returns ``(mask (H, W) bool, score)`` per prompt.
    """
    n = len(points) if points is not None else len(boxes)
    out: list[tuple[np.ndarray, float]] = []
    size = predictor.original_size
    dev = predictor.device
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        kwargs = {"point_coords": None, "point_labels": None, "boxes": None}
        if points is not None:
            chunk = points[start:stop]
            k = max(len(c) for c, _ in chunk)
            coords = np.zeros((len(chunk), k, 2), np.float32)
            labels = -np.ones((len(chunk), k), np.float32)
            for i, (c, lab) in enumerate(chunk):
                coords[i, : len(c)] = c
                labels[i, : len(c)] = lab
            coords = predictor.transform.apply_coords(coords, size)
            kwargs["point_coords"] = torch.as_tensor(coords, dtype=torch.float32, device=dev)
            kwargs["point_labels"] = torch.as_tensor(labels, dtype=torch.int64, device=dev)
        else:
            xyxy = predictor.transform.apply_boxes(np.asarray(boxes[start:stop], float), size)
            kwargs["boxes"] = torch.as_tensor(xyxy, dtype=torch.float32, device=dev)
        with torch.inference_mode():
            masks, scores, _ = predictor.predict_torch(multimask_output=True, **kwargs)
        best = torch.argmax(scores, dim=1)
        idx = torch.arange(len(best), device=best.device)
        sel = masks[idx, best].cpu().numpy().astype(bool)
        sc = scores[idx, best].float().cpu().numpy()
        out.extend((sel[i], float(sc[i])) for i in range(len(best)))
    return out


def _branches(remaining: np.ndarray, min_len: float) -> list[np.ndarray]:
    """Skeleton pieces of ``remaining`` between junctions, each as an ordered ``(n, 2)`` path."""
    skel = skeletonize(remaining)
    junction = crossing_number(skel) >= 3
    pieces = skel & ~ndi.binary_dilation(junction, _EIGHT)
    labels, n = ndi.label(pieces, _EIGHT)
    out = []
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        local = labels[sl] == i
        if local.sum() < min_len:
            continue
        path, arc = centreline(local)
        if arc.size and arc[-1] + 1 >= min_len:
            out.append(path + np.array([sl[0].start, sl[1].start]))
    return out


def _points_along(path: np.ndarray, spacing: float, most: int) -> np.ndarray:
    """Up to ``most`` points spread evenly along a path, as ``(k, 2)`` xy."""
    steps = np.hypot(*np.diff(path, axis=0).T) if len(path) > 1 else np.zeros(0)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    k = int(np.clip(np.floor(arc[-1] / max(spacing, 1.0)), 1, most))
    targets = arc[-1] * (np.arange(k) + 0.5) / k
    idx = np.clip(np.searchsorted(arc, targets), 0, len(path) - 1)
    rc = path[idx]
    return rc[:, ::-1].astype(np.float32) + 0.5


def _negatives(pts: np.ndarray, centres: np.ndarray, reach: float) -> np.ndarray:
    """Head centres (xy) within ``reach`` of any positive point, nearest two."""
    if centres.size == 0:
        return np.zeros((0, 2), np.float32)
    d = np.hypot(*(centres[:, None, :] - pts[None, :, :]).transpose(2, 0, 1)).min(axis=1)
    near = np.argsort(d)[:2]
    return centres[near[d[near] <= reach]].astype(np.float32)


# ------------------------------------------------------------------------------------------
# Rounds
# ------------------------------------------------------------------------------------------


@dataclass
class _State:
    rgb: np.ndarray
    head_length: float
    width: float
    settings: TailTestSettings
    blocked: np.ndarray  # heads (grown): never tail
    candidates: np.ndarray
    tails: list[CropMask]
    taken: np.ndarray  # union of accepted tails
    max_shared: float = 0.3


def _accept(state: _State, mask: np.ndarray, pts: np.ndarray | None = None) -> bool:
    """Run the single-tail test on ``mask`` minus the heads; record it when it passes.

    A mask sharing at most ``max_shared_fraction`` of its pixels with tails accepted before is
    tested whole (a crossing: both tails keep the crossing pixels, so the later one is not cut in
    two). Sharing more, it is tested without the accepted tails: an "X" of two tails minus the
    accepted one is the other (its two halves bridged by the test), a repeat of an accepted tail
    leaves only slivers. With ``pts`` (the positive points of its prompt), at least half of them must
    lie in the mask.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return False
    cols = np.flatnonzero(mask.any(axis=0))
    win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    own = mask[win] & ~state.blocked[win]
    area = int(own.sum())
    if area == 0:
        return False
    if pts is not None and len(pts):
        r = np.clip(pts[:, 1].astype(int) - win[0].start, 0, own.shape[0] - 1)
        c = np.clip(pts[:, 0].astype(int) - win[1].start, 0, own.shape[1] - 1)
        if 2 * int(own[r, c].sum()) < len(pts):
            return False
    taken = state.taken[win]
    if (own & taken).sum() > state.max_shared * area:
        own = own & ~taken
        if not own.any():
            return False
    verdict = single_tail_test(own, state.settings)
    if not verdict.ok:
        return False
    box = _crop(verdict.mask)
    tail = CropMask((box.offset[0] + win[0].start, box.offset[1] + win[1].start), box.mask)
    state.tails.append(tail)
    tail.paste(state.taken)
    return True


def _prompt(pts: np.ndarray, neg) -> tuple[np.ndarray, np.ndarray]:
    """Point prompt: positive ``pts`` and negative ``neg`` (xy), with their labels."""
    neg = np.asarray(neg, np.float32).reshape(-1, 2)
    coords = np.concatenate([pts, neg]).astype(np.float32)
    return coords, np.r_[np.ones(len(pts)), np.zeros(len(neg))]


def _negatives_from_tails(state: _State, pts: np.ndarray, reach: float, edt) -> np.ndarray:
    """Nearest accepted-tail pixel (xy) of each positive point, when within ``reach``; unique."""
    dist, (ir, ic) = edt
    r = np.clip(pts[:, 1].astype(int), 0, dist.shape[0] - 1)
    c = np.clip(pts[:, 0].astype(int), 0, dist.shape[1] - 1)
    near = dist[r, c] <= reach
    xy = np.unique(np.column_stack([ic[r, c][near], ir[r, c][near]]), axis=0)
    return xy.astype(np.float32) + 0.5


def _residual(state: _State, p: SamCascadeParams) -> np.ndarray:
    grow = max(1, int(round(state.width)))
    explained = (
        ndi.binary_dilation(state.taken, _EIGHT, iterations=grow)
        if state.taken.any()
        else state.taken
    )
    res = state.candidates & ~explained & ~state.blocked
    if not res.any():
        return res
    labels, n = ndi.label(res, _EIGHT)
    length = ndi.sum(skeletonize(res), labels, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = np.asarray(length) >= p.residual_min_ratio * state.head_length
    return keep[labels]


def _prepare(
    image, boxes, p, candidates
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray | None]:
    rgb = _as_rgb8(image)
    b = _check_boxes(boxes, rgb.shape[:2])
    hl = _head_length(b, p)
    if candidates is not None:
        candidates = np.asarray(candidates, bool)
        if candidates.shape != rgb.shape[:2]:
            raise SpermInputError(
                f"candidates has shape {candidates.shape} but the image is {rgb.shape[:2]}."
            )
    return rgb, b, hl, candidates


def _finish_heads(heads_list, boxes, shape, p, width) -> tuple[list[CropMask], np.ndarray, list]:
    """Heads as CropMasks, the grown head area that is never tail, and regions to paint over."""
    grow = max(1, int(round(p.head_erase_ratio * width)))
    regions = []
    for head, box in zip(heads_list, boxes):
        region = head.to_full(shape) if head.mask.size else _ellipse(box, shape)
        if region.any():
            regions.append(ndi.binary_dilation(region, _EIGHT, iterations=grow))
    blocked = np.logical_or.reduce(regions) if regions else np.zeros(shape, bool)
    return heads_list, blocked, regions


def _candidates(image, boxes, blocked, hl, given) -> np.ndarray:
    """Tail-like pixels outside the heads: ``given``, else the classic ridge-filter tail mask.

    The classic filter gets the ellipses inscribed in the detector's boxes as heads (they set the
    tail polarity robustly, whatever SAM made of the heads); SAM's grown heads are removed after.
    """
    if given is not None:
        return given & ~blocked
    shape = blocked.shape
    labels = np.zeros(shape, np.int32)
    for i, box in enumerate(boxes, start=1):
        labels[_ellipse(box, shape)] = i
    return tail_mask(image, labels if len(boxes) else None, head_length=hl) & ~blocked


def _iter_prompted(image, boxes, sam, p: SamCascadeParams, candidates, counter):
    pred = sam.predictor
    rgb, b, hl, given = _prepare(image, boxes, p, candidates)
    shape = rgb.shape[:2]
    width = _tail_width(hl, p)
    total = 3 + p.max_rounds
    yield 1, total
    pred.set_image(rgb)
    yield 2, total
    xyxy = np.column_stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]])
    decoded = _decode(pred, boxes=xyxy, batch=p.batch_size) if len(b) else []
    heads = [_head_from_mask(m, box, p) for (m, _), box in zip(decoded, b)]
    heads, blocked, regions = _finish_heads(heads, b, shape, p, width)
    cand = _candidates(image, b, blocked, hl, given)
    state = _State(
        rgb,
        hl,
        width,
        tail_test_settings(hl, p),
        blocked,
        cand,
        [],
        np.zeros(shape, bool),
        p.max_shared_fraction,
    )
    if p.reembed in ("once", "each_round") and regions and cand.any():
        state.rgb = _paint_background(rgb, regions, max(2, int(round(2 * width))))
        pred.set_image(state.rgb)
    yield 3, total
    centres = (
        np.column_stack([b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2])
        if len(b)
        else np.zeros((0, 2))
    )
    prompted = np.zeros(shape, bool)
    pending: list[tuple[np.ndarray, np.ndarray, bool]] = []  # (points, mask, re-prompted) rejected
    rounds = 0
    ring = max(2, int(round(2 * width)))
    for _ in range(p.max_rounds):
        new = 0
        # Masks rejected before are tested again without the tails accepted since (no decoding);
        # those still rejected and next to an accepted tail are prompted once more, with that
        # tail's nearest pixels as negative points.
        retest, pending = pending, []
        prompts, positives = [], []
        edt = ndi.distance_transform_edt(~state.taken, return_indices=True) if state.tails else None
        for pts, mask, tried in retest:
            if _accept(state, mask):
                new += 1
                continue
            neg = (
                _negatives_from_tails(state, pts, hl, edt) if edt is not None and not tried else ()
            )
            if len(neg):
                prompts.append(_prompt(pts, neg))
                positives.append(pts)
            else:
                pending.append((pts, mask, tried))
        n_again = len(prompts)
        remaining = state.candidates & ~state.taken & ~prompted
        for path in _branches(remaining, p.min_branch_ratio * hl) if remaining.any() else []:
            pts = _points_along(path, p.prompt_spacing_ratio * hl, p.max_points_per_prompt)
            neg = _negatives(pts, centres, 1.5 * hl) if p.reembed == "never" else np.zeros((0, 2))
            prompts.append(_prompt(pts, neg))
            positives.append(pts)
            prompted[path[:, 0], path[:, 1]] = True
        if not prompts and new == 0:
            break
        rounds += 1
        if p.reembed == "each_round" and rounds > 1 and state.tails:
            state.rgb = _paint_background(state.rgb, [t.to_full(shape) for t in state.tails], ring)
            pred.set_image(state.rgb)
        prompted = ndi.binary_dilation(prompted, _EIGHT, iterations=max(1, int(round(width))))
        decoded = _decode(pred, points=prompts, batch=p.batch_size) if prompts else []
        for i in np.argsort([-score for _, score in decoded], kind="stable"):
            if _accept(state, decoded[i][0], pts=positives[i]):
                new += 1
            else:
                pending.append((positives[i], decoded[i][0], bool(i < n_again)))
        yield 3 + rounds, total
        if new == 0 and rounds >= p.min_rounds:
            break
    return heads, state, rounds


def _iter_amg(image, boxes, sam, p: SamCascadeParams, candidates, counter):
    sa = import_segment_anything()
    rgb, b, hl, given = _prepare(image, boxes, p, candidates)
    shape = rgb.shape[:2]
    width = _tail_width(hl, p)
    total = 1 + p.max_rounds
    yield 1, total
    gen = sa.SamAutomaticMaskGenerator(
        sam.model,
        points_per_side=p.amg_points_per_side,
        points_per_batch=p.amg_points_per_batch,
        pred_iou_thresh=p.amg_pred_iou_thresh,
        stability_score_thresh=p.amg_stability_score_thresh,
        box_nms_thresh=p.amg_box_nms_thresh,
        output_mode="binary_mask",
    )
    heads: list[CropMask] = [CropMask.empty()] * len(b)
    settings = tail_test_settings(hl, p)
    state = _State(
        rgb.copy(),
        hl,
        width,
        settings,
        np.zeros(shape, bool),
        np.zeros(shape, bool),
        [],
        np.zeros(shape, bool),
        p.max_shared_fraction,
    )
    box_area = np.maximum(b[:, 2] * b[:, 3], 1.0) if len(b) else np.zeros(0)
    rounds = 0
    ring = max(2, int(round(2 * width)))
    for _ in range(p.max_rounds):
        rounds += 1
        with torch.inference_mode():
            records = gen.generate(state.rgb)
        masks = [r for r in records if r["area"] <= p.amg_max_area_fraction * shape[0] * shape[1]]
        masks.sort(key=lambda r: -float(r["predicted_iou"]))
        used, paint, new = set(), [], 0
        for j, box in enumerate(b):
            if heads[j].mask.size:
                continue
            win = _box_window(box, 0.0, shape)
            best, best_iou = None, p.amg_head_iou
            for k, r in enumerate(masks):
                if k in used:
                    continue
                inter = float(r["segmentation"][win].sum())
                iou = inter / (r["area"] + box_area[j] - inter)
                if iou >= best_iou:
                    best, best_iou = k, iou
            if best is not None:
                head = _head_from_mask(masks[best]["segmentation"], box, p)
                if head.mask.size:
                    used.add(best)
                    heads[j] = head
                    paint.append(head.to_full(shape))
                    new += 1
        grow = max(1, int(round(p.head_erase_ratio * width)))
        paint = [ndi.binary_dilation(m, _EIGHT, iterations=grow) for m in paint]
        for m in paint:
            state.blocked |= m
        n_before = len(state.tails)
        for k, r in enumerate(masks):
            if k not in used:
                new += _accept(state, np.asarray(r["segmentation"], bool))
        paint += [t.to_full(shape) for t in state.tails[n_before:]]
        state.rgb = _paint_background(state.rgb, paint, ring)
        yield 1 + rounds, total
        if new == 0 and rounds >= p.min_rounds:
            break
    heads_done, blocked, _ = _finish_heads(heads, b, shape, p, width)
    state.blocked = blocked
    state.candidates = _candidates(image, b, blocked, hl, given)
    return heads_done, state, rounds


def iter_sam_cascade(
    image: np.ndarray,
    boxes,
    sam,
    *,
    mode: str = "prompted",
    params: SamCascadeParams | None = None,
    candidates: np.ndarray | None = None,
) -> Generator[tuple[int, int], None, CascadeResult]:
    """Segment heads and single tails of one frame with SAM, yielding progress.

    Parameters
    ----------
    image : array
        ``(H, W)`` grey or ``(H, W, 3)`` RGB frame, any real dtype.
    boxes : (n, 4) array
        Head boxes ``[x, y, width, height]`` (detector class 2); may be empty.
    sam : SamHandle
        From :func:`~.model.load_sam` or :func:`~.model.tiny_sam`.
    mode : {"prompted", "amg"}
        Our prompted cascade, or the automatic-mask-generator cascade as published (CS3).
    params : SamCascadeParams, optional
    candidates : (H, W) bool array, optional
        Tail-like pixels to prompt along (default: the classic ridge-filter tail mask).

    Yields
    ------
    (done, total) : tuple of int
        Steps done so far; the generator may be closed between steps (cancel).

    Returns
    -------
    CascadeResult
        The generator's return value (``StopIteration.value`` or ``yield from``).

    Raises
    ------
    SpermInputError
        Bad frame, boxes or mode.
    """
    p = params or SamCascadeParams()
    if mode not in CASCADE_MODES:
        raise SpermInputError(
            f"SAM cascade mode must be one of {', '.join(CASCADE_MODES)}, not {mode!r}."
        )
    t0 = time.perf_counter()
    run = _iter_prompted if mode == "prompted" else _iter_amg
    with _Counter(sam.model) as counter:
        yield 0, (3 + p.max_rounds) if mode == "prompted" else (1 + p.max_rounds)
        heads, state, rounds = yield from run(image, boxes, sam, p, candidates, counter)
        residual = _residual(state, p)
    total = (3 + p.max_rounds) if mode == "prompted" else (1 + p.max_rounds)
    yield total, total
    return CascadeResult(
        heads=list(heads),
        tails=state.tails,
        residual=residual,
        decoder_calls=counter.decoder_calls,
        embeddings=counter.embeddings,
        rounds=rounds,
        seconds=time.perf_counter() - t0,
        mode=mode,
    )


def sam_cascade(
    image: np.ndarray,
    boxes,
    sam,
    *,
    mode: str = "prompted",
    params: SamCascadeParams | None = None,
    candidates: np.ndarray | None = None,
) -> CascadeResult:
    """:func:`iter_sam_cascade` without progress; same parameters and result."""
    return drain(
        iter_sam_cascade(image, boxes, sam, mode=mode, params=params, candidates=candidates)
    )
