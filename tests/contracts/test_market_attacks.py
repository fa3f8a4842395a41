"""The strategies of issue 12, each driven on anvil against the market by strangers who share nothing but the
contract: the attack must leave its attacker poorer (or be refused), and every honest party no poorer than
what it put in.

Every transaction here pays gas at 1 gwei, so the books are real balances: a party's net is its
``web3.eth.get_balance`` change plus its change of market credits, gas included. An attacker's net must be
negative with and without the gas it paid; an honest party's net, gas excluded, must be >= 0 (gas is the
price of taking part, not a loss the market inflicts). The task owner is honest when it gets back everything
but the rewards of the rounds it received (the price of the work it bought): its net plus those rewards
must be >= 0.

Strategies (one test each, some with a variant):
  a. Sybil commit stalling: Sybils fill a round with commitments they never open.
  b. Self-challenge: a validator cartel accepts a fraudulent round and its sock puppet challenges first;
     and its "late reject" variant, where a sock challenges an honest round and the arbiter rejects.
  c. Hostile owner: arbitrating its own task, cancelling after reveals, challenging an honest round,
     cancelling mid-round to forfeit contributors after a later halt.
  d. Lesser ones: creating a task without a majority quorum, bonds or a long enough challenge window;
     proposing on a bond slashed to zero; committing on a stake slashed to zero; finalizing out of order
     around a failed round; slashing the same leaf twice.

Every strategy is played on an ETH task and on an ERC20 task. There the books are token balances and token
credits, and gas, paid in ETH, stays outside them: a refused attacker may end at zero tokens, poorer by its
gas in ETH.

A module fixture writes every measured net to reports/attacks.json (and prints it with -s).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from brownie import accounts, history, network, web3
from conftest import (
    ACCEPTED,
    DEFAULT_BUDGET,
    DEFAULT_PARAMS,
    ETHER,
    FAILED,
    TASK_HALTED,
    VOIDED,
    ZERO_ADDRESS,
    digest_of,
    make_proposal,
    next_block_at,
    reverts_with,
)
from eth_utils import keccak

pytestmark = pytest.mark.currencies

GAS_PRICE = 10**9  # 1 gwei
STAKE = DEFAULT_PARAMS["contributorStake"]
VALIDATOR_BOND = DEFAULT_PARAMS["validatorBond"]
VALIDATOR_SLASH = DEFAULT_PARAMS["validatorSlash"]
CHALLENGE_BOND = DEFAULT_PARAMS["challengeBond"]
CHALLENGE_DURATION = DEFAULT_PARAMS["challengeDuration"]
ROUND_BUDGET = DEFAULT_BUDGET // DEFAULT_PARAMS["numRounds"]
BOUNTY = STAKE // 10  # FORFEIT_BOUNTY_DIVISOR
FORFEITED_MARKER = b"\x00" * 31 + b"\x02"  # what the market stores for a forfeited commitment
EVIDENCE = "bafkreievidence"
REPORT = Path(__file__).resolve().parents[2] / "reports" / "attacks.json"
RESULTS: dict[str, dict[str, dict]] = {}


# ---------------------------------------------------------------- the books


class Books:
    """Each party's net change since the books were opened, in the task's currency: its accounts' real
    balance change plus their change of market credits. A party may be several accounts (a cartel). Gas is
    paid in ETH, so it is in the books of an ETH task and outside those of a token task."""

    def __init__(self, driver, **parties):
        self.driver = driver
        self.parties = {name: list(a) if isinstance(a, list | tuple) else [a] for name, a in parties.items()}
        self.mark = len(history)
        self.start = {str(a): self._worth(a) for members in self.parties.values() for a in members}

    def _worth(self, account) -> int:
        return self.driver.balance(account) + self.driver.credits(account)

    def gas_eth(self, name: str) -> int:
        """Wei the party paid for gas since the books were opened, reverted transactions included."""
        members = {str(a) for a in self.parties[name]}
        return sum(
            tx.gas_used * tx.gas_price for tx in list(history)[self.mark :] if str(tx.sender) in members
        )

    def gas(self, name: str) -> int:
        """The party's gas as it is in the books: its wei for an ETH task, nothing for a token task."""
        return self.gas_eth(name) if self.driver.token is None else 0

    def net(self, name: str) -> int:
        """What the party gained (negative: lost) in the task's currency, gas included for ETH."""
        return sum(self._worth(a) - self.start[str(a)] for a in self.parties[name])


