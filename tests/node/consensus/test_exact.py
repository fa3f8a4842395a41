"""Tests for cotrain.consensus.exact: hand-computed cases for every public function, and properties checked
against plain Python-int and Fraction references (sorted lists, sums of products, ``round(Fraction)``,
which rounds half to even, and a high-precision decimal square root)."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from unittest import mock

import numpy as np
import pytest
from cotrain.consensus import exact
from cotrain.consensus.exact import (
    DOT_BOUND,
    MAX_LENGTH,
    MICRO,
    WEIGHT_BOUND,
    WeightedSum,
    centered_clip,
    check_int_vector,
    check_int_vectors,
    clip_to_norm,
    coordinate_median,
    cosine_micro,
    dot,
    exact_ratio,
    floor_ratio_times,
    gram_matrix,
    integer,
    krum_scores,
    krum_select,
    leave_one_out_medians,
    median_int,
    norm,
    round_half_even_div,
    round_half_even_div_array,
    round_ratio_times,
    squared_distances,
    squared_norm,
    trimmed_mean,
    weighted_mean,
)
from cotrain.errors import IntegrityError
from hypothesis import given, settings
from hypothesis import strategies as st

Q = 2**31  # the largest magnitude of a q32.24 coordinate
TOP_WEIGHT = WEIGHT_BOUND - 1  # 2**64 - 1
EXAMPLES = settings(max_examples=200, deadline=None)
# For the properties whose examples cost most (many vectors, a reference in Python ints per pair).
FEWER_EXAMPLES = settings(max_examples=100, deadline=None)


def _v(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _big(*values: int) -> np.ndarray:
    return np.array(values, dtype=object)


# ------------------------------------------------------------------------------------ plain references


def _round(value: Fraction) -> int:
    """Round half to even: Python's round() of a Fraction is exact and sends ties to the even integer."""
    return round(value)


def _median(values: list[int]) -> int:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else _round(Fraction(s[n // 2 - 1] + s[n // 2], 2))


def _trimmed(values: list[int], trim: int) -> int:
    s = sorted(values)
    kept = s[trim : len(s) - trim]
    return _round(Fraction(sum(kept), len(kept)))


def _dot(a: list[int], b: list[int]) -> int:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _clip(vector: list[int], limit: int) -> list[int]:
    length = math.isqrt(_dot(vector, vector))
    return list(vector) if length <= limit else [_round(Fraction(x * limit, length)) for x in vector]


def _cosine(a: list[int], b: list[int]) -> int:
    """10**6 p / sqrt(N) to 120 significant digits, rounded half to even: enough to tell any value apart
    from a half (a non-tie is at least 1 / (8 10**6 N) away from one), and exact at a tie, where the
    square, (2k + 1)**2 / 4, and its root have short decimals."""
    p, n = _dot(a, b), _dot(a, a) * _dot(b, b)
    if n == 0:
        return 0
    context = Context(prec=120)
    square = context.divide(Decimal(MICRO * MICRO * p * p), Decimal(n))
    magnitude = int(context.sqrt(square).to_integral_value(rounding=ROUND_HALF_EVEN))
    return magnitude if p >= 0 else -magnitude


def _columns(vectors: list[list[int]]) -> list[list[int]]:
    return [list(column) for column in zip(*vectors, strict=True)]


# ------------------------------------------------------------------------------------------ strategies

# Bias towards the bounds, where an int64 intermediate would overflow first.
DOT_VALUES = st.one_of(
    st.integers(-DOT_BOUND, DOT_BOUND),
    st.sampled_from([DOT_BOUND, -DOT_BOUND, DOT_BOUND - 1, 1 - DOT_BOUND, 2**16, -(2**16), 2**16 - 1, 0, -1]),
)
Q_VALUES = st.one_of(st.integers(-Q, Q), st.sampled_from([Q, -Q, Q - 1, 1 - Q, 0, 1, -1]))
WEIGHTS = st.one_of(
    st.integers(1, TOP_WEIGHT),
    st.sampled_from([1, 2, TOP_WEIGHT, TOP_WEIGHT - 1, 2**63, 2**48 - 1, 2**16, 2**32 + 1]),
)


@st.composite
def _pairs(draw: st.DrawFn, values: st.SearchStrategy[int] = DOT_VALUES) -> tuple[list[int], list[int]]:
    d = draw(st.integers(1, 12))
    return draw(st.lists(values, min_size=d, max_size=d)), draw(st.lists(values, min_size=d, max_size=d))


@st.composite
def _matrices(draw: st.DrawFn, values: st.SearchStrategy[int] = Q_VALUES, most: int = 9) -> list[list[int]]:
    n, d = draw(st.integers(1, most)), draw(st.integers(1, 4))
    # Few distinct values per column, so that ties (and equal middle pairs) are common.
    pool = draw(st.lists(values, min_size=1, max_size=4))
    column = st.one_of(st.sampled_from(pool), values)
    return [draw(st.lists(column, min_size=d, max_size=d)) for _ in range(n)]


# --------------------------------------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (6, 3, 2),  # exact
        (7, 3, 2),  # 2.33 down
        (8, 3, 3),  # 2.67 up
        (-7, 3, -2),  # -2.33 up
        (-8, 3, -3),  # -2.67 down
        (1, 2, 0),  # 0.5 to even 0
        (3, 2, 2),  # 1.5 to even 2
        (5, 2, 2),  # 2.5 to even 2
        (7, 2, 4),  # 3.5 to even 4
        (-1, 2, 0),  # -0.5 to even 0
        (-3, 2, -2),  # -1.5 to even -2
        (-5, 2, -2),  # -2.5 to even -2
        (-7, 2, -4),  # -3.5 to even -4
        (-25, 10, -2),  # -2.5
        (-35, 10, -4),  # -3.5
        (-15, 6, -2),  # -2.5 with an even denominator that is not 2
        (0, 5, 0),
        (-(2**200) - 1, 2, -(2**199)),  # -2**199 - 0.5: the even one is -2**199
        (2**64 * 3 + 2**63, 2**64, 4),  # 3.5 with a denominator beyond int64
    ],
)
def test_round_half_even_div(a: int, b: int, expected: int) -> None:
    assert round_half_even_div(a, b) == expected


def test_round_half_even_div_takes_numpy_integers() -> None:
    assert round_half_even_div(np.int64(-5), np.int64(2)) == -2
    assert type(round_half_even_div(np.int64(7), 2)) is int


@pytest.mark.parametrize(("a", "b"), [(1, 0), (1, -2), (1.0, 2), (1, 2.0), (True, 2), (1, True), ("1", 2)])
def test_round_half_even_div_refuses_what_is_not_an_integer_over_a_positive_one(a: object, b: object) -> None:
    with pytest.raises(IntegrityError):
        round_half_even_div(a, b)  # type: ignore[arg-type]


@EXAMPLES
@given(st.integers(-(2**300), 2**300), st.integers(1, 2**200))
def test_round_half_even_div_is_round_of_the_fraction(a: int, b: int) -> None:
    assert round_half_even_div(a, b) == _round(Fraction(a, b))


def test_round_half_even_div_array_keeps_the_dtype_and_rounds_every_element() -> None:
    numerators = [-7, -5, -3, -1, 0, 1, 3, 5, 7, 9]

    small = round_half_even_div_array(np.array(numerators, dtype=np.int64), 2)
    big = round_half_even_div_array(_big(*numerators, 2**100 + 1), 2)

    expected = [-4, -2, -2, 0, 0, 0, 2, 2, 4, 4]
    assert small.dtype == np.int64 and small.tolist() == expected
    assert big.dtype == object and big.tolist() == [*expected, 2**99]
    with pytest.raises(IntegrityError, match="positive"):
        round_half_even_div_array(_v(1), 0)


@EXAMPLES
@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=10), st.integers(1, 2**40))
def test_round_half_even_div_array_is_the_scalar_rule_per_element(numerators: list[int], b: int) -> None:
    expected = [_round(Fraction(a, b)) for a in numerators]

    assert round_half_even_div_array(np.array(numerators, dtype=np.int64), b).tolist() == expected
    assert round_half_even_div_array(np.array(numerators, dtype=object), b).tolist() == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([5], 5),
        ([1, 4, 2], 2),  # the middle one
        ([1, 4], 2),  # 2.5 to even
        ([1, 6], 4),  # 3.5 to even
        ([-1, -4], -2),  # -2.5 to even
        ([-1, -6], -4),  # -3.5 to even
        ([4, 1, 3, 2], 2),  # (2 + 3) / 2 = 2.5
        ([7, 7, 7, -100], 7),
        ([Q, Q - 1], Q),  # 2**31 - 0.5: 2**31 is the even one
        ([-Q, 1 - Q], -Q),
        ([2**100, 2**100 + 1, 0, 2**101], 2**100),  # Python ints of any size
    ],
)
def test_median_int(values: list[int], expected: int) -> None:
    assert median_int(values) == expected


