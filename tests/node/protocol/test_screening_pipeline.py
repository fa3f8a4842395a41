"""Tests for cotrain.protocol.screening: the validator pipeline on crafted fixed-point updates.

Updates are int64 vectors of two (or a few) coordinates, either written as integers or quantized to q32.24
from float32 values, so every norm, median, cosine and mean below is checked by hand or against the
independent big-integer reference in ``exact_reference``. The marginal-value properties (one voice per group
of near-copies, crafted averages and noise earning nothing, capped claims, peeling) are checked on seeded
rounds of a few dozen to a few thousand coordinates, against the same reference.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import exact_reference as ref
import numpy as np
import pytest
from cotrain.consensus.fixed_point import quantize
from cotrain.protocol.round_judge import NOT_SLASHED
from cotrain.protocol.round_record import Reason
from cotrain.protocol.screening import (
    Judgement,
    PipelineResult,
    RoundPipeline,
    marginal_scores,
    peeled_scores,
    reward_weight,
)
from cotrain.protocol.task_spec import AggregationSpec
from hypothesis import given, settings
from hypothesis import strategies as st

M = 2**24  # 1.0 in q32.24
MICRO = 10**6


def _spec(rule: str = "fedavg", params: dict[str, Any] | None = None, **screening: Any) -> AggregationSpec:
    return AggregationSpec.model_validate({"rule": rule, "params": params or {}, "screening": screening})


def _q(*values: float) -> np.ndarray:
    """float32 values quantized to q32.24."""
    return quantize(np.array(values, dtype=np.float32), 24, 32)


def _ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _run(
    spec: AggregationSpec,
    updates: dict[str, np.ndarray],
    samples: dict[str, int] | None = None,
    orders: dict[str, int] | None = None,
) -> PipelineResult:
    pipeline = RoundPipeline(spec)
    for i, (who, vector) in enumerate(updates.items()):
        pipeline.add(who, vector, (samples or {}).get(who, 10), (orders or {}).get(who, i))
    return pipeline.finish()


def _reasons(result: PipelineResult) -> dict[str, Reason]:
    return {who: j.reason for who, j in result.judgements.items()}


def _aggregate(result: PipelineResult) -> list[int]:
    assert result.aggregate is not None
    assert result.aggregate.dtype == np.int64
    return result.aggregate.tolist()


# Three honest updates near (1, 1). float32(1.2) = 10066330 / 2**23, so it quantizes to 20132660 exactly.
R12 = 20132660
HONEST = {"0xa1": _q(1.0, 1.2), "0xa2": _q(1.2, 1.0), "0xa3": _q(1.0, 1.0)}
# Their mean with equal samples: (2 M + R12) / 3 = 53687092 / 3 = 17895697.33 -> 17895697 per coordinate.
HONEST_MEAN = [17895697, 17895697]


def test_quantized_values_are_the_hand_computed_integers() -> None:
    assert [v.tolist() for v in HONEST.values()] == [[M, R12], [R12, M], [M, M]]
    assert ref.quantize([1.0, 1.2]) == [M, R12]


# Each honest update's leave-one-out reference (three updates: the others' median is their mean):
# 0xa1 -> ((R12 + M) / 2, M) = (18454938, M), 0xa2 -> (M, 18454938), 0xa3 -> (18454938, 18454938).
# With c = R12 - M = 3355444, 0xa1 - (R11, M) = (-c / 2, c) and 0xa3 - (R11, R11) = (-c / 2, -c / 2): the
# squared distances are 5 c**2 / 4, 5 c**2 / 4 and 2 c**2 / 4 (the others' mean is their median), and the
# squared spread S**2 is their median, 5 c**2 / 4.
R11 = 18454938  # (M + R12) / 2, which is also float32(1.1) in q32.24
HONEST_REFERENCES = [[R11, M], [M, R11], [R11, R11]]
HONEST_DISTANCES = [5 * 1677722**2, 5 * 1677722**2, 2 * 1677722**2]


def test_the_honest_references_and_spread_are_the_hand_computed_integers() -> None:
    vectors = [v.tolist() for v in HONEST.values()]

    assert ref.leave_one_out_medians(vectors) == HONEST_REFERENCES
    assert ref.spread(vectors) == (HONEST_DISTANCES, 5 * 1677722**2)


def test_honest_updates_are_accepted_and_scored_by_their_marginal_value() -> None:
    result = _run(_spec(), HONEST)

    assert set(_reasons(result).values()) == {Reason.OK}
    scores = {who: j.score for who, j in result.judgements.items()}
    # 0xa1: cos((1, r), (1.1, 1)) with r = R12 / M = 1.2000000476837158 is 0.9904596... -> 990460; its norm
    # is the median norm (size 1) and its distance the spread (novelty 1). 0xa2 mirrors it.
    assert scores["0xa1"] == scores["0xa2"] == ref.cosine_micro([M, R12], [R11, M]) == 990460
    # 0xa3 = (1, 1) points exactly along its reference (cos 1) but restates the others: novelty
    # (2 / 5) = 400000, and size |(1, 1)| / |(1, 1.2)| = sqrt(2 / 2.44) = 0.905357 (rounded down), so
    # 0.4 x 0.905357 = 0.3621428 -> 362143.
    median_norm = math.isqrt(M * M + R12 * R12)
    assert ref.floor_micro_sqrt(Fraction(2 * M * M, median_norm**2)) == 905357
    assert scores["0xa3"] == ref.div(MICRO * 905357 * 400000, MICRO * MICRO) == 362143
    assert list(scores.values()) == ref.marginal_scores([v.tolist() for v in HONEST.values()], median_norm)
    assert result.judgements["0xa1"].reward_weight == 10 * 990460
    assert result.judgements["0xa3"].reward_weight == 10 * 362143
    # fedavg with equal samples: the plain mean, rounded half to even; the score does not weigh in it.
    assert _aggregate(result) == HONEST_MEAN
    # Equal samples: 10**6 / 3 = 333333.3 -> 333333 each.
    assert [j.share for j in result.judgements.values()] == [333333] * 3


def test_contributors_are_judged_by_lower_case_address() -> None:
    result = _run(_spec(), {"0xA1": HONEST["0xa1"], "0xa2": HONEST["0xa2"], "0xA3": HONEST["0xa3"]})

    assert sorted(result.judgements) == ["0xa1", "0xa2", "0xa3"]


def test_an_exact_copy_committed_later_is_a_duplicate_and_the_original_keeps_its_reward() -> None:
    updates = {**HONEST, "0xc0": HONEST["0xa2"].copy()}

    later = _run(_spec(), updates, orders={"0xa1": 0, "0xa2": 1, "0xa3": 2, "0xc0": 3})
    earlier = _run(_spec(), updates, orders={"0xa1": 0, "0xa2": 3, "0xa3": 2, "0xc0": 1})

    assert _reasons(later)["0xc0"] == Reason.DUPLICATE and _reasons(later)["0xa2"] == Reason.OK
    assert _reasons(earlier)["0xa2"] == Reason.DUPLICATE and _reasons(earlier)["0xc0"] == Reason.OK
    assert later.judgements["0xc0"].reward_weight == 0
    assert later.judgements["0xc0"].share == 0
    # The copy is left out of the aggregate: the honest three's mean.
    assert _aggregate(later) == HONEST_MEAN


def test_a_near_copy_within_the_tolerance_is_a_duplicate_and_one_outside_is_not() -> None:
    # (1.2, 1.0) moved by 0.1 in one coordinate: relative distance 0.1 / |(1.2, 1.1)| = 0.061.
    updates = {**HONEST, "0xc0": _q(1.2, 1.1)}

    assert _reasons(_run(_spec(duplicate_distance=0.07), updates))["0xc0"] == Reason.DUPLICATE
    assert _reasons(_run(_spec(duplicate_distance=0.05), updates))["0xc0"] == Reason.OK


@pytest.mark.parametrize(
    ("later", "duplicate"),
    [
        # |(0, 10)| / max(90, 100) = 1/10 exactly: at the tolerance, so a copy.
        (_ints(0, 100 * M), True),
        # |(0, 11)| / 101 = 0.1089: beyond it.
        (_ints(0, 101 * M), False),
    ],
)
def test_the_duplicate_distance_is_compared_exactly(later: np.ndarray, duplicate: bool) -> None:
    result = _run(_spec(duplicate_distance=0.1), {"0xa1": _ints(0, 90 * M), "0xa2": later})

    assert (_reasons(result)["0xa2"] == Reason.DUPLICATE) is duplicate


def test_a_copy_of_a_copy_is_a_duplicate_too() -> None:
    # 0xa2 is within 9/100 of 0xa1; 0xa3 is 17/100 from 0xa1 but 8/91 from 0xa2, which counts too.
    updates = {"0xa1": _ints(0, 100 * M), "0xa2": _ints(0, 91 * M), "0xa3": _ints(0, 83 * M)}

    reasons = _reasons(_run(_spec(duplicate_distance=0.1), updates))

    assert reasons == {"0xa1": Reason.OK, "0xa2": Reason.DUPLICATE, "0xa3": Reason.DUPLICATE}


def test_a_scaled_update_is_an_outlier_and_a_zero_or_tiny_one_is_a_free_rider() -> None:
    updates = {**HONEST, "0xb1": _q(100.0, 120.0), "0xb2": _q(0.0, 0.0), "0xb3": _q(0.01, -0.02)}

    result = _run(_spec(), updates)

    # Norms 1.56, 1.56, 1.41 (honest), 156 (0xb1), 0, 0.022: the median of all six is (1.41 + 1.56) / 2, a
    # quarter of it 0.37, so 0xb2 and 0xb3 are free-riders; 0xb1 is above 10 x 1.56, the median of the rest.
    reasons = _reasons(result)
    assert reasons["0xb1"] == Reason.OUTLIER
    assert reasons["0xb2"] == reasons["0xb3"] == Reason.FREE_RIDER
    assert {reasons[w] for w in HONEST} == {Reason.OK}
    for who in ("0xb1", "0xb2", "0xb3"):
        assert (result.judgements[who].score, result.judgements[who].share) == (0, 0)
        assert result.judgements[who].reward_weight == 0
    # Only the honest three are aggregated.
    assert _aggregate(result) == HONEST_MEAN


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        # Norms 400, 400, 400 and the extra one; the median of the four is 400.
        (_ints(60, 80), Reason.OK),  # norm 100, exactly min_norm_ratio 0.25 x 400: not below it
        (_ints(60, 79), Reason.FREE_RIDER),  # isqrt(9841) = 99
        (_ints(2400, 3200), Reason.OK),  # norm 4000, exactly max_norm_ratio 10 x 400: not above it
        (_ints(2400, 3201), Reason.OK),  # isqrt(16006401) = 4000: norms are integer square roots
        (_ints(2400, 3203), Reason.OUTLIER),  # isqrt(16019209) = 4002
    ],
)
def test_the_norm_bounds_are_compared_exactly(extra: np.ndarray, reason: Reason) -> None:
    updates = {"0xa1": _ints(400, 0), "0xa2": _ints(0, 400), "0xa3": _ints(240, 320), "0xb1": extra}

    reasons = _reasons(_run(_spec(min_norm_ratio=0.25, max_norm_ratio=10.0), updates))

    assert reasons == {"0xa1": Reason.OK, "0xa2": Reason.OK, "0xa3": Reason.OK, "0xb1": reason}


def test_near_zero_updates_cannot_make_an_honest_update_an_outlier() -> None:
    # Norms 0.010, 0.012, 0.016 (free-riders), 1.41, 1.50, 3.26: the median of all six is 0.715, and
    # 3.26 > 3 x 0.715; the outlier bound uses the median of the other three, 1.50, instead. (0xa2 is
    # (1.5, 0), not closer to 0xa1: the squared distances to the others' median are 0.91, 2.6 and 4.21, so
    # 0.5 S = 0.81 and (1.2, 0.9), 0.22 from (1, 1), would be redundant.)
    updates = {
        "0xa1": _q(1.0, 1.0),
        "0xa2": _q(1.5, 0.0),
        "0xa3": _q(2.4, 2.2),
        "0xb1": _q(0.01, 0.0),
        "0xb2": _q(0.0, 0.012),
        "0xb3": _q(0.011, 0.011),
    }

    reasons = _reasons(_run(_spec(max_norm_ratio=3.0), updates))

    assert reasons == {
        **dict.fromkeys(("0xa1", "0xa2", "0xa3"), Reason.OK),
        **dict.fromkeys(("0xb1", "0xb2", "0xb3"), Reason.FREE_RIDER),
    }


def test_a_sign_flipped_update_gets_a_low_score_and_keeps_it_in_its_judgement() -> None:
    flipped = _q(-1.1, -1.1)
    result = _run(_spec(), {**HONEST, "0xb1": flipped})

    assert _reasons(result)["0xb1"] == Reason.LOW_SCORE
    # Each column of the honest three is (1, 1, 1.2) in some order: the flipped update's reference is (M, M)
    # and its cosine exactly -1. Its novelty is 1 (it lies far beyond the spread), and its size its norm over
    # the median norm of the four, (|0xb1| + |0xa1|) / 2: 1.5556 / 1.5588 = 0.997942 (rounded down).
    judgement = result.judgements["0xb1"]
    honest = [v.tolist() for v in HONEST.values()]
    assert ref.coordinate_median(honest) == [M, M]
    assert ref.cosine_micro(flipped.tolist(), [M, M]) == -MICRO
    median_norm = ref.div(ref.norm(flipped.tolist()) + ref.norm([M, R12]), 2)
    assert ref.median([ref.norm(v) for v in [*honest, flipped.tolist()]]) == median_norm
    assert ref.floor_micro_sqrt(Fraction(ref.dot(*[flipped.tolist()] * 2), median_norm**2)) == 997942
    assert (judgement.score, judgement.share, judgement.reward_weight) == (-997942, 0, 0)
    # Peeled off first, it leaves the honest three to be scored among themselves, as in a round without it
    # but for the median norm: 0xa3's size is |(1, 1)| / 1.5588 = 0.907220, so 0.4 x 0.907220 -> 362888.
    scores = {who: result.judgements[who].score for who in HONEST}
    assert scores == {"0xa1": 990460, "0xa2": 990460, "0xa3": 362888}
    assert list(scores.values()) == ref.marginal_scores(honest, median_norm)
    assert _aggregate(result) == HONEST_MEAN


def test_min_score_is_compared_with_the_score_in_millionths() -> None:
    # 0xb1 = (1.2, 0) among the honest three. Its reference, the others' column medians, is (M, M): cos
    # 1 / sqrt(2) -> 707107. Its squared distance to it, c**2 + M**2 (c = R12 - M), is far beyond the spread
    # (novelty 1). The norms are 1.2, 1.41, 1.56 and 1.56: median (1.41 + 1.56) / 2 -> 24966708, so its size
    # is R12 / 24966708 = 0.806380 (rounded down), and its score 0.707107 x 0.806380 = 0.5701966 -> 570197.
    updates = {**HONEST, "0xb1": _q(1.2, 0.0)}
    vectors = [v.tolist() for v in updates.values()]
    assert ref.leave_one_out_medians(vectors)[3] == [M, M]
    assert ref.cosine_micro([R12, 0], [M, M]) == 707107
    assert ref.median([ref.norm(v) for v in vectors]) == 24966708
    assert R12 * MICRO // 24966708 == 806380
    assert ref.div(707107 * 806380, MICRO) == 570197
    assert ref.marginal_scores(vectors, 24966708) == [983607, 663928, 630949, 570197]

    at = _run(_spec(min_score=0.570197), updates)
    above = _run(_spec(min_score=0.570198), updates)

    assert _reasons(at)["0xb1"] == Reason.OK and at.judgements["0xb1"].score == 570197
    assert _reasons(above)["0xb1"] == Reason.LOW_SCORE and above.judgements["0xb1"].score == 570197
    # Above it, 0xb1 is peeled off and the honest three are scored among themselves: 0xa3 = (1, 1) restates
    # the other two (cos 1, novelty 0.4, size 23726566 / 24966708 = 0.950328: 380131) and falls below
    # 0.570198 too. The last two, with no majority to measure against, are scored by the cosine to their
    # median (R11, R11): cos((1, r), (1, 1)) = (1 + r) / (sqrt(1 + r**2) sqrt(2)) = 0.9958932 -> 995893.
    assert 23726566 * MICRO // 24966708 == 950328
    assert ref.div(950328 * 400000, MICRO) == 380131
    assert ref.cosine_micro([M, R12], [R11, R11]) == 995893
    assert ref.peeled_scores(vectors, 24966708, Fraction(570198, MICRO)) == [995893, 995893, 380131, 570197]
    assert {who: (j.reason, j.score) for who, j in above.judgements.items()} == {
        "0xa1": (Reason.OK, 995893),
        "0xa2": (Reason.OK, 995893),
        "0xa3": (Reason.LOW_SCORE, 380131),
        "0xb1": (Reason.LOW_SCORE, 570197),
    }
    assert _aggregate(above) == ref.mean(vectors[:2])


def test_a_large_update_below_the_outlier_bound_is_clipped_to_the_clip_norm() -> None:
    # Norms 5k, 5k, 5k, 12.5k: median 5k; clip_norm_ratio 2 scales (12.5k, 0) to (10k, 0) before the mean.
    k = 2**20
    updates = {
        "0xa1": _ints(5 * k, 0),
        "0xa2": _ints(0, 5 * k),
        "0xa3": _ints(3 * k, 4 * k),
        "0xb1": _ints(25 * k // 2, 0),
    }

    result = _run(_spec(clip_norm_ratio=2.0), updates)

    assert set(_reasons(result).values()) == {Reason.OK}
    # ((5 + 0 + 3 + 10) k / 4, (0 + 5 + 4 + 0) k / 4) = (4.5 k, 2.25 k).
    assert _aggregate(result) == [9 * k // 2, 9 * k // 4]


def test_without_screening_fedavg_is_the_exact_weighted_mean() -> None:
    # Values at both ends of q32.24 and sample counts up to the market's uint64 maximum: every limb counts.
    rng = np.random.default_rng(3)
    updates = {f"0x{i:02x}": rng.integers(-(2**31), 2**31, size=5, dtype=np.int64) for i in range(6)}
    updates["0x06"] = _ints(2**31 - 1, -(2**31), 2**31 - 1, -(2**31), 0)  # nothing screens it out
    samples = {who: 3 + i for i, who in enumerate(updates)}
    samples["0x02"] = 2**64 - 1
    samples["0x04"] = 2**53 + 1

    result = _run(_spec(enabled=False), updates, samples=samples)

    vectors = [v.tolist() for v in updates.values()]
    assert _aggregate(result) == ref.weighted_mean(vectors, list(samples.values()))
    assert set(_reasons(result).values()) == {Reason.OK}
    total = sum(samples.values())
    for who, judgement in result.judgements.items():
        assert judgement.score == MICRO
        assert judgement.share == ref.share(samples[who], total)
        assert judgement.reward_weight == samples[who] * MICRO


def test_the_mean_rounds_half_to_even() -> None:
    # Samples 1 and 1: each coordinate is a sum over 2, so a half: 0.5 -> 0, 1.5 -> 2, -0.5 -> 0, -1.5 -> -2,
    # 2.5 -> 2.
    updates = {"0xa1": _ints(0, 1, 0, -1, 2), "0xa2": _ints(1, 2, -1, -2, 3)}

    result = _run(_spec(enabled=False), updates, samples={"0xa1": 1, "0xa2": 1})

    assert _aggregate(result) == [0, 2, 0, -2, 2]


@pytest.mark.parametrize(
    ("rule", "params", "updates", "expected"),
    [
        # Four updates: each column's median is the mean of its middle two, rounded half to even:
        # (2 + 3) / 2 = 2.5 -> 2, (3 + 4) / 2 = 3.5 -> 4, -2.5 -> -2, -3.5 -> -4.
        (
            "median",
            {},
            [(1, 3, -1, -3), (2, 4, -2, -4), (3, 0, -3, 0), (10, 100, -10, -100)],
            [2, 4, -2, -4],
        ),
        # Five updates: columns sorted (-50, 1, 2, 3, 10), (-20, 0, 4, 5, 7), (-100, 0, 1, 1, 100),
        # (-9, -2, -2, -1, 9): medians 2, 4, 1, -2.
        (
            "median",
            {},
            [(1, 4, 0, -1), (2, 0, 1, -2), (3, 5, 1, -2), (10, -20, 100, 9), (-50, 7, -100, -9)],
            [2, 4, 1, -2],
        ),
        # The same five, trim floor(0.2 x 5) = 1 at each end: (1 + 2 + 3) / 3 = 2, 9 / 3 = 3, 2 / 3 -> 1,
        # -5 / 3 -> -2.
        (
            "trimmed_mean",
            {"trim_fraction": 0.2},
            [(1, 4, 0, -1), (2, 0, 1, -2), (3, 5, 1, -2), (10, -20, 100, 9), (-50, 7, -100, -9)],
            [2, 3, 1, -2],
        ),
    ],
)
def test_coordinate_wise_rules(
    rule: str, params: dict[str, Any], updates: list[tuple[int, ...]], expected: list[int]
) -> None:
    vectors = {f"0xa{i}": _ints(*v) for i, v in enumerate(updates)}

    result = _run(_spec(rule, params, enabled=False), vectors)

    assert _aggregate(result) == expected
    n = len(updates)
    assert [j.share for j in result.judgements.values()] == [MICRO // n] * n
    assert {j.score for j in result.judgements.values()} == {MICRO}


def test_the_trim_is_the_exact_decimal_fraction_of_the_updates() -> None:
    # 0.29 x 100 is 28.999999999999996 in float64 but 29 exactly: trim 29 values at each end, not 28.
    assert math.floor(0.29 * 100) == 28
    vectors = [[i * i] for i in range(100)]
    updates = {f"0x{i:03x}": _ints(*v) for i, v in enumerate(vectors)}

    result = _run(_spec("trimmed_mean", {"trim_fraction": 0.29}, enabled=False), updates)

    # sum(i**2 for i in 29..70) / 42 = 109081 / 42 = 2597.2 -> 2597 (trim 28 would give 2612).
    assert _aggregate(result) == [2597] == ref.trimmed_mean(vectors, 29)
    assert ref.trimmed_mean(vectors, 28) == [2612]


def test_krum_picks_the_update_closest_to_its_neighbours() -> None:
    # (1, 1) is nearest the others; (9, 9) is far from all. f = floor(0.25 x 4) = 1, so each score is the
    # squared distance to the nearest other: 0xa1 and 0xa2 tie at (q(1.1) - M)**2, and the tie goes to the
    # lower index (address order), 0xa1.
    updates = {"0xa1": _q(1.0, 1.0), "0xa2": _q(1.1, 1.0), "0xa3": _q(1.0, 1.2), "0xa4": _q(9.0, 9.0)}
    q11 = 18454938  # float32(1.1) x 2**24 = 18454937.6 -> 18454938
    assert updates["0xa2"].tolist() == [q11, M]

    krum = _run(_spec("krum", {"byzantine_fraction": 0.25}, enabled=False), updates)
    multi = _run(_spec("multi_krum", {"byzantine_fraction": 0.25}, enabled=False), updates)

    assert _aggregate(krum) == [M, M]
    assert [krum.judgements[w].share for w in updates] == [MICRO, 0, 0, 0]
    # Multi-Krum keeps n - f = 3, the honest ones: ((2 M + q11) / 3, (2 M + R12) / 3).
    assert _aggregate(multi) == [17336457, 17895697]
    assert _aggregate(multi) == ref.weighted_mean([v.tolist() for v in list(updates.values())[:3]], [1, 1, 1])
    assert [multi.judgements[w].share for w in updates] == [333333, 333333, 333333, 0]
    # Judged as updates, all four are accepted: the rule decides only their share of the model.
    assert set(_reasons(multi).values()) == {Reason.OK}


@pytest.mark.parametrize(
    ("radius_ratio", "iterations", "expected"),
    [
        # Norms 30, 60, 240: median 60. A radius of 6000 clips nothing: one step from the median 60 moves
        # it by (-30 + 0 + 180) / 3 = 50, to the mean 110.
        (100.0, 1, 110),
        # Radius 0.75 x 60 = 45: differences -30, 0, 180 -> -30, 0, 45: 60 + 15 / 3 = 65; then -35, -5,
        # 175 -> -35, -5, 45: 65 + 5 / 3 (1.67 -> 2) = 67; then -37, -7, 173 -> 1 / 3 -> 0: 67.
        (0.75, 1, 65),
        (0.75, 3, 67),
    ],
)
def test_centered_clip(radius_ratio: float, iterations: int, expected: int) -> None:
    updates = {"0xa1": _ints(30), "0xa2": _ints(60), "0xa3": _ints(240)}
    params = {"radius_ratio": radius_ratio, "iterations": iterations}

    result = _run(_spec("centered_clip", params, enabled=False), updates)

    assert _aggregate(result) == [expected]


def test_nothing_accepted_gives_no_aggregate() -> None:
    result = _run(_spec(), {"0xa1": _ints(0, 0), "0xa2": _ints(0, 0)}, orders={"0xa1": 0, "0xa2": 1})

    assert result.aggregate is None
    assert _reasons(result) == {"0xa1": Reason.FREE_RIDER, "0xa2": Reason.DUPLICATE}
    assert all(j.share == j.reward_weight == 0 for j in result.judgements.values())


def test_an_empty_round_gives_no_judgements() -> None:
    assert _run(_spec(), {}) == PipelineResult({}, None)


def test_reward_weight() -> None:
    assert reward_weight(7, 250000) == 7 * 250000
    assert reward_weight(7, MICRO) == 7 * MICRO
    assert reward_weight(2**64 - 1, MICRO) == (2**64 - 1) * MICRO
    assert reward_weight(7, -500000) == 0
    assert reward_weight(7, 0) == 0


# ---------------------------------------------------------------- marginal value on seeded rounds


def _honest_round(seed: int, n: int, d: int = 30, noise: float = 1.0) -> dict[str, np.ndarray]:
    """``n`` honest-like updates ``g + noise x e_i`` (standard normal ``g`` and ``e_i``) in eighths, seeded.

    Addresses ``0xa00``, ``0xa01``, ... sort in the order the updates are drawn.
    """
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(d)
    return {
        f"0xa{i:02d}": np.round((g + noise * rng.standard_normal(d)) * M / 8).astype(np.int64)
        for i in range(n)
    }


def _lists(updates: dict[str, np.ndarray]) -> list[list[int]]:
    return [v.tolist() for v in updates.values()]


def _median_norm(updates: dict[str, np.ndarray]) -> int:
    return ref.median([ref.norm(v) for v in _lists(updates)])


def _jittered(vector: np.ndarray, relative: float, seed: int) -> np.ndarray:
    """``vector`` plus Gaussian noise of ``relative`` times its norm."""
    noise = np.random.default_rng(seed).standard_normal(vector.size)
    noise *= relative * float(np.linalg.norm(vector)) / float(np.linalg.norm(noise))
    return np.round(vector + noise).astype(np.int64)


def _with_norm(vector: np.ndarray, norm: int) -> np.ndarray:
    """``vector`` scaled to the integer norm ``norm`` exactly (its largest coordinate nudged to get there)."""
    scaled = np.round(vector * (norm / float(np.linalg.norm(vector)))).astype(np.int64)
    i = int(np.argmax(np.abs(scaled)))
    while ref.norm(scaled.tolist()) != norm:
        scaled[i] += int(np.sign(scaled[i])) * (1 if ref.norm(scaled.tolist()) < norm else -1)
    return scaled


def test_two_jittered_copies_share_one_voice() -> None:
    # Prepare: nine honest updates; A is the one of median norm, and A' is A plus 20% noise, scaled to the
    # same norm: then the median norm m' of the round (and with it every size and the clip) is the same with
    # and without A' (PROTOCOL.md 10.2: m' counts every update that is neither a duplicate nor a free-rider).
    honest = _honest_round(0, 9)
    m = _median_norm(honest)
    (a,) = [who for who, v in honest.items() if ref.norm(v.tolist()) == m]
    copy = _with_norm(_jittered(honest[a], 0.2, seed=1), m)
    gap = ref.squared_distance(copy.tolist(), honest[a].tolist())
    # Farther from A than duplicate_distance 0.1 (relative), nearer than redundancy_distance 0.5 x S.
    assert 100 * gap > m * m
    spread = ref.spread([*_lists(honest), copy.tolist()])[1]
    assert 4 * gap <= spread
    orders = {who: i for i, who in enumerate(honest)}

    # Execute
    with_copy = _run(_spec(), {**honest, "0xb00": copy}, orders={**orders, "0xb00": 9})
    without = _run(_spec(), honest, orders=orders)

    # Assert: one voice, scored 0, unpaid, left out of the aggregate, not slashed.
    assert with_copy.judgements["0xb00"] == Judgement(Reason.REDUNDANT, 0, 0, 0)
    assert Reason.REDUNDANT in NOT_SLASHED
    # Everyone else is judged exactly as in the round without A', where nobody is redundant.
    assert set(_reasons(without).values()) == {Reason.OK}
    assert {who: with_copy.judgements[who] for who in honest} == without.judgements
    assert _aggregate(with_copy) == _aggregate(without)
    # Those judgements are the reference's: the nine scored among themselves, paid for their 10 samples.
    scores = ref.marginal_scores(_lists(honest), m)
    assert [without.judgements[who].score for who in honest] == scores
    assert [without.judgements[who].reward_weight for who in honest] == [10 * s for s in scores]
    assert [without.judgements[who].share for who in honest] == [ref.share(1, 9)] * 9
    # Committed first, A' speaks for the two and A is the redundant one.
    earlier = _run(_spec(), {**honest, "0xb00": copy}, orders={**orders, "0xb00": -1})
    assert earlier.judgements[a] == Judgement(Reason.REDUNDANT, 0, 0, 0)
    assert earlier.judgements["0xb00"].reason == Reason.OK


def test_a_redundant_copy_still_counts_in_the_median_norm() -> None:
    # PROTOCOL.md 10.2: steps 3 to 5 (scores) use the median norm m' of the updates that are neither
    # duplicates nor free-riders, redundant ones included. A copy 1.3 times as long as the first update moves
    # m', so the voices keep their verdicts and aggregate but are sized against the m' of all ten.
    honest = _honest_round(0, 9)
    copy = _jittered(honest["0xa00"], 0.2, seed=1) * 13 // 10
    updates = {**honest, "0xb00": copy}
    assert _median_norm(updates) != _median_norm(honest)

    with_copy = _run(_spec(), updates)
    without = _run(_spec(), honest)

    assert with_copy.judgements["0xb00"] == Judgement(Reason.REDUNDANT, 0, 0, 0)
    assert _reasons(with_copy) == {**_reasons(without), "0xb00": Reason.REDUNDANT}
    assert _aggregate(with_copy) == _aggregate(without)
    scores = [with_copy.judgements[who].score for who in honest]
    assert scores == ref.marginal_scores(_lists(honest), _median_norm(updates))
    assert scores != [without.judgements[who].score for who in honest]


def test_a_crafted_average_of_the_others_scores_nothing() -> None:
    # Prepare: "A Little Is Enough" at z = 0, the others' mean as the pipeline rounds it.
    honest = _honest_round(2, 9, d=200)
    crafted = np.array(ref.mean(_lists(honest)), dtype=np.int64)

    # Execute
    result = _run(_spec(), {**honest, "0xb00": crafted})

    # Assert: its distance to the others' mean is 0, so is its novelty and its score; not below min_score 0,
    # it is accepted and weighs in the (unchanged) mean, but earns nothing.
    median_honest = ref.median([result.judgements[who].score for who in honest])
    judgement = result.judgements["0xb00"]
    assert judgement.score == 0 < median_honest // 20
    assert (judgement.reason, judgement.share, judgement.reward_weight) == (Reason.OK, ref.share(1, 10), 0)
    assert set(_reasons(result).values()) == {Reason.OK}
    assert min(result.judgements[who].score for who in honest) > 10 * median_honest // 20
    # (sum + round(sum / 9)) / 10 rounds to round(sum / 9): the aggregate is the honest mean.
    assert _aggregate(result) == ref.mean(_lists(honest))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gaussian_noise_of_the_honest_norm_scores_next_to_nothing(seed: int) -> None:
    honest = _honest_round(seed, 9, d=2000)
    noise = np.random.default_rng(100 + seed).standard_normal(2000)
    noise = _with_norm(noise, _median_norm(honest))

    result = _run(_spec(), {**honest, "0xb00": noise})

    # Its cosine to any reference is of the order 1 / sqrt(2000) = 0.022, an honest one's about 0.7.
    median_honest = ref.median([result.judgements[who].score for who in honest])
    judgement = result.judgements["0xb00"]
    assert judgement.score < median_honest // 20
    assert judgement.reason == (Reason.LOW_SCORE if judgement.score < 0 else Reason.OK)
    assert judgement.reward_weight == 10 * max(judgement.score, 0)
    assert {_reasons(result)[who] for who in honest} == {Reason.OK}


@pytest.mark.parametrize("d", [30, 100])
@pytest.mark.parametrize("seed", range(5))
def test_honest_updates_at_their_natural_spread_are_never_redundant(seed: int, d: int) -> None:
    honest = _honest_round(seed, 10, d=d)

    result = _run(_spec(), honest)

    assert set(_reasons(result).values()) == {Reason.OK}
    # Not by a hair: every pair is farther apart than 0.75 S (0.5 S makes a copy).
    vectors = _lists(honest)
    spread = ref.spread(vectors)[1]
    closest = min(ref.squared_distance(a, b) for i, a in enumerate(vectors) for b in vectors[:i])
    assert 16 * closest > 9 * spread


def test_an_inflated_claim_weighs_twice_the_median_claim_and_is_paid_for_the_median() -> None:
    # Prepare: eight honest-like updates; one claims 10**6 samples among claims of 10 to 30.
    updates = _honest_round(4, 8)
    claims = [10, 12, 15, 20, 25, 28, 30, 10**6]
    samples = dict(zip(updates, claims, strict=True))
    inflated = list(updates)[-1]

    # Execute
    result = _run(_spec(), updates, samples=samples)

    # Assert: the median claim is (20 + 25) / 2 = 22.5 -> 22 (half to even); the aggregate weighs each claim
    # up to 2 x 22 = 44, the reward pays for up to 22.
    assert ref.median(claims) == 22
    counted = [min(c, 44) for c in claims]
    assert counted == [10, 12, 15, 20, 25, 28, 30, 44]
    assert set(_reasons(result).values()) == {Reason.OK}
    assert result.judgements[inflated].share == ref.share(44, 184) == 239130
    assert [j.share for j in result.judgements.values()] == [ref.share(c, 184) for c in counted]
    assert _aggregate(result) == ref.weighted_mean(_lists(updates), counted)
    scores = [j.score for j in result.judgements.values()]
    assert scores == ref.marginal_scores(_lists(updates), _median_norm(updates))
    paid = [min(c, 22) for c in claims]
    assert paid == [10, 12, 15, 20, 22, 22, 22, 22]
    assert [j.reward_weight for j in result.judgements.values()] == [
        p * s for p, s in zip(paid, scores, strict=True)
    ]
    assert result.judgements[inflated].reward_weight == 22 * scores[-1]


def test_strongly_opposed_updates_are_peeled_off_and_every_honest_update_stays() -> None:
    # Prepare: seven honest updates and three large ones pointing against their mean (three times as long),
    # each with 15% noise of its own, so they are neither duplicates of each other nor outliers.
    honest = _honest_round(1, 7, d=20)
    mean = np.mean(np.stack(list(honest.values())), axis=0)
    opposed = {
        f"0xb{j:02d}": _jittered(np.round(-3 * mean).astype(np.int64), 0.15, seed=10 + j) for j in range(3)
    }
    updates = {**honest, **opposed}
    vectors = _lists(updates)
    m = _median_norm(updates)
    # Scored all together, they drag some honest update's leave-one-out median over: its score is negative,
    # and without peeling it would have been low_score.
    together = ref.marginal_scores(vectors, m)
    assert min(together[:7]) < 0
    assert max(together[7:]) < 0

    # Execute
    result = _run(_spec(), updates)

    # Assert: the opposed three are low_score with the scores they had when set aside, and the honest seven
    # are scored among themselves, all accepted.
    reasons = _reasons(result)
    assert {reasons[who] for who in opposed} == {Reason.LOW_SCORE}
    assert {reasons[who] for who in honest} == {Reason.OK}
    scores = [j.score for j in result.judgements.values()]
    assert scores == ref.peeled_scores(vectors, m, Fraction(0))
    assert scores[:7] == ref.marginal_scores(vectors[:7], m)
    assert all(result.judgements[who].share == result.judgements[who].reward_weight == 0 for who in opposed)
    assert _aggregate(result) == ref.mean(vectors[:7])


# ---------------------------------------------------------------- the scores against the reference

SMALL = st.integers(-12, 12)


@st.composite
def _small_round(draw: st.DrawFn) -> tuple[list[list[int]], int]:
    n, d = draw(st.integers(1, 7)), draw(st.integers(1, 4))
    pool = draw(st.lists(SMALL, min_size=1, max_size=3))  # repeated values: ties in the medians
    column = st.one_of(st.sampled_from(pool), SMALL)
    vectors = [draw(st.lists(column, min_size=d, max_size=d)) for _ in range(n)]
    return vectors, draw(st.one_of(st.just(0), st.integers(1, 40)))


@settings(max_examples=300, deadline=None)
@given(_small_round(), st.integers(-MICRO, MICRO - 1))
def test_marginal_and_peeled_scores_match_the_reference(
    case: tuple[list[list[int]], int], least: int
) -> None:
    vectors, median_norm = case
    arrays = [_ints(*v) for v in vectors]

    assert marginal_scores(arrays, median_norm) == ref.marginal_scores(vectors, median_norm)
    threshold = Fraction(least, MICRO)
    enough = lambda score: Fraction(score, MICRO) >= threshold  # noqa: E731
    assert peeled_scores(arrays, median_norm, enough) == ref.peeled_scores(vectors, median_norm, threshold)


@pytest.mark.parametrize("seed", range(4))
def test_marginal_scores_of_random_quantized_vectors_match_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = [_q(*rng.standard_normal(6)) for _ in range(int(rng.integers(3, 9)))]
    median_norm = ref.median([ref.norm(v.tolist()) for v in vectors])

    assert marginal_scores(vectors, median_norm) == ref.marginal_scores(
        [v.tolist() for v in vectors], median_norm
    )
