"""Tests for cotrain.protocol.rewards: exact budget splits, slash lists and the roots the market checks."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
from cotrain.protocol.merkle import ALLOCATION_TYPES, Allocation, allocation_tree, leaf_hash, verify
from cotrain.protocol.rewards import (
    EMPTY_ROOT,
    RewardTree,
    allocate_rewards,
    allocation_proof,
    check_order,
    reward_tree,
    rewards_root,
    slash_allocations,
)
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Addresses in ascending order, so the tie rule (lower address first) is easy to read off.
A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
C = "0x" + "cc" * 20
D = "0x" + "dd" * 20
ETHER = 10**18


def _amounts(allocations: list[Allocation]) -> dict[str, int]:
    return {allocation.account.lower(): allocation.amount for allocation in allocations}


def _account(n: int) -> str:
    return to_checksum_address(keccak(f"contributor-{n}".encode())[-20:])


def test_equal_weights_give_the_left_over_wei_to_the_lowest_address() -> None:
    # Prepare: 10 wei over three equal weights is 3.33.. each; one wei is left over after the floors.
    weights = [(C, 1), (A, 1), (B, 1)]

    # Execute
    allocations = allocate_rewards(10, weights)

    # Assert: equal remainders, so the lowest address (A) takes it.
    assert _amounts(allocations) == {A: 4, B: 3, C: 3}
    assert [allocation.account.lower() for allocation in allocations] == [A, B, C]


def test_exact_shares_need_no_rounding() -> None:
    allocations = allocate_rewards(100, [(A, 1), (B, 2), (C, 3), (D, 4)])

    assert _amounts(allocations) == {A: 10, B: 20, C: 30, D: 40}


def test_largest_remainders_win_the_left_over_wei() -> None:
    # 7 over 2:1:1 is 3.5, 1.75, 1.75: floors 3, 1, 1 leave 2 wei for the two 0.75 remainders.
    allocations = allocate_rewards(7, [(A, 2), (B, 1), (C, 1)])

    assert _amounts(allocations) == {A: 3, B: 2, C: 2}


def test_one_wei_goes_to_the_lowest_address_and_the_rest_are_left_out() -> None:
    allocations = allocate_rewards(1, [(C, 5), (B, 5), (A, 5)])

    assert _amounts(allocations) == {A: 1}


def test_float_weights_are_taken_exactly() -> None:
    # 0.2 is exactly twice 0.1 in binary, so 3 wei split 1:2 with nothing left over.
    allocations = allocate_rewards(3, [(A, 0.1), (B, 0.2)])

    assert _amounts(allocations) == {A: 1, B: 2}


def test_ints_and_floats_mix() -> None:
    allocations = allocate_rewards(ETHER, [(A, 1), (B, 0.5), (C, 2.5)])

    assert _amounts(allocations) == {A: ETHER // 4, B: ETHER // 8, C: 5 * ETHER // 8}


def test_zero_weights_get_nothing_and_leave_no_leaf() -> None:
    allocations = allocate_rewards(10, [(A, 0), (B, 3), (C, 0.0)])

    assert _amounts(allocations) == {B: 10}


@pytest.mark.parametrize(
    ("budget", "weights"),
    [(10, []), (10, [(A, 0), (B, 0)]), (0, [(A, 1), (B, 2)])],
    ids=["no accounts", "all zero", "zero budget"],
)
def test_nothing_to_pay_gives_no_allocations(budget: int, weights: list[tuple[str, int]]) -> None:
    assert allocate_rewards(budget, weights) == []


def test_largest_budget_is_split_exactly() -> None:
    budget = 2**256 - 1

    allocations = allocate_rewards(budget, [(A, 1), (B, 1), (C, 1)])

    assert sum(allocation.amount for allocation in allocations) == budget
    assert _amounts(allocations) == {A: budget // 3, B: budget // 3, C: budget // 3}


def test_accounts_come_back_checksummed() -> None:
    account = _account(1)

    allocations = allocate_rewards(5, [(account.lower(), 1)])

    assert allocations == [Allocation(account, 5)]
    assert allocations[0].account == account


@pytest.mark.parametrize(
    ("budget", "weights", "message"),
    [
        (-1, [(A, 1)], "budget_wei must be an int"),
        (2**256, [(A, 1)], "budget_wei must be an int"),
        (1.5, [(A, 1)], "budget_wei must be an int"),
        (True, [(A, 1)], "budget_wei must be an int"),
        (10, [(A, -1)], "finite and non-negative"),
        (10, [(A, math.nan)], "finite and non-negative"),
        (10, [(A, math.inf)], "finite and non-negative"),
        (10, [(A, True)], "must be an int or float"),
        (10, [(A, "1")], "must be an int or float"),
        (10, [(A, 1), (A.upper().replace("0X", "0x"), 2)], "appears twice"),
        (10, [("alice", 1)], "not a 0x-prefixed"),
        (10, [("0x" + "aa" * 19, 1)], "not a 0x-prefixed"),
        (10, [(_account(1).swapcase().replace("0X", "0x"), 1)], "invalid EIP-55 checksum"),
    ],
)
def test_bad_inputs_are_refused(budget: int, weights: list[tuple[str, float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        allocate_rewards(budget, weights)


def test_slash_allocations_are_sorted_and_equal() -> None:
    allocations = slash_allocations([C, A.upper().replace("0X", "0x")], 5 * 10**16)

    assert [(a.account.lower(), a.amount) for a in allocations] == [(A, 5 * 10**16), (C, 5 * 10**16)]


def test_slash_allocations_are_empty_when_nothing_is_slashed() -> None:
    assert slash_allocations([A, B], 0) == []
    assert slash_allocations([], 10) == []


@pytest.mark.parametrize(
    ("rejected", "amount", "message"),
    [([A, A], 1, "appears twice"), ([A], -1, "stake_slash_wei"), (["0xzz"], 1, "not a 0x-prefixed")],
)
def test_slash_allocations_refuse_bad_input(rejected: list[str], amount: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        slash_allocations(rejected, amount)


def test_empty_root_is_32_zero_bytes() -> None:
    # The contract's tests (make_proposal) propose ZERO_BYTES32 for a tree without leaves.
    assert rewards_root([]) == EMPTY_ROOT == b"\x00" * 32


def test_root_is_the_openzeppelin_tree_root_in_protocol_order() -> None:
    allocations = allocate_rewards(10, [(C, 1), (A, 1), (B, 1)])

    assert rewards_root(allocations) == allocation_tree(allocations).root == reward_tree(allocations).root


def test_root_does_not_depend_on_input_order() -> None:
    weights = [(_account(i), i + 1) for i in range(7)]

    assert rewards_root(allocate_rewards(ETHER, weights)) == rewards_root(
        allocate_rewards(ETHER, weights[::-1])
    )


def test_proofs_verify_against_the_root() -> None:
    allocations = allocate_rewards(ETHER, [(_account(i), i + 1) for i in range(5)])
    root = rewards_root(allocations)

    for index, allocation in enumerate(allocations):
        proof = allocation_proof(allocations, allocation.account.lower())
        assert (proof.index, proof.account, proof.amount) == (index, allocation.account, allocation.amount)
        leaf = leaf_hash(ALLOCATION_TYPES, (proof.index, proof.account, proof.amount))
        assert verify(root, leaf, proof.proof)


def test_a_reward_tree_proves_every_leaf_as_allocation_proof_does() -> None:
    allocations = allocate_rewards(ETHER, [(_account(i), i + 1) for i in range(7)])

    tree = RewardTree(allocations)

    assert tree.root == rewards_root(allocations)
    for allocation in allocations:
        assert allocation.account.lower() in tree
        assert tree.proof(allocation.account.lower()) == allocation_proof(allocations, allocation.account)
    assert A not in tree
    with pytest.raises(ValueError, match="has no allocation"):
        tree.proof(A)


def test_proof_for_an_account_without_allocation_is_refused() -> None:
    with pytest.raises(ValueError, match="has no allocation"):
        allocation_proof(allocate_rewards(10, [(A, 1)]), B)


@pytest.mark.parametrize(
    ("allocations", "message"),
    [
        ([Allocation(B, 1), Allocation(A, 1)], "out of order"),
        ([Allocation(A, 1), Allocation(A, 2)], "out of order"),
        ([Allocation(A, 0)], "is zero"),
    ],
)
def test_roots_refuse_allocations_out_of_protocol_order(allocations: list[Allocation], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rewards_root(allocations)
    with pytest.raises(ValueError, match=message):
        check_order(allocations)


def test_reward_tree_refuses_an_empty_list() -> None:
    with pytest.raises(ValueError, match="no allocations"):
        reward_tree([])


# Up to 12 distinct accounts with int or float weights, zeros included.
accounts = st.integers(min_value=0, max_value=200).map(_account)
weight_values = st.one_of(
    st.integers(min_value=0, max_value=10**30),
    st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
    st.just(0),
)
weight_lists = st.lists(st.tuples(accounts, weight_values), max_size=12, unique_by=lambda pair: pair[0])
budgets = st.one_of(st.integers(min_value=0, max_value=1000), st.integers(min_value=0, max_value=2**256 - 1))


@settings(max_examples=200, deadline=None)
@given(budget=budgets, weights=weight_lists)
def test_split_invariants(budget: int, weights: list[tuple[str, float]]) -> None:
    allocations = allocate_rewards(budget, weights)

    amounts = _amounts(allocations)
    total_weight = sum((Fraction(w) for _, w in weights), Fraction(0))
    # Sum equals the budget exactly when anything is owed, and never exceeds it.
    assert sum(amounts.values()) == (budget if total_weight > 0 else 0)
    # Zero weights and zero amounts leave no leaf.
    assert all(amount > 0 for amount in amounts.values())
    assert all(Fraction(w) > 0 for account, w in weights if account.lower() in amounts)
    # Each amount is its exact share rounded down or up.
    for account, weight in weights:
        share = budget * Fraction(weight) / total_weight if total_weight else Fraction(0)
        assert math.floor(share) <= amounts.get(account.lower(), 0) <= math.ceil(share)
    # Protocol order: ascending lower-case address.
    keys = [allocation.account.lower() for allocation in allocations]
    assert keys == sorted(keys)
    check_order(allocations)


@settings(max_examples=150, deadline=None)
@given(budget=budgets, weights=weight_lists, data=st.data())
def test_split_is_invariant_under_permutation(budget: int, weights: list[tuple[str, float]], data) -> None:
    shuffled = data.draw(st.permutations(weights))

    assert allocate_rewards(budget, shuffled) == allocate_rewards(budget, weights)


@settings(max_examples=150, deadline=None)
@given(budget=budgets, weights=weight_lists)
def test_more_weight_never_earns_less(budget: int, weights: list[tuple[str, float]]) -> None:
    amounts = _amounts(allocate_rewards(budget, weights))

    ranked = sorted(weights, key=lambda pair: Fraction(pair[1]))
    for (low, low_weight), (high, high_weight) in itertools.pairwise(ranked):
        if Fraction(high_weight) > Fraction(low_weight):
            assert amounts.get(high.lower(), 0) >= amounts.get(low.lower(), 0)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(weights=weight_lists, scale=st.integers(min_value=1, max_value=10**6))
def test_scaling_integer_weights_changes_nothing(weights: list[tuple[str, float]], scale: int) -> None:
    integer_weights = [(account, int(weight)) for account, weight in weights]
    scaled = [(account, weight * scale) for account, weight in integer_weights]

    assert allocate_rewards(ETHER, scaled) == allocate_rewards(ETHER, integer_weights)
