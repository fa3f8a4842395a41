"""Helpers for the end-to-end tests: how to call the real `cotrain` command and report what it did, the
built-in task specs, and the participants' logs for assertion messages."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import yaml


@dataclass(frozen=True)
class CliResult:
    """What one `cotrain` run did."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def explain(self) -> str:
        """The run, for an assertion message."""
        return (
            f"`cotrain {' '.join(self.args)}` exited {self.returncode} after {self.seconds:.1f} s\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


def cotrain_command() -> list[str]:
    """The `cotrain` script beside this Python (the project's .venv), else `python -m cotrain`."""
    script = Path(sys.executable).parent / "cotrain"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "cotrain"]


RunCli = Callable[..., CliResult]


def error_line(result: CliResult) -> str:
    """The run's error line; fails unless it exited 1 with just that on stderr and no traceback."""
    assert result.returncode == 1, result.explain()
    assert "Traceback" not in result.output, result.explain()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.explain()
    return lines[0]


def builtin_spec(dataset: str) -> dict:
    """The shipped spec file of a built-in data set, as plain YAML data."""
    return yaml.safe_load((files("cotrain.protocol") / "specs" / f"{dataset}.yaml").read_text("utf-8"))


def logs_of(directory: Path, pattern: str = "*/log.txt", limit: int = 2500) -> str:
    """The tails of the participants' logs under ``directory``, for an assertion message."""
    parts = []
    for log in sorted(directory.glob(pattern)):
        parts.append(f"--- {log.relative_to(directory)}\n{log.read_text('utf-8', 'replace')[-limit:]}")
    return "\n".join(parts) or f"(no logs under {directory})"


def run_until(
    what: str,
    steps: list[Callable[[], bool]],
    done: Callable[[], bool] | None = None,
    *,
    deadline_s: float = 90.0,
    after_pass: Callable[[], None] | None = None,
) -> None:
    """Run passes over the participants' ``step`` functions, each pass calling every step that has not yet
    returned True at once (as separate processes would), until all returned True or ``done()`` says so.
    ``after_pass`` runs between passes, while no step runs (a chain_clock.ChainClock, say)."""
    deadline = time.monotonic() + deadline_s
    finished: set[int] = set()
    with ThreadPoolExecutor(len(steps)) as pool:
        while len(finished) < len(steps) and not (done and done()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {deadline_s:.0f} s waiting until {what}")
            futures = {i: pool.submit(step) for i, step in enumerate(steps) if i not in finished}
            finished |= {i for i, future in futures.items() if future.result() is True}
            if after_pass is not None:
                after_pass()
            time.sleep(0.1)