def settle(strategy: str, books: Books, attackers=(), honest=(), bought=None, refused=()) -> dict:
    """Assert and record the outcome of a strategy.

    attackers: parties whose net must be negative, with and without gas.
    refused: attacking parties whose move was refused (reverted) or had no effect: they may end at zero
    before gas, never above; the gas they paid makes them poorer (in a token task, in ETH beside the
    books).
    honest: parties whose net, gas excluded, must be >= 0; `bought` adds to a party's net what it paid for
    work it received (the owner's rewards for finalized rounds).
    """
    bought = bought or {}
    rows = {}
    for role, names in (("attacker", attackers), ("attacker (refused)", refused), ("honest", honest)):
        for name in names:
            net, gas = books.net(name), books.gas(name)
            assessed = net + gas + bought.get(name, 0)
            rows[name] = {"role": role, "net": net, "gas": gas, "net_ex_gas": net + gas}
            if name in bought:
                rows[name]["net_ex_gas_plus_work_bought"] = assessed
            if role == "attacker":
                assert net < 0 and assessed < 0, (strategy, name, rows[name])
            elif role == "attacker (refused)":
                assert net + books.gas(name) <= 0 < books.gas_eth(name), (strategy, name, rows[name])
                assert net < 0 or books.driver.token is not None, (strategy, name, rows[name])
            else:
                assert assessed >= 0, (strategy, name, rows[name])
    RESULTS[strategy if books.driver.token is None else f"{strategy} (ERC20 task)"] = rows
    return rows


def assert_solvent(driver) -> None:
    """The market holds exactly its tasks' buckets plus its credits, in the driver's currency."""
    market = driver.market
    holdings = sum(market.taskHoldings(t) for t in range(1, market.taskCount() + 1))
    assert driver.balance(market) == holdings + driver.total_credits()


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def priced_gas():
    """Every transaction of this module pays 1 gwei a gas unit (the chain's base fee is zero)."""
    # Imported here, not at the top: brownie hashes a test module and what it imports at top level, and its
    # compiled _config extension is not source it can read.
    from brownie._config import CONFIG

    settings = CONFIG.active_network["settings"]
    previous = settings["gas_price"]
    network.gas_price(GAS_PRICE)
    yield
    # Restored as it was: network.gas_price(0) would mean "auto" (anvil's oracle, which these transactions
    # have taught a non-zero price), and the other modules count on free gas.
    settings["gas_price"] = previous


@pytest.fixture(scope="module", autouse=True)
def report():
    """Writes the nets every strategy measured to reports/attacks.json when the module is done."""
    RESULTS.clear()
    yield RESULTS
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(RESULTS, indent=2) + "\n")
    print(f"\nnet wei per party (gas at {GAS_PRICE} wei a unit; written to {REPORT})")
    print(f"    {'role':<20}{'party':<24}{'net':>28}{'net, gas excluded':>28}{'+ work bought':>28}")
    for strategy, rows in RESULTS.items():
        print(f"  {strategy}")
        for name, row in rows.items():
            extra = row.get("net_ex_gas_plus_work_bought")
            tail = f"{extra:>28,}" if extra is not None else ""
            print(f"    {row['role']:<20}{name:<24}{row['net']:>28,}{row['net_ex_gas']:>28,}{tail}")


@pytest.fixture
def fresh(owner, token):
    """fresh(label): a new account with a key derived from the label, funded with 20 ether by the owner and
    20 * 10**18 units of the test token."""

    def make(label: str):
        account = accounts.add("0x" + keccak(text=f"cotrain attack {label}").hex())
        owner.transfer(account, 20 * ETHER, silent=True)
        token.mint(account, 20 * ETHER, {"from": owner})
        return account

    return make


# ---------------------------------------------------------------- helpers


def honest_result(driver, task_id, round_, updates, label=None):
    """Equal shares of the round budget for the updates' contributors."""
    each = driver.task(task_id)["roundBudget"] // len(updates)
    return make_proposal(
        [(u.contributor, each) for u in updates], label=label or f"honest {task_id} {round_}"
    )


def propose_all(market, task_id, round_, result, validators) -> None:
    for validator in validators:
        market.propose(task_id, round_, result.proposal, {"from": validator})


def claim_all(market, task_id, round_, result, sender) -> None:
    for index, allocation in enumerate(result.reward_allocations):
        proof = result.reward_proof(index)
        market.claim(task_id, round_, index, allocation.account, allocation.amount, proof, {"from": sender})


def after_slash_window(driver, task_id, round_) -> None:
    driver.sleep_until(driver.round(task_id, round_)["finalizedAt"] + CHALLENGE_DURATION + 1)


def leave_all(market, task_id, contributors) -> None:
    for contributor in contributors:
        market.leave(task_id, {"from": contributor})