@pytest.mark.parametrize("values", [[], [1, 2.0], [True, 1]])
def test_median_int_refuses_no_values_and_non_integers(values: list[object]) -> None:
    with pytest.raises(IntegrityError):
        median_int(values)  # type: ignore[arg-type]


@EXAMPLES
@given(st.lists(st.integers(-(2**70), 2**70), min_size=1, max_size=12))
def test_median_int_matches_the_sorted_list(values: list[int]) -> None:
    assert median_int(values) == _median(values)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, Fraction(1, 10)),  # the spec's text 0.1, not the binary float nearest to it
        (0.3, Fraction(3, 10)),
        (0.29, Fraction(29, 100)),
        (1e-3, Fraction(1, 1000)),
        (2.5, Fraction(5, 2)),
        (1e300, Fraction(10**300)),
        (0.0, Fraction(0)),
        (-0.5, Fraction(-1, 2)),
        (3, Fraction(3)),
    ],
)
def test_exact_ratio_is_the_shortest_decimal(value: float, expected: Fraction) -> None:
    assert exact_ratio(value) == expected


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, True, "0.1", None])
def test_exact_ratio_refuses_what_is_not_a_finite_number(value: object) -> None:
    with pytest.raises(IntegrityError, match="finite number"):
        exact_ratio(value)  # type: ignore[arg-type]


def test_exact_ratio_is_not_the_binary_float() -> None:
    assert exact_ratio(0.1) != Fraction(0.1)  # 0.1000000000000000055511151231257827...


def test_floor_ratio_times() -> None:
    # 0.29 * 100 is 28.999999999999996 in float64; the exact product is 29.
    assert floor_ratio_times(exact_ratio(0.29), 100) == 29
    assert floor_ratio_times(Fraction(3, 10), 10) == 3
    assert floor_ratio_times(Fraction(3, 10), 9) == 2  # 2.7
    assert floor_ratio_times(Fraction(1, 5), 4) == 0  # 0.8
    assert floor_ratio_times(Fraction(0), 7) == 0


@pytest.mark.parametrize(
    ("ratio", "value", "expected"),
    [
        (Fraction(1, 2), 5, 2),  # 2.5 to even
        (Fraction(1, 2), 7, 4),  # 3.5 to even
        (Fraction(7, 10), 5, 4),  # 3.5
        (Fraction(1, 3), 2, 1),  # 0.67
        (Fraction(1, 2), -5, -2),  # -2.5
        (Fraction(3, 2), -3, -4),  # -4.5 to even -4
        (Fraction(10**300), 2, 2 * 10**300),
        (Fraction(0), 12345, 0),
    ],
)
def test_round_ratio_times(ratio: Fraction, value: int, expected: int) -> None:
    assert round_ratio_times(ratio, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), (-(2**100), -(2**100)), (np.int64(-4), -4), (np.uint64(2**64 - 1), 2**64 - 1)],
)
def test_integer_takes_ints_and_numpy_integers(value: object, expected: int) -> None:
    result = integer(value, "x")

    assert result == expected and type(result) is int


@pytest.mark.parametrize("value", [True, np.bool_(True), 1.0, np.float64(1.0), Fraction(1), "1", None])
def test_integer_refuses_bools_floats_and_the_rest(value: object) -> None:
    with pytest.raises(IntegrityError, match="the count must be an integer"):
        integer(value, "the count")


# ------------------------------------------------------------------------------------------ vectors


def test_check_int_vector_returns_an_int64_vector_as_it_is() -> None:
    vector = _v(1, 2, 3)

    assert check_int_vector(vector) is vector
    assert check_int_vectors([vector, _v(4, 5, 6)])[0] is vector
    assert MAX_LENGTH == 2**29 - 1


