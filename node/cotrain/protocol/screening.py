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
3. ``low_score``: its score, the update's marginal value in millionths, is below ``min_score``. The score is
   ``cos x size x novelty`` (:func:`marginal_scores`): ``cos`` is the cosine similarity to the coordinate-wise
   median of the *other* updates (its leave-one-out reference: an update cannot vote for itself), ``size =
   min(1, ||x|| / m')`` (lengthening an update past the median norm earns nothing), and ``novelty = min(1,
   (d / S)**2)`` with ``d`` the distance to the nearer of the others' median and mean and ``S`` the round's
   spread, the median such distance: an update that restates the others ("A Little Is Enough" and other
   crafted averages) keeps a fraction of its credit. Updates below ``min_score`` are peeled off one at a
   time, lowest first, and the rest rescored (:func:`peeled_scores`), so that strongly opposed updates do not
   drag everyone's reference towards themselves.
4. ``redundant``: among the updates that passed step 3, within ``redundancy_distance`` times their spread
   ``S`` of an update committed earlier. Updates closer to each other than honest updates ever are (measured
   0.62 S on digits, 0.28 S on breast_cancer) are one voice, whatever noise they add to escape step 1; the
   earliest commit speaks for them. Not slashed: two honest parties may hold near-identical data.
5. The voices left are scored again among themselves (peeled again); below ``min_score`` is ``low_score``.

