"""propose, failRound and finalizeRound: when each may be called, and what it moves between the buckets."""

import eth_abi
import pytest
from conftest import (
    ACCEPTED,
    COMMIT,
    DEFAULT_BUDGET,
    EXPIRED,
    FAILED,
    FINALIZED,
    JOIN,
    OPEN,
    REVEAL,
    TASK_COMPLETED,
    VALIDATE,
    digest_of,
    make_proposal,
    next_block_at,
    reverts_with,
)
from eth_utils import keccak

pytestmark = pytest.mark.currencies

PROPOSAL_FIELDS = (
    "modelDigest",
    "recordDigest",
    "rewardsRoot",
    "slashRoot",
    "rewardTotal",
    "modelCid",
    "recordCid",
)


def proposal_hash(proposal: tuple) -> str:
    """The hash a proposal is filed under (digests, roots and reward total, not the CIDs), as 0x-hex."""
    fields = [bytes.fromhex(digest[2:]) for digest in proposal[:4]] + [proposal[4]]
    return (
        "0x" + keccak(eth_abi.encode(["bytes32", "bytes32", "bytes32", "bytes32", "uint256"], fields)).hex()
    )


def with_field(proposal: tuple, name: str, value) -> tuple:
    """The proposal tuple with one field replaced."""
    fields = list(proposal)
    fields[PROPOSAL_FIELDS.index(name)] = value
    return tuple(fields)


def equal_result(driver, task_id, round_=0, label=None):
    """Equal shares of the round budget for all four contributors."""
    each = driver.task(task_id)["roundBudget"] // len(driver.contributors)
    return make_proposal([(c, each) for c in driver.contributors], label=label or f"model {round_}")


def bond_of(market, task_id, validator) -> int:
    return market.validatorInfo(task_id, validator)[2]


def slashed_validators(tx) -> list[tuple[str, int]]:
    if "ValidatorSlashed" not in tx.events:
        return []
    return [(e["validator"], e["amount"]) for e in tx.events["ValidatorSlashed"]]


@pytest.fixture
def validating(driver, task_id):
    """Round 0 of task_id in its Validate phase, all four updates revealed; returns the task id."""
    driver.submit(task_id, 0)
    return task_id


@pytest.fixture
def result(driver, validating):
    return equal_result(driver, validating)


@pytest.fixture
def accepted(driver, validating, result):
    """Round 0 accepted by validators 0 and 1 (validator 2 proposed nothing); returns the acceptance tx."""
    driver.market.propose(validating, 0, result.proposal, {"from": driver.validators[0]})
    return driver.market.propose(validating, 0, result.proposal, {"from": driver.validators[1]})


def reveal_only(driver, task_id, round_, count):
    """All four contributors commit, `count` of them reveal; returns when the reveal phase is over."""
    updates = driver.updates(round_)
    driver.commit(task_id, round_, updates)
    driver.sleep_until(driver.round(task_id, round_)["commitEnd"])
    driver.reveal(task_id, round_, updates[:count])


# ---------------------------------------------------------------- propose: who and when


def test_propose_in_join_phase_reverts_wrong_phase(driver, market, validators):
    task_id = driver.create_task()
    with reverts_with("WrongPhase", VALIDATE, JOIN):
        market.propose(task_id, 0, make_proposal([]).proposal, {"from": validators[0]})


def test_propose_in_commit_phase_reverts_wrong_phase(market, validators, task_id):
    with reverts_with("WrongPhase", VALIDATE, COMMIT):
        market.propose(task_id, 0, make_proposal([]).proposal, {"from": validators[0]})


def test_propose_before_reveal_phase_ends_reverts_wrong_phase(driver, market, validators, task_id):
    reveal_only(driver, task_id, 0, 3)
    next_block_at(driver.round(task_id, 0)["revealEnd"] - 1)
    with reverts_with("WrongPhase", VALIDATE, REVEAL):
        market.propose(task_id, 0, equal_result(driver, task_id).proposal, {"from": validators[0]})


