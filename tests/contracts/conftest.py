"""Fixtures for the market's tests: one deployment per module, a chain snapshot per test, and a driver that
walks tasks through the protocol so each test states only the step it is about."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from brownie import TestToken, TrainingMarket, accounts, chain, web3
from brownie.exceptions import VirtualMachineError
from brownie.network.account import Account
from cotrain.protocol.commitment import update_commitment
from cotrain.protocol.merkle import Allocation, StandardMerkleTree, allocation_tree
from eth_utils import to_checksum_address


@pytest.fixture(scope="session", autouse=True)
def _receipts_before_nonces() -> Iterator[None]:
    """brownie 1.22 declares a transaction dropped when the sender's nonce has advanced but its receipt is not
    found. anvil can answer the nonce of a mined transaction a moment before its receipt (seen under load:
    "Tx dropped without known replacement" for transactions that were mined), so wait up to 5 s for the
    receipt before brownie's own logic, which still reports a transaction that really was dropped."""
    # Imported here, not at the top: brownie hashes this file and the modules it imports at top level, and
    # brownie's and web3's compiled extensions are not source it can read.
    from brownie.network.transaction import TransactionReceipt
    from web3.exceptions import TransactionNotFound

    original = TransactionReceipt._await_confirmation

    def receipt_first(self, *args, **kwargs):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if web3.eth.get_transaction_receipt(self.txid)["blockHash"] is not None:
                    break
            except TransactionNotFound:
                pass
            time.sleep(0.05)
        return original(self, *args, **kwargs)

    TransactionReceipt._await_confirmation = receipt_first
    yield
    TransactionReceipt._await_confirmation = original


ZERO_ADDRESS = "0x" + "00" * 20
ZERO_BYTES32 = b"\x00" * 32
ETHER = 10**18
# anvil's default accounts[8] (the `arbiter` fixture): the default tasks' arbiter, neither their owner
# (accounts[0]) nor one of their validators (accounts[1:4]).
ARBITER = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"

# TaskParams field order, as in ITrainingMarket.
PARAM_FIELDS = (
    "specDigest",
    "numRounds",
    "minContributors",
    "maxContributors",
    "joinDuration",
    "commitDuration",
    "revealDuration",
    "validationDuration",
    "challengeDuration",
    "quorum",
    "contributorStake",
    "validatorBond",
    "validatorSlash",
    "challengeBond",
    "arbiter",
)
# Task and Round struct field order, as in TrainingMarket.
TASK_FIELDS = (
    "params",
    "owner",
    "status",
    "currentRound",
    "activeContributors",
    "pendingRounds",
    "closedAt",
    "roundBudget",
    "escrow",
    "reserved",
    "unclaimed",
    "stakes",
    "bonds",
    "challengeBonds",
    "burned",
)
ROUND_FIELDS = (
    "startsAt",
    "commitEnd",
    "revealEnd",
    "commits",
    "reveals",
    "validateEnd",
    "acceptedAt",
    "finalizedAt",
    "status",
    "acceptedHash",
    "modelDigest",
    "rewardsRoot",
    "slashRoot",
    "rewardTotal",
    "rewardClaimed",
    "challenges",
    "outcome",
)
DEFAULT_PARAMS = {
    "specDigest": hashlib.sha256(b"task spec").digest(),
    "numRounds": 3,
    "minContributors": 2,
    "maxContributors": 4,
    "joinDuration": 600,
    "commitDuration": 3600,
    "revealDuration": 1800,
    "validationDuration": 1800,
    "challengeDuration": 3600,
    "quorum": 2,
    "contributorStake": ETHER // 10,
    "validatorBond": ETHER,
    "validatorSlash": ETHER // 4,
    "challengeBond": ETHER // 2,
    "arbiter": ARBITER,
}
DEFAULT_BUDGET = 3 * ETHER
SPEC_CID = "bafkreispec"

# Enum values, as in ITrainingMarket.
TASK_ACTIVE, TASK_COMPLETED, TASK_CANCELLED, TASK_HALTED = 1, 2, 3, 4
OPEN, ACCEPTED, FINALIZED, FAILED, VOIDED = range(5)
NO_OUTCOME, REJECTED, UPHELD, DISMISSED = range(4)  # ChallengeOutcome
JOIN, COMMIT, REVEAL, VALIDATE, EXPIRED, CLOSED = range(6)


