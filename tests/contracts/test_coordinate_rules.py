"""Differential test: contracts/libraries/CoordinateRules.sol computes exactly what
cotrain.consensus.coordinate computes, on thousands of seeded random coordinates.

Cases are batched: one eth_call of the harness evaluates a few hundred coordinates (no transactions). The
generator mixes regimes that exercise different paths: tiny ranges (ties and every rounding case), the whole
range (-2**127, 2**127), only the extreme values, all-equal values, sorted and reversed inputs, fixed-point
sized values, and weights from 1 to 2**64 - 1; n is even and odd, from 1 to a few hundred.
"""

from __future__ import annotations

import random

import pytest
from brownie import CoordinateRulesHarness, accounts
from brownie.exceptions import VirtualMachineError
from cotrain.consensus import coordinate
from cotrain.consensus.coordinate import MAX_VALUES, VALUE_BOUND, WEIGHT_BOUND

TOP = VALUE_BOUND - 1
CASES = 3000  # per rule
BATCH = 250  # coordinates per eth_call
SEED = 20261125


@pytest.fixture(scope="module")
def harness():
    return CoordinateRulesHarness.deploy({"from": accounts[0]})


def random_values(rng: random.Random, n: int) -> list[int]:
    regime = rng.randrange(8)
    if regime == 0:  # ties and rounding
        return [rng.randint(-4, 4) for _ in range(n)]
    if regime == 1:
        return [rng.randint(-TOP, TOP) for _ in range(n)]
    if regime == 2:  # the bounds themselves
        return [rng.choice((TOP, -TOP, TOP - 1, -TOP + 1, 0)) for _ in range(n)]
    if regime == 3:
        return [rng.choice((TOP, -TOP, rng.randint(-9, 9)))] * n
    if regime == 4:
        return sorted(rng.randint(-100, 100) for _ in range(n))
    if regime == 5:
        return sorted((rng.randint(-100, 100) for _ in range(n)), reverse=True)
    if regime == 6:  # quantized update coordinates, a 32-bit fixed-point scale
        return [rng.randint(-(2**31), 2**31) for _ in range(n)]
    return [rng.randint(-(2**63), 2**63) * rng.choice((1, 2**60)) for _ in range(n)]


def random_weights(rng: random.Random, n: int) -> list[int]:
    regime = rng.randrange(4)
    if regime == 0:
        return [rng.randint(1, 3) for _ in range(n)]
    if regime == 1:
        return [rng.randint(1, WEIGHT_BOUND - 1) for _ in range(n)]
    if regime == 2:
        return [rng.choice((1, WEIGHT_BOUND - 1)) for _ in range(n)]
    return [rng.randint(1, 10_000)] * n


def random_count(rng: random.Random) -> int:
    return rng.randint(1, 300) if rng.random() < 0.05 else rng.randint(1, 24)


def batches(cases: list) -> list[list]:
    return [cases[i : i + BATCH] for i in range(0, len(cases), BATCH)]


def test_weighted_mean_agrees_with_python(harness):
    rng = random.Random(SEED)
    cases = []
    for _ in range(CASES):
        n = random_count(rng)
        cases.append((random_values(rng, n), random_weights(rng, n)))
    for batch in batches(cases):
        values, weights = [c[0] for c in batch], [c[1] for c in batch]
        got = harness.weightedMeans(values, weights)
        expected = [coordinate.weighted_mean(v, w) for v, w in batch]
        assert list(got) == expected


def test_median_agrees_with_python(harness):
    rng = random.Random(SEED + 1)
    cases = [random_values(rng, random_count(rng)) for _ in range(CASES)]
    assert sum(len(c) % 2 == 0 for c in cases) > CASES // 3  # both parities, plenty of each
    for batch in batches(cases):
        assert list(harness.medians(batch)) == [coordinate.median(v) for v in batch]


