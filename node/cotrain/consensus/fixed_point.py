"""Fixed-point update coordinates: float32 values to signed integers of a given width and scale, and back.

A format is ``(width_bits, scale_bits)``: a coordinate ``x`` is stored as the integer ``q`` nearest to
``x * 2**scale_bits``, and ``q`` must fit a two's-complement integer of ``width_bits`` bits::

    quantize(x)    q = round_half_even(x * 2**scale_bits)     -2**(width_bits-1) <= q < 2**(width_bits-1)
    dequantize(q)  q * 2**-scale_bits                          as a float64

Every step of ``quantize`` is exact except the one rounding it names: ``x`` (float32) widens to float64
exactly; multiplying a float64 by a power of two only changes its exponent, and a float32's exponent moved by
at most :data:`MAX_SCALE_BITS` stays inside float64's range, so the product is exact; rounding to the nearest
integer, ties to the even one, is the rounding; comparing that integer-valued float64 with the width's bounds
(powers of two) and converting it to int64 are exact. So every implementation, in any language, gets the same
integers.

A value outside the width is not clipped: saturating would silently change an update, and a validator must
be able to reject it instead, with a reason. :func:`quantize` raises :class:`FixedPointOverflow` (an
:class:`~cotrain.errors.IntegrityError`) naming how many values overflowed and the first one;
:func:`overflow_count` says the same without raising.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cotrain.errors import IntegrityError

NUMBER_FORMATS: dict[str, tuple[int, int]] = {"q32.24": (32, 24)}
"""The formats a task spec may name (``aggregation.number_format``): name to ``(width_bits, scale_bits)``."""

MIN_WIDTH_BITS = 2
"""The narrowest format: one sign bit and one magnitude bit."""

MAX_WIDTH_BITS = 64
"""The widest format: the integers are int64 arrays."""

MAX_SCALE_BITS = 64
"""The most fraction bits; ``x * 2**scale_bits`` of a float32 ``x`` is then still an exact float64."""


class FixedPointOverflow(IntegrityError):
    """Values whose quantized integer does not fit the format's width.

    Attributes
    ----------
    count : int
        How many values overflowed.
    index : int
        The position of the first one.
    width_bits : int
        The format's width.
    """

    def __init__(self, count: int, index: int, value: float, width_bits: int, scale_bits: int) -> None:
        self.count, self.index, self.width_bits = count, index, width_bits
        limit = 2.0 ** (width_bits - 1 - scale_bits)
        super().__init__(
            f"{count} value(s) do not fit {width_bits}-bit fixed point with {scale_bits} fraction bits "
            f"(|x| must stay below about {limit:g}); the first is value {index} = {value!r}"
        )


def quantize(values: npt.NDArray[np.float32], scale_bits: int, width_bits: int) -> npt.NDArray[np.int64]:
    """Return ``round_half_even(values * 2**scale_bits)`` as int64, after checking it fits ``width_bits``.

    Parameters
    ----------
    values : numpy.ndarray
        float32 values of any shape (an update's coordinates), all finite.
    scale_bits : int
        Fraction bits, ``0 <= scale_bits <= MAX_SCALE_BITS``: the resolution is ``2**-scale_bits``.
    width_bits : int
        The signed integer width, ``MIN_WIDTH_BITS <= width_bits <= MAX_WIDTH_BITS``: every result ``q``
        satisfies ``-2**(width_bits-1) <= q < 2**(width_bits-1)``.

    Returns
    -------
    numpy.ndarray
        int64 of the same shape. The product is exact (module docstring); the one rounding is to the
        nearest integer with ties to the even one, e.g. with ``scale_bits = 1``: ``0.25 -> 0``,
        ``0.75 -> 2``, ``1.25 -> 2``, ``-0.75 -> -2``; ``-0.0`` gives ``0``.

    Raises
    ------
    FixedPointOverflow
        If a rounded value is outside the width (nothing is saturated).
    IntegrityError
        If ``values`` is not a float32 array, a value is NaN or infinite, or a format argument is invalid.
    """
    _check_format(scale_bits, width_bits)
    array = _float32_array(values)
    scaled = np.rint(np.ldexp(array.astype(np.float64), scale_bits))  # exact, then ties-to-even rounding
    outside = _outside(scaled, width_bits)
    if outside.any():
        first = int(np.flatnonzero(outside.reshape(-1))[0])
        raise FixedPointOverflow(
            int(outside.sum()), first, float(array.reshape(-1)[first]), width_bits, scale_bits
        )
    return scaled.astype(np.int64)


def overflow_count(values: npt.NDArray[np.float32], scale_bits: int, width_bits: int) -> int:
    """How many of ``values`` :func:`quantize` would find outside the width (0 when the update fits).

    Raises
    ------
    IntegrityError
        As :func:`quantize` does for invalid input.
    """
    _check_format(scale_bits, width_bits)
    scaled = np.rint(np.ldexp(_float32_array(values).astype(np.float64), scale_bits))
    return int(_outside(scaled, width_bits).sum())


def dequantize(q: npt.NDArray[np.int64], scale_bits: int) -> npt.NDArray[np.float64]:
    """Return ``q * 2**-scale_bits`` as float64.

    Parameters
    ----------
    q : numpy.ndarray
        int64 fixed-point values of any shape.
    scale_bits : int
        Fraction bits, ``0 <= scale_bits <= MAX_SCALE_BITS``.

    Returns
    -------
    numpy.ndarray
        float64 of the same shape. Exact when ``|q| <= 2**53`` (every format up to 54 bits wide); a wider
        ``q`` is first rounded to the nearest float64, ties to even. The scaling by a power of two is exact.

    Raises
    ------
    IntegrityError
        If ``q`` is not an int64 array or ``scale_bits`` is invalid.
    """
    _check_format(scale_bits, MAX_WIDTH_BITS)
    if not isinstance(q, np.ndarray) or q.dtype != np.int64:
        raise IntegrityError(f"fixed-point values must be an int64 array, got {getattr(q, 'dtype', type(q))}")
    return np.ldexp(q.astype(np.float64), -scale_bits)


def _outside(scaled: npt.NDArray[np.float64], width_bits: int) -> npt.NDArray[np.bool_]:
    bound = 2.0 ** (width_bits - 1)  # a power of two, so both comparisons are exact
    result: npt.NDArray[np.bool_] = (scaled < -bound) | (scaled >= bound)
    return result


def _float32_array(values: object) -> npt.NDArray[np.float32]:
    if not isinstance(values, np.ndarray) or values.dtype != np.float32:
        raise IntegrityError(
            f"values to quantize must be a float32 array, got {getattr(values, 'dtype', type(values))}"
        )
    finite = np.isfinite(values)
    if not finite.all():
        first = int(np.flatnonzero(~finite.reshape(-1))[0])
        raise IntegrityError(f"value {first} = {values.reshape(-1)[first]!r} is not finite")
    return values


def _check_format(scale_bits: object, width_bits: object) -> None:
    for name, value, low, high in (
        ("scale_bits", scale_bits, 0, MAX_SCALE_BITS),
        ("width_bits", width_bits, MIN_WIDTH_BITS, MAX_WIDTH_BITS),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
            raise IntegrityError(f"{name} must be an integer from {low} to {high}, got {value!r}")
