"""Getting wei out of a settled round: claim, slashContributor and withdrawCredit, the wei each moves between
the buckets, and what a payee that re-enters the market or refuses payment can and cannot do. Every test that
takes a driver runs on an ETH task and on an ERC20 task (where "wei" are the token's units), except what only
ETH has: a payee's receive hook."""

from __future__ import annotations

import pytest
from brownie import ReentrantClaimer, RevertingReceiver
from conftest import (
    ACCEPTED,
    DEFAULT_BUDGET,
    DEFAULT_PARAMS,
    ETHER,
    FAILED,
    FINALIZED,
    OPEN,
    TASK_HALTED,
    VOIDED,
    ZERO_ADDRESS,
    RoundResult,
    make_proposal,
    next_block_at,
    reverts_with,
)
from cotrain.protocol.merkle import ALLOCATION_TYPES, StandardMerkleTree
from eth_utils import keccak, to_checksum_address

pytestmark = pytest.mark.currencies

STAKE = DEFAULT_PARAMS["contributorStake"]
BOND = DEFAULT_PARAMS["validatorBond"]
VALIDATOR_SLASH = DEFAULT_PARAMS["validatorSlash"]
CHALLENGE_BOND = DEFAULT_PARAMS["challengeBond"]
CHALLENGE_DURATION = DEFAULT_PARAMS["challengeDuration"]
ROUND_BUDGET = DEFAULT_BUDGET // DEFAULT_PARAMS["numRounds"]
SHARE = ROUND_BUDGET // 4  # what driver.accept gives each of the four contributors
FIFTH = ROUND_BUDGET // 5  # each leaf of a five-leaf tree
EVIDENCE_CID = "bafkreievidence"
CREDIT = CHALLENGE_BOND + BOND  # an upheld challenge's payout when two proposers lose their whole bonds
BUCKETS = ("escrow", "reserved", "unclaimed", "stakes", "bonds", "challengeBonds", "burned")
# OpenZeppelin's ReentrancyGuard error, as the re-entrant call's revert data.
REENTRANT_CALL = "0x" + keccak(text="ReentrancyGuardReentrantCall()")[:4].hex()


# ---------------------------------------------------------------------------------------------------- helpers


def addresses(count: int, start: int = 0x2000) -> list[str]:
    """`count` distinct non-zero addresses that are neither brownie accounts nor contracts."""
    return [to_checksum_address(f"0x{i:040x}") for i in range(start, start + count)]


def buckets(driver, task_id) -> dict:
    task = driver.task(task_id)
    return {name: task[name] for name in BUCKETS}


def moved(before: dict, after: dict) -> dict:
    """The buckets that changed, as signed wei deltas."""
    return {name: after[name] - before[name] for name in BUCKETS if after[name] != before[name]}


def assert_solvent(driver) -> None:
    """The market holds exactly what its buckets and credits say, not a wei (or token unit) more or less; a
    token driver's tasks leave the market's ETH alone."""
    market = driver.market
    holdings = sum(market.taskHoldings(t) for t in range(1, market.taskCount() + 1))
    assert driver.balance(market) == holdings + driver.total_credits()
    if driver.token is not None:
        assert market.balance() == 0


def claim_leaf(market, task_id, round_, result: RoundResult, index: int, sender):
    allocation = result.reward_allocations[index]
    return market.claim(
        task_id,
        round_,
        index,
        allocation.account,
        allocation.amount,
        result.reward_proof(index),
        {"from": sender},
    )


def slash_leaf(market, task_id, round_, result: RoundResult, index: int, sender):
    allocation = result.slash_allocations[index]
    return market.slashContributor(
        task_id,
        round_,
        index,
        allocation.account,
        allocation.amount,
        result.slashes.proof(index),
        {"from": sender},
    )


def with_reward_total(result: RoundResult, reward_total: int) -> RoundResult:
    """The same trees under a proposal that states another rewardTotal."""
    proposal = (*result.proposal[:4], reward_total, *result.proposal[5:])
    return RoundResult(
        proposal, result.rewards, result.slashes, result.reward_allocations, result.slash_allocations
    )


def settle(driver, task_id, result: RoundResult, round_=0, updates=None) -> None:
    """Run round_ with `result` as the proposal of validators 0 and 1, then finalize it."""
    driver.submit(task_id, round_, updates)
    driver.propose(task_id, round_, result)
    driver.finalize(task_id, round_)


def finalize_after_challenge(driver, task_id, round_=0):
    """Let the challenge window and the arbitration window pass without a ruling, then finalize."""
    r = driver.round(task_id, round_)
    driver.sleep_until(r["acceptedAt"] + 2 * CHALLENGE_DURATION)
    return driver.market.finalizeRound(task_id, round_, {"from": driver.owner})


def challenge_round(driver, task_id, challenger, round_=0):
    return driver.market.challenge(task_id, round_, EVIDENCE_CID, driver.deposit(challenger, CHALLENGE_BOND))


# --------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def paid(driver, task_id):
    """task_id with round 0 accepted at equal shares for the four contributors and finalized; the result."""
    result = driver.accept(task_id, 0)
    driver.finalize(task_id, 0)
    return result


