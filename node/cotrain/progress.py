"""Progress of long work, as people read it: a bar with percent done and time left on a terminal, and plain
log lines (every tenth of the way, with percent and time left) when the output goes to a file or a pipe."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger("cotrain")


def eta_seconds(done: float, total: float, elapsed: float) -> float | None:
    """Seconds left at the pace so far, or None before any work is done."""
    if done <= 0 or total <= 0:
        return None
    return max(0.0, elapsed * (total - done) / done)


def describe(done: float, total: float, elapsed: float) -> str:
    """``"40% (4/10), 3 s elapsed, about 5 s left"``."""
    eta = eta_seconds(done, total, elapsed)
    left = "time left unknown" if eta is None else f"about {eta:.0f} s left"
    percent = 100.0 * done / total if total else 0.0
    return f"{percent:.0f}% ({done:g}/{total:g}), {elapsed:.0f} s elapsed, {left}"


@dataclass
class PlainProgress:
    """Logs a line each time the work crosses another tenth of its total (and when it completes). Work that
    starts over (``done`` going down, as each round's training does) is timed afresh."""

    description: str
    started: float | None = None  # the first report's time: the work starts then, not at construction
    _tenths: int = -1
    _done: float = 0.0

    def update(self, done: float, total: float, description: str | None = None) -> None:
        """Report ``done`` of ``total``; logs only on a new tenth."""
        if description is not None:
            self.description = description
        if self.started is None or done < self._done:
            self.started, self._tenths = time.monotonic(), -1
        self._done = done
        tenths = int(10 * done / total) if total else 0
        if tenths > self._tenths:
            self._tenths = tenths
            log.info("%s: %s", self.description, describe(done, total, time.monotonic() - self.started))


@dataclass
class BarProgress:
    """A rich progress bar with percent, count, elapsed time and time left."""

    progress: Progress
    task: TaskID
    hide_when_done: bool = False

    def update(self, done: float, total: float, description: str | None = None) -> None:
        """Move the bar to ``done`` of ``total``."""
        extra: dict = {} if description is None else {"description": description}
        if self.hide_when_done:
            extra["visible"] = done < total
        if done < (self.progress.tasks[self.task].completed or 0):
            self.progress.reset(self.task)  # work that starts over (the next round's training)
        self.progress.update(self.task, completed=done, total=total, **extra)


@contextmanager
def progress_reporter(
    console: Console, description: str, *, transient: bool = True, hide_when_done: bool = False
) -> Iterator[BarProgress | PlainProgress]:
    """A reporter with ``update(done, total, description=None)``: a bar on a terminal, else log lines.
    ``hide_when_done`` shows the bar only while work is under way (a node waiting between rounds)."""
    if not console.is_terminal:
        yield PlainProgress(description)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=transient) as progress:
        task = progress.add_task(description, total=None, visible=not hide_when_done)
        yield BarProgress(progress, task, hide_when_done)
