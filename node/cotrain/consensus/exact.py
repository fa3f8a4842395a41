"""Exact integer arithmetic on fixed-point update vectors: every number that enters a round record.

Updates are quantized to integers (:mod:`.fixed_point`; the protocol's format is q32.24, so every coordinate
``q`` satisfies ``|q| <= 2**31``) and everything after that is integer arithmetic: sums are exact, so no
summation order, BLAS, thread count or CPU can change a bit, and every implementation in any language gets
the same integers. The only roundings are the ones named here, each once, half to even.

Vectors are 1-D numpy arrays of int64 (or of Python ints, dtype object, for the wide values of
:mod:`.coordinate`); ``n`` is the number of vectors, ``d`` their length. Definitions::

    round_half_even_div(a, b)  a / b to the nearest integer, a tie to the even one (b > 0)
    dot(a, b)                  sum_k a_k b_k, exactly
    squared_norm(a)            dot(a, a);  norm(a) = isqrt(squared_norm(a)) = floor(sqrt(...))
    gram_matrix(xs)            G_ij = dot(x_i, x_j);  squared_distances: G_ii + G_jj - 2 G_ij
    median_int(values)         s_(n+1)/2 for odd n, round_half_even_div(s_n/2 + s_n/2+1, 2) for even n
    weighted_mean(xs, ws)      per coordinate, round_half_even_div(sum_i w_i x_i, sum_i w_i)
    coordinate_median(xs)      per coordinate, median_int of the n values
    leave_one_out_medians(xs)  for each i, coordinate_median of the n - 1 vectors other than x_i
    trimmed_mean(xs, t)        per coordinate, round_half_even_div(s_t+1 + ... + s_n-t, n - 2t)
    krum_scores(xs, f)         score_i = sum of the n - f - 2 smallest squared_norm(x_i - x_j), j != i
    clip_to_norm(x, c)         x when norm(x) <= c, else per coordinate round_half_even_div(x_k c, norm(x))
    centered_clip(xs, tau, L)  v = coordinate_median(xs); L times: with d_i = x_i - v,
                               v = v + round_half_even_div(sum_i clip_to_norm(d_i, tau), n)
    cosine_micro(a, b)         round_half_even(10**6 dot(a, b) / sqrt(squared_norm(a) squared_norm(b))),
                               0 when either vector is zero: the cosine in millionths, in [-10**6, 10**6]

Products of int64 values can overflow int64, so :func:`dot` (unless ``d max|a| max|b|`` is below ``2**62``)
splits each value into a high and a low half (``x = h 2**16 + l``, ``0 <= l < 2**16``) and sums the partial
products in int64 (each sum stays below ``2**63`` for ``|x| <= 2**32`` and ``d < 2**29``); weighted sums
split each weight into 16-bit limbs the same way. The integer results are combined in Python's unbounded
ints. :func:`gram_matrix` takes all n**2 dot products at once as float64 matrix products (BLAS), each block
of columns small enough that every product and partial sum is an integer below ``2**53``, so exact in any
summation order.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from cotrain.errors import IntegrityError

IntVector = npt.NDArray[np.int64]

#: The largest magnitude of a value that :func:`dot` accepts: twice a q32 coordinate (a difference of two).
DOT_BOUND = 1 << 32
#: The most values in one vector (an update has far fewer: ``limits.max_update_bytes`` bounds it).
MAX_LENGTH = (1 << 29) - 1
#: Weights are below this (the market's ``uint64 numSamples``) and split into four 16-bit limbs.
WEIGHT_BOUND = 1 << 64
#: Rounded scores and shares are integers in millionths.
MICRO = 10**6

_LIMB_BITS = 16
_LIMB_MASK = (1 << _LIMB_BITS) - 1
# Columns sorted at a time by the order-statistic rules: bounds their scratch memory to n x 32768 values.
_COLUMNS = 1 << 15
# Integers up to 2**53 are exact in float64; below this many columns per block the limbs are faster.
_EXACT = 1 << 53
_MIN_DIRECT_COLUMNS = 1 << 9
_GRAM_SCRATCH = 1 << 23
# Integer results below this are kept in int64 (sums of a few of them still fit).
_INT64_SAFE = 1 << 62
# Values a weighted sum multiplies and adds at a time (256 KiB of int64: in cache).
_ADD_COLUMNS = 1 << 15
# Values (vectors x columns) that WeightedSum.add_all stacks at a time.
_ADD_ALL_VALUES = 1 << 20


# ---------------------------------------------------------------------------------------------- scalars


def round_half_even_div(a: int, b: int) -> int:
    """Return ``a / b`` rounded to the nearest integer, a tie (remainder exactly ``b / 2``) to the even one.

    For example ``5 / 2 -> 2``, ``7 / 2 -> 4``, ``-5 / 2 -> -2``, ``-7 / 2 -> -4``, ``7 / 3 -> 2``.

    Raises
    ------
    IntegrityError
        If ``a`` or ``b`` is not an integer or ``b <= 0``.
    """
    return int(round_half_even_div_array(np.array([integer(a, "the numerator")], dtype=object), b)[0])


def round_half_even_div_array(numerators: npt.NDArray[Any], denominator: int) -> npt.NDArray[Any]:
    """:func:`round_half_even_div` of every element of an int64 or object array by one positive integer.

    The result has the dtype of ``numerators``; with int64 it must fit (it does whenever the numerators
    do and the denominator is at least 1).
    """
    b = integer(denominator, "the denominator")
    if b <= 0:
        raise IntegrityError(f"the denominator must be positive, got {b}")
    # Floor division, so 0 <= remainder < b (numpy's divmod has no object loop).
    quotient, remainder = numerators // b, numerators % b
    twice = 2 * remainder
    up = np.asarray((twice > b) | ((twice == b) & (quotient % 2 == 1)), dtype=bool)
    return quotient + up.astype(np.int64)


def median_int(values: Sequence[int]) -> int:
    """The median of a non-empty list of integers: the middle one, or the rounded mean of the middle two."""
    if not values:
        raise IntegrityError("the median of no values is undefined")
    ordered = sorted(integer(v, f"value {i}") for i, v in enumerate(values))
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return round_half_even_div(ordered[middle - 1] + ordered[middle], 2)


def exact_ratio(value: float) -> Fraction:
    """The exact rational value of a spec number as the canonical spec writes it (its shortest decimal).

    ``0.1`` is ``1/10``, not the binary float closest to it: the canonical JSON holds the text ``0.1``,
    and that text is what every implementation reads.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise IntegrityError(f"expected a finite number, got {value!r}")
    return Fraction(repr(float(value)))


