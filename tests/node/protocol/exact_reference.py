"""An independent reference for the consensus core's exact arithmetic, to check the code against.

Written from the definitions (PROTOCOL.md section 11, the docstring of cotrain.consensus.exact) with nothing
but Python ints, Fractions and Decimals: no numpy arithmetic, no limb splitting, no shortcut the code takes.
Every ``round`` here is Python's ``round`` of a Fraction, which rounds half to even.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from math import isqrt

import numpy as np

SCALE_BITS = 24
WIDTH_BITS = 32
MICRO = 10**6


def quantize(values: Iterable[float]) -> list[int]:
    """q32.24: each float32 value times 2**24, rounded half to even; OverflowError when one does not fit."""
    result = []
    for value in values:
        q = round(Fraction(float(np.float32(value))) * 2**SCALE_BITS)
        if not -(2 ** (WIDTH_BITS - 1)) <= q < 2 ** (WIDTH_BITS - 1):
            raise OverflowError(f"{value} does not fit q32.24")
        result.append(q)
    return result


def flat(arrays: Mapping[str, object]) -> list[float]:
    """The values of ``arrays`` as Python floats, names in sorted order, each array row-major."""
    return [float(v) for name in sorted(arrays) for v in np.asarray(arrays[name]).reshape(-1).tolist()]


def div(a: int, b: int) -> int:
    """a / b rounded half to even."""
    return round(Fraction(a, b))


def median(values: Sequence[int]) -> int:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else div(ordered[n // 2 - 1] + ordered[n // 2], 2)


def coordinate_median(vectors: Sequence[Sequence[int]]) -> list[int]:
    return [median(column) for column in zip(*vectors, strict=True)]


def weighted_mean(vectors: Sequence[Sequence[int]], weights: Sequence[int]) -> list[int]:
    total = sum(weights)
    return [
        div(sum(w * x for w, x in zip(weights, column, strict=True)), total)
        for column in zip(*vectors, strict=True)
    ]


def trimmed_mean(vectors: Sequence[Sequence[int]], trim: int) -> list[int]:
    n = len(vectors)
    return [div(sum(sorted(column)[trim : n - trim]), n - 2 * trim) for column in zip(*vectors, strict=True)]


def dot(a: Sequence[int], b: Sequence[int]) -> int:
    return sum(x * y for x, y in zip(a, b, strict=True))


def norm(a: Sequence[int]) -> int:
    return isqrt(dot(a, a))


def cosine_micro(a: Sequence[int], b: Sequence[int]) -> int:
    """The cosine in millionths, rounded half to even, from an 80-digit Decimal square root; 0 for zero."""
    scale = dot(a, a) * dot(b, b)
    if scale == 0:
        return 0
    with localcontext() as context:
        context.prec = 80
        exact = Decimal(MICRO * dot(a, b)) / Decimal(scale).sqrt()
        return int(exact.to_integral_value(rounding=ROUND_HALF_EVEN))


def share(weight: int, total: int) -> int:
    """A weight's share of the total in millionths."""
    return div(MICRO * weight, total)


def text(micro: int) -> str:
    """Millionths as the record writes them: a decimal with six places."""
    return f"{Decimal(micro).scaleb(-6):.6f}"


def apply(base: Sequence[float], aggregate: Sequence[int]) -> list[np.float32]:
    """f32(f64(base) + aggregate 2**-24): the exact sum rounded to float64 (what IEEE addition gives), then to
    float32."""
    return [
        np.float32(float(Fraction(float(b)) + Fraction(q, 2**SCALE_BITS)))
        for b, q in zip(base, aggregate, strict=True)
    ]
