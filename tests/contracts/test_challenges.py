"""challenge, resolveChallenge, withdrawChallengeBond and a challenged round's finalization: who may act and
when, what each outcome moves between the buckets (escrow, reserved, bonds, challenge bonds, burned, credits),
and what a halted task leaves to withdraw.

Any number of accounts may challenge a round, once each. The arbiter upholds naming one challenger (the
accepting validators lose their whole bonds, half to the winner and half burned; the others withdraw their
bonds), or rejects them all once the challenge window is over (every bond burns). If it does neither within
the arbitration window, finalizeRound dismisses the challenges and every challenger withdraws its bond.

Every test that walks a task runs in ETH and in an ERC20 (the module is marked currencies): bonds, payouts,
credits and balances are in the task's currency."""

from __future__ import annotations

import pytest
from brownie import accounts
from conftest import (
    ACCEPTED,
    CLOSED,
    DEFAULT_BUDGET,
    DEFAULT_PARAMS,
    DISMISSED,
    ETHER,
    FAILED,
    FINALIZED,
    NO_OUTCOME,
    OPEN,
    REJECTED,
    TASK_ACTIVE,
    TASK_CANCELLED,
    TASK_COMPLETED,
    TASK_HALTED,
    UPHELD,
    VOIDED,
    ZERO_ADDRESS,
    Driver,
    digest_of,
    make_proposal,
    next_block_at,
    reverts_with,
)

BOND = DEFAULT_PARAMS["challengeBond"]
VALIDATOR_BOND = DEFAULT_PARAMS["validatorBond"]
VALIDATOR_SLASH = DEFAULT_PARAMS["validatorSlash"]
STAKE = DEFAULT_PARAMS["contributorStake"]
CHALLENGE_DURATION = DEFAULT_PARAMS["challengeDuration"]
pytestmark = pytest.mark.currencies

ROUND_BUDGET = DEFAULT_BUDGET // DEFAULT_PARAMS["numRounds"]
EVIDENCE = "bafkreievidence"
BUCKETS = ("escrow", "reserved", "unclaimed", "stakes", "bonds", "challengeBonds", "burned", "pendingRounds")
# What an upheld challenge of a round accepted by validators 0 and 1 moves: their two whole bonds, half of
# them (UPHELD_REWARD_DIVISOR = 2) to the winner with its own bond, the other half burned.
SLASHED = 2 * VALIDATOR_BOND
PAYOUT = BOND + SLASHED // 2
BURNED = SLASHED - SLASHED // 2


# ---------------------------------------------------------------- helpers


def ledger(driver, market, task_id, **holders) -> dict:
    """Where the task's money can sit, in the driver's currency: its buckets, the credits, the contract's and
    the holders' balances."""
    task = driver.task(task_id)
    entries = {name: task[name] for name in BUCKETS}
    entries["taskHoldings"] = market.taskHoldings(task_id)
    entries["totalCredits"] = driver.total_credits()
    entries["contract"] = driver.balance(market)
    for label, account in holders.items():
        entries[f"credit:{label}"] = driver.credits(account)
        entries[f"balance:{label}"] = driver.balance(account)
    return entries


def moved(before: dict, after: dict) -> dict:
    """The entries that changed, with their change."""
    return {name: after[name] - before[name] for name in before if after[name] != before[name]}


def assert_solvent(driver, task_ids) -> None:
    """The contract holds exactly the tasks' buckets (burned included) plus the accounts' credits, in the
    driver's currency; a token task leaves the contract's ether and ether credits untouched."""
    market = driver.market
    if driver.token is not None:
        assert (market.balance(), market.totalCredits()) == (0, 0)
    assert driver.balance(market) == sum(market.taskHoldings(t) for t in task_ids) + driver.total_credits()


def accept_round(driver, task_id, round_):
    """Run round_ to acceptance: validator 2 dissents, validators 0 and 1 agree; returns the acceptance tx.

    Each of the four contributors is rewarded a quarter of the round budget.
    """
    market, validators = driver.market, driver.validators
    updates = driver.submit(task_id, round_)
    each = driver.task(task_id)["roundBudget"] // len(updates)
    rewards = [(u.contributor, each) for u in updates]
    dissent = make_proposal(rewards, label=f"dissent {round_}")
    market.propose(task_id, round_, dissent.proposal, {"from": validators[2]})
    result = make_proposal(rewards, label=f"model {round_}")
    market.propose(task_id, round_, result.proposal, {"from": validators[0]})
    tx = market.propose(task_id, round_, result.proposal, {"from": validators[1]})
    assert driver.round(task_id, round_)["status"] == ACCEPTED
    return tx


def challenge_round(driver, task_id, round_, challenger):
    return driver.market.challenge(task_id, round_, EVIDENCE, driver.deposit(challenger, BOND))


def bond_of(market, task_id, validator) -> int:
    return market.validatorInfo(task_id, validator)[2]


def events(tx, name) -> list[dict]:
    return [dict(event) for event in tx.events[name]] if name in tx.events else []


def window_end(driver, task_id, round_) -> int:
    """When the round's challenge window closes (and rejection becomes possible)."""
    return driver.round(task_id, round_)["acceptedAt"] + CHALLENGE_DURATION


def arbitration_end(driver, task_id, round_) -> int:
    """When the arbiter's window closes and finalizeRound dismisses unresolved challenges."""
    return driver.round(task_id, round_)["acceptedAt"] + 2 * CHALLENGE_DURATION


def fresh_account(driver, owner):
    """A new account with 10 ether, and for a token driver also 10 tokens."""
    account = accounts.add()
    owner.transfer(account, 10 * ETHER)
    if driver.token is not None:
        driver.token.mint(account, 10 * ETHER, {"from": owner})
    return account


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def challenger(driver, owner):
    """A fresh account with 10 ether (and 10 tokens) that has no other role in the task."""
    return fresh_account(driver, owner)


@pytest.fixture
def rival(driver, owner):
    """A second fresh challenger."""
    return fresh_account(driver, owner)