def floor_ratio_times(ratio: Fraction, n: int) -> int:
    """``floor(ratio * n)``, exactly."""
    return math.floor(ratio * n)


def round_ratio_times(ratio: Fraction, value: int) -> int:
    """``ratio * value`` rounded half to even, exactly (``ratio >= 0``)."""
    return round_half_even_div(ratio.numerator * value, ratio.denominator)


# ---------------------------------------------------------------------------------------------- vectors


def check_int_vector(value: object, what: str = "vector", bound: int = DOT_BOUND) -> IntVector:
    """Return ``value`` after checking it is a non-empty 1-D int64 array of at most :data:`MAX_LENGTH`
    values, each ``|x| <= bound`` (so that differences and limb products cannot wrap around int64)."""
    _magnitude(value, what, bound)
    return cast(IntVector, value)


def _magnitude(value: object, what: str, bound: int) -> int:
    """:func:`check_int_vector`'s checks; returns the largest ``|x|``."""
    _check_shape(value, what)
    vector = cast(IntVector, value)
    # max and min, not abs: abs(-2**63) wraps around to -2**63.
    highest, lowest = int(vector.max()), int(vector.min())
    if highest > bound or lowest < -bound:
        raise IntegrityError(f"{what} holds a value beyond 2**{bound.bit_length() - 1} in magnitude")
    return max(highest, -lowest)


def _check_shape(value: object, what: str) -> None:
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype != np.int64:
        raise IntegrityError(
            f"{what} must be a 1-D int64 array, got {getattr(value, 'dtype', type(value).__name__)}"
        )
    if not 1 <= value.size <= MAX_LENGTH:
        raise IntegrityError(f"{what} must hold 1 to {MAX_LENGTH} values, got {value.size}")


def check_int_vectors(vectors: Sequence[IntVector]) -> list[IntVector]:
    """Return ``vectors`` after checking each with :func:`check_int_vector` and that their lengths agree."""
    if len(vectors) == 0:
        raise IntegrityError("there are no vectors")
    checked = [check_int_vector(v, f"vector {i}") for i, v in enumerate(vectors)]
    for i, vector in enumerate(checked):
        if vector.size != checked[0].size:
            raise IntegrityError(f"vector {i} has {vector.size} values but vector 0 has {checked[0].size}")
    return checked