def test_propose_at_reveal_end_is_accepted(driver, market, validators, task_id):
    reveal_only(driver, task_id, 0, 3)
    reveal_end = driver.round(task_id, 0)["revealEnd"]
    next_block_at(reveal_end)
    tx = market.propose(task_id, 0, equal_result(driver, task_id).proposal, {"from": validators[0]})
    assert tx.timestamp == reveal_end
    assert "RoundProposed" in tx.events


def test_propose_by_outsider_reverts_not_validator(market, outsider, validating, result):
    with reverts_with("NotValidator", outsider):
        market.propose(validating, 0, result.proposal, {"from": outsider})


def test_propose_by_contributor_reverts_not_validator(market, contributors, validating, result):
    with reverts_with("NotValidator", contributors[0]):
        market.propose(validating, 0, result.proposal, {"from": contributors[0]})


def test_propose_by_unbonded_validator_reverts_not_bonded(driver, market, validators):
    task_id = driver.create_task(bond=False)
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.submit(task_id, 0)
    with reverts_with("NotBonded"):
        market.propose(task_id, 0, equal_result(driver, task_id).proposal, {"from": validators[0]})


def test_second_proposal_by_same_validator_reverts_already_proposed(
    driver, market, validators, validating, result
):
    market.propose(validating, 0, result.proposal, {"from": validators[0]})
    other = equal_result(driver, validating, label="other model")
    with reverts_with("AlreadyProposed"):
        market.propose(validating, 0, other.proposal, {"from": validators[0]})


def test_propose_with_too_few_reveals_reverts(driver, market, validators, task_id):
    reveal_only(driver, task_id, 0, 1)
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    with reverts_with("TooFewReveals", 1, 2):
        market.propose(task_id, 0, equal_result(driver, task_id).proposal, {"from": validators[0]})


def test_propose_over_round_budget_reverts(driver, market, validators, validating):
    budget = driver.task(validating)["roundBudget"]
    over = make_proposal([(driver.contributors[0], budget + 1)])
    with reverts_with("RewardsOverBudget", budget + 1, budget):
        market.propose(validating, 0, over.proposal, {"from": validators[0]})


def test_propose_of_whole_round_budget_is_accepted(driver, market, validators, validating):
    budget = driver.task(validating)["roundBudget"]
    whole = make_proposal([(driver.contributors[0], budget)])
    tx = market.propose(validating, 0, whole.proposal, {"from": validators[0]})
    assert tx.events["RoundProposed"]["proposal"][4] == budget


@pytest.mark.parametrize(
    ("field", "cid"),
    [("modelCid", ""), ("recordCid", ""), ("modelCid", "b" * 129), ("recordCid", "b" * 129)],
    ids=["empty-model", "empty-record", "long-model", "long-record"],
)
def test_propose_with_bad_cid_reverts(market, validators, validating, result, field, cid):
    with reverts_with("BadCid"):
        market.propose(validating, 0, with_field(result.proposal, field, cid), {"from": validators[0]})


def test_propose_with_128_byte_cids_is_accepted(market, validators, validating, result):
    proposal = with_field(with_field(result.proposal, "modelCid", "m" * 128), "recordCid", "r" * 128)
    tx = market.propose(validating, 0, proposal, {"from": validators[0]})
    assert tx.events["RoundProposed"]["proposal"][5] == "m" * 128


def test_propose_after_cancel_reverts_task_not_active(driver, market, owner, validators, task_id):
    reveal_only(driver, task_id, 0, 0)  # a round with reveals cannot be cancelled
    market.cancelTask(task_id, {"from": owner})
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    with reverts_with("TaskNotActive", task_id):
        market.propose(task_id, 0, equal_result(driver, task_id).proposal, {"from": validators[0]})