@pytest.fixture
def arbitrated(driver, arbiter):
    """A task arbitrated by `arbiter`: validators bonded, four contributors joined, commit phase open."""
    task_id = driver.create_task(arbiter=arbiter.address)
    driver.join(task_id)
    driver.open_commit(task_id)
    return task_id


@pytest.fixture
def accepted(driver, arbitrated):
    """Round 0 of `arbitrated` accepted by validators 0 and 1 over validator 2's dissent; the accepting tx."""
    return accept_round(driver, arbitrated, 0)


@pytest.fixture
def challenged(driver, market, arbitrated, accepted, challenger):
    """Round 0 challenged by `challenger` right after its acceptance; the challenge tx."""
    return challenge_round(driver, arbitrated, 0, challenger)


@pytest.fixture
def contested(driver, market, arbitrated, challenged, rival):
    """Round 0 challenged by `challenger`, then by `rival`."""
    return challenge_round(driver, arbitrated, 0, rival)


@pytest.fixture
def upheld(market, arbiter, arbitrated, challenged, challenger):
    """The challenge on round 0 upheld by the arbiter naming `challenger`; the resolution tx."""
    return market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})


@pytest.fixture
def rejected(driver, market, arbiter, arbitrated, contested):
    """Both challenges of round 0 rejected at the end of the challenge window; the resolution tx."""
    next_block_at(window_end(driver, arbitrated, 0))
    return market.resolveChallenge(arbitrated, 0, ZERO_ADDRESS, {"from": arbiter})


def pipelined(driver, market, task_id, challenger) -> None:
    """Rounds 0 and 1 accepted, then round 0 (not yet finalized) challenged."""
    accept_round(driver, task_id, 0)
    accept_round(driver, task_id, 1)
    assert driver.round(task_id, 0)["status"] == ACCEPTED
    challenge_round(driver, task_id, 0, challenger)


def test_reward_divisor(market):
    assert market.UPHELD_REWARD_DIVISOR() == 2


# ---------------------------------------------------------------- challenge


def test_challenge_counts_and_keeps_round_accepted(driver, arbitrated, challenged):
    r = driver.round(arbitrated, 0)
    assert (r["status"], r["challenges"], r["outcome"]) == (ACCEPTED, 1, NO_OUTCOME)
    assert driver.task(arbitrated)["status"] == TASK_ACTIVE


def test_challenge_emits_round_challenged(arbitrated, challenged, challenger):
    assert events(challenged, "RoundChallenged") == [
        {"taskId": arbitrated, "round": 0, "challenger": challenger, "evidenceCid": EVIDENCE}
    ]


def test_challenge_locks_exactly_the_bond_in_challenge_bonds(
    driver, market, arbitrated, accepted, challenger
):
    before = ledger(driver, market, arbitrated, challenger=challenger)
    challenge_round(driver, arbitrated, 0, challenger)
    assert moved(before, ledger(driver, market, arbitrated, challenger=challenger)) == {
        "challengeBonds": BOND,
        "taskHoldings": BOND,
        "contract": BOND,
        "balance:challenger": -BOND,
    }
    assert_solvent(driver, [arbitrated])


def test_challenge_one_second_before_window_end_succeeds(driver, market, arbitrated, accepted, challenger):
    end = accepted.timestamp + CHALLENGE_DURATION
    next_block_at(end - 1)
    tx = challenge_round(driver, arbitrated, 0, challenger)
    assert tx.timestamp == end - 1
    assert driver.round(arbitrated, 0)["challenges"] == 1


def test_challenge_at_window_end_reverts_challenge_window_closed(
    driver, market, arbitrated, accepted, challenger
):
    next_block_at(accepted.timestamp + CHALLENGE_DURATION)
    with reverts_with("ChallengeWindowClosed"):
        challenge_round(driver, arbitrated, 0, challenger)


def test_challenge_after_window_end_reverts_challenge_window_closed(
    driver, market, arbitrated, accepted, challenger
):
    next_block_at(accepted.timestamp + CHALLENGE_DURATION + 60)
    with reverts_with("ChallengeWindowClosed"):
        challenge_round(driver, arbitrated, 0, challenger)


def test_second_challenge_by_the_same_account_reverts_already_challenged(
    driver, market, arbitrated, challenged, challenger
):
    with reverts_with("AlreadyChallenged"):
        challenge_round(driver, arbitrated, 0, challenger)


def test_a_challenge_does_not_block_others(
    driver, market, owner, validators, contributors, outsider, arbitrated, challenged, rival
):
    """Whoever challenges first, everyone else may still challenge, each with its own bond."""
    for account in (rival, outsider, contributors[0], validators[2], owner):
        challenge_round(driver, arbitrated, 0, account)
    r = driver.round(arbitrated, 0)
    assert (r["status"], r["challenges"], r["outcome"]) == (ACCEPTED, 6, NO_OUTCOME)
    assert driver.task(arbitrated)["challengeBonds"] == 6 * BOND
    assert_solvent(driver, [arbitrated])


@pytest.mark.parametrize("sent", [0, BOND - 1, BOND + 1], ids=["zero", "bond-1", "bond+1"])
@pytest.mark.eth_only  # a wrong msg.value; a token task's counterparts are the token_accepted tests below
def test_challenge_with_wrong_bond_reverts_wrong_amount(market, arbitrated, accepted, challenger, sent):
    with reverts_with("WrongAmount", BOND, sent):
        market.challenge(arbitrated, 0, EVIDENCE, {"from": challenger, "value": sent})


@pytest.fixture
def token_accepted(market, owner, validators, contributors, arbiter, token):
    """For what only a token task has: a token task arbitrated by `arbiter` whose round 0 validators 0 and 1
    accepted; its driver and id."""
    token_driver = Driver(market, owner, validators, contributors, token)
    task_id = token_driver.create_task(arbiter=arbiter.address)
    token_driver.join(task_id)
    token_driver.open_commit(task_id)
    accept_round(token_driver, task_id, 0)
    return token_driver, task_id


