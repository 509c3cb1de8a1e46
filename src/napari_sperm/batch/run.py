"""``run_batch``: many inputs in parallel on dask.distributed (or serially), with resume."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..coco import new_dataset
from ..io import atomic_write_json
from ..io.errors import SpermInputError, one_line
from .jobs import STEPS, Job, Settings, check_steps, plan_jobs, read_finished
from .merge import append_dataset, count_heads
from .report import BatchReport, InputRecord
from .worker import process_input

__all__ = ["run_batch"]

Progress = Callable[[InputRecord, int, int], None]


def _skipped(job: Job, ds: dict[str, Any]) -> InputRecord:
    return InputRecord(
        job.input, job.output, "skipped", frames=len(ds["images"]), heads=count_heads(ds)
    )


def _run_serial(jobs, settings, progress, done_before, total) -> list[InputRecord]:
    import torch

    before = torch.get_num_threads()
    out = []
    try:
        torch.set_num_threads(1)  # as on a worker, so serial and distributed results agree
        for k, job in enumerate(jobs, start=1):
            rec = process_input(job, settings, threads=None)
            out.append(rec)
            if progress is not None:
                progress(rec, done_before + k, total)
    finally:
        torch.set_num_threads(before)
    return out


def _open_client(scheduler, workers: int):
    """``(client, cluster_or_None, description)`` for ``scheduler`` (see :func:`run_batch`)."""
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, None, f"scheduler {scheduler.scheduler.address}"
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise SpermInputError(
                f"cannot reach the dask scheduler at {scheduler!r} ({one_line(exc, 120)}); "
                "start it with 'dask scheduler' or leave out --scheduler for a local cluster."
            ) from exc
        return client, None, f"scheduler {scheduler}"
    cluster = LocalCluster(
        n_workers=int(workers),
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster, f"local cluster of {int(workers)} worker(s)"


def _run_distributed(
    jobs, settings, progress, done_before, total, scheduler, workers, die_marker
) -> tuple[list[InputRecord], str]:
    from distributed import as_completed

    client, cluster, desc = _open_client(scheduler, workers)
    own_client = client is not scheduler
    by_index: dict[int, InputRecord] = {}
    try:
        futures = {}
        for i, job in enumerate(jobs):
            fut = client.submit(
                process_input,
                job,
                settings,
                1,
                die_marker,
                key=f"napari-sperm-batch-{job.name}-{os.urandom(4).hex()}",
                retries=2,
                pure=False,
            )
            futures[fut] = i
        done = done_before
        for fut in as_completed(list(futures)):
            i = futures[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the worker died too often
                rec = InputRecord(
                    jobs[i].input,
                    jobs[i].output,
                    "failed",
                    error=one_line(f"{type(exc).__name__}: {exc}", 300),
                )
            by_index[i] = rec
            done += 1
            if progress is not None:
                progress(rec, done, total)
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
    return [by_index[i] for i in range(len(jobs))], desc


def _write_merged(out_dir: Path, step: str, jobs, records, settings) -> str | None:
    merged = new_dataset(
        f"napari-sperm batch {STEPS[step]} (merged)",
        version=__version__,
        date_created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        batch_settings=settings.record(),
        batch_inputs=[],
    )
    for job, rec in zip(jobs, records):
        if rec.status == "failed":
            continue
        ds = read_finished(job, settings)
        if ds is None:
            continue
        merged["info"]["batch_inputs"].append(job.key)
        append_dataset(merged, ds)
    if not merged["info"]["batch_inputs"]:
        return None
    path = out_dir / f"merged.{STEPS[step]}.json"
    atomic_write_json(path, merged)
    return str(path)


def run_batch(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    steps: Sequence[str] | str = ("detect", "segment"),
    scheduler: Any = None,
    workers: int = 2,
    device: str = "auto",
    score_threshold: float = 0.3,
    force: bool = False,
    progress: Progress | None = None,
    *,
    weights: str | os.PathLike | None = None,
    chunk_frames: int = 16,
    batch_size: int = 4,
    flips: int = Settings.flips,
    tail_flips: int = Settings.tail_flips,
    refine_boxes: bool | None = None,
    _die_once_marker: str | os.PathLike | None = None,
) -> BatchReport:
    """Detect (and segment) many image files or folders in parallel, one task per input.

    Each input gets ``OUT_DIR/<name>.detections.json`` (steps ``detect``) or
    ``OUT_DIR/<name>.segmentation.json`` (with ``segment``), written atomically, and all
    finished inputs are merged into ``OUT_DIR/merged.<output>.json`` with image and annotation
    ids renumbered from 1 (``file_name`` and ``frame`` kept). Inputs whose output already exists
    for the same input path and settings are skipped unless ``force``. A failing input is
    recorded with a one-line reason and does not stop the others.

    Parameters
    ----------
    inputs : sequence of str or os.PathLike
        Image files (TIFF stacks, PNG, JPEG) or folders of frames; one task per entry.
    out_dir : str or os.PathLike
        Output folder (created if needed). For a remote scheduler it must be on a file system
        that the workers and this process share.
    steps : sequence of str or str, optional
        ``"detect"``, ``"segment"`` or both (default); a comma-separated string works too.
        With ``segment`` the output is the segmentation (detection runs first anyway).
    scheduler : None, "serial", str or distributed.Client, optional
        None (default): start a ``LocalCluster`` of ``workers`` single-threaded worker
        processes. ``"serial"``: run in this process without dask (debugging, comparisons).
        An address such as ``"tcp://host:8786"``: use that running scheduler. A ``Client``:
        use it (it is not closed).
    workers : int, optional
        Worker processes of the local cluster (default 2); 0 means serial.
    device : str, optional
        ``auto``, ``cpu``, ``cuda`` or ``mps``; resolved on each worker.
    score_threshold : float, optional
        Detections scoring below this are dropped and not segmented (default 0.3).
    force : bool, optional
        Redo inputs that already have an output.
    progress : callable, optional
        Called as ``progress(record, done, total)`` as each input finishes or is skipped.
    weights : str or os.PathLike, optional
        Detector weights file (default: the shipped model).
    chunk_frames : int, optional
        Frames of a stack held in memory at a time (default 16).
    batch_size : int, optional
        Frames per detector batch (default 4).
    flips : int, optional
        Flipped copies of each frame the detector averages (1, 2, 4 or 8; default 2, as
        ``napari-sperm detect``).
    tail_flips : int, optional
        Flipped copies the tail network averages with ``segment`` (1, 2, 4 or 8; default 4).
    refine_boxes : bool, optional
        Fit head boxes to the heads' outlines, as ``napari-sperm detect`` does by default (None:
        on with steps ``detect``, off with ``segment``, which draws its head boxes from its own
        head masks). True with ``segment`` is refused.
    _die_once_marker : str or os.PathLike, optional
        TEST-ONLY: the first task to run kills its worker process (after creating this file),
        to check that the batch survives a dead worker. Distributed runs only.

    Returns
    -------
    BatchReport
        One :class:`~napari_sperm.batch.report.InputRecord` per input, the merged file, timing.

    Raises
    ------
    SpermInputError
        No inputs, a missing input or one without images, an unknown step, a bad worker count,
        flips value or weights file, ``refine_boxes`` with ``segment``, or an unreachable
        scheduler.
    """
    t0 = time.perf_counter()
    step = check_steps(steps)
    if scheduler is None and int(workers) < 0:
        raise SpermInputError(f"--workers must be 0 or more, not {workers}.")
    if weights is not None and not Path(weights).is_file():
        raise SpermInputError(
            f"detector weights '{weights}' do not exist; omit --weights for the default."
        )
    from ..detection.flips import check_flips

    flips = check_flips(flips, "--flips")
    tail_flips = check_flips(tail_flips, "--tail-flips")
    if refine_boxes and step != "detect":
        raise SpermInputError(
            "--refine-boxes applies to --steps detect; segment outlines the heads itself."
        )
    refine_boxes = step == "detect" if refine_boxes is None else bool(refine_boxes)
    if int(chunk_frames) < 1:
        raise SpermInputError(f"chunk_frames must be at least 1, not {chunk_frames}.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SpermInputError(f"output folder '{out}' is a file; give a folder with -o.")
    jobs = plan_jobs(list(inputs), out, step)
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        step=step,
        score_threshold=float(score_threshold),
        weights=None if weights is None else os.path.abspath(weights),
        device=str(device),
        chunk_frames=int(chunk_frames),
        batch_size=int(batch_size),
        flips=flips,
        tail_flips=tail_flips,
        refine_boxes=bool(refine_boxes),
    )
    total = len(jobs)
    records: dict[int, InputRecord] = {}
    todo: list[int] = []
    for i, job in enumerate(jobs):
        ds = None if force else read_finished(job, settings)
        if ds is None:
            todo.append(i)
        else:
            records[i] = _skipped(job, ds)
            if progress is not None:
                progress(records[i], len(records), total)
    serial = scheduler == "serial" or (scheduler is None and int(workers) == 0)
    desc = "serial"
    run_jobs = [jobs[i] for i in todo]
    if run_jobs and serial:
        if _die_once_marker is not None:
            raise SpermInputError("the die-once test hook needs a distributed run.")
        results = _run_serial(run_jobs, settings, progress, len(records), total)
    elif run_jobs:
        marker = None if _die_once_marker is None else os.fspath(_die_once_marker)
        results, desc = _run_distributed(
            run_jobs, settings, progress, len(records), total, scheduler, workers, marker
        )
    else:
        results = []
        desc = "nothing to run"
    for i, rec in zip(todo, results):
        records[i] = rec
    ordered = [records[i] for i in range(total)]
    merged = _write_merged(out, step, jobs, ordered, settings)
    return BatchReport(ordered, merged, step, time.perf_counter() - t0, desc)