def withdraw_bonds(market, task_id, validators) -> None:
    for validator in validators:
        if market.validatorInfo(task_id, validator)[2]:
            market.withdrawBond(task_id, {"from": validator})


def challenge(driver, task_id, round_, account):
    return driver.market.challenge(task_id, round_, EVIDENCE, driver.deposit(account, CHALLENGE_BOND))


@pytest.mark.eth_only  # of the books' gas, which only an ETH task's books hold
def test_books_count_the_gas_of_reverted_transactions(driver, fresh):
    """The books' gas is what the balance lost: a refused move costs its sender gas and nothing else."""
    account = fresh("books")
    books = Books(driver, account=account)
    with reverts_with("NothingToWithdraw"):
        driver.withdraw_credit(account)
    gas = books.gas("account")
    assert gas > 21_000 * GAS_PRICE
    assert books.net("account") == -gas


# ---------------------------------------------------------------- a. Sybil commit stalling


def test_a_sybil_commit_stalling(driver, market, owner, validators, contributors, arbiter, fresh):
    """Two Sybils join first and take two of the round's three commit slots, never to open them: round 0
    fails for want of reveals. Anyone may forfeit an unopened commitment after the reveal phase; the
    Sybils cannot commit again or leave with their stakes; the honest contributors finish the task."""
    sybils = [fresh("sybil 0"), fresh("sybil 1")]
    honest = contributors[:3]
    parties = {f"honest contributor {i}": c for i, c in enumerate(honest)}
    parties |= {f"validator {i}": v for i, v in enumerate(validators)}
    books = Books(driver, sybils=sybils, owner=owner, arbiter=arbiter, **parties)

    task_id = driver.create_task(numRounds=2, minContributors=2, maxContributors=3, budget=2 * ROUND_BUDGET)
    driver.join(task_id, [*sybils, *honest])  # the third join fills the round: its commit phase opens now
    for sybil in sybils:
        market.commit(task_id, 0, digest_of(f"never opened {sybil}"), {"from": sybil})
    opener = driver.updates(0, honest[:1])
    driver.commit(task_id, 0, opener)  # the third commit: the round is full, its commit phase over
    late = driver.updates(0, honest[1:2])
    with reverts_with("WrongPhase", 1, 2):
        driver.commit(task_id, 0, late)
    driver.reveal(task_id, 0, opener)
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    market.failRound(task_id, {"from": validators[0]})  # one reveal of the two needed
    assert driver.round(task_id, 0)["status"] == FAILED

    # The Sybils cannot stall round 1: a commitment left unopened bars the next one ...
    with reverts_with("UnopenedCommitment", 0):
        market.commit(task_id, 1, digest_of("again"), {"from": sybils[0]})
    # ... a validator takes the first Sybil's whole stake (a tenth to itself, the rest burned) ...
    tx = market.forfeitUnrevealed(task_id, 0, sybils[0], {"from": validators[0]})
    assert tx.events["CommitmentForfeited"]["bounty"] == BOUNTY
    with reverts_with("NotJoined"):
        market.commit(task_id, 1, digest_of("again"), {"from": sybils[0]})
    # ... and the second cannot leave with its stake: leaving forfeits it (its own bounty is all it keeps).
    tx = market.leave(task_id, {"from": sybils[1]})
    assert "ContributorLeft" not in tx.events
    assert tx.events["CommitmentForfeited"]["amount"] == STAKE
    assert driver.task(task_id)["activeContributors"] == 3

    # Round 1: the three honest contributors fill it, open it and are paid.
    updates = driver.updates(1, honest)
    driver.commit(task_id, 1, updates)
    driver.reveal(task_id, 1, updates)
    result = honest_result(driver, task_id, 1, updates)
    propose_all(market, task_id, 1, result, validators)
    driver.finalize(task_id, 1)
    claim_all(market, task_id, 1, result, owner)
    after_slash_window(driver, task_id, 1)
    leave_all(market, task_id, honest)
    withdraw_bonds(market, task_id, validators)
    market.withdrawRefund(task_id, {"from": owner})
    for account in (validators[0], sybils[1]):
        driver.withdraw_credit(account)

    task = driver.task(task_id)
    assert task["burned"] == 2 * (STAKE - BOUNTY)
    assert market.taskHoldings(task_id) == task["burned"]
    assert_solvent(driver)
    rows = settle(
        "a. Sybil commit stalling",
        books,
        attackers=["sybils"],
        honest=["owner", "arbiter", *parties],
        bought={"owner": result.proposal[4]},
    )
    assert rows["sybils"]["net_ex_gas"] == -2 * STAKE + BOUNTY
    assert rows["validator 0"]["net_ex_gas"] == BOUNTY


