"""``trimmed_mean``: per coordinate, the mean of the values left between both tails (Yin et al. 2018)."""

from __future__ import annotations

from collections.abc import Sequence

from cotrain.consensus.exact import IntVector, exact_ratio, floor_ratio_times, trimmed_mean
from cotrain.learning.rules.params import MinorityShare, RuleParams
from cotrain.learning.rules.registry import Aggregate, Rule, shares_of


class TrimmedMeanParams(RuleParams):
    """``trimmed_mean``: the share of updates dropped at each end, per coordinate."""

    trim_fraction: MinorityShare = 0.2


def aggregate(vectors: Sequence[IntVector], samples: Sequence[int], params: TrimmedMeanParams) -> Aggregate:
    """The :func:`~cotrain.consensus.exact.trimmed_mean` of ``vectors``; every share is ``1 / n``.

    Yin, Chen, Kannan, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
    Rates", ICML 2018. ``samples`` is unused: the trimmed mean weighs every update alike.
    ``trim = min(floor(trim_fraction * n), (n - 1) // 2)`` values are dropped at each end (the fraction's
    exact decimal value), so at least one is always left.
    """
    n = len(vectors)
    trim = min(floor_ratio_times(exact_ratio(params.trim_fraction), n), (n - 1) // 2)
    return Aggregate(trimmed_mean(vectors, trim), shares_of([1] * n))


RULE = Rule("trimmed_mean", TrimmedMeanParams, aggregate)
