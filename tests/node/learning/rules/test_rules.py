"""Tests for each rule module of cotrain.learning.rules, on hand-computed vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cotrain.learning.robust import centered_clip, coordinate_median, weighted_mean
from cotrain.learning.rules import get_rule
from cotrain.learning.rules.centered_clip import CenteredClipParams
from cotrain.learning.rules.krum import KrumParams
from cotrain.learning.rules.trimmed_mean import TrimmedMeanParams
from pydantic import ValidationError


def _v(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _krum_points() -> list[np.ndarray]:
    # Squared distances: v0-v1 4, v0-v2 4, v0-v3 2, v1-v2 8, v1-v3 2, v2-v3 2,
    # v4 to v0, v1, v2, v3: 3200, 3044, 3044, 3042.
    return [_v(0, 0), _v(2, 0), _v(0, 2), _v(1, 1), _v(40, 40)]


def test_fedavg_weighs_by_samples_and_shares_by_sample_count() -> None:
    # (1 * [1, 2] + 3 * [5, 6]) / 4 = [4, 5]
    result = get_rule("fedavg").run([_v(1, 2), _v(5, 6)], [1, 3], {})

    assert result.vector.tolist() == [4.0, 5.0]
    assert result.shares == [0.25, 0.75]


def test_median_takes_the_middle_value_per_coordinate_with_equal_shares() -> None:
    result = get_rule("median").run([_v(1, 9), _v(2, 8), _v(30, -7)], [5, 5, 90], {})

    assert result.vector.tolist() == [2.0, 8.0]
    assert result.shares == [1 / 3] * 3


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        # n = 5, sorted column [0, 1, 2, 3, 100]
        (0.0, 106 / 5),  # trim 0: the plain mean
        (0.2, 2.0),  # trim floor(1.0) = 1: (1 + 2 + 3) / 3
        (0.45, 2.0),  # trim min(floor(2.25), 2) = 2: the middle value alone
    ],
)
def test_trimmed_mean_drops_floor_of_the_fraction_at_each_end(fraction: float, expected: float) -> None:
    vectors = [_v(3), _v(0), _v(100), _v(1), _v(2)]

    result = get_rule("trimmed_mean").run(vectors, [1] * 5, {"trim_fraction": fraction})

    assert result.vector.tolist() == [expected]
    assert result.shares == [0.2] * 5


def test_trimmed_mean_of_two_updates_trims_nothing() -> None:
    # floor(0.4 * 2) = 0 and (2 - 1) // 2 = 0.
    result = get_rule("trimmed_mean").run([_v(1), _v(4)], [1, 1], {"trim_fraction": 0.4})

    assert result.vector.tolist() == [2.5]


def test_krum_picks_the_most_central_vector_and_never_the_outlier() -> None:
    # Prepare: byzantine_fraction 0.2 of 5 gives f = 1; scores [6, 6, 6, 4, 6086] (see test_robust).
    points = _krum_points()

    # Execute
    result = get_rule("krum").run(points, [1] * 5, {"byzantine_fraction": 0.2})

    # Assert
    assert result.vector.tolist() == [1.0, 1.0]
    assert result.vector is not points[3]
    assert result.shares == [0.0, 0.0, 0.0, 1.0, 0.0]


def test_multi_krum_averages_the_n_minus_f_lowest_scores() -> None:
    # f = 1: the 4 lowest are v3, v0, v1, v2; their mean in index order is
    # ([0, 0] + [2, 0] + [0, 2] + [1, 1]) / 4.
    result = get_rule("multi_krum").run(_krum_points(), [1] * 5, {"byzantine_fraction": 0.2})

    assert result.vector.tolist() == [0.75, 0.75]
    assert result.shares == [0.25, 0.25, 0.25, 0.25, 0.0]


def test_krum_assumes_at_most_n_minus_3_byzantine() -> None:
    # 0.45 of 4 is 1.8, floored to 1, which is also n - 3.
    vectors = [_v(0), _v(1), _v(2), _v(50)]

    result = get_rule("multi_krum").run(vectors, [1] * 4, {"byzantine_fraction": 0.45})

    # f = 1, one neighbour each: scores [1, 1, 1, 2304]; picks v0, v1, v2.
    assert result.vector.tolist() == [1.0]
    assert result.shares == [1 / 3, 1 / 3, 1 / 3, 0.0]


@pytest.mark.parametrize("name", ["krum", "multi_krum"])
def test_krum_below_three_updates_is_the_median(name: str) -> None:
    result = get_rule(name).run([_v(1, 4), _v(3, 0)], [1, 1], {})

    assert result.vector.tolist() == [2.0, 2.0]
    assert result.shares == [0.5, 0.5]


def test_centered_clip_uses_the_median_norm_as_radius_unit() -> None:
    # Prepare: norms 1, 2, 10 have median 2, so radius_ratio 0.5 clips at 1.
    vectors = [_v(1, 0), _v(0, 2), _v(10, 0)]

    # Execute
    result = get_rule("centered_clip").run(vectors, [1, 1, 1], {"radius_ratio": 0.5, "iterations": 2})

    # Assert
    assert result.vector.tolist() == centered_clip(vectors, 1.0, 2).tolist()
    assert result.shares == [1 / 3] * 3


def test_centered_clip_with_a_huge_radius_is_the_mean_after_one_step() -> None:
    vectors = [_v(1, 0), _v(0, 2), _v(5, 1)]

    result = get_rule("centered_clip").run(vectors, [1, 1, 1], {"radius_ratio": 1e300, "iterations": 1})

    # From the median (1, 1), one unclipped step lands on 1 + ((0 + -1 + 4) / 3, (-1 + 1 + 0) / 3).
    assert result.vector.tolist() == [2.0, 1.0]
    assert coordinate_median(vectors).tolist() == [1.0, 1.0]
    assert weighted_mean(vectors, [1.0] * 3).tolist() == [2.0, 1.0]


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
