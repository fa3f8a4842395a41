"""Task lifecycle from the owner's and the validators' side: createTask, cancelTask, withdrawRefund,
bondValidator, withdrawBond, and UnknownTask on every function that takes a task id."""

from __future__ import annotations

import pytest
from brownie import TrainingMarket
from brownie.exceptions import VirtualMachineError
from conftest import (
    DEFAULT_BUDGET,
    DEFAULT_PARAMS,
    ETHER,
    FINALIZED,
    OPEN,
    PARAM_FIELDS,
    SPEC_CID,
    TASK_ACTIVE,
    TASK_CANCELLED,
    TASK_COMPLETED,
    ZERO_ADDRESS,
    ZERO_BYTES32,
    digest_of,
    make_proposal,
    reverts_with,
    task_params,
)

pytestmark = pytest.mark.currencies

MAX_ROUNDS = 1000
MAX_VALIDATORS = 32
MAX_CID_BYTES = 128
STAKE = DEFAULT_PARAMS["contributorStake"]
BOND = DEFAULT_PARAMS["validatorBond"]
SLASH = DEFAULT_PARAMS["validatorSlash"]
ROUND_BUDGET = DEFAULT_BUDGET // DEFAULT_PARAMS["numRounds"]


# ---------------------------------------------------------------------------------------------------- helpers


def create(driver, owner, validators, *, budget=DEFAULT_BUDGET, spec_cid=SPEC_CID, **params):
    """createTask (createTokenTask for a token driver) straight on the market, no bonding; returns the
    transaction."""
    args = (task_params(**params), spec_cid, list(validators))
    if driver.token is None:
        return driver.market.createTask(*args, driver.deposit(owner, budget))
    return driver.market.createTokenTask(*args, driver.token, budget, driver.deposit(owner, budget))


def addresses(count: int) -> list[str]:
    """`count` distinct non-zero addresses that are not brownie accounts."""
    return [f"0x{i:040x}" for i in range(0x1000, 0x1000 + count)]


@pytest.fixture
def accepted_task(driver, task_id):
    """task_id with round 0 accepted by validators 0 and 1 (validator 2 silent), its rewards reserved."""
    result = driver.accept(task_id, 0)
    return task_id, result


# ------------------------------------------------------------------------------------------------- createTask


def test_create_task_ids_count_from_one(driver, market, owner, validators):
    first = create(driver, owner, validators).return_value
    second = create(driver, owner, validators).return_value
    assert (first, second) == (1, 2)
    assert market.taskCount() == 2


def test_create_task_stores_params_owner_and_status(driver, market, owner, validators):
    task_id = create(driver, owner, validators).return_value
    task = driver.task(task_id)
    stored = task["params"]
    assert stored["specDigest"] == "0x" + DEFAULT_PARAMS["specDigest"].hex()
    for name in PARAM_FIELDS[1:]:
        assert stored[name] == DEFAULT_PARAMS[name], name
    assert task["owner"] == owner
    assert task["status"] == TASK_ACTIVE
    assert (task["currentRound"], task["activeContributors"], task["pendingRounds"]) == (0, 0, 0)
    assert (task["closedAt"], task["burned"]) == (0, 0)
    assert market.validatorsOf(task_id) == list(validators)


def test_create_task_escrows_budget_and_splits_round_budget(driver, market, owner, validators):
    budget = 10 * ETHER + 2  # not a multiple of numRounds: the remainder stays in escrow
    owner_before, market_before = driver.balance(owner), driver.balance(market)
    task_id = create(driver, owner, validators, budget=budget, numRounds=3).return_value
    task = driver.task(task_id)
    assert task["escrow"] == budget
    assert task["roundBudget"] == budget // 3
    buckets = ("reserved", "unclaimed", "stakes", "bonds", "challengeBonds", "burned")
    assert [task[name] for name in buckets] == [0] * len(buckets)
    assert owner_before - driver.balance(owner) == budget
    assert driver.balance(market) - market_before == budget
    assert market.taskHoldings(task_id) == budget


def test_create_task_without_arbiter_reverts_bad_arbiter(driver, market, owner, validators):
    with reverts_with("BadArbiter", ZERO_ADDRESS):
        create(driver, owner, validators, arbiter=ZERO_ADDRESS)


