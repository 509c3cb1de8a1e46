"""Inference: load the shipped (or a given) weights file and detect heads and whole cells.

Pipeline per batch of frames: :func:`.normalize.normalize_frame` -> one host-to-device copy ->
image pyramid (1, 1/2, 1/4) -> the network on each level (tiled when a level is larger than the
tile size) -> candidate cells (by default every cell reaching the score threshold) -> each gives a
head box and its whole-cell box (same score, same sperm id) -> a level keeps only cells whose
predicted head length belongs to it -> duplicates (across cells, levels and tiles) removed by
head-box overlap and head-centre distance -> each head box fitted to the head's outline in the
frame (:mod:`.refine`; ``refine_boxes``, on by default).
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..io.errors import SpermInputError
from ..io.weights import read_model
from ..progress import drain
from .decode import decode_level, suppress_overlapping
from .device import resolve_device
from .flips import check_flips, mean_over_flips, unflip
from .fused import as_input, inference_copy
from .levels import build_pyramid
from .model import SpermNet
from .normalize import grey_of_normalized, normalize_frame
from .refine import refine_head_boxes
from .results import FrameDetections
from .tiling import plan_tiles

__all__ = [
    "DEFAULT_FLIPS",
    "DEFAULT_WEIGHTS",
    "WEIGHTS_FORMAT",
    "Detector",
    "detect",
    "load_detector",
    "unflip_regression",
]

DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "default.pt"
WEIGHTS_FORMAT = "napari-sperm-detector"
_HINT = "pass --weights PATH or omit it for the default"

DEFAULT_FLIPS = 2  # the frame and its half turn: about 30 frames/s at 640x480 on 2 CPU cores
DEFAULT_INFERENCE = {
    "levels": 3,
    "level_bounds": [17.0, 58.0],
    "tile": 1024,
    "tile_margin": 128,
    "pad_multiple": 32,
    "peak_ratio": 0.0,
    "suppress_iou": 0.5,
    "suppress_radius": 0.4,
    "max_dets_per_level": 10000,
}
"""Inference settings; a weights file's ``config["inference"]`` overrides them key by key.

