"""The fixed-point experiment's core on tiny input: the result's shape, a fine format matching float32, and
an overflowing format's updates left out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cotrain.learning.training import TrainResult

from bench.fixed_point import FLOAT32, FLOAT32_SUMS, compare, fixed_point_round, format_name, summarise

FINE, NARROW = (32, 24), (4, 8)  # q4.8 holds only |x| < 2**-5: every real update overflows


@pytest.fixture(scope="module")
def cell() -> dict:
    torch.set_num_threads(1)
    return compare(
        "breast_cancer", "iid", 0, rounds=2, contributors=3, formats=[FINE, NARROW], train_limit=90
    )


def test_the_result_has_one_run_per_format_and_the_float32_reference(cell: dict) -> None:
    assert set(cell["runs"]) == {FLOAT32, FLOAT32_SUMS, format_name(*FINE), format_name(*NARROW)}
    assert sum(cell["shard_sizes"]) == 90
    for run in cell["runs"].values():
        assert run["updates"] == 2 * 3
        assert 0.0 <= run["accuracy"] <= 1.0
        assert run["max_abs_delta"] > 0
    assert cell["runs"][FLOAT32]["accuracy_difference"] == 0


def test_a_fine_format_lands_within_a_tenth_of_a_point_of_float32(cell: dict) -> None:
    fine = cell["runs"][format_name(*FINE)]

    assert abs(fine["accuracy_difference"]) <= 0.1
    assert abs(fine["loss_difference"]) < 1e-4
    assert 0 < fine["first_round_max_abs_difference"] < 1e-6  # 2**-25 from the mean, plus float32 rounding
    assert cell["runs"][FLOAT32]["first_round_max_abs_difference"] == 0
    assert fine["overflowing_updates"] == 0


def test_updates_that_overflow_are_left_out(cell: dict) -> None:
    narrow = cell["runs"][format_name(*NARROW)]

    assert narrow["overflowing_updates"] == narrow["updates"]


def test_the_summary_reports_every_format_per_data_set_and_partition(cell: dict) -> None:
    summary = summarise([cell], [FINE, NARROW])

    assert set(summary["formats"]) == {FLOAT32, FLOAT32_SUMS, format_name(*FINE), format_name(*NARROW)}
    assert summary["formats"][format_name(*NARROW)]["breast_cancer/iid"]["overflow_fraction"] == 1.0
    assert summary["max_abs_delta"]["breast_cancer/iid"] == max(
        run["max_abs_delta"] for run in cell["runs"].values()
    )


def test_one_fixed_point_round_is_the_exact_weighted_mean_added_to_the_base() -> None:
    # Prepare: scale 2 bits; weights 1 and 3; one coordinate 0.25 and 1.0 -> q 1 and 4 -> (1 + 12) / 4 = 3.25
    # -> 3 (nearest) -> 0.75; the other 0.5 and -0.5 -> q 2 and -2 -> (2 - 6) / 4 = -1 -> -0.25
    base = {"w": torch.tensor([1.0, 2.0])}
    results = [
        TrainResult({"w": torch.tensor([0.25, 0.5])}, 1, 0.0),
        TrainResult({"w": torch.tensor([1.0, -0.5])}, 3, 0.0),
        TrainResult({"w": torch.tensor([9.0, 0.0])}, 100, 0.0),  # 9 * 4 = 36 > 31: overflows 6 bits
    ]

    # Execute
    state, overflowing = fixed_point_round(base, results, width_bits=6, scale_bits=2)

    # Assert
    assert overflowing == 1
    assert state["w"].dtype == torch.float32
    np.testing.assert_array_equal(state["w"].numpy(), np.array([1.75, 1.75], dtype=np.float32))