def test_create_task_with_owner_as_arbiter_reverts_bad_arbiter(driver, market, owner, validators):
    with reverts_with("BadArbiter", owner):
        create(driver, owner, validators, arbiter=str(owner))


@pytest.mark.parametrize("position", [0, 2])
def test_create_task_with_validator_as_arbiter_reverts_bad_arbiter(
    driver, market, owner, validators, position
):
    with reverts_with("BadArbiter", validators[position]):
        create(driver, owner, validators, arbiter=str(validators[position]))


def test_create_task_keeps_explicit_arbiter(driver, market, owner, validators, outsider):
    task_id = create(driver, owner, validators, arbiter=str(outsider)).return_value
    assert driver.params(task_id)["arbiter"] == outsider


def test_create_task_lists_validators_unbonded(driver, market, owner, validators, outsider):
    task_id = create(driver, owner, validators).return_value
    for validator in validators:
        assert tuple(market.validatorInfo(task_id, validator)) == (True, False, 0)
    assert tuple(market.validatorInfo(task_id, outsider)) == (False, False, 0)


@pytest.mark.parametrize("bond", ["contributorStake", "validatorBond", "challengeBond"])
def test_create_task_with_a_zero_bond_reverts_bad_bond(driver, market, owner, validators, bond):
    with reverts_with("BadBond"):
        create(driver, owner, validators, **{bond: 0, "validatorSlash": 0})


def test_create_task_with_one_wei_bonds_is_accepted(driver, market, owner, validators):
    params = {"contributorStake": 1, "validatorBond": 1, "validatorSlash": 1, "challengeBond": 1}
    task_id = create(driver, owner, validators, **params).return_value
    assert {name: driver.params(task_id)[name] for name in params} == params


def test_create_task_emits_task_created(driver, market, owner, validators):
    budget = 5 * ETHER
    tx = create(driver, owner, validators, budget=budget)
    event = tx.events["TaskCreated"]
    assert event["taskId"] == tx.return_value
    assert event["owner"] == owner
    assert event["specCid"] == SPEC_CID
    expected = task_params()
    assert event["params"][0] == "0x" + expected[0].hex()
    assert list(event["params"][1:]) == list(expected[1:])
    assert list(event["validators"]) == list(validators)
    assert event["budget"] == budget


def test_create_task_schedules_round_zero_after_join_duration(driver, market, owner, validators):
    tx = create(driver, owner, validators, joinDuration=600)
    event = tx.events["RoundScheduled"]
    starts = tx.timestamp + 600
    commit_end = starts + DEFAULT_PARAMS["commitDuration"]
    reveal_end = commit_end + DEFAULT_PARAMS["revealDuration"]
    validate_end = reveal_end + DEFAULT_PARAMS["validationDuration"]
    assert dict(event) == {
        "taskId": tx.return_value,
        "round": 0,
        "startsAt": starts,
        "commitEnd": commit_end,
        "revealEnd": reveal_end,
        "validateEnd": validate_end,
    }
    r = driver.round(tx.return_value, 0)
    assert (r["startsAt"], r["commitEnd"], r["revealEnd"], r["validateEnd"]) == (
        starts,
        commit_end,
        reveal_end,
        validate_end,
    )
    assert r["status"] == OPEN


def test_create_task_with_zero_join_duration_starts_round_zero_at_once(driver, market, owner, validators):
    tx = create(driver, owner, validators, joinDuration=0)
    assert driver.round(tx.return_value, 0)["startsAt"] == tx.timestamp


def test_create_task_with_zero_budget_reverts_empty_budget(driver, market, owner, validators):
    with reverts_with("EmptyBudget"):
        create(driver, owner, validators, budget=0)