def _printed(value) -> str:
    """One decoded custom-error argument as brownie 1.22 prints it: addresses lower case, numbers decimal."""
    text = str(value)  # accounts print as their checksummed address
    return text.lower() if text.startswith("0x") and len(text) == 42 else text


@contextmanager
def reverts_with(error: str, *args) -> Iterator[pytest.ExceptionInfo]:
    """Expect the block to revert with the custom error ``error(*args)``.

    brownie 1.22 decodes a custom error into ``VirtualMachineError.revert_msg`` as ``"Name: arg1, arg2"``
    (``"Name: "`` without arguments), so the whole message is compared: the name and every argument.
    """
    with pytest.raises(VirtualMachineError) as info:
        yield info
    assert info.value.revert_msg == f"{error}: {', '.join(_printed(arg) for arg in args)}"


def next_block_at(timestamp: int) -> None:
    """Give the next mined block (the next transaction) exactly this timestamp."""
    response = web3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])
    assert "error" not in response, response


def mine_at(timestamp: int) -> None:
    """Mine an empty block with exactly this timestamp."""
    next_block_at(timestamp)
    chain.mine()


def task_params(**overrides) -> tuple:
    """TaskParams as the tuple the ABI takes, defaults overridden by keyword."""
    unknown = set(overrides) - set(PARAM_FIELDS)
    if unknown:
        raise TypeError(f"unknown TaskParams fields: {sorted(unknown)}")
    merged = {**DEFAULT_PARAMS, **overrides}
    return tuple(merged[name] for name in PARAM_FIELDS)


def digest_of(label: str) -> bytes:
    """A stand-in update or model digest: sha256 of a label."""
    return hashlib.sha256(label.encode()).digest()


@dataclass
class Update:
    """One contributor's update in a round, as the driver commits and reveals it."""

    contributor: Account
    digest: bytes
    salt: bytes
    samples: int = 100
    cid: str = "bafkreiupdate"


@dataclass
class RoundResult:
    """A proposal plus the Merkle trees behind it."""

    proposal: tuple
    rewards: StandardMerkleTree | None
    slashes: StandardMerkleTree | None
    reward_allocations: list[Allocation] = field(default_factory=list)
    slash_allocations: list[Allocation] = field(default_factory=list)

    def reward_proof(self, index: int) -> list[bytes]:
        assert self.rewards is not None
        return self.rewards.proof(index)


def make_proposal(
    rewards: list[tuple[Account, int]],
    slashes: list[tuple[Account, int]] = (),
    label: str = "model",
) -> RoundResult:
    """A proposal whose reward and slash roots are built with cotrain's Merkle code."""
    reward_allocations = [Allocation(str(account), amount) for account, amount in rewards]
    slash_allocations = [Allocation(str(account), amount) for account, amount in slashes]
    reward_tree = allocation_tree(reward_allocations) if reward_allocations else None
    slash_tree = allocation_tree(slash_allocations) if slash_allocations else None
    # bytes32 fields as 0x-hex, which brownie both accepts as input and compares equal to what it returns.
    proposal = (
        "0x" + digest_of(label).hex(),
        "0x" + digest_of(label + " record").hex(),
        "0x" + (reward_tree.root if reward_tree else ZERO_BYTES32).hex(),
        "0x" + (slash_tree.root if slash_tree else ZERO_BYTES32).hex(),
        sum(amount for _, amount in rewards),
        f"bafkrei{label.replace(' ', '')}",
        "bafkreirecord",
    )
    return RoundResult(proposal, reward_tree, slash_tree, reward_allocations, slash_allocations)


