"""The arithmetic of the aggregation rules on flat float64 vectors, defined down to the rounding.

The rules themselves (their parameters and how they call this arithmetic) are one module each in
:mod:`cotrain.learning.rules`; this module is the one place their sums, distances and order statistics
are computed.

Every validator and auditor must get the same bits, so nothing here calls BLAS, a torch reduction or a
numpy reduction over values (``np.sum``, ``np.mean``, ``np.dot``, ``np.linalg.norm`` leave the order of
their additions to the build and the CPU). Every step is a correctly rounded IEEE-754 operation on
independent elements, in an order fixed below, or an exact one (sorting, selection, comparison). All
arithmetic is float64; ``n`` is the number of vectors ``x_1 .. x_n``, each of length ``d``, and sums over
vectors run in the given order.

Scalars from vectors::

    tree_sum(v)     pairwise by halving: pad an odd length with +0.0, v = v[0::2] + v[1::2], until one
                    value is left
    dot(a, b)       tree_sum(a * b)
    ||v||           sqrt(dot(v, v))                       (math.sqrt, correctly rounded)
    dist2(a, b)     tree_sum((a - b) ** 2)                (symmetric: a - b is exactly -(b - a))

Rules::

    weighted_mean   W = ((w_1 + w_2) + ...) + w_n;  acc = w_1 x_1;  acc += w_i x_i for i = 2..n;  acc / W
                    (StreamingMean, one vector at a time; fedavg and weighted_mean drive it)
    median          per coordinate, of the sorted values s_1 <= .. <= s_n: s_(n+1)/2 for odd n,
                    (s_n/2 + s_n/2+1) / 2 for even n                      [Yin et al. 2018]
    trimmed_mean    per coordinate, drop the t smallest and t largest (n > 2t):
                    ((s_t+1 + s_t+2) + ... + s_n-t) / (n - 2t), summed in sorted order  [Yin et al. 2018]
    krum_select     score_i = sum of the n - f - 2 smallest dist2(x_i, x_j), j != i, added smallest
                    first; the m lowest scores, ties to the lower index (n >= f + 3)
                                                                        [Blanchard et al. 2017]
    centered_clip   v_0 = start (default: median); for l = 1..L, with d_i = x_i - v and c_i = 1 when
                    ||d_i|| <= tau else tau / ||d_i||:
                    v = v + (((c_1 d_1 + c_2 d_2) + ...) + c_n d_n) / n     [Karimireddy et al. 2021]
    clip_to_norm    v * (c / ||v||) when ||v|| > c, else v

Sorting is exact; before sorting, every value gets ``+ 0.0``, which turns -0.0 into +0.0 and changes
nothing else, so equal values are identical bits and the sorted column (hence the median and the trimmed
mean) depends only on the multiset of values, never on the sort algorithm or the order of the vectors. A
result that overflows float64 raises :class:`~cotrain.errors.IntegrityError` instead of returning inf.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine Tolerant Gradient
Descent", NeurIPS 2017. Yin, Chen, Kannan, Bartlett, "Byzantine-Robust Distributed Learning: Towards
Optimal Statistical Rates", ICML 2018. Karimireddy, He, Jaggi, "Learning from History for Byzantine
Robust Optimization", ICML 2021. McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import ParamSpec, TypeVar

import numpy as np
import torch

from cotrain.errors import IntegrityError

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _quiet(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``function`` without numpy's overflow warnings: overflow is checked and raised afterwards."""

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with np.errstate(over="ignore", invalid="ignore"):
            return function(*args, **kwargs)

    return wrapper


# Columns sorted at a time by the order-statistic rules: bounds their scratch memory to n x 32768 floats.
_COLUMNS = 1 << 15


# ---------------------------------------------------------------------------------------------- checks


