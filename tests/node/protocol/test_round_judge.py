"""Tests for cotrain.protocol.round_judge: the torch-free consensus core on a round small enough for a hand.

The base model is two float32 arrays, ``b`` (2 values) and ``w`` (2 x 2), so a flattened update is
``(b0, b1, w00, w01, w10, w11)``. The honest updates are multiples of 1/8, whose q32.24 integers are
multiples of 2**21, so the weighted mean and the new weights are exact and every number below is worked out
in the comments.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path
from typing import Any

import exact_reference as ref
import numpy as np
import pytest
from cotrain.errors import IntegrityError
from cotrain.learning.tensor_files import encode_update
from cotrain.protocol.round_judge import (
    NOT_SLASHED,
    Judged,
    RevealedUpdate,
    apply_aggregate,
    file_ref,
    flatten_arrays,
    judge,
    model_file,
)
from cotrain.protocol.round_record import Reason, UpdateEntry, parse_record
from cotrain.protocol.task_spec import TaskSpec, load_spec, validate_spec
from cotrain.protocol.update_binding import update_metadata

HERE = Path(__file__).resolve().parent
NODE = HERE.parents[2] / "node"
SPECS = NODE / "cotrain" / "protocol" / "specs"
TASK_ID = 11
ROUND = 1
EIGHTH = 2**21  # 1/8 in q32.24
MICRO = 10**6

BASE = {
    "w": np.array([[1.0, 2.0], [3.0, -4.0]], dtype=np.float32),
    "b": np.array([0.5, -0.25], dtype=np.float32),
}

HONEST_1 = "0x" + "11" * 20
HONEST_2 = "0x" + "22" * 20
HONEST_3 = "0x" + "33" * 20
FLIPPED = "0x" + "44" * 20
TOO_LARGE = "0x" + "55" * 20


def _delta(b: list[float], w: list[float]) -> dict[str, np.ndarray]:
    return {"b": np.array(b, dtype=np.float32), "w": np.array(w, dtype=np.float32).reshape(2, 2)}


def _eighths(*values: int) -> dict[str, np.ndarray]:
    return _delta([v / 8 for v in values[:2]], [v / 8 for v in values[2:]])


# (contributor, delta, samples). In eighths: 1: (1, 1, 1, 1, 1, 1); 2: (1, 2, 2, 1, 1, 1);
# 3: (2, 1, 1, 1, 2, 1); the flipped one is minus the first; the last holds 200.0, which q32.24 (|x| < 128)
# cannot.
TINY_ROUND: list[tuple[str, dict[str, np.ndarray], int]] = [
    (HONEST_1, _eighths(1, 1, 1, 1, 1, 1), 1),
    (HONEST_2, _eighths(1, 2, 2, 1, 1, 1), 1),
    (HONEST_3, _eighths(2, 1, 1, 1, 2, 1), 2),
    (FLIPPED, _eighths(-1, -1, -1, -1, -1, -1), 3),
    (TOO_LARGE, _delta([0.125, 200.0], [0.125] * 4), 4),
]
# Weighted by samples 1, 1, 2 (total 4), the accepted three average to (6, 5, 5, 4, 6, 4) / 4 eighths:
# (0.1875, 0.15625, 0.15625, 0.125, 0.1875, 0.125), all exact, added to (0.5, -0.25, 1, 2, 3, -4).
NEW_WEIGHTS = {"b": [0.6875, -0.09375], "w": [[1.15625, 2.125], [3.1875, -3.875]]}
NEW_WEIGHTS_ARRAYS = {name: np.array(values, dtype=np.float32) for name, values in NEW_WEIGHTS.items()}
# Scores (PROTOCOL.md section 11), in eighths. The norms are sqrt 6, sqrt 12, sqrt 12 and sqrt 6: the median
# norm m is (sqrt 6 + sqrt 12) / 2 and sqrt 6 / m = 2 / (1 + sqrt 2) = 0.828427 (rounded down).
# First all four: every column of the others of the flipped one is (1, 1, 2) or (1, 1, 1), so its reference
# is (1, ..., 1) and its cosine -1; its squared distance, 24, is far beyond the spread (the honest ones'
# distances are 0, 2 and 2, the median of the four 2), so its score is -1 x 0.828427 x 1: low_score, peeled.
# Then the honest three among themselves, each referred to the mean of the other two: 1 to
# (1.5, 1.5, 1.5, 1, 1.5, 1), 2 to (1.5, 1, 1, 1, 1.5, 1), 3 to (1, 1.5, 1.5, 1, 1, 1), at squared distances
# 1, 2.5 and 2.5: the spread S**2 = 2.5, novelties 0.4, 1 and 1. Cosines 8 / sqrt(6 x 11) = 0.9847319 ->
# 984732 and 9 / sqrt(12 x 8.5) = 0.8911328 -> 891133 for 2 and 3 (sizes 1). Scores: 0.984732 x 0.828427 x
# 0.4 = 0.3263114 -> 326311; 891133; 891133. The median claim of the four integral updates (1, 1, 2, 3) is
# 1.5 -> 2, so nobody's pay is capped: reward weights 326311, 891133 and 2 x 891133.
SCORES = [326311, 891133, 891133, -828427]
BUDGET = 326311 + 891133 + 2 * 891133  # so each reward is its weight exactly


def _spec(**aggregation: Any) -> TaskSpec:
    spec = load_spec(SPECS / "breast_cancer.yaml")
    if not aggregation:
        return spec
    data = spec.model_dump()
    data["aggregation"] = aggregation
    return validate_spec(data)


def judge_tiny_round(
    updates: list[tuple[str, dict[str, np.ndarray], int]] | None = None, spec: TaskSpec | None = None
) -> Judged:
    """Store and reveal ``updates`` (the tiny round by default) and judge them; a torch-free child runs it."""
    spec = spec or _spec()
    base = file_ref(model_file(TASK_ID, -1, BASE))
    files: dict[str, bytes] = {}
    revealed = []
    for order, (contributor, delta, samples) in enumerate(TINY_ROUND if updates is None else updates):
        data = encode_update(delta, update_metadata(TASK_ID, ROUND, contributor, base.digest, samples))
        ref_ = file_ref(data)
        files[ref_.cid] = data
        revealed.append(RevealedUpdate(contributor, ref_.cid, ref_.digest, samples, order))
    return judge(spec, TASK_ID, ROUND, BUDGET, base, BASE, revealed, lambda update: files[update.cid])


def _entries(judged: Judged) -> dict[str, UpdateEntry]:
    return {entry.contributor: entry for entry in judged.record.updates}


def _row(entry: UpdateEntry) -> tuple[Any, ...]:
    return (entry.verdict, entry.reason, entry.score, entry.weight, entry.reward, entry.slash)


def test_a_tiny_round_gives_the_hand_computed_record_and_model() -> None:
    spec = _spec()
    slash = spec.rewards.slash_rejected_wei

    judged = judge_tiny_round()

    assert {name: array.tolist() for name, array in judged.arrays.items()} == NEW_WEIGHTS
    assert list(judged.arrays) == ["b", "w"]
    assert all(array.dtype == np.float32 for array in judged.arrays.values())
    assert _row(_entries(judged)[HONEST_1]) == ("accepted", Reason.OK, "0.326311", "0.250000", 326311, 0)
    assert _row(_entries(judged)[HONEST_2]) == ("accepted", Reason.OK, "0.891133", "0.250000", 891133, 0)
    assert _row(_entries(judged)[HONEST_3]) == ("accepted", Reason.OK, "0.891133", "0.500000", 1782266, 0)
    # Pointing away from the consensus is not slashed (honest data may be skewed); its score stays.
    assert _row(_entries(judged)[FLIPPED]) == ("rejected", Reason.LOW_SCORE, "-0.828427", "0.000000", 0, 0)
    # A value q32.24 cannot hold: out_of_range, slashed, and left out of everything else.
    assert _row(_entries(judged)[TOO_LARGE]) == (
        "rejected",
        Reason.OUT_OF_RANGE,
        "0.000000",
        "0.000000",
        0,
        slash,
    )
    record = judged.record
    assert record.reward_total == BUDGET
    assert [(a.account, a.amount) for a in record.slash_allocations] == [(TOO_LARGE, slash)]
    assert record.aggregation.number_format == "q32.24"
    assert record.base_model == file_ref(model_file(TASK_ID, -1, BASE))
    assert record.new_model == file_ref(judged.model_file)
    assert judged.model_file == model_file(TASK_ID, ROUND, NEW_WEIGHTS_ARRAYS)
    assert parse_record(judged.record_file) == record
    assert judged.record_ref == file_ref(judged.record_file)


def test_the_hand_computed_numbers_agree_with_the_reference() -> None:
    vectors = [ref.quantize(ref.flat(delta)) for _, delta, _ in TINY_ROUND[:4]]
    assert vectors[0] == [EIGHTH] * 6
    e = EIGHTH // 2  # halves of eighths
    # The flipped one's reference, the distances and the median norm of the four.
    assert ref.leave_one_out_medians(vectors)[3] == [EIGHTH] * 6
    assert ref.spread(vectors) == ([0, 2 * EIGHTH**2, 2 * EIGHTH**2, 24 * EIGHTH**2], 2 * EIGHTH**2)
    median_norm = ref.median([ref.norm(v) for v in vectors])
    assert ref.floor_micro_sqrt(Fraction(6 * EIGHTH**2, median_norm**2)) == 828427
    # The honest three's references, distances and cosines.
    assert ref.leave_one_out_medians(vectors[:3]) == [
        [3 * e, 3 * e, 3 * e, 2 * e, 3 * e, 2 * e],
        [3 * e, 2 * e, 2 * e, 2 * e, 3 * e, 2 * e],
        [2 * e, 3 * e, 3 * e, 2 * e, 2 * e, 2 * e],
    ]
    assert ref.spread(vectors[:3]) == ([4 * e * e, 10 * e * e, 10 * e * e], 10 * e * e)
    assert ref.cosine_micro(vectors[0], [3, 3, 3, 2, 3, 2]) == 984732
    assert ref.cosine_micro(vectors[1], [3, 2, 2, 2, 3, 2]) == 891133
    assert ref.div(984732 * 828427 * 400000, MICRO * MICRO) == SCORES[0]
    assert ref.marginal_scores(vectors[:3], median_norm) == SCORES[:3]
    assert ref.peeled_scores(vectors, median_norm, Fraction(0)) == SCORES
    mean = ref.weighted_mean(vectors[:3], [1, 1, 2])
    assert ref.apply(ref.flat(BASE), mean) == ref.flat(NEW_WEIGHTS)
    with pytest.raises(OverflowError):
        ref.quantize(ref.flat(TINY_ROUND[4][1]))


def test_only_the_out_of_range_update_is_left_out_when_it_would_pass_screening_otherwise() -> None:
    # The round judges exactly as if the out-of-range update had never been revealed, bar its own entry.
    with_it = judge_tiny_round()
    without = judge_tiny_round(TINY_ROUND[:4])

    assert with_it.model_file == without.model_file
    entries, others = _entries(with_it), _entries(without)
    assert {who: _row(entries[who]) for who in others} == {who: _row(e) for who, e in others.items()}


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        (-128.0, True),  # -2**31: the least 32-bit integer
        (float(np.float32(128 - 2**-17)), True),  # the float32 below 128: 2**31 - 2**7
        (128.0, False),  # 2**31
        (-128.0 - 2**-16, False),  # the float32 below -128: -2**31 - 2**8
    ],
)
def test_the_q32_24_range_ends_at_128(value: float, fits: bool) -> None:
    spec = _spec(rule="fedavg", screening={"enabled": False})
    updates = [
        (HONEST_1, _delta([0.0, 0.0], [0.0] * 4), 1),
        (TOO_LARGE, _delta([value, 0.0], [0.0] * 4), 1),
    ]

    judged = judge_tiny_round(updates, spec)

    entry = _entries(judged)[TOO_LARGE]
    assert (entry.verdict, entry.reason) == (
        ("accepted", Reason.OK) if fits else ("rejected", Reason.OUT_OF_RANGE)
    )
    # Accepted, the two average to value / 2 on b0 (q32.24 halves it exactly); rejected, the zero update is
    # the whole aggregate.
    assert judged.arrays["b"][0] == np.float32(0.5 + (value / 2 if fits else 0.0))


def test_the_mean_rounds_half_to_even_and_reaches_the_model() -> None:
    # Samples 1 and 1. b0: -128 and the float32 below 128 average to (-2**31 + 2**31 - 2**7) / 2 = -64, i.e.
    # -2**-18. b1: 2 and 3 (x 2**-24) average to 2.5 -> 2. w00: -1 and -2 average to -1.5 -> -2. The new
    # weights 0.5 - 2**-18, -0.25 + 2**-23 and 1 - 2**-23 are exact in float32.
    spec = _spec(rule="fedavg", screening={"enabled": False})
    below = float(np.float32(128 - 2**-17))
    tick = 2**-24
    updates = [
        (HONEST_1, _delta([-128.0, 2 * tick], [-tick, 0.0, 0.0, 0.0]), 1),
        (HONEST_2, _delta([below, 3 * tick], [-2 * tick, 0.0, 0.0, 0.0]), 1),
    ]

    judged = judge_tiny_round(updates, spec)

    assert judged.arrays["b"].tolist() == [0.5 - 2**-18, -0.25 + 2**-23]
    assert judged.arrays["w"].tolist() == [[1 - 2**-23, 2.0], [3.0, -4.0]]


def test_a_jittered_copy_is_redundant_and_not_slashed() -> None:
    # HONEST_2 with w01 at 1.5 eighths instead of 2: 0.5 eighths from it, a relative distance of
    # 0.5 / sqrt 12 = 0.144 (no duplicate), within 0.5 x the spread of the four that pass (redundant).
    copy = ("0x" + "66" * 20, _delta([0.125, 0.25], [0.25, 0.1875, 0.125, 0.125]), 1)
    slash = _spec().rewards.slash_rejected_wei

    judged = judge_tiny_round([*TINY_ROUND, copy])

    entries = _entries(judged)
    assert _row(entries[copy[0]]) == ("rejected", Reason.REDUNDANT, "0.000000", "0.000000", 0, 0)
    assert [(a.account, a.amount) for a in judged.record.slash_allocations] == [(TOO_LARGE, slash)]
    # One voice: the same three updates make the same model.
    assert judged.model_file == judge_tiny_round().model_file
    # But the copy still counts where every integral update that is no duplicate or free-rider does: the
    # median norm m' is now sqrt 12 (of sqrt 6, sqrt 6, sqrt 12, sqrt 12, sqrt 13.25), so HONEST_1's size is
    # sqrt(1 / 2) = 0.707106 (rounded down) and its score 0.984732 x 0.707106 x 0.4 = 0.2785240 -> 278524;
    # and the median claim of (1, 1, 2, 3, 1) is 1, so HONEST_3 is paid for one sample, not two.
    assert [entries[who].score for who in (HONEST_1, HONEST_2, HONEST_3)] == [
        "0.278524",
        "0.891133",
        "0.891133",
    ]
    weights = [278524, 891133, 891133]
    for who, weight in zip((HONEST_1, HONEST_2, HONEST_3), weights, strict=True):
        exact = BUDGET * weight // sum(weights)
        assert exact <= entries[who].reward <= exact + 1
    assert judged.record.reward_total == BUDGET


def test_not_slashed_is_unavailable_redundant_and_low_score() -> None:
    assert frozenset({Reason.UNAVAILABLE, Reason.REDUNDANT, Reason.LOW_SCORE}) == NOT_SLASHED


# ---------------------------------------------------------------- apply_aggregate


def _bits(values: np.ndarray) -> list[int]:
    return np.asarray(values, dtype=np.float32).view(np.uint32).tolist()


def test_apply_aggregate_rounds_the_float64_sum_to_float32_half_to_even() -> None:
    base = {"x": np.array([1.0, 1.0, 1.0, 1.0, 2.0**30, -0.0, 3.0], dtype=np.float32)}
    aggregate = np.array([1, 2, 3, -1, 64 * 2**24 + 1, 0, -(3 * 2**24)], dtype=np.int64)

    new = apply_aggregate(base, aggregate, 24)

    expected = [
        1.0,  # 1 + 2**-24: halfway between 1 and 1 + 2**-23 (float32's step above 1), to the even one
        1 + 2**-23,  # exact
        1 + 2**-22,  # 1 + 3 x 2**-24: halfway between 1 + 2**-23 (odd) and 1 + 2**-22 (even)
        1 - 2**-24,  # below 1 float32's step is 2**-24: exact
        # 2**30 + 64 + 2**-24: float64 (step 2**-22 there) rounds to 2**30 + 64, halfway between the float32
        # neighbours 2**30 and 2**30 + 128, so 2**30; rounding the exact sum once would give 2**30 + 128.
        2.0**30,
        0.0,  # -0 + 0 is +0 in IEEE 754: the sign bit is cleared
        0.0,  # 3 - 3
    ]
    assert _bits(new["x"]) == _bits(np.array(expected, dtype=np.float32))
    assert new["x"].dtype == np.float32
    assert _bits(new["x"]) == _bits(np.array(ref.apply(base["x"].tolist(), aggregate.tolist())))


def test_apply_aggregate_lays_the_aggregate_out_in_sorted_name_order() -> None:
    base = {"b": np.zeros((2, 2), dtype=np.float32), "a": np.array([0.5], dtype=np.float32)}
    aggregate = np.array([2**24, 1, 2, 3, 2**25], dtype=np.int64)

    new = apply_aggregate(base, aggregate, 24)

    assert list(new) == ["a", "b"]
    assert new["a"].tolist() == [1.5]
    assert new["b"].tolist() == [[2**-24, 2 * 2**-24], [3 * 2**-24, 2.0]]
    assert flatten_arrays(base).tolist() == [0.5, 0.0, 0.0, 0.0, 0.0]
    assert base["b"].tolist() == [[0.0, 0.0], [0.0, 0.0]], "the base must not change"


@pytest.mark.parametrize("length", [4, 6])
def test_apply_aggregate_refuses_an_aggregate_of_another_length(length: int) -> None:
    base = {"a": np.zeros(5, dtype=np.float32)}

    with pytest.raises(IntegrityError, match=f"the aggregate has {length} values but the model holds 5"):
        apply_aggregate(base, np.zeros(length, dtype=np.int64), 24)


# ---------------------------------------------------------------- torch-free

_CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is blocked in this process ({name})")
            return None

    sys.meta_path.insert(0, NoTorch())
    try:
        import torch
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker let torch in")
    sys.path.insert(0, sys.argv[1])

    import cotrain.protocol.round_judge
    import test_round_judge as tiny

    judged = tiny.judge_tiny_round()
    assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules)
    print(json.dumps({
        "record": judged.record_file.hex(),
        "model": judged.model_file.hex(),
        "arrays": {name: array.tolist() for name, array in judged.arrays.items()},
    }))
    """
)


def test_judge_runs_without_torch() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NODE), os.environ.get("PYTHONPATH", "")])}

    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(HERE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout)
    assert child["arrays"] == NEW_WEIGHTS
    here = judge_tiny_round()
    assert bytes.fromhex(child["record"]) == here.record_file
    assert bytes.fromhex(child["model"]) == here.model_file
    assert hashlib.sha256(bytes.fromhex(child["model"])).digest() == here.record.new_model.digest
