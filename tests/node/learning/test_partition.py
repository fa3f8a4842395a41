"""Tests for cotrain.learning.partition."""

import numpy as np
import pytest
from cotrain.errors import ConfigError
from cotrain.learning.partition import partition_dirichlet, partition_iid
from hypothesis import given, settings
from hypothesis import strategies as st


def _assert_disjoint_cover(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert all(p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in parts)
    assert np.array_equal(np.sort(joined), np.arange(n))


def _label_skew(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    """Mean total-variation distance between each part's label distribution and the whole set's."""
    classes = int(labels.max()) + 1
    overall = np.bincount(labels, minlength=classes) / len(labels)
    distances = [
        0.5 * np.abs(np.bincount(labels[p], minlength=classes) / len(p) - overall).sum()
        for p in parts
        if len(p)
    ]
    return float(np.mean(distances))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 500), parts=st.integers(1, 20), seed=st.integers(0, 2**32))
def test_iid_parts_are_disjoint_cover_everything_and_differ_in_size_by_at_most_one(n, parts, seed):
    if n < parts:
        with pytest.raises(ConfigError):
            partition_iid(n, parts, seed)
        return

    result = partition_iid(n, parts, seed)

    assert len(result) == parts
    _assert_disjoint_cover(result, n)
    sizes = [len(p) for p in result]
    assert max(sizes) - min(sizes) <= 1


def test_iid_is_fixed_by_the_seed():
    first, again, other = partition_iid(100, 4, 7), partition_iid(100, 4, 7), partition_iid(100, 4, 8)

    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    parts=st.integers(1, 8),
    alpha=st.sampled_from([0.05, 0.3, 1.0, 10.0, 1000.0]),
    min_size=st.integers(0, 5),
)
def test_dirichlet_parts_are_disjoint_cover_everything_and_respect_min_size(seed, parts, alpha, min_size):
    labels = np.random.Generator(np.random.PCG64(seed)).integers(0, 5, size=300)

    result = partition_dirichlet(labels, parts, alpha, seed, min_size)

    assert len(result) == parts
    _assert_disjoint_cover(result, len(labels))
    assert min(len(p) for p in result) >= min_size


def test_dirichlet_skew_grows_as_alpha_falls(digits):
    # Prepare
    alphas = [1000.0, 1.0, 0.1]

    # Execute
    skews = [
        np.mean(
            [_label_skew(digits.labels, partition_dirichlet(digits.labels, 10, a, s, 5)) for s in range(5)]
        )
        for a in alphas
    ]

    # Assert
    assert skews[0] < 0.05 < skews[1] < skews[2]


def test_dirichlet_is_fixed_by_the_seed(digits):
    first = partition_dirichlet(digits.labels, 5, 0.5, 1, 10)
    again = partition_dirichlet(digits.labels, 5, 0.5, 1, 10)
    other = partition_dirichlet(digits.labels, 5, 0.5, 2, 10)

    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(
    ("labels", "parts", "alpha", "min_size"),
    [
        (np.zeros(10, dtype=np.int64), 0, 1.0, 1),
        (np.zeros(10, dtype=np.int64), 11, 1.0, 1),
        (np.zeros(10, dtype=np.int64), 2, 0.0, 1),
        (np.zeros(10, dtype=np.int64), 2, float("nan"), 1),
        (np.zeros(10, dtype=np.int64), 2, 1.0, 6),
        (np.zeros(10, dtype=np.int64), 2, 1.0, -1),
        (np.zeros(10, dtype=np.float64), 2, 1.0, 1),
        (np.zeros((5, 2), dtype=np.int64), 2, 1.0, 1),
    ],
)
def test_dirichlet_refuses_bad_arguments(labels, parts, alpha, min_size):
    with pytest.raises(ConfigError):
        partition_dirichlet(labels, parts, alpha, 0, min_size)


def test_dirichlet_gives_up_when_min_size_is_out_of_reach():
    labels = np.arange(20) % 2

    with pytest.raises(ConfigError, match="raise alpha"):
        partition_dirichlet(labels, 4, 0.001, 0, 5)