def test_a_sybil_cannot_commit_the_forfeited_marker(driver, market, owner, contributors, outsider, fresh):
    """A commitment equal to the value the market stores for a forfeited one would be neither openable nor
    forfeitable: the Sybil would stall the round and then leave with its whole stake. It is refused."""
    sybil = fresh("sybil marker")
    books = Books(driver, sybil=sybil)
    task_id = driver.create_task()
    driver.join(task_id, [sybil, *contributors[:1]])
    driver.open_commit(task_id)
    with reverts_with("EmptyCommitment"):
        market.commit(task_id, 0, FORFEITED_MARKER, {"from": sybil})
    # Whatever else it commits and leaves unopened is forfeited.
    market.commit(task_id, 0, digest_of("sybil"), {"from": sybil})
    honest = driver.updates(0, contributors[:1])
    driver.commit(task_id, 0, honest)
    driver.sleep_until(driver.round(task_id, 0)["commitEnd"])
    driver.reveal(task_id, 0, honest)
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    market.failRound(task_id, {"from": outsider})
    market.leave(task_id, {"from": sybil})
    driver.withdraw_credit(sybil)
    settle("a. Sybil commits the forfeited marker", books, attackers=["sybil"])


# ---------------------------------------------------------------- b. self-challenge


@pytest.mark.parametrize("named", ["sock", "auditor"])
def test_b_self_challenge(driver, market, owner, validators, contributors, arbiter, fresh, named):
    """Validators 0 and 1 (a quorum of 2 of 3) accept a round that pays its whole budget to their sock
    puppet, which challenges at once to be the challenger the arbiter pays. An honest auditor challenges
    too (nothing blocks it). Whichever challenger the arbiter names, the cartel loses: the accepting
    validators' whole bonds are slashed, half of them burn; the dissenting validator keeps its bond."""
    sock, auditor = fresh("sock"), fresh("auditor")
    cartel = [validators[0], validators[1], sock]
    parties = {f"contributor {i}": c for i, c in enumerate(contributors)}
    books = Books(
        driver,
        cartel=cartel,
        auditor=auditor,
        owner=owner,
        arbiter=arbiter,
        **{"dissenting validator": validators[2]},
        **parties,
    )
    task_id = driver.create_task()
    driver.join(task_id)
    driver.open_commit(task_id)
    updates = driver.submit(task_id, 0)
    market.propose(task_id, 0, honest_result(driver, task_id, 0, updates).proposal, {"from": validators[2]})
    fraud = make_proposal([(sock, ROUND_BUDGET)], label="fraud")
    propose_all(market, task_id, 0, fraud, validators[:2])
    assert driver.round(task_id, 0)["status"] == ACCEPTED

    challenge(driver, task_id, 0, sock)
    challenge(driver, task_id, 0, auditor)  # the first challenge does not block the second
    winner = sock if named == "sock" else auditor
    tx = market.resolveChallenge(task_id, 0, winner, {"from": arbiter})
    assert tx.events["ChallengeResolved"]["payout"] == CHALLENGE_BOND + VALIDATOR_BOND  # half of two bonds
    assert driver.task(task_id)["status"] == TASK_HALTED
    assert tuple(market.validatorInfo(task_id, validators[2])) == (True, True, VALIDATOR_BOND)

    driver.withdraw_credit(winner)
    loser = auditor if winner is sock else sock
    market.withdrawChallengeBond(task_id, 0, {"from": loser})
    for slashed in validators[:2]:
        with reverts_with("NothingToWithdraw"):
            market.withdrawBond(task_id, {"from": slashed})
    market.withdrawBond(task_id, {"from": validators[2]})
    leave_all(market, task_id, contributors)
    market.withdrawRefund(task_id, {"from": owner})

    assert driver.task(task_id)["burned"] == VALIDATOR_BOND
    assert market.taskHoldings(task_id) == VALIDATOR_BOND
    assert_solvent(driver)
    rows = settle(
        f"b. self-challenge, arbiter names the {named}",
        books,
        attackers=["cartel"],
        honest=["auditor", "owner", "arbiter", "dissenting validator", *parties],
    )
    expected = -VALIDATOR_BOND if named == "sock" else -2 * VALIDATOR_BOND
    assert rows["cartel"]["net_ex_gas"] == expected


