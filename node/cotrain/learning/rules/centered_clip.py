"""``centered_clip``: iterated clipping around a centre that starts at the median (Karimireddy 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import Field

from cotrain.learning.robust import centered_clip, l2_norm, median_of
from cotrain.learning.rules.params import Ratio, RuleParams
from cotrain.learning.rules.registry import Aggregate, Rule


class CenteredClipParams(RuleParams):
    """``centered_clip``: the clipping radius as a multiple of the round's median update norm."""

    radius_ratio: Ratio = 1.0
    iterations: Annotated[int, Field(ge=1, le=100)] = 3


def aggregate(vectors: Sequence[np.ndarray], samples: Sequence[int], params: CenteredClipParams) -> Aggregate:
    """The :func:`~cotrain.learning.robust.centered_clip` aggregate of ``vectors``; every share is ``1 / n``.

    Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust Optimization", ICML 2021.

    Parameters
    ----------
    vectors : Sequence[np.ndarray]
        The ``n`` accepted updates, float64 vectors of one length.
    samples : Sequence[int]
        Unused: centered clipping weighs every update alike.
    params : CenteredClipParams
        The radius is ``radius_ratio`` times the median of the updates' norms
        (:func:`~cotrain.learning.robust.median_of`); ``iterations`` steps start from the coordinate-wise
        median.
    """
    n = len(vectors)
    radius = params.radius_ratio * median_of([l2_norm(v) for v in vectors])
    return Aggregate(centered_clip(vectors, radius, params.iterations), [1.0 / n] * n)


RULE = Rule("centered_clip", CenteredClipParams, aggregate)