``peak_ratio`` (0..1) is read by :func:`.decode.candidate_cells`, ``suppress_iou`` and
``suppress_radius`` by :func:`.decode.suppress_overlapping`. Files written before ``peak_ratio``
existed were tuned for local maxima with ``suppress_radius`` alone; they get the defaults for the
keys they lack.
"""


def _bad(path: Path, why: str) -> SpermInputError:
    return SpermInputError(f"Cannot load detector weights {str(path)!r}: {why}; {_HINT}.")


def unflip_regression(reg: torch.Tensor, transform: tuple[bool, bool, bool]) -> torch.Tensor:
    """Regression channels computed on a flipped frame, in the frame's own terms.

    ``reg`` (B, 9, h, w) is already back in frame axes (:func:`.flips.unflip`); its channels (see
    :mod:`.model`) still describe the flipped frame: a column flip turns the sub-cell offset dx into
    1 - dx and swaps the left and right box edges, a row flip does the same to dy, top and bottom,
    and a transpose swaps x with y (offsets, head width with height, left with top, right with
    bottom). Exact because padded tiles are a multiple of the stride.
    """
    tr, rows, cols = transform
    r = reg.clone()
    if cols:
        r[:, 0] = 1 - r[:, 0]
        r[:, [4, 6]] = r[:, [6, 4]]
    if rows:
        r[:, 1] = 1 - r[:, 1]
        r[:, [5, 7]] = r[:, [7, 5]]
    if tr:
        r[:, [0, 1, 2, 3, 4, 5, 6, 7]] = r[:, [1, 0, 3, 2, 5, 4, 7, 6]]
    return r


def load_detector(
    weights: str | Path | None = None,
    device: str = "auto",
    flips: int = DEFAULT_FLIPS,
    refine_boxes: bool = True,
) -> Detector:
    """Load a detector from a weights file (``None``: the default shipped with the package).

    ``flips``: how many flipped copies of each frame the network's outputs are averaged over by
    default; ``refine_boxes``: whether head boxes are fitted to the heads' outlines by default (see
    :class:`Detector`).
    """
    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    dev = resolve_device(device)
    config, model = read_model(path, WEIGHTS_FORMAT, _bad, SpermNet)
    return Detector(model, config, dev, path, flips=flips, refine_boxes=refine_boxes)


class Detector:
    """A loaded detector on one device (see :func:`load_detector`).

    ``flips`` (1, 2, 4 or 8; default 2): the network runs on this many flipped copies of each frame
    (see :mod:`.flips`) and its head-centre probabilities and box regressions, flipped back, are
    averaged. More copies give steadier head scores and boxes, at that many times the network's
    time; :meth:`detect` can override it per call.

    ``refine_boxes`` (default True): each head box scoring at least the score threshold is
    replaced by the bounding box of the head's outline in the frame, each edge placed on the head's
    edge by a small classifier (:func:`.refine.refine_head_boxes`), and its whole-cell box widened
    to contain it. Head AP over IoU 0.5-0.95 rises by 0.14-0.22 and AR@100 to 0.90-0.94 on the
    synthetic stained, phase-high and brightfield fields, for some 5-12 ms per frame on the CPU;
    False gives the network's own boxes. :meth:`detect` can override it per call.
    """

    def __init__(
        self,
        model: SpermNet,
        config: dict,
        device: torch.device,
        path: Path | None = None,
        flips: int = DEFAULT_FLIPS,
        refine_boxes: bool = True,
    ):
        self.flips = check_flips(flips, "detector flips")
        self.refine_boxes = bool(refine_boxes)
        self.device = device
        self.path = path
        self.config = config
        inf = dict(DEFAULT_INFERENCE)
        inf.update(config.get("inference", {}))
        for key, zero_ok in (
            ("peak_ratio", True),
            ("suppress_iou", False),
            ("suppress_radius", True),
        ):
            v = inf[key]
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not number or not (0 <= v <= 1 if zero_ok else 0 < v <= 1):
                span = "0..1" if zero_ok else "(0, 1]"
                raise _bad(
                    path or Path("<config>"), f"inference {key} must be in {span}, not {v!r}"
                )
        self.inference = inf
        self.model = model.to(device).eval()
        # what inference runs: batch norm folded in, channels-last on the CPU (same outputs)
        self.net = inference_copy(self.model, device)

    # -- frames -------------------------------------------------------------------------------
    @staticmethod
    def _as_frames(frames) -> tuple[object, int, bool]:
        shape = getattr(frames, "shape", None)
        if shape is None:
            frames = np.asarray(frames)
            shape = frames.shape
        nd = len(shape)
        if nd == 2 or (nd == 3 and shape[-1] in (3, 4) and shape[0] > 4):
            single = True
        elif nd == 3 or nd == 4:
            single = False
        else:
            raise SpermInputError(
                f"Cannot detect in an array of shape {tuple(shape)}: expected a (H, W) or (H, W, 3) "
                "image or a (frames, H, W[, 3]) stack."
            )
        n = 1 if single else int(shape[0])
        hw = shape[:2] if single else shape[1:3]
        if n == 0 or any(int(s) == 0 for s in hw):
            raise SpermInputError(
                f"Cannot detect in an empty image stack (shape {tuple(shape)}); open a stack with "
                "at least one non-empty frame."
            )
        return frames, n, single

    @staticmethod
    def _frame(frames, i: int, single: bool) -> np.ndarray:
        f = frames if single else frames[i]
        if hasattr(f, "compute"):
            f = f.compute()
        return np.asarray(f)

    # -- core ---------------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor, flips: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Heat logits and regressions of one padded tile, averaged over ``flips`` copies."""
        if flips == 1:
            return self.net(as_input(x))

        def one(xf: torch.Tensor, transform) -> tuple[torch.Tensor, torch.Tensor]:
            h, r = self.net(as_input(xf))
            p = unflip(torch.sigmoid(h.float()), transform)
            return p, unflip_regression(unflip(r.float(), transform), transform)

        prob, reg = mean_over_flips(one, x, flips)
        prob = prob.clamp(1e-6, 1 - 1e-6)
        return torch.log(prob / (1 - prob)), reg

    def _run_level(self, x: torch.Tensor, score_threshold: float, flips: int) -> list[np.ndarray]:
        """Network + peak decoding on one pyramid level ``(B, 3, H, W)``, tiled if large."""
        inf = self.inference
        b, _, h, w = x.shape
        per_image: list[list[np.ndarray]] = [[] for _ in range(b)]
        mult = int(inf["pad_multiple"])
        for t in plan_tiles(h, w, int(inf["tile"]), int(inf["tile_margin"])):
            xt = x[:, :, t.y0 : t.y1, t.x0 : t.x1]
            th, tw = xt.shape[-2:]
            ph, pw = (-th) % mult, (-tw) % mult
            if ph or pw:
                xt = F.pad(xt, (0, pw, 0, ph))
            if self.device.type == "cuda":
                ctx = torch.autocast("cuda", dtype=torch.float16)
            else:
                ctx = nullcontext()
            with ctx:
                heat, reg = self._forward(xt, flips)
            dets = decode_level(
                heat,
                reg,
                score_threshold,
                int(inf["max_dets_per_level"]),
                float(inf["peak_ratio"]),
            )
            for i, d in enumerate(dets):
                d[:, [1, 5, 7, 10]] += t.x0
                d[:, [2, 6, 8, 11]] += t.y0
                cx, cy = d[:, 10], d[:, 11]
                inside = (cx >= t.core_x0) & (cx < t.core_x1) & (cy >= t.core_y0) & (cy < t.core_y1)
                per_image[i].append(d[inside])
        return [np.concatenate(p, 0) for p in per_image]

    def _detect_batch(
        self, normed: list[np.ndarray], score_threshold: float, flips: int
    ) -> list[np.ndarray]:
        """Raw detections of frames of one shape, each already :func:`.normalize_frame`'d."""
        inf = self.inference
        arr = np.stack(normed)
        x = torch.from_numpy(arr).to(self.device, non_blocking=True)
        h, w = arr.shape[-2:]
        bounds = [0.0, *[float(v) for v in inf["level_bounds"]], float("inf")]
        merged: list[list[np.ndarray]] = [[] for _ in normed]
        for k, xl in enumerate(build_pyramid(x, int(inf["levels"]))):
            if min(xl.shape[-2:]) < 8:
                break
            s = float(2**k)
            for i, d in enumerate(self._run_level(xl, score_threshold, flips)):
                d[:, 1:12] *= s
                hl = d[:, 9]
                lo, hi = bounds[k], bounds[k + 1] if k + 1 < len(bounds) else float("inf")
                if k == int(inf["levels"]) - 1:
                    hi = float("inf")
                merged[i].append(d[(hl >= lo) & (hl < hi)])
        out = []
        for parts in merged:
            d = np.concatenate(parts, 0) if parts else np.zeros((0, 14), np.float32)
            d = suppress_overlapping(d, float(inf["suppress_iou"]), float(inf["suppress_radius"]))
            out.append(self._clip(d, h, w))
        return out

    @staticmethod
    def _clip(d: np.ndarray, h: int, w: int) -> np.ndarray:
        """Clip boxes to the frame and snap their edges to pixel boundaries.

        A box encloses whole pixels, as the masks it stands for do (COCO boxes of masks have
        integer edges): each edge goes to the nearest pixel boundary, and a head box keeps at least
        one pixel. The whole-cell box contains the head box.
        """
        d = d.copy()
        hx0 = np.clip(np.rint(d[:, 1]), 0, w - 1)
        hy0 = np.clip(np.rint(d[:, 2]), 0, h - 1)
        hx1 = np.clip(np.maximum(np.rint(d[:, 1] + d[:, 3]), hx0 + 1), 0, w)
        hy1 = np.clip(np.maximum(np.rint(d[:, 2] + d[:, 4]), hy0 + 1), 0, h)
        ok = (d[:, 1] < w) & (d[:, 2] < h) & (d[:, 1] + d[:, 3] > 0) & (d[:, 2] + d[:, 4] > 0)
        ok &= (d[:, 3] > 0) & (d[:, 4] > 0)
        d[:, 1], d[:, 2], d[:, 3], d[:, 4] = hx0, hy0, hx1 - hx0, hy1 - hy0
        d[:, 5] = np.clip(np.minimum(np.rint(d[:, 5]), hx0), 0, w)
        d[:, 6] = np.clip(np.minimum(np.rint(d[:, 6]), hy0), 0, h)
        d[:, 7] = np.clip(np.maximum(np.rint(d[:, 7]), hx1), 0, w)
        d[:, 8] = np.clip(np.maximum(np.rint(d[:, 8]), hy1), 0, h)
        return d[ok]

    @staticmethod
    def _to_result(d: np.ndarray, frame: int) -> FrameDetections:
        n = len(d)
        ids = np.arange(1, n + 1)
        head = d[:, 1:5]
        cell = np.stack([d[:, 5], d[:, 6], d[:, 7] - d[:, 5], d[:, 8] - d[:, 6]], 1)
        boxes = np.empty((2 * n, 4), np.float32)
        boxes[0::2], boxes[1::2] = cell, head
        scores = np.repeat(d[:, 0], 2)
        classes = np.tile(np.array([1, 2]), n)
        return FrameDetections(boxes, scores, classes, np.repeat(ids, 2), frame)

    # -- public -------------------------------------------------------------------------------
    def iter_detect(
        self,
        frames,
        score_threshold: float = 0.3,
        batch_size: int = 4,
        flips: int | None = None,
        refine_boxes: bool | None = None,
    ) -> Generator[tuple[int, int], None, list[FrameDetections]]:
        """Detect frame by frame; yields ``(frames_done, total)`` after each batch.

        ``flips`` (1, 2, 4 or 8; default: the detector's :attr:`flips`) and ``refine_boxes``
        (default: the detector's :attr:`refine_boxes`): see :class:`Detector`.

        The generator's return value (``StopIteration.value``, or ``yield from``) is the list of
        :class:`FrameDetections`, one per frame with ``.frame`` its index. A frame without a single
        finite pixel (all NaN or infinite) raises :class:`~napari_sperm.io.errors.SpermInputError`
        naming it; NaN or infinite pixels in part of a frame read as its 1st-percentile level.
        """
        flips = self.flips if flips is None else check_flips(flips, "detector flips")
        refine = self.refine_boxes if refine_boxes is None else bool(refine_boxes)
        frames, n, single = self._as_frames(frames)
        batch_size = max(1, int(batch_size))
        results: list[FrameDetections] = []
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                idx = range(start, min(n, start + batch_size))
                batch = [self._frame(frames, i, single) for i in idx]
                for i, f in zip(idx, batch):
                    _check_finite(f, None if single else i)
                normed = [normalize_frame(f) for f in batch]
                shapes = {a.shape[-2:] for a in normed}
                # on the CPU one frame at a time is faster (cache-friendly), each refined right
                # after its network (its data still in cache); on a GPU the whole batch at once
                whole = len(shapes) == 1 and self.device.type != "cpu"
                groups = [list(range(len(batch)))] if whole else [[k] for k in range(len(batch))]
                for g in groups:
                    dets = self._detect_batch([normed[k] for k in g], score_threshold, flips)
                    for k, d in zip(g, dets):
                        found = self._to_result(d, idx[k])
                        if refine:  # the grey image from the network's normalised copy
                            f = batch[k]
                            finite = np.isfinite(f) if f.dtype.kind == "f" else None
                            grey = grey_of_normalized(normed[k], finite)
                            found = refine_head_boxes(f, found, grey=grey)
                        results.append(found)
                yield len(results), n
        return results

    def detect(
        self,
        frames,
        score_threshold: float = 0.3,
        batch_size: int = 4,
        flips: int | None = None,
        refine_boxes: bool | None = None,
    ) -> list[FrameDetections]:
        """Run :meth:`iter_detect` to the end and return its list."""
        return drain(self.iter_detect(frames, score_threshold, batch_size, flips, refine_boxes))


def _check_finite(frame: np.ndarray, index: int | None) -> None:
    """Refuse a float frame with no finite pixel: there is nothing in it to detect."""
    if frame.dtype.kind in "fc" and frame.size and not np.isfinite(frame).any():
        where = "the image" if index is None else f"frame {index}"
        raise SpermInputError(
            f"Cannot detect in {where}: it has no finite pixels (all NaN or infinite). "
            "Fix or drop it, then run again."
        )


def detect(
    image,
    weights: str | Path | None = None,
    device: str = "auto",
    score_threshold: float = 0.3,
    batch_size: int = 4,
    flips: int = DEFAULT_FLIPS,
    refine_boxes: bool = True,
) -> list[FrameDetections]:
    """One-call detection: :func:`load_detector` then :meth:`Detector.detect`."""
    det = load_detector(weights, device, flips, refine_boxes)
    return det.detect(image, score_threshold, batch_size)