def test_create_token_task_refuses_ether_sent_along(market, token, owner, validators):
    """createTokenTask is not payable: ETH sent with it reverts, and neither ETH nor tokens move."""
    token.approve(market, DEFAULT_BUDGET, {"from": owner})
    data = market.createTokenTask.encode_input(
        task_params(), SPEC_CID, list(validators), token, DEFAULT_BUDGET
    )
    count, eth_before, tokens_before = market.taskCount(), owner.balance(), token.balanceOf(owner)
    with pytest.raises(VirtualMachineError):
        owner.transfer(market, 1, data=data)
    assert market.taskCount() == count
    assert (owner.balance(), market.balance()) == (eth_before, 0)
    assert (token.balanceOf(owner), token.balanceOf(market)) == (tokens_before, 0)
    market.createTokenTask(task_params(), SPEC_CID, list(validators), token, DEFAULT_BUDGET, {"from": owner})
    assert market.taskCount() == count + 1  # the same call without ETH is accepted


@pytest.mark.parametrize("num_rounds", [0, MAX_ROUNDS + 1])
def test_create_task_bad_round_count_reverts(driver, market, owner, validators, num_rounds):
    with reverts_with("BadRoundCount", num_rounds):
        create(driver, owner, validators, numRounds=num_rounds)


def test_create_task_accepts_max_rounds(driver, market, owner, validators):
    task_id = create(driver, owner, validators, budget=MAX_ROUNDS, numRounds=MAX_ROUNDS).return_value
    assert driver.task(task_id)["roundBudget"] == 1


@pytest.mark.parametrize(("minimum", "maximum"), [(0, 4), (0, 0), (3, 2)])
def test_create_task_bad_contributor_range_reverts(driver, market, owner, validators, minimum, maximum):
    with reverts_with("BadContributorRange", minimum, maximum):
        create(driver, owner, validators, minContributors=minimum, maxContributors=maximum)


@pytest.mark.parametrize(
    "duration", ["commitDuration", "revealDuration", "validationDuration", "challengeDuration"]
)
def test_create_task_zero_duration_reverts_bad_duration(driver, market, owner, validators, duration):
    with reverts_with("BadDuration"):
        create(driver, owner, validators, **{duration: 0})


def test_create_task_challenge_shorter_than_validation_reverts_bad_duration(
    driver, market, owner, validators
):
    with reverts_with("BadDuration"):
        create(driver, owner, validators, validationDuration=1800, challengeDuration=1799)


def test_create_task_challenge_as_long_as_validation_is_accepted(driver, market, owner, validators):
    task_id = create(driver, owner, validators, validationDuration=1800, challengeDuration=1800).return_value
    assert driver.params(task_id)["challengeDuration"] == 1800


@pytest.mark.parametrize("count", [0, MAX_VALIDATORS + 1])
def test_create_task_bad_validator_count_reverts(driver, market, owner, count):
    with reverts_with("BadValidatorCount", count):
        create(driver, owner, addresses(count), quorum=1)


def test_create_task_accepts_max_validators(driver, market, owner):
    task_id = create(driver, owner, addresses(MAX_VALIDATORS), quorum=MAX_VALIDATORS).return_value
    assert len(market.validatorsOf(task_id)) == MAX_VALIDATORS


def test_create_task_zero_validator_reverts_bad_validator(driver, market, owner, validators):
    with reverts_with("BadValidator", ZERO_ADDRESS):
        create(driver, owner, [validators[0], ZERO_ADDRESS, validators[1]])


def test_create_task_duplicate_validator_reverts_bad_validator(driver, market, owner, validators):
    with reverts_with("BadValidator", validators[0]):
        create(driver, owner, [validators[0], validators[1], validators[0]])


@pytest.mark.parametrize("quorum", [0, 1, 4])
def test_create_task_bad_quorum_reverts(driver, market, owner, validators, quorum):
    with reverts_with("BadQuorum", quorum, len(validators)):
        create(driver, owner, validators, quorum=quorum)


