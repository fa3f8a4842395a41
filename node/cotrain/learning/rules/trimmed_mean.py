"""``trimmed_mean``: per coordinate, the mean of the values left between both tails (Yin et al. 2018)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cotrain.learning.robust import trimmed_mean
from cotrain.learning.rules.params import MinorityShare, RuleParams
from cotrain.learning.rules.registry import Aggregate, Rule


class TrimmedMeanParams(RuleParams):
    """``trimmed_mean``: the share of updates dropped at each end, per coordinate."""

    trim_fraction: MinorityShare = 0.2


def aggregate(vectors: Sequence[np.ndarray], samples: Sequence[int], params: TrimmedMeanParams) -> Aggregate:
    """The :func:`~cotrain.learning.robust.trimmed_mean` of ``vectors``; every share is ``1 / n``.

    Yin, Chen, Kannan, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
    Rates", ICML 2018.

    Parameters
    ----------
    vectors : Sequence[np.ndarray]
        The ``n`` accepted updates, float64 vectors of one length.
    samples : Sequence[int]
        Unused: the trimmed mean weighs every update alike.
    params : TrimmedMeanParams
        ``trim = min(floor(trim_fraction * n), (n - 1) // 2)`` values are dropped at each end, so at
        least one is always left.
    """
    n = len(vectors)
    trim = min(math.floor(params.trim_fraction * n), (n - 1) // 2)
    return Aggregate(trimmed_mean(vectors, trim), [1.0 / n] * n)


RULE = Rule("trimmed_mean", TrimmedMeanParams, aggregate)
