"""Deterministic measures that screen updates before aggregation: relative distance, copies, cosine.

Every number comes from the float64 arithmetic of :mod:`cotrain.learning.robust` (``tree_sum``, ``dot``,
``l2_norm``), so every validator and auditor reaches the same verdicts::

    rel(a, b)     ||a - b|| / max(||a||, ||b||), and 0.0 when both are zero    (in [0, 2])
    cosine(a, b)  dot(a, b) / (||a|| ||b||) clamped to [-1, 1], and 0.0 when either is zero

A contributor who copies (or slightly perturbs) another's update is a free rider: it earns without
training. Commit-reveal stops copying a revealed update, so a near-copy of an update committed earlier
comes from collusion or a leak (Lin, Du, Liu, "Free-riders in Federated Learning: Attacks and Defenses",
2019). Cosine similarity to a robust reference catches sign-flipped and noise updates (Cao et al.,
"FLTrust: Byzantine-robust Federated Learning via Trust Bootstrapping", NDSS 2021). Which thresholds
apply, and what follows from them, is the protocol's decision, not this module's.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from cotrain.errors import IntegrityError
from cotrain.learning.robust import check_vector, check_vectors, dot, l2_norm, squared_distances


def _relative(distance: float, norm_a: float, norm_b: float) -> float:
    scale = max(norm_a, norm_b)
    return 0.0 if scale == 0 else distance / scale


def pairwise_relative_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Return ``||a - b|| / max(||a||, ||b||)``, or 0.0 when both vectors are zero.

    Parameters
    ----------
    a, b : np.ndarray
        Float64 vectors of one length.

    Returns
    -------
    float
        0.0 for identical vectors, at most 2.0 (for ``b = -a``); symmetric in ``a`` and ``b``.

    Raises
    ------
    IntegrityError
        If either is not a valid vector (see :func:`~cotrain.learning.robust.check_vector`) or their
        lengths differ.
    """
    left, right = check_vector(a, "the first vector"), check_vector(b, "the second vector")
    if left.size != right.size:
        raise IntegrityError(f"the vectors have {left.size} and {right.size} values")
    return _relative(l2_norm(left - right), l2_norm(left), l2_norm(right))


def near_duplicates(
    vectors: Sequence[np.ndarray],
    order: Sequence[int],
    tolerance: float,
) -> dict[int, int]:
    """Find the vectors within ``tolerance`` relative distance of a vector earlier in ``order``.

    Parameters
    ----------
    vectors : Sequence[np.ndarray]
        Float64 vectors of one length.
    order : Sequence[int]
        ``order[i]`` is the rank of vector ``i`` (its commit position, say): lower is earlier. Ranks must
        be distinct integers.
    tolerance : float
        The largest :func:`pairwise_relative_distance` that still counts as a copy, ``>= 0``; with 0 only
        exact copies (and zero vectors, which are copies of each other) count.

    Returns
    -------
    dict[int, int]
        ``{i: j}`` in ascending ``i``, for every vector ``i`` that has an earlier vector within
        tolerance, ``j`` being the earliest of those. Chains are not followed: if ``b`` is near ``a``
        and ``c`` is near ``b`` but not near ``a``, then ``c`` maps to ``b``. The earliest vector of a
        group never appears as a key.

    Raises
    ------
    IntegrityError
        If the vectors are invalid, ``order`` has the wrong length or repeated or non-integer ranks, or
        ``tolerance`` is not a number ``>= 0``.
    """
    checked = check_vectors(vectors)
    if len(order) != len(checked):
        raise IntegrityError(f"{len(checked)} vectors but {len(order)} ranks in order")
    for i, rank in enumerate(order):
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
            raise IntegrityError(f"rank {i} is {rank!r}, not an integer")
    if len(set(order)) != len(order):
        raise IntegrityError(f"the ranks in order must be distinct, got {list(order)}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not tolerance >= 0:
        raise IntegrityError(f"tolerance must be a number >= 0, got {tolerance!r}")
    norms = [l2_norm(vector) for vector in checked]
    distances = squared_distances(checked)
    by_rank = sorted(range(len(checked)), key=lambda i: int(order[i]))
    copies: dict[int, int] = {}
    for position, i in enumerate(by_rank):
        for j in by_rank[:position]:
            distance = math.sqrt(float(distances[i, j]))
            if _relative(distance, norms[i], norms[j]) <= tolerance:
                copies[i] = j
                break
    return dict(sorted(copies.items()))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Return ``dot(a, b) / (||a|| ||b||)`` clamped to ``[-1, 1]``, or 0.0 when either vector is zero.

    The clamp only removes rounding: for parallel vectors the quotient can come out one ulp above 1.

    Raises
    ------
    IntegrityError
        If either is not a valid vector or their lengths differ.
    """
    product = dot(a, b)
    norm_a, norm_b = l2_norm(a), l2_norm(b)
    if norm_a == 0 or norm_b == 0:
        return 0.0
    return min(1.0, max(-1.0, product / (norm_a * norm_b)))
