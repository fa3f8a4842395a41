"""Where a node's time goes, per round: training, storage, chain and validation. Appended as JSON lines so
several processes' files can be merged into the per-round split the demo and benchmarks report."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

KINDS = ("training", "storage", "chain", "validation")


class Timings:
    """Appends ``{"round", "kind", "seconds"}`` lines to a file (or only keeps them when ``path`` is None)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.entries: list[dict] = []

    @contextmanager
    def measure(self, round_: int, kind: str) -> Iterator[None]:
        """Time the block as ``kind`` work for ``round_``."""
        if kind not in KINDS:
            raise ValueError(f"unknown timing kind {kind!r}; use one of {KINDS}")
        start = time.perf_counter()
        try:
            yield
        finally:
            entry = {"round": round_, "kind": kind, "seconds": time.perf_counter() - start}
            self.entries.append(entry)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(json.dumps(entry) + "\n")


def merge(paths: list[Path]) -> dict[int, dict[str, float]]:
    """Per round, the seconds spent on each kind of work, summed over the given timing files."""
    totals: dict[int, dict[str, float]] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            per_round = totals.setdefault(entry["round"], dict.fromkeys(KINDS, 0.0))
            per_round[entry["kind"]] += entry["seconds"]
    return totals