The updates left are accepted; those whose norm exceeds ``clip_norm_ratio`` times the second median norm
of step 2 (``m'``) are scaled down to it, and the spec's rule (from the registry in
:mod:`cotrain.learning.rules`) aggregates them, each weighing at most ``max_samples_ratio`` times the round's
median claimed sample count. An accepted update's reward weight is ``min(samples, median claim) x
max(score, 0)`` with the score as the record writes it, so rewards follow from the record's own numbers.
With fewer than three voices there is no majority to measure against: the reference is the median of all
voices and the novelty is 1. Without screening every integral update is accepted with score 1.

Every number is exact integer arithmetic (:mod:`cotrain.consensus.exact`): norms are integer square roots,
and every comparison with a spec ratio is a comparison of integer products with the ratio's exact decimal
value, so every validator and auditor reaches the same verdicts on any machine. Memory is O(model) for a rule
that streams (FedAvg) without screening (the sum is kept one update at a time) and O(updates x model)
otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from cotrain.consensus.exact import (
    MICRO,
    IntVector,
    WeightedSum,
    clip_to_norm,
    coordinate_median,
    cosine_micro,
    exact_ratio,
    leave_one_out_medians,
    median_int,
    round_half_even_div,
    round_half_even_div_array,
    round_ratio_times,
    squared_distance_matrix,
    squared_norm,
)
from cotrain.errors import IntegrityError
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
        claimed = {c.contributor: c.samples for c in candidates}
        counted, paid = claimed, paid_samples(self.aggregation, claimed)
        if self.aggregation.screening.enabled:
            reasons, scores, accepted, clip = self._screen(candidates)
            cap = samples_cap(self.aggregation.screening.max_samples_ratio, list(claimed.values()))
            counted = {who: min(samples, cap) for who, samples in claimed.items()}
        else:
            reasons = {c.contributor: Reason.OK for c in candidates}
            scores = {c.contributor: MICRO for c in candidates}
            accepted, clip = candidates, None
        aggregate, shares_by = None, {}
        if accepted:
            vectors = [c.vector if clip is None else clip_to_norm(c.vector, clip) for c in accepted]
            result = get_rule(self.aggregation.rule).run(
                vectors, [counted[c.contributor] for c in accepted], self.aggregation.params
            )
            aggregate = result.vector
            shares_by = dict(zip((c.contributor for c in accepted), result.shares, strict=True))
        judgements = {}
        for c in candidates:
            who = c.contributor
            score = scores.get(who, 0)
            ok = reasons[who] == Reason.OK
            judgements[who] = Judgement(
                reasons[who], score, shares_by.get(who, 0), reward_weight(paid[who], score) if ok else 0
            )
        return PipelineResult(judgements, aggregate)

    def _screen(
        self, candidates: list[_Candidate]
    ) -> tuple[dict[str, Reason], dict[str, int], list[_Candidate], int]:
        screening = self.aggregation.screening
        reasons = {c.contributor: Reason.OK for c in candidates}
        # Equal commit positions (only in tests and simulations) fall back to address order.
        by_commit = sorted(candidates, key=lambda c: c.commit_order)
        apart = pairwise_distances(by_commit)
        squares = {c.contributor: squared_norm(c.vector) for c in candidates}
        in_order = integer_array([squares[c.contributor] for c in by_commit])
        for who in later_near_copies(
            by_commit, candidates, duplicate_test(screening.duplicate_distance, in_order, apart)
        ):
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

        least = exact_ratio(screening.min_score)

        def enough(score: int) -> bool:
            # The score as the record writes it (millionths) against the threshold's exact value.
            return bool(score * least.denominator >= least.numerator * MICRO)

        # Updates that point away go first: left among the others, they would shift the spread and every
        # reference towards themselves. Then near-copies among the rest become one voice, and the voices are
        # scored among themselves.
        scores = dict(
            zip(who_of(left), peeled_scores([c.vector for c in left], median_norm, enough), strict=True)
        )
        passed = [c for c in left if enough(scores[c.contributor])]
        if len(passed) >= 3:
            spread = leave_one_out_spread([c.vector for c in passed])[2]
            close = redundancy_test(screening.redundancy_distance, spread, apart)
            for who in later_near_copies(by_commit, passed, close):
                reasons[who] = Reason.REDUNDANT
                del scores[who]
        voices = [c for c in passed if reasons[c.contributor] == Reason.OK]
        scores.update(
            zip(who_of(voices), peeled_scores([c.vector for c in voices], median_norm, enough), strict=True)
        )
        for c in left:
            if c.contributor in scores and not enough(scores[c.contributor]):
                reasons[c.contributor] = Reason.LOW_SCORE
        accepted = [c for c in voices if reasons[c.contributor] == Reason.OK]
        return (
            reasons,
            scores,
            accepted,
            round_ratio_times(exact_ratio(screening.clip_norm_ratio), median_norm),
        )


def pairwise_distances(candidates: Sequence[_Candidate]) -> npt.NDArray[Any]:
    """``squared_norm(a - b)`` of every pair of ``candidates``, in their order, as one matrix
    (:func:`~cotrain.consensus.exact.squared_distance_matrix`)."""
    return squared_distance_matrix([c.vector for c in candidates])


def who_of(candidates: Sequence[_Candidate]) -> list[str]:
    """The contributors of ``candidates``, in order."""
    return [c.contributor for c in candidates]


def later_near_copies(
    by_commit: Sequence[_Candidate], among: Sequence[_Candidate], close: npt.NDArray[np.bool_]
) -> list[str]:
    """The contributors in ``among`` whose update is ``close`` to one committed earlier in ``among``.

    ``close`` is a symmetric boolean matrix over ``by_commit``'s positions. Every earlier update counts,
    copies included, so a chain of near-copies is one group whose earliest commit keeps its verdict.
    """
    members = {c.contributor for c in among}
    positions = [i for i, c in enumerate(by_commit) if c.contributor in members]
    earlier = np.asarray(np.tril(close[np.ix_(positions, positions)], -1).any(axis=1))
    return [by_commit[i].contributor for i, copy in zip(positions, earlier.tolist(), strict=True) if copy]


def at_most(left: npt.NDArray[Any], ratio: Fraction, right: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """``left <= ratio**2 x right`` elementwise, decided exactly (non-negative integer arrays that
    broadcast; int64, or object arrays of Python ints)."""
    p2, q2 = ratio.numerator**2, ratio.denominator**2
    # In int64 when neither product can wrap around, else in Python ints.
    if _fits(left, q2) and _fits(right, p2):
        return np.asarray(q2 * left.astype(np.int64) <= p2 * right.astype(np.int64))
    return np.asarray(q2 * left.astype(object) <= p2 * right.astype(object), dtype=bool)


def integer_array(values: Sequence[int]) -> npt.NDArray[Any]:
    """Non-negative Python ints as an int64 array when they fit, else as an object array."""
    if all(v < 1 << 63 for v in values):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=object)


def _fits(values: npt.NDArray[Any], factor: int) -> bool:
    return factor < 1 << 63 and (values.size == 0 or int(values.max()) * factor < 1 << 63)


def duplicate_test(
    tolerance: float, squares: npt.NDArray[Any], apart: npt.NDArray[Any]
) -> npt.NDArray[np.bool_]:
    """Which pairs satisfy ``||a - b|| / max(||a||, ||b||) <= tolerance``, decided exactly.

    With ``tolerance = p / q`` that is ``q**2 squared_norm(a - b) <= p**2 max(squared_norm(a),
    squared_norm(b))``, so two zero vectors are copies of each other. ``squares`` holds each vector's
    squared norm, ``apart`` the squared distances, in one order.
    """
    return at_most(apart, exact_ratio(tolerance), np.maximum(squares[:, None], squares[None, :]))


def redundancy_test(tolerance: float, spread: int, apart: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Which pairs satisfy ``||a - b|| <= tolerance x S`` for the squared spread ``spread = S**2``, decided
    exactly."""
    return at_most(apart, exact_ratio(tolerance), np.array(spread, dtype=object))


def leave_one_out_spread(vectors: Sequence[IntVector]) -> tuple[list[IntVector], list[int], int]:
    """What the other vectors say about each one, and the round's spread (three vectors or more).

    Returns each vector's reference (the coordinate-wise median of the others), its squared distance to the
    nearer of that median and the others' mean, and the median of those squared distances: the squared
    spread ``S**2``. Two predictions, so that an update crafted from either statistic of the others (the
    consensus restated, "A Little Is Enough") sits at a fraction of the spread.
    """
    if len(vectors) < 3:
        raise IntegrityError(f"the spread needs three vectors, got {len(vectors)}")
    medians = leave_one_out_medians(vectors)
    total = np.sum(np.stack(vectors), axis=0)
    distances = []
    for vector, median in zip(vectors, medians, strict=True):
        mean = round_half_even_div_array(total - vector, len(vectors) - 1)
        distances.append(min(squared_norm(vector - median), squared_norm(vector - mean)))
    return medians, distances, median_int(distances)


def marginal_scores(vectors: Sequence[IntVector], median_norm: int) -> list[int]:
    """Each vector's score in millionths: ``round_half_even(cos x size x novelty / 10**12)``.

    - ``cos = cosine_micro(x_i, r_i)``, with ``r_i`` the coordinate-wise median of the other vectors;
    - ``size = min(10**6, isqrt(10**12 squared_norm(x_i) // median_norm**2))``: ``min(1, ||x_i|| / m)`` in
      millionths rounded down (``10**6`` when ``m`` is 0), so ``cos x size`` is the length of the vector's
      projection on its reference in units of the median norm, and lengthening an update past it earns
      nothing;
    - ``novelty = min(10**6, 10**6 d_i**2 // S**2)``: ``min(1, (d_i / S)**2)`` in millionths rounded down,
      with ``d_i**2`` and ``S**2`` from :func:`leave_one_out_spread` (``10**6`` when ``S`` is 0). Squared, so
      that an update at 0.6 of the spread (a crafted average with 15% noise of its own) keeps about a third
      of its credit.

    With fewer than three vectors ``r_i`` is the coordinate-wise median of all of them and novelty is 1.
    """
    if not vectors:
        return []
    if len(vectors) < 3:
        reference = coordinate_median(list(vectors))
        references, distances, spread = [reference] * len(vectors), [0] * len(vectors), 0
    else:
        references, distances, spread = leave_one_out_spread(vectors)
    square = median_norm * median_norm
    scores = []
    for vector, reference, distance in zip(vectors, references, distances, strict=True):
        size = (
            MICRO if square == 0 else min(MICRO, math.isqrt(MICRO * MICRO * squared_norm(vector) // square))
        )
        novelty = MICRO if spread == 0 else min(MICRO, MICRO * distance // spread)
        scores.append(round_half_even_div(cosine_micro(vector, reference) * size * novelty, MICRO * MICRO))
    return scores


def peeled_scores(vectors: Sequence[IntVector], median_norm: int, enough: Callable[[int], bool]) -> list[int]:
    """:func:`marginal_scores`, with the updates that fall short peeled off one at a time.

    While the lowest score among the remaining vectors is not ``enough``, that vector (the first in order
    on a tie) is set aside with the score it had, and the rest are scored again among themselves: updates
    pointing away from the others shift every leave-one-out reference towards themselves, and with them
    gone the references are the others' own again. Returns each vector's score, in order.
    """
    scores: list[int] = [0] * len(vectors)
    remaining = list(range(len(vectors)))
    while remaining:
        current = marginal_scores([vectors[i] for i in remaining], median_norm)
        for i, score in zip(remaining, current, strict=True):
            scores[i] = score
        worst = min(range(len(remaining)), key=current.__getitem__)
        if enough(current[worst]):
            break
        remaining.pop(worst)
    return scores


def samples_cap(ratio: float, claimed: Sequence[int]) -> int:
    """``ratio`` times the median of the ``claimed`` sample counts, rounded half to even, at least 1.

    Sample counts are claims nobody can check. An update weighs at most ``max_samples_ratio`` (default 2)
    times the median claim in the aggregate, and is paid for at most the median claim: inflating a claim
    buys a bounded weight in the model and nothing in the reward beyond a typical contributor's.
    """
    return max(1, round_ratio_times(exact_ratio(ratio), median_int(claimed)))


def paid_samples(aggregation: AggregationSpec, claimed: Mapping[str, int]) -> dict[str, int]:
    """The sample count each candidate (an update that passed the integrity checks) is paid for: its claim,
    capped at the median claim when screening is enabled."""
    if not aggregation.screening.enabled:
        return dict(claimed)
    cap = samples_cap(1, list(claimed.values()))
    return {who: min(samples, cap) for who, samples in claimed.items()}


#: The reasons screening gives; an update with any other reason never reached it.
SCREENED = frozenset(
    {Reason.OK, Reason.DUPLICATE, Reason.OUTLIER, Reason.FREE_RIDER, Reason.REDUNDANT, Reason.LOW_SCORE}
)


def reward_weight(samples: int, score: int) -> int:
    """``samples x max(score, 0)``, the score in millionths as the record writes it."""
    return samples * max(score, 0)
