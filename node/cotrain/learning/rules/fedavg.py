"""``fedavg``: the mean of the updates weighted by their sample counts (McMahan et al. 2017)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cotrain.learning.robust import weighted_mean
from cotrain.learning.rules.params import RuleParams
from cotrain.learning.rules.registry import Aggregate, Rule


def aggregate(vectors: Sequence[np.ndarray], samples: Sequence[int], params: RuleParams) -> Aggregate:
    """Average ``vectors`` weighted by ``samples`` with :func:`~cotrain.learning.robust.weighted_mean`.

    McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep Networks
    from Decentralized Data", AISTATS 2017.

    Parameters
    ----------
    vectors : Sequence[np.ndarray]
        The accepted updates, float64 vectors of one length.
    samples : Sequence[int]
        Each update's revealed sample count.
    params : RuleParams
        None (the rule has no parameters).

    Returns
    -------
    Aggregate
        The weighted mean, and each update's share ``samples_i / sum(samples)``.
    """
    # float64, exact up to 2**53 samples; larger counts cannot have been revealed honestly anyway.
    weights = [float(s) for s in samples]
    total = math.fsum(weights)
    return Aggregate(weighted_mean(vectors, weights), [w / total for w in weights])


RULE = Rule("fedavg", RuleParams, aggregate, streams=True)
