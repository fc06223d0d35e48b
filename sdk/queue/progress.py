"""Progress of a tasker run: a rich progress bar on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["ProgressView", "make_progress"]

_LOG = logging.getLogger("workstack.queue.tasker")
_LOG_EVERY = 10.0


class ProgressView(Protocol):
    """Where the tasker reports progress."""

    def stage(self, name: str, total: int) -> None:
        """A stage starts with ``total`` tasks."""

    def update(self, published: int, done: int, failed: int) -> None:
        """Counts of the current stage so far."""

    def close(self) -> None:
        """The run is over."""


class _Bar:
    """A rich progress bar per stage: finished of total, and published / done / failed."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "published {task.fields[published]}  [green]done {task.fields[done]}[/]  "
                "[red]failed {task.fields[failed]}[/]"
            ),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._task: TaskID | None = None
        self._progress.start()

    def stage(self, name: str, total: int) -> None:
        self._task = self._progress.add_task(name, total=total, published=0, done=0, failed=0)

    def update(self, published: int, done: int, failed: int) -> None:
        if self._task is not None:
            self._progress.update(
                self._task, completed=done + failed, published=published, done=done, failed=failed
            )

    def close(self) -> None:
        self._progress.stop()


class _Lines:
    """Log lines (for pod logs): at each stage start and end, and every few seconds."""

    def __init__(self) -> None:
        self._name = ""
        self._total = 0
        self._last: tuple[int, int, int] | None = None
        self._logged = 0.0

    def stage(self, name: str, total: int) -> None:
        self._name, self._total, self._last = name, total, None
        _LOG.info("stage %s: %d task(s)", name, total)

    def update(self, published: int, done: int, failed: int) -> None:
        counts = (published, done, failed)
        now = time.monotonic()
        finished = done + failed == self._total
        if counts != self._last and (finished or now - self._logged >= _LOG_EVERY):
            self._last, self._logged = counts, now
            _LOG.info(
                "stage %s: published %d/%d, done %d, failed %d",
                self._name,
                published,
                self._total,
                done,
                failed,
            )

    def close(self) -> None:
        pass


class _Silent:
    def stage(self, name: str, total: int) -> None:
        pass

    def update(self, published: int, done: int, failed: int) -> None:
        pass

    def close(self) -> None:
        pass


def make_progress(mode: bool | ProgressView | None) -> ProgressView:
    """The progress view for ``mode``.

    A bar when ``mode`` is True (or None on a terminal), log lines when None elsewhere,
    nothing when False; a :class:`ProgressView` of your own is used as it is.
    """
    if not (mode is None or isinstance(mode, bool)):
        return mode
    if mode is False:
        return _Silent()
    if mode or (mode is None and sys.stderr.isatty()):
        return _Bar()
    return _Lines()