@pytest.mark.parametrize(
    ("count", "quorum"), [(1, 0), (2, 1), (4, 2), (5, 2), (MAX_VALIDATORS, MAX_VALIDATORS // 2)]
)
def test_create_task_quorum_of_half_or_less_reverts_bad_quorum(driver, market, owner, count, quorum):
    with reverts_with("BadQuorum", quorum, count):
        create(driver, owner, addresses(count), quorum=quorum)


@pytest.mark.parametrize(("count", "quorum"), [(1, 1), (2, 2), (4, 3), (5, 3), (MAX_VALIDATORS, 17)])
def test_create_task_smallest_majority_quorum_is_accepted(driver, market, owner, count, quorum):
    task_id = create(driver, owner, addresses(count), quorum=quorum).return_value
    assert driver.params(task_id)["quorum"] == quorum


def test_create_task_quorum_equal_to_validator_count_is_accepted(driver, market, owner, validators):
    task_id = create(driver, owner, validators, quorum=len(validators)).return_value
    assert driver.params(task_id)["quorum"] == len(validators)


def test_create_task_slash_above_bond_reverts_bad_slash(driver, market, owner, validators):
    with reverts_with("BadSlash", BOND + 1, BOND):
        create(driver, owner, validators, validatorBond=BOND, validatorSlash=BOND + 1)


def test_create_task_slash_equal_to_bond_is_accepted(driver, market, owner, validators):
    task_id = create(driver, owner, validators, validatorBond=BOND, validatorSlash=BOND).return_value
    assert driver.params(task_id)["validatorSlash"] == BOND


@pytest.mark.parametrize("spec_cid", ["", "b" * (MAX_CID_BYTES + 1)], ids=["empty", "129-bytes"])
def test_create_task_bad_spec_cid_reverts(driver, market, owner, validators, spec_cid):
    with reverts_with("BadCid"):
        create(driver, owner, validators, spec_cid=spec_cid)


def test_create_task_accepts_128_byte_spec_cid(driver, market, owner, validators):
    tx = create(driver, owner, validators, spec_cid="b" * MAX_CID_BYTES)
    assert tx.events["TaskCreated"]["specCid"] == "b" * MAX_CID_BYTES


# ------------------------------------------------------------------------------------------------- cancelTask


def test_cancel_task_by_outsider_reverts_not_owner(market, outsider, task_id):
    with reverts_with("NotOwner", outsider):
        market.cancelTask(task_id, {"from": outsider})


def test_cancel_task_by_validator_reverts_not_owner(market, validators, task_id):
    with reverts_with("NotOwner", validators[0]):
        market.cancelTask(task_id, {"from": validators[0]})


def test_cancel_task_refunds_whole_escrow_to_owner(driver, market, owner, task_id):
    before = driver.balance(owner)
    market.cancelTask(task_id, {"from": owner})
    assert driver.balance(owner) - before == DEFAULT_BUDGET
    task = driver.task(task_id)
    assert task["status"] == TASK_CANCELLED
    assert task["escrow"] == 0


def test_cancel_task_emits_cancelled_and_refunded(market, owner, task_id):
    tx = market.cancelTask(task_id, {"from": owner})
    assert dict(tx.events["TaskCancelled"]) == {"taskId": task_id}
    assert dict(tx.events["EscrowRefunded"]) == {"taskId": task_id, "owner": owner, "amount": DEFAULT_BUDGET}


def test_cancel_task_leaves_stakes_and_bonds_in_place(
    driver, market, owner, validators, contributors, task_id
):
    market.cancelTask(task_id, {"from": owner})
    task = driver.task(task_id)
    assert task["stakes"] == len(contributors) * STAKE
    assert task["bonds"] == len(validators) * BOND
    assert market.taskHoldings(task_id) == task["stakes"] + task["bonds"]


def test_cancel_task_records_closed_at(driver, market, owner, task_id):
    tx = market.cancelTask(task_id, {"from": owner})
    assert driver.task(task_id)["closedAt"] == tx.timestamp


def test_cancel_task_with_commits_but_no_reveals_is_allowed(driver, market, owner, task_id):
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)  # every contributor committed: the reveal phase is open
    before = driver.balance(owner)
    market.cancelTask(task_id, {"from": owner})
    assert driver.balance(owner) - before == DEFAULT_BUDGET


def test_cancel_task_after_a_reveal_reverts_round_has_reveals(driver, market, owner, task_id):
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)
    driver.reveal(task_id, 0, updates[:1])
    with reverts_with("RoundHasReveals", 0):
        market.cancelTask(task_id, {"from": owner})


