"""Sperm detection: a plain-PyTorch heatmap detector for heads and whole cells."""

from .detector import DEFAULT_WEIGHTS, Detector, detect, load_detector
from .device import available_devices, resolve_device
from .results import DETECTED_CLASSES, FrameDetections

__all__ = [
    "DEFAULT_WEIGHTS",
    "DETECTED_CLASSES",
    "Detector",
    "FrameDetections",
    "available_devices",
    "detect",
    "load_detector",
    "resolve_device",
]
