"""Run long work off the GUI thread with a progress bar and a working Cancel button.

The work is a generator function: it yields ``(done, total)`` after each step and returns its result.
Cancel takes effect at the next yield; nothing is added to the viewer unless the work finishes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from ..io.errors import SpermInputError

__all__ = ["BackgroundRunner"]

logger = logging.getLogger(__name__)


class _Failed:
    """What a guarded job returns instead of raising (see :func:`_guarded`)."""

    def __init__(self, error: BaseException):
        self.error = error


def _guarded(func: Callable[[], Generator]) -> Callable[[], Generator]:
    """Wrap a job so its exception comes back as a value.

    napari relays a worker's exceptions to its notification manager with the full traceback; bad
    input should give one readable line instead, which :meth:`BackgroundRunner._on_error` shows.
    """

    def run():
        try:
            return (yield from func())
        except Exception as exc:  # noqa: BLE001 - reported on the GUI thread
            return _Failed(exc)

    return run


class BackgroundRunner(Container):
    """A Run button, a Cancel button, a progress bar and a status line for one background job.

    Parameters
    ----------
    run_text
        Label of the button that starts the job.
    start
        Called when the button is pressed; returns ``(generator_function, on_done)`` or None to do
        nothing (e.g. after showing a message about bad input). ``generator_function()`` runs in a
        worker thread; ``on_done(result)`` runs on the GUI thread when it finishes.
    """

    def __init__(
        self, run_text: str, start: Callable[[], tuple[Callable[[], Generator], Callable] | None]
    ):
        self._start_cb = start
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1, visible=False, label="progress")
        self.status = Label(value="")
        super().__init__(
            widgets=[self.run_button, self.cancel_button, self.progress, self.status], labels=False
        )
        self.worker = None
        self.run_button.changed.connect(self._run)
        self.cancel_button.changed.connect(self.cancel)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def _run(self, *_: Any) -> None:
        if self.worker is not None:
            return
        job = self._start_cb()
        if job is None:
            return
        func, on_done = job
        worker = create_worker(_guarded(func), _start_thread=False)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda result: self._on_returned(on_done, result))
        worker.errored.connect(self._on_error)  # only errors outside the guard reach this
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.progress.value = 0
        self.progress.visible = True
        self.status.value = "working ..."
        worker.start()

    def cancel(self, *_: Any) -> None:
        """Ask the running job to stop at its next step."""
        if self.worker is not None:
            self.status.value = "cancelling ..."
            self.worker.quit()

    def _on_progress(self, value: tuple) -> None:
        """``(done, total)``, or ``(done, total, status text)`` for jobs that say more."""
        done, total = value[0], value[1]
        self.progress.max = max(int(total), 1)
        self.progress.value = int(done)
        self.status.value = str(value[2]) if len(value) > 2 else f"{done}/{total}"

    def _on_returned(self, on_done: Callable, result: Any) -> None:
        if isinstance(result, _Failed):
            self._on_error(result.error)
            return
        try:
            self.status.value = "done"  # before on_done, which may say more
            on_done(result)
        except Exception as exc:  # noqa: BLE001 - report, never crash the GUI
            self._on_error(exc)

    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, SpermInputError):
            message = str(exc)
        else:  # a bug, not bad input: keep the traceback in the log, show one line
            logger.error("napari-sperm background job failed", exc_info=exc)
            message = (
                f"unexpected {type(exc).__name__}: {exc} (details in the log; please report it)"
            )
        self.status.value = f"failed: {message}"
        show_error(f"napari-sperm: {message}")

    def _on_aborted(self, *_: Any) -> None:
        self.status.value = "cancelled; nothing was changed"
        show_info("napari-sperm: cancelled; nothing was changed")

    def _on_finished(self, *_: Any) -> None:
        self.worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        self.progress.visible = False
