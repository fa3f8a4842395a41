"""Gas of a one-coordinate fraud-proof check at 10, 100 and 1000 updates, for each per-coordinate rule.

The check is the harness's ``checkWeightedMean`` / ``checkMedian`` / ``checkTrimmedMean``: recompute one
coordinate of the aggregate from the n values (and weights) and compare it with a claimed value, the shape a
fraud proof takes once the values arrive with their Merkle proofs (not included here). Inputs are seeded
random 32-bit fixed-point coordinates, sample counts from 1 to 10,000, and the trimmed mean drops
``min(floor(0.2 n), (n - 1) // 2)`` at each end (the rule's default ``trim_fraction``). Gas is
``eth_estimateGas`` of the call: 21,000 + calldata + execution. The table goes to reports/coordinate_gas.json
and is printed (run with -s). The heapsort row is the selection's fallback on all n values, an upper
reference for inputs built to defeat the pivot.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from brownie import CoordinateRulesHarness, accounts
from cotrain.consensus import coordinate

SIZES = (10, 100, 1000)
SEED = 11
BLOCK_GAS_LIMIT = 30_000_000
REPORT = Path(__file__).resolve().parents[2] / "reports" / "coordinate_gas.json"


def calldata_gas(data: str) -> int:
    raw = bytes.fromhex(data[2:])
    zeros = raw.count(0)
    return 4 * zeros + 16 * (len(raw) - zeros)


def trim_of(n: int) -> int:
    return min(math.floor(0.2 * n), (n - 1) // 2)


@pytest.fixture(scope="module")
def harness():
    return CoordinateRulesHarness.deploy({"from": accounts[0]})


@pytest.fixture(scope="module")
def inputs():
    rng = random.Random(SEED)
    return {
        n: ([rng.randint(-(2**31), 2**31) for _ in range(n)], [rng.randint(1, 10_000) for _ in range(n)])
        for n in SIZES
    }


def checks(harness, values, weights):
    """(name, method, arguments with the right claim) of each rule's check."""
    n = len(values)
    return [
        (
            "weighted mean",
            harness.checkWeightedMean,
            (values, weights, coordinate.weighted_mean(values, weights)),
        ),
        ("median", harness.checkMedian, (values, coordinate.median(values))),
        (
            "trimmed mean (trim 20%)",
            harness.checkTrimmedMean,
            (values, trim_of(n), coordinate.trimmed_mean(values, trim_of(n))),
        ),
    ]


@pytest.fixture(scope="module")
def gas(harness, inputs):
    table: dict[str, dict[str, dict[str, int]]] = {"total": {}, "calldata": {}, "execution": {}}
    for n, (values, weights) in inputs.items():
        rows = [(name, method, args) for name, method, args in checks(harness, values, weights)]
        rows.append(("heapsort of all n (fallback)", harness.heapSort, (values,)))
        for name, method, args in rows:
            total = method.estimate_gas(*args)
            calldata = calldata_gas(method.encode_input(*args))
            for kind, value in (
                ("total", total),
                ("calldata", calldata),
                ("execution", total - 21_000 - calldata),
            ):
                table[kind].setdefault(name, {})[str(n)] = value
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(table, indent=2) + "\n")
    print(f"\ngas of a one-coordinate check (written to {REPORT}): total (execution)")
    print(f"  {'rule':<30}" + "".join(f"{n:>22}" for n in SIZES))
    for name, row in table["total"].items():
        cells = "".join(f"{row[str(n)]:>12,} ({table['execution'][name][str(n)]:>7,})" for n in SIZES)
        print(f"  {name:<30}{cells}")
    return table


@pytest.mark.parametrize("n", SIZES)
def test_checks_accept_the_right_claim_and_refuse_a_wrong_one(harness, inputs, n):
    values, weights = inputs[n]
    for name, method, args in checks(harness, values, weights):
        assert method(*args) is True, name
        assert method(*args[:-1], args[-1] + 1) is False, name


RULES = ("weighted mean", "median", "trimmed mean (trim 20%)")


def test_every_check_at_1000_updates_fits_a_block_many_times_over(gas):
    for name in RULES:
        assert gas["total"][name]["1000"] < BLOCK_GAS_LIMIT // 4, name


def test_selecting_is_cheaper_than_sorting(gas):
    for n in ("100", "1000"):
        for name in ("median", "trimmed mean (trim 20%)"):
            assert gas["execution"][name][n] < gas["execution"]["heapsort of all n (fallback)"][n] / 2


def test_the_selection_grows_about_linearly(gas):
    # Per value, execution at 1000 updates costs at most 1.3 times what it costs at 100; a sort's cost per
    # value grows about log2(1000) / log2(100) = 1.5 times (the heapsort row: 9,717 vs 6,444 gas per value).
    for name in RULES:
        row = gas["execution"][name]
        assert row["1000"] / 1000 <= 1.3 * row["100"] / 100, (name, row)
