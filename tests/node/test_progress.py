"""Tests for cotrain.progress: percent and time left, and plain log lines every tenth of the way."""

from __future__ import annotations

import io
import logging

import pytest
from cotrain.progress import BarProgress, PlainProgress, describe, eta_seconds, progress_reporter
from rich.console import Console


def test_time_left_follows_the_pace_so_far() -> None:
    assert eta_seconds(4, 10, 8.0) == pytest.approx(12.0)
    assert eta_seconds(10, 10, 8.0) == 0.0
    assert eta_seconds(0, 10, 8.0) is None


def test_a_description_has_percent_count_elapsed_and_time_left() -> None:
    assert describe(4, 10, 8.0) == "40% (4/10), 8 s elapsed, about 12 s left"
    assert describe(0, 10, 0.0) == "0% (0/10), 0 s elapsed, time left unknown"


def test_plain_progress_logs_once_per_tenth_and_starts_over_with_new_work(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="cotrain")
    progress = PlainProgress("training")

    for step in range(1, 21):
        progress.update(step, 20)
    for step in range(1, 5):  # the next round trains again from the start
        progress.update(step, 4)

    lines = [record.getMessage() for record in caplog.records]
    percents = [line.split(" ")[1] for line in lines]
    assert percents[:11] == ["5%", *(f"{p}%" for p in range(10, 101, 10))]  # the first step, then each tenth
    assert percents[11:] == ["25%", "50%", "75%", "100%"]
    assert all(line.startswith("training: ") and "elapsed" in line for line in lines)


def test_a_bar_on_a_terminal_shows_only_while_work_is_under_way_and_starts_over() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with progress_reporter(console, "training", hide_when_done=True) as progress:
        assert isinstance(progress, BarProgress)
        task = progress.progress.tasks[progress.task]
        assert not task.visible  # nothing to show before the first training
        progress.update(3, 10)
        assert (task.visible, task.completed, task.percentage) == (True, 3, 30.0)
        progress.update(10, 10)
        assert not task.visible
        progress.update(1, 4)  # the next round
        assert (task.visible, task.completed, task.total) == (True, 1, 4)


def test_off_a_terminal_the_reporter_logs_lines() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    with progress_reporter(console, "grid") as progress:
        assert isinstance(progress, PlainProgress)
