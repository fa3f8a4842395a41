"""The exact integer rules of one coordinate, hand-computed: every rounding case, negatives, bounds."""

from __future__ import annotations

import numpy as np
import pytest
from cotrain.consensus.coordinate import (
    MAX_VALUES,
    VALUE_BOUND,
    WEIGHT_BOUND,
    median,
    round_half_even_div,
    trimmed_mean,
    weighted_mean,
)
from cotrain.errors import IntegrityError
from hypothesis import given
from hypothesis import strategies as st

TOP = VALUE_BOUND - 1  # the largest value allowed
BOTTOM = -TOP


@pytest.mark.parametrize(
    ("values", "weights", "expected"),
    [
        ([10], [7], 10),
        ([1, 2], [1, 1], 2),  # 1.5 to 2
        ([2, 3], [1, 1], 2),  # 2.5 to 2
        ([-1, -2], [1, 1], -2),  # -1.5 to -2
        ([-2, -3], [1, 1], -2),  # -2.5 to -2
        ([0, 10], [3, 1], 2),  # 10 / 4 = 2.5 to 2
        ([0, 14], [3, 1], 4),  # 14 / 4 = 3.5 to 4
        ([0, 3], [2, 1], 1),  # 1
        ([0, 5], [2, 1], 2),  # 5 / 3 = 1.67 up
        ([0, 4], [2, 1], 1),  # 4 / 3 = 1.33 down
        ([-100, 100, 7], [1, 1, 2], 4),  # 14 / 4 = 3.5 to 4
        ([TOP, TOP], [WEIGHT_BOUND - 1, WEIGHT_BOUND - 1], TOP),
        ([TOP, BOTTOM], [WEIGHT_BOUND - 1, WEIGHT_BOUND - 1], 0),
        ([TOP, BOTTOM], [2, 1], (TOP - 1) // 3),  # TOP / 3 and TOP = 1 (mod 3): rounds down
    ],
)
def test_weighted_mean(values, weights, expected):
    assert weighted_mean(values, weights) == expected


def test_weighted_mean_does_not_depend_on_order_and_takes_numpy_integers():
    values, weights = [5, -3, 8, 8, 1], [4, 1, 9, 2, 6]
    expected = weighted_mean(values, weights)
    assert expected == round_half_even_div(20 - 3 + 72 + 16 + 6, 22)  # 111 / 22 = 5.05 -> 5
    assert weighted_mean(values[::-1], weights[::-1]) == expected
    as_numpy = list(np.array(values, dtype=np.int64)), list(np.array(weights, dtype=np.uint64))
    assert weighted_mean(*as_numpy) == 5


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([7], 7),
        ([3, 1, 2], 2),
        ([1, 2], 2),  # 1.5 to 2
        ([2, 3], 2),  # 2.5 to 2
        ([-1, -2], -2),  # -1.5 to -2
        ([-3, -2], -2),  # -2.5 to -2
        ([-1, 0], 0),  # -0.5 to 0
        ([5, -5, 100, -100], 0),
        ([4, 4, 4, 4], 4),
        ([1, 9, 9, 1, 5, 5], 5),
        ([BOTTOM, TOP], 0),
        ([TOP, TOP - 1], TOP - 1),  # TOP - 0.5: TOP is odd, so to TOP - 1
        ([BOTTOM, BOTTOM + 1], BOTTOM + 1),  # BOTTOM + 0.5: BOTTOM is odd, so to BOTTOM + 1
    ],
)
def test_median(values, expected):
    assert median(values) == expected


@pytest.mark.parametrize(
    ("values", "trim", "expected"),
    [
        ([1, 2, 3, 100], 0, 26),  # 106 / 4 = 26.5 to 26
        ([1, 2, 3, 100], 1, 2),  # (2 + 3) / 2 = 2.5 to 2
        ([-100, 1, 2, 3, 4, 100], 1, 2),  # 10 / 4 = 2.5 to 2
        ([-100, 1, 2, 4, 4, 100], 1, 3),  # 11 / 4 = 2.75 up
        ([-100, -1, -2, -4, -4, 100], 1, -3),  # -11 / 4
        ([-7, -1, -2, -3, 50], 1, -2),  # -6 / 3
        ([-100, -1, -2, -4, 100], 1, -2),  # -7 / 3 = -2.33
        ([9, 1, 5, 3, 7], 2, 5),  # only the median is kept
        ([4, 4, 4, 4, 4], 2, 4),
        ([TOP] * 5 + [BOTTOM] * 4, 0, round_half_even_div(TOP, 9)),
        ([TOP, TOP, BOTTOM, TOP], 1, TOP),
    ],
)
def test_trimmed_mean(values, trim, expected):
    assert trimmed_mean(values, trim) == expected


def test_trimmed_mean_is_unweighted_like_the_float_rule():
    # The same values weighted 1, 1, 1 and 1, 1, 100 give the same trimmed mean; only the weighted mean moves.
    assert trimmed_mean([0, 10, 20], 0) == 10
    assert weighted_mean([0, 10, 20], [1, 1, 100]) == 20  # 2010 / 102 = 19.7


@pytest.mark.parametrize("trim", [2, 3, -1])
def test_trimmed_mean_must_keep_a_value(trim):
    with pytest.raises(IntegrityError, match="trimmed mean of 4 values"):
        trimmed_mean([1, 2, 3, 4], trim)


@pytest.mark.parametrize(
    "values",
    [[], [0] * (MAX_VALUES + 1), [VALUE_BOUND], [-VALUE_BOUND], [1, 2.0], [True]],
)
def test_every_rule_refuses_values_out_of_bounds(values):
    for rule in (median, lambda v: trimmed_mean(v, 0), lambda v: weighted_mean(v, [1] * len(v))):
        with pytest.raises(IntegrityError):
            rule(values)


@pytest.mark.parametrize("weights", [[1, 0], [1, WEIGHT_BOUND], [1, -1], [1], [1, 1, 1], [1, 1.0]])
def test_weighted_mean_refuses_bad_weights(weights):
    with pytest.raises(IntegrityError):
        weighted_mean([1, 2], weights)


def test_the_bounds_are_accepted_at_their_edges():
    values = [TOP, BOTTOM] * (MAX_VALUES // 2)
    assert weighted_mean(values, [WEIGHT_BOUND - 1] * MAX_VALUES) == 0
    assert median(values) == 0
    assert trimmed_mean(values, MAX_VALUES // 2 - 1) == 0


@given(st.lists(st.integers(-(2**126), 2**126), min_size=1, max_size=30))
def test_median_and_trimmed_mean_lie_within_the_values(values):
    for result in (median(values), trimmed_mean(values, (len(values) - 1) // 3)):
        assert min(values) <= result <= max(values)
