"""What a batch run did, per input, and the summary table the command prints."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BatchReport", "InputRecord", "format_table"]


@dataclass
class InputRecord:
    """The outcome of one input.

    Attributes
    ----------
    input : str
        The file or folder as given.
    output : str
        Its output JSON (written when ``status`` is ``"done"``, reused when ``"skipped"``).
    status : {"done", "skipped", "failed"}
    frames : int
        Frames processed (for skipped inputs: frames in the existing output).
    heads : int
        ``head`` annotations found (sperm found).
    seconds : float
        Time spent on the input on the worker (0 for skipped inputs).
    error : str
        One-line reason when ``status`` is ``"failed"``, else ``""``.
    worker : str
        Address of the worker that ran it (``"serial"`` in-process, ``""`` when skipped).
    """

    input: str
    output: str
    status: str
    frames: int = 0
    heads: int = 0
    seconds: float = 0.0
    error: str = ""
    worker: str = ""


@dataclass
class BatchReport:
    """Everything a :func:`~napari_sperm.batch.run_batch` call did.

    Attributes
    ----------
    records : list of InputRecord
        One per input, in the order given.
    merged : str or None
        The merged COCO file (None when no input has an output).
    step : str
        ``"detect"`` or ``"segment"``.
    seconds : float
        Wall-clock time of the whole run.
    scheduler : str
        ``"serial"``, ``"local cluster of N workers"`` or the scheduler address.
    """

    records: list[InputRecord] = field(default_factory=list)
    merged: str | None = None
    step: str = "segment"
    seconds: float = 0.0
    scheduler: str = ""

    @property
    def failed(self) -> list[InputRecord]:
        """The inputs that failed."""
        return [r for r in self.records if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when no input failed."""
        return not self.failed

    @property
    def frames(self) -> int:
        """Frames processed in this run (done inputs only)."""
        return sum(r.frames for r in self.records if r.status == "done")


def format_table(report: BatchReport) -> str:
    """The summary table: input, status, frames, sperm found (heads), seconds; then reasons.

    Parameters
    ----------
    report : BatchReport

    Returns
    -------
    str
        Plain-text table (no trailing newline); failed inputs are followed by one
        ``<input>: <reason>`` line each.
    """
    header = ("input", "status", "frames", "sperm", "seconds")
    rows = [
        (r.input, r.status, str(r.frames), str(r.heads), f"{r.seconds:.1f}") for r in report.records
    ]
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(header)
    ]
    left = {0, 1}

    def fmt(row) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(row)
        ).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths])]
    lines += [fmt(row) for row in rows]
    done = sum(r.status == "done" for r in report.records)
    skipped = sum(r.status == "skipped" for r in report.records)
    lines.append(
        f"{done} done, {skipped} skipped, {len(report.failed)} failed in {report.seconds:.1f} s "
        f"({report.scheduler})"
    )
    for r in report.failed:
        lines.append(f"failed: {r.input}: {r.error}")
    return "\n".join(lines)