def test_propose_for_a_later_round_reverts_wrong_round(market, validators, validating, result):
    with reverts_with("WrongRound", 0, 1):
        market.propose(validating, 1, result.proposal, {"from": validators[0]})


def test_propose_for_a_failed_round_reverts_wrong_round_status(driver, market, outsider, validators, task_id):
    reveal_only(driver, task_id, 0, 1)
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    market.failRound(task_id, {"from": outsider})
    with reverts_with("WrongRoundStatus", FAILED):
        market.propose(task_id, 0, equal_result(driver, task_id).proposal, {"from": validators[0]})


# ---------------------------------------------------------------- propose: votes and acceptance


def test_propose_emits_round_proposed_and_records_hash(market, validators, validating, result):
    tx = market.propose(validating, 0, result.proposal, {"from": validators[0]})
    event = tx.events["RoundProposed"]
    assert event["taskId"] == validating
    assert event["round"] == 0
    assert event["validator"] == validators[0]
    assert event["proposalHash"] == proposal_hash(result.proposal)
    assert tuple(event["proposal"]) == result.proposal
    assert market.proposalOf(validating, 0, validators[0]) == proposal_hash(result.proposal)


def test_proposal_below_quorum_leaves_round_open(driver, market, validators, validating, result):
    tx = market.propose(validating, 0, result.proposal, {"from": validators[0]})
    assert "RoundAccepted" not in tx.events
    assert driver.round(validating, 0)["status"] == OPEN
    assert driver.task(validating)["currentRound"] == 0


def test_quorum_th_identical_proposal_emits_round_accepted(validating, result, accepted):
    event = accepted.events["RoundAccepted"]
    assert event["taskId"] == validating
    assert event["round"] == 0
    assert event["proposalHash"] == proposal_hash(result.proposal)
    assert event["modelDigest"] == result.proposal[0]
    assert event["rewardTotal"] == result.proposal[4]


def test_quorum_th_identical_proposal_stores_the_accepted_result(driver, validating, result, accepted):
    r = driver.round(validating, 0)
    assert r["status"] == ACCEPTED
    assert r["acceptedAt"] == accepted.timestamp
    assert r["acceptedHash"] == proposal_hash(result.proposal)
    assert r["modelDigest"] == result.proposal[0]
    assert r["rewardsRoot"] == result.proposal[2]
    assert r["slashRoot"] == result.proposal[3]
    assert r["rewardTotal"] == result.proposal[4]


def test_acceptance_moves_exactly_reward_total_from_escrow_to_reserved(
    driver, market, validators, validating
):
    share = driver.task(validating)["roundBudget"] // 5  # leave part of the budget unspent
    result = make_proposal([(c, share) for c in driver.contributors])
    before = driver.task(validating)
    balance = driver.balance(market)
    market.propose(validating, 0, result.proposal, {"from": validators[0]})
    market.propose(validating, 0, result.proposal, {"from": validators[1]})
    after = driver.task(validating)
    assert after["escrow"] == before["escrow"] - 4 * share
    assert after["reserved"] == before["reserved"] + 4 * share
    assert after["pendingRounds"] == before["pendingRounds"] + 1
    assert driver.balance(market) == balance


