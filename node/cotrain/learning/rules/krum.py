"""``krum``: the one update closest to its nearest neighbours (Blanchard et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence

from cotrain.consensus.exact import (
    IntVector,
    coordinate_median,
    exact_ratio,
    floor_ratio_times,
    krum_select,
    weighted_mean,
)
from cotrain.learning.rules.params import MinorityShare, RuleParams
from cotrain.learning.rules.registry import Aggregate, Rule, shares_of


class KrumParams(RuleParams):
    """``krum`` and ``multi_krum``: the share of updates assumed Byzantine."""

    byzantine_fraction: MinorityShare = 0.3


def lowest_scores_mean(vectors: Sequence[IntVector], byzantine_fraction: float, *, multi: bool) -> Aggregate:
    """The mean of the vectors with the lowest Krum scores: one for Krum, ``n - f`` for Multi-Krum.

    Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine Tolerant
    Gradient Descent", NeurIPS 2017.

    Parameters
    ----------
    vectors : Sequence[IntVector]
        The ``n`` accepted updates, fixed-point integer vectors of one length.
    byzantine_fraction : float
        ``f = min(floor(byzantine_fraction * n), n - 3)`` updates are assumed Byzantine (the fraction's
        exact decimal value).
    multi : bool
        Pick ``n - f`` updates instead of one.

    Returns
    -------
    Aggregate
        The picks' :func:`~cotrain.consensus.exact.weighted_mean` with weights 1 in index order; the picks
        share equally, the others get 0. Below three updates there is nothing to vote on and the result is
        the coordinate-wise median with equal shares.
    """
    n = len(vectors)
    if n < 3:
        return Aggregate(coordinate_median(vectors), shares_of([1] * n))
    byzantine = min(floor_ratio_times(exact_ratio(byzantine_fraction), n), n - 3)
    picked = sorted(krum_select(vectors, byzantine, n - byzantine if multi else 1))
    chosen = [1 if i in picked else 0 for i in range(n)]
    return Aggregate(weighted_mean([vectors[i] for i in picked], [1] * len(picked)), shares_of(chosen))


def aggregate(vectors: Sequence[IntVector], samples: Sequence[int], params: KrumParams) -> Aggregate:
    """A copy of the update with the lowest Krum score (see :func:`lowest_scores_mean`)."""
    return lowest_scores_mean(vectors, params.byzantine_fraction, multi=False)


# A single pick discards every other honest update, so the experiment compares Multi-Krum instead.
RULE = Rule("krum", KrumParams, aggregate, in_grid=False)
