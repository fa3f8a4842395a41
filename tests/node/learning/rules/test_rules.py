"""Tests for each rule module of cotrain.learning.rules, on hand-computed fixed-point integer vectors.

Every rule takes int64 vectors and returns an int64 aggregate and each input's share in millionths; every
division is rounded once, half to even (so 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, -3.5 -> -4).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from cotrain.errors import IntegrityError
from cotrain.learning.rules import Aggregate, get_rule
from cotrain.learning.rules.centered_clip import CenteredClipParams
from cotrain.learning.rules.krum import KrumParams
from cotrain.learning.rules.trimmed_mean import TrimmedMeanParams
from pydantic import ValidationError

THIRD = 333_333  # 10**6 / 3 = 333333.33.. rounds down
HALF = 500_000
QUARTER = 250_000


def _v(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _krum_points(scale: int = 1) -> list[np.ndarray]:
    # Squared distances (times scale**2): v0-v1 4, v0-v2 4, v0-v3 2, v1-v2 8, v1-v3 2, v2-v3 2,
    # v4 to v0, v1, v2, v3: 3200, 3044, 3044, 3042.
    points = [(0, 0), (2, 0), (0, 2), (1, 1), (40, 40)]
    return [_v(scale * x, scale * y) for x, y in points]


def _assert_int_aggregate(result: Aggregate, vector: list[int], shares: list[int]) -> None:
    assert result.vector.dtype == np.int64
    assert result.vector.tolist() == vector
    assert result.shares == shares
    assert all(type(share) is int for share in result.shares)


# ------------------------------------------------------------------------------------------------ fedavg


def test_fedavg_weighs_by_samples_and_shares_by_sample_count() -> None:
    # (1 * [1, 2] + 3 * [5, 6]) / 4 = [16 / 4, 20 / 4] = [4, 5]; shares 1/4 and 3/4 in millionths.
    result = get_rule("fedavg").run([_v(1, 2), _v(5, 6)], [1, 3], {})

    _assert_int_aggregate(result, [4, 5], [250_000, 750_000])


def test_fedavg_rounds_the_weighted_mean_half_to_even() -> None:
    # Equal weights: sums [1, 3, -1, -3, 7] over 2 = [0.5, 1.5, -0.5, -1.5, 3.5] -> [0, 2, 0, -2, 4].
    vectors = [_v(0, 1, -1, -3, 3), _v(1, 2, 0, 0, 4)]

    result = get_rule("fedavg").run(vectors, [5, 5], {})

    _assert_int_aggregate(result, [0, 2, 0, -2, 4], [HALF, HALF])


def test_fedavg_rounds_to_the_nearest_not_towards_zero() -> None:
    # Weights 1 and 2: (10 + 2 * 11) / 3 = 32 / 3 = 10.67 -> 11; (-10 + 2 * -11) / 3 = -10.67 -> -11;
    # (0 + 2 * 1) / 3 = 0.67 -> 1; (0 + 2 * -1) / 3 -> -1; (1 + 0) / 3 = 0.33 -> 0.
    result = get_rule("fedavg").run([_v(10, -10, 0, 0, 1), _v(11, -11, 1, -1, 0)], [1, 2], {})

    # Shares 10**6 / 3 = 333333.33 -> 333333 and 2 * 10**6 / 3 = 666666.67 -> 666667.
    _assert_int_aggregate(result, [11, -11, 1, -1, 0], [THIRD, 666_667])


def test_fedavg_is_the_only_streaming_rule() -> None:
    assert {
        name
        for name in ("centered_clip", "fedavg", "krum", "median", "multi_krum", "trimmed_mean")
        if get_rule(name).streams
    } == {"fedavg"}


# ------------------------------------------------------------------------------------------------ median


def test_median_takes_the_middle_value_per_coordinate_with_equal_shares() -> None:
    # Columns [1, 2, 30] -> 2 and [9, 8, -7] -> 8; the sample counts play no part.
    result = get_rule("median").run([_v(1, 9), _v(2, 8), _v(30, -7)], [5, 5, 90], {})

    _assert_int_aggregate(result, [2, 8], [THIRD] * 3)


def test_median_of_an_even_count_rounds_the_middle_pair_half_to_even() -> None:
    # Columns [1, 4] -> 2.5 -> 2, [1, 6] -> 3.5 -> 4, [-1, -4] -> -2.5 -> -2, [-1, -6] -> -3.5 -> -4,
    # [3, 7] -> 5 (no rounding).
    vectors = [_v(1, 1, -1, -1, 3), _v(4, 6, -4, -6, 7)]

    result = get_rule("median").run(vectors, [1, 1], {})

    _assert_int_aggregate(result, [2, 4, -2, -4, 5], [HALF, HALF])


def test_median_ignores_an_outlier_and_the_order_of_the_updates() -> None:
    # Column [1, 4, 2, 10**9] sorted [1, 2, 4, 10**9] -> (2 + 4) / 2 = 3; column [0, 0, 0, -10**9] -> 0.
    vectors = [_v(1, 0), _v(4, 0), _v(2, 0), _v(10**9, -(10**9))]

    forward = get_rule("median").run(vectors, [1] * 4, {})
    backward = get_rule("median").run(vectors[::-1], [1] * 4, {})

    _assert_int_aggregate(forward, [3, 0], [QUARTER] * 4)
    assert backward.vector.tolist() == [3, 0]


# ------------------------------------------------------------------------------------------ trimmed mean


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        # n = 5, sorted column [0, 1, 2, 3, 100]
        (0.0, 21),  # trim 0: the plain mean 106 / 5 = 21.2 -> 21
        (0.2, 2),  # trim floor(1/5 * 5) = 1: (1 + 2 + 3) / 3
        (0.39, 2),  # trim floor(1.95) = 1
        (0.45, 2),  # trim min(floor(2.25), 2) = 2: the middle value alone
    ],
)
def test_trimmed_mean_drops_floor_of_the_fraction_at_each_end(fraction: float, expected: int) -> None:
    vectors = [_v(3), _v(0), _v(100), _v(1), _v(2)]

    result = get_rule("trimmed_mean").run(vectors, [1] * 5, {"trim_fraction": fraction})

    _assert_int_aggregate(result, [expected], [200_000] * 5)


def test_trimmed_mean_of_two_updates_trims_nothing_and_rounds_half_to_even() -> None:
    # floor(0.4 * 2) = 0 and (2 - 1) // 2 = 0: (1 + 4) / 2 = 2.5 -> 2, (1 + 6) / 2 = 3.5 -> 4.
    result = get_rule("trimmed_mean").run([_v(1, 1), _v(4, 6)], [1, 1], {"trim_fraction": 0.4})

    _assert_int_aggregate(result, [2, 4], [HALF, HALF])


def test_trimmed_mean_keeps_the_middle_pair_of_four_and_rounds_half_to_even() -> None:
    # trim floor(0.25 * 4) = 1: columns sorted [0, 1, 2, 100] -> (1 + 2) / 2 = 1.5 -> 2,
    # [0, 1, 4, 100] -> 2.5 -> 2, [-100, -3, -2, 0] -> -2.5 -> -2.
    vectors = [_v(0, 100, -3), _v(100, 0, 0), _v(2, 4, -100), _v(1, 1, -2)]

    result = get_rule("trimmed_mean").run(vectors, [1] * 4, {"trim_fraction": 0.25})

    _assert_int_aggregate(result, [2, 2, -2], [QUARTER] * 4)


def test_trimmed_mean_uses_the_fractions_exact_decimal_value() -> None:
    # 0.29 * 100 is 28.999999999999996 in float64, but the spec's 0.29 is 29/100: trim exactly 29.
    # Sorted column: 0 .. 70 and 29 copies of 1000. Trim 29 keeps 29 .. 70: 2079 / 42 = 49.5 -> 50.
    # (Trim 28 would keep 28 .. 70 and one 1000: 3107 / 44 = 70.6 -> 71.)
    assert 0.29 * 100 < 29
    vectors = [_v(value) for value in [*range(71), *[1000] * 29]]

    result = get_rule("trimmed_mean").run(vectors, [1] * 100, {"trim_fraction": 0.29})

    _assert_int_aggregate(result, [50], [10_000] * 100)


# -------------------------------------------------------------------------------------------------- Krum


def test_krum_picks_the_most_central_vector_and_never_the_outlier() -> None:
    # Prepare: byzantine_fraction 0.2 of 5 gives f = 1, so each score sums the n - f - 2 = 2 closest:
    # v0: 2 + 4, v1: 2 + 4, v2: 2 + 4, v3: 2 + 2, v4: 3042 + 3044 (times 10**2).
    points = _krum_points(10)

    # Execute
    result = get_rule("krum").run(points, [1] * 5, {"byzantine_fraction": 0.2})

    # Assert: a copy of v3.
    _assert_int_aggregate(result, [10, 10], [0, 0, 0, 1_000_000, 0])
    assert result.vector is not points[3]


def test_multi_krum_averages_the_n_minus_f_lowest_scores() -> None:
    # f = 1: the 4 lowest are v3, v0, v1, v2; their mean is ([0, 0] + [20, 0] + [0, 20] + [10, 10]) / 4
    # = [7.5, 7.5] -> [8, 8].
    result = get_rule("multi_krum").run(_krum_points(10), [7, 1, 1, 1, 1], {"byzantine_fraction": 0.2})

    _assert_int_aggregate(result, [8, 8], [QUARTER] * 4 + [0])


def test_krum_assumes_at_most_n_minus_3_byzantine() -> None:
    # 0.45 of 4 is 1.8, floored to 1, which is also n - 3.
    vectors = [_v(0), _v(1), _v(2), _v(50)]

    result = get_rule("multi_krum").run(vectors, [1] * 4, {"byzantine_fraction": 0.45})

    # f = 1, one neighbour each: scores [1, 1, 1, 2304]; picks v0, v1, v2, whose mean is 3 / 3.
    _assert_int_aggregate(result, [1], [THIRD] * 3 + [0])


def test_krum_caps_the_byzantine_count_at_n_minus_3_and_breaks_ties_by_index() -> None:
    # 0.4 of 3 is 1.2, floored to 1, capped to n - 3 = 0: one neighbour each, scores [1, 1, 2401].
    vectors = [_v(0), _v(1), _v(50)]

    krum = get_rule("krum").run(vectors, [1] * 3, {"byzantine_fraction": 0.4})
    multi = get_rule("multi_krum").run(vectors, [1] * 3, {"byzantine_fraction": 0.4})

    # Krum: v0 and v1 tie, the lower index wins. Multi-Krum picks all n - 0: 51 / 3 = 17.
    _assert_int_aggregate(krum, [0], [1_000_000, 0, 0])
    _assert_int_aggregate(multi, [17], [THIRD] * 3)


@pytest.mark.parametrize("name", ["krum", "multi_krum"])
def test_krum_below_three_updates_is_the_median(name: str) -> None:
    # (1 + 2) / 2 = 1.5 -> 2 and (4 + 1) / 2 = 2.5 -> 2.
    result = get_rule(name).run([_v(1, 4), _v(2, 1)], [1, 1], {})

    _assert_int_aggregate(result, [2, 2], [HALF, HALF])


# ----------------------------------------------------------------------------------------- centered clip


def test_centered_clip_uses_the_median_integer_norm_as_radius_unit() -> None:
    # Prepare: norms 30, 40, 300 have median 40, so radius_ratio 0.5 clips at 20. The start is the
    # coordinate-wise median [30, 0].
    vectors = [_v(30, 0), _v(0, 40), _v(300, 0)]

    # Execute
    one = get_rule("centered_clip").run(vectors, [1, 1, 1], {"radius_ratio": 0.5, "iterations": 1})
    two = get_rule("centered_clip").run(vectors, [1, 1, 1], {"radius_ratio": 0.5, "iterations": 2})

    # Assert. Step 1 from [30, 0]: differences [0, 0] (kept), [-30, 40] (norm 50, times 20/50: [-12, 16]),
    # [270, 0] (norm 270: [20, 0]); their sum [8, 16] / 3 = [2.67, 5.33] -> [3, 5], so v = [33, 5].
    # Step 2: [-3, -5] (norm isqrt(34) = 5, kept), [-33, 35] (norm isqrt(2314) = 48: -660/48 = -13.75
    # -> -14, 700/48 = 14.58 -> 15), [267, -5] (norm isqrt(71314) = 267: [20, -100/267 -> 0]); the sum
    # [3, 10] / 3 -> [1, 3], so v = [34, 8].
    _assert_int_aggregate(one, [33, 5], [THIRD] * 3)
    _assert_int_aggregate(two, [34, 8], [THIRD] * 3)


def test_centered_clip_radius_rounds_the_ratio_times_the_median_norm_half_to_even() -> None:
    # Prepare: norms 1, 5 and isqrt(117) = 10 have median 5: radius_ratio 0.5 gives 2.5 -> 2 and 0.7 gives
    # 3.5 -> 4 (a radius of 3, from rounding 2.5 up or truncating 3.5, would give [-1, 0]).
    vectors = [_v(1, 0), _v(0, 5), _v(-9, -6)]

    # Execute: one step from the median [0, 0], so the differences are the vectors.
    low = get_rule("centered_clip").run(vectors, [1] * 3, {"radius_ratio": 0.5, "iterations": 1})
    high = get_rule("centered_clip").run(vectors, [1] * 3, {"radius_ratio": 0.7, "iterations": 1})

    # Assert. Radius 2: [1, 0] kept, [0, 5] -> [0, 10/5 = 2], [-9, -6] -> [-18/10 -> -2, -12/10 -> -1];
    # sum [-1, 1] / 3 -> [0, 0]. Radius 4: [1, 0], [0, 20/5 = 4], [-36/10 -> -4, -24/10 -> -2];
    # sum [-3, 2] / 3 -> [-1, 1].
    assert low.vector.tolist() == [0, 0]
    assert high.vector.tolist() == [-1, 1]


def test_centered_clip_with_a_huge_radius_is_the_mean_after_one_step() -> None:
    vectors = [_v(1, 0), _v(0, 2), _v(5, 1)]

    result = get_rule("centered_clip").run(vectors, [1, 1, 1], {"radius_ratio": 1e300, "iterations": 1})

    # From the median [1, 1], one unclipped step lands on [1 + (0 - 1 + 4) / 3, 1 + (-1 + 1 + 0) / 3],
    # which is the plain mean [6 / 3, 3 / 3].
    _assert_int_aggregate(result, [2, 1], [THIRD] * 3)


# ------------------------------------------------------------------------------------------- every rule


@pytest.mark.parametrize("name", ["centered_clip", "fedavg", "krum", "median", "multi_krum", "trimmed_mean"])
def test_every_rule_refuses_float_vectors(name: str) -> None:
    floats = [np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([5.0, 6.0])]

    with pytest.raises(IntegrityError):
        get_rule(name).run(floats, [1, 1, 1], {})


@pytest.mark.parametrize("name", ["centered_clip", "fedavg", "krum", "median", "multi_krum", "trimmed_mean"])
def test_every_rule_returns_one_vector_of_identical_updates(name: str) -> None:
    # Whatever the rule, three copies of one update aggregate to it (the centre never moves).
    update = _v(2**31, -(2**31), 0, 12_345_678)

    result = get_rule(name).run([update.copy() for _ in range(3)], [4, 4, 4], {})

    assert result.vector.dtype == np.int64
    assert result.vector.tolist() == update.tolist()
    assert sum(result.shares) in (THIRD * 3, 1_000_000)


# -------------------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("model", "params", "field"),
    [
        (TrimmedMeanParams, {"trim_fraction": 0.5}, "trim_fraction"),
        (KrumParams, {"byzantine_fraction": -0.1}, "byzantine_fraction"),
        (CenteredClipParams, {"radius_ratio": 0}, "radius_ratio"),
        (CenteredClipParams, {"radius_ratio": math.inf}, "radius_ratio"),
        (CenteredClipParams, {"iterations": 101}, "iterations"),
        (CenteredClipParams, {"iterations": 2.0}, "iterations"),
        (KrumParams, {"f": 1}, "Extra inputs are not permitted"),
    ],
)
def test_parameters_out_of_range_are_refused(model: type, params: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        model.model_validate(params)


def test_numbers_written_as_text_are_read() -> None:
    assert TrimmedMeanParams.model_validate({"trim_fraction": "1e-1"}).trim_fraction == 0.1
