"""``median``: the coordinate-wise median of the updates (Yin et al. 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cotrain.learning.robust import coordinate_median
from cotrain.learning.rules.params import RuleParams
from cotrain.learning.rules.registry import Aggregate, Rule


def aggregate(vectors: Sequence[np.ndarray], samples: Sequence[int], params: RuleParams) -> Aggregate:
    """The :func:`~cotrain.learning.robust.coordinate_median` of ``vectors``; every share is ``1 / n``.

    Yin, Chen, Kannan, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
    Rates", ICML 2018.

    Parameters
    ----------
    vectors : Sequence[np.ndarray]
        The accepted updates, float64 vectors of one length.
    samples : Sequence[int]
        Unused: the median weighs every update alike.
    params : RuleParams
        None (the rule has no parameters).
    """
    n = len(vectors)
    return Aggregate(coordinate_median(vectors), [1.0 / n] * n)


RULE = Rule("median", RuleParams, aggregate)