def test_acceptance_schedules_next_round_at_acceptance_block(driver, market, validating, accepted):
    params = driver.params(validating)
    r1 = driver.round(validating, 1)
    assert driver.task(validating)["currentRound"] == 1
    assert r1["startsAt"] == accepted.timestamp
    assert r1["commitEnd"] == accepted.timestamp + params["commitDuration"]
    assert r1["revealEnd"] == r1["commitEnd"] + params["revealDuration"]
    assert r1["validateEnd"] == r1["revealEnd"] + params["validationDuration"]
    scheduled = accepted.events["RoundScheduled"]
    assert (scheduled["round"], scheduled["startsAt"]) == (1, accepted.timestamp)
    assert market.phase(validating) == COMMIT


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("modelDigest", digest_of("another model")),
        ("recordDigest", digest_of("another record")),
        ("rewardsRoot", digest_of("another root")),
        ("slashRoot", digest_of("a slash root")),
        ("rewardTotal", 1),
    ],
    ids=["modelDigest", "recordDigest", "rewardsRoot", "slashRoot", "rewardTotal"],
)
def test_differing_proposal_does_not_count_toward_quorum(
    driver, market, validators, validating, result, field, value
):
    differing = with_field(result.proposal, field, value)
    market.propose(validating, 0, result.proposal, {"from": validators[0]})
    tx = market.propose(validating, 0, differing, {"from": validators[1]})
    assert "RoundAccepted" not in tx.events
    assert driver.round(validating, 0)["status"] == OPEN
    tx = market.propose(validating, 0, result.proposal, {"from": validators[2]})
    assert tx.events["RoundAccepted"]["proposalHash"] == proposal_hash(result.proposal)


def test_proposals_differing_only_in_cids_agree(driver, market, validators, validating, result):
    relocated = with_field(
        with_field(result.proposal, "modelCid", "bafkreielsewhere"), "recordCid", "bafkreiother"
    )
    market.propose(validating, 0, result.proposal, {"from": validators[0]})
    tx = market.propose(validating, 0, relocated, {"from": validators[1]})
    assert tx.events["RoundAccepted"]["proposalHash"] == proposal_hash(result.proposal)


def test_late_identical_proposal_is_recorded_without_reaccepting(
    driver, market, validators, validating, result, accepted
):
    before = driver.task(validating)
    tx = market.propose(validating, 0, result.proposal, {"from": validators[2]})
    assert tx.events["RoundProposed"]["validator"] == validators[2]
    assert "RoundAccepted" not in tx.events
    assert market.proposalOf(validating, 0, validators[2]) == proposal_hash(result.proposal)
    assert driver.task(validating) == before
    assert driver.round(validating, 0)["acceptedAt"] == accepted.timestamp


def test_late_identical_proposal_spares_the_validators_slash(
    driver, market, validators, validating, result, accepted
):
    market.propose(validating, 0, result.proposal, {"from": validators[2]})
    bond = driver.params(validating)["validatorBond"]
    driver.finalize(validating, 0)
    assert [bond_of(market, validating, v) for v in validators] == [bond] * 3


def test_late_proposal_at_validate_end_reverts(driver, market, validators, validating, result, accepted):
    next_block_at(driver.round(validating, 0)["validateEnd"])
    with reverts_with("WrongPhase", VALIDATE, EXPIRED):
        market.propose(validating, 0, result.proposal, {"from": validators[2]})


# ---------------------------------------------------------------- failRound


def test_fail_round_in_commit_phase_reverts_not_expired(market, outsider, task_id):
    with reverts_with("RoundNotExpired"):
        market.failRound(task_id, {"from": outsider})


def test_fail_round_while_validation_can_still_succeed_reverts(driver, market, outsider, validating):
    next_block_at(driver.round(validating, 0)["validateEnd"] - 1)
    with reverts_with("RoundNotExpired"):
        market.failRound(validating, {"from": outsider})


def test_fail_round_with_too_few_reveals_reverts_during_reveal_phase(driver, market, outsider, task_id):
    reveal_only(driver, task_id, 0, 1)
    next_block_at(driver.round(task_id, 0)["revealEnd"] - 1)
    with reverts_with("RoundNotExpired"):
        market.failRound(task_id, {"from": outsider})


def test_fail_round_with_too_few_reveals_fails_right_after_reveal_phase(driver, market, outsider, task_id):
    reveal_only(driver, task_id, 0, 1)
    next_block_at(driver.round(task_id, 0)["revealEnd"])
    tx = market.failRound(task_id, {"from": outsider})
    event = tx.events["RoundFailed"]
    assert (event["taskId"], event["round"], event["reveals"]) == (task_id, 0, 1)
    assert driver.round(task_id, 0)["status"] == FAILED