def check_vector(value: object, what: str = "vector") -> np.ndarray:
    """Return ``value`` as a float64 vector after checking that it is one.

    Parameters
    ----------
    value : object
        A non-empty 1-D numpy array of float16, float32 or float64 with finite values (widening to
        float64 is exact).
    what : str
        How to name ``value`` in an error message.

    Returns
    -------
    np.ndarray
        ``value`` itself when it is already float64, otherwise a float64 copy.

    Raises
    ------
    IntegrityError
        If ``value`` is not such an array, is empty or holds a NaN or an infinity.
    """
    if not isinstance(value, np.ndarray):
        raise IntegrityError(f"{what} must be a numpy array, not {type(value).__name__}")
    if value.ndim != 1 or value.dtype.kind != "f" or value.dtype.itemsize > 8:
        raise IntegrityError(
            f"{what} must be a 1-D float64 array, got shape {value.shape} and dtype {value.dtype}"
        )
    if value.size == 0:
        raise IntegrityError(f"{what} is empty")
    vector = value.astype(np.float64, copy=False)
    finite = np.isfinite(vector)
    if not finite.all():
        position = int(np.flatnonzero(~finite)[0])
        bad = vector[position]
        raise IntegrityError(f"{what} holds {bad} at position {position}; values must be finite")
    return vector


