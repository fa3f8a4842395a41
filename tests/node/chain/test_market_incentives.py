"""The bindings for the market's incentives towards strangers: forfeiting an unopened commitment, several
challenges of one round and the arbiter's ruling, a challenge bond taken back, a slashed bond topped up, and
the struct fields (``Task.closed_at``, ``Task.burned``, ``Round.challenges``, ``Round.outcome``) they move."""

from __future__ import annotations

import hashlib

import pytest
from cotrain.chain.client import ContractRevert
from cotrain.chain.market import (
    FORFEITED,
    REVEALED,
    ZERO_ADDRESS,
    ZERO_BYTES32,
    ChallengeOutcome,
    Market,
    Proposal,
    RoundStatus,
    TaskStatus,
)
from cotrain.protocol.commitment import update_commitment
from cotrain.protocol.merkle import Allocation, allocation_tree

SALT = b"\x05" * 32


def _revert(call) -> ContractRevert:
    with pytest.raises(ContractRevert) as info:
        call()
    return info.value


def _after(anvil, timestamp: int) -> None:
    """Mine a block at ``timestamp`` (or a second after the latest block, if that is later)."""
    anvil.set_next_block_timestamp(max(timestamp, anvil.timestamp() + 1))
    anvil.mine()


def _commit(market: Market, task_id: int, round_: int, contributors, *, reveal: int) -> None:
    """Every contributor commits; the first ``reveal`` of them reveal."""
    digest = hashlib.sha256(f"update {round_}".encode()).digest()
    for contributor in contributors:
        commitment = update_commitment(contributor.address, task_id, round_, digest, SALT)
        market.with_account(contributor).commit(task_id, round_, commitment)
    for contributor in contributors[:reveal]:
        market.with_account(contributor).reveal(task_id, round_, "bafkreiupdate", digest, 10, SALT)


