"""Sperm detection: a plain-PyTorch heatmap detector for heads and whole cells."""

from .results import DETECTED_CLASSES, FrameDetections

__all__ = ["DETECTED_CLASSES", "FrameDetections"]