def test_b_late_reject(driver, market, owner, validators, contributors, arbiter, fresh):
    """Two sock puppets challenge an honest round (to delay its payout, or fish for a wrong ruling). The
    arbiter cannot reject before the challenge window is over, so a rejection never shuts out a later
    honest challenger; once it is, it rejects: every challenge bond burns, the round finalizes at once and
    pays its contributors."""
    socks = [fresh("griefer 0"), fresh("griefer 1")]
    parties = {f"contributor {i}": c for i, c in enumerate(contributors)}
    parties |= {f"validator {i}": v for i, v in enumerate(validators)}
    books = Books(driver, socks=socks, owner=owner, arbiter=arbiter, **parties)
    task_id = driver.create_task(numRounds=1, budget=ROUND_BUDGET)
    driver.join(task_id)
    driver.open_commit(task_id)
    updates = driver.submit(task_id, 0)
    result = honest_result(driver, task_id, 0, updates)
    propose_all(market, task_id, 0, result, validators)
    for sock in socks:
        challenge(driver, task_id, 0, sock)
    window_end = driver.round(task_id, 0)["acceptedAt"] + CHALLENGE_DURATION
    next_block_at(window_end - 1)
    with reverts_with("ChallengeWindowOpen", window_end):
        market.resolveChallenge(task_id, 0, ZERO_ADDRESS, {"from": arbiter})
    next_block_at(window_end)
    market.resolveChallenge(task_id, 0, ZERO_ADDRESS, {"from": arbiter})
    for sock in socks:
        with reverts_with("NothingToWithdraw"):
            market.withdrawChallengeBond(task_id, 0, {"from": sock})
    market.finalizeRound(task_id, 0, {"from": owner})  # no arbitration left to wait for
    claim_all(market, task_id, 0, result, owner)
    after_slash_window(driver, task_id, 0)
    leave_all(market, task_id, contributors)
    withdraw_bonds(market, task_id, validators)
    with reverts_with("NothingToWithdraw"):  # the round paid its whole budget
        market.withdrawRefund(task_id, {"from": owner})

    assert driver.task(task_id)["burned"] == 2 * CHALLENGE_BOND
    assert_solvent(driver)
    rows = settle(
        "b. late reject of a sock's challenge",
        books,
        attackers=["socks"],
        honest=["owner", "arbiter", *parties],
        bought={"owner": result.proposal[4]},
    )
    assert rows["socks"]["net_ex_gas"] == -2 * CHALLENGE_BOND


# ---------------------------------------------------------------- c. hostile owner


def test_c_owner_cannot_arbitrate_its_own_task(driver, market, owner, validators, contributors, arbiter):
    for chosen in (owner, validators[1]):
        with reverts_with("BadArbiter", chosen):
            driver.create_task(arbiter=str(chosen), bond=False)
    task_id = driver.create_task(bond=False)
    with reverts_with("ConflictOfInterest", arbiter):  # nor may the arbiter contribute
        market.join(task_id, driver.deposit(arbiter, STAKE))


def test_c_owner_cannot_cancel_after_reveals(driver, market, owner, validators, contributors, arbiter):
    """The owner sees the revealed updates and cancels to keep the model without paying: refused. The round
    is validated and pays its contributors; the owner can only cancel the next round, before its reveals."""
    parties = {f"contributor {i}": c for i, c in enumerate(contributors)}
    parties |= {f"validator {i}": v for i, v in enumerate(validators)}
    books = Books(driver, owner=owner, arbiter=arbiter, **parties)
    task_id = driver.create_task()
    driver.join(task_id)
    driver.open_commit(task_id)
    updates = driver.submit(task_id, 0)
    with reverts_with("RoundHasReveals", 0):
        market.cancelTask(task_id, {"from": owner})
    result = honest_result(driver, task_id, 0, updates)
    propose_all(market, task_id, 0, result, validators)
    market.cancelTask(task_id, {"from": owner})  # round 1 has no reveals: allowed, the escrow comes back
    driver.finalize(task_id, 0)
    claim_all(market, task_id, 0, result, owner)
    after_slash_window(driver, task_id, 0)
    leave_all(market, task_id, contributors)
    withdraw_bonds(market, task_id, validators)
    assert_solvent(driver)
    settle(
        "c. owner cancels after reveals",
        books,
        refused=["owner"],
        honest=["arbiter", *parties],
        bought={"owner": result.proposal[4]},
    )


