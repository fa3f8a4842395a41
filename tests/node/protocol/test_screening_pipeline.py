"""Tests for cotrain.protocol.screening: the validator pipeline on crafted updates, results computed by hand.

The "model" is one 2- or 4-entry tensor, so every norm, median and cosine below can be checked by hand.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from cotrain.learning.aggregation import fedavg
from cotrain.protocol.round_record import Reason
from cotrain.protocol.screening import RoundPipeline, median_of, reward_weight
from cotrain.protocol.task_spec import AggregationSpec

LIKE = {"w": torch.zeros(2)}


def _spec(rule: str = "fedavg", params: dict[str, Any] | None = None, **screening: Any) -> AggregationSpec:
    return AggregationSpec.model_validate({"rule": rule, "params": params or {}, "screening": screening})


def _delta(*values: float) -> dict[str, torch.Tensor]:
    return {"w": torch.tensor(values, dtype=torch.float32)}


def _run(spec: AggregationSpec, updates: dict[str, tuple[float, ...]], samples=None, orders=None, **kw):
    pipeline = RoundPipeline(spec, {"w": torch.zeros(len(next(iter(updates.values()))))}, **kw)
    for i, (who, values) in enumerate(updates.items()):
        pipeline.add(who, _delta(*values), (samples or {}).get(who, 10), (orders or {}).get(who, i))
    return pipeline.finish()


def _reasons(result) -> dict[str, Reason]:
    return {who: j.reason for who, j in result.judgements.items()}


# Three honest updates near (1, 1); the median of the three is (1.0, 1.0) exactly.
HONEST = {"0xa1": (1.0, 1.2), "0xa2": (1.2, 1.0), "0xa3": (1.0, 1.0)}


def test_honest_updates_are_accepted_and_scored_by_cosine_to_the_median() -> None:
    result = _run(_spec(), HONEST)

    assert set(_reasons(result).values()) == {Reason.OK}
    # Median (1, 1): cos((1, 1.2), (1, 1)) = 2.2 / (sqrt(2.44) sqrt(2)), with 1.2 as float32 holds it.
    x = float(np.float32(1.2))
    expected = (1 + x) / (math.sqrt(1 + x * x) * math.sqrt(2))
    assert result.judgements["0xa1"].score == pytest.approx(expected, abs=1e-15)
    assert result.judgements["0xa3"].score == pytest.approx(1.0, abs=1e-15)
    assert result.judgements["0xa1"].reward_weight == 10 * round(expected * 10**6)
    # fedavg with equal samples: the plain mean (3.2/3, 3.2/3) in float32.
    assert result.delta["w"].tolist() == [np.float32(3.2 / 3), np.float32(3.2 / 3)]
    assert [j.weight for j in result.judgements.values()] == pytest.approx([1 / 3] * 3)


def test_an_exact_copy_committed_later_is_a_duplicate_and_the_original_keeps_its_reward() -> None:
    updates = {**HONEST, "0xc0": HONEST["0xa2"]}

    later = _run(_spec(), updates, orders={"0xa1": 0, "0xa2": 1, "0xa3": 2, "0xc0": 3})
    earlier = _run(_spec(), updates, orders={"0xa1": 0, "0xa2": 3, "0xa3": 2, "0xc0": 1})

    assert _reasons(later)["0xc0"] == Reason.DUPLICATE and _reasons(later)["0xa2"] == Reason.OK
    assert _reasons(earlier)["0xa2"] == Reason.DUPLICATE and _reasons(earlier)["0xc0"] == Reason.OK
    assert later.judgements["0xc0"].reward_weight == 0


def test_a_near_copy_within_the_tolerance_is_a_duplicate_and_one_outside_is_not() -> None:
    # (1.2, 1.0) moved by 0.1 in one coordinate: relative distance 0.1 / |(1.2, 1.1)| = 0.061.
    updates = {**HONEST, "0xc0": (1.2, 1.1)}

    assert _reasons(_run(_spec(duplicate_distance=0.07), updates))["0xc0"] == Reason.DUPLICATE
    assert _reasons(_run(_spec(duplicate_distance=0.05), updates))["0xc0"] == Reason.OK


def test_a_scaled_update_is_an_outlier_and_a_zero_or_tiny_one_is_a_free_rider() -> None:
    updates = {**HONEST, "0xb1": (100.0, 120.0), "0xb2": (0.0, 0.0), "0xb3": (0.01, -0.02)}

    result = _run(_spec(), updates)

    reasons = _reasons(result)
    assert reasons["0xb1"] == Reason.OUTLIER
    assert reasons["0xb2"] == reasons["0xb3"] == Reason.FREE_RIDER
    assert {reasons[w] for w in HONEST} == {Reason.OK}
    assert all(result.judgements[w].reward_weight == 0 for w in ("0xb1", "0xb2", "0xb3"))
    # Only the honest three are aggregated.
    assert result.delta["w"].tolist() == [np.float32(3.2 / 3), np.float32(3.2 / 3)]


def test_near_zero_updates_cannot_make_an_honest_update_an_outlier() -> None:
    # Norms 0.010, 0.012, 0.016 (free-riders), 1.41, 1.50, 3.26: the median of all six is 0.715, and
    # 3.26 > 3 x 0.715; the outlier bound uses the median of the other three, 1.50, instead.
    updates = {
        "0xa1": (1.0, 1.0),
        "0xa2": (1.2, 0.9),
        "0xa3": (2.4, 2.2),
        "0xb1": (0.01, 0.0),
        "0xb2": (0.0, 0.012),
        "0xb3": (0.011, 0.011),
    }

    reasons = _reasons(_run(_spec(), updates))

    assert reasons == {
        **dict.fromkeys(("0xa1", "0xa2", "0xa3"), Reason.OK),
        **dict.fromkeys(("0xb1", "0xb2", "0xb3"), Reason.FREE_RIDER),
    }


def test_a_sign_flipped_update_gets_a_low_score() -> None:
    result = _run(_spec(), {**HONEST, "0xb1": (-1.1, -1.1)})

    assert _reasons(result)["0xb1"] == Reason.LOW_SCORE
    # Median of (1, 1.2), (1.2, 1), (1, 1), (-1.1, -1.1) is (1, 1): cosine -1.
    assert result.judgements["0xb1"].score == pytest.approx(-1.0, abs=1e-15)


def test_min_score_bounds_the_cosine() -> None:
    # The median of the four is (1.1, 1); cos((1.2, 0), (1.1, 1)) = 1.1 / sqrt(2.21) = 0.73994.
    updates = {**HONEST, "0xb1": (1.2, 0.0)}

    assert _reasons(_run(_spec(min_score=0.739), updates))["0xb1"] == Reason.OK
    assert _reasons(_run(_spec(min_score=0.741), updates))["0xb1"] == Reason.LOW_SCORE


def test_a_large_update_below_the_outlier_bound_is_clipped_to_the_clip_norm() -> None:
    # Norms 1, 1, 1, 2.5: median 1; clip_norm_ratio 2 scales (2.5, 0) to (2, 0) before the mean.
    half = math.sqrt(0.5)
    updates = {"0xa1": (1.0, 0.0), "0xa2": (0.0, 1.0), "0xa3": (half, half), "0xb1": (2.5, 0.0)}

    result = _run(_spec(), updates)

    assert set(_reasons(result).values()) == {Reason.OK}
    assert result.delta["w"].tolist() == pytest.approx([(3 + half) / 4, (1 + half) / 4], abs=1e-7)


def test_the_loss_check_rejects_an_update_that_harms_the_held_out_loss() -> None:
    harm = {(1.0, 1.2): 0.1, (1.2, 1.0): 0.9, (1.0, 1.0): -0.2}

    def loss_increase(delta: dict[str, torch.Tensor]) -> float:
        return harm[tuple(round(v, 4) for v in delta["w"].tolist())]

    result = _run(_spec(max_loss_increase=0.5), HONEST, loss_increase=loss_increase)

    assert _reasons(result) == {"0xa1": Reason.OK, "0xa2": Reason.LOW_SCORE, "0xa3": Reason.OK}


def test_without_screening_fedavg_streams_and_matches_fedavg_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    deltas = {f"0x{i:02x}": tuple(rng.normal(size=4).tolist()) for i in range(6)}
    deltas["0xff"] = (1000.0, 0.0, 0.0, 0.0)  # nothing screens it out
    samples = {who: 3 + i for i, who in enumerate(deltas)}

    result = _run(_spec(enabled=False), deltas, samples=samples)

    expected = fedavg([_delta(*v) for v in deltas.values()], list(samples.values()))
    assert result.delta["w"].numpy().tobytes() == expected["w"].numpy().tobytes()
    assert set(_reasons(result).values()) == {Reason.OK}
    assert {j.reward_weight for j in result.judgements.values()} == set(samples.values())


@pytest.mark.parametrize(
    ("rule", "params", "expected"),
    [
        # Columns (1, 2, 3, 10) and (4, 0, 5, -20): medians (2.5, 2), trimmed (one each end) (2.5, 2).
        ("median", {}, [2.5, 2.0]),
        ("trimmed_mean", {"trim_fraction": 0.25}, [2.5, 2.0]),
    ],
)
def test_coordinate_wise_rules(rule: str, params: dict, expected: list[float]) -> None:
    updates = {"0xa1": (1.0, 4.0), "0xa2": (2.0, 0.0), "0xa3": (3.0, 5.0), "0xa4": (10.0, -20.0)}

    result = _run(_spec(rule, params, enabled=False), updates)

    assert result.delta["w"].tolist() == expected
    assert [j.weight for j in result.judgements.values()] == [0.25] * 4


def test_krum_picks_the_update_closest_to_its_neighbours() -> None:
    # (1, 1) is nearest the others; (9, 9) is far from all.
    updates = {"0xa1": (1.0, 1.0), "0xa2": (1.1, 1.0), "0xa3": (1.0, 1.2), "0xa4": (9.0, 9.0)}

    krum = _run(_spec("krum", {"byzantine_fraction": 0.25}, enabled=False), updates)
    multi = _run(_spec("multi_krum", {"byzantine_fraction": 0.25}, enabled=False), updates)

    assert krum.delta["w"].tolist() == [1.0, 1.0]
    assert [krum.judgements[w].weight for w in updates] == [1.0, 0.0, 0.0, 0.0]
    # Multi-Krum keeps n - f = 3: the mean of the three honest ones.
    assert multi.delta["w"].tolist() == pytest.approx([3.1 / 3, 3.2 / 3], abs=1e-7)
    assert multi.judgements["0xa4"].weight == 0.0
    # Judged as updates, all four are accepted: the rule decides only their weight in the model.
    assert set(_reasons(multi).values()) == {Reason.OK}


def test_centered_clip_with_a_large_radius_is_the_mean_after_one_step() -> None:
    updates = {"0xa1": (1.0, 4.0), "0xa2": (2.0, 0.0), "0xa3": (3.0, 5.0)}

    result = _run(_spec("centered_clip", {"radius_ratio": 100.0, "iterations": 1}, enabled=False), updates)

    assert result.delta["w"].tolist() == pytest.approx([2.0, 3.0], abs=1e-6)


def test_nothing_accepted_gives_no_delta() -> None:
    result = _run(_spec(), {"0xa1": (0.0, 0.0), "0xa2": (0.0, 0.0)}, orders={"0xa1": 0, "0xa2": 1})

    assert result.delta is None
    assert _reasons(result) == {"0xa1": Reason.FREE_RIDER, "0xa2": Reason.DUPLICATE}


def test_median_of_and_reward_weight() -> None:
    assert median_of([3.0, 1.0, 2.0]) == 2.0
    assert median_of([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert reward_weight(7, 0.25) == 7 * 250000
    assert reward_weight(7, 0.1234564) == 7 * 123456  # rounded at the sixth place, as the record writes it
    assert reward_weight(7, -0.5) == 0
