"""Benchmark ``napari-sperm batch``: throughput with 1 and 2 workers, and memory on a long stack.

Usage::

    python benchmarks/batch_scaling.py [--stacks 4] [--frames 4] [--big-frames 1200] [--workdir DIR]

Part 1 writes ``--stacks`` synthetic phase-high TIFF stacks of ``--frames`` frames and runs
detect+segment on them with a local cluster of 1 and then 2 workers (the model is loaded on
every worker before the clock starts; cluster start-up is not timed). It prints frames/s for
each and the ratio.

Part 2 writes one phase-high stack of ``--big-frames`` 480x640 uint8 frames (1200: about 368 MB; 600: about
184 MB), runs the detect step on it in one worker process, samples that process's resident
memory (psutil) every 10 ms, and prints the peak above the worker's resident memory before the
task (model already loaded). The budget the benchmark sets itself is a third of the stack's
size, and it is enforced: before the task, the worker's private writable memory is capped
(``RLIMIT_DATA``) at its size then plus the budget, so an allocation beyond it fails the task
(``--no-limit`` only measures). ``--contrast`` also runs the same stack in one chunk (everything in
memory), without the cap, to show what the chunking saves.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _warm(client) -> None:
    from napari_sperm.batch.worker import get_detector

    def load():
        import torch

        torch.set_num_threads(1)
        import numpy as np

        det = get_detector(None, "auto")
        # one real-sized inference first, so the baseline includes torch's working buffers
        det.detect(np.zeros((480, 640), np.uint8), 0.3, 4)
        return True

    client.run(load)


def _cluster(n: int):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    return cluster, Client(cluster)


def throughput(files: list[str], out: Path, workers: int) -> tuple[float, int, float]:
    from napari_sperm.batch import run_batch

    cluster, client = _cluster(workers)
    try:
        _warm(client)
        t0 = time.perf_counter()
        report = run_batch(files, out, scheduler=client, force=True)
        dt = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    assert report.ok, report.failed
    return report.frames / dt, report.frames, dt


# -- memory -------------------------------------------------------------------------------------
def _start_sampler():
    import threading

    import psutil

    proc = psutil.Process()
    state = {"base": proc.memory_info().rss, "peak": 0, "stop": False}

    def loop():
        while not state["stop"]:
            state["peak"] = max(state["peak"], proc.memory_info().rss)
            time.sleep(0.01)

    import napari_sperm.batch.worker as w

    w._BENCH_SAMPLER = state  # keep it reachable from the next client.run
    state["peak"] = state["base"]
    threading.Thread(target=loop, daemon=True).start()
    return state["base"]


def _stop_sampler():
    import napari_sperm.batch.worker as w

    state = w._BENCH_SAMPLER
    state["stop"] = True
    return state["base"], state["peak"]


def _vm_data() -> int:
    """The process's data segment (private writable memory, as RLIMIT_DATA counts it), bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmData in /proc/self/status")


def _set_limit(extra: int) -> int:
    """Cap this worker's private writable memory at its current size plus ``extra`` bytes: an
    allocation beyond that fails (MemoryError), so the task fails instead of growing."""
    import resource

    limit = _vm_data() + int(extra)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    return limit


def memory(
    big: str, out: Path, chunk_frames: int, limit: int | None
) -> tuple[int, int, float, object]:
    from napari_sperm.batch import run_batch

    cluster, client = _cluster(1)
    try:
        _warm(client)
        client.run(_start_sampler)
        if limit is not None:
            client.run(_set_limit, limit)
        t0 = time.perf_counter()
        report = run_batch(
            [big], out, steps="detect", scheduler=client, force=True, chunk_frames=chunk_frames
        )
        dt = time.perf_counter() - t0
        ((base, peak),) = client.run(_stop_sampler).values()
    finally:
        client.close()
        cluster.close()
    return base, peak, dt, report


def write_big_stack(src: str, path: Path, frames: int) -> int:
    """A long stack made by repeating a synthetic stack's frames (written frame by frame)."""
    import tifffile

    base = tifffile.imread(src)
    base = base if base.ndim == 3 else base[None]
    with tifffile.TiffWriter(path) as tw:
        for i in range(frames):
            tw.write(base[i % len(base)], contiguous=True)
    return frames * base[0].nbytes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stacks", type=int, default=4)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--big-frames", type=int, default=1200)
    ap.add_argument("--contrast", action="store_true", help="also run the big stack unchunked")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--memory-only", action="store_true", help="skip the throughput part")
    ap.add_argument(
        "--no-limit", action="store_true", help="only measure memory, do not cap it (RLIMIT_DATA)"
    )
    args = ap.parse_args(argv)

    from napari_sperm.synthetic.dataset import write_dataset

    work = Path(args.workdir or tempfile.mkdtemp(prefix="napari-sperm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        write_dataset(
            work / "data",
            "phase-high",
            n_images=args.stacks,
            frames=args.frames,
            seed=3,
            overwrite=True,
        )
        files = sorted(str(p) for p in (work / "data" / "images").glob("*.tif"))
        print(f"throughput: {len(files)} stacks x {args.frames} frames of 480x640, detect+segment")
        rates = {}
        for n in () if args.memory_only else (1, 2):
            rate, frames, dt = throughput(files, work / f"out{n}", n)
            rates[n] = rate
            print(f"  {n} worker(s): {frames} frames in {dt:.1f} s = {rate:.2f} frames/s")
        if rates:
            print(f"  speed-up 2 vs 1 worker: {rates[2] / rates[1]:.2f}x")

        big = work / "big.tif"
        nbytes = write_big_stack(files[0], big, args.big_frames)
        budget = nbytes / 3
        print(
            f"memory: one stack of {args.big_frames} frames, {nbytes / 1e6:.0f} MB on disk and "
            f"in memory; budget (a third) {budget / 1e6:.0f} MB; detect, 1 worker"
        )
        limit = None if args.no_limit else int(budget)
        if limit is not None:
            print(
                f"  enforced: the worker's private writable memory (RLIMIT_DATA) is capped at its "
                f"size after loading the model plus {limit / 1e6:.0f} MB; going over fails the task"
            )
        runs = [(16, "chunks of 16 frames")]
        if args.contrast:
            runs.append((args.big_frames, "one chunk (whole stack)"))
        ok = True
        for chunk, label in runs:
            # the cap only on the chunked run: a whole-stack run under it fails with MemoryError
            # (seen once), but a worker out of memory can also hang while reporting (seen once)
            cap = limit if chunk == 16 else None
            base, peak, dt, report = memory(str(big), work / "outbig", chunk, cap)
            grow = peak - base
            status = "finished" if report.ok else f"FAILED ({report.failed[0].error[:90]})"
            print(
                f"  {label}: {status}; worker RSS {base / 1e6:.0f} MB before, peak "
                f"{peak / 1e6:.0f} MB, increase {grow / 1e6:.0f} MB = {grow / nbytes:.2f} x stack "
                f"({args.big_frames / dt:.1f} frames/s)"
            )
            if chunk == 16:
                ok = report.ok and grow < budget
        print(
            f"  chunked run finished within a third of the stack"
            f"{' under the enforced limit' if limit is not None else ''}: {'yes' if ok else 'NO'}"
        )
        return 0 if ok else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
