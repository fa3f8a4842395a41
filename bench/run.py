"""Run the benchmark suite: ``python -m bench.run [--quick] [--only overhead,gas,...]``.

Each section is a module of this package with ``run(quick: bool) -> dict``; its result is written, with the
machine, versions, git commit, command and date, to ``bench/results/<section>.json`` (``--quick``:
``bench/results/quick/<section>.json``). A section whose module is not there is reported and skipped; one
that fails is reported and the others still run (the exit status is then 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys
import time
import traceback
from collections.abc import Sequence

from rich.table import Table

from bench.common import ROOT, console, git_commit, machine, versions, write_result

SECTIONS = ("overhead", "gas", "scale", "storage", "accuracy", "fixed_point", "peers")


def parse_sections(text: str | None) -> tuple[str, ...]:
    """The sections named in ``--only`` (comma-separated), in the suite's order; all when ``text`` is empty.

    Raises
    ------
    SystemExit
        For a name that is not a section.
    """
    if not text:
        return SECTIONS
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(SECTIONS))
    if unknown:
        raise SystemExit(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return tuple(name for name in SECTIONS if name in names)


def _load(section: str):
    """The section's module, or None when the module itself does not exist (it lands separately)."""
    name = f"bench.{section}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name == name:
            return None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections; return the exit status (0 when every section that exists succeeded)."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Reduced versions (minutes, not an hour).")
    parser.add_argument("--only", default="", help=f"Comma-separated sections of {', '.join(SECTIONS)}.")
    args = parser.parse_args(argv)
    sections = parse_sections(args.only)
    command = ["python", "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])]
    environment = {"versions": versions(), "git": git_commit()}
    outcomes: list[tuple[str, str, str]] = []
    for section in sections:
        console.rule(f"[bold]{section}[/]{' (quick)' if args.quick else ''}")
        module = _load(section)
        if module is None:
            console.print(f"bench/{section}.py is not there: skipped")
            outcomes.append((section, "skipped", "module missing"))
            continue
        started, clock = dt.datetime.now(dt.timezone.utc), time.monotonic()
        at_start = machine()
        try:
            result = module.run(args.quick)
        except Exception as error:  # one broken section must not cost the others' results
            console.print(traceback.format_exc(), markup=False, highlight=False)
            outcomes.append((section, "failed", f"{type(error).__name__}: {error}"[:200]))
            continue
        seconds = time.monotonic() - clock
        path = write_result(
            section,
            result,
            quick=args.quick,
            command=command,
            started=started,
            seconds=seconds,
            environment={"machine": at_start, **environment},
        )
        outcomes.append((section, "done", f"{seconds:.0f} s -> {path.relative_to(ROOT)}"))
    table = Table(title="benchmark sections")
    for column in ("section", "outcome", "detail"):
        table.add_column(column)
    for row in outcomes:
        table.add_row(*row)
    console.print(table)
    return 1 if any(outcome == "failed" for _, outcome, _ in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
