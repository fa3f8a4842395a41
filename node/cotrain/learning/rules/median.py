"""``median``: the coordinate-wise median of the updates (Yin et al. 2018)."""

from __future__ import annotations

from collections.abc import Sequence

from cotrain.consensus.exact import IntVector, coordinate_median
from cotrain.learning.rules.params import RuleParams
from cotrain.learning.rules.registry import Aggregate, Rule, shares_of


def aggregate(vectors: Sequence[IntVector], samples: Sequence[int], params: RuleParams) -> Aggregate:
    """The :func:`~cotrain.consensus.exact.coordinate_median` of ``vectors``; every share is ``1 / n``.

    Yin, Chen, Kannan, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
    Rates", ICML 2018. ``samples`` is unused: the median weighs every update alike.
    """
    return Aggregate(coordinate_median(vectors), shares_of([1] * len(vectors)))


RULE = Rule("median", RuleParams, aggregate)