def test_cancel_task_in_validation_phase_with_reveals_reverts_round_has_reveals(
    driver, market, owner, task_id
):
    driver.submit(task_id, 0)
    with reverts_with("RoundHasReveals", 0):
        market.cancelTask(task_id, {"from": owner})
    assert driver.task(task_id)["status"] == TASK_ACTIVE


def test_cancel_task_after_failed_round_with_reveals_is_allowed(driver, market, owner, outsider, task_id):
    """A round failed for too few reveals leaves the next round without reveals: the owner may cancel."""
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)
    driver.sleep_until(driver.round(task_id, 0)["commitEnd"])
    driver.reveal(task_id, 0, updates[:1])
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    market.failRound(task_id, {"from": outsider})
    tx = market.cancelTask(task_id, {"from": owner})
    assert tx.events["EscrowRefunded"]["amount"] == DEFAULT_BUDGET


def test_cancel_task_twice_reverts_task_not_active(market, owner, task_id):
    market.cancelTask(task_id, {"from": owner})
    with reverts_with("TaskNotActive", task_id):
        market.cancelTask(task_id, {"from": owner})


def test_cancel_completed_task_reverts_task_not_active(driver, market, owner):
    task_id = driver.create_task(numRounds=1, budget=ETHER)
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.accept(task_id, 0)
    assert driver.task(task_id)["status"] == TASK_COMPLETED
    with reverts_with("TaskNotActive", task_id):
        market.cancelTask(task_id, {"from": owner})


def test_cancel_task_keeps_accepted_round_rewards_reserved(driver, market, owner, accepted_task):
    task_id, _ = accepted_task
    before = driver.balance(owner)
    tx = market.cancelTask(task_id, {"from": owner})
    assert tx.events["EscrowRefunded"]["amount"] == DEFAULT_BUDGET - ROUND_BUDGET
    assert driver.balance(owner) - before == DEFAULT_BUDGET - ROUND_BUDGET
    task = driver.task(task_id)
    assert (task["escrow"], task["reserved"], task["pendingRounds"]) == (0, ROUND_BUDGET, 1)


def test_accepted_round_stays_payable_after_cancel(driver, market, owner, contributors, accepted_task):
    task_id, result = accepted_task
    market.cancelTask(task_id, {"from": owner})
    driver.finalize(task_id, 0)
    assert driver.round(task_id, 0)["status"] == FINALIZED
    for index, allocation in enumerate(result.reward_allocations):
        account = next(c for c in contributors if c == allocation.account)
        before = driver.balance(account)
        market.claim(task_id, 0, index, allocation.account, allocation.amount, result.reward_proof(index))
        assert driver.balance(account) - before == allocation.amount
    task = driver.task(task_id)
    assert (task["reserved"], task["unclaimed"]) == (0, 0)


# --------------------------------------------------------------------------------------------- withdrawRefund


def test_withdraw_refund_by_outsider_reverts_not_owner(market, owner, outsider, task_id):
    market.cancelTask(task_id, {"from": owner})
    with reverts_with("NotOwner", outsider):
        market.withdrawRefund(task_id, {"from": outsider})


def test_withdraw_refund_while_active_reverts_task_still_active(market, owner, task_id):
    with reverts_with("TaskStillActive", task_id):
        market.withdrawRefund(task_id, {"from": owner})


def test_withdraw_refund_after_cancel_reverts_nothing_to_withdraw(market, owner, task_id):
    market.cancelTask(task_id, {"from": owner})
    with reverts_with("NothingToWithdraw"):
        market.withdrawRefund(task_id, {"from": owner})