@pytest.mark.parametrize("sent", [1, BOND], ids=["one-wei", "bond"])
def test_challenge_of_a_token_task_with_ether_reverts_wrong_amount(
    market, token, outsider, token_accepted, sent
):
    _, task_id = token_accepted
    token.approve(market, BOND, {"from": outsider})
    with reverts_with("WrongAmount", 0, sent):
        market.challenge(task_id, 0, EVIDENCE, {"from": outsider, "value": sent})


def test_challenge_of_a_token_task_approved_short_of_the_bond_reverts(
    market, token, outsider, token_accepted
):
    _, task_id = token_accepted
    token.approve(market, BOND - 1, {"from": outsider})
    with reverts_with("ERC20InsufficientAllowance", market, BOND - 1, BOND):
        market.challenge(task_id, 0, EVIDENCE, {"from": outsider})


def test_challenge_of_a_token_task_approved_beyond_the_bond_pulls_exactly_the_bond(
    market, token, outsider, token_accepted
):
    token_driver, task_id = token_accepted
    token.approve(market, BOND + 1, {"from": outsider})
    before = (token.balanceOf(outsider), token.balanceOf(market))
    market.challenge(task_id, 0, EVIDENCE, {"from": outsider})
    assert (token.balanceOf(outsider), token.balanceOf(market)) == (before[0] - BOND, before[1] + BOND)
    assert token.allowance(outsider, market) == 1
    assert token_driver.task(task_id)["challengeBonds"] == BOND
    assert_solvent(token_driver, [task_id])


@pytest.mark.parametrize("cid", ["", "e" * 129], ids=["empty", "129-bytes"])
def test_challenge_with_bad_evidence_cid_reverts_bad_cid(
    driver, market, arbitrated, accepted, challenger, cid
):
    with reverts_with("BadCid"):
        market.challenge(arbitrated, 0, cid, driver.deposit(challenger, BOND))


def test_challenge_with_128_byte_evidence_cid_is_accepted(driver, market, arbitrated, accepted, challenger):
    tx = market.challenge(arbitrated, 0, "e" * 128, driver.deposit(challenger, BOND))
    assert tx.events["RoundChallenged"]["evidenceCid"] == "e" * 128


def test_challenge_open_round_reverts_wrong_round_status(driver, market, arbitrated, challenger):
    with reverts_with("WrongRoundStatus", OPEN):
        challenge_round(driver, arbitrated, 0, challenger)


def test_challenge_round_not_yet_started_reverts_wrong_round_status(
    driver, market, arbitrated, accepted, challenger
):
    with reverts_with("WrongRoundStatus", OPEN):
        challenge_round(driver, arbitrated, 2, challenger)


def test_challenge_finalized_round_reverts_wrong_round_status(
    driver, market, arbitrated, accepted, challenger
):
    driver.finalize(arbitrated, 0)
    with reverts_with("WrongRoundStatus", FINALIZED):
        challenge_round(driver, arbitrated, 0, challenger)


def test_challenge_failed_round_reverts_wrong_round_status(driver, market, outsider, arbitrated, challenger):
    driver.sleep_until(driver.round(arbitrated, 0)["validateEnd"])
    market.failRound(arbitrated, {"from": outsider})
    with reverts_with("WrongRoundStatus", FAILED):
        challenge_round(driver, arbitrated, 0, challenger)


def test_challenge_voided_round_reverts_wrong_round_status(driver, market, outsider, arbitrated, upheld):
    with reverts_with("WrongRoundStatus", VOIDED):
        challenge_round(driver, arbitrated, 0, outsider)


def test_challenge_unknown_task_reverts_unknown_task(driver, market, arbitrated, accepted, challenger):
    unknown = market.taskCount() + 1
    with reverts_with("UnknownTask", unknown):
        challenge_round(driver, unknown, 0, challenger)


def test_challenge_accepted_round_of_cancelled_task_is_accepted(
    driver, market, owner, arbitrated, accepted, challenger
):
    market.cancelTask(arbitrated, {"from": owner})
    tx = challenge_round(driver, arbitrated, 0, challenger)
    assert tx.events["RoundChallenged"]["challenger"] == challenger
    assert driver.task(arbitrated)["challengeBonds"] == BOND


# ---------------------------------------------------------------- resolveChallenge: who and when


@pytest.mark.parametrize("role", ["owner", "validator", "contributor", "outsider", "challenger"])
def test_resolve_by_anyone_but_the_arbiter_reverts_not_arbiter(
    driver, market, owner, validators, contributors, outsider, challenger, arbitrated, challenged, role
):
    caller = {
        "owner": owner,
        "validator": validators[0],
        "contributor": contributors[0],
        "outsider": outsider,
        "challenger": challenger,
    }[role]
    with reverts_with("NotArbiter", caller):
        market.resolveChallenge(arbitrated, 0, challenger, {"from": caller})
    next_block_at(window_end(driver, arbitrated, 0))
    with reverts_with("NotArbiter", caller):
        market.resolveChallenge(arbitrated, 0, ZERO_ADDRESS, {"from": caller})


def test_resolve_by_arbiter_of_another_task_reverts_not_arbiter(
    driver, market, arbiter, outsider, challenger, arbitrated, challenged
):
    other = driver.create_task(arbiter=outsider.address)
    with reverts_with("NotArbiter", arbiter):
        market.resolveChallenge(other, 0, challenger, {"from": arbiter})


def test_resolve_unknown_task_reverts_unknown_task(market, arbiter, challenger, arbitrated, challenged):
    unknown = market.taskCount() + 1
    with reverts_with("UnknownTask", unknown):
        market.resolveChallenge(unknown, 0, challenger, {"from": arbiter})


def test_resolve_unchallenged_accepted_round_reverts_no_challenge(
    driver, market, arbiter, challenger, arbitrated, accepted
):
    with reverts_with("NoChallenge"):
        market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    next_block_at(window_end(driver, arbitrated, 0))
    with reverts_with("NoChallenge"):
        market.resolveChallenge(arbitrated, 0, ZERO_ADDRESS, {"from": arbiter})


