"""One coordinate of each per-coordinate aggregation rule, in exact integer arithmetic.

These are the integer counterparts of :mod:`cotrain.learning.robust`'s float64 ``weighted_mean``,
``coordinate_median`` and ``trimmed_mean``: each rule keeps its meaning, and every division is rounded once,
half to even. ``contracts/libraries/CoordinateRules.sol`` computes the same functions on ``int256[]`` and
``uint256[]`` and returns the same integers for every input inside the bounds below (the differential test
``tests/contracts/test_coordinate_rules.py`` checks it), so a fraud proof can recompute one coordinate of an
aggregate on-chain.

Inputs are the ``n`` values of one coordinate, one per update: signed integers (fixed-point quantized update
coordinates; the scale is the caller's), and for the weighted mean one weight per value (the update's
revealed sample count). Bounds, checked by every rule here and in Solidity::

    1 <= n <= 2**16                 (MAX_VALUES)
    -2**127 < v_i < 2**127          (VALUE_BOUND; so |v_i| <= 2**127 - 1)
    1 <= w_i < 2**64                (WEIGHT_BOUND; the market's ``uint64 numSamples``, never zero)

They keep every intermediate inside ``int256``: ``|sum w_i v_i| < 2**16 * 2**64 * 2**127 = 2**207``,
``sum w_i < 2**80``, and a sum of at most ``2**16`` values is below ``2**143`` in magnitude.

Rules, with ``s_1 <= ... <= s_n`` the sorted values::

    round_half_even_div(a, b)   a / b rounded to the nearest integer, ties to the even one (b > 0)
    weighted_mean(v, w)         round_half_even_div(sum w_i v_i, sum w_i)
    median(v)                   s_(n+1)/2 for odd n; round_half_even_div(s_n/2 + s_n/2+1, 2) for even n
    trimmed_mean(v, t)          round_half_even_div(s_t+1 + ... + s_n-t, n - 2t) for n > 2t (unweighted,
                                like the float rule; the rule module chooses t)

Sums of integers are exact, so, unlike the float rules, no summation order is part of the definition. Each
result lies between the smallest and the largest value, so it satisfies the value bound again.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from cotrain.errors import IntegrityError

MAX_VALUES = 1 << 16
"""The most values (updates) one coordinate may have."""

VALUE_BOUND = 1 << 127
"""Every value ``v`` satisfies ``-VALUE_BOUND < v < VALUE_BOUND``."""

WEIGHT_BOUND = 1 << 64
"""Every weight ``w`` satisfies ``1 <= w < WEIGHT_BOUND``."""


def round_half_even_div(a: int, b: int) -> int:
    """Return ``a / b`` rounded to the nearest integer, a tie (remainder exactly ``b / 2``) to the even one.

    Parameters
    ----------
    a : int
        The numerator, any integer.
    b : int
        The denominator, a positive integer.

    Returns
    -------
    int
        ``q`` with ``|a / b - q| <= 1/2``; when it is exactly ``1/2``, ``q`` is even. For example
        ``5 / 2 -> 2``, ``7 / 2 -> 4``, ``-5 / 2 -> -2``, ``-7 / 2 -> -4``, ``7 / 3 -> 2``, ``-8 / 3 -> -3``.

    Raises
    ------
    IntegrityError
        If ``a`` or ``b`` is not an integer or ``b <= 0``.
    """
    a = _integer(a, "the numerator")
    b = _integer(b, "the denominator")
    if b <= 0:
        raise IntegrityError(f"the denominator must be positive, got {b}")
    quotient, remainder = divmod(a, b)  # floor division: 0 <= remainder < b
    twice = 2 * remainder
    if twice > b or (twice == b and quotient % 2 == 1):
        quotient += 1
    return quotient


def weighted_mean(values: Sequence[int], weights: Sequence[int]) -> int:
    """Return the weighted mean of one coordinate: ``round_half_even_div(sum w_i v_i, sum w_i)``.

    The integer form of fedavg's coordinate (McMahan et al., AISTATS 2017).

    Parameters
    ----------
    values : Sequence[int]
        The coordinate's ``n`` values, ``1 <= n <= MAX_VALUES``, each ``|v| < VALUE_BOUND``.
    weights : Sequence[int]
        One weight per value (the update's sample count), each ``1 <= w < WEIGHT_BOUND``.

    Raises
    ------
    IntegrityError
        If an input is outside its bounds or the counts differ.
    """
    checked = check_values(values)
    if len(weights) != len(checked):
        raise IntegrityError(f"{len(checked)} values but {len(weights)} weights")
    scales = [_weight(weight, i) for i, weight in enumerate(weights)]
    total = sum(w * v for w, v in zip(scales, checked, strict=True))
    return round_half_even_div(total, sum(scales))


def median(values: Sequence[int]) -> int:
    """Return the median of one coordinate (Yin et al., ICML 2018).

    Parameters
    ----------
    values : Sequence[int]
        The coordinate's ``n`` values, ``1 <= n <= MAX_VALUES``, each ``|v| < VALUE_BOUND``.

    Returns
    -------
    int
        With ``s`` the values sorted ascending (0-based): ``s[n // 2]`` for odd ``n``, and
        ``round_half_even_div(s[n // 2 - 1] + s[n // 2], 2)`` for even ``n``.

    Raises
    ------
    IntegrityError
        If a value is outside its bounds or there are none or too many.
    """
    ordered = sorted(check_values(values))
    n = len(ordered)
    if n % 2:
        return ordered[n // 2]
    return round_half_even_div(ordered[n // 2 - 1] + ordered[n // 2], 2)


def trimmed_mean(values: Sequence[int], trim: int) -> int:
    """Return the trimmed mean of one coordinate (Yin et al., ICML 2018), unweighted like the float rule.

    Parameters
    ----------
    values : Sequence[int]
        The coordinate's ``n`` values, ``1 <= n <= MAX_VALUES``, each ``|v| < VALUE_BOUND``.
    trim : int
        How many of the smallest and, separately, of the largest values to drop; ``0 <= 2 trim < n``.

    Returns
    -------
    int
        With ``s`` the values sorted ascending (0-based):
        ``round_half_even_div(s[trim] + ... + s[n - trim - 1], n - 2 trim)``.

    Raises
    ------
    IntegrityError
        If a value is outside its bounds, there are none or too many, or ``trim`` is not an integer
        with ``0 <= 2 trim < n``.
    """
    ordered = sorted(check_values(values))
    n = len(ordered)
    trim = _integer(trim, "trim")
    if trim < 0 or 2 * trim >= n:
        most = (n - 1) // 2
        raise IntegrityError(f"a trimmed mean of {n} values can drop 0 to {most} at each end, not {trim}")
    return round_half_even_div(sum(ordered[trim : n - trim]), n - 2 * trim)


def check_values(values: Sequence[int]) -> list[int]:
    """Return ``values`` as a list of Python ints after checking the count and every value's bound.

    Raises
    ------
    IntegrityError
        If there are no values or more than ``MAX_VALUES``, or a value is not an integer with
        ``|v| < VALUE_BOUND``.
    """
    if not 1 <= len(values) <= MAX_VALUES:
        raise IntegrityError(f"a coordinate needs 1 to {MAX_VALUES} values, got {len(values)}")
    checked = []
    for i, value in enumerate(values):
        number = _integer(value, f"value {i}")
        if not -VALUE_BOUND < number < VALUE_BOUND:
            raise IntegrityError(f"value {i} = {number} is outside (-2**127, 2**127)")
        checked.append(number)
    return checked


def _weight(value: object, index: int) -> int:
    number = _integer(value, f"weight {index}")
    if not 1 <= number < WEIGHT_BOUND:
        raise IntegrityError(f"weight {index} = {number} is outside [1, 2**64)")
    return number


def _integer(value: object, what: str) -> int:
    """``value`` as a Python int: ints and numpy integers are accepted, bools and floats are not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise IntegrityError(f"{what} must be an integer, got {value!r}")
    return int(value)