class Driver:
    """Walks tasks through the protocol with brownie accounts, in ETH or, given `token`, in that ERC20."""

    def __init__(self, market, owner, validators, contributors, token=None):
        self.market = market
        self.owner = owner
        self.validators = validators
        self.contributors = contributors
        self.token = token

    def deposit(self, sender, amount: int) -> dict:
        """Options for a call that brings `amount` of the driver's currency: the wei as value, or for a token
        no value, on the sender's standing approval (see `token`) or, short of one, an approval of exactly
        `amount` first."""
        if self.token is None:
            return {"from": sender, "value": amount}
        if self.token.allowance(sender, self.market) < amount:
            self.token.approve(self.market, amount, {"from": sender})
        return {"from": sender}

    def underpaid(self, sender, owed: int, paid: int) -> tuple[dict, tuple]:
        """Options for a call that brings `paid` where `owed` is due, and the error it must revert with: ETH's
        WrongAmount, or the token's own allowance error (the market pulls `owed` on an approval of `paid`)."""
        if self.token is None:
            return {"from": sender, "value": paid}, ("WrongAmount", owed, paid)
        self.token.approve(self.market, paid, {"from": sender})
        return {"from": sender}, ("ERC20InsufficientAllowance", self.market.address, paid, owed)

    def balance(self, account) -> int:
        """What `account` (an account, a contract or an address) holds of the driver's currency."""
        if self.token is None:
            return web3.eth.get_balance(to_checksum_address(str(account)))
        return self.token.balanceOf(account)

    def credits(self, account) -> int:
        """What the market has credited `account` in the driver's currency."""
        if self.token is None:
            return self.market.credits(account)
        return self.market.tokenCredits(self.token, account)

    def total_credits(self) -> int:
        """The sum of every account's credits in the driver's currency."""
        return self.market.totalCredits() if self.token is None else self.market.totalTokenCredits(self.token)

    def withdraw_credit(self, account):
        """`account` withdraws its credits in the driver's currency; return the transaction."""
        if self.token is None:
            return self.market.withdrawCredit({"from": account})
        return self.market.withdrawTokenCredit(self.token, {"from": account})

    def credit_withdrawn(self, tx) -> dict:
        """The withdrawal event of `tx` (CreditWithdrawn, or TokenCreditWithdrawn of the driver's token) as
        {"account", "amount"}."""
        if self.token is None:
            return dict(tx.events["CreditWithdrawn"])
        event = dict(tx.events["TokenCreditWithdrawn"])
        assert event.pop("token") == self.token
        return event

    def create_task(self, *, budget=DEFAULT_BUDGET, validators=None, bond=True, sender=None, **params) -> int:
        """Create a task (and bond its validators unless bond=False); return its id."""
        validators = list(self.validators if validators is None else validators)
        options = self.deposit(sender or self.owner, budget)
        if self.token is None:
            tx = self.market.createTask(task_params(**params), SPEC_CID, validators, options)
        else:
            tx = self.market.createTokenTask(
                task_params(**params), SPEC_CID, validators, self.token, budget, options
            )
        task_id = tx.return_value
        bond_amount = self.params(task_id)["validatorBond"]
        if bond and bond_amount:
            for validator in validators:
                self.market.bondValidator(task_id, self.deposit(validator, bond_amount))
        return task_id

    def params(self, task_id: int) -> dict:
        return dict(zip(PARAM_FIELDS, self.market.getTask(task_id)[0], strict=True))

    def task(self, task_id: int) -> dict:
        """The Task struct by field name; "params" holds the TaskParams dict."""
        task = dict(zip(TASK_FIELDS, self.market.getTask(task_id), strict=True))
        task["params"] = dict(zip(PARAM_FIELDS, task["params"], strict=True))
        return task

    def join(self, task_id: int, contributors=None) -> None:
        stake = self.params(task_id)["contributorStake"]
        for contributor in self.contributors if contributors is None else contributors:
            self.market.join(task_id, self.deposit(contributor, stake))

    def sleep_until(self, timestamp: int) -> None:
        """Mine a block at or after timestamp."""
        gap = timestamp - chain.time()
        if gap > 0:
            chain.sleep(gap)
        chain.mine()

    def round(self, task_id: int, round_: int) -> dict:
        return dict(zip(ROUND_FIELDS, self.market.getRound(task_id, round_), strict=True))

    def open_commit(self, task_id: int, round_: int = 0) -> None:
        self.sleep_until(self.round(task_id, round_)["startsAt"])

    def updates(self, round_: int, contributors=None) -> list[Update]:
        return [
            Update(c, digest_of(f"update {round_} {c}"), digest_of(f"salt {round_} {c}"))
            for c in (self.contributors if contributors is None else contributors)
        ]

    def commit(self, task_id: int, round_: int, updates: list[Update]) -> None:
        for u in updates:
            commitment = update_commitment(str(u.contributor), task_id, round_, u.digest, u.salt)
            self.market.commit(task_id, round_, commitment, {"from": u.contributor})

    def reveal(self, task_id: int, round_: int, updates: list[Update]) -> None:
        for u in updates:
            self.market.reveal(task_id, round_, u.cid, u.digest, u.samples, u.salt, {"from": u.contributor})

    def submit(self, task_id: int, round_: int, updates: list[Update] | None = None) -> list[Update]:
        """Commit then reveal; the phases end early because every expected contributor acts."""
        updates = self.updates(round_) if updates is None else updates
        self.commit(task_id, round_, updates)
        self.sleep_until(self.round(task_id, round_)["commitEnd"])
        self.reveal(task_id, round_, updates)
        self.sleep_until(self.round(task_id, round_)["revealEnd"])
        return updates

    def propose(self, task_id: int, round_: int, result: RoundResult, validators=None) -> None:
        for validator in self.validators[:2] if validators is None else validators:
            self.market.propose(task_id, round_, result.proposal, {"from": validator})

    def accept(
        self, task_id: int, round_: int, updates: list[Update] | None = None, share: int | None = None
    ):
        """Run a round to acceptance with equal rewards for every revealed update; return the RoundResult."""
        updates = self.submit(task_id, round_, updates)
        budget = self.task(task_id)["roundBudget"] if share is None else share * len(updates)
        each = budget // len(updates)
        result = make_proposal([(u.contributor, each) for u in updates], label=f"model {round_}")
        self.propose(task_id, round_, result)
        return result

    def finalize(self, task_id: int, round_: int) -> None:
        r = self.round(task_id, round_)
        self.sleep_until(r["acceptedAt"] + self.params(task_id)["challengeDuration"])
        self.market.finalizeRound(task_id, round_, {"from": self.owner})