def test_c_owner_challenges_an_honest_round(driver, market, owner, validators, contributors, arbiter):
    """The owner challenges an honest round to get its rewards back; the independent arbiter rejects it once
    the window is over: the owner's bond burns and the contributors are paid."""
    parties = {f"contributor {i}": c for i, c in enumerate(contributors)}
    parties |= {f"validator {i}": v for i, v in enumerate(validators)}
    books = Books(driver, owner=owner, arbiter=arbiter, **parties)
    task_id = driver.create_task(numRounds=1, budget=ROUND_BUDGET)
    driver.join(task_id)
    driver.open_commit(task_id)
    updates = driver.submit(task_id, 0)
    result = honest_result(driver, task_id, 0, updates)
    propose_all(market, task_id, 0, result, validators)
    challenge(driver, task_id, 0, owner)
    driver.sleep_until(driver.round(task_id, 0)["acceptedAt"] + CHALLENGE_DURATION)
    market.resolveChallenge(task_id, 0, ZERO_ADDRESS, {"from": arbiter})
    market.finalizeRound(task_id, 0, {"from": contributors[0]})
    claim_all(market, task_id, 0, result, contributors[0])
    after_slash_window(driver, task_id, 0)
    leave_all(market, task_id, contributors)
    withdraw_bonds(market, task_id, validators)
    assert driver.task(task_id)["burned"] == CHALLENGE_BOND
    assert_solvent(driver)
    rows = settle(
        "c. owner challenges an honest round",
        books,
        attackers=["owner"],
        honest=["arbiter", *parties],
        bought={"owner": result.proposal[4]},
    )
    assert rows["owner"]["net_ex_gas_plus_work_bought"] == -CHALLENGE_BOND


def test_c_owner_cancels_mid_round_then_forfeits_after_a_halt(
    driver, market, owner, validators, contributors, arbiter, fresh
):
    """The owner cancels once round 1's contributors have committed, before any of them could reveal (which
    a cancelled task no longer allows). Later a challenge of round 0 is upheld, after round 1's reveal end.
    The owner then tries to collect forfeit bounties on the commitments it stopped from being opened: the
    task stopped at the cancel, so nobody forfeits, and the contributors leave with their whole stakes."""
    auditor = fresh("auditor c")
    cartel = list(validators[:2])
    parties = {f"contributor {i}": c for i, c in enumerate(contributors)}
    books = Books(
        driver,
        owner=owner,
        cartel=cartel,
        auditor=auditor,
        arbiter=arbiter,
        honest_validator=validators[2],
        **parties,
    )
    task_id = driver.create_task()
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.submit(task_id, 0)
    fraud = make_proposal([(contributors[0], ROUND_BUDGET)], label="skewed")
    propose_all(market, task_id, 0, fraud, cartel)
    challenge(driver, task_id, 0, auditor)
    driver.commit(task_id, 1, driver.updates(1))  # every contributor committed: round 1's reveal phase opens
    cancelled = market.cancelTask(task_id, {"from": owner})
    driver.sleep_until(driver.round(task_id, 1)["revealEnd"] + 1)
    market.resolveChallenge(task_id, 0, auditor, {"from": arbiter})
    assert driver.task(task_id)["closedAt"] == cancelled.timestamp
    for contributor in contributors:
        with reverts_with("NothingToForfeit"):
            market.forfeitUnrevealed(task_id, 1, contributor, {"from": owner})
    leave_all(market, task_id, contributors)
    driver.withdraw_credit(auditor)
    market.withdrawBond(task_id, {"from": validators[2]})
    market.withdrawRefund(task_id, {"from": owner})
    assert_solvent(driver)
    settle(
        "c. owner cancels mid-round, forfeits after a halt",
        books,
        attackers=["cartel"],
        refused=["owner"],
        honest=["auditor", "arbiter", "honest_validator", *parties],
    )


# ---------------------------------------------------------------- d. lesser strategies


@pytest.mark.parametrize(
    ("params", "error", "args"),
    [
        ({"quorum": 1}, "BadQuorum", (1, 3)),
        ({"contributorStake": 0}, "BadBond", ()),
        ({"validatorBond": 0, "validatorSlash": 0}, "BadBond", ()),
        ({"challengeBond": 0}, "BadBond", ()),
        ({"validationDuration": 1800, "challengeDuration": 1799}, "BadDuration", ()),
    ],
    ids=[
        "quorum-1-of-3",
        "zero-stake",
        "zero-validator-bond",
        "zero-challenge-bond",
        "short-challenge-window",
    ],
)
def test_d_owner_cannot_create_a_task_strangers_cannot_trust(driver, params, error, args):
    with reverts_with(error, *args):
        driver.create_task(bond=False, **params)


def test_d_quorum_of_half_of_four_validators_is_refused(driver, validators, outsider):
    with reverts_with("BadQuorum", 2, 4):
        driver.create_task(validators=[*validators, outsider], quorum=2, bond=False)


