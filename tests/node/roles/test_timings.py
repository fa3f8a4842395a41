"""Tests for cotrain.roles.timings: measuring per round and kind, and merging several nodes' files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cotrain.roles import timings as timings_module
from cotrain.roles.timings import KINDS, Timings, merge


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A perf_counter that returns the listed readings in turn; append readings before measuring."""
    readings: list[float] = []
    ticks: Iterator[float] = iter(readings)
    monkeypatch.setattr(timings_module.time, "perf_counter", lambda: next(ticks))
    return readings


def test_measure_records_the_elapsed_time_of_the_block(clock: list[float]) -> None:
    clock += [10.0, 12.5]
    timings = Timings()

    with timings.measure(3, "training"):
        pass

    assert timings.entries == [{"round": 3, "kind": "training", "seconds": 2.5}]


def test_measure_appends_json_lines_to_the_file(tmp_path: Path, clock: list[float]) -> None:
    clock += [0.0, 1.0, 5.0, 5.25, 7.0, 7.5]
    path = tmp_path / "timings.jsonl"
    with Timings(path).measure(0, "chain"):
        pass
    timings = Timings(path)  # a restarted node appends to the same file

    with timings.measure(0, "storage"):
        pass
    with timings.measure(1, "validation"):
        pass

    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"round": 0, "kind": "chain", "seconds": 1.0},
        {"round": 0, "kind": "storage", "seconds": 0.25},
        {"round": 1, "kind": "validation", "seconds": 0.5},
    ]
    assert timings.entries == lines[1:]


def test_measure_records_a_block_that_raises(clock: list[float]) -> None:
    clock += [1.0, 4.0]
    timings = Timings()

    with pytest.raises(RuntimeError, match="market refused"), timings.measure(2, "chain"):
        raise RuntimeError("market refused")

    assert timings.entries == [{"round": 2, "kind": "chain", "seconds": 3.0}]


def test_measure_refuses_an_unknown_kind(tmp_path: Path) -> None:
    path = tmp_path / "timings.jsonl"
    timings = Timings(path)

    with pytest.raises(ValueError, match="unknown timing kind 'gossip'"), timings.measure(0, "gossip"):
        pass

    assert timings.entries == []
    assert not path.exists()


def test_merge_sums_each_round_and_kind_over_the_files(tmp_path: Path, clock: list[float]) -> None:
    # Prepare: a contributor's and a validator's files, and one that was never written.
    clock += [0.0, 2.0, 2.0, 2.5, 0.0, 3.0, 3.0, 3.75]
    contributor, validator = tmp_path / "contributor.jsonl", tmp_path / "validator.jsonl"
    with Timings(contributor).measure(0, "training"):
        pass
    with Timings(contributor).measure(1, "storage"):
        pass
    with Timings(validator).measure(0, "validation"):
        pass
    with Timings(validator).measure(1, "storage"):
        pass

    # Execute
    totals = merge([contributor, validator, tmp_path / "absent.jsonl"])

    # Assert
    assert totals == {
        0: {"training": 2.0, "storage": 0.0, "chain": 0.0, "validation": 3.0},
        1: {"training": 0.0, "storage": 1.25, "chain": 0.0, "validation": 0.0},
    }
    assert all(tuple(kinds) == KINDS for kinds in totals.values())


def test_merge_of_nothing_is_empty(tmp_path: Path) -> None:
    assert merge([]) == {}
    assert merge([tmp_path / "absent.jsonl"]) == {}