def test_resolve_open_round_reverts_no_challenge(market, arbiter, arbitrated):
    with reverts_with("NoChallenge"):
        market.resolveChallenge(arbitrated, 0, ZERO_ADDRESS, {"from": arbiter})


@pytest.mark.parametrize("again", ["uphold", "reject"])
def test_resolve_rejected_challenges_again_reverts_no_challenge(
    market, arbiter, challenger, arbitrated, rejected, again
):
    winner = challenger if again == "uphold" else ZERO_ADDRESS
    with reverts_with("NoChallenge"):
        market.resolveChallenge(arbitrated, 0, winner, {"from": arbiter})


@pytest.mark.parametrize("again", ["same winner", "other challenger"])
def test_resolve_upheld_challenge_again_reverts_no_challenge(
    market, arbiter, challenger, rival, arbitrated, contested, again
):
    market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    with reverts_with("NoChallenge"):
        market.resolveChallenge(
            arbitrated, 0, challenger if again == "same winner" else rival, {"from": arbiter}
        )


def test_resolve_challenge_dismissed_by_timeout_reverts_no_challenge(
    driver, market, arbiter, challenger, arbitrated, challenged
):
    driver.sleep_until(arbitration_end(driver, arbitrated, 0))
    market.finalizeRound(arbitrated, 0, {"from": arbiter})
    with reverts_with("NoChallenge"):
        market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})


@pytest.mark.parametrize("named", ["outsider", "owner", "validator"])
def test_uphold_naming_a_non_challenger_reverts_not_a_challenger(
    market, owner, validators, arbiter, outsider, arbitrated, challenged, named
):
    account = {"outsider": outsider, "owner": owner, "validator": validators[0]}[named]
    with reverts_with("NotAChallenger", account):
        market.resolveChallenge(arbitrated, 0, account, {"from": arbiter})


def test_uphold_naming_a_challenger_of_another_round_reverts_not_a_challenger(
    driver, market, arbiter, challenger, rival, arbitrated, challenged
):
    accept_round(driver, arbitrated, 1)
    challenge_round(driver, arbitrated, 1, rival)
    with reverts_with("NotAChallenger", rival):
        market.resolveChallenge(arbitrated, 0, rival, {"from": arbiter})


def test_uphold_within_the_challenge_window_is_allowed(
    driver, market, arbiter, challenger, arbitrated, challenged
):
    tx = market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    assert tx.timestamp < window_end(driver, arbitrated, 0)
    assert driver.round(arbitrated, 0)["outcome"] == UPHELD


def test_reject_before_the_challenge_window_ends_reverts_challenge_window_open(
    driver, market, arbiter, arbitrated, challenged
):
    end = window_end(driver, arbitrated, 0)
    next_block_at(end - 1)
    with reverts_with("ChallengeWindowOpen", end):
        market.resolveChallenge(arbitrated, 0, ZERO_ADDRESS, {"from": arbiter})


def test_reject_at_the_challenge_window_end_is_allowed(driver, market, arbiter, arbitrated, challenged):
    end = window_end(driver, arbitrated, 0)
    next_block_at(end)
    tx = market.resolveChallenge(arbitrated, 0, ZERO_ADDRESS, {"from": arbiter})
    assert tx.timestamp == end
    assert driver.round(arbitrated, 0)["outcome"] == REJECTED


@pytest.mark.parametrize("ruling", ["upheld", "rejected"])
def test_resolve_one_second_before_arbitration_end_succeeds(
    driver, market, arbiter, challenger, arbitrated, challenged, ruling
):
    end = arbitration_end(driver, arbitrated, 0)
    next_block_at(end - 1)
    winner = challenger if ruling == "upheld" else ZERO_ADDRESS
    tx = market.resolveChallenge(arbitrated, 0, winner, {"from": arbiter})
    assert tx.timestamp == end - 1
    assert tx.events["ChallengeResolved"]["winner"] == winner


@pytest.mark.parametrize("late", [0, 60], ids=["at-end", "after-end"])
@pytest.mark.parametrize("ruling", ["upheld", "rejected"])
def test_resolve_at_or_after_arbitration_end_reverts_challenge_window_closed(
    driver, market, arbiter, challenger, arbitrated, challenged, late, ruling
):
    next_block_at(arbitration_end(driver, arbitrated, 0) + late)
    winner = challenger if ruling == "upheld" else ZERO_ADDRESS
    with reverts_with("ChallengeWindowClosed"):
        market.resolveChallenge(arbitrated, 0, winner, {"from": arbiter})


# ---------------------------------------------------------------- resolveChallenge: rejected


def test_rejection_burns_every_challenge_bond(
    driver, market, arbiter, arbitrated, contested, challenger, rival
):
    next_block_at(window_end(driver, arbitrated, 0))
    holders = {"challenger": challenger, "rival": rival, "arbiter": arbiter}
    before = ledger(driver, market, arbitrated, **holders)
    market.resolveChallenge(arbitrated, 0, ZERO_ADDRESS, {"from": arbiter})
    assert moved(before, ledger(driver, market, arbitrated, **holders)) == {
        "challengeBonds": -2 * BOND,
        "burned": 2 * BOND,
    }
    assert_solvent(driver, [arbitrated])


def test_rejection_emits_challenge_resolved_without_winner(arbitrated, rejected):
    assert events(rejected, "ChallengeResolved") == [
        {"taskId": arbitrated, "round": 0, "winner": ZERO_ADDRESS, "payout": 0}
    ]
    assert events(rejected, "ValidatorSlashed") == []
    assert events(rejected, "RoundVoided") == []
    assert events(rejected, "TaskHalted") == []


def test_rejection_keeps_the_round_accepted_and_the_bonds(driver, market, validators, arbitrated, rejected):
    r = driver.round(arbitrated, 0)
    assert (r["status"], r["challenges"], r["outcome"]) == (ACCEPTED, 2, REJECTED)
    task = driver.task(arbitrated)
    assert (task["status"], task["pendingRounds"]) == (TASK_ACTIVE, 1)
    assert [bond_of(market, arbitrated, v) for v in validators] == [VALIDATOR_BOND] * 3


