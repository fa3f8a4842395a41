"""Tests for cotrain.learning.screening, on hand-computed vectors."""

import math

import numpy as np
import pytest
from cotrain.errors import IntegrityError
from cotrain.learning.robust import dot, l2_norm
from cotrain.learning.screening import cosine, near_duplicates, pairwise_relative_distance


def _v(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# -------------------------------------------------------------------------- relative distance


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (_v(3, 4), _v(3, 4), 0.0),
        (_v(3, 4), _v(0, 0), 1.0),  # 5 / max(5, 0)
        (_v(1, 0), _v(-1, 0), 2.0),  # 2 / max(1, 1)
        (_v(0, 0), _v(0, 0), 0.0),  # both zero
        (_v(1, 0), _v(1, 1), 1 / math.sqrt(2)),  # 1 / max(1, sqrt 2)
        (_v(6, 8), _v(3, 4), 0.5),  # 5 / max(10, 5)
    ],
)
def test_pairwise_relative_distance_on_hand_computed_pairs(a, b, expected):
    assert pairwise_relative_distance(a, b) == expected
    assert pairwise_relative_distance(b, a) == expected


def test_pairwise_relative_distance_refuses_mismatched_vectors():
    with pytest.raises(IntegrityError, match="2 and 3 values"):
        pairwise_relative_distance(_v(1, 2), _v(1, 2, 3))
    with pytest.raises(IntegrityError, match="second vector holds nan"):
        pairwise_relative_distance(_v(1, 2), _v(1, float("nan")))


# ----------------------------------------------------------------------------- near duplicates


def _chain() -> list[np.ndarray]:
    # a-b: 0.1 / |b| = 0.0995; b-c: 0.1 / |c| = 0.0981; a-c: 0.2 / |c| = 0.196; d is far from all.
    return [_v(1, 0), _v(1, 0.1), _v(1, 0.2), _v(0, 1)]


def test_near_duplicates_map_each_copy_to_the_earliest_near_vector_without_following_chains():
    # c is within 0.15 of b but not of a, so it maps to b, itself a copy of a.
    assert near_duplicates(_chain(), [0, 1, 2, 3], 0.15) == {1: 0, 2: 1}
    # With a larger tolerance c is near a too, and a is earlier than b.
    assert near_duplicates(_chain(), [0, 1, 2, 3], 0.2) == {1: 0, 2: 0}


def test_near_duplicates_follow_the_given_order_not_the_index():
    # Ranks reversed: d first, then c, b, a. b copies c; a copies b (a is not near c).
    assert near_duplicates(_chain(), [3, 2, 1, 0], 0.15) == {0: 1, 1: 2}
    # Ranks need not be consecutive; the earliest of a group keeps its verdict.
    assert near_duplicates(_chain(), [50, 7, 90, 1], 0.15) == {0: 1, 2: 1}


def test_near_duplicates_find_exact_copies_at_zero_tolerance():
    # Prepare
    rng = np.random.default_rng(0)
    original = rng.standard_normal(1000)
    other = rng.standard_normal(1000)
    vectors = [other, original.copy(), original, original + 1e-12, np.zeros(1000), np.zeros(1000)]

    # Execute
    copies = near_duplicates(vectors, [0, 4, 1, 2, 3, 5], 0.0)

    # Assert: vector 2 has rank 1, so it is the original and vector 1 (rank 4) the copy; the nearly equal
    # vector 3 is not an exact copy; two zero vectors are copies of each other.
    assert copies == {1: 2, 5: 4}


def test_near_duplicates_use_the_pairwise_relative_distance():
    # Prepare: vectors at assorted distances from a base.
    rng = np.random.default_rng(1)
    base = rng.standard_normal(300)
    vectors = [base + rng.standard_normal(300) * scale for scale in (0.0, 0.05, 0.3, 0.01, 2.0)]
    tolerance = 0.1

    # Execute
    copies = near_duplicates(vectors, [0, 1, 2, 3, 4], tolerance)

    # Assert
    expected = {}
    for i in range(5):
        near = [j for j in range(i) if pairwise_relative_distance(vectors[i], vectors[j]) <= tolerance]
        if near:
            expected[i] = near[0]
    assert copies == expected
    assert copies == {1: 0, 3: 0}


def test_near_duplicates_of_one_vector_is_empty():
    assert near_duplicates([_v(1, 2)], [7], 0.5) == {}


@pytest.mark.parametrize(
    ("order", "tolerance", "message"),
    [
        ([0, 1], 0.1, "3 vectors but 2 ranks"),
        ([0, 1, 1], 0.1, "distinct"),
        ([0, 1, 2.0], 0.1, "not an integer"),
        ([0, True, 2], 0.1, "not an integer"),
        ([0, 1, 2], -0.1, "tolerance must be a number >= 0"),
        ([0, 1, 2], float("nan"), "tolerance must be a number >= 0"),
    ],
)
def test_near_duplicates_refuse_bad_parameters(order, tolerance, message):
    with pytest.raises(IntegrityError, match=message):
        near_duplicates([_v(1), _v(2), _v(3)], order, tolerance)


def test_near_duplicates_refuse_no_vectors():
    with pytest.raises(IntegrityError, match="no vectors"):
        near_duplicates([], [], 0.1)


# ------------------------------------------------------------------------------------------ cosine


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (_v(1, 0), _v(0, 1), 0.0),
        (_v(1, 0), _v(-1, 0), -1.0),
        (_v(3, 4), _v(4, 3), 24 / 25),  # 24 / (5 * 5)
        (_v(3, 4), _v(6, 8), 1.0),  # 50 / (5 * 10)
        (_v(0, 0), _v(1, 1), 0.0),  # a zero vector
        (_v(1, 1), _v(0, 0), 0.0),
    ],
)
def test_cosine_on_hand_computed_pairs(a, b, expected):
    assert cosine(a, b) == expected


def test_cosine_clamps_the_rounding_of_parallel_vectors():
    # Prepare: for parallel vectors dot / (||a|| ||b||) often rounds just past 1 (or -1).
    rng = np.random.default_rng(2)
    pairs = [(v, v * 3.0) for v in (rng.standard_normal(101) for _ in range(50))]
    pairs += [(v, v * -0.7) for v in (rng.standard_normal(57) for _ in range(50))]
    raw = [dot(a, b) / (l2_norm(a) * l2_norm(b)) for a, b in pairs]

    # Execute
    values = [cosine(a, b) for a, b in pairs]

    # Assert
    assert any(abs(r) > 1.0 for r in raw)
    assert values == [min(1.0, max(-1.0, r)) for r in raw]
    assert all(abs(value) <= 1.0 for value in values)


def test_cosine_is_dot_over_norms():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(999), rng.standard_normal(999)

    expected = float(np.dot(a, b)) / (l2_norm(a) * l2_norm(b))

    assert math.isclose(cosine(a, b), expected, rel_tol=1e-12)
    assert cosine(a, b) == cosine(b, a)


def test_cosine_refuses_mismatched_vectors():
    with pytest.raises(IntegrityError, match="2 and 1 values"):
        cosine(_v(1, 2), _v(1))
