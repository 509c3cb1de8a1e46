"""The batch task: process one input on a worker, in bounded-memory frame chunks.

Model once per worker
---------------------
The detector is kept in a module-level cache, :data:`_DETECTORS`, keyed by ``(weights,
device, flips, refine_boxes)``; the tail network comes from
:func:`~napari_sperm.segmentation.tailnet.load_tail_net`'s own per-process cache. With
``processes=True`` every dask worker is its own Python process, so each worker
loads the model on its first task and reuses it for every later frame and input; the serial
(in-process) path shares the same cache. This needs no scheduler-side state, and a worker that
dies and is restarted by its nanny simply loads the model again on its next task.

Chunks
------
:func:`~napari_sperm.detection.files.detect_files` and
:func:`~napari_sperm.segmentation.files.segment_files` read a whole stack into memory (``read_image``
is lazy only above a quarter of the RAM). Here the input is opened lazily (``read_image(path,
lazy=True)``, one frame per dask chunk) and processed ``chunk_frames`` frames at a time; each
chunk's COCO images and annotations are streamed to scratch files with running ids and frame
indices offset by the chunk start (:class:`~.stream.CocoStream`), so the output equals theirs
while only one chunk of pixels, masks and annotations is in memory at a time.

Failures
--------
:func:`process_input` catches every exception and returns a ``failed`` record with a one-line
reason, so the scheduler's ``retries`` are only used when something outside the task fails (a
worker that died mid-task is rescheduled by the scheduler itself).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from ..detection.coco_output import detections_to_coco
from ..detection.inputs import expand_inputs, frame_stack
from ..io import read_image
from ..io.errors import SpermInputError, one_line
from .jobs import Job, Settings
from .report import InputRecord
from .stream import CocoStream

__all__ = ["get_detector", "iter_chunks", "process_input", "run_input"]

_DETECTORS: dict[tuple[str | None, str, int, bool], Any] = {}
_LOCK = threading.Lock()
_THREADS_SET = False


def _limit_threads(threads: int | None) -> None:
    """Set torch's intra-op threads once per process (``None``: leave them)."""
    global _THREADS_SET
    if threads is None or _THREADS_SET:
        return
    import torch

    torch.set_num_threads(int(threads))
    _THREADS_SET = True


def get_detector(weights: str | None, device: str, flips: int = 2, refine_boxes: bool = True):
    """The detector for ``(weights, device, flips, refine_boxes)``, loaded once per process.

    Parameters
    ----------
    weights : str or None
        Weights file; None for the shipped model.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    flips : int
        Flipped copies of each frame it averages (1, 2, 4 or 8).
    refine_boxes : bool
        Whether it fits head boxes to the heads' outlines.

    Returns
    -------
    Detector
    """
    from ..detection.detector import load_detector

    key = (weights, device, int(flips), bool(refine_boxes))
    with _LOCK:
        det = _DETECTORS.get(key)
        if det is None:
            det = _DETECTORS[key] = load_detector(weights, device, int(flips), bool(refine_boxes))
    return det


def iter_chunks(path: str, chunk_frames: int):
    """Read an image file lazily and yield ``(start, frames, is_stack)`` chunks.

    Parameters
    ----------
    path : str
        One image file (TIFF stack, PNG, JPEG).
    chunk_frames : int
        Frames per chunk (at least 1).

    Yields
    ------
    start : int
        Index of the chunk's first frame.
    frames : ndarray
        ``(k, H, W)`` or ``(k, H, W, 3)`` in memory.
    is_stack : bool
        Whether the file is a stack (frame indices are written) or a single image.
    """
    img = read_image(path, lazy=True)
    frames, is_stack = frame_stack(img.data, img.rgb)
    n = int(frames.shape[0])
    if n == 0:
        raise SpermInputError(f"'{path}' holds no frames.")
    step = max(1, int(chunk_frames))
    for start in range(0, n, step):
        block = frames[start : start + step]
        if hasattr(block, "compute"):
            # never the distributed client: this already runs inside a task
            block = block.compute(scheduler="synchronous")
        yield start, np.asarray(block), is_stack