@pytest.fixture
def slashing(driver, contributors, outsider, task_id):
    """Round 0 of task_id finalized with equal rewards and three slash leaves: a quarter of contributor 0's
    stake, three stakes of contributor 1 (more than it has), and a stake of the outsider (who has none)."""
    rewards = [(c, SHARE) for c in contributors]
    slashes = [(contributors[0], STAKE // 4), (contributors[1], 3 * STAKE), (outsider, STAKE)]
    result = make_proposal(rewards, slashes)
    settle(driver, task_id, result)
    return result


@pytest.fixture
def claimer(market, outsider):
    return ReentrantClaimer.deploy(market, {"from": outsider})


@pytest.fixture
def receiver(market, outsider):
    return RevertingReceiver.deploy(market, {"from": outsider})


def five_leaf_task(driver, contributors, payee, outsider, **params):
    """A task joined by the four contributors and `payee` (a contract that never commits); round 0 finalized
    with a FIFTH leaf for each contributor and, last (index 4), for `payee`. Returns (task id, result)."""
    task_id = driver.create_task(maxContributors=5, **params)
    driver.join(task_id)
    payee.join(task_id, {"from": outsider, "value": STAKE})
    driver.open_commit(task_id)
    result = make_proposal([*((c, FIFTH) for c in contributors), (payee, FIFTH)])
    settle(driver, task_id, result)
    return task_id, result


@pytest.fixture
def attacked(driver, contributors, outsider, claimer):
    """five_leaf_task with the ReentrantClaimer as leaf 4."""
    return five_leaf_task(driver, contributors, claimer, outsider)


@pytest.fixture
def refusing(driver, contributors, outsider, receiver):
    """five_leaf_task with the RevertingReceiver as leaf 4, in a one-round task (completed once accepted)."""
    return five_leaf_task(driver, contributors, receiver, outsider, numRounds=1)


# ------------------------------------------------------------------------------------------------------ claim


def test_claim_pays_leaf_account_and_records_claim(driver, market, contributors, task_id, paid):
    before, balance, held = buckets(driver, task_id), driver.balance(contributors[2]), driver.balance(market)
    tx = claim_leaf(market, task_id, 0, paid, 2, contributors[2])
    assert driver.balance(contributors[2]) - balance == SHARE
    assert held - driver.balance(market) == SHARE
    assert moved(before, buckets(driver, task_id)) == {"unclaimed": -SHARE}
    assert driver.round(task_id, 0)["rewardClaimed"] == SHARE
    assert [market.isClaimed(task_id, 0, i) for i in range(4)] == [False, False, True, False]
    assert dict(tx.events["RewardClaimed"]) == {
        "taskId": task_id,
        "round": 0,
        "account": contributors[2],
        "index": 2,
        "amount": SHARE,
    }
    assert_solvent(driver)


def test_claim_by_outsider_pays_leaf_account_not_sender(
    driver, market, contributors, outsider, task_id, paid
):
    before, balance, sender = (
        buckets(driver, task_id),
        driver.balance(contributors[1]),
        driver.balance(outsider),
    )
    tx = claim_leaf(market, task_id, 0, paid, 1, outsider)
    assert driver.balance(contributors[1]) - balance == SHARE
    assert driver.balance(outsider) == sender
    assert tx.events["RewardClaimed"]["account"] == contributors[1]
    assert moved(before, buckets(driver, task_id)) == {"unclaimed": -SHARE}
    assert market.isClaimed(task_id, 0, 1)


def test_every_leaf_of_four_leaf_tree_claims_once(driver, market, contributors, outsider, task_id, paid):
    before = buckets(driver, task_id)
    gas = []
    for index, contributor in enumerate(contributors):
        balance = driver.balance(contributor)
        tx = claim_leaf(market, task_id, 0, paid, index, outsider)
        gas.append(tx.gas_used)
        assert driver.balance(contributor) - balance == SHARE
    print(f"\nclaim gas, 4-leaf tree: first claim of the round {gas[0]}, later claims {gas[1:]}")
    assert moved(before, buckets(driver, task_id)) == {"unclaimed": -4 * SHARE}
    assert driver.round(task_id, 0)["rewardClaimed"] == 4 * SHARE == driver.round(task_id, 0)["rewardTotal"]
    assert all(market.isClaimed(task_id, 0, i) for i in range(4))
    for index in range(4):
        with reverts_with("AlreadyClaimed"):
            claim_leaf(market, task_id, 0, paid, index, outsider)
    assert_solvent(driver)


def test_every_leaf_of_33_leaf_tree_claims_once(driver, market, contributors, outsider, task_id):
    accounts_ = [str(c) for c in contributors] + addresses(29)
    rewards = [(account, (i + 1) * 10**15) for i, account in enumerate(accounts_)]
    total = sum(amount for _, amount in rewards)
    result = make_proposal(rewards)
    settle(driver, task_id, result)
    assert driver.task(task_id)["unclaimed"] == total
    gas = []
    for index, (account, amount) in enumerate(rewards):
        balance = driver.balance(account)
        tx = claim_leaf(market, task_id, 0, result, index, outsider)
        gas.append(tx.gas_used)
        assert driver.balance(account) - balance == amount
        assert dict(tx.events["RewardClaimed"])["index"] == index
    print(f"\nclaim gas, 33-leaf tree: first {gas[0]}, last {gas[-1]}, max later {max(gas[1:])}")
    assert driver.task(task_id)["unclaimed"] == 0
    assert driver.round(task_id, 0)["rewardClaimed"] == total
    assert all(market.isClaimed(task_id, 0, i) for i in range(33))
    for index in (0, 16, 32):
        with reverts_with("AlreadyClaimed"):
            claim_leaf(market, task_id, 0, result, index, outsider)
    assert_solvent(driver)


def test_claim_of_index_above_255_uses_its_own_bitmap_word(driver, market, contributors, outsider, task_id):
    # 300 = 256 + 44: word 1, bit 44. Leaf indices are whatever the tree says, not positions.
    leaves = [(44, str(contributors[0]), SHARE), (300, str(contributors[1]), 2 * SHARE)]
    tree = StandardMerkleTree.of(leaves, ALLOCATION_TYPES)
    base = make_proposal([(contributors[0], SHARE), (contributors[1], 2 * SHARE)])
    proposal = (*base.proposal[:2], "0x" + tree.root.hex(), *base.proposal[3:])
    settle(driver, task_id, RoundResult(proposal, tree, None))
    balance = driver.balance(contributors[1])
    tx = market.claim(task_id, 0, 300, contributors[1], 2 * SHARE, tree.proof(1), {"from": outsider})
    assert driver.balance(contributors[1]) - balance == 2 * SHARE
    assert tx.events["RewardClaimed"]["index"] == 300
    assert market.isClaimed(task_id, 0, 300)
    assert not market.isClaimed(task_id, 0, 44)
    market.claim(task_id, 0, 44, contributors[0], SHARE, tree.proof(0), {"from": outsider})
    assert market.isClaimed(task_id, 0, 44)
    with reverts_with("AlreadyClaimed"):
        market.claim(task_id, 0, 300, contributors[1], 2 * SHARE, tree.proof(1), {"from": outsider})
    assert driver.task(task_id)["unclaimed"] == 0


def test_claim_of_open_round_reverts_wrong_round_status(market, contributors, task_id):
    with reverts_with("WrongRoundStatus", OPEN):
        market.claim(task_id, 0, 0, contributors[0], SHARE, [], {"from": contributors[0]})


def test_claim_of_accepted_round_reverts_wrong_round_status(driver, market, contributors, task_id):
    result = driver.accept(task_id, 0)
    with reverts_with("WrongRoundStatus", ACCEPTED):
        claim_leaf(market, task_id, 0, result, 0, contributors[0])


def test_claim_of_failed_round_reverts_wrong_round_status(driver, market, contributors, task_id):
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    market.failRound(task_id, {"from": contributors[0]})
    assert driver.round(task_id, 0)["status"] == FAILED
    with reverts_with("WrongRoundStatus", FAILED):
        market.claim(task_id, 0, 0, contributors[0], SHARE, [], {"from": contributors[0]})


def test_claim_of_voided_round_reverts_wrong_round_status(
    driver, market, arbiter, owner, contributors, outsider, task_id
):
    result = driver.accept(task_id, 0)
    challenge_round(driver, task_id, outsider)
    market.resolveChallenge(task_id, 0, outsider, {"from": arbiter})
    assert driver.round(task_id, 0)["status"] == VOIDED
    with reverts_with("WrongRoundStatus", VOIDED):
        claim_leaf(market, task_id, 0, result, 0, contributors[0])


def test_claim_of_unknown_task_reverts_unknown_task(market, contributors, task_id, paid):
    allocation = paid.reward_allocations[0]
    with reverts_with("UnknownTask", task_id + 1):
        market.claim(
            task_id + 1,
            0,
            0,
            allocation.account,
            allocation.amount,
            paid.reward_proof(0),
            {"from": contributors[0]},
        )


def test_second_claim_reverts_already_claimed_and_pays_nothing(driver, market, contributors, task_id, paid):
    claim_leaf(market, task_id, 0, paid, 0, contributors[0])
    before, balance = buckets(driver, task_id), driver.balance(contributors[0])
    with reverts_with("AlreadyClaimed"):
        claim_leaf(market, task_id, 0, paid, 0, contributors[0])
    assert buckets(driver, task_id) == before
    assert driver.balance(contributors[0]) == balance


@pytest.mark.parametrize(
    "forgery",
    ["wrong amount", "wrong account", "wrong index", "proof of another leaf", "empty proof"],
)
def test_forged_claim_reverts_invalid_proof(driver, market, contributors, outsider, task_id, paid, forgery):
    leaf = paid.reward_allocations[0]
    index, account, amount, proof = 0, leaf.account, leaf.amount, paid.reward_proof(0)
    if forgery == "wrong amount":
        amount += 1
    elif forgery == "wrong account":
        account = outsider
    elif forgery == "wrong index":
        index = 1
    elif forgery == "proof of another leaf":
        proof = paid.reward_proof(1)
    else:
        proof = []
    before = buckets(driver, task_id)
    with reverts_with("InvalidProof"):
        market.claim(task_id, 0, index, account, amount, proof, {"from": outsider})
    assert buckets(driver, task_id) == before
    assert not market.isClaimed(task_id, 0, index)


def test_claim_beyond_round_reward_total_reverts_exceeds_round_rewards(
    driver, market, contributors, outsider, task_id
):
    # propose() caps rewardTotal at the round budget but cannot see the tree: these leaves sum to 1.2 ether
    # under a proposal that reserves 0.8 ether, so claim() must stop at rewardTotal.
    leaf, reward_total = 6 * ETHER // 10, 8 * ETHER // 10
    result = with_reward_total(
        make_proposal([(contributors[0], leaf), (contributors[1], leaf)]), reward_total
    )
    settle(driver, task_id, result)
    assert driver.task(task_id)["unclaimed"] == reward_total
    claim_leaf(market, task_id, 0, result, 0, outsider)
    before, balance = buckets(driver, task_id), driver.balance(contributors[1])
    with reverts_with("ExceedsRoundRewards", reward_total - leaf, leaf):
        claim_leaf(market, task_id, 0, result, 1, outsider)
    assert before["unclaimed"] == reward_total - leaf
    assert buckets(driver, task_id) == before
    assert driver.balance(contributors[1]) == balance
    assert not market.isClaimed(task_id, 0, 1)
    assert_solvent(driver)


def test_claim_of_leaf_above_reward_total_reverts_exceeds_round_rewards(
    driver, market, contributors, outsider, task_id
):
    result = with_reward_total(make_proposal([(contributors[0], SHARE), (contributors[1], 2 * SHARE)]), SHARE)
    settle(driver, task_id, result)
    with reverts_with("ExceedsRoundRewards", SHARE, 2 * SHARE):
        claim_leaf(market, task_id, 0, result, 1, outsider)


def test_claim_of_finalized_round_pays_after_later_round_is_voided(
    driver, market, arbiter, owner, contributors, outsider
):
    # A commit phase longer than the challenge window keeps round 1 open while round 0 finalizes.
    task_id = driver.create_task(commitDuration=2 * CHALLENGE_DURATION)
    driver.join(task_id)
    driver.open_commit(task_id)
    result = driver.accept(task_id, 0)
    driver.finalize(task_id, 0)
    driver.accept(task_id, 1)
    challenge_round(driver, task_id, outsider, round_=1)
    market.resolveChallenge(task_id, 1, outsider, {"from": arbiter})
    assert driver.task(task_id)["status"] == TASK_HALTED
    assert (driver.round(task_id, 0)["status"], driver.round(task_id, 1)["status"]) == (FINALIZED, VOIDED)
    balance = driver.balance(contributors[3])
    claim_leaf(market, task_id, 0, result, 3, outsider)
    assert driver.balance(contributors[3]) - balance == SHARE
    assert driver.task(task_id)["unclaimed"] == 3 * SHARE
    assert_solvent(driver)


# ------------------------------------------------------------------------------------------ slashContributor


def test_slash_moves_amount_from_stakes_to_escrow(driver, market, contributors, outsider, task_id, slashing):
    before, held = buckets(driver, task_id), driver.balance(market)
    tx = slash_leaf(market, task_id, 0, slashing, 0, outsider)
    assert moved(before, buckets(driver, task_id)) == {"stakes": -(STAKE // 4), "escrow": STAKE // 4}
    assert market.contributorInfo(task_id, contributors[0])[3] == STAKE - STAKE // 4
    assert driver.balance(market) == held
    assert dict(tx.events["ContributorSlashed"]) == {
        "taskId": task_id,
        "round": 0,
        "contributor": contributors[0],
        "amount": STAKE // 4,
    }
    assert [market.isSlashed(task_id, 0, i) for i in range(3)] == [True, False, False]
    assert not market.isClaimed(task_id, 0, 0)
    assert_solvent(driver)


def test_slash_above_stake_takes_whole_stake_and_no_more(
    driver, market, contributors, outsider, task_id, slashing
):
    before = buckets(driver, task_id)
    tx = slash_leaf(market, task_id, 0, slashing, 1, outsider)
    assert tx.events["ContributorSlashed"]["amount"] == STAKE
    assert moved(before, buckets(driver, task_id)) == {"stakes": -STAKE, "escrow": STAKE}
    assert market.contributorInfo(task_id, contributors[1])[3] == 0
    assert market.isSlashed(task_id, 0, 1)
    assert_solvent(driver)


def test_slash_to_zero_takes_the_slot(driver, market, contributors, outsider, task_id, slashing):
    slash_leaf(market, task_id, 0, slashing, 1, outsider)
    assert tuple(market.contributorInfo(task_id, contributors[1])) == (False, 1, 0, 0)
    assert driver.task(task_id)["activeContributors"] == 3
    with reverts_with("NotJoined"):
        market.leave(task_id, {"from": contributors[1]})


def test_slash_to_zero_contributor_can_join_again(driver, market, contributors, outsider, task_id, slashing):
    slash_leaf(market, task_id, 0, slashing, 1, outsider)
    market.join(task_id, driver.deposit(contributors[1], STAKE))
    assert tuple(market.contributorInfo(task_id, contributors[1])) == (True, 1, 0, STAKE)
    assert driver.task(task_id)["activeContributors"] == 4


def test_partial_slash_keeps_the_slot(driver, market, contributors, outsider, task_id, slashing):
    slash_leaf(market, task_id, 0, slashing, 0, outsider)
    assert market.contributorInfo(task_id, contributors[0])[0] is True
    assert driver.task(task_id)["activeContributors"] == 4


def test_slash_of_account_without_stake_moves_nothing(driver, market, outsider, task_id, slashing):
    before = buckets(driver, task_id)
    tx = slash_leaf(market, task_id, 0, slashing, 2, outsider)
    assert tx.events["ContributorSlashed"]["amount"] == 0
    assert buckets(driver, task_id) == before
    assert market.isSlashed(task_id, 0, 2)
    assert tuple(market.contributorInfo(task_id, outsider)) == (False, 0, 0, 0)
    assert driver.task(task_id)["activeContributors"] == 4


@pytest.mark.parametrize("second", ["same sender", "other validator"])
def test_second_slash_of_a_leaf_is_a_no_op(
    driver, market, contributors, validators, outsider, task_id, slashing, second
):
    """Validators racing to apply the same leaf: the later transactions succeed and change nothing."""
    slash_leaf(market, task_id, 0, slashing, 0, validators[0])
    before, held = buckets(driver, task_id), driver.balance(market)
    info = tuple(market.contributorInfo(task_id, contributors[0]))
    sender = validators[0] if second == "same sender" else validators[1]
    tx = slash_leaf(market, task_id, 0, slashing, 0, sender)
    assert tx.status == 1
    assert "ContributorSlashed" not in tx.events
    assert buckets(driver, task_id) == before
    assert driver.balance(market) == held
    assert tuple(market.contributorInfo(task_id, contributors[0])) == info == (True, 1, 0, STAKE - STAKE // 4)


def test_second_slash_is_a_no_op_even_with_a_bad_proof(
    driver, market, contributors, outsider, task_id, slashing
):
    """An applied leaf is not checked again: the no-op costs no proof verification."""
    slash_leaf(market, task_id, 0, slashing, 0, outsider)
    before = buckets(driver, task_id)
    tx = market.slashContributor(task_id, 0, 0, contributors[0], 1, [], {"from": outsider})
    assert "ContributorSlashed" not in tx.events
    assert buckets(driver, task_id) == before


@pytest.mark.parametrize("forgery", ["wrong amount", "wrong account", "wrong index", "reward leaf"])
def test_forged_slash_reverts_invalid_proof(
    driver, market, contributors, outsider, task_id, slashing, forgery
):
    leaf = slashing.slash_allocations[0]
    index, account, amount, proof = 0, leaf.account, leaf.amount, slashing.slashes.proof(0)
    if forgery == "wrong amount":
        amount = STAKE
    elif forgery == "wrong account":
        account = contributors[2]
    elif forgery == "wrong index":
        index = 1
    else:  # a rewards leaf is not a slash leaf
        reward = slashing.reward_allocations[0]
        account, amount, proof = reward.account, reward.amount, slashing.reward_proof(0)
    before = buckets(driver, task_id)
    with reverts_with("InvalidProof"):
        market.slashContributor(task_id, 0, index, account, amount, proof, {"from": outsider})
    assert buckets(driver, task_id) == before
    assert not market.isSlashed(task_id, 0, index)


def test_slash_of_round_without_slash_root_reverts_invalid_proof(
    driver, market, contributors, outsider, task_id, paid
):
    assert driver.round(task_id, 0)["slashRoot"] == "0x" + "00" * 32
    with reverts_with("InvalidProof"):
        market.slashContributor(task_id, 0, 0, contributors[0], STAKE, [], {"from": outsider})


def test_slash_of_accepted_round_reverts_wrong_round_status(driver, market, contributors, outsider, task_id):
    result = make_proposal([(c, SHARE) for c in contributors], [(contributors[0], STAKE)])
    driver.submit(task_id, 0)
    driver.propose(task_id, 0, result)
    with reverts_with("WrongRoundStatus", ACCEPTED):
        slash_leaf(market, task_id, 0, result, 0, outsider)


def test_slash_of_voided_round_reverts_wrong_round_status(
    driver, market, arbiter, owner, contributors, outsider, task_id
):
    result = make_proposal([(c, SHARE) for c in contributors], [(contributors[0], STAKE)])
    driver.submit(task_id, 0)
    driver.propose(task_id, 0, result)
    challenge_round(driver, task_id, outsider)
    market.resolveChallenge(task_id, 0, outsider, {"from": arbiter})
    with reverts_with("WrongRoundStatus", VOIDED):
        slash_leaf(market, task_id, 0, result, 0, outsider)


def test_slash_of_unknown_task_reverts_unknown_task(market, outsider, task_id, slashing):
    leaf = slashing.slash_allocations[0]
    with reverts_with("UnknownTask", task_id + 1):
        market.slashContributor(
            task_id + 1, 0, 0, leaf.account, leaf.amount, slashing.slashes.proof(0), {"from": outsider}
        )


def test_slash_at_end_of_slash_window_is_applied(driver, market, outsider, task_id, slashing):
    window_end = driver.round(task_id, 0)["finalizedAt"] + CHALLENGE_DURATION
    next_block_at(window_end)
    tx = slash_leaf(market, task_id, 0, slashing, 0, outsider)
    assert tx.timestamp == window_end
    assert tx.events["ContributorSlashed"]["amount"] == STAKE // 4


def test_slash_after_slash_window_reverts_slash_window_closed(driver, market, outsider, task_id, slashing):
    before = buckets(driver, task_id)
    next_block_at(driver.round(task_id, 0)["finalizedAt"] + CHALLENGE_DURATION + 1)
    with reverts_with("SlashWindowClosed"):
        slash_leaf(market, task_id, 0, slashing, 0, outsider)
    assert buckets(driver, task_id) == before


def test_slashed_contributor_leave_refunds_what_is_left(
    driver, market, contributors, outsider, task_id, slashing
):
    slash_leaf(market, task_id, 0, slashing, 0, outsider)
    driver.sleep_until(driver.round(task_id, 0)["finalizedAt"] + CHALLENGE_DURATION + 1)
    before, balance = buckets(driver, task_id), driver.balance(contributors[0])
    tx = market.leave(task_id, {"from": contributors[0]})
    assert driver.balance(contributors[0]) - balance == STAKE - STAKE // 4
    assert tx.events["ContributorLeft"]["refund"] == STAKE - STAKE // 4
    assert moved(before, buckets(driver, task_id)) == {"stakes": -(STAKE - STAKE // 4)}
    assert_solvent(driver)


def test_wholly_slashed_contributor_has_nothing_to_leave_with(
    driver, market, contributors, outsider, task_id, slashing
):
    slash_leaf(market, task_id, 0, slashing, 1, outsider)
    driver.sleep_until(driver.round(task_id, 0)["finalizedAt"] + CHALLENGE_DURATION + 1)
    before = buckets(driver, task_id)
    with reverts_with("NotJoined"):
        market.leave(task_id, {"from": contributors[1]})
    assert buckets(driver, task_id) == before


def test_slashed_wei_reach_owner_refund(driver, market, owner, outsider, task_id, slashing):
    slash_leaf(market, task_id, 0, slashing, 0, outsider)
    slash_leaf(market, task_id, 0, slashing, 1, outsider)
    balance = driver.balance(owner)
    tx = market.cancelTask(task_id, {"from": owner})
    # The two unspent round budgets, validator 2's slash at finalization, and the two contributor slashes.
    expected = DEFAULT_BUDGET - ROUND_BUDGET + VALIDATOR_SLASH + STAKE // 4 + STAKE
    assert tx.events["EscrowRefunded"]["amount"] == expected
    assert driver.balance(owner) - balance == expected
    assert driver.task(task_id)["escrow"] == 0
    assert_solvent(driver)


# ------------------------------------------------------------------------------------------- withdrawCredit


def test_dismissed_challenge_bond_is_withdrawn_not_credited(driver, market, outsider, task_id):
    driver.accept(task_id, 0)
    challenge_round(driver, task_id, outsider)
    finalize_after_challenge(driver, task_id)
    assert (driver.credits(outsider), driver.total_credits()) == (0, 0)
    before, balance, held = buckets(driver, task_id), driver.balance(outsider), driver.balance(market)
    tx = market.withdrawChallengeBond(task_id, 0, {"from": outsider})
    assert driver.balance(outsider) - balance == CHALLENGE_BOND
    assert held - driver.balance(market) == CHALLENGE_BOND
    assert moved(before, buckets(driver, task_id)) == {"challengeBonds": -CHALLENGE_BOND}
    assert dict(tx.events["ChallengeBondReturned"]) == {
        "taskId": task_id,
        "round": 0,
        "challenger": outsider,
        "amount": CHALLENGE_BOND,
    }
    assert_solvent(driver)


def test_withdraw_credit_pays_forfeit_bounty(driver, market, contributors, outsider, task_id):
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    market.forfeitUnrevealed(task_id, 0, contributors[0], {"from": outsider})
    balance = driver.balance(outsider)
    tx = driver.withdraw_credit(outsider)
    assert driver.balance(outsider) - balance == STAKE // 10
    assert driver.credit_withdrawn(tx) == {"account": outsider, "amount": STAKE // 10}
    assert_solvent(driver)


def test_withdraw_credit_pays_upheld_challenge_payout(driver, market, arbiter, owner, outsider, task_id):
    driver.accept(task_id, 0)
    challenge_round(driver, task_id, outsider)
    market.resolveChallenge(task_id, 0, outsider, {"from": arbiter})
    payout = CHALLENGE_BOND + BOND  # the bond back plus half the bonds of the two proposers
    assert driver.credits(outsider) == payout == driver.total_credits()
    balance = driver.balance(outsider)
    tx = driver.withdraw_credit(outsider)
    assert driver.balance(outsider) - balance == payout
    assert driver.credit_withdrawn(tx)["amount"] == payout
    assert (driver.credits(outsider), driver.total_credits()) == (0, 0)
    assert_solvent(driver)


def test_withdraw_credit_without_credit_reverts_nothing_to_withdraw(driver, outsider):
    with reverts_with("NothingToWithdraw"):
        driver.withdraw_credit(outsider)


def test_withdraw_credit_twice_reverts_nothing_to_withdraw(driver, market, arbiter, owner, outsider, task_id):
    driver.accept(task_id, 0)
    challenge_round(driver, task_id, outsider)
    market.resolveChallenge(task_id, 0, outsider, {"from": arbiter})
    driver.withdraw_credit(outsider)
    with reverts_with("NothingToWithdraw"):
        driver.withdraw_credit(outsider)


def test_rejected_challenge_leaves_no_credit(driver, market, arbiter, owner, outsider, task_id):
    driver.accept(task_id, 0)
    challenge_round(driver, task_id, outsider)
    driver.sleep_until(driver.round(task_id, 0)["acceptedAt"] + CHALLENGE_DURATION)
    market.resolveChallenge(task_id, 0, ZERO_ADDRESS, {"from": arbiter})
    assert driver.credits(outsider) == 0
    with reverts_with("NothingToWithdraw"):
        driver.withdraw_credit(outsider)


def test_withdraw_credit_by_other_account_leaves_credit_in_place(
    driver, market, arbiter, owner, contributors, outsider, task_id
):
    driver.accept(task_id, 0)
    challenge_round(driver, task_id, outsider)
    market.resolveChallenge(task_id, 0, outsider, {"from": arbiter})
    credit = driver.credits(outsider)
    for account in (owner, contributors[0]):
        with reverts_with("NothingToWithdraw"):
            driver.withdraw_credit(account)
    assert driver.credits(outsider) == credit == driver.total_credits()


# ---------------------------------------------------------------------------------------------- re-entrancy
# ETH only, as the refusing receiver below: a payee re-enters (or refuses) from the receive hook that an ETH
# transfer calls. An ERC20 transfer calls nothing on its receiver; a token that calls back is a hostile
# task owner's token, tested in test_tokens.py.


@pytest.mark.eth_only
def test_reentrant_claim_with_bubbling_reverts_whole_claim(driver, market, outsider, claimer, attacked):
    task_id, result = attacked
    claimer.armClaim(task_id, 0, 4, claimer, FIFTH, result.reward_proof(4), True, {"from": outsider})
    before, balance, held = buckets(driver, task_id), driver.balance(claimer), driver.balance(market)
    with reverts_with("TransferFailed", claimer.address, FIFTH):
        claim_leaf(market, task_id, 0, result, 4, outsider)
    assert buckets(driver, task_id) == before
    assert (driver.balance(claimer), driver.balance(market)) == (balance, held)
    assert (claimer.receipts(), claimer.reentryAttempts()) == (0, 0)
    assert not market.isClaimed(task_id, 0, 4)


@pytest.mark.eth_only
def test_reentrant_claim_fails_and_outer_claim_pays_once(driver, market, outsider, claimer, attacked):
    task_id, result = attacked
    claimer.armClaim(task_id, 0, 4, claimer, FIFTH, result.reward_proof(4), False, {"from": outsider})
    before, balance, held = buckets(driver, task_id), driver.balance(claimer), driver.balance(market)
    tx = claim_leaf(market, task_id, 0, result, 4, outsider)
    assert (claimer.receipts(), claimer.reentryAttempts()) == (1, 1)
    assert claimer.reentrySucceeded() is False
    assert claimer.reentryError() == REENTRANT_CALL
    assert driver.balance(claimer) - balance == FIFTH
    assert held - driver.balance(market) == FIFTH
    assert moved(before, buckets(driver, task_id)) == {"unclaimed": -FIFTH}
    assert driver.round(task_id, 0)["rewardClaimed"] == FIFTH
    assert len(tx.events["RewardClaimed"]) == 1
    assert market.isClaimed(task_id, 0, 4)
    assert_solvent(driver)


@pytest.mark.eth_only
def test_claim_payout_cannot_reenter_leave(driver, market, outsider, claimer, attacked):
    task_id, result = attacked
    claimer.armLeave(task_id, False, {"from": outsider})
    before = buckets(driver, task_id)
    claim_leaf(market, task_id, 0, result, 4, outsider)
    assert claimer.reentrySucceeded() is False
    assert claimer.reentryError() == REENTRANT_CALL
    assert tuple(market.contributorInfo(task_id, claimer)) == (True, 0, 0, STAKE)
    assert moved(before, buckets(driver, task_id)) == {"unclaimed": -FIFTH}
    assert_solvent(driver)


@pytest.mark.eth_only
def test_reentrant_leave_with_bubbling_reverts_whole_leave(driver, market, outsider, claimer, task_id):
    claimer.join(task_id, {"from": outsider, "value": STAKE})
    claimer.armLeave(task_id, True, {"from": outsider})
    before, held = buckets(driver, task_id), driver.balance(market)
    with reverts_with("TransferFailed", claimer.address, STAKE):
        claimer.leave(task_id, {"from": outsider})
    assert buckets(driver, task_id) == before
    assert driver.balance(market) == held
    assert tuple(market.contributorInfo(task_id, claimer)) == (True, 0, 0, STAKE)


@pytest.mark.eth_only
def test_reentrant_leave_fails_and_outer_leave_refunds_once(driver, market, outsider, claimer, task_id):
    claimer.join(task_id, {"from": outsider, "value": STAKE})
    claimer.armLeave(task_id, False, {"from": outsider})
    before, held = buckets(driver, task_id), driver.balance(market)
    tx = claimer.leave(task_id, {"from": outsider})
    assert (claimer.receipts(), claimer.reentryAttempts()) == (1, 1)
    assert claimer.reentrySucceeded() is False
    assert claimer.reentryError() == REENTRANT_CALL
    assert driver.balance(claimer) == STAKE
    assert held - driver.balance(market) == STAKE
    assert moved(before, buckets(driver, task_id)) == {"stakes": -STAKE}
    assert len(tx.events["ContributorLeft"]) == 1
    assert tuple(market.contributorInfo(task_id, claimer)) == (False, 0, 0, 0)
    assert_solvent(driver)


@pytest.fixture
def credited_claimer(driver, market, arbiter, outsider, claimer, task_id):
    """The ReentrantClaimer credited CREDIT: its challenge upheld, its bond back plus half of two bonds."""
    driver.accept(task_id, 0)
    claimer.challenge(task_id, 0, EVIDENCE_CID, {"from": outsider, "value": CHALLENGE_BOND})
    market.resolveChallenge(task_id, 0, claimer, {"from": arbiter})
    assert driver.credits(claimer) == CREDIT
    return claimer


@pytest.mark.eth_only
def test_reentrant_withdraw_credit_with_bubbling_reverts_whole_withdrawal(
    driver, market, outsider, credited_claimer
):
    claimer = credited_claimer
    claimer.armWithdrawCredit(True, {"from": outsider})
    held, total = driver.balance(market), driver.total_credits()
    with reverts_with("TransferFailed", claimer.address, CREDIT):
        claimer.withdrawCredit({"from": outsider})
    assert (driver.credits(claimer), driver.total_credits(), driver.balance(market)) == (CREDIT, total, held)
    assert driver.balance(claimer) == 0


@pytest.mark.eth_only
def test_reentrant_withdraw_credit_fails_and_outer_pays_once(driver, market, outsider, credited_claimer):
    claimer = credited_claimer
    claimer.armWithdrawCredit(False, {"from": outsider})
    held, total = driver.balance(market), driver.total_credits()
    tx = claimer.withdrawCredit({"from": outsider})
    assert (claimer.receipts(), claimer.reentryAttempts()) == (1, 1)
    assert claimer.reentrySucceeded() is False
    assert claimer.reentryError() == REENTRANT_CALL
    assert driver.balance(claimer) == CREDIT
    assert held - driver.balance(market) == CREDIT
    assert (driver.credits(claimer), driver.total_credits()) == (0, total - CREDIT)
    assert len(tx.events["CreditWithdrawn"]) == 1
    assert_solvent(driver)


# -------------------------------------------------------------------------------------- refusing receiver


@pytest.mark.eth_only
def test_claim_to_refusing_receiver_reverts_transfer_failed(driver, market, outsider, receiver, refusing):
    task_id, result = refusing
    before = buckets(driver, task_id)
    with reverts_with("TransferFailed", receiver.address, FIFTH):
        claim_leaf(market, task_id, 0, result, 4, outsider)
    assert buckets(driver, task_id) == before
    assert not market.isClaimed(task_id, 0, 4)
    assert driver.balance(receiver) == 0


@pytest.mark.eth_only
def test_refusing_receiver_does_not_block_other_leaves(driver, market, contributors, outsider, refusing):
    task_id, result = refusing
    with reverts_with("TransferFailed", result.reward_allocations[4].account, FIFTH):
        claim_leaf(market, task_id, 0, result, 4, outsider)
    for index, contributor in enumerate(contributors):
        balance = driver.balance(contributor)
        claim_leaf(market, task_id, 0, result, index, outsider)
        assert driver.balance(contributor) - balance == FIFTH
    assert driver.task(task_id)["unclaimed"] == FIFTH
    assert driver.round(task_id, 0)["rewardClaimed"] == 4 * FIFTH
    assert [market.isClaimed(task_id, 0, i) for i in range(5)] == [True, True, True, True, False]
    assert_solvent(driver)


@pytest.mark.eth_only
def test_refusing_receiver_does_not_block_refund_or_leave(
    driver, market, owner, contributors, outsider, receiver, refusing
):
    task_id, _ = refusing
    driver.sleep_until(driver.round(task_id, 0)["finalizedAt"] + CHALLENGE_DURATION + 1)
    for contributor in contributors:
        balance = driver.balance(contributor)
        market.leave(task_id, {"from": contributor})
        assert driver.balance(contributor) - balance == STAKE
    with reverts_with("TransferFailed", receiver.address, STAKE):
        receiver.leave(task_id, {"from": outsider})
    escrow, balance = driver.task(task_id)["escrow"], driver.balance(owner)
    # The one round's budget is the whole budget: less five leaves, plus validator 2's slash at finalization.
    assert escrow == DEFAULT_BUDGET - 5 * FIFTH + VALIDATOR_SLASH
    market.withdrawRefund(task_id, {"from": owner})
    assert driver.balance(owner) - balance == escrow
    task = driver.task(task_id)
    assert (task["escrow"], task["stakes"], task["unclaimed"]) == (0, STAKE, 5 * FIFTH)
    assert_solvent(driver)