def dot(a: IntVector, b: IntVector) -> int:
    """``sum_k a_k b_k`` exactly, for int64 vectors of one length with every ``|value| <= 2**32``."""
    largest_a = _magnitude(a, "the first vector", DOT_BOUND)
    largest_b = _magnitude(b, "the second vector", DOT_BOUND)
    left, right = np.asarray(a), np.asarray(b)
    if left.size != right.size:
        raise IntegrityError(f"the vectors have {left.size} and {right.size} values")
    if left.size * largest_a * largest_b < _INT64_SAFE:
        # No product and no running sum can wrap around.
        return int(np.dot(left, right))
    high_a, low_a = left >> _LIMB_BITS, left & _LIMB_MASK
    high_b, low_b = right >> _LIMB_BITS, right & _LIMB_MASK
    # Each partial product is below 2**34 in magnitude, so each sum of d < 2**29 of them fits int64.
    high = int(np.dot(high_a, high_b))
    middle = int(np.dot(high_a, low_b)) + int(np.dot(low_a, high_b))
    low = int(np.dot(low_a, low_b))
    return (high << (2 * _LIMB_BITS)) + (middle << _LIMB_BITS) + low


def squared_norm(a: IntVector) -> int:
    """``dot(a, a)``."""
    return dot(a, a)


def norm(a: IntVector) -> int:
    """``floor(sqrt(squared_norm(a)))``: the integer square root, exact."""
    return math.isqrt(squared_norm(a))


def gram_matrix(vectors: Sequence[IntVector]) -> npt.NDArray[Any]:
    """The symmetric ``n x n`` matrix of ``dot(x_i, x_j)``, exactly, by float64 matrix products.

    Returns an int64 array when every entry is below ``2**62`` in magnitude by the inputs' bound (``d m**2``
    for the largest magnitude ``m``), else an object array of Python ints; either way each entry equals
    :func:`dot` of the pair.
    """
    checked = check_int_vectors(vectors)
    return _gram(checked, _largest(checked))


def _largest(vectors: Sequence[IntVector]) -> int:
    return max(max(int(v.max()), -int(v.min())) for v in vectors)