def test_fail_round_with_too_few_reveals_slashes_no_validator(driver, market, outsider, validators, task_id):
    reveal_only(driver, task_id, 0, 1)
    driver.sleep_until(driver.round(task_id, 0)["validateEnd"])
    before = driver.task(task_id)
    tx = market.failRound(task_id, {"from": outsider})
    assert slashed_validators(tx) == []
    bond = driver.params(task_id)["validatorBond"]
    assert [bond_of(market, task_id, v) for v in validators] == [bond] * 3
    after = driver.task(task_id)
    assert (after["escrow"], after["bonds"]) == (before["escrow"], before["bonds"])


def test_fail_round_without_quorum_slashes_exactly_the_silent_validator(
    driver, market, outsider, validators, validating, result
):
    market.propose(validating, 0, result.proposal, {"from": validators[0]})
    market.propose(validating, 0, with_field(result.proposal, "rewardTotal", 0), {"from": validators[1]})
    driver.sleep_until(driver.round(validating, 0)["validateEnd"])
    params = driver.params(validating)
    before = driver.task(validating)
    tx = market.failRound(validating, {"from": outsider})
    assert tx.events["RoundFailed"]["reveals"] == 4
    assert slashed_validators(tx) == [(validators[2], params["validatorSlash"])]
    bond = params["validatorBond"]
    assert [bond_of(market, validating, v) for v in validators] == [
        bond,
        bond,
        bond - params["validatorSlash"],
    ]
    after = driver.task(validating)
    assert after["escrow"] == before["escrow"] + params["validatorSlash"]
    assert after["bonds"] == before["bonds"] - params["validatorSlash"]


def test_failed_round_starts_the_next_round(driver, market, outsider, task_id):
    reveal_only(driver, task_id, 0, 1)
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    tx = market.failRound(task_id, {"from": outsider})
    assert driver.task(task_id)["currentRound"] == 1
    assert driver.round(task_id, 1)["startsAt"] == tx.timestamp
    assert tx.events["RoundScheduled"]["round"] == 1
    assert market.phase(task_id) == COMMIT


def test_last_round_failing_completes_the_task(driver, market, outsider):
    task_id = driver.create_task(numRounds=1)
    driver.sleep_until(driver.round(task_id, 0)["validateEnd"])
    tx = market.failRound(task_id, {"from": outsider})
    assert tx.events["TaskCompleted"]["taskId"] == task_id
    assert "RoundScheduled" not in tx.events
    task = driver.task(task_id)
    assert task["status"] == TASK_COMPLETED
    assert task["escrow"] == DEFAULT_BUDGET


# ---------------------------------------------------------------- finalizeRound


def test_finalize_one_second_before_challenge_window_ends_reverts(
    driver, market, outsider, validating, accepted
):
    end = accepted.timestamp + driver.params(validating)["challengeDuration"]
    next_block_at(end - 1)
    with reverts_with("ChallengeWindowOpen", end):
        market.finalizeRound(validating, 0, {"from": outsider})


def test_finalize_at_challenge_window_end_succeeds(driver, market, outsider, validating, accepted):
    end = accepted.timestamp + driver.params(validating)["challengeDuration"]
    next_block_at(end)
    market.finalizeRound(validating, 0, {"from": outsider})
    assert driver.round(validating, 0)["status"] == FINALIZED


def test_finalize_while_previous_round_accepted_reverts_previous_round_pending(
    driver, market, outsider, validating, accepted
):
    driver.accept(validating, 1)
    r1 = driver.round(validating, 1)
    driver.sleep_until(r1["acceptedAt"] + driver.params(validating)["challengeDuration"])
    with reverts_with("PreviousRoundPending", 0):
        market.finalizeRound(validating, 1, {"from": outsider})