@pytest.fixture(scope="module")
def owner():
    return accounts[0]


@pytest.fixture(scope="module")
def validators():
    return accounts[1:4]


@pytest.fixture(scope="module")
def contributors():
    return accounts[4:8]


@pytest.fixture(scope="module")
def arbiter():
    assert accounts[8] == ARBITER
    return accounts[8]


@pytest.fixture(scope="module")
def outsider():
    return accounts[9]


@pytest.fixture(scope="module")
def market(owner):
    return TrainingMarket.deploy({"from": owner})


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    """Every test starts from the chain state right after the module's fixtures."""


TOKEN_SUPPLY = 100 * ETHER  # minted to each of accounts[0:10]


@pytest.fixture(scope="module")
def token(owner, market):
    """A standard ERC20, TOKEN_SUPPLY minted to each of the ten accounts, each of which approves the market
    for every unit it may ever hold (an approval a test sets lower stands until the driver needs more): one
    approval per account and module instead of one per payment, which doubled a token test's transactions."""
    token = TestToken.deploy({"from": owner})
    for account in accounts[:10]:
        token.mint(account, TOKEN_SUPPLY, {"from": owner})
        token.approve(market, 2**256 - 1, {"from": account})
    return token


def pytest_generate_tests(metafunc) -> None:
    """In a module marked ``pytestmark = pytest.mark.currencies``, every test whose fixtures take a driver
    runs once in ETH and once in the standard ERC20 `token`, except tests marked ``eth_only`` (what only ETH
    has: msg.value, a receiver that refuses ETH)."""
    if "currency" in metafunc.fixturenames and metafunc.definition.get_closest_marker("currencies"):
        eth_only = metafunc.definition.get_closest_marker("eth_only") is not None
        metafunc.parametrize("currency", ["eth"] if eth_only else ["eth", "erc20"])


@pytest.fixture
def currency() -> str:
    """The driver's currency: ETH, unless the module is marked ``currencies``."""
    return "eth"


@pytest.fixture
def driver(currency, market, owner, validators, contributors, token):
    """Walks tasks in `currency`: ETH, or the standard ERC20 `token`. The token is deployed with the module's
    other fixtures, before each test's chain snapshot, even where only ETH is used: created inside a test, it
    would be reverted with that test's state."""
    return Driver(market, owner, validators, contributors, token if currency == "erc20" else None)


@pytest.fixture
def task_id(driver):
    """A default task: validators bonded, all four contributors joined, commit phase open."""
    task_id = driver.create_task()
    driver.join(task_id)
    driver.open_commit(task_id)
    return task_id
