"""Detect on image files (TIFF stacks, PNG, JPEG) and collect a COCO prediction dataset."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..io import read_image
from .coco_output import ImageRecord, detections_to_coco
from .inputs import expand_inputs, frame_stack

__all__ = ["detect_files", "detection_records"]


def detection_records(
    name: str,
    frames,
    is_stack: bool,
    detector,
    score_threshold: float,
    batch_size: int,
    first: int = 0,
) -> list[ImageRecord]:
    """Detect on ``frames`` (frames ``first``, ``first + 1``, ... of the input ``name``).

    Returns
    -------
    list of ImageRecord
        One per frame; ``frame`` is the index in the input (None for a single image).
    """
    h, w = frames.shape[1:3]
    return [
        ImageRecord(str(name), int(w), int(h), first + det.frame if is_stack else None, det)
        for det in detector.detect(frames, score_threshold, batch_size)
    ]


def detect_files(
    inputs: list[str | os.PathLike],
    detector,
    score_threshold: float = 0.05,
    batch_size: int = 4,
    log: Callable[[str], None] | None = None,
    **info: Any,
) -> dict[str, Any]:
    """Run ``detector`` on every frame of every input and return COCO predictions.

    Parameters
    ----------
    inputs
        Image files or folders of them (see :func:`~napari_sperm.detection.inputs.expand_inputs`).
    detector
        A loaded :class:`~napari_sperm.detection.detector.Detector`.
    score_threshold, batch_size
        Passed to ``detector.detect``.
    log
        Called with one line per input file.
    **info
        Extra fields for the dataset's ``info``; ``refine_boxes`` defaults to the detector's.

    Returns
    -------
    dict
        The COCO dataset built by :func:`~napari_sperm.detection.coco_output.detections_to_coco`;
        ``file_name`` entries are the paths as given.
    """
    files = expand_inputs(list(inputs))
    info.setdefault("refine_boxes", bool(getattr(detector, "refine_boxes", False)))
    records: list[ImageRecord] = []
    for k, name in enumerate(files, start=1):
        img = read_image(name)
        frames, is_stack = frame_stack(img.data, img.rgb)
        recs = detection_records(name, frames, is_stack, detector, score_threshold, batch_size)
        records.extend(recs)
        found = sum(int((r.detections.classes == 2).sum()) for r in recs)
        if log is not None:
            log(f"[detect] {k}/{len(files)} {name}: {len(frames)} frame(s), {found} heads")
    return detections_to_coco(
        records, device=str(detector.device), score_threshold=float(score_threshold), **info
    )