def test_rejected_round_finalizes_at_once(driver, market, outsider, arbitrated, rejected):
    before = driver.task(arbitrated)
    tx = market.finalizeRound(arbitrated, 0, {"from": outsider})
    assert events(tx, "ChallengesDismissed") == []
    assert events(tx, "RoundFinalized") == [{"taskId": arbitrated, "round": 0, "rewardTotal": ROUND_BUDGET}]
    after = driver.task(arbitrated)
    assert after["reserved"] == before["reserved"] - ROUND_BUDGET
    assert after["unclaimed"] == before["unclaimed"] + ROUND_BUDGET
    r = driver.round(arbitrated, 0)
    assert (r["status"], r["outcome"]) == (FINALIZED, REJECTED)


def test_rejected_challengers_bonds_are_lost(driver, market, arbitrated, rejected, challenger, rival):
    driver.finalize(arbitrated, 0)
    for account in (challenger, rival):
        assert driver.credits(account) == 0
        with reverts_with("NothingToWithdraw"):
            market.withdrawChallengeBond(arbitrated, 0, {"from": account})
        with reverts_with("NothingToWithdraw"):
            driver.withdraw_credit(account)


def test_rejected_round_cannot_be_challenged_again(driver, market, outsider, arbitrated, rejected):
    with reverts_with("ChallengeWindowClosed"):
        challenge_round(driver, arbitrated, 0, outsider)


# ---------------------------------------------------------------- resolveChallenge: upheld


def test_upheld_challenge_slashes_whole_bonds_of_the_accepting_validators(
    market, validators, arbitrated, upheld
):
    assert events(upheld, "ValidatorSlashed") == [
        {"taskId": arbitrated, "round": 0, "validator": validators[0], "amount": VALIDATOR_BOND},
        {"taskId": arbitrated, "round": 0, "validator": validators[1], "amount": VALIDATOR_BOND},
    ]
    assert [tuple(market.validatorInfo(arbitrated, v)) for v in validators[:2]] == [(True, False, 0)] * 2


def test_upheld_challenge_spares_the_validator_that_proposed_something_else(
    market, validators, arbitrated, upheld
):
    assert tuple(market.validatorInfo(arbitrated, validators[2])) == (True, True, VALIDATOR_BOND)


def test_upheld_challenge_emits_challenge_resolved_with_payout(arbitrated, upheld, challenger):
    assert events(upheld, "ChallengeResolved") == [
        {"taskId": arbitrated, "round": 0, "winner": challenger, "payout": PAYOUT}
    ]


def test_upheld_challenge_credits_half_the_bonds_and_burns_the_rest(
    driver, market, arbiter, arbitrated, challenged, challenger
):
    before = ledger(driver, market, arbitrated, challenger=challenger)
    market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    assert moved(before, ledger(driver, market, arbitrated, challenger=challenger)) == {
        "challengeBonds": -BOND,
        "bonds": -SLASHED,
        "burned": BURNED,
        "reserved": -ROUND_BUDGET,
        "escrow": ROUND_BUDGET,
        "pendingRounds": -1,
        "taskHoldings": -PAYOUT,
        "totalCredits": PAYOUT,
        "credit:challenger": PAYOUT,
    }
    assert_solvent(driver, [arbitrated])


def test_upheld_challenge_halts_the_task(driver, market, arbitrated, upheld):
    assert events(upheld, "TaskHalted") == [{"taskId": arbitrated, "fromRound": 0}]
    task = driver.task(arbitrated)
    assert (task["status"], task["closedAt"]) == (TASK_HALTED, upheld.timestamp)
    assert market.phase(arbitrated) == CLOSED


def test_upheld_challenge_voids_the_round(driver, arbitrated, upheld):
    assert events(upheld, "RoundVoided") == [{"taskId": arbitrated, "round": 0}]
    r = driver.round(arbitrated, 0)
    assert (r["status"], r["challenges"], r["outcome"]) == (VOIDED, 1, UPHELD)
    assert driver.task(arbitrated)["pendingRounds"] == 0


def test_upheld_challenge_leaves_the_open_round_open(driver, arbitrated, upheld):
    assert driver.task(arbitrated)["currentRound"] == 1
    assert driver.round(arbitrated, 1)["status"] == OPEN


@pytest.mark.parametrize("winner", ["first", "second"])
def test_upheld_challenge_pays_only_the_named_challenger(
    driver, market, arbiter, arbitrated, contested, challenger, rival, winner
):
    named, other = (challenger, rival) if winner == "first" else (rival, challenger)
    holders = {"named": named, "other": other}
    before = ledger(driver, market, arbitrated, **holders)
    tx = market.resolveChallenge(arbitrated, 0, named, {"from": arbiter})
    assert tx.events["ChallengeResolved"]["payout"] == PAYOUT
    change = moved(before, ledger(driver, market, arbitrated, **holders))
    assert change["credit:named"] == PAYOUT
    assert "credit:other" not in change
    assert change["challengeBonds"] == -BOND  # the other bond waits to be withdrawn
    assert driver.task(arbitrated)["challengeBonds"] == BOND
    assert_solvent(driver, [arbitrated])


