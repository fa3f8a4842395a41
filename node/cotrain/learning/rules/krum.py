"""``krum``: the one update closest to its nearest neighbours (Blanchard et al. 2017)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cotrain.learning.robust import coordinate_median, krum_select, weighted_mean
from cotrain.learning.rules.params import MinorityShare, RuleParams
from cotrain.learning.rules.registry import Aggregate, Rule


class KrumParams(RuleParams):
    """``krum`` and ``multi_krum``: the share of updates assumed Byzantine."""

    byzantine_fraction: MinorityShare = 0.3


def lowest_scores_mean(vectors: Sequence[np.ndarray], byzantine_fraction: float, *, multi: bool) -> Aggregate:
    """The mean of the vectors with the lowest Krum scores: one for Krum, ``n - f`` for Multi-Krum.

    Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine Tolerant
    Gradient Descent", NeurIPS 2017.

    Parameters
    ----------
    vectors : Sequence[np.ndarray]
        The ``n`` accepted updates, float64 vectors of one length.
    byzantine_fraction : float
        ``f = min(floor(byzantine_fraction * n), n - 3)`` updates are assumed Byzantine.
    multi : bool
        Pick ``n - f`` updates instead of one.

    Returns
    -------
    Aggregate
        The picks' :func:`~cotrain.learning.robust.weighted_mean` with weights 1.0 in index order; each
        pick's share is ``1 / picks``, the others' 0. Below three updates there is nothing to vote on and
        the result is the coordinate-wise median with equal shares.
    """
    n = len(vectors)
    if n < 3:
        return Aggregate(coordinate_median(vectors), [1.0 / n] * n)
    byzantine = min(math.floor(byzantine_fraction * n), n - 3)
    select = n - byzantine if multi else 1
    picked = krum_select(vectors, byzantine, select)
    chosen = sorted(picked)
    shares = [1.0 / select if i in picked else 0.0 for i in range(n)]
    return Aggregate(weighted_mean([vectors[i] for i in chosen], [1.0] * select), shares)


def aggregate(vectors: Sequence[np.ndarray], samples: Sequence[int], params: KrumParams) -> Aggregate:
    """A copy of the update with the lowest Krum score (see :func:`lowest_scores_mean`)."""
    return lowest_scores_mean(vectors, params.byzantine_fraction, multi=False)


# A single pick discards every other honest update, so the experiment compares Multi-Krum instead.
RULE = Rule("krum", KrumParams, aggregate, in_grid=False)
