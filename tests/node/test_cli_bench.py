"""`cotrain bench` finds the benchmark suite of a source checkout, or says where it looked."""

from __future__ import annotations

from pathlib import Path

import pytest
from cotrain.cli import bench_checkout
from cotrain.errors import ConfigError


def test_a_checkout_with_the_suite_is_found(tmp_path: Path) -> None:
    empty, checkout = tmp_path / "empty", tmp_path / "checkout"
    empty.mkdir()
    (checkout / "bench").mkdir(parents=True)
    (checkout / "bench" / "run.py").write_text("", encoding="utf-8")

    assert bench_checkout([empty, checkout]) == checkout


def test_without_the_suite_the_error_names_every_place_looked(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()  # a bench folder without the runner is not the suite

    with pytest.raises(ConfigError, match=r"no bench/run\.py in") as raised:
        bench_checkout([tmp_path, tmp_path / "other"])

    assert str(tmp_path / "other") in str(raised.value)
    assert "source repository" in str(raised.value)