@pytest.mark.parametrize(
    "value",
    [
        np.array([1, 2], dtype=np.int32),
        np.array([1.0, 2.0]),
        _big(1, 2),
        np.zeros((2, 2), dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        [1, 2],
        np.int64(3),
    ],
)
def test_check_int_vector_refuses_anything_else(value: object) -> None:
    with pytest.raises(IntegrityError, match="the update"):
        check_int_vector(value, "the update")


def test_check_int_vectors_refuses_no_vectors_and_different_lengths() -> None:
    with pytest.raises(IntegrityError, match="no vectors"):
        check_int_vectors([])
    with pytest.raises(IntegrityError, match="vector 1 has 3 values but vector 0 has 2"):
        check_int_vectors([_v(1, 2), _v(1, 2, 3)])


def test_dot_squared_norm_and_norm_on_hand_computed_vectors() -> None:
    assert dot(_v(1, 2, 3), _v(4, 5, 6)) == 32
    assert dot(_v(-1, 2), _v(3, -4)) == -11
    assert squared_norm(_v(3, -4)) == 25
    assert norm(_v(3, -4)) == 5
    assert norm(_v(1, 1)) == 1  # floor(sqrt(2))
    assert norm(_v(2, 2)) == 2  # floor(sqrt(8))
    assert norm(_v(0, 0, 0)) == 0
    # At the bound: (2**32)**2 * 3 and its integer square root floor(2**32 sqrt(3)).
    top = _v(DOT_BOUND, -DOT_BOUND, DOT_BOUND)
    assert squared_norm(top) == 3 * 2**64
    assert norm(top) == math.isqrt(3 * 2**64)
    assert dot(top, -top) == -3 * 2**64
    assert type(dot(top, top)) is int


@pytest.mark.parametrize(
    ("high", "low", "length"),
    [
        (DOT_BOUND, -DOT_BOUND, 1 << 20),  # every high part -2**16 or 2**16, every low part 0
        (DOT_BOUND - 1, DOT_BOUND - 1, 1 << 20),  # every high and low part 2**16 - 1
        (1 - DOT_BOUND, DOT_BOUND - 1, 1 << 20),
    ],
)
def test_dot_of_long_vectors_at_the_bound_is_exact(high: int, low: int, length: int) -> None:
    # A million products of 2**64 each: far beyond int64, exact only if every partial sum fits.
    a = np.full(length, high, dtype=np.int64)
    b = np.full(length, low, dtype=np.int64)
    b[::4] = -low  # a quarter of the products change sign

    assert dot(a, b) == high * low * (3 * length // 4) - high * low * (length // 4)
    assert dot(a, np.full(length, low, dtype=np.int64)) == high * low * length
    assert squared_norm(a) == high * high * length


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (_v(1, 2), _v(1, 2, 3), "2 and 3 values"),
        (_v(DOT_BOUND + 1), _v(1), "first vector holds a value beyond 2\\*\\*32"),
        (_v(1), _v(-DOT_BOUND - 1), "second vector holds a value beyond 2\\*\\*32"),
        (_v(2**62), _v(1), "beyond 2\\*\\*32"),
        (np.array([1.0]), _v(1), "int64"),
    ],
)
def test_dot_refuses_vectors_it_cannot_multiply_exactly(a: np.ndarray, b: np.ndarray, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        dot(a, b)


def test_dot_refuses_the_most_negative_int64() -> None:
    # |-2**63| is far beyond 2**32, so this must raise; np.abs(-2**63) overflows to -2**63 itself,
    # which a check written as abs(v).max() > 2**32 lets through (the product is then silently wrong).
    smallest = _v(-(2**63))

    with pytest.raises(IntegrityError, match="beyond 2\\*\\*32"):
        dot(smallest, smallest)
    with pytest.raises(IntegrityError, match="beyond 2\\*\\*32"):
        dot(_v(1, 2), _v(3, -(2**63)))


@EXAMPLES
@given(_pairs())
def test_dot_is_the_sum_of_products(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair

    assert dot(_v(*a), _v(*b)) == _dot(a, b)
    assert norm(_v(*a)) == math.isqrt(_dot(a, a))


def test_squared_distances_on_hand_computed_vectors() -> None:
    vectors = [_v(0, 0), _v(3, 4), _v(6, 8), _v(0, -1)]

    assert squared_distances(vectors) == [
        [0, 25, 100, 1],
        [25, 0, 25, 34],
        [100, 25, 0, 117],
        [1, 34, 117, 0],
    ]


@st.composite
def _gram_matrices(draw: st.DrawFn, bound: int = DOT_BOUND) -> list[list[int]]:
    # One magnitude per matrix, so that both the whole-value and the limb products are exercised, with the
    # extremes of that magnitude drawn often.
    top = min(bound, 2 ** draw(st.integers(0, 32)))
    values = st.one_of(st.integers(-top, top), st.sampled_from([top, -top, top - 1, 1 - top, 0]))
    n, d = draw(st.integers(1, 6)), draw(st.integers(1, 40))
    return [draw(st.lists(values, min_size=d, max_size=d)) for _ in range(n)]


@FEWER_EXAMPLES
@given(_gram_matrices(), st.sampled_from([1, 7, 1 << 23]))
def test_gram_matrix_is_every_pairs_dot_product(vectors: list[list[int]], scratch: int) -> None:
    # A small scratch budget forces blocks of one or a few columns.
    with mock.patch.object(exact, "_GRAM_SCRATCH", scratch):
        gram = gram_matrix([_v(*v) for v in vectors])

    assert [[int(x) for x in row] for row in gram.tolist()] == [
        [_dot(a, b) for b in vectors] for a in vectors
    ]


@FEWER_EXAMPLES
@given(_gram_matrices(bound=Q), st.sampled_from([1, 7, 1 << 23]))
def test_squared_distances_are_the_squared_norms_of_the_differences(
    vectors: list[list[int]], scratch: int
) -> None:
    differences = [[[x - y for x, y in zip(a, b, strict=True)] for b in vectors] for a in vectors]

    with mock.patch.object(exact, "_GRAM_SCRATCH", scratch):
        distances = squared_distances([_v(*v) for v in vectors])

    assert distances == [[_dot(c, c) for c in row] for row in differences]
    assert all(type(x) is int for row in distances for x in row)


@pytest.mark.parametrize(
    ("values", "length", "dtype"),
    [
        ((3, -2, 0), 1 << 20, np.int64),  # whole values, one block
        ((2**22, -(2**22), 1), 3000, np.int64),  # whole values in blocks of 512 columns
        ((2**24, -(2**24) + 1, 2**16 - 1), 1 << 12, np.int64),  # limbs, the dot products fit int64
        ((DOT_BOUND, -DOT_BOUND, DOT_BOUND - 1), 1 << 12, object),  # limbs, in Python ints
        ((Q, -Q, 0), 1 << 21, object),  # limbs, sums of 2**21 products of 2**62 each
    ],
)
def test_gram_matrix_of_long_vectors_at_each_bound(values: tuple[int, ...], length: int, dtype: type) -> None:
    # Each vector repeats one value, with every fourth value negated: dot = x y (length / 2).
    vectors = []
    for value in values:
        vector = np.full(length, value, dtype=np.int64)
        vector[::4] = -value
        vectors.append(vector)

    gram = gram_matrix(vectors)

    assert gram.dtype == dtype
    assert gram.tolist() == [[x * y * length for y in values] for x in values]


def test_squared_distances_refuse_vectors_more_than_2_to_the_32_apart() -> None:
    with pytest.raises(IntegrityError, match="differ by more than 2\\*\\*32"):
        squared_distances([_v(0, DOT_BOUND), _v(0, 0), _v(1, -1)])
    assert squared_distances([_v(DOT_BOUND), _v(0)]) == [[0, 2**64], [2**64, 0]]


# ---------------------------------------------------------------------------------------------- cosine


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((1, 0), (0, 1), 0),
        ((3, 4), (-4, 3), 0),
        ((3, 4), (4, 3), 960_000),  # 24 / 25 exactly
        ((1, 0), (1, 1), 707_107),  # 707106.78
        ((2, -1), (-1, 3), -707_107),  # -5 / sqrt(50) = -707106.78
        ((1, 0), (1, 2), 447_214),  # 447213.60
        ((1, 2, 3), (4, 5, 6), 974_632),  # 32 / sqrt(1078) = 974631.85
        ((1, 1, 1), (1, 1, -1), 333_333),  # 1 / 3
        ((1, 1, 1), (-1, -1, 1), -333_333),
        ((5, 5), (7, 7), 1_000_000),
        ((5, 5), (-7, -7), -1_000_000),
        ((0, 0), (1, 2), 0),  # a zero vector has no direction
        ((1, 2), (0, 0), 0),
        ((0, 0), (0, 0), 0),
    ],
)
def test_cosine_micro_on_hand_computed_vectors(a: tuple[int, ...], b: tuple[int, ...], expected: int) -> None:
    assert cosine_micro(_v(*a), _v(*b)) == expected
    assert cosine_micro(_v(*b), _v(*a)) == expected


