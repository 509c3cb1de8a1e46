"""Batch processing of many image files on dask.distributed (Qt-free).

See :func:`run_batch` and ``docs/scaling.md``.
"""

from __future__ import annotations

from .jobs import STEPS
from .report import BatchReport, InputRecord, format_table
from .run import run_batch

__all__ = ["STEPS", "BatchReport", "InputRecord", "format_table", "run_batch"]