def _accept(market: Market, task_id: int, round_: int, contributors, validators) -> Proposal:
    """The first two validators (the quorum) propose the same result for the round, accepting it."""
    budget = market.get_task(task_id).round_budget
    tree = allocation_tree([Allocation(c.address, budget // len(contributors)) for c in contributors])
    proposal = Proposal(
        model_digest=hashlib.sha256(f"model {round_}".encode()).digest(),
        record_digest=hashlib.sha256(f"record {round_}".encode()).digest(),
        rewards_root=tree.root,
        slash_root=ZERO_BYTES32,
        reward_total=budget // len(contributors) * len(contributors),
        model_cid="bafkreimodel",
        record_cid="bafkreirecord",
    )
    for validator in validators[:2]:
        market.with_account(validator).propose(task_id, round_, proposal)
    assert market.get_round(task_id, round_).status == RoundStatus.ACCEPTED
    return proposal


def test_an_unopened_commitment_is_forfeited_for_a_bounty(market, new_task, anvil, contributors, outsider):
    task_id = new_task()
    silent = contributors[1]
    for contributor in contributors[:2]:
        market.with_account(contributor).join(task_id)
    _commit(market, task_id, 0, contributors[:2], reveal=1)
    stake = market.get_task(task_id).params.contributor_stake

    early = _revert(lambda: market.with_account(outsider).forfeit_unrevealed(task_id, 0, silent.address))
    assert early.name == "NothingToForfeit" and "reveal phase is not over" in str(early)

    _after(anvil, market.get_round(task_id, 0).reveal_end)
    before = market.get_task(task_id)
    receipt = market.with_account(outsider).forfeit_unrevealed(task_id, 0, silent.address)

    (event,) = market.receipt_events(receipt)
    bounty = stake // market.forfeit_bounty_divisor()
    assert (event.name, dict(event.args)) == (
        "CommitmentForfeited",
        {
            "taskId": task_id,
            "round": 0,
            "contributor": silent.address,
            "amount": stake,
            "caller": outsider.address,
            "bounty": bounty,
        },
    )
    assert market.credits(outsider.address) == bounty
    assert market.commitment_of(task_id, 0, silent.address) == FORFEITED
    assert market.commitment_of(task_id, 0, contributors[0].address) == REVEALED
    info = market.contributor_info(task_id, silent.address)
    assert (info.joined, info.stake) == (False, 0)
    after = market.get_task(task_id)
    assert (after.stakes, after.burned) == (before.stakes - stake, before.burned + stake - bounty)
    assert after.active_contributors == before.active_contributors - 1
    assert (after.status, after.closed_at) == (TaskStatus.ACTIVE, 0)
    again = _revert(lambda: market.with_account(outsider).forfeit_unrevealed(task_id, 0, silent.address))
    assert again.name == "NothingToForfeit"
    market.with_account(outsider).withdraw_credit()
    assert market.credits(outsider.address) == 0


def test_several_challenges_one_upheld_the_others_bonds_return(
    market, new_task, anvil, contributors, validators, arbiter, outsider
):
    task_id = new_task()
    for contributor in contributors[:2]:
        market.with_account(contributor).join(task_id)
    _commit(market, task_id, 0, contributors[:2], reveal=2)
    _accept(market, task_id, 0, contributors[:2], validators)
    params = market.get_task(task_id).params
    winner, loser = outsider, contributors[2]  # contributors[2] took no part in this task
    for challenger in (winner, loser):
        market.with_account(challenger).challenge(task_id, 0, "bafkreievidence")
    twice = _revert(lambda: market.with_account(loser).challenge(task_id, 0, "bafkreievidence"))
    assert twice.name == "AlreadyChallenged"
    r = market.get_round(task_id, 0)
    assert (r.challenges, r.outcome) == (2, ChallengeOutcome.NONE)
    assert market.get_task(task_id).challenge_bonds == 2 * params.challenge_bond

    assert _revert(lambda: market.resolve_challenge(task_id, 0, winner.address)).name == "NotArbiter"
    as_arbiter = market.with_account(arbiter)
    early = _revert(lambda: as_arbiter.resolve_challenge(task_id, 0, ZERO_ADDRESS))
    assert early.name == "ChallengeWindowOpen"  # rejecting them all waits until no more can come
    stranger = _revert(lambda: as_arbiter.resolve_challenge(task_id, 0, contributors[0].address))
    assert (stranger.name, stranger.arguments) == ("NotAChallenger", {"account": contributors[0].address})
    pending = _revert(lambda: market.with_account(loser).withdraw_challenge_bond(task_id, 0))
    assert pending.name == "ChallengePending"

    receipt = as_arbiter.resolve_challenge(task_id, 0, winner.address)

    events = market.receipt_events(receipt)
    slashed = [e.args["amount"] for e in events if e.name == "ValidatorSlashed"]
    assert slashed == [params.validator_bond] * 2, "both proposers lose their whole bond"
    (resolved,) = [e for e in events if e.name == "ChallengeResolved"]
    payout = params.challenge_bond + sum(slashed) // market.upheld_reward_divisor()
    assert (resolved.args["winner"], resolved.args["payout"]) == (winner.address, payout)
    assert market.credits(winner.address) == payout
    r = market.get_round(task_id, 0)
    assert (r.status, r.outcome) == (RoundStatus.VOIDED, ChallengeOutcome.UPHELD)
    task = market.get_task(task_id)
    assert task.status == TaskStatus.HALTED and task.closed_at > 0
    assert task.burned == sum(slashed) - sum(slashed) // market.upheld_reward_divisor()

    receipt = market.with_account(loser).withdraw_challenge_bond(task_id, 0)
    (returned,) = market.receipt_events(receipt)
    assert (returned.name, returned.args["challenger"], returned.args["amount"]) == (
        "ChallengeBondReturned",
        loser.address,
        params.challenge_bond,
    )
    assert _revert(lambda: market.with_account(winner).withdraw_challenge_bond(task_id, 0)).name == (
        "NothingToWithdraw"
    )
    assert market.get_task(task_id).challenge_bonds == 0


def test_a_slashed_validator_tops_its_bond_up(market, new_task, anvil, contributors, validators):
    task_id = new_task()
    for contributor in contributors[:2]:
        market.with_account(contributor).join(task_id)
    _commit(market, task_id, 0, contributors[:2], reveal=2)
    _accept(market, task_id, 0, contributors[:2], validators)
    params = market.get_task(task_id).params
    _after(anvil, market.get_round(task_id, 0).accepted_at + params.challenge_duration)
    market.finalize_round(task_id, 0)  # the silent third validator loses validator_slash
    silent = market.with_account(validators[2])
    info = silent.validator_info(task_id, validators[2].address)
    assert (info.bonded, info.bond) == (False, params.validator_bond - params.validator_slash)

    receipt = silent.bond_validator(task_id)  # sends what the bond lacks

    (bonded,) = market.receipt_events(receipt)
    assert (bonded.name, bonded.args["amount"]) == ("ValidatorBonded", params.validator_slash)
    info = silent.validator_info(task_id, validators[2].address)
    assert (info.bonded, info.bond) == (True, params.validator_bond)
    assert _revert(lambda: silent.bond_validator(task_id, bond_wei=1)).name == "AlreadyBonded"