@pytest.mark.parametrize(
    ("b", "expected"),
    [
        # |b| = 128 in each (1 + 127**2 + 15**2 + 5**2 + 2**2 = 16384), so the cosine with the first axis is
        # b_0 / 128 and 10**6 b_0 / 128 is an exact half for odd b_0: 7812.5, 23437.5, 39062.5.
        ((1, 127, 15, 5, 2), 7_812),  # to the even 7812
        ((3, 127, 14, 7, 1), 23_438),  # to the even 23438
        ((5, 127, 15, 2, 1), 39_062),  # to the even 39062
        ((-1, 127, 15, 5, 2), -7_812),  # the sign goes on afterwards: -7812.5 to -7812
        ((-3, 127, 14, 7, 1), -23_438),  # -23437.5 to -23438
        ((-5, 127, 15, 2, 1), -39_062),
    ],
)
def test_cosine_micro_rounds_exact_halves_to_even(b: tuple[int, ...], expected: int) -> None:
    assert sum(x * x for x in b) == 128**2
    axis = _v(1, 0, 0, 0, 0)

    assert cosine_micro(axis, _v(*b)) == expected
    assert cosine_micro(_v(*b), axis) == expected
    assert cosine_micro(7 * axis, _v(*b)) == expected  # the length of either vector does not matter
    assert cosine_micro(-axis, _v(*b)) == -expected


def test_cosine_micro_of_vectors_at_the_bound() -> None:
    top = _v(DOT_BOUND, -DOT_BOUND, DOT_BOUND, DOT_BOUND)
    other = _v(DOT_BOUND, DOT_BOUND, DOT_BOUND, DOT_BOUND)

    assert cosine_micro(top, top) == MICRO
    assert cosine_micro(top, -top) == -MICRO
    assert cosine_micro(top, other) == 500_000  # 2 * 2**64 / (4 * 2**64)


@EXAMPLES
@given(_pairs())
def test_cosine_micro_matches_a_decimal_reference(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    cosine = cosine_micro(_v(*a), _v(*b))

    assert cosine == _cosine(a, b)
    assert -MICRO <= cosine <= MICRO
    assert cosine_micro(_v(*b), _v(*a)) == cosine
    if all(abs(x) < DOT_BOUND for x in b):
        assert cosine_micro(_v(*a), -_v(*b)) == -cosine


@EXAMPLES
@given(st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=12).filter(any), st.integers(1, 2**12))
def test_cosine_micro_of_a_vector_with_a_multiple_of_itself_is_plus_or_minus_one(
    values: list[int], scale: int
) -> None:
    vector = _v(*values)

    assert cosine_micro(vector, vector) == MICRO
    assert cosine_micro(vector, scale * vector) == MICRO
    assert cosine_micro(vector, -scale * vector) == -MICRO


# -------------------------------------------------------------------------------------------- clipping


@pytest.mark.parametrize(
    ("vector", "limit", "expected"),
    [
        ((3, 4), 5, (3, 4)),  # norm 5: not clipped
        ((3, 4), 7, (3, 4)),
        ((6, 8), 5, (3, 4)),  # norm 10: halved exactly
        ((3, 4), 2, (1, 2)),  # 6/5 = 1.2 -> 1, 8/5 = 1.6 -> 2
        ((-3, -4), 2, (-1, -2)),
        ((1, -1, 1, -1), 1, (0, 0, 0, 0)),  # norm 2: 0.5 -> 0 and -0.5 -> 0, ties to even
        ((3, -3, 1, 1), 2, (2, -2, 0, 0)),  # norm isqrt(20) = 4: 1.5 -> 2, -1.5 -> -2, 0.5 -> 0
        ((1, 3), 1, (0, 1)),  # norm isqrt(10) = 3: 1/3 -> 0, 3/3 -> 1
        ((3, 4), 0, (0, 0)),
        ((0, 0), 0, (0, 0)),
        ((DOT_BOUND,) * 4, 2**32, (2**31,) * 4),  # norm 2**33
        ((DOT_BOUND, -DOT_BOUND), 10**30, (DOT_BOUND, -DOT_BOUND)),
    ],
)
def test_clip_to_norm(vector: tuple[int, ...], limit: int, expected: tuple[int, ...]) -> None:
    values = _v(*vector)

    clipped = clip_to_norm(values, limit)

    assert clipped.dtype == np.int64
    assert clipped.tolist() == list(expected)
    assert clipped is not values
    assert values.tolist() == list(vector)


@pytest.mark.parametrize("limit", [-1, 1.5, True, None])
def test_clip_to_norm_refuses_a_bad_limit(limit: object) -> None:
    with pytest.raises(IntegrityError, match="clip limit"):
        clip_to_norm(_v(3, 4), limit)  # type: ignore[arg-type]


@EXAMPLES
@given(st.lists(DOT_VALUES, min_size=1, max_size=10), st.integers(0, 2**34))
def test_clip_to_norm_matches_the_reference(values: list[int], limit: int) -> None:
    assert clip_to_norm(_v(*values), limit).tolist() == _clip(values, limit)