def test_withdraw_refund_pays_unspent_round_budget_after_completion(driver, market, owner):
    task_id = driver.create_task(numRounds=1, budget=ETHER)
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.accept(task_id, 0, share=ETHER // 10)  # rewardTotal 0.4 ether of a 1 ether round budget
    assert driver.task(task_id)["status"] == TASK_COMPLETED
    before = driver.balance(owner)
    tx = market.withdrawRefund(task_id, {"from": owner})
    leftover = ETHER - 4 * (ETHER // 10)
    assert driver.balance(owner) - before == leftover
    assert dict(tx.events["EscrowRefunded"]) == {"taskId": task_id, "owner": owner, "amount": leftover}
    task = driver.task(task_id)
    assert (task["escrow"], task["reserved"]) == (0, 4 * (ETHER // 10))


def test_withdraw_refund_pays_budget_division_remainder(driver, market, owner):
    task_id = driver.create_task(numRounds=2, budget=2 * ETHER + 1)
    driver.join(task_id)
    driver.open_commit(task_id)
    for round_ in range(2):
        driver.accept(task_id, round_)  # each round pays its whole round budget of 1 ether
    before = driver.balance(owner)
    market.withdrawRefund(task_id, {"from": owner})
    assert driver.balance(owner) - before == 1


def test_withdraw_refund_pays_validator_slash_collected_after_cancel(driver, market, owner, accepted_task):
    task_id, _ = accepted_task
    market.cancelTask(task_id, {"from": owner})
    driver.finalize(task_id, 0)  # validator 2 never proposed: it loses validatorSlash to the escrow
    before = driver.balance(owner)
    tx = market.withdrawRefund(task_id, {"from": owner})
    assert tx.events["EscrowRefunded"]["amount"] == SLASH
    assert driver.balance(owner) - before == SLASH


def test_withdraw_refund_twice_reverts_nothing_to_withdraw(driver, market, owner):
    task_id = driver.create_task(numRounds=1, budget=ETHER)
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.accept(task_id, 0, share=ETHER // 10)
    market.withdrawRefund(task_id, {"from": owner})
    with reverts_with("NothingToWithdraw"):
        market.withdrawRefund(task_id, {"from": owner})


# ---------------------------------------------------------------------------------------------- bondValidator


def test_bond_validator_by_non_validator_reverts(driver, market, outsider):
    task_id = driver.create_task(bond=False)
    with reverts_with("NotValidator", outsider):
        market.bondValidator(task_id, driver.deposit(outsider, BOND))


def test_bond_validator_twice_reverts_already_bonded(driver, market, validators):
    task_id = driver.create_task()
    with reverts_with("AlreadyBonded"):
        market.bondValidator(task_id, driver.deposit(validators[0], BOND))


def slashed_validator(driver, market, outsider, task_id) -> None:
    """Validators stay silent through round 0's validation phase: failRound slashes each of them once."""
    driver.submit(task_id, 0)
    driver.sleep_until(driver.round(task_id, 0)["validateEnd"])
    market.failRound(task_id, {"from": outsider})


def test_bond_validator_tops_up_a_slashed_bond(driver, market, outsider, validators, task_id):
    slashed_validator(driver, market, outsider, task_id)
    assert tuple(market.validatorInfo(task_id, validators[0])) == (True, False, BOND - SLASH)
    before = driver.balance(validators[0])
    tx = market.bondValidator(task_id, driver.deposit(validators[0], SLASH))
    assert driver.balance(validators[0]) - before == -SLASH
    assert tuple(market.validatorInfo(task_id, validators[0])) == (True, True, BOND)
    assert dict(tx.events["ValidatorBonded"]) == {
        "taskId": task_id,
        "validator": validators[0],
        "amount": SLASH,
    }
    assert driver.task(task_id)["bonds"] == 3 * (BOND - SLASH) + SLASH


@pytest.mark.eth_only
@pytest.mark.parametrize("sent", [0, SLASH - 1, SLASH + 1, BOND])
def test_bond_validator_top_up_of_other_than_the_missing_part_reverts_wrong_amount(
    driver, market, outsider, validators, task_id, sent
):
    """A wrong msg.value: a token task pulls exactly the missing part
    (test_bond_validator_tops_up_a_slashed_bond) and refuses ETH sent along (test_tokens.py)."""
    slashed_validator(driver, market, outsider, task_id)
    with reverts_with("WrongAmount", SLASH, sent):
        market.bondValidator(task_id, {"from": validators[0], "value": sent})


def test_slashed_validator_cannot_propose_until_topped_up(driver, market, outsider, validators, task_id):
    slashed_validator(driver, market, outsider, task_id)
    driver.submit(task_id, 1)
    result = make_proposal([(c, 1) for c in driver.contributors], label="model 1")
    with reverts_with("NotBonded"):
        market.propose(task_id, 1, result.proposal, {"from": validators[0]})
    market.bondValidator(task_id, driver.deposit(validators[0], SLASH))
    market.propose(task_id, 1, result.proposal, {"from": validators[0]})
    assert market.proposalOf(task_id, 1, validators[0]) != "0x" + ZERO_BYTES32.hex()


@pytest.mark.eth_only
@pytest.mark.parametrize("sent", [0, BOND - 1, BOND + 1])
def test_bond_validator_wrong_value_reverts_wrong_amount(driver, market, validators, sent):
    """A wrong msg.value: a token task pulls exactly the bond and refuses ETH sent along (test_tokens.py)."""
    task_id = driver.create_task(bond=False)
    with reverts_with("WrongAmount", BOND, sent):
        market.bondValidator(task_id, {"from": validators[0], "value": sent})


def test_bond_validator_after_cancel_reverts_task_not_active(driver, market, owner, validators):
    task_id = driver.create_task(bond=False)
    market.cancelTask(task_id, {"from": owner})
    with reverts_with("TaskNotActive", task_id):
        market.bondValidator(task_id, driver.deposit(validators[0], BOND))


def test_bond_validator_sets_bonded_flag_and_locks_bond(driver, market, validators):
    task_id = driver.create_task(bond=False)
    before = driver.balance(validators[0])
    tx = market.bondValidator(task_id, driver.deposit(validators[0], BOND))
    assert tuple(market.validatorInfo(task_id, validators[0])) == (True, True, BOND)
    assert tuple(market.validatorInfo(task_id, validators[1])) == (True, False, 0)
    assert before - driver.balance(validators[0]) == BOND
    assert driver.task(task_id)["bonds"] == BOND
    assert dict(tx.events["ValidatorBonded"]) == {
        "taskId": task_id,
        "validator": validators[0],
        "amount": BOND,
    }


# ----------------------------------------------------------------------------------------------- withdrawBond


def test_withdraw_bond_by_non_validator_reverts(market, owner, outsider, task_id):
    market.cancelTask(task_id, {"from": owner})
    with reverts_with("NotValidator", outsider):
        market.withdrawBond(task_id, {"from": outsider})


def test_withdraw_bond_while_active_reverts_task_still_active(market, validators, task_id):
    with reverts_with("TaskStillActive", task_id):
        market.withdrawBond(task_id, {"from": validators[0]})


def test_withdraw_bond_with_unfinalized_round_reverts_rounds_pending(
    market, owner, validators, accepted_task
):
    task_id, _ = accepted_task
    market.cancelTask(task_id, {"from": owner})
    with reverts_with("RoundsPending", 1):
        market.withdrawBond(task_id, {"from": validators[0]})


def test_withdraw_bond_never_bonded_reverts_nothing_to_withdraw(driver, market, owner, validators):
    task_id = driver.create_task(bond=False)
    market.cancelTask(task_id, {"from": owner})
    with reverts_with("NothingToWithdraw"):
        market.withdrawBond(task_id, {"from": validators[0]})


def test_withdraw_bond_twice_reverts_nothing_to_withdraw(market, owner, validators, task_id):
    market.cancelTask(task_id, {"from": owner})
    market.withdrawBond(task_id, {"from": validators[0]})
    with reverts_with("NothingToWithdraw"):
        market.withdrawBond(task_id, {"from": validators[0]})


def test_withdraw_bond_refunds_exact_bond(driver, market, owner, validators, task_id):
    market.cancelTask(task_id, {"from": owner})
    before = driver.balance(validators[0])
    tx = market.withdrawBond(task_id, {"from": validators[0]})
    assert driver.balance(validators[0]) - before == BOND
    assert dict(tx.events["BondWithdrawn"]) == {"taskId": task_id, "validator": validators[0], "amount": BOND}
    assert tuple(market.validatorInfo(task_id, validators[0])) == (True, True, 0)
    assert driver.task(task_id)["bonds"] == (len(validators) - 1) * BOND


def test_withdraw_bond_after_finalization_returns_bond_less_slash(
    driver, market, owner, validators, accepted_task
):
    task_id, _ = accepted_task
    market.cancelTask(task_id, {"from": owner})
    driver.finalize(task_id, 0)
    absent, agreeing = validators[2], validators[0]
    before = driver.balance(absent), driver.balance(agreeing)
    market.withdrawBond(task_id, {"from": absent})
    market.withdrawBond(task_id, {"from": agreeing})
    assert driver.balance(absent) - before[0] == BOND - SLASH
    assert driver.balance(agreeing) - before[1] == BOND


# ------------------------------------------------------------------------------------------------ UnknownTask

PROPOSAL = make_proposal([], label="unknown").proposal
UNKNOWN_TASK_CALLS = {
    "cancelTask": lambda d, t, a: d.market.cancelTask(t, {"from": a}),
    "withdrawRefund": lambda d, t, a: d.market.withdrawRefund(t, {"from": a}),
    "bondValidator": lambda d, t, a: d.market.bondValidator(t, d.deposit(a, BOND)),
    "withdrawBond": lambda d, t, a: d.market.withdrawBond(t, {"from": a}),
    "join": lambda d, t, a: d.market.join(t, d.deposit(a, STAKE)),
    "leave": lambda d, t, a: d.market.leave(t, {"from": a}),
    "commit": lambda d, t, a: d.market.commit(t, 0, digest_of("commitment"), {"from": a}),
    "reveal": lambda d, t, a: d.market.reveal(
        t, 0, "bafkrei", digest_of("u"), 1, digest_of("s"), {"from": a}
    ),
    "propose": lambda d, t, a: d.market.propose(t, 0, PROPOSAL, {"from": a}),
    "failRound": lambda d, t, a: d.market.failRound(t, {"from": a}),
    "challenge": lambda d, t, a: d.market.challenge(t, 0, "bafkrei", d.deposit(a, ETHER // 2)),
    "resolveChallenge": lambda d, t, a: d.market.resolveChallenge(t, 0, a, {"from": a}),
    "withdrawChallengeBond": lambda d, t, a: d.market.withdrawChallengeBond(t, 0, {"from": a}),
    "forfeitUnrevealed": lambda d, t, a: d.market.forfeitUnrevealed(t, 0, a, {"from": a}),
    "finalizeRound": lambda d, t, a: d.market.finalizeRound(t, 0, {"from": a}),
    "claim": lambda d, t, a: d.market.claim(t, 0, 0, a, 1, [], {"from": a}),
    "slashContributor": lambda d, t, a: d.market.slashContributor(t, 0, 0, a, 1, [], {"from": a}),
    "phase": lambda d, t, a: d.market.phase(t),
    "getTask": lambda d, t, a: d.market.getTask(t),
    "getRound": lambda d, t, a: d.market.getRound(t, 0),
    "taskHoldings": lambda d, t, a: d.market.taskHoldings(t),
    "tokenOf": lambda d, t, a: d.market.tokenOf(t),
}


@pytest.mark.parametrize("function", sorted(UNKNOWN_TASK_CALLS))
def test_unknown_task_id_reverts_unknown_task(driver, market, owner, function):
    driver.create_task()
    unknown = market.taskCount() + 1
    with reverts_with("UnknownTask", unknown):
        UNKNOWN_TASK_CALLS[function](driver, unknown, owner)


@pytest.mark.parametrize("function", ["cancelTask", "join", "getTask"])
def test_task_id_zero_is_unknown(driver, market, owner, function):
    driver.create_task()
    with reverts_with("UnknownTask", 0):
        UNKNOWN_TASK_CALLS[function](driver, 0, owner)


def test_unknown_task_helpers_cover_every_task_id_function():
    """UNKNOWN_TASK_CALLS lists every ABI function taking a taskId, except views that answer for any id."""
    unchecked_views = {
        "validatorsOf",
        "validatorInfo",
        "contributorInfo",
        "commitmentOf",
        "proposalOf",
        "isClaimed",
        "isSlashed",
    }
    with_task_id = {
        item["name"]
        for item in TrainingMarket.abi
        if item["type"] == "function" and item["inputs"] and item["inputs"][0]["name"] == "taskId"
    }
    assert with_task_id - unchecked_views == set(UNKNOWN_TASK_CALLS)
