"""What every benchmark section shares: where results go, the machine and versions they were measured on,
medians, one-core pinning and progress bars."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
#: Scratch space for runs (networks, stores, the Flower environment); git ignores ``.cotrain/``.
WORK = ROOT / ".cotrain" / "bench"
SOLC_VERSION = "0.8.37"

console = Console(stderr=True)


def results_dir(quick: bool) -> Path:
    """``bench/results`` for full runs, ``bench/results/quick`` for ``--quick`` ones."""
    return RESULTS / "quick" if quick else RESULTS


def progress() -> Progress:
    """A progress display for long work (description, bar, count, elapsed time) on stderr."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median, minimum, maximum and count of repeated measurements (never a single timing alone).

    Parameters
    ----------
    values : Sequence[float]
        One measurement per repetition; empty gives ``None`` statistics.
    digits : int
        Decimal places kept.

    Returns
    -------
    dict
        ``{"median", "min", "max", "n"}``.
    """
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    """``numerator / denominator`` rounded, or None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, digits)


@contextmanager
def one_core() -> Iterator[int]:
    """Pin this process, and every process it starts meanwhile, to one CPU core; restore on exit.

    Benchmarks that compare one process with a network of processes give both the same compute this way:
    otherwise the network's parallel trainings on several cores would hide its overhead.

    Yields
    ------
    int
        The core used (the last one this process may run on).
    """
    if not hasattr(os, "sched_setaffinity"):
        yield -1
        return
    before = os.sched_getaffinity(0)
    core = max(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def _first_line(command: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return lines[0].strip() if done.returncode == 0 and lines else None


def machine() -> dict[str, Any]:
    """The machine: OS, CPU model, cores, memory and load when the section started."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 2**20, 1)
    return {
        "os": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "shared": True,  # other engineers' jobs ran on the same two cores; see BENCHMARKS.md
    }


def versions() -> dict[str, str | None]:
    """Versions of what the numbers depend on: python, torch, numpy, anvil, solc, cotrain."""
    import cotrain
    import numpy
    import torch

    venv_bin = Path(sys.executable).parent
    anvil = venv_bin / "anvil" if (venv_bin / "anvil").exists() else shutil.which("anvil")
    solcx = Path(os.environ.get("SOLCX_BINARY_PATH", Path.home() / ".solcx")) / f"solc-v{SOLC_VERSION}"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "anvil": _first_line([str(anvil), "--version"]) if anvil else None,
        "solc": _solc_version(solcx) if solcx.exists() else None,
        "cotrain": cotrain.__version__,
    }


def _solc_version(binary: Path) -> str | None:
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [x.removeprefix("Version: ") for x in done.stdout.splitlines() if x.startswith("Version:")]
    return lines[0] if lines else None


def git_commit() -> dict[str, Any]:
    """The checkout's commit and whether tracked files differed from it."""
    head = _first_line(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {"commit": head, "dirty": bool(status.stdout.strip())}


def write_result(
    section: str,
    result: dict[str, Any],
    *,
    quick: bool,
    command: Sequence[str],
    started: dt.datetime,
    seconds: float,
    environment: dict[str, Any],
) -> Path:
    """Write ``result`` with its provenance to ``bench/results[/quick]/<section>.json``; return the path."""
    directory = results_dir(quick)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{section}.json"
    document = {
        "section": section,
        "quick": quick,
        "command": shlex.join(command),
        "date": started.isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        **environment,
        "result": result,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def run_standalone(
    section: str,
    description: str,
    quick_help: str,
    run: Callable[[bool], dict[str, Any]],
    table: Callable[[dict[str, Any]], str],
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``main`` of a bench module run on its own (``python -m bench.<section> [--quick]``): run it,
    write its JSON with the machine and versions (:func:`write_result`), print its markdown table, and return
    the result."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{section}", description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args(argv)
    command = ["python", "-m", f"bench.{section}", *(argv if argv is not None else sys.argv[1:])]
    started, clock = dt.datetime.now(dt.timezone.utc), time.monotonic()
    environment = {"machine": machine(), "versions": versions(), "git": git_commit()}
    result = run(args.quick)
    path = write_result(
        section,
        result,
        quick=args.quick,
        command=command,
        started=started,
        seconds=time.monotonic() - clock,
        environment=environment,
    )
    console.print(f"{time.monotonic() - clock:.0f} s -> {path.relative_to(ROOT)}")
    print(table(result))
    return result
