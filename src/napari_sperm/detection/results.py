"""Detection results: plain arrays per frame, shared by the detector, the CLI, COCO and napari."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FrameDetections", "DETECTED_CLASSES"]

DETECTED_CLASSES = {1: "sperm", 2: "head"}
"""COCO category ids the detector predicts (fixed project-wide: 1 sperm, 2 head, 3 tail)."""


@dataclass
class FrameDetections:
    """Detections in one frame.

    Attributes
    ----------
    boxes : (N, 4) float32 array
        ``[x, y, width, height]`` in pixels of the frame (COCO convention: ``x`` is the left edge
        of the leftmost pixel, so a box covering pixel columns 3..7 has ``x = 3, width = 5``).
    scores : (N,) float32 array
        Confidence in [0, 1].
    classes : (N,) int array
        COCO category id: 1 ``sperm`` (whole cell), 2 ``head``.
    sperm_ids : (N,) int array
        Links a head box and the whole-cell box of the same cell (same id, from 1); unique per
        frame.
    frame : int
        Index of the frame in its stack (0 for a single image).
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    sperm_ids: np.ndarray
    frame: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.classes = np.asarray(self.classes, np.int64).reshape(-1)
        self.sperm_ids = np.asarray(self.sperm_ids, np.int64).reshape(-1)
        n = len(self.boxes)
        if not (len(self.scores) == len(self.classes) == len(self.sperm_ids) == n):
            raise ValueError("boxes, scores, classes and sperm_ids must have the same length")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls, frame: int = 0) -> FrameDetections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros(0), frame)

    def select(self, keep: np.ndarray) -> FrameDetections:
        """The detections where ``keep`` (a boolean mask or index array) is set."""
        return FrameDetections(
            self.boxes[keep],
            self.scores[keep],
            self.classes[keep],
            self.sperm_ids[keep],
            self.frame,
            dict(self.extra),
        )

    def above(self, score_threshold: float) -> FrameDetections:
        """Only the detections scoring at least ``score_threshold``."""
        return self.select(self.scores >= score_threshold)
