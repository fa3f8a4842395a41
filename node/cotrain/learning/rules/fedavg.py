"""``fedavg``: the mean of the updates weighted by their sample counts (McMahan et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence

from cotrain.consensus.exact import IntVector, WeightedSum
from cotrain.learning.rules.params import RuleParams
from cotrain.learning.rules.registry import Aggregate, Rule, shares_of


def aggregate(vectors: Sequence[IntVector], samples: Sequence[int], params: RuleParams) -> Aggregate:
    """Average ``vectors`` weighted by ``samples``: :class:`~cotrain.consensus.exact.WeightedSum`'s mean.

    McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep Networks
    from Decentralized Data", AISTATS 2017.

    Parameters
    ----------
    vectors : Sequence[IntVector]
        The accepted updates, fixed-point integer vectors of one length.
    samples : Sequence[int]
        Each update's revealed sample count, the weights.
    params : RuleParams
        None (the rule has no parameters).

    Returns
    -------
    Aggregate
        The weighted mean, and each update's share ``samples_i / sum(samples)``.
    """
    total = WeightedSum()
    total.add_all(vectors, samples)
    return Aggregate(total.mean(), shares_of(samples))


RULE = Rule("fedavg", RuleParams, aggregate, streams=True)
