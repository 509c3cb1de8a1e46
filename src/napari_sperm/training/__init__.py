"""Retrain the detector on corrected annotations (COCO): data loading, augmentation, the training
loop with validation, early stopping and resumable checkpoints, and the report it writes."""

from .dataset import TrainingImage, TrainingSet, load_training_set, split_by_image
from .loop import TrainResult, TrainSettings, iter_train, report_path, resume_path, train
from .session import check_output, iter_train_from_coco

__all__ = [
    "TrainResult",
    "TrainSettings",
    "TrainingImage",
    "TrainingSet",
    "check_output",
    "iter_train",
    "iter_train_from_coco",
    "load_training_set",
    "report_path",
    "resume_path",
    "split_by_image",
    "train",
]
