"""Stopping the helper daemons cotrain starts (anvil, js-ipfs)."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen | None, *, grace_s: float) -> None:
    """Ask ``process`` to exit (SIGTERM), and kill it (SIGKILL) if it has not after ``grace_s`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
