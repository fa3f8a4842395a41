"""Fixtures for the end-to-end tests (helpers live in e2e_helpers.py).

Every `cotrain` command runs in a new session, so a run that hangs is killed together with whatever it
started (anvil, a js-ipfs daemon, participant processes) instead of leaking them into the next test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from e2e_helpers import CliResult, RunCli, cotrain_command


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Return ``run(*args, env=None, timeout=..., cwd=tmp_path)``, which runs `cotrain ARGS` and returns
    a CliResult. On timeout the whole process group is killed and the test fails with what it printed.
    """

    def run(
        *args: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        cwd: Path | None = None,
    ) -> CliResult:
        argv = tuple(str(a) for a in args)
        started = time.monotonic()
        process = subprocess.Popen(
            [*cotrain_command(), *argv],
            cwd=cwd or tmp_path,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(
                f"`cotrain {' '.join(argv)}` did not finish within {timeout} s\n"
                f"--- stdout\n{stdout[-4000:]}\n--- stderr\n{stderr[-4000:]}"
            )
        return CliResult(argv, process.returncode, stdout, stderr, time.monotonic() - started)

    return run
