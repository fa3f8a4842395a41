"""Tasks whose budget, stakes and bonds are an ERC20 token: the same money rules as ETH tasks, per token, and
tokens that misbehave (a transfer fee, a false return, a call back into the market from a transfer) can
neither pay out more than arrived nor lose funds.

The money invariant per token: the market's balance of the token equals the token tasks' holdings plus the
token's credits; the market's ETH balance stays untouched by token tasks.
"""

from __future__ import annotations

import pytest
from brownie import FalseReturningToken, FeeOnTransferToken, ReentrantToken, accounts
from conftest import (
    DEFAULT_BUDGET,
    DEFAULT_PARAMS,
    ETHER,
    SPEC_CID,
    TASK_CANCELLED,
    TOKEN_SUPPLY,
    ZERO_ADDRESS,
    Driver,
    reverts_with,
    task_params,
)

STAKE = DEFAULT_PARAMS["contributorStake"]
BOND = DEFAULT_PARAMS["validatorBond"]
CHALLENGE_BOND = DEFAULT_PARAMS["challengeBond"]
EVIDENCE = "bafkreievidence"


@pytest.fixture
def token_driver(market, owner, validators, contributors, token):
    return Driver(market, owner, validators, contributors, token)


@pytest.fixture(scope="module")
def fee_token(owner):
    """Burns 1% of every transfer."""
    token = FeeOnTransferToken.deploy({"from": owner})
    for account in accounts[:10]:
        token.mint(account, TOKEN_SUPPLY, {"from": owner})
    return token


@pytest.fixture(scope="module")
def false_token(owner):
    """Returns false instead of reverting once setFailing(true)."""
    token = FalseReturningToken.deploy({"from": owner})
    for account in accounts[:10]:
        token.mint(account, TOKEN_SUPPLY, {"from": owner})
    return token


@pytest.fixture(scope="module")
def reentrant_token(owner):
    """Calls back into the market from a transferFrom once armed (a hostile owner's token)."""
    token = ReentrantToken.deploy({"from": owner})
    for account in accounts[:10]:
        token.mint(account, TOKEN_SUPPLY, {"from": owner})
    return token


def assert_backed(market, token, task_ids) -> None:
    """The market holds exactly the token tasks' buckets plus the token's credits."""
    assert token.balanceOf(market) == sum(
        market.taskHoldings(t) for t in task_ids
    ) + market.totalTokenCredits(token)


def test_token_task_books_budget_stakes_and_bonds_in_the_token(
    token_driver, market, token, owner, contributors
):
    eth_before = market.balance()
    owner_before = token.balanceOf(owner)
    task_id = token_driver.create_task()
    token_driver.join(task_id)
    task = token_driver.task(task_id)
    assert market.tokenOf(task_id) == token
    assert (task["escrow"], task["roundBudget"], task["stakes"], task["bonds"]) == (
        DEFAULT_BUDGET,
        DEFAULT_BUDGET // 3,
        4 * STAKE,
        3 * BOND,
    )
    assert token.balanceOf(owner) == owner_before - DEFAULT_BUDGET
    assert token.balanceOf(contributors[0]) == TOKEN_SUPPLY - STAKE
    assert token.balanceOf(market) == DEFAULT_BUDGET + 4 * STAKE + 3 * BOND
    assert market.balance() == eth_before
    assert_backed(market, token, [task_id])


def test_eth_task_reports_no_token(driver, market):
    assert market.tokenOf(driver.create_task()) == ZERO_ADDRESS


def test_create_token_task_rejects_the_zero_token(market, owner, validators):
    with reverts_with("BadToken", ZERO_ADDRESS):
        market.createTokenTask(
            task_params(), SPEC_CID, list(validators), ZERO_ADDRESS, ETHER, {"from": owner}
        )


@pytest.mark.parametrize("action", ["join", "bondValidator"])
def test_paying_calls_refuse_ether_on_a_token_task(token_driver, market, token, validators, outsider, action):
    task_id = token_driver.create_task(bond=False)
    amount = STAKE if action == "join" else BOND
    sender = outsider if action == "join" else validators[0]
    token.approve(market, amount, {"from": sender})
    with reverts_with("WrongAmount", 0, amount):
        getattr(market, action)(task_id, {"from": sender, "value": amount})