def test_finalize_succeeds_once_previous_round_finalized(driver, market, outsider, validating, accepted):
    driver.accept(validating, 1)
    driver.finalize(validating, 0)
    driver.finalize(validating, 1)
    assert driver.round(validating, 1)["status"] == FINALIZED


def fail_with_one_reveal(driver, market, task_id, round_) -> None:
    """Only contributor 0 commits and reveals in round_: too few reveals, the round fails."""
    update = driver.updates(round_, driver.contributors[:1])
    driver.commit(task_id, round_, update)
    driver.sleep_until(driver.round(task_id, round_)["commitEnd"])
    driver.reveal(task_id, round_, update)
    driver.sleep_until(driver.round(task_id, round_)["revealEnd"])
    market.failRound(task_id, {"from": driver.owner})
    assert driver.round(task_id, round_)["status"] == FAILED


def test_finalize_after_previous_round_failed_succeeds(driver, market, outsider, validators, task_id):
    fail_with_one_reveal(driver, market, task_id, 0)
    driver.accept(task_id, 1)
    driver.finalize(task_id, 1)
    assert driver.round(task_id, 1)["status"] == FINALIZED


@pytest.mark.parametrize("failed", [1, 2])
def test_finalize_across_failed_rounds_reverts_while_an_earlier_round_is_pending(
    driver, market, outsider, failed
):
    """Round 0 accepted, then `failed` failed rounds, then an accepted round: it waits for round 0."""
    last = failed + 1
    task_id = driver.create_task(numRounds=last + 1)
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.accept(task_id, 0)
    for round_ in range(1, last):
        fail_with_one_reveal(driver, market, task_id, round_)
    driver.accept(task_id, last)
    driver.sleep_until(
        driver.round(task_id, last)["acceptedAt"] + driver.params(task_id)["challengeDuration"]
    )
    with reverts_with("PreviousRoundPending", 0):
        market.finalizeRound(task_id, last, {"from": outsider})
    market.finalizeRound(task_id, 0, {"from": outsider})
    market.finalizeRound(task_id, last, {"from": outsider})
    assert [driver.round(task_id, r)["status"] for r in range(last + 1)] == [FINALIZED] + [
        FAILED
    ] * failed + [FINALIZED]


def test_finalize_after_failed_rounds_back_to_round_zero_succeeds(driver, market, outsider):
    task_id = driver.create_task(numRounds=3)
    driver.join(task_id)
    driver.open_commit(task_id)
    fail_with_one_reveal(driver, market, task_id, 0)
    fail_with_one_reveal(driver, market, task_id, 1)
    driver.accept(task_id, 2)
    driver.finalize(task_id, 2)
    assert driver.round(task_id, 2)["status"] == FINALIZED


def test_finalize_open_round_reverts_wrong_round_status(market, outsider, validating):
    with reverts_with("WrongRoundStatus", OPEN):
        market.finalizeRound(validating, 0, {"from": outsider})


def test_finalize_twice_reverts_wrong_round_status(driver, market, outsider, validating, accepted):
    driver.finalize(validating, 0)
    with reverts_with("WrongRoundStatus", FINALIZED):
        market.finalizeRound(validating, 0, {"from": outsider})


def test_finalize_failed_round_reverts_wrong_round_status(driver, market, outsider, task_id):
    reveal_only(driver, task_id, 0, 1)
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    market.failRound(task_id, {"from": outsider})
    with reverts_with("WrongRoundStatus", FAILED):
        market.finalizeRound(task_id, 0, {"from": outsider})


def test_finalize_moves_reserved_to_unclaimed(
    driver, market, outsider, validators, validating, result, accepted
):
    market.propose(validating, 0, result.proposal, {"from": validators[2]})  # no slash to blur the buckets
    driver.sleep_until(accepted.timestamp + driver.params(validating)["challengeDuration"])
    before = driver.task(validating)
    tx = market.finalizeRound(validating, 0, {"from": outsider})
    after = driver.task(validating)
    total = result.proposal[4]
    assert after["reserved"] == before["reserved"] - total
    assert after["unclaimed"] == before["unclaimed"] + total
    assert after["escrow"] == before["escrow"]
    assert after["pendingRounds"] == before["pendingRounds"] - 1
    r = driver.round(validating, 0)
    assert (r["status"], r["finalizedAt"]) == (FINALIZED, tx.timestamp)


