"""The validator's pipeline after the integrity checks: screen, score and aggregate a round's updates.

Each update that passed the integrity checks (digest, size, header, shapes, dtypes, finite values, binding,
and the fixed-point range) arrives as one fixed-point integer vector (its tensors flattened in sorted name
order and quantized, PROTOCOL.md section 11) and, when ``aggregation.screening.enabled``, goes through these
steps in order; the first it fails names its reason in the round record:

1. ``duplicate``: within ``duplicate_distance`` (relative L2 distance) of an update committed earlier in the
   round. Commit-reveal means nobody can copy an update before it is revealed, so a near-copy comes from a
   colluder or a leak; the earliest commit keeps its verdict.
2. ``free_rider`` / ``outlier``: its norm is zero or below ``min_norm_ratio`` times the median norm of the
   updates left after step 1 (a zero or near-zero "disguised" update), or above ``max_norm_ratio`` times the
   median norm of those that are not free-riders (a scaled update).
3. ``low_score``: its score, the cosine similarity to the coordinate-wise median of the updates left after
   step 2 in millionths, is below ``min_score`` (sign flipping, noise, inner-product manipulation).

The updates left are accepted; those whose norm exceeds ``clip_norm_ratio`` times that second median norm
are scaled down to it, and the spec's rule (from the registry in :mod:`cotrain.learning.rules`) aggregates
them. An accepted update's reward weight is ``samples x max(score, 0)`` with the score in millionths, as the
record writes it, so rewards follow from the record's own numbers. Without screening every integral update is
accepted with score 1.

Every number is exact integer arithmetic (:mod:`cotrain.consensus.exact`): norms are integer square roots,
and every comparison with a spec ratio is a comparison of integer products with the ratio's exact decimal
value, so every validator and auditor reaches the same verdicts on any machine. Memory is O(model) for a rule
that streams (FedAvg) without screening (the sum is kept one update at a time) and O(updates x model)
otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from cotrain.consensus.exact import (
    MICRO,
    IntVector,
    WeightedSum,
    clip_to_norm,
    coordinate_median,
    cosine_micro,
    exact_ratio,
    median_int,
    round_ratio_times,
    squared_norm,
)
from cotrain.learning.rules import get_rule
from cotrain.learning.rules.registry import shares_of
from cotrain.protocol.round_record import Reason
from cotrain.protocol.task_spec import AggregationSpec


@dataclass(frozen=True)
class Judgement:
    """What the pipeline made of one update: its score and share of the aggregate in millionths."""

    reason: Reason
    score: int
    share: int
    reward_weight: int  # what its reward is proportional to


@dataclass(frozen=True)
class PipelineResult:
    """Judgements by lower-case contributor, and the fixed-point aggregate (None if nothing was accepted)."""

    judgements: dict[str, Judgement]
    aggregate: IntVector | None


@dataclass(frozen=True)
class _Candidate:
    contributor: str
    vector: IntVector  # empty once a streaming sum has taken it
    samples: int
    commit_order: int


class RoundPipeline:
    """Collects a round's integral updates one by one, then judges and aggregates them in :meth:`finish`."""

    def __init__(self, aggregation: AggregationSpec) -> None:
        self.aggregation = aggregation
        streams = get_rule(aggregation.rule).streams and not aggregation.screening.enabled
        self._streaming = WeightedSum() if streams else None
        self._candidates: list[_Candidate] = []

    def add(self, contributor: str, vector: IntVector, samples: int, commit_order: int) -> None:
        """Take one update that passed the integrity checks, as its fixed-point vector."""
        if self._streaming is not None:
            self._streaming.add(vector, samples)
            vector = vector[:0]
        self._candidates.append(_Candidate(contributor.lower(), vector, samples, commit_order))

    def finish(self) -> PipelineResult:
        """Judge every update added and aggregate the accepted ones."""
        candidates = sorted(self._candidates, key=lambda c: c.contributor)
        if not candidates:
            return PipelineResult({}, None)
        if self._streaming is not None:
            shares = shares_of([c.samples for c in candidates])
            judgements = {
                c.contributor: Judgement(Reason.OK, MICRO, share, reward_weight(c.samples, MICRO))
                for c, share in zip(candidates, shares, strict=True)
            }
            return PipelineResult(judgements, self._streaming.mean())
        if self.aggregation.screening.enabled:
            reasons, scores, accepted, clip = self._screen(candidates)
        else:
            reasons = {c.contributor: Reason.OK for c in candidates}
            scores = {c.contributor: MICRO for c in candidates}
            accepted, clip = candidates, None
        aggregate, shares_by = None, {}
        if accepted:
            vectors = [c.vector if clip is None else clip_to_norm(c.vector, clip) for c in accepted]
            result = get_rule(self.aggregation.rule).run(
                vectors, [c.samples for c in accepted], self.aggregation.params
            )
            aggregate = result.vector
            shares_by = dict(zip((c.contributor for c in accepted), result.shares, strict=True))
        judgements = {}
        for c in candidates:
            who = c.contributor
            score = scores.get(who, 0)
            ok = reasons[who] == Reason.OK
            judgements[who] = Judgement(
                reasons[who], score, shares_by.get(who, 0), reward_weight(c.samples, score) if ok else 0
            )
        return PipelineResult(judgements, aggregate)

    def _screen(
        self, candidates: list[_Candidate]
    ) -> tuple[dict[str, Reason], dict[str, int], list[_Candidate], int]:
        screening = self.aggregation.screening
        reasons = {c.contributor: Reason.OK for c in candidates}
        squares = {c.contributor: squared_norm(c.vector) for c in candidates}
        # Equal commit positions (only in tests and simulations) fall back to address order.
        by_commit = sorted(candidates, key=lambda c: c.commit_order)
        for who in near_duplicates(by_commit, squares, exact_ratio(screening.duplicate_distance)):
            reasons[who] = Reason.DUPLICATE
        left = [c for c in candidates if reasons[c.contributor] == Reason.OK]

        norms = {who: math.isqrt(square) for who, square in squares.items()}
        low = exact_ratio(screening.min_norm_ratio)
        median_norm = median_int([norms[c.contributor] for c in left]) if left else 0
        for c in left:
            size = norms[c.contributor]
            if size == 0 or size * low.denominator < low.numerator * median_norm:
                reasons[c.contributor] = Reason.FREE_RIDER
        # The upper bound and the clip come from the updates that are not free-riders, so that many
        # near-zero updates cannot pull the median down until honest updates look like outliers.
        left = [c for c in left if reasons[c.contributor] == Reason.OK]
        median_norm = median_int([norms[c.contributor] for c in left]) if left else 0
        high = exact_ratio(screening.max_norm_ratio)
        for c in left:
            if norms[c.contributor] * high.denominator > high.numerator * median_norm:
                reasons[c.contributor] = Reason.OUTLIER
        left = [c for c in left if reasons[c.contributor] == Reason.OK]

        scores: dict[str, int] = {}
        if left:
            reference = coordinate_median([c.vector for c in left])
            least = exact_ratio(screening.min_score)
            for c in left:
                scores[c.contributor] = cosine_micro(c.vector, reference)
                # The score as the record writes it (millionths) against the threshold's exact value.
                if scores[c.contributor] * least.denominator < least.numerator * MICRO:
                    reasons[c.contributor] = Reason.LOW_SCORE
        accepted = [c for c in left if reasons[c.contributor] == Reason.OK]
        return (
            reasons,
            scores,
            accepted,
            round_ratio_times(exact_ratio(screening.clip_norm_ratio), median_norm),
        )


def near_duplicates(
    by_commit: Sequence[_Candidate], squares: dict[str, int], tolerance: Fraction
) -> list[str]:
    """The contributors whose update is within ``tolerance`` relative distance of an earlier commit's.

    ``||a - b|| / max(||a||, ||b||) <= p / q`` is decided exactly as
    ``q**2 squared_norm(a - b) <= p**2 max(squared_norm(a), squared_norm(b))``, so two zero vectors are
    copies of each other. Every earlier update counts, copies included.
    """
    copies = []
    p2, q2 = tolerance.numerator**2, tolerance.denominator**2
    for position, later in enumerate(by_commit):
        for earlier in by_commit[:position]:
            scale = max(squares[later.contributor], squares[earlier.contributor])
            if q2 * squared_norm(later.vector - earlier.vector) <= p2 * scale:
                copies.append(later.contributor)
                break
    return copies


def reward_weight(samples: int, score: int) -> int:
    """``samples x max(score, 0)``, the score in millionths as the record writes it."""
    return samples * max(score, 0)