def test_whole_token_task_pays_rewards_stakes_and_bonds_back_exactly(
    token_driver, market, token, contributors
):
    task_id = token_driver.create_task()
    token_driver.join(task_id)
    token_driver.open_commit(task_id)
    results = [token_driver.accept(task_id, r) for r in range(3)]
    for r in range(3):
        token_driver.finalize(task_id, r)
    for r, result in enumerate(results):
        for i, alloc in enumerate(result.reward_allocations):
            market.claim(
                task_id, r, i, alloc.account, alloc.amount, result.reward_proof(i), {"from": alloc.account}
            )
    token_driver.sleep_until(
        token_driver.round(task_id, 2)["finalizedAt"] + DEFAULT_PARAMS["challengeDuration"] + 1
    )
    for contributor in contributors:
        market.leave(task_id, {"from": contributor})
    for validator in token_driver.validators:
        market.withdrawBond(task_id, {"from": validator})
    each = DEFAULT_BUDGET // 3 // 4
    for contributor in contributors:
        assert token.balanceOf(contributor) == TOKEN_SUPPLY + 3 * each
    for validator in token_driver.validators:
        # validator 2 never proposed: slashed once per accepted round, into the escrow
        expected = TOKEN_SUPPLY if validator != token_driver.validators[2] else TOKEN_SUPPLY - 3 * (BOND // 4)
        assert token.balanceOf(validator) == expected
    assert_backed(market, token, [task_id])
    assert token.balanceOf(market) == token_driver.task(task_id)["escrow"]


# ---------------------------------------------------------------- adversaries


def test_fee_on_transfer_budget_escrows_only_what_arrived(market, fee_token, owner, validators):
    fee_token.approve(market, DEFAULT_BUDGET, {"from": owner})
    tx = market.createTokenTask(
        task_params(), SPEC_CID, list(validators), fee_token, DEFAULT_BUDGET, {"from": owner}
    )
    task_id = tx.return_value
    received = DEFAULT_BUDGET - DEFAULT_BUDGET // 100
    assert market.taskHoldings(task_id) == received
    assert fee_token.balanceOf(market) == received


@pytest.mark.parametrize("action", ["join", "bondValidator"])
def test_fee_on_transfer_stake_or_bond_reverts_short(market, fee_token, owner, validators, outsider, action):
    fee_token.approve(market, DEFAULT_BUDGET, {"from": owner})
    task_id = market.createTokenTask(
        task_params(), SPEC_CID, list(validators), fee_token, DEFAULT_BUDGET, {"from": owner}
    ).return_value
    amount = STAKE if action == "join" else BOND
    sender = outsider if action == "join" else validators[0]
    fee_token.approve(market, amount, {"from": sender})
    with reverts_with("TokenShortfall", fee_token, amount, amount - amount // 100):
        getattr(market, action)(task_id, {"from": sender})


def test_fee_on_transfer_owner_cannot_drain_an_honest_task(market, fee_token, owner, validators, outsider):
    """The attacker posts and cancels a task in the fee token next to an honest task in it: it gets back at
    most what its task received, less the fee; the honest task stays fully backed."""
    fee_token.approve(market, DEFAULT_BUDGET, {"from": owner})
    honest = market.createTokenTask(
        task_params(), SPEC_CID, list(validators), fee_token, DEFAULT_BUDGET, {"from": owner}
    ).return_value
    honest_holdings = market.taskHoldings(honest)
    attacker_before = fee_token.balanceOf(outsider)
    fee_token.approve(market, ETHER, {"from": outsider})
    attack = market.createTokenTask(
        task_params(), SPEC_CID, list(validators), fee_token, ETHER, {"from": outsider}
    ).return_value
    market.cancelTask(attack, {"from": outsider})
    assert (
        token_change(fee_token, outsider, attacker_before) == -(ETHER // 100) - (ETHER - ETHER // 100) // 100
    )
    assert market.taskHoldings(honest) == honest_holdings
    assert fee_token.balanceOf(market) == honest_holdings
    assert_backed(market, fee_token, [honest, attack])


def token_change(token, account, before: int) -> int:
    return token.balanceOf(account) - before


def test_false_returning_token_cannot_join_without_paying(market, false_token, owner, validators, outsider):
    false_token.approve(market, DEFAULT_BUDGET, {"from": owner})
    task_id = market.createTokenTask(
        task_params(), SPEC_CID, list(validators), false_token, DEFAULT_BUDGET, {"from": owner}
    ).return_value
    # no approval: transferFrom returns false, and SafeERC20 turns that into a revert instead of a free stake
    with reverts_with("SafeERC20FailedOperation", false_token):
        market.join(task_id, {"from": outsider})
    assert market.contributorInfo(task_id, outsider)[0] is False
    assert false_token.balanceOf(outsider) == TOKEN_SUPPLY
    assert false_token.balanceOf(market) == market.taskHoldings(task_id) == DEFAULT_BUDGET


def test_false_returning_payout_reverts_and_keeps_the_escrow(market, false_token, owner, validators):
    false_token.approve(market, DEFAULT_BUDGET, {"from": owner})
    task_id = market.createTokenTask(
        task_params(), SPEC_CID, list(validators), false_token, DEFAULT_BUDGET, {"from": owner}
    ).return_value
    owner_before = false_token.balanceOf(owner)
    false_token.setFailing(True, {"from": owner})
    with reverts_with("SafeERC20FailedOperation", false_token):
        market.cancelTask(task_id, {"from": owner})
    assert market.taskHoldings(task_id) == false_token.balanceOf(market) == DEFAULT_BUDGET
    assert false_token.balanceOf(owner) == owner_before
    false_token.setFailing(False, {"from": owner})
    market.cancelTask(task_id, {"from": owner})
    assert Driver(market, owner, validators, []).task(task_id)["status"] == TASK_CANCELLED
    assert false_token.balanceOf(owner) == owner_before + DEFAULT_BUDGET
    assert false_token.balanceOf(market) == 0


def test_token_reentering_a_join_during_a_pull_reverts_the_whole_join(
    market, reentrant_token, owner, validators, contributors
):
    """The owner's token joins the task itself from inside a contributor's stake transfer: the market
    received two stakes where it pulled one, so the contributor's join reverts whole; nobody is joined, and
    no balance moves."""
    token = reentrant_token
    driver = Driver(market, owner, validators, contributors, token)
    task_id = driver.create_task()
    token.mint(token, STAKE, {"from": owner})
    token.execute(token, token.approve.encode_input(market, STAKE), {"from": owner})
    token.arm(market, market.join.encode_input(task_id), {"from": owner})
    held, staker = token.balanceOf(market), token.balanceOf(contributors[0])
    with reverts_with("TokenShortfall", token, STAKE, 2 * STAKE):
        market.join(task_id, driver.deposit(contributors[0], STAKE))
    assert market.contributorInfo(task_id, contributors[0])[0] is False
    assert market.contributorInfo(task_id, token)[0] is False
    assert (token.balanceOf(market), token.balanceOf(contributors[0])) == (held, staker)
    assert token.reentryAttempts() == 0  # rolled back with the rest
    assert_backed(market, token, [task_id])


def test_token_reentering_a_payout_during_a_pull_reverts_and_keeps_its_credit(
    market, reentrant_token, owner, validators, contributors, outsider
):
    """The owner's token, credited a forfeit bounty, withdraws it from inside a contributor's stake transfer:
    the market received less than it pulled, so the join reverts whole and the credit stays booked."""
    token = reentrant_token
    driver = Driver(market, owner, validators, contributors, token)
    task_id = driver.create_task()
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.commit(task_id, 0, driver.updates(0, contributors[:1]))
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    token.execute(market, market.forfeitUnrevealed.encode_input(task_id, 0, contributors[0]), {"from": owner})
    bounty = STAKE // 10
    assert market.tokenCredits(token, token) == bounty
    other = driver.create_task()
    token.arm(market, market.withdrawTokenCredit.encode_input(token), {"from": owner})
    held, staker = token.balanceOf(market), token.balanceOf(outsider)
    with reverts_with("TokenShortfall", token, STAKE, STAKE - bounty):
        market.join(other, driver.deposit(outsider, STAKE))
    assert market.tokenCredits(token, token) == bounty == market.totalTokenCredits(token)
    assert (token.balanceOf(market), token.balanceOf(outsider)) == (held, staker)
    assert market.contributorInfo(other, outsider)[0] is False
    assert_backed(market, token, [task_id, other])
