"""``multi_krum``: the mean of the ``n - f`` updates with the lowest Krum scores (Blanchard et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence

from cotrain.consensus.exact import IntVector
from cotrain.learning.rules.krum import KrumParams, lowest_scores_mean
from cotrain.learning.rules.registry import Aggregate, Rule


def aggregate(vectors: Sequence[IntVector], samples: Sequence[int], params: KrumParams) -> Aggregate:
    """The plain mean of the ``n - f`` updates with the lowest Krum scores (see
    :func:`~cotrain.learning.rules.krum.lowest_scores_mean`).

    Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine Tolerant
    Gradient Descent", NeurIPS 2017.
    """
    return lowest_scores_mean(vectors, params.byzantine_fraction, multi=True)


RULE = Rule("multi_krum", KrumParams, aggregate)