# ------------------------------------------------------------------------------------------- averages


def test_weighted_mean_on_hand_computed_vectors() -> None:
    # (1 * [1, 2] + 3 * [5, 6]) / 4 = [4, 5]; (1 * 0 + 1 * 1) / 2 = 0.5 -> 0; (1 + 2) / 2 = 1.5 -> 2.
    assert weighted_mean([_v(1, 2), _v(5, 6)], [1, 3]).tolist() == [4, 5]
    assert weighted_mean([_v(0, 1, -1, -3), _v(1, 2, 0, 0)], [1, 1]).tolist() == [0, 2, 0, -2]
    assert weighted_mean([_v(10), _v(11)], [1, 2]).tolist() == [11]  # 32 / 3 = 10.67


def test_weighted_sum_with_weights_near_2_to_the_64_and_values_at_2_to_the_31() -> None:
    # Prepare
    total = WeightedSum()

    # Execute
    total.add(_v(Q, -Q, Q, -Q, Q - 1), TOP_WEIGHT)
    total.add(_v(-Q, Q, Q - 1, 1 - Q, Q), TOP_WEIGHT)
    mean_of_two = total.mean()
    total.add(_v(Q, Q, Q, Q, Q), 1)

    # Assert. Two equal weights: [0, 0, 2**31 - 0.5, -2**31 + 0.5, 2**31 - 0.5] -> to even:
    # [0, 0, 2**31, -2**31, 2**31].
    assert mean_of_two.dtype == np.int64
    assert mean_of_two.tolist() == [0, 0, Q, -Q, Q]
    # Then 2**31 with weight 1 on top of 2 (2**64 - 1): each sum grows by 2**31 over 2**65 - 1.
    w = TOP_WEIGHT
    expected = [
        _round(Fraction(w * Q - w * Q + Q, 2 * w + 1)),  # 2**31 / (2**65 - 1) -> 0
        _round(Fraction(-w * Q + w * Q + Q, 2 * w + 1)),  # 0
        _round(Fraction(w * Q + w * (Q - 1) + Q, 2 * w + 1)),  # 2**31 - (2**64 - 1) / (2**65 - 1) -> 2**31
        _round(Fraction(-w * Q + w * (1 - Q) + Q, 2 * w + 1)),
        _round(Fraction(w * (Q - 1) + w * Q + Q, 2 * w + 1)),
    ]
    assert expected == [0, 0, Q, -Q + 1, Q]
    assert total.mean().tolist() == expected
    assert total.count == 3
    assert total.total_weight == 2 * TOP_WEIGHT + 1


def test_weighted_sum_with_one_huge_and_one_small_weight() -> None:
    # (2**64 - 1) 2**31 + 1 (-2**31) over 2**64 = 2**31 - 2**-32 -> 2**31; the mirror image -> -2**31.
    total = WeightedSum()
    total.add(_v(Q, -Q), TOP_WEIGHT)
    total.add(_v(-Q, Q), 1)

    assert total.mean().tolist() == [Q, -Q]
    assert total.total_weight == 2**64


@pytest.mark.parametrize(
    "weights",
    [
        (3, 5, 7),  # sums below 2**62: the mean is taken in int64
        (2**16 + 1, 2**33, 1),  # two and three limbs, still in int64
        (2**31, 1, 2**40 + 3),  # total weight past 2**31: in Python ints
        (TOP_WEIGHT, TOP_WEIGHT - 1, 2),
    ],
)
def test_weighted_sum_of_vectors_spanning_several_column_blocks(weights: tuple[int, ...]) -> None:
    # Prepare: 3 blocks of 2**15 columns and a part, values across the whole q32 range and at its ends.
    rng = np.random.default_rng(len(weights) + weights[0] % 97)
    length = 3 * (1 << 15) + 5
    vectors = [rng.integers(-Q, Q, size=length, endpoint=True) for _ in weights]
    vectors[0][::1000], vectors[1][::1000] = Q, -Q
    total = WeightedSum()

    # Execute
    for vector, weight in zip(vectors, weights, strict=True):
        total.add(vector, weight)
    mean = total.mean()

    # Assert
    sums = sum(w * v.astype(object) for v, w in zip(vectors, weights, strict=True))
    expected = [_round(Fraction(int(x), sum(weights))) for x in sums]
    assert mean.dtype == np.int64
    assert mean.tolist() == expected


def test_weighted_sum_holds_2_to_the_16_vectors_at_every_bound() -> None:
    # Prepare: the most vectors, the largest weight (all four 16-bit limbs 0xFFFF) and values at +-2**31:
    # each limb's int64 sum reaches 2**16 (2**16 - 1) 2**31 = 2**63 - 2**47 in magnitude.
    total = WeightedSum()
    first = _v(Q, -Q, Q)
    for _ in range(WeightedSum.MAX_VECTORS - 1):
        total.add(first, TOP_WEIGHT)
    total.add(_v(Q, -Q, -Q), TOP_WEIGHT)

    # Execute
    mean = total.mean()

    # Assert: the last coordinate is 2**31 (2**16 - 2) / 2**16 = 2**31 - 2**16.
    assert mean.tolist() == [Q, -Q, Q - 2**16]
    with pytest.raises(IntegrityError, match="at most 65536 vectors"):
        total.add(first, 1)
    assert total.count == 2**16


@pytest.mark.parametrize(
    ("vector", "weight", "message"),
    [
        (_v(1, 2), 0, "outside \\[1, 2\\*\\*64\\)"),
        (_v(1, 2), -1, "outside"),
        (_v(1, 2), WEIGHT_BOUND, "outside"),
        (_v(1, 2), 1.0, "must be an integer"),
        (_v(1, 2), True, "must be an integer"),
        (_v(Q + 1, 0), 1, "beyond 2\\*\\*31"),
        (_v(0, -Q - 1), 1, "beyond 2\\*\\*31"),
        (_v(1, 2, 3), 1, "has 3 values but vector 0 has 2"),
        (np.array([1.0, 2.0]), 1, "int64"),
    ],
)
def test_weighted_sum_refuses_bad_input_and_stays_unchanged(
    vector: np.ndarray, weight: object, message: str
) -> None:
    # Prepare
    total = WeightedSum()
    total.add(_v(3, -5), 2)

    # Execute / Assert
    with pytest.raises(IntegrityError, match=message):
        total.add(vector, weight)  # type: ignore[arg-type]
    assert total.count == 1
    assert total.total_weight == 2
    assert total.mean().tolist() == [3, -5]


