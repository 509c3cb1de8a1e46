"""Detect and segment image files (TIFF stacks, PNG, JPEG): the ``napari-sperm segment`` pipeline."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..detection.inputs import expand_inputs, frame_stack
from ..io import read_image
from .coco_output import SegmentedImage, segmentation_to_coco
from .segment import WEAK_SCORE_THRESHOLD, segment

__all__ = ["segment_files", "segmented_images"]


def segmented_images(
    name: str,
    frames,
    is_stack: bool,
    detector,
    *,
    engine: str = "classic",
    sam=None,
    score_threshold: float = 0.3,
    batch_size: int = 4,
    first: int = 0,
    tail_finder="net",
    weak_score_threshold: float | None = WEAK_SCORE_THRESHOLD,
) -> list[SegmentedImage]:
    """Detect and segment ``frames`` (frames ``first``, ``first + 1``, ... of the input ``name``).

    Heads are detected down to ``weak_score_threshold`` (when it is below ``score_threshold``);
    those under ``score_threshold`` are kept only when a leftover tail pairs with them (see
    :func:`~napari_sperm.segmentation.segment.iter_segment`).

    Returns
    -------
    list of SegmentedImage
        One per frame; ``frame`` is the index in the input (None for a single image).
    """
    lowest = score_threshold
    if weak_score_threshold is not None:
        lowest = min(score_threshold, weak_score_threshold)
    # segment outlines every head itself: head boxes fitted by the detector would change nothing
    # measurable (median IoUs within 0.006 on 8 fields per modality) and cost a second outline
    dets = detector.detect(frames, lowest, batch_size, refine_boxes=False)
    results = segment(
        frames,
        dets,
        engine=engine,
        sam=sam,
        score_threshold=score_threshold,
        tail_finder=tail_finder,
        weak_score_threshold=weak_score_threshold,
    )
    return [
        SegmentedImage(str(name), first + f if is_stack else None, res)
        for f, res in enumerate(results)
    ]


def segment_files(
    inputs: list[str | os.PathLike],
    detector,
    *,
    engine: str = "classic",
    sam=None,
    score_threshold: float = 0.3,
    batch_size: int = 4,
    log: Callable[[str], None] | None = None,
    tail_finder="net",
    tail_flips: int | None = None,
    weak_score_threshold: float | None = WEAK_SCORE_THRESHOLD,
    **info: Any,
) -> dict[str, Any]:
    """Detect, segment heads and tails, cluster tails, and return one COCO dataset.

    Parameters
    ----------
    inputs
        Image files or folders of them.
    detector
        A loaded :class:`~napari_sperm.detection.detector.Detector`.
    engine, sam
        Segmentation engine (``"classic"`` or ``"sam"`` with a loaded SAM model).
    score_threshold
        Heads scoring at least this are segmented and paired with tails.
    weak_score_threshold
        Heads scoring from this up to ``score_threshold`` are kept only when a tail that no other
        head took pairs with them (None: off).
    batch_size
        Frames per detector batch.
    tail_finder
        The classic engine's tail finder: ``"net"``, ``"ridge"``, a weights path or a loaded
        network (see :func:`~napari_sperm.segmentation.segment.iter_segment`).
    tail_flips
        How many flipped copies of each frame the tail network's probability is averaged over
        (1, 2, 4 or 8; default: the finder's own, 4 for the shipped network).
    log
        Called with one line per input file.
    **info
        Extra fields for the dataset's ``info``.

    Returns
    -------
    dict
        See :func:`~napari_sperm.segmentation.coco_output.segmentation_to_coco`.
    """
    from .segment import resolve_tail_finder

    files = expand_inputs(list(inputs))
    finder = resolve_tail_finder(tail_finder, flips=tail_flips) if engine == "classic" else None
    items: list[SegmentedImage] = []
    for k, name in enumerate(files, start=1):
        img = read_image(name)
        frames, is_stack = frame_stack(img.data, img.rgb)
        found = segmented_images(
            name,
            frames,
            is_stack,
            detector,
            engine=engine,
            sam=sam,
            score_threshold=score_threshold,
            batch_size=batch_size,
            tail_finder=finder if finder is not None else "ridge",
            weak_score_threshold=weak_score_threshold,
        )
        items.extend(found)
        results = [item.result for item in found]
        cells = sum(1 for r in results for s in r.sperm if s.head is not None)
        paired = sum(1 for r in results for s in r.sperm if s.paired)
        if log is not None:
            log(
                f"[segment] {k}/{len(files)} {name}: {len(frames)} frame(s), {cells} heads, "
                f"{paired} with a tail"
            )
    if engine == "classic":
        info.setdefault("tail_finder", _finder_name(finder))
        if finder is not None:
            info.setdefault("tail_flips", finder.flips)
    info.setdefault("weak_score_threshold", weak_score_threshold)
    return segmentation_to_coco(
        items, engine=engine, score_threshold=float(score_threshold), **info
    )


def _finder_name(finder) -> str:
    """How a run's tails were found, for the dataset's ``info``."""
    if finder is None:
        return "ridge"
    from .tailnet import DEFAULT_TAIL_WEIGHTS

    same = finder.path is not None and finder.path.resolve() == DEFAULT_TAIL_WEIGHTS.resolve()
    return "net" if same else f"net:{finder.path}"