def _header(settings: Settings, detector, key: str) -> dict[str, Any]:
    """An empty dataset with the same ``info`` as ``detect_files``/``segment_files`` plus ours."""
    from ..segmentation.coco_output import segmentation_to_coco

    extra = {
        "weights": str(settings.weights or "default"),
        "batch_input": key,
        "batch_settings": settings.record(),
        "detector_flips": int(settings.flips),
    }
    if settings.step == "detect":
        return detections_to_coco(
            [],
            device=str(detector.device),
            score_threshold=float(settings.score_threshold),
            refine_boxes=bool(settings.refine_boxes),
            **extra,
        )
    return segmentation_to_coco(
        [],
        engine="classic",
        score_threshold=float(settings.score_threshold),
        tail_finder="net",
        tail_flips=int(settings.tail_flips),
        **extra,
    )


def run_input(job: Job, settings: Settings, detector, stream: CocoStream) -> None:
    """Detect (and segment) every frame of one input, chunk by chunk, into ``stream``.

    Parameters
    ----------
    job : Job
    settings : Settings
    detector : Detector
    stream : CocoStream
        Receives each chunk's images and annotations; after :meth:`CocoStream.finish` the file
        equals, in images and annotations, ``detect_files([job.input], ...)`` or
        ``segment_files([job.input], ..., engine="classic")`` with the same threshold and flips.
    """
    from ..detection.files import detection_records
    from ..segmentation.coco_output import segmentation_to_coco
    from ..segmentation.files import segmented_images
    from ..segmentation.segment import resolve_tail_finder

    thr, batch = float(settings.score_threshold), settings.batch_size
    segment = settings.step == "segment"
    # the network is loaded once per process (load_tail_net's cache); this only sets its flips
    finder = resolve_tail_finder("net", flips=settings.tail_flips) if segment else None
    for name in expand_inputs([job.input]):
        for start, frames, is_stack in iter_chunks(name, settings.chunk_frames):
            if settings.step == "detect":
                recs = detection_records(name, frames, is_stack, detector, thr, batch, start)
                part = detections_to_coco(recs)
            else:
                items = segmented_images(
                    name,
                    frames,
                    is_stack,
                    detector,
                    score_threshold=thr,
                    batch_size=batch,
                    first=start,
                    tail_finder=finder,
                )
                part = segmentation_to_coco(items)
                del items
            stream.add(part)


def _maybe_die(marker: str | None) -> None:
    """TEST-ONLY hook: kill this worker process the first time (``marker`` not yet there).

    Used by the test suite to check that a batch survives a worker dying mid-task. Refuses to
    run outside a dask worker so it can never kill the caller's own process.
    """
    if marker is None:
        return
    from distributed import get_worker

    get_worker()  # raises ValueError when not inside a dask worker
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os._exit(1)


def process_input(
    job: Job,
    settings: Settings,
    threads: int | None = 1,
    _die_once_marker: str | None = None,
) -> InputRecord:
    """The batch task: run one input and write its output atomically; never raises.

    Parameters
    ----------
    job : Job
    settings : Settings
    threads : int or None
        Torch threads for this process (1 on dask workers, to avoid oversubscription).
    _die_once_marker : str, optional
        TEST-ONLY: see :func:`_maybe_die`.

    Returns
    -------
    InputRecord
        ``done`` with frames and heads, or ``failed`` with a one-line reason.
    """
    t0 = time.perf_counter()
    worker = "serial"
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        pass
    try:
        _limit_threads(threads)
        _maybe_die(_die_once_marker)
        detector = get_detector(
            settings.weights, settings.device, settings.flips, settings.refine_boxes
        )
        stream = CocoStream(job.output, _header(settings, detector, job.key))
        try:
            run_input(job, settings, detector, stream)
        except BaseException:
            stream.abort()
            raise
        stream.finish()
        return InputRecord(
            job.input,
            job.output,
            "done",
            frames=stream.n_images,
            heads=stream.n_heads,
            seconds=time.perf_counter() - t0,
            worker=worker,
        )
    except Exception as exc:  # noqa: BLE001 - reported per input, the others go on
        why = str(exc) if isinstance(exc, SpermInputError) else f"{type(exc).__name__}: {exc}"
        return InputRecord(
            job.input,
            job.output,
            "failed",
            seconds=time.perf_counter() - t0,
            error=one_line(why, 300),
            worker=worker,
        )
