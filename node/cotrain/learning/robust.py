"""Float64 vectors from state dicts and their weighted mean: the arithmetic of the float FedAvg baseline.

**Not the consensus arithmetic.** Validators and auditors quantize updates to fixed point and judge a round
with the exact integer arithmetic of :mod:`cotrain.consensus.exact` (PROTOCOL.md section 11), which the rule
modules of :mod:`cotrain.learning.rules` call; nothing in a round record comes from this module. What is left
here serves :func:`cotrain.learning.aggregation.fedavg`, the float32 reference that ``bench/accuracy.py`` and
``bench/fixed_point.py`` compare the fixed-point aggregate with:

* :func:`flatten` and :func:`unflatten`, between a state dict and one float64 vector;
* :func:`weighted_mean` / :class:`StreamingMean`, the float64 weighted mean.

It is still deterministic: nothing calls BLAS, a torch reduction or a numpy reduction over values, and every
step is a correctly rounded IEEE-754 operation on independent elements, in the order below. ``n`` is the
number of vectors ``x_1 .. x_n``, each of length ``d``; sums over vectors run in the given order::

    weighted_mean   W = ((w_1 + w_2) + ...) + w_n;  acc = w_1 x_1;  acc += w_i x_i for i = 2..n;  acc / W

A result that overflows float64 raises :class:`~cotrain.errors.IntegrityError` instead of returning inf.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data", AISTATS 2017.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
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
    """A float64 weighted mean of vectors that arrive one by one, in O(d) memory.

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