def _gram(vectors: Sequence[IntVector], largest: int) -> npt.NDArray[Any]:
    # A float64 matrix product is exact while every product and partial sum is an integer below 2**53,
    # whatever order BLAS adds in. With k columns in a block and largest magnitude m that holds when
    # k m**2 <= 2**53: the values are multiplied as they are. Otherwise each is split into 16-bit limbs
    # (x = h 2**16 + l, |h| <= 2**16, 0 <= l < 2**16: limb products at most 2**32, so blocks of 2**21
    # columns) and the four limb products are recombined in integers.
    n, d = len(vectors), vectors[0].size
    bound = d * largest * largest  # of every dot product and of every running sum below
    room = max(1, _GRAM_SCRATCH // (2 * n))  # columns per block, for about 2**23 float64 values of scratch
    direct = _EXACT // max(1, largest * largest)
    split = direct < _MIN_DIRECT_COLUMNS or bound >= _INT64_SAFE
    columns = min(_EXACT >> (2 * _LIMB_BITS) if split else direct, room, d)
    # (n, n) sums of whole products, or (2n, 2n) sums of limb products (each below d 2**32 < 2**61).
    sums = np.zeros((2 * n, 2 * n) if split else (n, n), dtype=np.int64)
    for start in range(0, d, columns):
        block = np.stack([v[start : start + columns] for v in vectors])  # (n, k)
        if split:
            block = np.concatenate([block >> _LIMB_BITS, block & _LIMB_MASK])  # (2n, k): high, low
        values = block.astype(np.float64)
        sums += (values @ values.T).astype(np.int64)
    if not split:
        return sums
    high, low = sums[:n, :n], sums[n:, n:]
    middle = sums[:n, n:] + sums[n:, :n]
    if bound < _INT64_SAFE:
        # The true sum fits int64, so computing it modulo 2**64 (unsigned, where wrap-around is defined)
        # gives it exactly.
        wrapped = (high.astype(np.uint64) << np.uint64(2 * _LIMB_BITS)) + (
            middle.astype(np.uint64) << np.uint64(_LIMB_BITS)
        )
        return (wrapped + low.astype(np.uint64)).view(np.int64)
    whole: npt.NDArray[Any] = (
        (high.astype(object) << (2 * _LIMB_BITS)) + (middle.astype(object) << _LIMB_BITS) + low.astype(object)
    )
    return whole


def squared_distance_matrix(vectors: Sequence[IntVector]) -> npt.NDArray[Any]:
    """The symmetric ``n x n`` matrix of ``squared_norm(x_i - x_j)``, the diagonal 0, computed as
    ``squared_norm(x_i) + squared_norm(x_j) - 2 dot(x_i, x_j)`` from :func:`gram_matrix`: int64 when every
    entry is below ``2**62`` by the inputs' bound, else an object array of Python ints.

    Raises
    ------
    IntegrityError
        If the vectors fail :func:`check_int_vectors` or two of them differ by more than ``2**32`` in a
        coordinate (the difference :func:`dot` would refuse).
    """
    checked = check_int_vectors(vectors)
    highest, lowest = checked[0].copy(), checked[0].copy()
    for vector in checked[1:]:
        np.maximum(highest, vector, out=highest)
        np.minimum(lowest, vector, out=lowest)
    if int((highest - lowest).max()) > DOT_BOUND:
        raise IntegrityError("two vectors differ by more than 2**32 in a coordinate")
    largest = _largest(checked)
    gram = _gram(checked, largest)
    if 4 * checked[0].size * largest * largest >= _INT64_SAFE:
        gram = gram.astype(object)
    squares = np.diagonal(gram).copy()
    distances: npt.NDArray[Any] = (squares[:, None] - gram) + (squares[None, :] - gram)
    return distances


def squared_distances(vectors: Sequence[IntVector]) -> list[list[int]]:
    """The symmetric ``n x n`` matrix of ``squared_norm(x_i - x_j)`` as lists of Python ints; the diagonal
    is 0 (:func:`squared_distance_matrix`)."""
    return [[int(x) for x in row] for row in squared_distance_matrix(vectors).tolist()]


def cosine_micro(a: IntVector, b: IntVector) -> int:
    """The cosine similarity of ``a`` and ``b`` in millionths, rounded half to even; 0 if either is zero.

    With ``p = dot(a, b)`` and ``N = squared_norm(a) squared_norm(b)``, the exact value is
    ``x = 10**6 p / sqrt(N)``. For ``P = |p|``: ``k = isqrt(10**12 P**2 // N)`` is ``floor(|x|)``; ``|x|`` is
    above ``k + 1/2`` when ``4 10**12 P**2 > (2k + 1)**2 N``, exactly ``k + 1/2`` when they are equal (then
    the even one of ``k``, ``k + 1``); the sign of ``p`` is applied last. By Cauchy-Schwarz the result lies
    in ``[-10**6, 10**6]``.
    """
    product = dot(a, b)
    scale = squared_norm(a) * squared_norm(b)
    if scale == 0:
        return 0
    square = MICRO * MICRO * product * product
    k = math.isqrt(square // scale)
    above, half = 4 * square, (2 * k + 1) ** 2 * scale
    if above > half or (above == half and k % 2 == 1):
        k += 1
    return k if product >= 0 else -k


def clip_to_norm(vector: IntVector, limit: int) -> IntVector:
    """``vector`` when ``norm(vector) <= limit``, else each value scaled by ``limit / norm(vector)``.

    The scaled value is ``round_half_even_div(x_k limit, norm(vector))``, so the result's norm may differ
    from ``limit`` by rounding. Returns a new array.
    """
    values = check_int_vector(vector)
    bound = integer(limit, "the clip limit")
    if bound < 0:
        raise IntegrityError(f"the clip limit must be >= 0, got {bound}")
    length = norm(values)
    if length <= bound:
        return values.copy()
    scaled = round_half_even_div_array(values.astype(object) * bound, length)
    return scaled.astype(np.int64)


# -------------------------------------------------------------------------------------------- averages


def _limbs(weight: int) -> list[int]:
    return [(weight >> shift) & _LIMB_MASK for shift in range(0, 64, _LIMB_BITS)]


class WeightedSum:
    """``sum_i w_i x_i`` and ``sum_i w_i`` of vectors that arrive one by one, exactly, in O(d) memory.

    Each weight ``1 <= w < 2**64`` is split into four 16-bit limbs and each limb's products are summed in
    int64: a limb times a value is below ``2**47`` in magnitude, so up to ``2**16`` vectors fit.
    :meth:`mean` is :func:`weighted_mean` of the vectors added so far.
    """

    MAX_VECTORS = 1 << 16
    VALUE_BOUND = 1 << 31

    def __init__(self) -> None:
        self._length: int | None = None
        # Limb position -> the sum of that limb's products, made when a weight first has that limb: weights
        # below 2**16 (sample counts) need one int64 vector, not four.
        self._limb_sums: dict[int, IntVector] = {}
        self.total_weight = 0
        self.count = 0

    def _limb_sum(self, position: int) -> IntVector:
        if position not in self._limb_sums:
            self._limb_sums[position] = np.zeros(self._length or 0, dtype=np.int64)
        return self._limb_sums[position]

    def add(self, vector: IntVector, weight: int) -> None:
        """Add ``weight * vector``.

        Raises
        ------
        IntegrityError
            If ``vector`` is not an int64 vector of the first one's length with ``|x| <= 2**31``, ``weight``
            is not an integer in ``[1, 2**64)``, or ``MAX_VECTORS`` were already added.
        """
        values = check_int_vector(vector, f"vector {self.count}", self.VALUE_BOUND)
        w = integer(weight, f"weight {self.count}")
        if not 1 <= w < WEIGHT_BOUND:
            raise IntegrityError(f"weight {self.count} = {w} is outside [1, 2**64)")
        if self.count >= self.MAX_VECTORS:
            raise IntegrityError(f"a weighted sum takes at most {self.MAX_VECTORS} vectors")
        if self._length is None:
            self._length = values.size
        elif values.size != self._length:
            raise IntegrityError(
                f"vector {self.count} has {values.size} values but vector 0 has {self._length}"
            )
        limbs = [(self._limb_sum(position), limb) for position, limb in enumerate(_limbs(w)) if limb]
        # Column blocks whose products stay in cache: one pass over memory, no model-sized temporary.
        for start in range(0, values.size, _ADD_COLUMNS):
            part = values[start : start + _ADD_COLUMNS]
            for limb_sum, limb in limbs:
                limb_sum[start : start + _ADD_COLUMNS] += part * limb
        self.total_weight += w
        self.count += 1

    def add_all(self, vectors: Sequence[IntVector], weights: Sequence[int]) -> None:
        """:meth:`add` every ``weights[i] * vectors[i]``, all of them at once in blocks of columns.

        Raises what :meth:`add` raises for the first bad vector or weight, and then adds nothing.
        """
        if len(vectors) != len(weights):
            raise IntegrityError(f"{len(vectors)} vectors but {len(weights)} weights")
        if not vectors:
            return
        checked = [integer(w, f"weight {self.count + i}") for i, w in enumerate(weights)]
        length = self._length if self._length is not None else getattr(vectors[0], "size", 0)
        for i, (vector, w) in enumerate(zip(vectors, checked, strict=True)):
            what = f"vector {self.count + i}"
            if not 1 <= w < WEIGHT_BOUND:
                raise IntegrityError(f"weight {self.count + i} = {w} is outside [1, 2**64)")
            _check_shape(vector, what)
            if vector.size != length:
                raise IntegrityError(f"{what} has {vector.size} values but vector 0 has {length}")
        if self.count + len(vectors) > self.MAX_VECTORS:
            raise IntegrityError(f"a weighted sum takes at most {self.MAX_VECTORS} vectors")
        self._length = length
        limbs = [
            (self._limb_sum(position), np.array(column, dtype=np.int64))
            for position, column in enumerate(zip(*map(_limbs, checked), strict=True))
            if any(column)
        ]
        columns = max(1, _ADD_ALL_VALUES // len(vectors))
        for start in range(0, length, columns):
            block = np.stack([v[start : start + columns] for v in vectors])  # (n, k)
            if int(block.max()) > self.VALUE_BOUND or int(block.min()) < -self.VALUE_BOUND:
                # Take back what the earlier blocks added (exactly: int64 sums wrap around modulo 2**64),
                # then let the bad vector's own check say what is wrong with it.
                for undo in range(0, start, columns):
                    earlier = np.stack([v[undo : undo + columns] for v in vectors])
                    for limb_sum, limb in limbs:
                        limb_sum[undo : undo + columns] -= np.einsum("i,ij->j", limb, earlier)
                for i, vector in enumerate(vectors):
                    _magnitude(vector, f"vector {self.count + i}", self.VALUE_BOUND)
            for limb_sum, limb in limbs:
                # Each product is below 2**47 in magnitude and there are at most 2**16 of them.
                limb_sum[start : start + columns] += np.einsum("i,ij->j", limb, block)
        self.total_weight += sum(checked)
        self.count += len(vectors)

    def mean(self) -> IntVector:
        """Per coordinate, ``round_half_even_div(sum_i w_i x_i, sum_i w_i)`` (a new int64 array)."""
        if not self.count:
            raise IntegrityError("no vectors were added to the mean")
        if self.total_weight * self.VALUE_BOUND < _INT64_SAFE:
            # Every sum is below total_weight 2**31 in magnitude, so it fits int64 and computing it modulo
            # 2**64 (unsigned, where wrap-around is defined) gives it exactly.
            wrapped = np.zeros(self._length or 0, dtype=np.uint64)
            for position, limb_sum in self._limb_sums.items():
                wrapped += limb_sum.astype(np.uint64) << np.uint64(_LIMB_BITS * position)
            return round_half_even_div_array(wrapped.view(np.int64), self.total_weight)
        total = np.zeros(self._length or 0, dtype=object)
        for position, limb_sum in self._limb_sums.items():
            total = total + (limb_sum.astype(object) << (_LIMB_BITS * position))
        return round_half_even_div_array(total, self.total_weight).astype(np.int64)


def weighted_mean(vectors: Sequence[IntVector], weights: Sequence[int]) -> IntVector:
    """Per coordinate, ``round_half_even_div(sum_i w_i x_i, sum_i w_i)``: a :class:`WeightedSum` of them."""
    if len(vectors) == 0:
        raise IntegrityError("there are no vectors")
    total = WeightedSum()
    total.add_all(vectors, weights)
    return total.mean()


# ------------------------------------------------------------------------------------ order statistics


def _sorted_columns(matrix: npt.NDArray[Any]) -> list[tuple[slice, npt.NDArray[Any]]]:
    """``(columns, block)`` pairs: ``block`` is ``matrix[:, columns]`` sorted down each column."""
    d = matrix.shape[1]
    return [
        (slice(start, min(start + _COLUMNS, d)), np.sort(matrix[:, start : start + _COLUMNS], axis=0))
        for start in range(0, d, _COLUMNS)
    ]


def _stacked(vectors: Sequence[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    if len(vectors) == 0:
        raise IntegrityError("there are no vectors")
    length = vectors[0].size
    for i, vector in enumerate(vectors):
        if not isinstance(vector, np.ndarray) or vector.ndim != 1 or vector.dtype not in (np.int64, object):
            raise IntegrityError(f"vector {i} must be a 1-D integer array")
        if vector.size != length:
            raise IntegrityError(f"vector {i} has {vector.size} values but vector 0 has {length}")
    return np.stack(vectors)


def coordinate_median(vectors: Sequence[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """Per coordinate, :func:`median_int` of the ``n`` values (int64 or object arrays, one length)."""
    matrix = _stacked(vectors)
    n = matrix.shape[0]
    result = np.empty(matrix.shape[1], dtype=matrix.dtype)
    for columns, block in _sorted_columns(matrix):
        if n % 2:
            result[columns] = block[n // 2]
        else:
            result[columns] = round_half_even_div_array(block[n // 2 - 1] + block[n // 2], 2)
    return result


def leave_one_out_medians(vectors: Sequence[IntVector]) -> list[IntVector]:
    """For each ``i``, :func:`coordinate_median` of the vectors other than ``vectors[i]`` (``n >= 2``).

    One partial sort per coordinate serves every ``i``: with the column's order statistics
    ``s_0 <= ... <= s_n-1``, the others' ``j``-th smallest is ``s_j`` when ``x_i > s_j`` and ``s_j+1``
    otherwise (when ``x_i == s_j`` and an equal value sits above it, ``s_j+1 == s_j``). Only the two or three
    middle order statistics are needed, which ``np.partition`` finds without sorting the column.
    """
    matrix = _stacked(vectors)
    n, d = matrix.shape
    if n < 2:
        raise IntegrityError("a leave-one-out median needs at least two vectors")
    result = np.empty((n, d), dtype=matrix.dtype)
    middle = ((n - 2) // 2, (n - 1) // 2)
    for start in range(0, d, _COLUMNS):
        block = matrix[:, start : start + _COLUMNS]
        ordered = np.partition(block, sorted({*middle, *(j + 1 for j in middle)}), axis=0)
        # Row i of others[k]: the middle[k]-th smallest of the column without x_i.
        others = [np.where(block > ordered[j], ordered[j], ordered[j + 1]) for j in middle]
        columns = slice(start, start + block.shape[1])
        if (n - 1) % 2:
            result[:, columns] = others[1]
        else:
            result[:, columns] = round_half_even_div_array(others[0] + others[1], 2)
    return list(result)


def trimmed_mean(vectors: Sequence[npt.NDArray[Any]], trim: int) -> npt.NDArray[Any]:
    """Per coordinate, drop the ``trim`` smallest and ``trim`` largest values and take the rounded mean.

    Raises
    ------
    IntegrityError
        If ``trim`` is not an integer with ``0 <= 2 trim < n``.
    """
    matrix = _stacked(vectors)
    n = matrix.shape[0]
    t = integer(trim, "trim")
    if t < 0 or 2 * t >= n:
        raise IntegrityError(
            f"a trimmed mean of {n} values can drop 0 to {(n - 1) // 2} at each end, not {t}"
        )
    result = np.empty(matrix.shape[1], dtype=matrix.dtype)
    for columns, block in _sorted_columns(matrix):
        result[columns] = round_half_even_div_array(block[t : n - t].sum(axis=0), n - 2 * t)
    return result


def krum_scores(vectors: Sequence[IntVector], byzantine: int) -> list[int]:
    """Each vector's Krum score: the sum of its ``n - byzantine - 2`` smallest squared distances.

    Raises
    ------
    IntegrityError
        If ``byzantine`` is not an integer >= 0 or ``n < byzantine + 3``.
    """
    checked = check_int_vectors(vectors)
    n, f = len(checked), integer(byzantine, "byzantine")
    if f < 0 or n < f + 3:
        raise IntegrityError(f"Krum with byzantine = {f} needs at least {f + 3} vectors and f >= 0, got {n}")
    # Sorted rows start with the diagonal's 0, no larger than any distance: the n - f - 1 smallest of a
    # row are that 0 and the n - f - 2 smallest distances to the others.
    nearest = np.sort(squared_distance_matrix(checked), axis=1)[:, : n - f - 1]
    return [sum(int(x) for x in row) for row in nearest.tolist()]


def krum_select(vectors: Sequence[IntVector], byzantine: int, select: int) -> list[int]:
    """The indices of the ``select`` lowest :func:`krum_scores`, lowest first, ties to the lower index."""
    scores = krum_scores(vectors, byzantine)
    count = integer(select, "select")
    if not 1 <= count <= len(scores):
        raise IntegrityError(f"cannot select {count} of {len(scores)} vectors")
    return sorted(range(len(scores)), key=lambda i: (scores[i], i))[:count]


def centered_clip(vectors: Sequence[IntVector], tau: int, iterations: int) -> IntVector:
    """Centered clipping (Karimireddy, He, Jaggi, ICML 2021) from the coordinate-wise median, exactly.

    Each of ``iterations`` steps moves the centre ``v`` by the rounded mean of the differences
    ``x_i - v``, each first clipped to norm ``tau`` (:func:`clip_to_norm`).
    """
    checked = check_int_vectors(vectors)
    radius, steps = integer(tau, "tau"), integer(iterations, "iterations")
    if radius < 0 or steps < 0:
        raise IntegrityError(f"tau and iterations must be >= 0, got {radius} and {steps}")
    center = coordinate_median(checked)
    for _ in range(steps):
        moved = sum(clip_to_norm(vector - center, radius) for vector in checked)
        center = center + round_half_even_div_array(np.asarray(moved, dtype=np.int64), len(checked))
    return center


# ------------------------------------------------------------------------------------------------ misc


def integer(value: object, what: str) -> int:
    """``value`` as a Python int: ints and numpy integers are accepted, bools and floats are not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise IntegrityError(f"{what} must be an integer, got {value!r}")
    return int(value)
