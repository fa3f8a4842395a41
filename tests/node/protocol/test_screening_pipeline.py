"""Tests for cotrain.protocol.screening: the validator pipeline on crafted fixed-point updates.

Updates are int64 vectors of two (or a few) coordinates, either written as integers or quantized to q32.24
from float32 values, so every norm, median, cosine and mean below is checked by hand or against the
independent big-integer reference in ``exact_reference``.
"""

from __future__ import annotations

import math
from typing import Any

import exact_reference as ref
import numpy as np
import pytest
from cotrain.consensus.fixed_point import quantize
from cotrain.protocol.round_record import Reason
from cotrain.protocol.screening import PipelineResult, RoundPipeline, reward_weight
from cotrain.protocol.task_spec import AggregationSpec

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


def test_honest_updates_are_accepted_and_scored_by_cosine_to_the_median() -> None:
    result = _run(_spec(), HONEST)

    assert set(_reasons(result).values()) == {Reason.OK}
    # The median is (M, M); cos((M, R12), (M, M)) = (1 + r) / (sqrt(1 + r**2) sqrt(2)) with r = R12 / M
    # = 1.2000000476837158: 0.9958932047 -> 995893 millionths.
    scores = {who: j.score for who, j in result.judgements.items()}
    assert scores == {"0xa1": 995893, "0xa2": 995893, "0xa3": MICRO}
    assert scores["0xa1"] == ref.cosine_micro([M, R12], [M, M])
    assert result.judgements["0xa1"].reward_weight == 10 * 995893
    assert result.judgements["0xa3"].reward_weight == 10 * MICRO
    # fedavg with equal samples: the plain mean, rounded half to even.
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
    # 3.26 > 3 x 0.715; the outlier bound uses the median of the other three, 1.50, instead.
    updates = {
        "0xa1": _q(1.0, 1.0),
        "0xa2": _q(1.2, 0.9),
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
    result = _run(_spec(), {**HONEST, "0xb1": _q(-1.1, -1.1)})

    assert _reasons(result)["0xb1"] == Reason.LOW_SCORE
    # Each column of the four is (-1.1, 1, 1, 1.2) in some order: median (1 + 1) / 2 = 1, so the
    # reference is (M, M) and the flipped update's cosine is exactly -1.
    judgement = result.judgements["0xb1"]
    assert (judgement.score, judgement.share, judgement.reward_weight) == (-MICRO, 0, 0)
    assert _aggregate(result) == HONEST_MEAN


def test_min_score_is_compared_with_the_score_in_millionths() -> None:
    # The median of the four is ((M + R12) / 2, M) = (18454938, M); cos((R12, 0), (18454938, M))
    # = 18454938 / sqrt(18454938**2 + M**2) = 0.7399400807 -> 739940 millionths.
    updates = {**HONEST, "0xb1": _q(1.2, 0.0)}
    assert ref.coordinate_median(list(updates.values())) == [18454938, M]
    assert ref.cosine_micro([R12, 0], [18454938, M]) == 739940

    at = _run(_spec(min_score=0.73994), updates)
    above = _run(_spec(min_score=0.739941), updates)

    assert _reasons(at)["0xb1"] == Reason.OK and at.judgements["0xb1"].score == 739940
    assert _reasons(above)["0xb1"] == Reason.LOW_SCORE and above.judgements["0xb1"].score == 739940


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
