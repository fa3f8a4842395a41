"""One coordinate of each per-coordinate aggregation rule, in exact integer arithmetic.

These are the per-coordinate rules of :mod:`.exact` (the median and trimmed mean are those functions on
one-coordinate vectors; the weighted mean is :class:`.exact.WeightedSum`'s formula without its int64 limbs,
since values here may be as wide as ``2**127``): every division is rounded once, half to even.
``contracts/libraries/CoordinateRules.sol`` computes the same functions on ``int256[]`` and
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

from collections.abc import Sequence

import numpy as np

from cotrain.consensus import exact
from cotrain.consensus.exact import WEIGHT_BOUND, integer, round_half_even_div
from cotrain.errors import IntegrityError

MAX_VALUES = 1 << 16
"""The most values (updates) one coordinate may have."""

VALUE_BOUND = 1 << 127
"""Every value ``v`` satisfies ``-VALUE_BOUND < v < VALUE_BOUND``."""


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
    """Return the median of one coordinate (Yin et al., ICML 2018): :func:`.exact.coordinate_median`.

    With ``s`` the values sorted ascending (0-based): ``s[n // 2]`` for odd ``n``, and
    ``round_half_even_div(s[n // 2 - 1] + s[n // 2], 2)`` for even ``n``.

    Raises
    ------
    IntegrityError
        If a value is outside its bounds or there are none or too many.
    """
    return int(exact.coordinate_median(_columns(values))[0])


def trimmed_mean(values: Sequence[int], trim: int) -> int:
    """Return the trimmed mean of one coordinate (Yin et al., ICML 2018): :func:`.exact.trimmed_mean`.

    With ``s`` the values sorted ascending (0-based):
    ``round_half_even_div(s[trim] + ... + s[n - trim - 1], n - 2 trim)``, for ``0 <= 2 trim < n``.

    Raises
    ------
    IntegrityError
        If a value is outside its bounds, there are none or too many, or ``trim`` is out of range.
    """
    return int(exact.trimmed_mean(_columns(values), trim)[0])


def _columns(values: Sequence[int]) -> list[np.ndarray]:
    """The values as ``n`` one-coordinate vectors of Python ints, the form :mod:`.exact`'s rules take."""
    return [np.array([value], dtype=object) for value in check_values(values)]


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
        number = integer(value, f"value {i}")
        if not -VALUE_BOUND < number < VALUE_BOUND:
            raise IntegrityError(f"value {i} = {number} is outside (-2**127, 2**127)")
        checked.append(number)
    return checked


def _weight(value: object, index: int) -> int:
    number = integer(value, f"weight {index}")
    if not 1 <= number < WEIGHT_BOUND:
        raise IntegrityError(f"weight {index} = {number} is outside [1, 2**64)")
    return number