def test_weighted_sum_refuses_the_most_negative_int64() -> None:
    # |-2**63| is beyond 2**31; np.abs(-2**63) is -2**63, which a check written as abs(v).max() > 2**31
    # lets through, and -2**63 times a weight limb then overflows int64 silently.
    total = WeightedSum()

    with pytest.raises(IntegrityError, match="beyond 2\\*\\*31"):
        total.add(_v(-(2**63)), 2)


def test_an_empty_weighted_sum_has_no_mean() -> None:
    with pytest.raises(IntegrityError, match="no vectors"):
        WeightedSum().mean()
    with pytest.raises(IntegrityError, match="2 vectors but 1 weights"):
        weighted_mean([_v(1), _v(2)], [1])
    with pytest.raises(IntegrityError, match="no vectors"):
        weighted_mean([], [])


@st.composite
def _weighted(draw: st.DrawFn) -> tuple[list[list[int]], list[int]]:
    n, d = draw(st.integers(1, 8)), draw(st.integers(1, 5))
    vectors = [draw(st.lists(Q_VALUES, min_size=d, max_size=d)) for _ in range(n)]
    return vectors, draw(st.lists(WEIGHTS, min_size=n, max_size=n))


@EXAMPLES
@given(_weighted(), st.randoms(use_true_random=False))
def test_weighted_sum_mean_is_the_rounded_fraction(case: tuple[list[list[int]], list[int]], rng) -> None:
    # Prepare
    vectors, weights = case
    total = WeightedSum()
    order = list(range(len(vectors)))
    rng.shuffle(order)

    # Execute: added in a shuffled order; exact sums do not care.
    for i in order:
        total.add(_v(*vectors[i]), weights[i])

    # Assert
    expected = [
        _round(Fraction(sum(w * x for w, x in zip(weights, column, strict=True)), sum(weights)))
        for column in _columns(vectors)
    ]
    assert total.mean().tolist() == expected
    assert weighted_mean([_v(*v) for v in vectors], weights).tolist() == expected
    assert total.total_weight == sum(weights)


@EXAMPLES
@given(_weighted(), st.integers(0, 8), st.sampled_from([1, 5, 1 << 20]))
def test_add_all_is_add_one_by_one(case: tuple[list[list[int]], list[int]], split: int, block: int) -> None:
    # Prepare: some vectors added one by one, the rest at once, in blocks of as few as one column.
    vectors, weights = case
    one_by_one, at_once = WeightedSum(), WeightedSum()
    for vector, weight in zip(vectors, weights, strict=True):
        one_by_one.add(_v(*vector), weight)

    # Execute
    for vector, weight in zip(vectors[:split], weights[:split], strict=True):
        at_once.add(_v(*vector), weight)
    with mock.patch.object(exact, "_ADD_ALL_VALUES", block):
        at_once.add_all([_v(*v) for v in vectors[split:]], weights[split:])

    # Assert
    assert at_once.mean().tolist() == one_by_one.mean().tolist()
    assert (at_once.count, at_once.total_weight) == (one_by_one.count, one_by_one.total_weight)


@pytest.mark.parametrize(
    ("vectors", "weights", "message"),
    [
        ([_v(1, 2), _v(3, 4)], [1], "2 vectors but 1 weights"),
        ([_v(1, 2), _v(3, 4)], [1, 0], "weight 2 = 0 is outside"),
        ([_v(1, 2), _v(3, 4)], [1, 2.0], "weight 2 must be an integer"),
        ([_v(1, 2), _v(3, 4, 5)], [1, 1], "vector 2 has 3 values but vector 0 has 2"),
        ([_v(1, 2), np.array([1.0, 2.0])], [1, 1], "vector 2 must be a 1-D int64 array"),
        ([_v(1, 2), _v(3, Q + 1)], [1, 1], "vector 2 holds a value beyond 2\\*\\*31"),  # in the last block
        ([_v(1, -(2**63)), _v(3, 4)], [1, 1], "vector 1 holds a value beyond 2\\*\\*31"),
    ],
)
def test_add_all_refuses_bad_input_and_adds_nothing(
    vectors: list[np.ndarray], weights: list[object], message: str
) -> None:
    # Prepare
    total = WeightedSum()
    total.add(_v(3, -5), 2)

    # Execute / Assert: blocks of one column, so the first is added before the second is found bad.
    with mock.patch.object(exact, "_ADD_ALL_VALUES", 1), pytest.raises(IntegrityError, match=message):
        total.add_all(vectors, weights)  # type: ignore[arg-type]
    assert (total.count, total.total_weight) == (1, 2)
    assert total.mean().tolist() == [3, -5]


# ------------------------------------------------------------------------------------ order statistics


def test_coordinate_median_on_hand_computed_vectors() -> None:
    # Odd: columns [1, 2, 9] -> 2, [5, 6, -4] -> 5. Even: [1, 3, 4, 10] -> 3.5 -> 4, [-1, 0, 0, 8] -> 0,
    # [1, 2, 5, 6] -> (2 + 5) / 2 = 3.5 -> 4, [-6, -5, -2, -1] -> -3.5 -> -4.
    odd = coordinate_median([_v(1, 5), _v(2, 6), _v(9, -4)])
    even = coordinate_median([_v(1, 8, 1, -1), _v(3, 0, 6, -6), _v(10, -1, 2, -2), _v(4, 0, 5, -5)])

    assert odd.dtype == np.int64 and odd.tolist() == [2, 5]
    assert even.tolist() == [4, 0, 4, -4]


def test_coordinate_median_of_python_ints_beyond_int64() -> None:
    top = 2**127 - 1

    result = coordinate_median([_big(top, -top), _big(top - 2, 1 - top)])

    # (2**128 - 4) / 2 = 2**127 - 2; (-2**128 + 3) / 2 = -2**127 + 1.5 -> -2**127 + 2.
    assert result.dtype == object
    assert result.tolist() == [top - 1, -top + 1]


def test_coordinate_median_spans_several_column_blocks() -> None:
    # More columns than one sorting block (2**15) holds: columns of [0, k, 2k] have median k.
    d = 70_001
    k = np.arange(d, dtype=np.int64)

    result = coordinate_median([2 * k, np.zeros(d, dtype=np.int64), k])

    assert result.tolist() == k.tolist()


@pytest.mark.parametrize(
    ("trim", "expected"),
    [
        # Columns sorted: [0, 1, 2, 3, 100] and [-7, -5, -1, 2, 4]
        (0, [21, -1]),  # 106 / 5 = 21.2 and -7 / 5 = -1.4
        (1, [2, -1]),  # (1 + 2 + 3) / 3 and (-5 - 1 + 2) / 3 = -1.33
        (2, [2, -1]),  # the middle value alone
    ],
)
def test_trimmed_mean_drops_trim_values_at_each_end(trim: int, expected: list[int]) -> None:
    vectors = [_v(3, -1), _v(0, 4), _v(100, -7), _v(1, 2), _v(2, -5)]

    assert trimmed_mean(vectors, trim).tolist() == expected