def test_d_validator_slashed_to_zero_must_top_up_before_proposing(
    driver, market, owner, validators, contributors, arbiter
):
    """Validator 2 skips round 0 and loses its whole bond (validatorSlash = validatorBond). With nothing
    left at stake it may not propose until it has put the full bond back."""
    lazy = validators[2]
    parties = {f"contributor {i}": c for i, c in enumerate(contributors)}
    books = Books(
        driver, lazy=lazy, owner=owner, arbiter=arbiter, v0=validators[0], v1=validators[1], **parties
    )
    task_id = driver.create_task(
        numRounds=2, budget=2 * ROUND_BUDGET, validatorSlash=VALIDATOR_BOND, commitDuration=7200
    )
    driver.join(task_id)
    driver.open_commit(task_id)
    results = [driver.accept(task_id, 0)]
    driver.finalize(task_id, 0)
    assert tuple(market.validatorInfo(task_id, lazy)) == (True, False, 0)
    updates = driver.submit(task_id, 1)
    result = honest_result(driver, task_id, 1, updates)
    with reverts_with("NotBonded"):
        market.propose(task_id, 1, result.proposal, {"from": lazy})
    options, error = driver.underpaid(lazy, VALIDATOR_BOND, VALIDATOR_BOND // 2)
    with reverts_with(*error):
        market.bondValidator(task_id, options)
    market.bondValidator(task_id, driver.deposit(lazy, VALIDATOR_BOND))
    propose_all(market, task_id, 1, result, [lazy, *validators[:2]])
    results.append(result)
    driver.finalize(task_id, 1)
    for round_, r in enumerate(results):
        claim_all(market, task_id, round_, r, owner)
    after_slash_window(driver, task_id, 1)
    leave_all(market, task_id, contributors)
    withdraw_bonds(market, task_id, validators)
    market.withdrawRefund(task_id, {"from": owner})  # the unspent budget and the lazy validator's bond
    assert_solvent(driver)
    settle(
        "d. validator slashed to zero proposes",
        books,
        attackers=["lazy"],
        honest=["owner", "arbiter", "v0", "v1", *parties],
        bought={"owner": sum(r.proposal[4] for r in results)},
    )


def test_d_contributor_slashed_to_zero_loses_its_slot(
    driver, market, owner, validators, contributors, arbiter
):
    """Contributor 0's round-0 update is rejected and its whole stake slashed. With nothing at stake it may
    not commit again (it would be a free Sybil) and no longer counts among the active contributors."""
    cheat, others = contributors[0], contributors[1:]
    parties = {f"contributor {i}": c for i, c in enumerate(others, start=1)}
    parties |= {f"validator {i}": v for i, v in enumerate(validators)}
    books = Books(driver, cheat=cheat, owner=owner, arbiter=arbiter, **parties)
    task_id = driver.create_task(numRounds=2, budget=2 * ROUND_BUDGET, commitDuration=7200)
    driver.join(task_id)
    driver.open_commit(task_id)
    updates = driver.submit(task_id, 0)
    each = ROUND_BUDGET // 3
    result = make_proposal([(u.contributor, each) for u in updates[1:]], [(cheat, STAKE)], label="round 0")
    propose_all(market, task_id, 0, result, validators)
    driver.finalize(task_id, 0)
    market.slashContributor(
        task_id, 0, 0, str(cheat), STAKE, result.slashes.proof(0), {"from": validators[0]}
    )
    assert tuple(market.contributorInfo(task_id, cheat)) == (False, 1, 0, 0)
    assert driver.task(task_id)["activeContributors"] == 3
    with reverts_with("NotJoined"):
        market.commit(task_id, 1, digest_of("free ride"), {"from": cheat})
    updates = driver.updates(1, others)
    driver.commit(task_id, 1, updates)  # three commits end the commit phase: the cheat is not waited for
    driver.reveal(task_id, 1, updates)
    second = honest_result(driver, task_id, 1, updates)
    propose_all(market, task_id, 1, second, validators)
    driver.finalize(task_id, 1)
    claim_all(market, task_id, 0, result, owner)
    claim_all(market, task_id, 1, second, owner)
    after_slash_window(driver, task_id, 1)
    leave_all(market, task_id, others)
    withdraw_bonds(market, task_id, validators)
    market.withdrawRefund(task_id, {"from": owner})
    assert_solvent(driver)
    settle(
        "d. contributor slashed to zero commits",
        books,
        attackers=["cheat"],
        honest=["owner", "arbiter", *parties],
        bought={"owner": result.proposal[4] + second.proposal[4]},
    )


def test_d_out_of_order_finalization_around_a_failed_round(
    driver, market, owner, validators, contributors, arbiter, fresh
):
    """The cartel accepts two fraudulent rounds with a failed one between them. An auditor challenges the
    first; while the arbiter deliberates, the cartel tries to finalize the later fraudulent round so that a
    halt could no longer void it: rounds settle in order across failed rounds, so it cannot."""
    sock, auditor = fresh("sock d"), fresh("auditor d")
    cartel = [validators[0], validators[1], sock]
    parties = {f"contributor {i}": c for i, c in enumerate(contributors)}
    books = Books(
        driver,
        cartel=cartel,
        auditor=auditor,
        owner=owner,
        arbiter=arbiter,
        honest_validator=validators[2],
        **parties,
    )
    task_id = driver.create_task(commitDuration=600, revealDuration=600, validationDuration=600)
    driver.join(task_id)
    driver.open_commit(task_id)
    for round_ in (0, 2):
        if round_ == 2:  # round 1: one reveal of the two needed, the round fails
            lone = driver.updates(1, contributors[:1])
            driver.commit(task_id, 1, lone)
            driver.sleep_until(driver.round(task_id, 1)["commitEnd"])
            driver.reveal(task_id, 1, lone)
            market.failRound(task_id, {"from": owner})
        driver.submit(task_id, round_)
        propose_all(
            market,
            task_id,
            round_,
            make_proposal([(sock, ROUND_BUDGET)], label=f"fraud {round_}"),
            cartel[:2],
        )
        if round_ == 0:
            challenge(driver, task_id, 0, auditor)
    assert [driver.round(task_id, r)["status"] for r in range(3)] == [ACCEPTED, FAILED, ACCEPTED]
    driver.sleep_until(driver.round(task_id, 2)["acceptedAt"] + CHALLENGE_DURATION)
    assert driver.round(task_id, 0)["acceptedAt"] + 2 * CHALLENGE_DURATION > chain_time()
    with reverts_with("PreviousRoundPending", 0):
        market.finalizeRound(task_id, 2, {"from": sock})
    arbitration_end = driver.round(task_id, 0)["acceptedAt"] + 2 * CHALLENGE_DURATION
    with reverts_with("ChallengePending", arbitration_end):
        market.finalizeRound(task_id, 0, {"from": sock})
    tx = market.resolveChallenge(task_id, 0, auditor, {"from": arbiter})
    assert [e["round"] for e in tx.events["RoundVoided"]] == [0, 2]
    assert [driver.round(task_id, r)["status"] for r in range(3)] == [VOIDED, FAILED, VOIDED]
    driver.withdraw_credit(auditor)
    market.withdrawBond(task_id, {"from": validators[2]})
    leave_all(market, task_id, contributors)
    market.withdrawRefund(task_id, {"from": owner})
    assert_solvent(driver)
    settle(
        "d. out-of-order finalization around a failed round",
        books,
        attackers=["cartel"],
        honest=["auditor", "owner", "arbiter", "honest_validator", *parties],
    )


def test_d_the_same_slash_leaf_twice(driver, market, owner, validators, contributors, arbiter):
    """Two validators race to apply the same slash leaf (or one replays it to take more): the second is a
    no-op, so the contributor loses the leaf's amount once."""
    slashed = contributors[0]
    contributor_books = Books(driver, slashed=slashed)
    task_id = driver.create_task(numRounds=1, budget=ROUND_BUDGET)
    driver.join(task_id)
    driver.open_commit(task_id)
    updates = driver.submit(task_id, 0)
    each = ROUND_BUDGET // 4
    result = make_proposal(
        [(u.contributor, each) for u in updates], [(slashed, STAKE // 2)], label="half slash"
    )
    propose_all(market, task_id, 0, result, validators)
    driver.finalize(task_id, 0)
    proof = result.slashes.proof(0)
    market.slashContributor(task_id, 0, 0, str(slashed), STAKE // 2, proof, {"from": validators[0]})
    books = Books(driver, replayer=validators[1])
    tx = market.slashContributor(task_id, 0, 0, str(slashed), STAKE // 2, proof, {"from": validators[1]})
    assert "ContributorSlashed" not in tx.events
    assert market.contributorInfo(task_id, slashed)[3] == STAKE - STAKE // 2
    claim_all(market, task_id, 0, result, owner)
    after_slash_window(driver, task_id, 0)
    market.leave(task_id, {"from": slashed})
    rows = settle("d. the same slash leaf twice", books, refused=["replayer"])
    assert rows["replayer"]["net_ex_gas"] == 0
    # The slashed contributor loses the leaf once (its reward in, half its stake out), no more.
    net, gas = contributor_books.net("slashed"), contributor_books.gas("slashed")
    assert net + gas == each - STAKE // 2
    rows["slashed contributor"] = {"role": "slashed once", "net": net, "gas": gas, "net_ex_gas": net + gas}


def chain_time() -> int:
    return web3.eth.get_block("latest")["timestamp"]
