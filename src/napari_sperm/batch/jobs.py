"""Batch jobs: one per input file or folder, with its output path and resume check."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..detection.inputs import expand_inputs
from ..io._common import SUPPORTED_SUFFIXES
from ..io.errors import SpermInputError

__all__ = [
    "STEPS",
    "Job",
    "Settings",
    "check_steps",
    "output_step",
    "plan_jobs",
    "read_finished",
    "safe_name",
]

STEPS: dict[str, str] = {"detect": "detections", "segment": "segmentation"}
"""Batch steps and the name of the output each one writes (``<name>.<output>.json``)."""

_RESERVED = {"merged"}  # OUT_DIR/merged.<step>.json is the merged file


@dataclass(frozen=True)
class Settings:
    """What every job of one batch run does (sent to the workers with each job).

    Attributes
    ----------
    step : str
        ``"detect"`` or ``"segment"`` (segment includes detection).
    score_threshold : float
        Detections scoring below this are dropped (and not segmented).
    weights : str or None
        Detector weights file; None for the shipped model.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``; resolved on the worker.
    chunk_frames : int
        Frames read into memory at a time (bounds memory for long stacks).
    batch_size : int
        Frames per detector batch.
    flips : int
        Flipped copies of each frame the detector is averaged over (1, 2, 4 or 8).
    tail_flips : int
        The same for the tail network (step ``segment``).
    refine_boxes : bool
        Fit head boxes to the heads' outlines (step ``detect``, default True; ``segment`` outlines
        heads itself and ignores it).
    """

    step: str = "segment"
    score_threshold: float = 0.3
    weights: str | None = None
    device: str = "auto"
    chunk_frames: int = 16
    batch_size: int = 4
    flips: int = 2  # detection.detector.DEFAULT_FLIPS (not imported: torch)
    tail_flips: int = 4  # segmentation.tailnet.infer.DEFAULT_FLIPS
    refine_boxes: bool = True

    def record(self) -> dict[str, Any]:
        """The settings an output must have been made with to be reused on resume."""
        rec = {
            "step": self.step,
            "score_threshold": float(self.score_threshold),
            "weights": self.weights or "default",
            "flips": int(self.flips),
        }
        if self.step == "segment":
            rec["tail_flips"] = int(self.tail_flips)
        else:
            rec["refine_boxes"] = bool(self.refine_boxes)
        return rec


@dataclass(frozen=True)
class Job:
    """One input of a batch run.

    Attributes
    ----------
    input : str
        The file or folder as the user gave it.
    key : str
        Its absolute path (recorded as ``info.batch_input`` in the output).
    name : str
        File-system-safe name of the outputs (``<name>.<output>.json``).
    output : str
        Path of the output JSON.
    """

    input: str
    key: str
    name: str
    output: str


def check_steps(steps) -> str:
    """Validate ``steps`` and return the step whose output is written.

    Parameters
    ----------
    steps : str or iterable of str
        ``"detect"``, ``"segment"`` or both (comma-separated string or a sequence).

    Returns
    -------
    str
        ``"segment"`` when segmentation is asked for (it detects first), else ``"detect"``.

    Raises
    ------
    SpermInputError
        No step or an unknown step.
    """
    if isinstance(steps, str):
        steps = steps.split(",")
    names = [s.strip().lower() for s in steps if s and s.strip()]
    if not names:
        raise SpermInputError(f"no batch step given; choose from {', '.join(STEPS)}.")
    unknown = [s for s in names if s not in STEPS]
    if unknown:
        raise SpermInputError(
            f"unknown batch step {unknown[0]!r}; choose from {', '.join(STEPS)} (comma-separated)."
        )
    return output_step(names)


def output_step(steps: list[str]) -> str:
    """``"segment"`` if it is among ``steps``, else ``"detect"``."""
    return "segment" if "segment" in steps else "detect"


def safe_name(path: str) -> str:
    """File-system-safe output name of an input: its file name without the image suffix.

    Parameters
    ----------
    path : str
        Input file or folder.

    Returns
    -------
    str
        E.g. ``"stack1"`` for ``data/stack1.ome.tif``; characters other than letters, digits,
        ``.``, ``_`` and ``-`` become ``_``.
    """
    base = Path(os.path.normpath(path)).name
    low = base.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if low.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).strip(".")
    return base or "input"


def plan_jobs(inputs, out_dir: Path, step: str) -> list[Job]:
    """One job per input file or folder, in the order given (duplicates dropped).

    Every input is checked with :func:`~napari_sperm.detection.inputs.expand_inputs` first, so
    a missing path or a folder without images stops the run before anything starts. Inputs
    whose names collide (``a/x.tif`` and ``b/x.tif``, or an input called ``merged``) all get a
    short hash of their absolute path appended, which does not depend on the order.

    Parameters
    ----------
    inputs : list of str or os.PathLike
        Image files or folders of frames.
    out_dir : Path
        Output folder.
    step : str
        ``"detect"`` or ``"segment"``.

    Returns
    -------
    list of Job

    Raises
    ------
    SpermInputError
        No inputs, or an input that does not exist or holds no supported image.
    """
    raw = [os.fspath(p) for p in inputs]
    if not raw:
        raise SpermInputError("no input images given; name image files or folders of frames.")
    seen: dict[str, str] = {}
    for p in raw:
        expand_inputs([p])  # raises a one-line SpermInputError for a bad input
        seen.setdefault(os.path.abspath(p), p)
    names = {key: safe_name(p) for key, p in seen.items()}
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n.lower()] = counts.get(n.lower(), 0) + 1
    jobs = []
    for key, p in seen.items():
        n = names[key]
        if counts[n.lower()] > 1 or n.lower() in _RESERVED:
            n = f"{n}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:8]}"
        out = out_dir / f"{n}.{STEPS[step]}.json"
        jobs.append(Job(input=p, key=key, name=n, output=str(out)))
    return jobs


def read_finished(job: Job, settings: Settings) -> dict[str, Any] | None:
    """The existing output of ``job`` if it can be reused, else None.

    It can be reused when it is valid JSON whose ``info.batch_input`` is this input's absolute
    path and whose ``info.batch_settings`` match ``settings`` (step, threshold, weights).

    Parameters
    ----------
    job : Job
    settings : Settings

    Returns
    -------
    dict or None
        The COCO dataset, or None when the job has to run.
    """
    path = Path(job.output)
    if not path.is_file():
        return None
    try:
        ds = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    info = ds.get("info") if isinstance(ds, dict) else None
    if not isinstance(info, dict) or info.get("batch_input") != job.key:
        return None
    if info.get("batch_settings") != settings.record():
        return None
    if not isinstance(ds.get("images"), list) or not isinstance(ds.get("annotations"), list):
        return None
    return ds
