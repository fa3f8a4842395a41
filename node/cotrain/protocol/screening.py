"""The validator's pipeline after the integrity checks: screen, score and aggregate a round's updates.

Each update that passed the integrity checks (digest, size, header, shapes, dtypes, finite values, binding)
is flattened to one float64 vector and, when ``aggregation.screening.enabled``, goes through these steps in
order; the first it fails names its reason in the round record:

1. ``duplicate``: within ``duplicate_distance`` (relative L2 distance) of an update committed earlier in the
   round. Commit-reveal means nobody can copy an update before it is revealed, so a near-copy comes from a
   colluder or a leak; the earliest commit keeps its verdict.
2. ``free_rider`` / ``outlier``: its norm is below ``min_norm_ratio`` times the median norm of the updates
   left after step 1 (a zero or near-zero "disguised" update), or above ``max_norm_ratio`` times the median
   norm of those that are not free-riders (a scaled update).
3. ``low_score``: its cosine similarity to the coordinate-wise median of the updates left after step 2 is
   below ``min_score`` (sign flipping, noise, inner-product manipulation), or, when ``max_loss_increase`` is
   set, applying it alone raises the held-out loss by more than that (a torch loss, so those verdicts are
   machine-dependent; PROTOCOL.md, section 19).

The updates left are accepted; those whose norm exceeds ``clip_norm_ratio`` times that second median norm
are scaled down to it, and the spec's rule (from the registry in :mod:`cotrain.learning.rules`) aggregates
them. An accepted update's score is that cosine similarity; its reward weight is
``samples x round(max(score, 0), 6 places)`` as an integer, so rewards follow from the record's own numbers.
Without screening every integral update is accepted with score 1.

Every number is computed with the deterministic float64 arithmetic of :mod:`cotrain.learning.robust`, so
every validator and auditor reaches the same verdicts. Memory is O(model) for a rule that streams (FedAvg)
without screening (the mean is computed one update at a time) and O(updates x model) otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import torch

from cotrain.learning.robust import (
    StreamingMean,
    clip_to_norm,
    coordinate_median,
    flatten,
    l2_norm,
    median_of,
    unflatten,
)
from cotrain.learning.rules import get_rule
from cotrain.learning.screening import cosine, near_duplicates
from cotrain.protocol.round_record import FLOAT_PLACES, Reason, format_fixed
from cotrain.protocol.task_spec import AggregationSpec

#: Harm to the held-out loss of applying one update alone (new loss minus the base model's loss).
LossIncrease = Callable[[dict[str, torch.Tensor]], float]


@dataclass(frozen=True)
class Judgement:
    """What the pipeline made of one update."""

    reason: Reason
    score: float
    weight: float  # the update's share of the aggregate
    reward_weight: int  # what its reward is proportional to


@dataclass(frozen=True)
class PipelineResult:
    """Judgements by lower-case contributor, and the aggregate delta (None when nothing was accepted)."""

    judgements: dict[str, Judgement]
    delta: dict[str, torch.Tensor] | None


@dataclass(frozen=True)
class _Candidate:
    contributor: str
    vector: np.ndarray
    samples: int
    commit_order: int


class RoundPipeline:
    """Collects a round's integral updates one by one, then judges and aggregates them in :meth:`finish`."""

    def __init__(
        self,
        aggregation: AggregationSpec,
        like: Mapping[str, torch.Tensor],
        loss_increase: LossIncrease | None = None,
    ) -> None:
        self.aggregation = aggregation
        self.like = like
        self.loss_increase = loss_increase
        self._streaming = StreamingMean() if self._streams else None
        self._candidates: list[_Candidate] = []

    @property
    def _streams(self) -> bool:
        return get_rule(self.aggregation.rule).streams and not self.aggregation.screening.enabled

    def add(
        self, contributor: str, delta: Mapping[str, torch.Tensor], samples: int, commit_order: int
    ) -> None:
        """Take one update that passed the integrity checks."""
        vector = flatten(delta)
        if self._streaming is not None:
            self._streaming.add(vector, float(samples))
            vector = np.empty(0)
        self._candidates.append(_Candidate(contributor.lower(), vector, samples, commit_order))

    def finish(self) -> PipelineResult:
        """Judge every update added and aggregate the accepted ones."""
        candidates = sorted(self._candidates, key=lambda c: c.contributor)
        if not candidates:
            return PipelineResult({}, None)
        if self._streaming is not None:
            total = sum(c.samples for c in candidates)
            judgements = {
                c.contributor: Judgement(Reason.OK, 1.0, c.samples / total, c.samples) for c in candidates
            }
            return PipelineResult(judgements, unflatten(self._streaming.result(), self.like))
        if self.aggregation.screening.enabled:
            reasons, scores, accepted, clip_to = self._screen(candidates)
        else:
            reasons = {c.contributor: Reason.OK for c in candidates}
            scores = {c.contributor: 1.0 for c in candidates}
            accepted, clip_to = candidates, math.inf
        delta, shares = None, {}
        if accepted:
            vectors = [c.vector if math.isinf(clip_to) else clip_to_norm(c.vector, clip_to) for c in accepted]
            aggregate, weights = self._aggregate(vectors, [c.samples for c in accepted])
            delta = unflatten(aggregate, self.like)
            shares = dict(zip((c.contributor for c in accepted), weights, strict=True))
        judgements = {}
        for c in candidates:
            who = c.contributor
            score = scores.get(who, 0.0)
            ok = reasons[who] == Reason.OK
            judgements[who] = Judgement(
                reasons[who], score, shares.get(who, 0.0), reward_weight(c.samples, score) if ok else 0
            )
        return PipelineResult(judgements, delta)

    # ---------------------------------------------------------------- screening

    def _screen(
        self, candidates: list[_Candidate]
    ) -> tuple[dict[str, Reason], dict[str, float], list[_Candidate], float]:
        screening = self.aggregation.screening
        reasons = {c.contributor: Reason.OK for c in candidates}
        # Equal commit positions (only in tests and simulations) fall back to address order.
        ranks = [0] * len(candidates)
        by_commit = sorted(range(len(candidates)), key=lambda i: (candidates[i].commit_order, i))
        for rank, index in enumerate(by_commit):
            ranks[index] = rank
        copies = near_duplicates([c.vector for c in candidates], ranks, screening.duplicate_distance)
        for index in copies:
            reasons[candidates[index].contributor] = Reason.DUPLICATE
        left = [c for c in candidates if reasons[c.contributor] == Reason.OK]

        norms = {c.contributor: l2_norm(c.vector) for c in left}
        median_norm = median_of(list(norms.values())) if left else 0.0
        for c in left:
            if norms[c.contributor] < screening.min_norm_ratio * median_norm or norms[c.contributor] == 0:
                reasons[c.contributor] = Reason.FREE_RIDER
        # The upper bound and the clip come from the updates that are not free-riders, so that many
        # near-zero updates cannot pull the median down until honest updates look like outliers.
        left = [c for c in left if reasons[c.contributor] == Reason.OK]
        median_norm = median_of([norms[c.contributor] for c in left]) if left else 0.0
        for c in left:
            if norms[c.contributor] > screening.max_norm_ratio * median_norm:
                reasons[c.contributor] = Reason.OUTLIER
        left = [c for c in left if reasons[c.contributor] == Reason.OK]

        scores: dict[str, float] = {}
        if left:
            reference = coordinate_median([c.vector for c in left])
            for c in left:
                scores[c.contributor] = cosine(c.vector, reference)
                if scores[c.contributor] < screening.min_score:
                    reasons[c.contributor] = Reason.LOW_SCORE
                elif self.loss_increase is not None and screening.max_loss_increase is not None:
                    harm = self.loss_increase(unflatten(c.vector, self.like))
                    if not harm <= screening.max_loss_increase:
                        reasons[c.contributor] = Reason.LOW_SCORE
        accepted = [c for c in left if reasons[c.contributor] == Reason.OK]
        return reasons, scores, accepted, screening.clip_norm_ratio * median_norm

    # ---------------------------------------------------------------- aggregation

    def _aggregate(self, vectors: list[np.ndarray], samples: list[int]) -> tuple[np.ndarray, list[float]]:
        """The rule's aggregate of ``vectors`` and each one's share of it."""
        return get_rule(self.aggregation.rule).run(vectors, samples, self.aggregation.params)


def reward_weight(samples: int, score: float) -> int:
    """``samples x max(score, 0)`` with the score rounded as the record writes it, as an exact integer."""
    fixed = Decimal(format_fixed(max(score, 0.0)))
    return samples * int(fixed.scaleb(FLOAT_PLACES))