def check_vectors(vectors: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Return ``vectors`` as float64 vectors of one length after checking each with :func:`check_vector`.

    Raises
    ------
    IntegrityError
        If there are no vectors, one is invalid, or their lengths differ.
    """
    if len(vectors) == 0:
        raise IntegrityError("there are no vectors")
    result = [check_vector(vector, f"vector {i}") for i, vector in enumerate(vectors)]
    length = result[0].size
    for i, vector in enumerate(result):
        if vector.size != length:
            raise IntegrityError(f"vector {i} has {vector.size} values but vector 0 has {length}")
    return result


def float64_weights(weights: Sequence[int | float], count: int, *, what: str = "vectors") -> list[float]:
    """Return ``weights`` as float64 values after checking that there are ``count`` valid ones.

    Parameters
    ----------
    weights : Sequence[int | float]
        Finite, non-negative real numbers (Python or numpy, not bools); integers must be exact in
        float64.
    count : int
        How many there must be.
    what : str
        What the weights belong to, for the count mismatch message (``"3 vectors but 2 weights"``).

    Raises
    ------
    IntegrityError
        If the count differs or a weight is not a finite, non-negative number exact in float64.
    """
    if len(weights) != count:
        raise IntegrityError(f"{count} {what} but {len(weights)} weights")
    result: list[float] = []
    for i, weight in enumerate(weights):
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise IntegrityError(f"weight {i} is {weight!r}, not a number")
        if isinstance(weight, numbers.Integral) and abs(int(weight)) > 2**53:
            raise IntegrityError(f"weight {i} = {weight} is too large to be exact in float64")
        value = float(weight)
        if not math.isfinite(value) or value < 0:
            raise IntegrityError(f"weight {i} is {weight!r}; weights must be finite and not negative")
        result.append(value)
    return result


def _integer(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise IntegrityError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _non_negative(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value) >= 0:
        raise IntegrityError(f"{name} must be a number >= 0 (inf allowed), got {value!r}")
    return float(value)


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise IntegrityError(f"{what} overflowed float64; the inputs are too large")
    return value


def _finite_vector(vector: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(vector).all():
        raise IntegrityError(f"{what} overflowed float64; the inputs are too large")
    return vector


# ---------------------------------------------------------------------------------------- state dicts


def flatten(delta: Mapping[str, torch.Tensor]) -> np.ndarray:
    """Concatenate the entries of ``delta``, in sorted key order, into one float64 vector.

    Parameters
    ----------
    delta : Mapping[str, torch.Tensor]
        Floating-point tensors (any device); widening them to float64 is exact.

    Returns
    -------
    np.ndarray
        A new 1-D float64 array of ``sum(numel)`` values, each tensor flattened in row-major order.

    Raises
    ------
    IntegrityError
        If ``delta`` is empty or has no values, an entry is not a floating-point tensor, or a value is
        not finite.
    """
    if not delta:
        raise IntegrityError("the delta has no entries to flatten")
    parts: list[np.ndarray] = []
    for key in sorted(delta):
        tensor = delta[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise IntegrityError(f"delta[{key!r}] must be a floating-point tensor")
        parts.append(tensor.detach().to(device="cpu", dtype=torch.float64).reshape(-1).numpy())
    return check_vector(np.concatenate(parts), "the flattened delta")


@_quiet
def unflatten(vector: np.ndarray, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Split ``vector`` into float32 tensors shaped like ``like``, the inverse of :func:`flatten`.

    Parameters
    ----------
    vector : np.ndarray
        A float64 vector of exactly as many values as ``like`` holds.
    like : Mapping[str, torch.Tensor]
        The layout: its keys, in sorted order, and their shapes.

    Returns
    -------
    dict[str, torch.Tensor]
        New contiguous float32 CPU tensors in sorted key order; each value rounded to nearest, ties to
        even.

    Raises
    ------
    IntegrityError
        If the lengths differ, ``like`` is empty, or a value is not finite or too large for float32.
    """
    values = check_vector(vector, "the vector to unflatten")
    if not like:
        raise IntegrityError("the layout to unflatten into has no entries")
    for key in sorted(like):
        if not isinstance(like[key], torch.Tensor):
            raise IntegrityError(f"layout entry {key!r} must be a tensor")
    expected = sum(int(like[key].numel()) for key in like)
    if values.size != expected:
        raise IntegrityError(f"the vector has {values.size} values but the layout holds {expected}")
    result: dict[str, torch.Tensor] = {}
    offset = 0
    for key in sorted(like):
        shape = tuple(like[key].shape)
        count = int(like[key].numel())
        part = values[offset : offset + count].astype(np.float32)
        if not np.isfinite(part).all():
            raise IntegrityError(f"entry {key!r} has a value beyond the float32 range")
        result[key] = torch.from_numpy(part.reshape(shape))
        offset += count
    return result


# --------------------------------------------------------------------------------------------- scalars


def _tree_total(values: np.ndarray, *, scratch: bool = False) -> float:
    """tree_sum without checks; with ``scratch`` it may overwrite ``values`` instead of allocating."""
    x = values
    m = x.size
    if m > 1 and not scratch:
        # The first level writes into a new half-length array, which later levels then reuse in place.
        half = m // 2
        first = np.empty((m + 1) // 2)
        np.add(x[0 : 2 * half : 2], x[1 : 2 * half : 2], out=first[:half])
        if m % 2:
            first[half] = x[m - 1] + 0.0
        x, m = first, first.size
    while m > 1:
        half = m // 2
        last = x[m - 1] + 0.0  # the odd one out meets the +0.0 pad; read before the in-place add
        np.add(x[0 : 2 * half : 2], x[1 : 2 * half : 2], out=x[:half])
        if m % 2:
            x[half] = last
            half += 1
        m = half
    return float(x[0])


@_quiet
def tree_sum(values: np.ndarray) -> float:
    """Sum ``values`` pairwise by halving: the fixed tree that the module docstring defines.

    Parameters
    ----------
    values : np.ndarray
        A non-empty float64 vector of finite values.

    Returns
    -------
    float
        The same float on every IEEE-754 machine; within about ``log2(d) * eps * sum(|v|)`` of the
        exact sum.

    Raises
    ------
    IntegrityError
        If ``values`` is not a valid vector (see :func:`check_vector`) or the sum overflows.
    """
    return _finite(_tree_total(check_vector(values, "values")), "the sum")


def _same_length(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    left, right = check_vector(a, "the first vector"), check_vector(b, "the second vector")
    if left.size != right.size:
        raise IntegrityError(f"the vectors have {left.size} and {right.size} values")
    return left, right


@_quiet
def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Return ``tree_sum(a * b)``, the deterministic inner product of two vectors of one length.

    Raises
    ------
    IntegrityError
        If either is not a valid vector, their lengths differ, or the result overflows.
    """
    left, right = _same_length(a, b)
    return _finite(_tree_total(left * right, scratch=True), "the dot product")


@_quiet
def l2_norm(v: np.ndarray) -> float:
    """Return ``sqrt(dot(v, v))``, the deterministic Euclidean norm.

    Raises
    ------
    IntegrityError
        If ``v`` is not a valid vector or its squared norm overflows.
    """
    vector = check_vector(v)
    return math.sqrt(_finite(_tree_total(vector * vector, scratch=True), "the squared norm"))


def _tree_rows(matrix: np.ndarray) -> np.ndarray:
    """:func:`_tree_total` of every row at once (the same tree, so the same bits); overwrites ``matrix``."""
    x = matrix
    m = x.shape[1]
    while m > 1:
        half = m // 2
        last = x[:, m - 1] + 0.0
        np.add(x[:, 0 : 2 * half : 2], x[:, 1 : 2 * half : 2], out=x[:, :half])
        if m % 2:
            x[:, half] = last
            half += 1
        m = half
    return x[:, 0].copy()


#: Values per block of differences in :func:`squared_distances` (32 MiB of float64).
_BLOCK_VALUES = 1 << 22


@_quiet
def squared_distances(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Return the symmetric ``n x n`` matrix of ``dist2(x_i, x_j) = tree_sum((x_i - x_j) ** 2)``.

    Each pair is computed once (``i < j``) and mirrored, which is exact because ``x_i - x_j`` is exactly
    ``-(x_j - x_i)``; the diagonal is 0. The differences to vector ``i`` are formed in blocks of rows and
    summed with the row-wise tree, which is the same tree as :func:`tree_sum`'s. Cost: ``n (n - 1) / 2``
    passes over ``d`` values and at most 64 MiB (or one difference) of extra memory.

    Raises
    ------
    IntegrityError
        If the vectors are invalid (see :func:`check_vectors`) or a distance overflows.
    """
    checked = check_vectors(vectors)
    n, d = len(checked), checked[0].size
    result = np.zeros((n, n))
    rows = max(1, _BLOCK_VALUES // d)
    # Small sets are stacked once, so a block of differences is one numpy call instead of one per pair.
    stacked = np.stack(checked) if n * d <= _BLOCK_VALUES else None
    for i in range(n - 1):
        for start in range(i + 1, n, rows):
            stop = min(start + rows, n)
            block = np.empty((stop - start, d))
            if stacked is not None:
                np.subtract(stacked[i], stacked[start:stop], out=block)
            else:
                for k, j in enumerate(range(start, stop)):
                    np.subtract(checked[i], checked[j], out=block[k])
            np.multiply(block, block, out=block)
            totals = _tree_rows(block)
            if not np.isfinite(totals).all():
                j = start + int(np.flatnonzero(~np.isfinite(totals))[0])
                _finite(math.inf, f"the distance between vectors {i} and {j}")
            result[i, start:stop] = totals
            result[start:stop, i] = totals
    return result


# -------------------------------------------------------------------------------------------- averages


def weighted_mean(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Average ``vectors`` weighted by ``weights``: :class:`StreamingMean` fed the vectors in order.

    Parameters
    ----------
    vectors : Sequence[np.ndarray]
        One or more float64 vectors of one length.
    weights : Sequence[float]
        One finite, non-negative weight per vector, with a positive sum (see :func:`float64_weights`).

    Returns
    -------
    np.ndarray
        ``(((w_1 x_1 + w_2 x_2) + ...) + w_n x_n) / (((w_1 + w_2) + ...) + w_n)``, a new array.

    Raises
    ------
    IntegrityError
        If the vectors or weights are invalid, the weights sum to zero, or the result overflows.
    """
    checked = check_vectors(vectors)
    scales = float64_weights(weights, len(checked))
    mean = StreamingMean()
    for vector, scale in zip(checked, scales, strict=True):
        mean.add(vector, scale)
    return mean.result()


class StreamingMean:
    """A weighted mean of vectors that arrive one by one, in O(d) memory: the only implementation of it.

    ``add`` the vectors in some order and ``result`` is the module docstring's ``weighted_mean`` of them
    in that order; :func:`weighted_mean` and :func:`.aggregation.fedavg` are this class fed a whole list.
    ``count`` says how many vectors were added.
    """

    def __init__(self) -> None:
        self._acc: np.ndarray | None = None
        self._total = 0.0
        self.count = 0

    @_quiet
    def add(self, vector: np.ndarray, weight: float) -> None:
        """Add ``weight * vector`` to the running sum.

        Raises
        ------
        IntegrityError
            If ``vector`` is invalid or of another length than the first, or ``weight`` is invalid; the
            running sum is then unchanged.
        """
        values = check_vector(vector, f"vector {self.count}")
        (scale,) = float64_weights([weight], 1)
        if self._acc is None:
            # Start from the first product, not from 0.0: 0.0 + (-0.0) would turn a negative zero positive.
            self._acc = values * scale
            self._total = scale
        else:
            if values.size != self._acc.size:
                raise IntegrityError(
                    f"vector {self.count} has {values.size} values but vector 0 has {self._acc.size}"
                )
            self._acc += values * scale
            self._total += scale
        self.count += 1

    @_quiet
    def result(self) -> np.ndarray:
        """Return the weighted mean of the vectors added so far (a new array; adding may go on).

        Raises
        ------
        IntegrityError
            If nothing was added, the weights sum to zero, or the mean overflows.
        """
        if self._acc is None:
            raise IntegrityError("no vectors were added to the mean")
        if self._total <= 0:
            raise IntegrityError("the weights sum to zero; at least one vector needs a positive weight")
        total = _finite(self._total, "the sum of the weights")
        return _finite_vector(self._acc / total, "the weighted mean")


def median_of(values: Sequence[float]) -> float:
    """The median of a non-empty list of floats; for an even count ``(lo + hi) / 2`` of the middle pair."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


# ------------------------------------------------------------------------------------ order statistics


def _sorted_columns(vectors: list[np.ndarray]) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(columns, block)``; ``block[k]`` is column ``columns.start + k`` sorted."""
    n, d = len(vectors), vectors[0].size
    block = np.empty((min(_COLUMNS, d), n))
    for start in range(0, d, _COLUMNS):
        stop = min(start + _COLUMNS, d)
        rows = block[: stop - start]
        for i, vector in enumerate(vectors):
            rows[:, i] = vector[start:stop]
        # -0.0 becomes +0.0: equal values are then equal bits, whatever the sort does with ties.
        rows += 0.0
        rows.sort(axis=1)
        yield slice(start, stop), rows


@_quiet
def coordinate_median(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Return the coordinate-wise median (Yin et al. 2018) as the module docstring defines it.

    For an even count it is ``(lo + hi) / 2`` of the two middle values. The result depends only on the
    set of vectors, not on their order, and never holds -0.0.

    Raises
    ------
    IntegrityError
        If the vectors are invalid (see :func:`check_vectors`) or a midpoint overflows.
    """
    checked = check_vectors(vectors)
    n = len(checked)
    result = np.empty(checked[0].size)
    for columns, block in _sorted_columns(checked):
        if n % 2:
            result[columns] = block[:, n // 2]
        else:
            np.add(block[:, n // 2 - 1], block[:, n // 2], out=result[columns])
            result[columns] /= 2.0
    return _finite_vector(result, "the median")


@_quiet
def trimmed_mean(vectors: Sequence[np.ndarray], trim: int) -> np.ndarray:
    """Return the coordinate-wise trimmed mean (Yin et al. 2018) as the module docstring defines it.

    Parameters
    ----------
    vectors : Sequence[np.ndarray]
        ``n`` float64 vectors of one length.
    trim : int
        How many of the smallest and, separately, of the largest values to drop per coordinate;
        ``n > 2 trim``.

    Returns
    -------
    np.ndarray
        Per coordinate, the mean of the ``n - 2 trim`` middle values summed in ascending order. It
        depends only on the set of vectors, not on their order.

    Raises
    ------
    IntegrityError
        If the vectors are invalid, ``trim`` is not an integer >= 0, ``n <= 2 trim``, or the sum
        overflows.
    """
    checked = check_vectors(vectors)
    n = len(checked)
    trim = _integer(trim, "trim", 0)
    if n <= 2 * trim:
        raise IntegrityError(
            f"a trimmed mean dropping {trim} from each end needs more than {2 * trim} vectors"
        )
    kept = n - 2 * trim
    result = np.empty(checked[0].size)
    for columns, block in _sorted_columns(checked):
        acc = result[columns]
        acc[:] = block[:, trim]
        for k in range(trim + 1, n - trim):
            acc += block[:, k]
        acc /= float(kept)
    return _finite_vector(result, "the trimmed mean")


# ------------------------------------------------------------------------------------------------ Krum


def krum_scores(vectors: Sequence[np.ndarray], byzantine: int) -> list[float]:
    """Return each vector's Krum score (Blanchard et al. 2017).

    ``score_i`` is the sum of the ``n - byzantine - 2`` smallest squared distances from ``x_i`` to the
    other vectors, added smallest first. Equal distances are equal bits, so the score does not depend on
    the order of the vectors.

    Raises
    ------
    IntegrityError
        If the vectors are invalid, ``byzantine`` is not an integer >= 0, or ``n < byzantine + 3``.
    """
    checked = check_vectors(vectors)
    n = len(checked)
    byzantine = _integer(byzantine, "byzantine", 0)
    if n < byzantine + 3:
        raise IntegrityError(
            f"Krum with byzantine = {byzantine} needs at least {byzantine + 3} vectors, got {n}"
        )
    distances = squared_distances(checked)
    neighbours = n - byzantine - 2
    scores: list[float] = []
    for i in range(n):
        closest = sorted(float(distances[i, j]) for j in range(n) if j != i)[:neighbours]
        score = closest[0]
        for value in closest[1:]:
            score += value
        scores.append(_finite(score, f"the Krum score of vector {i}"))
    return scores


def krum_select(vectors: Sequence[np.ndarray], byzantine: int, select: int = 1) -> list[int]:
    """Return the indices of the ``select`` vectors with the lowest :func:`krum_scores`.

    Parameters
    ----------
    vectors : Sequence[np.ndarray]
        ``n >= byzantine + 3`` float64 vectors of one length. Blanchard et al. prove Krum's resilience
        for ``n > 2 byzantine + 2``; the smaller ``n`` allowed here still gives a well-defined choice.
    byzantine : int
        The number ``f`` of Byzantine vectors the rule tolerates.
    select : int
        How many to pick, ``1 <= select <= n``.

    Returns
    -------
    list[int]
        Indices in ascending score order; equal scores go to the lower index first.

    Raises
    ------
    IntegrityError
        If the vectors are invalid, ``byzantine`` or ``select`` is out of range, or
        ``n < byzantine + 3``.
    """
    scores = krum_scores(vectors, byzantine)
    select = _integer(select, "select", 1)
    if select > len(scores):
        raise IntegrityError(f"cannot select {select} of {len(scores)} vectors")
    return sorted(range(len(scores)), key=lambda i: (scores[i], i))[:select]


# ---------------------------------------------------------------------------------------------- clipping


@_quiet
def centered_clip(
    vectors: Sequence[np.ndarray], tau: float, iterations: int, start: np.ndarray | None = None
) -> np.ndarray:
    """Return the centered clipping aggregate (Karimireddy, He, Jaggi 2021) the module docstring defines.

    Parameters
    ----------
    vectors : Sequence[np.ndarray]
        ``n`` float64 vectors of one length.
    tau : float
        The clipping radius, ``>= 0``; ``inf`` never clips (each iteration then moves ``v`` to the mean)
        and ``0`` never moves ``v``.
    iterations : int
        How many times to update ``v``, ``>= 0``.
    start : np.ndarray, optional
        The first ``v``; by default the :func:`coordinate_median` of ``vectors``.

    Returns
    -------
    np.ndarray
        The last ``v``, a new array.

    Raises
    ------
    IntegrityError
        If the vectors or ``start`` are invalid or of other lengths, ``tau`` or ``iterations`` is out of
        range, or a value overflows.
    """
    checked = check_vectors(vectors)
    radius = _non_negative(tau, "tau")
    rounds = _integer(iterations, "iterations", 0)
    if start is None:
        center = coordinate_median(checked)
    else:
        center = check_vector(start, "start").copy()
        if center.size != checked[0].size:
            length = checked[0].size
            raise IntegrityError(f"start has {center.size} values but the vectors have {length}")
    count = float(len(checked))
    for _ in range(rounds):
        acc = _clipped_difference(checked[0], center, radius)
        for vector in checked[1:]:
            acc += _clipped_difference(vector, center, radius)
        acc /= count
        center = _finite_vector(center + acc, "the centered clipping aggregate")
    return center


def _clipped_difference(vector: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """``c d`` for ``d = vector - center``, ``c = min(1, radius / ||d||)``, never forming ``x / 0``."""
    difference: np.ndarray = vector - center
    norm = math.sqrt(_finite(_tree_total(difference * difference, scratch=True), "a squared distance"))
    if norm > radius:
        difference *= radius / norm
    return difference


@_quiet
def clip_to_norm(vector: np.ndarray, max_norm: float) -> np.ndarray:
    """Scale ``vector`` down to ``max_norm`` when its norm is larger; otherwise return a copy.

    The scaled vector is ``vector * (max_norm / ||vector||)`` (one division, then one product per value);
    its norm can differ from ``max_norm`` in the last bits.

    Raises
    ------
    IntegrityError
        If ``vector`` is invalid or ``max_norm`` is not a number ``>= 0`` (``inf`` never clips).
    """
    values = check_vector(vector)
    limit = _non_negative(max_norm, "max_norm")
    norm = l2_norm(values)
    if norm > limit:
        return values * (limit / norm)
    return values.copy()