def test_upheld_challenge_also_slashes_a_late_agreeing_validator(
    driver, market, arbiter, validators, challenger
):
    task_id = driver.create_task(arbiter=arbiter.address)
    driver.join(task_id)
    driver.open_commit(task_id)
    result = driver.accept(task_id, 0)  # validators 0 and 1
    market.propose(task_id, 0, result.proposal, {"from": validators[2]})  # agrees after acceptance
    challenge_round(driver, task_id, 0, challenger)
    tx = market.resolveChallenge(task_id, 0, challenger, {"from": arbiter})
    assert [e["validator"] for e in events(tx, "ValidatorSlashed")] == list(validators)
    assert tx.events["ChallengeResolved"]["payout"] == BOND + 3 * VALIDATOR_BOND // 2
    task = driver.task(task_id)
    assert (task["bonds"], task["burned"]) == (0, 3 * VALIDATOR_BOND - 3 * VALIDATOR_BOND // 2)


def test_upheld_challenge_pays_only_what_is_left_of_a_slashed_bond(
    driver, market, arbiter, validators, challenger
):
    """A validator already slashed for an earlier round loses the rest of its bond, no more."""
    task_id = driver.create_task(arbiter=arbiter.address)
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.accept(task_id, 0)  # validator 2 absent: slashed when round 0 finalizes
    result = driver.accept(task_id, 1)
    market.propose(task_id, 1, result.proposal, {"from": validators[2]})  # agrees with round 1
    round_0_accepted = driver.round(task_id, 0)["acceptedAt"]
    next_block_at(round_0_accepted + 600)
    challenge_round(driver, task_id, 1, challenger)
    next_block_at(round_0_accepted + CHALLENGE_DURATION)
    market.finalizeRound(task_id, 0, {"from": challenger})
    assert bond_of(market, task_id, validators[2]) == VALIDATOR_BOND - VALIDATOR_SLASH
    tx = market.resolveChallenge(task_id, 1, challenger, {"from": arbiter})
    assert [(e["validator"], e["amount"]) for e in events(tx, "ValidatorSlashed")] == [
        (validators[0], VALIDATOR_BOND),
        (validators[1], VALIDATOR_BOND),
        (validators[2], VALIDATOR_BOND - VALIDATOR_SLASH),
    ]
    slashed = 3 * VALIDATOR_BOND - VALIDATOR_SLASH
    assert tx.events["ChallengeResolved"]["payout"] == BOND + slashed // 2
    assert (driver.task(task_id)["bonds"], driver.task(task_id)["burned"]) == (0, slashed - slashed // 2)
    assert_solvent(driver, [task_id])


def test_upheld_challenge_of_completed_tasks_last_round_voids_it(driver, market, arbiter, challenger):
    task_id = driver.create_task(arbiter=arbiter.address, numRounds=1)
    driver.join(task_id)
    driver.open_commit(task_id)
    accept_round(driver, task_id, 0)
    assert driver.task(task_id)["status"] == TASK_COMPLETED
    challenge_round(driver, task_id, 0, challenger)
    tx = market.resolveChallenge(task_id, 0, challenger, {"from": arbiter})
    assert events(tx, "RoundVoided") == [{"taskId": task_id, "round": 0}]
    task = driver.task(task_id)
    assert (task["status"], task["escrow"], task["reserved"], task["pendingRounds"]) == (
        TASK_HALTED,
        DEFAULT_BUDGET,
        0,
        0,
    )


def test_upheld_challenge_of_cancelled_task_returns_the_round_rewards_to_the_owner(
    driver, market, owner, arbiter, arbitrated, accepted, challenger
):
    market.cancelTask(arbitrated, {"from": owner})
    assert driver.task(arbitrated)["status"] == TASK_CANCELLED
    challenge_round(driver, arbitrated, 0, challenger)
    market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    assert driver.task(arbitrated)["status"] == TASK_HALTED
    before = driver.balance(owner)
    tx = market.withdrawRefund(arbitrated, {"from": owner})
    assert driver.balance(owner) - before == ROUND_BUDGET
    assert events(tx, "EscrowRefunded") == [{"taskId": arbitrated, "owner": owner, "amount": ROUND_BUDGET}]
    assert_solvent(driver, [arbitrated])


# ---------------------------------------------------------------- withdrawChallengeBond


def test_withdraw_challenge_bond_while_pending_reverts_challenge_pending(
    driver, market, arbitrated, challenged, challenger
):
    end = arbitration_end(driver, arbitrated, 0)
    with reverts_with("ChallengePending", end):
        market.withdrawChallengeBond(arbitrated, 0, {"from": challenger})
    next_block_at(end)  # the arbitration window is over, but the round is not finalized yet
    with reverts_with("ChallengePending", end):
        market.withdrawChallengeBond(arbitrated, 0, {"from": challenger})


def test_withdraw_challenge_bond_by_a_non_challenger_reverts_nothing_to_withdraw(
    market, arbiter, outsider, arbitrated, contested, challenger
):
    market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    with reverts_with("NothingToWithdraw"):
        market.withdrawChallengeBond(arbitrated, 0, {"from": outsider})


def test_withdraw_challenge_bond_by_the_winner_reverts_nothing_to_withdraw(
    market, arbitrated, upheld, challenger
):
    with reverts_with("NothingToWithdraw"):
        market.withdrawChallengeBond(arbitrated, 0, {"from": challenger})


def test_losing_challenger_of_an_upheld_round_withdraws_its_bond(
    driver, market, arbiter, arbitrated, contested, challenger, rival
):
    market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    before = ledger(driver, market, arbitrated, rival=rival)
    tx = market.withdrawChallengeBond(arbitrated, 0, {"from": rival})
    assert moved(before, ledger(driver, market, arbitrated, rival=rival)) == {
        "challengeBonds": -BOND,
        "taskHoldings": -BOND,
        "contract": -BOND,
        "balance:rival": BOND,
    }
    assert events(tx, "ChallengeBondReturned") == [
        {"taskId": arbitrated, "round": 0, "challenger": rival, "amount": BOND}
    ]
    assert driver.task(arbitrated)["challengeBonds"] == 0
    with reverts_with("NothingToWithdraw"):
        market.withdrawChallengeBond(arbitrated, 0, {"from": rival})
    assert_solvent(driver, [arbitrated])


def test_every_challenger_withdraws_its_bond_after_dismissal(
    driver, market, outsider, arbitrated, contested, challenger, rival
):
    driver.sleep_until(arbitration_end(driver, arbitrated, 0))
    market.finalizeRound(arbitrated, 0, {"from": outsider})
    for account in (challenger, rival):
        before = driver.balance(account)
        market.withdrawChallengeBond(arbitrated, 0, {"from": account})
        assert driver.balance(account) - before == BOND
        with reverts_with("NothingToWithdraw"):
            market.withdrawChallengeBond(arbitrated, 0, {"from": account})
    assert driver.task(arbitrated)["challengeBonds"] == 0
    assert driver.total_credits() == 0
    assert_solvent(driver, [arbitrated])


def test_challenger_of_a_round_voided_by_an_earlier_halt_withdraws_its_bond(
    driver, market, arbiter, arbitrated, challenger, rival
):
    """Round 1's challenge is never ruled on: the halt from round 0 voids round 1, and the bond comes back."""
    pipelined(driver, market, arbitrated, challenger)
    challenge_round(driver, arbitrated, 1, rival)
    with reverts_with("ChallengePending", arbitration_end(driver, arbitrated, 1)):
        market.withdrawChallengeBond(arbitrated, 1, {"from": rival})
    market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    r = driver.round(arbitrated, 1)
    assert (r["status"], r["outcome"]) == (VOIDED, NO_OUTCOME)
    with reverts_with("NoChallenge"):
        market.resolveChallenge(arbitrated, 1, rival, {"from": arbiter})
    before = driver.balance(rival)
    market.withdrawChallengeBond(arbitrated, 1, {"from": rival})
    assert driver.balance(rival) - before == BOND
    assert driver.task(arbitrated)["challengeBonds"] == 0
    assert_solvent(driver, [arbitrated])


# ---------------------------------------------------------------- after a halt


def test_commit_after_halt_reverts_task_not_active(driver, market, contributors, arbitrated, upheld):
    with reverts_with("TaskNotActive", arbitrated):
        market.commit(arbitrated, 1, digest_of("commitment"), {"from": contributors[0]})


def test_propose_after_halt_reverts_task_not_active(driver, market, validators, arbitrated, upheld):
    proposal = make_proposal([(driver.contributors[0], 1)], label="model 1").proposal
    with reverts_with("TaskNotActive", arbitrated):
        market.propose(arbitrated, 1, proposal, {"from": validators[2]})


def test_finalize_voided_round_reverts_wrong_round_status(
    driver, market, outsider, arbitrated, accepted, upheld
):
    driver.sleep_until(accepted.timestamp + 2 * CHALLENGE_DURATION)
    with reverts_with("WrongRoundStatus", VOIDED):
        market.finalizeRound(arbitrated, 0, {"from": outsider})


def test_owner_withdraws_whole_budget_after_halt(driver, market, owner, arbitrated, upheld):
    before = driver.balance(owner)
    tx = market.withdrawRefund(arbitrated, {"from": owner})
    assert driver.balance(owner) - before == DEFAULT_BUDGET
    assert events(tx, "EscrowRefunded") == [{"taskId": arbitrated, "owner": owner, "amount": DEFAULT_BUDGET}]
    assert driver.task(arbitrated)["escrow"] == 0
    assert_solvent(driver, [arbitrated])


def test_challenger_withdraws_exactly_the_payout(driver, market, arbitrated, upheld, challenger):
    before = driver.balance(challenger)
    tx = driver.withdraw_credit(challenger)
    assert driver.balance(challenger) - before == PAYOUT
    if driver.token is None:
        assert events(tx, "CreditWithdrawn") == [{"account": challenger, "amount": PAYOUT}]
    else:
        assert events(tx, "TokenCreditWithdrawn") == [
            {"token": driver.token.address, "account": challenger, "amount": PAYOUT}
        ]
    assert (driver.credits(challenger), driver.total_credits()) == (0, 0)
    with reverts_with("NothingToWithdraw"):
        driver.withdraw_credit(challenger)


def test_contributors_leave_with_their_stakes_after_halt(driver, market, contributors, arbitrated, upheld):
    for contributor in contributors:
        before = driver.balance(contributor)
        market.leave(arbitrated, {"from": contributor})
        assert driver.balance(contributor) - before == STAKE
    assert driver.task(arbitrated)["stakes"] == 0


def test_validators_withdraw_what_is_left_of_their_bonds_after_halt(
    driver, market, validators, arbitrated, upheld
):
    before = driver.balance(validators[2])
    market.withdrawBond(arbitrated, {"from": validators[2]})
    assert driver.balance(validators[2]) - before == VALIDATOR_BOND
    for slashed in validators[:2]:
        with reverts_with("NothingToWithdraw"):
            market.withdrawBond(arbitrated, {"from": slashed})
    assert driver.task(arbitrated)["bonds"] == 0


def test_slashed_validators_cannot_bond_again_after_halt(driver, market, validators, arbitrated, upheld):
    with reverts_with("TaskNotActive", arbitrated):
        market.bondValidator(arbitrated, driver.deposit(validators[0], VALIDATOR_BOND))


def test_halted_task_pays_everyone_out_but_the_burned_wei(
    driver, market, owner, validators, contributors, arbitrated, upheld, challenger
):
    market.withdrawRefund(arbitrated, {"from": owner})
    driver.withdraw_credit(challenger)
    market.withdrawBond(arbitrated, {"from": validators[2]})
    for contributor in contributors:
        market.leave(arbitrated, {"from": contributor})
    task = driver.task(arbitrated)
    assert [task[name] for name in BUCKETS if name != "burned"] == [0] * (len(BUCKETS) - 1)
    assert market.taskHoldings(arbitrated) == task["burned"] == BURNED
    assert driver.total_credits() == 0
    assert driver.balance(market) == BURNED


# ---------------------------------------------------------------- finalizeRound on a challenged round


def test_finalize_challenged_round_before_arbitration_end_reverts_challenge_pending(
    driver, market, outsider, arbitrated, accepted, challenger
):
    next_block_at(accepted.timestamp + CHALLENGE_DURATION - 1)  # the latest possible challenge
    challenge_round(driver, arbitrated, 0, challenger)
    end = accepted.timestamp + 2 * CHALLENGE_DURATION
    next_block_at(end - 1)
    with reverts_with("ChallengePending", end):
        market.finalizeRound(arbitrated, 0, {"from": outsider})


def test_finalize_at_arbitration_end_dismisses_the_challenges_without_cost(
    driver, market, outsider, arbitrated, contested, challenger, rival
):
    end = arbitration_end(driver, arbitrated, 0)
    next_block_at(end)
    holders = {"challenger": challenger, "rival": rival}
    before = ledger(driver, market, arbitrated, **holders)
    tx = market.finalizeRound(arbitrated, 0, {"from": outsider})
    assert tx.timestamp == end
    assert events(tx, "ChallengesDismissed") == [{"taskId": arbitrated, "round": 0, "challenges": 2}]
    assert events(tx, "ChallengeResolved") == []
    # validator 2 dissented: finalization slashes it into the escrow as for any round; the challenge bonds
    # stay in challengeBonds until withdrawn
    assert moved(before, ledger(driver, market, arbitrated, **holders)) == {
        "reserved": -ROUND_BUDGET,
        "unclaimed": ROUND_BUDGET,
        "pendingRounds": -1,
        "bonds": -VALIDATOR_SLASH,
        "escrow": VALIDATOR_SLASH,
    }
    assert_solvent(driver, [arbitrated])


def test_finalize_after_timeout_finalizes_the_round(driver, market, outsider, arbitrated, challenged):
    driver.sleep_until(arbitration_end(driver, arbitrated, 0))
    tx = market.finalizeRound(arbitrated, 0, {"from": outsider})
    assert events(tx, "RoundFinalized") == [{"taskId": arbitrated, "round": 0, "rewardTotal": ROUND_BUDGET}]
    r = driver.round(arbitrated, 0)
    assert (r["status"], r["finalizedAt"], r["outcome"]) == (FINALIZED, tx.timestamp, DISMISSED)
    assert driver.task(arbitrated)["status"] == TASK_ACTIVE


# ---------------------------------------------------------------- pipelined rounds


def test_upheld_challenge_voids_the_pipelined_later_round(driver, market, arbiter, arbitrated, challenger):
    pipelined(driver, market, arbitrated, challenger)
    tx = market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    assert events(tx, "RoundVoided") == [
        {"taskId": arbitrated, "round": 0},
        {"taskId": arbitrated, "round": 1},
    ]
    assert events(tx, "TaskHalted") == [{"taskId": arbitrated, "fromRound": 0}]
    assert [driver.round(arbitrated, n)["status"] for n in (0, 1, 2)] == [VOIDED, VOIDED, OPEN]


def test_upheld_challenge_returns_both_pipelined_rewards_to_escrow(
    driver, market, arbiter, arbitrated, challenger
):
    pipelined(driver, market, arbitrated, challenger)
    before = ledger(driver, market, arbitrated, challenger=challenger)
    assert (before["reserved"], before["pendingRounds"]) == (2 * ROUND_BUDGET, 2)
    market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    assert moved(before, ledger(driver, market, arbitrated, challenger=challenger)) == {
        "challengeBonds": -BOND,
        "bonds": -SLASHED,
        "burned": BURNED,
        "reserved": -2 * ROUND_BUDGET,
        "escrow": 2 * ROUND_BUDGET,
        "pendingRounds": -2,
        "taskHoldings": -PAYOUT,
        "totalCredits": PAYOUT,
        "credit:challenger": PAYOUT,
    }
    assert driver.task(arbitrated)["escrow"] == DEFAULT_BUDGET
    assert_solvent(driver, [arbitrated])


def test_pipelined_halt_slashes_validators_once_for_the_challenged_round(
    driver, market, arbiter, validators, arbitrated, challenger
):
    pipelined(driver, market, arbitrated, challenger)
    tx = market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    assert [(e["round"], e["validator"]) for e in events(tx, "ValidatorSlashed")] == [
        (0, validators[0]),
        (0, validators[1]),
    ]
    assert bond_of(market, arbitrated, validators[2]) == VALIDATOR_BOND


def test_pipelined_halt_frees_every_stake_and_bond(
    driver, market, owner, arbiter, validators, contributors, arbitrated, challenger
):
    pipelined(driver, market, arbitrated, challenger)
    market.resolveChallenge(arbitrated, 0, challenger, {"from": arbiter})
    for contributor in contributors:
        before = driver.balance(contributor)
        market.leave(arbitrated, {"from": contributor})
        assert driver.balance(contributor) - before == STAKE
    market.withdrawBond(arbitrated, {"from": validators[2]})
    driver.withdraw_credit(challenger)
    before = driver.balance(owner)
    market.withdrawRefund(arbitrated, {"from": owner})
    assert driver.balance(owner) - before == DEFAULT_BUDGET
    assert driver.balance(market) == driver.task(arbitrated)["burned"] == BURNED


def test_upheld_challenge_of_later_round_leaves_earlier_accepted_round_payable(
    driver, market, owner, arbiter, outsider, validators, arbitrated, challenger
):
    accept_round(driver, arbitrated, 0)
    accept_round(driver, arbitrated, 1)
    challenge_round(driver, arbitrated, 1, challenger)
    tx = market.resolveChallenge(arbitrated, 1, challenger, {"from": arbiter})
    assert events(tx, "RoundVoided") == [{"taskId": arbitrated, "round": 1}]
    assert events(tx, "TaskHalted") == [{"taskId": arbitrated, "fromRound": 1}]
    task = driver.task(arbitrated)
    assert (task["status"], task["reserved"], task["pendingRounds"]) == (TASK_HALTED, ROUND_BUDGET, 1)
    assert driver.round(arbitrated, 0)["status"] == ACCEPTED
    with reverts_with("RoundsPending", 1):
        market.withdrawBond(arbitrated, {"from": validators[2]})
    driver.finalize(arbitrated, 0)
    task = driver.task(arbitrated)
    assert (task["reserved"], task["unclaimed"], task["pendingRounds"]) == (0, ROUND_BUDGET, 0)
    assert_solvent(driver, [arbitrated])
