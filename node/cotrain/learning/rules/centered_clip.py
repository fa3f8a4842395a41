"""``centered_clip``: iterated clipping around a centre that starts at the median (Karimireddy 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from cotrain.consensus.exact import IntVector, centered_clip, exact_ratio, median_int, norm, round_ratio_times
from cotrain.learning.rules.params import Ratio, RuleParams
from cotrain.learning.rules.registry import Aggregate, Rule, shares_of


class CenteredClipParams(RuleParams):
    """``centered_clip``: the clipping radius as a multiple of the round's median update norm."""

    radius_ratio: Ratio = 1.0
    iterations: Annotated[int, Field(ge=1, le=100)] = 3


def aggregate(vectors: Sequence[IntVector], samples: Sequence[int], params: CenteredClipParams) -> Aggregate:
    """The :func:`~cotrain.consensus.exact.centered_clip` aggregate of ``vectors``; every share is ``1 / n``.

    Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust Optimization", ICML 2021.
    ``samples`` is unused: centered clipping weighs every update alike. The radius is ``radius_ratio``
    (its exact decimal value) times :func:`~cotrain.consensus.exact.median_int` of the updates' integer
    norms, rounded half to even; ``iterations`` steps start from the coordinate-wise median.
    """
    radius = round_ratio_times(exact_ratio(params.radius_ratio), median_int([norm(v) for v in vectors]))
    return Aggregate(centered_clip(vectors, radius, params.iterations), shares_of([1] * len(vectors)))


RULE = Rule("centered_clip", CenteredClipParams, aggregate)
