"""The seed cases of "bring your own task": a hospital, a bank and a phone fleet, each a task spec under
``cotrain/protocol/specs/cases/`` and a deterministic source of raw data (no download) that gives every
contributor its own file, as it would keep it, and the task owner a held-out file.

``cotrain demo --case NAME`` runs one on a local network; :func:`case_files` writes its files.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from cotrain.errors import ConfigError

#: A table as a CSV file holds it: the header and the rows, cells as text.
Table = tuple[list[str], list[list[str]]]


@dataclass(frozen=True)
class CaseData:
    """A case's raw data: one table per contributor, in contributor order, and the owner's held-out table."""

    shards: list[Table]
    held_out: Table


@dataclass(frozen=True)
class CaseFiles:
    """Where :func:`case_files` wrote a case's data: one CSV file per contributor and its number of rows, and
    the held-out file."""

    shards: list[Path]
    sizes: list[int]
    held_out: Path


@dataclass(frozen=True)
class Case:
    """A seed case: its name, what it shows, its data owners (one per contributor at most) and its data
    source (``data(contributors)``)."""

    name: str
    summary: str
    owners: tuple[str, ...]
    data: Callable[[int], CaseData]

    @property
    def spec_path(self) -> Path:
        """The case's task spec file (it pins no held-out digest: the owner pins it when posting)."""
        return Path(str(files("cotrain.protocol") / "specs" / "cases" / f"{self.name}.yaml"))


def _cases() -> dict[str, Case]:
    from cotrain.cases import bank, hospital, phone

    return {
        "hospital": Case("hospital", hospital.SUMMARY, hospital.HOSPITALS, hospital.case_data),
        "bank": Case("bank", bank.SUMMARY, tuple(b.name for b in bank.BANKS), bank.case_data),
        "phone": Case("phone", phone.SUMMARY, tuple(name for name, _ in phone.USERS), phone.case_data),
    }


CASE_NAMES: tuple[str, ...] = ("hospital", "bank", "phone")


def get_case(name: str) -> Case:
    """The case called ``name``.

    Raises
    ------
    ConfigError
        For an unknown name.
    """
    if name not in CASE_NAMES:
        raise ConfigError(f"unknown case {name!r}; use one of {', '.join(CASE_NAMES)}")
    return _cases()[name]


def write_table(path: Path, table: Table) -> Path:
    """Write ``table`` as a CSV file at ``path`` and return ``path``."""
    header, rows = table
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def case_files(name: str, directory: Path, contributors: int) -> CaseFiles:
    """Write case ``name``'s raw data for ``contributors`` contributors under ``directory``:
    ``contributor-I/data.csv`` each and ``held_out.csv``.

    Raises
    ------
    ConfigError
        For an unknown case, or more contributors than it has data owners.
    """
    data = get_case(name).data(contributors)
    shards = [
        write_table(directory / f"contributor-{i}" / "data.csv", table) for i, table in enumerate(data.shards)
    ]
    sizes = [len(rows) for _, rows in data.shards]
    return CaseFiles(shards, sizes, write_table(directory / "held_out.csv", data.held_out))


def check_contributors(contributors: int, owners: Sequence[str], kind: str) -> None:
    """Refuse a number of contributors the case has no data owners for, in one line."""
    if not 1 <= contributors <= len(owners):
        raise ConfigError(
            f"this case has {len(owners)} {kind} ({', '.join(owners)}); ask for 1 to {len(owners)} "
            f"contributors, not {contributors}"
        )
