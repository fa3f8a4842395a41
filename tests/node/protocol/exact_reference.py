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


# ---------------------------------------------------------------- marginal-value scores (spec version 3)


def squared_distance(a: Sequence[int], b: Sequence[int]) -> int:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def mean(vectors: Sequence[Sequence[int]]) -> list[int]:
    """The plain mean, per coordinate rounded half to even."""
    return [div(sum(column), len(vectors)) for column in zip(*vectors, strict=True)]


def others(vectors: Sequence[Sequence[int]], i: int) -> list[Sequence[int]]:
    return [v for j, v in enumerate(vectors) if j != i]


def leave_one_out_medians(vectors: Sequence[Sequence[int]]) -> list[list[int]]:
    """For each vector, the coordinate-wise median of the others, each found by sorting them afresh."""
    return [coordinate_median(others(vectors, i)) for i in range(len(vectors))]


def spread(vectors: Sequence[Sequence[int]]) -> tuple[list[int], int]:
    """Each vector's squared distance to the nearer of the others' median and the others' mean, and the
    median of those: the squared spread S**2 (three vectors or more)."""
    assert len(vectors) >= 3
    distances = [
        min(
            squared_distance(v, coordinate_median(others(vectors, i))),
            squared_distance(v, mean(others(vectors, i))),
        )
        for i, v in enumerate(vectors)
    ]
    return distances, median(distances)


def floor_micro_sqrt(q: Fraction) -> int:
    """floor(10**6 sqrt(q)) for a rational q >= 0: the largest s with s**2 <= 10**12 q."""
    s = isqrt(int(q * MICRO * MICRO))  # floor(sqrt(x)) = isqrt(floor(x)) for x >= 0
    assert s * s <= q * MICRO * MICRO < (s + 1) ** 2
    return s


def marginal_scores(vectors: Sequence[Sequence[int]], median_norm: int) -> list[int]:
    """round(cos x size x novelty / 10**12), each factor in millionths (PROTOCOL.md section 11):

    cos to the others' coordinate-wise median (to the median of all, below three vectors); size
    min(1, ||x|| / m) rounded down (1 when m = 0); novelty min(1, d**2 / S**2) rounded down (1 when S = 0 or
    below three vectors).
    """
    n = len(vectors)
    if n < 3:
        references, distances, spread_ = [coordinate_median(vectors)] * n, [0] * n, 0
    else:
        references = leave_one_out_medians(vectors)
        distances, spread_ = spread(vectors)
    scores = []
    for v, reference, distance in zip(vectors, references, distances, strict=True):
        size = (
            MICRO if median_norm == 0 else min(MICRO, floor_micro_sqrt(Fraction(dot(v, v), median_norm**2)))
        )
        novelty = MICRO if spread_ == 0 else min(MICRO, MICRO * distance // spread_)
        scores.append(div(cosine_micro(v, reference) * size * novelty, MICRO * MICRO))
    return scores


def peeled_scores(vectors: Sequence[Sequence[int]], median_norm: int, min_score: Fraction) -> list[int]:
    """marginal_scores; while the lowest is below min_score (the first such vector on a tie), that vector
    keeps its score and leaves, and the rest are scored again."""
    scores = [0] * len(vectors)
    remaining = list(range(len(vectors)))
    while remaining:
        current = marginal_scores([vectors[i] for i in remaining], median_norm)
        for i, score in zip(remaining, current, strict=True):
            scores[i] = score
        lowest = min(current)
        if Fraction(lowest, MICRO) >= min_score:
            break
        remaining.pop(current.index(lowest))
    return scores