def test_finalize_emits_round_finalized(driver, market, outsider, validating, result, accepted):
    driver.sleep_until(accepted.timestamp + driver.params(validating)["challengeDuration"])
    tx = market.finalizeRound(validating, 0, {"from": outsider})
    event = tx.events["RoundFinalized"]
    assert (event["taskId"], event["round"], event["rewardTotal"]) == (validating, 0, result.proposal[4])


def test_finalize_slashes_dissenting_validator_into_escrow(
    driver, market, outsider, validators, validating, result
):
    market.propose(
        validating, 0, with_field(result.proposal, "modelDigest", digest_of("x")), {"from": validators[2]}
    )
    market.propose(validating, 0, result.proposal, {"from": validators[0]})
    market.propose(validating, 0, result.proposal, {"from": validators[1]})
    params = driver.params(validating)
    driver.sleep_until(driver.round(validating, 0)["acceptedAt"] + params["challengeDuration"])
    before = driver.task(validating)
    tx = market.finalizeRound(validating, 0, {"from": outsider})
    assert slashed_validators(tx) == [(validators[2], params["validatorSlash"])]
    assert bond_of(market, validating, validators[2]) == params["validatorBond"] - params["validatorSlash"]
    after = driver.task(validating)
    assert after["escrow"] == before["escrow"] + params["validatorSlash"]
    assert after["bonds"] == before["bonds"] - params["validatorSlash"]


def test_finalize_slashes_absent_validator_into_escrow(
    driver, market, outsider, validators, validating, accepted
):
    params = driver.params(validating)
    driver.sleep_until(accepted.timestamp + params["challengeDuration"])
    before = driver.task(validating)
    tx = market.finalizeRound(validating, 0, {"from": outsider})
    event = tx.events["ValidatorSlashed"]
    assert (event["taskId"], event["round"]) == (validating, 0)
    assert slashed_validators(tx) == [(validators[2], params["validatorSlash"])]
    assert [bond_of(market, validating, v) for v in validators] == [
        params["validatorBond"],
        params["validatorBond"],
        params["validatorBond"] - params["validatorSlash"],
    ]
    assert driver.task(validating)["escrow"] == before["escrow"] + params["validatorSlash"]


def test_finalize_slash_is_capped_at_the_remaining_bond(driver, market, outsider, validators):
    slash = 6 * 10**17
    task_id = driver.create_task(validatorSlash=slash)
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.accept(task_id, 0)
    driver.accept(task_id, 1)
    driver.finalize(task_id, 0)
    assert bond_of(market, task_id, validators[2]) == 10**18 - slash
    before = driver.task(task_id)
    driver.sleep_until(driver.round(task_id, 1)["acceptedAt"] + driver.params(task_id)["challengeDuration"])
    tx = market.finalizeRound(task_id, 1, {"from": outsider})
    assert slashed_validators(tx) == [(validators[2], 10**18 - slash)]
    assert bond_of(market, task_id, validators[2]) == 0
    assert driver.task(task_id)["escrow"] == before["escrow"] + 10**18 - slash


def test_finalize_skips_validator_with_nothing_left_to_slash(driver, market, outsider, validators):
    task_id = driver.create_task(validatorSlash=10**18)
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.accept(task_id, 0)
    driver.accept(task_id, 1)
    driver.finalize(task_id, 0)
    driver.sleep_until(driver.round(task_id, 1)["acceptedAt"] + driver.params(task_id)["challengeDuration"])
    tx = market.finalizeRound(task_id, 1, {"from": outsider})
    assert slashed_validators(tx) == []