def test_trimmed_mean_rounds_half_to_even() -> None:
    # trim 1 of 4: [0, 1, 2, 100] -> 1.5 -> 2, [0, 1, 4, 100] -> 2.5 -> 2, [-100, -3, -2, 0] -> -2.5 -> -2.
    vectors = [_v(0, 100, -3), _v(100, 0, 0), _v(2, 4, -100), _v(1, 1, -2)]

    assert trimmed_mean(vectors, 1).tolist() == [2, 2, -2]


@pytest.mark.parametrize(("count", "trim"), [(2, 1), (4, 2), (1, 1), (5, -1)])
def test_trimmed_mean_needs_more_than_twice_trim_values(count: int, trim: int) -> None:
    with pytest.raises(IntegrityError, match="can drop"):
        trimmed_mean([_v(1)] * count, trim)


@pytest.mark.parametrize("trim", [1.0, True])
def test_trimmed_mean_refuses_a_trim_that_is_not_an_integer(trim: object) -> None:
    with pytest.raises(IntegrityError, match="trim must be an integer"):
        trimmed_mean([_v(1)] * 5, trim)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "vectors",
    [[], [_v(1, 2), _v(3)], [np.array([1.0])], [np.zeros((1, 1), dtype=np.int64)]],
)
def test_order_statistics_refuse_empty_mismatched_or_non_integer_input(vectors: list[np.ndarray]) -> None:
    with pytest.raises(IntegrityError):
        coordinate_median(vectors)
    with pytest.raises(IntegrityError):
        trimmed_mean(vectors, 0)