def test_trimmed_mean_agrees_with_python(harness):
    rng = random.Random(SEED + 2)
    cases = []
    for _ in range(CASES):
        values = random_values(rng, random_count(rng))
        most = (len(values) - 1) // 2
        trim = rng.choice((0, most, rng.randint(0, most), len(values) // 5))
        cases.append((values, min(trim, most)))
    for batch in batches(cases):
        got = harness.trimmedMeans([c[0] for c in batch], [c[1] for c in batch])
        assert list(got) == [coordinate.trimmed_mean(v, t) for v, t in batch]


def test_round_half_even_div_agrees_with_python(harness):
    rng = random.Random(SEED + 3)
    cases = [(a, b) for a in range(-7, 8) for b in (1, 2, 3, 4)]
    cases += [(rng.randint(-(2**250), 2**250), rng.randint(1, 2 ** rng.randint(1, 250))) for _ in range(60)]
    cases += [
        (2**255 - 1, 2),
        (-(2**255), 2),
        (-(2**255), 3),
        (2**255 - 1, 2**255 - 1),
        (-(2**255), 2**255 - 1),
    ]
    for a, b in cases:
        assert harness.roundHalfEvenDiv(a, b) == coordinate.round_half_even_div(a, b), (a, b)


def test_heap_sort_sorts(harness):
    """The selection's fallback, which random inputs rarely reach: checked on its own."""
    rng = random.Random(SEED + 4)
    for n in (0, 1, 2, 3, 10, 33, 200):
        for values in (random_values(rng, n), [rng.randint(-3, 3) for _ in range(n)]):
            assert list(harness.heapSort(values)) == sorted(values)


def test_the_largest_count_is_accepted_and_one_more_reverts(harness):
    pattern = [TOP, -TOP, 5]
    # The largest count needs more than a block (see BENCHMARKS.md), and building one more in memory does too,
    # whatever the node's block gas limit (brownie starts anvil with 12 M).
    big = {"gas": 500_000_000}
    assert harness.medianOfRepeats(pattern, MAX_VALUES, big) == coordinate.median(pattern * 21845 + [TOP])
    with pytest.raises(VirtualMachineError) as info:
        harness.medianOfRepeats(pattern, MAX_VALUES + 1, big)
    assert info.value.revert_msg == f"CoordinateRulesTooManyValues: {MAX_VALUES + 1}"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: h.median([]), "CoordinateRulesNoValues: "),
        (lambda h: h.trimmedMean([], 0), "CoordinateRulesNoValues: "),
        (lambda h: h.weightedMean([], []), "CoordinateRulesNoValues: "),
        (lambda h: h.median([0, VALUE_BOUND]), f"CoordinateRulesValueOutOfRange: 1, {VALUE_BOUND}"),
        (lambda h: h.median([-VALUE_BOUND]), f"CoordinateRulesValueOutOfRange: 0, {-VALUE_BOUND}"),
        (lambda h: h.median([-(2**255)]), f"CoordinateRulesValueOutOfRange: 0, {-(2**255)}"),
        (
            lambda h: h.trimmedMean([1, 2, VALUE_BOUND], 1),
            f"CoordinateRulesValueOutOfRange: 2, {VALUE_BOUND}",
        ),
        (
            lambda h: h.weightedMean([1, -VALUE_BOUND], [1, 1]),
            f"CoordinateRulesValueOutOfRange: 1, {-VALUE_BOUND}",
        ),
        (lambda h: h.weightedMean([1, 2], [1, 0]), "CoordinateRulesWeightOutOfRange: 1, 0"),
        (
            lambda h: h.weightedMean([1, 2], [WEIGHT_BOUND, 1]),
            f"CoordinateRulesWeightOutOfRange: 0, {WEIGHT_BOUND}",
        ),
        (lambda h: h.weightedMean([1, 2], [1]), "CoordinateRulesLengthMismatch: 2, 1"),
        (lambda h: h.trimmedMean([1, 2, 3, 4], 2), "CoordinateRulesTrimTooLarge: 4, 2"),
        (lambda h: h.trimmedMean([1], 2**255), f"CoordinateRulesTrimTooLarge: 1, {2**255}"),
        (lambda h: h.roundHalfEvenDiv(1, 0), "CoordinateRulesDivisorNotPositive: 0"),
        (lambda h: h.roundHalfEvenDiv(1, -3), "CoordinateRulesDivisorNotPositive: -3"),
    ],
)
def test_out_of_bound_inputs_revert(harness, call, message):
    with pytest.raises(VirtualMachineError) as info:
        call(harness)
    assert info.value.revert_msg == message