@EXAMPLES
@given(_matrices(), st.data())
def test_coordinate_median_and_trimmed_mean_match_sorted_lists_in_any_order(
    vectors: list[list[int]], data: st.DataObject
) -> None:
    # Prepare
    n = len(vectors)
    trim = data.draw(st.integers(0, (n - 1) // 2), label="trim")
    shuffled = data.draw(st.permutations(vectors), label="shuffled")
    columns = _columns(vectors)

    # Execute
    median = coordinate_median([_v(*v) for v in vectors])
    trimmed = trimmed_mean([_v(*v) for v in vectors], trim)

    # Assert
    assert median.tolist() == [_median(column) for column in columns]
    assert trimmed.tolist() == [_trimmed(column, trim) for column in columns]
    assert coordinate_median([_v(*v) for v in shuffled]).tolist() == median.tolist()
    assert trimmed_mean([_v(*v) for v in shuffled], trim).tolist() == trimmed.tolist()


@FEWER_EXAMPLES
@given(_matrices(st.integers(-(2**127) + 1, 2**127 - 1)), st.data())
def test_order_statistics_of_python_ints_match_sorted_lists(
    vectors: list[list[int]], data: st.DataObject
) -> None:
    trim = data.draw(st.integers(0, (len(vectors) - 1) // 2), label="trim")
    columns = _columns(vectors)

    assert coordinate_median([_big(*v) for v in vectors]).tolist() == [_median(c) for c in columns]
    assert trimmed_mean([_big(*v) for v in vectors], trim).tolist() == [_trimmed(c, trim) for c in columns]


# ------------------------------------------------------------------------------- leave-one-out medians


def test_leave_one_out_medians_on_hand_computed_vectors() -> None:
    # Four vectors, so three others each: the middle one. Columns (3, 1, 4, 1) and (-2, 7, 7, 0).
    four = [_v(3, -2), _v(1, 7), _v(4, 7), _v(1, 0)]
    # Without the first: (1, 4, 1) -> 1, (7, 7, 0) -> 7; the second: (3, 4, 1) -> 3, (-2, 7, 0) -> 0; the
    # third: (3, 1, 1) -> 1, (-2, 7, 0) -> 0; the last: (3, 1, 4) -> 3, (-2, 7, 7) -> 7. The two 1s of the
    # first column are a tie: leaving either out leaves the same others.
    assert [m.tolist() for m in leave_one_out_medians(four)] == [[1, 7], [3, 0], [1, 0], [3, 7]]
    # Three vectors, so two others each: their mean, half to even. Columns (0, 1, 3) and (-1, -2, 6).
    three = [_v(0, -1), _v(1, -2), _v(3, 6)]
    # Without 0: (1 + 3) / 2 = 2, (-2 + 6) / 2 = 2; without 1: 3 / 2 -> 2, 5 / 2 -> 2; without 3: 1 / 2 -> 0,
    # -3 / 2 -> -2.
    assert [m.tolist() for m in leave_one_out_medians(three)] == [[2, 2], [2, 2], [0, -2]]
    # Two vectors: each one's reference is the other.
    assert [m.tolist() for m in leave_one_out_medians([_v(5, -5), _v(-9, 2)])] == [[-9, 2], [5, -5]]


def test_leave_one_out_medians_need_two_vectors() -> None:
    with pytest.raises(IntegrityError, match="at least two"):
        leave_one_out_medians([_v(1, 2)])


def test_leave_one_out_medians_span_several_column_blocks() -> None:
    # More columns than one sorting block (2**15) holds: columns (0, k, 2k, 3k, 4k), the others' median of
    # the first is the mean of 2k and 3k, and of the last of k and 2k (half to even).
    d = 70_001
    k = np.arange(d, dtype=np.int64)
    vectors = [i * k for i in range(5)]

    result = leave_one_out_medians(vectors)

    # Python's round() goes half to even, and these halves are exact in float64.
    assert result[0].tolist() == [round(5 * j / 2) for j in range(d)]
    assert result[2].tolist() == [2 * j for j in range(d)]
    assert result[4].tolist() == [round(3 * j / 2) for j in range(d)]


@st.composite
def _loo_matrices(draw: st.DrawFn, values: st.SearchStrategy[int]) -> list[list[int]]:
    n, d = draw(st.integers(2, 11)), draw(st.integers(1, 4))
    # Few distinct values per column, so that ties (an equal value on either side of x_i) are common.
    pool = draw(st.lists(values, min_size=1, max_size=3))
    column = st.one_of(st.sampled_from(pool), values)
    return [draw(st.lists(column, min_size=d, max_size=d)) for _ in range(n)]


@EXAMPLES
@given(_loo_matrices(st.integers(-5, 5)))
def test_leave_one_out_medians_are_the_medians_of_the_others_for_small_ints(vectors: list[list[int]]) -> None:
    result = leave_one_out_medians([_v(*v) for v in vectors])

    for i, median in enumerate(result):
        others = [_v(*v) for j, v in enumerate(vectors) if j != i]
        assert median.dtype == np.int64
        assert median.tolist() == coordinate_median(others).tolist()
        assert median.tolist() == [_median(c) for c in _columns(vectors[:i] + vectors[i + 1 :])]


@FEWER_EXAMPLES
@given(_loo_matrices(Q_VALUES))
def test_leave_one_out_medians_are_the_medians_of_the_others_at_the_bounds(vectors: list[list[int]]) -> None:
    result = leave_one_out_medians([_v(*v) for v in vectors])

    assert [m.tolist() for m in result] == [
        [_median(c) for c in _columns(vectors[:i] + vectors[i + 1 :])] for i in range(len(vectors))
    ]


# ------------------------------------------------------------------------------------------------ Krum


def _krum_points() -> list[np.ndarray]:
    # Squared distances: v0-v1 4, v0-v2 4, v0-v3 2, v1-v2 8, v1-v3 2, v2-v3 2,
    # v4 to v0, v1, v2, v3: 3200, 3044, 3044, 3042.
    return [_v(0, 0), _v(2, 0), _v(0, 2), _v(1, 1), _v(40, 40)]


def test_krum_scores_sum_the_closest_neighbours() -> None:
    # f = 1: the n - f - 2 = 2 closest of each: v0: 2 + 4, v1: 2 + 4, v2: 2 + 4, v3: 2 + 2,
    # v4: 3042 + 3044. f = 0: the 3 closest. f = 2: the closest one.
    assert krum_scores(_krum_points(), 1) == [6, 6, 6, 4, 6086]
    assert krum_scores(_krum_points(), 0) == [10, 14, 14, 6, 9130]
    assert krum_scores(_krum_points(), 2) == [2, 2, 2, 2, 3042]


def test_krum_select_orders_by_score_then_index() -> None:
    assert krum_select(_krum_points(), 1, 1) == [3]
    assert krum_select(_krum_points(), 1, 3) == [3, 0, 1]
    assert krum_select(_krum_points(), 1, 5) == [3, 0, 1, 2, 4]
    assert krum_select(_krum_points(), 2, 4) == [0, 1, 2, 3]  # four equal scores: by index


@pytest.mark.parametrize(
    ("count", "byzantine", "select", "message"),
    [
        (4, 2, 1, "needs at least 5 vectors"),
        (2, 0, 1, "needs at least 3 vectors"),
        (5, -1, 1, "f >= 0"),
        (5, 1, 0, "cannot select 0 of 5"),
        (5, 1, 6, "cannot select 6 of 5"),
        (5, 1.0, 1, "byzantine must be an integer"),
        (5, 1, True, "select must be an integer"),
    ],
)
def test_krum_refuses_bad_parameters(count: int, byzantine: object, select: object, message: str) -> None:
    vectors = [_v(i, -i) for i in range(count)]

    with pytest.raises(IntegrityError, match=message):
        krum_select(vectors, byzantine, select)  # type: ignore[arg-type]


@FEWER_EXAMPLES
@given(_matrices(st.integers(-(2**30), 2**30), most=7).filter(lambda m: len(m) >= 3), st.data())
def test_krum_matches_a_brute_force_reference_in_any_order(
    vectors: list[list[int]], data: st.DataObject
) -> None:
    # Prepare
    n = len(vectors)
    f = data.draw(st.integers(0, n - 3), label="byzantine")
    order = data.draw(st.permutations(range(n)), label="order")
    distances = [[_dot(*[[x - y for x, y in zip(a, b, strict=True)]] * 2) for b in vectors] for a in vectors]
    expected = [sum(sorted(distances[i][j] for j in range(n) if j != i)[: n - f - 2]) for i in range(n)]

    # Execute
    scores = krum_scores([_v(*v) for v in vectors], f)
    shuffled = krum_scores([_v(*vectors[i]) for i in order], f)

    # Assert
    assert squared_distances([_v(*v) for v in vectors]) == distances
    assert scores == expected
    assert shuffled == [expected[i] for i in order]
    assert krum_select([_v(*v) for v in vectors], f, n) == sorted(range(n), key=lambda i: (expected[i], i))


# ------------------------------------------------------------------------------------ centered clipping


def _centered_clip(vectors: list[list[int]], tau: int, iterations: int) -> list[int]:
    center = [_median(column) for column in _columns(vectors)]
    for _ in range(iterations):
        moved = [_clip([x - c for x, c in zip(v, center, strict=True)], tau) for v in vectors]
        center = [
            c + _round(Fraction(sum(column), len(vectors)))
            for c, column in zip(center, _columns(moved), strict=True)
        ]
    return center


def test_centered_clip_on_hand_computed_steps() -> None:
    # Start at the median [30, 0]. Step 1 with tau 20: differences [0, 0], [-30, 40] (norm 50: [-12, 16]),
    # [270, 0] (norm 270: [20, 0]); sum [8, 16] / 3 -> [3, 5]: v = [33, 5]. Step 2: [-3, -5] (norm 5,
    # kept), [-33, 35] (norm isqrt(2314) = 48: -13.75 -> -14, 14.58 -> 15), [267, -5] (norm 267:
    # [20, -0.37 -> 0]); sum [3, 10] / 3 -> [1, 3]: v = [34, 8].
    vectors = [_v(30, 0), _v(0, 40), _v(300, 0)]

    assert centered_clip(vectors, 20, 0).tolist() == [30, 0]
    assert centered_clip(vectors, 20, 1).tolist() == [33, 5]
    assert centered_clip(vectors, 20, 2).tolist() == [34, 8]
    assert centered_clip(vectors, 0, 5).tolist() == [30, 0]  # a zero radius never moves
    # An unclipped step from the median lands on the rounded plain mean: [330 / 3, 40 / 3 -> 13].
    assert centered_clip(vectors, 10**40, 1).tolist() == [110, 13]


@pytest.mark.parametrize(("tau", "iterations"), [(-1, 1), (1, -1), (1.0, 1), (1, 1.5), (True, 1)])
def test_centered_clip_refuses_bad_parameters(tau: object, iterations: object) -> None:
    with pytest.raises(IntegrityError):
        centered_clip([_v(1, 2), _v(3, 4)], tau, iterations)  # type: ignore[arg-type]


@FEWER_EXAMPLES
@given(_matrices(st.integers(-(2**30), 2**30), most=6), st.integers(0, 2**32), st.integers(0, 3))
def test_centered_clip_matches_the_reference(vectors: list[list[int]], tau: int, iterations: int) -> None:
    assert centered_clip([_v(*v) for v in vectors], tau, iterations).tolist() == _centered_clip(
        vectors, tau, iterations
    )
