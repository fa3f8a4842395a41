"""Typed bindings for the TrainingMarket contract (see contracts/interfaces/ITrainingMarket.sol).

One method per contract function, views returning frozen dataclasses, and an event scanner. The ABI and
bytecode ship in ``TrainingMarket.json`` beside this module (exported by ``toolchain/export_artifact.py``), so
nodes need no compiler. The enums and dataclasses mirror the ABI field for field; :func:`binding_mismatches`
checks that against the shipped artifact, and :class:`Market` refuses to start if they disagree.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from enum import IntEnum
from importlib import resources
from types import MappingProxyType
from typing import Any

import eth_abi
from eth_abi.exceptions import DecodingError
from eth_utils import (
    collapse_if_tuple,
    event_abi_to_log_topic,
    keccak,
    to_checksum_address,
)
from hexbytes import HexBytes
from web3.types import TxReceipt

from cotrain.chain.client import ChainClient
from cotrain.chain.keys import TransactionSigner
from cotrain.chain.market_errors import REVERT_WORDS
from cotrain.errors import ChainError, ConfigError

ARTIFACT_NAME = "TrainingMarket.json"
ZERO_ADDRESS = "0x" + "00" * 20

# The part of ERC20 the node uses on a token task: approving the market for a pull, reading balances.
ERC20_ABI = [
    {
        "type": "function",
        "name": "approve",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "account", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
]
ZERO_BYTES32 = bytes(32)
#: What ``commitmentOf`` returns once a commitment was revealed, and once it was forfeited unopened.
REVEALED = (1).to_bytes(32, "big")
FORFEITED = (2).to_bytes(32, "big")


# ---------------------------------------------------------------- enums, in Solidity order


class TaskStatus(IntEnum):
    """``ITrainingMarket.TaskStatus``."""

    NONE = 0
    ACTIVE = 1
    COMPLETED = 2
    CANCELLED = 3
    HALTED = 4


class RoundStatus(IntEnum):
    """``ITrainingMarket.RoundStatus``."""

    OPEN = 0
    ACCEPTED = 1
    FINALIZED = 2
    FAILED = 3
    VOIDED = 4


class Phase(IntEnum):
    """``ITrainingMarket.Phase``: the phase of a task's current round, from its schedule and the clock."""

    JOIN = 0
    COMMIT = 1
    REVEAL = 2
    VALIDATE = 3
    EXPIRED = 4
    CLOSED = 5


class ChallengeOutcome(IntEnum):
    """``ITrainingMarket.ChallengeOutcome``: what became of a round's challenges."""

    NONE = 0
    REJECTED = 1
    UPHELD = 2
    DISMISSED = 3


# ---------------------------------------------------------------- structs, in ABI field order


@dataclass(frozen=True)
class TaskParams:
    """``ITrainingMarket.TaskParams``: a task's terms, fixed at creation (durations in s, amounts in wei).

    See the NatSpec of ``ITrainingMarket.TaskParams`` for each field; ``arbiter`` must be neither the task
    owner nor one of its validators.
    """

    spec_digest: bytes
    num_rounds: int
    min_contributors: int
    max_contributors: int
    join_duration: int
    commit_duration: int
    reveal_duration: int
    validation_duration: int
    challenge_duration: int
    quorum: int
    contributor_stake: int
    validator_bond: int
    validator_slash: int
    challenge_bond: int
    arbiter: str


@dataclass(frozen=True)
class Proposal:
    """``ITrainingMarket.Proposal``: a validator's result for a round. Digests and roots are 32 bytes."""

    model_digest: bytes
    record_digest: bytes
    rewards_root: bytes
    slash_root: bytes
    reward_total: int
    model_cid: str
    record_cid: str

    def proposal_hash(self) -> bytes:
        """The hash proposals are compared by on chain: everything except the CIDs."""
        return keccak(
            eth_abi.encode(
                ["bytes32", "bytes32", "bytes32", "bytes32", "uint256"],
                [
                    self.model_digest,
                    self.record_digest,
                    self.rewards_root,
                    self.slash_root,
                    self.reward_total,
                ],
            )
        )


@dataclass(frozen=True)
class Task:
    """``TrainingMarket.Task``: a task's parameters, status and money buckets (wei); ``closed_at`` is when it
    stopped being active (0 while active), ``burned`` the penalties nobody may collect."""

    params: TaskParams
    owner: str
    status: TaskStatus
    current_round: int
    active_contributors: int
    pending_rounds: int
    closed_at: int
    round_budget: int
    escrow: int
    reserved: int
    unclaimed: int
    stakes: int
    bonds: int
    challenge_bonds: int
    burned: int


@dataclass(frozen=True)
class Round:
    """``TrainingMarket.Round``: a round's schedule (unix seconds), counters, status and accepted result;
    ``challenges`` counts the challenges filed, ``outcome`` says what the arbiter (or its silence) made of
    them."""

    starts_at: int
    commit_end: int
    reveal_end: int
    commits: int
    reveals: int
    validate_end: int
    accepted_at: int
    finalized_at: int
    status: RoundStatus
    accepted_hash: bytes
    model_digest: bytes
    rewards_root: bytes
    slash_root: bytes
    reward_total: int
    reward_claimed: int
    challenges: int
    outcome: ChallengeOutcome


@dataclass(frozen=True)
class Contributor:
    """``TrainingMarket.Contributor``; ``last_round`` and ``locked_round`` count from 1 (0: none)."""

    joined: bool
    last_round: int
    locked_round: int
    stake: int


@dataclass(frozen=True)
class Validator:
    """``TrainingMarket.Validator``."""

    listed: bool
    bonded: bool
    bond: int


@dataclass(frozen=True)
class MarketEvent:
    """One decoded market event.

    Attributes
    ----------
    name : str
        Event name, e.g. ``"TaskCreated"``.
    args : Mapping[str, Any]
        Arguments by ABI name (``taskId``, ``round``, ...); structs as dataclasses, addresses checksummed.
    block : int
        Block number.
    block_hash : str
        0x-hex hash of that block (tells a reorganised or restarted chain's block of the same number apart).
    tx_hash : str
        0x-hex hash of the emitting transaction.
    log_index : int
        Position of the log in its block.
    """

    name: str
    args: Mapping[str, Any]
    block: int
    block_hash: str
    tx_hash: str
    log_index: int

    @property
    def task_id(self) -> int | None:
        """The event's ``taskId``, or None for events without one (``CreditWithdrawn``)."""
        return self.args.get("taskId")


#: Gas limits for calls whose cost depends on who acts first: a proposal that reaches the quorum accepts
#: the round and schedules the next one (about 275k gas against 94k for one that does not).
GAS_FLOORS = {"propose": 400_000}

ENUMS: dict[str, type[IntEnum]] = {
    cls.__name__: cls for cls in (TaskStatus, RoundStatus, Phase, ChallengeOutcome)
}
STRUCTS: dict[str, type] = {
    cls.__name__: cls for cls in (TaskParams, Proposal, Task, Round, Contributor, Validator)
}


# ---------------------------------------------------------------- artifact and ABI mapping


@functools.cache
def load_artifact() -> dict[str, Any]:
    """The shipped artifact: ``abi``, ``bytecode``, ``deployedBytecode``, ``enums``, ``compiler``, ...

    The dict is shared; do not modify it.

    Raises
    ------
    ChainError
        If the package was installed without it.
    """
    try:
        text = resources.files(__package__).joinpath(ARTIFACT_NAME).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise ChainError(
            f"{ARTIFACT_NAME} is missing from the cotrain package: reinstall cotrain (package data ships it)"
        ) from exc
    return dict(json.loads(text))


def snake_case(name: str) -> str:
    """``contributorStake`` -> ``contributor_stake``; ``MAX_ROUNDS`` -> ``max_rounds``."""
    if name.isupper():
        return name.lower()
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _type_name(internal: str) -> str:
    """``struct ITrainingMarket.TaskParams[]`` -> ``TaskParams``."""
    return internal.split(" ", 1)[-1].rsplit(".", 1)[-1].split("[", 1)[0]


def _python_type(param: Mapping[str, Any]) -> str:
    internal = str(param.get("internalType", ""))
    kind = str(param["type"])
    if kind.startswith("tuple") or internal.startswith("enum "):
        return _type_name(internal)
    if kind.startswith(("uint", "int")):
        return "int"
    if kind in ("address", "string"):
        return "str"
    if kind.startswith("bytes"):
        return "bytes"
    return kind


def _walk_params(abi: Sequence[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    stack = [param for entry in abi for param in [*entry.get("inputs", []), *entry.get("outputs", [])]]
    while stack:
        param = stack.pop()
        yield param
        stack.extend(param.get("components", []))


def binding_mismatches(artifact: Mapping[str, Any] | None = None) -> list[str]:
    """Compare these bindings with an artifact's ABI and enums; return one line per disagreement.

    Checked: every Solidity enum has an IntEnum with the same members in order (``None`` -> ``NONE``), every
    struct in the ABI has a dataclass whose fields are the struct's components in order (snake_case) with
    matching Python types, every custom error has words in ``REVERT_WORDS``, and no enum, dataclass or
    words are left without a counterpart.
    """
    artifact = load_artifact() if artifact is None else artifact
    problems = []
    solidity_enums = {_type_name(name): members for name, members in artifact["enums"].items()}
    for name, members in solidity_enums.items():
        enum = ENUMS.get(name)
        expected = [(snake_case(member).upper(), value) for value, member in enumerate(members)]
        if enum is None:
            problems.append(f"Solidity enum {name} has no IntEnum")
        elif [(member.name, member.value) for member in enum] != expected:
            problems.append(f"IntEnum {name} is {[m.name for m in enum]}, the contract has {members}")
    problems += [f"IntEnum {name} matches no Solidity enum" for name in ENUMS.keys() - solidity_enums.keys()]

    seen = set()
    for param in _walk_params(artifact["abi"]):
        internal = str(param.get("internalType", ""))
        if internal.startswith("enum ") and _type_name(internal) not in ENUMS:
            problems.append(f"ABI enum {internal} has no IntEnum")
        if not str(param["type"]).startswith("tuple"):
            continue
        name = _type_name(internal)
        seen.add(name)
        cls = STRUCTS.get(name)
        if cls is None:
            problems.append(f"ABI struct {internal} has no dataclass")
            continue
        expected_fields = [(snake_case(c["name"]), _python_type(c)) for c in param["components"]]
        actual_fields = [(f.name, str(f.type)) for f in fields(cls)]
        if actual_fields != expected_fields:
            problems.append(f"dataclass {name} has fields {actual_fields}, the ABI has {expected_fields}")
    problems += [f"dataclass {name} matches no ABI struct" for name in STRUCTS.keys() - seen]
    errors = {entry["name"] for entry in artifact["abi"] if entry["type"] == "error"}
    problems += [
        f"ABI error {name} has no words in REVERT_WORDS" for name in sorted(errors - REVERT_WORDS.keys())
    ]
    problems += [
        f"REVERT_WORDS names {name}, which the ABI lacks" for name in sorted(REVERT_WORDS.keys() - errors)
    ]
    return list(dict.fromkeys(problems))


@functools.cache
def _check_bindings() -> None:
    problems = binding_mismatches()
    if problems:
        raise ChainError(
            f"the shipped {ARTIFACT_NAME} and cotrain.chain.market disagree: {'; '.join(problems)}. "
            "Re-export the artifact and update the bindings together"
        )


def _from_abi(param: Mapping[str, Any], value: Any) -> Any:
    """Convert one decoded ABI value to its Python binding type, guided by its ABI description."""
    kind = str(param["type"])
    internal = str(param.get("internalType", ""))
    if kind.endswith("]"):
        item = {**param, "type": kind[: kind.rindex("[")], "internalType": internal[: internal.rindex("[")]}
        return tuple(_from_abi(item, element) for element in value)
    if kind == "tuple":
        cls = STRUCTS[_type_name(internal)]
        components = param["components"]
        if isinstance(value, Mapping):
            value = [value[component["name"]] for component in components]
        return cls(*(_from_abi(c, v) for c, v in zip(components, value, strict=True)))
    if internal.startswith("enum "):
        return ENUMS[_type_name(internal)](value)
    if kind == "address":
        return to_checksum_address(value)
    if kind.startswith("bytes"):
        return bytes(value)
    return value


def _to_abi(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return tuple(_to_abi(getattr(value, f.name)) for f in fields(value))
    if isinstance(value, IntEnum):
        return int(value)
    return value


# ---------------------------------------------------------------- the market


class Market:
    """A deployed TrainingMarket, used through ``client`` (whose account signs the transactions).

    Transaction methods wait for the receipt (and the client's confirmations) and return it; they raise
    :class:`cotrain.chain.client.ContractRevert` with the decoded custom error when the market refuses.

    Parameters
    ----------
    client : ChainClient
        Connection and signing account.
    address : str
        The market's address.
    deploy_block : int
        Block the market was deployed in; :meth:`events` scans from there by default.

    Raises
    ------
    ChainError
        If there is no contract at ``address``, or the shipped artifact and these bindings disagree.
    """

    def __init__(self, client: ChainClient, address: str, *, deploy_block: int = 0) -> None:
        _check_bindings()
        artifact = load_artifact()
        self.client = client
        self.address = to_checksum_address(address)
        self.deploy_block = deploy_block
        if not client.get_code(self.address):
            raise ChainError(
                f"no contract at {self.address} on chain {client.chain_id} ({client.rpc_url}): "
                "deploy the market first or fix the address"
            )
        self.contract = client.w3.eth.contract(address=self.address, abi=artifact["abi"])
        client.register_abi(artifact["abi"], ENUMS, REVERT_WORDS)
        self._event_abis: dict[bytes, Mapping[str, Any]] = {
            event_abi_to_log_topic(entry): entry for entry in artifact["abi"] if entry["type"] == "event"
        }
        self._views = {
            entry["name"]: _View.of(entry)
            for entry in artifact["abi"]
            if entry["type"] == "function" and entry["stateMutability"] in ("view", "pure")
        }

    def with_account(self, account: TransactionSigner) -> Market:
        """The same market, sending as ``account`` (same connection and nonce book)."""
        other = object.__new__(Market)
        other.__dict__.update(self.__dict__)
        other.client = self.client.as_account(account)
        return other

    def __repr__(self) -> str:
        return f"Market({self.address}, chain_id={self.client.chain_id}, account={self.client.address})"

    # ---------------------------------------------------------------- task owner

    def create_task(
        self,
        params: TaskParams,
        spec_cid: str,
        validators: Sequence[str],
        budget_wei: int,
        *,
        token: str = ZERO_ADDRESS,
    ) -> int:
        """Post a task escrowing ``budget_wei``; return its id (read from the ``TaskCreated`` event).

        With an ERC20 ``token`` (not the zero address) the task is in that token: see
        :meth:`create_token_task`."""
        if token != ZERO_ADDRESS:
            return self.create_token_task(params, spec_cid, validators, token, budget_wei)
        receipt = self._send("createTask", _to_abi(params), spec_cid, list(validators), value=budget_wei)
        return self._created_task(receipt)

    def create_token_task(
        self, params: TaskParams, spec_cid: str, validators: Sequence[str], token: str, budget: int
    ) -> int:
        """Post a task whose budget, stakes and bonds are in the ERC20 ``token``: approve the market for
        exactly ``budget`` units, which it pulls and escrows as they arrive (less for a fee-on-transfer
        token)."""
        token = to_checksum_address(token)
        self.approve(token, budget)
        receipt = self._send("createTokenTask", _to_abi(params), spec_cid, list(validators), token, budget)
        return self._created_task(receipt)

    def _created_task(self, receipt: TxReceipt) -> int:
        created = [event for event in self.receipt_events(receipt) if event.name == "TaskCreated"]
        if len(created) != 1:
            raise ChainError(f"createTask receipt {receipt['transactionHash']!r} has no TaskCreated event")
        return int(created[0].args["taskId"])

    def cancel_task(self, task_id: int) -> TxReceipt:
        """Owner: stop an active task and refund the escrow not yet earned."""
        return self._send("cancelTask", task_id)

    def withdraw_refund(self, task_id: int) -> TxReceipt:
        """Owner, once the task is over: withdraw the escrow left over."""
        return self._send("withdrawRefund", task_id)

    # ---------------------------------------------------------------- validators

    def bond_validator(self, task_id: int, *, bond_wei: int | None = None) -> TxReceipt:
        """Lock the validator bond, or top up a slashed one: unless ``bond_wei`` is given, what this account's
        bond lacks of the task's ``validator_bond``."""
        if bond_wei is None:
            full = self.get_task(task_id).params.validator_bond
            bond_wei = full - self.validator_info(task_id, self.client.signing_address()).bond
        return self._send_paying(task_id, bond_wei, "bondValidator", task_id)

    def withdraw_bond(self, task_id: int) -> TxReceipt:
        """Take the validator bond back once the task is over and no round awaits finalization."""
        return self._send("withdrawBond", task_id)

    def propose(self, task_id: int, round_: int, proposal: Proposal) -> TxReceipt:
        """Propose a round's result during its validation phase."""
        return self._send("propose", task_id, round_, _to_abi(proposal))

    def fail_round(self, task_id: int) -> TxReceipt:
        """Close the current round without rewards (too few reveals, or no quorum by the deadline)."""
        return self._send("failRound", task_id)

    # ---------------------------------------------------------------- contributors

    def join(self, task_id: int, *, stake_wei: int | None = None) -> TxReceipt:
        """Join a task by locking the contributor stake (the task's unless ``stake_wei`` is given)."""
        if stake_wei is None:
            stake_wei = self.get_task(task_id).params.contributor_stake
        return self._send_paying(task_id, stake_wei, "join", task_id)

    def leave(self, task_id: int) -> TxReceipt:
        """Leave a task and take the stake back once every round committed to is settled; a last commitment
        left unopened forfeits the stake instead (``CommitmentForfeited``)."""
        return self._send("leave", task_id)

    def commit(self, task_id: int, round_: int, commitment: bytes) -> TxReceipt:
        """Commit to an update (see :func:`cotrain.protocol.commitment.update_commitment`)."""
        return self._send("commit", task_id, round_, commitment)

    def reveal(
        self, task_id: int, round_: int, cid: str, update_digest: bytes, num_samples: int, salt: bytes
    ) -> TxReceipt:
        """Reveal the committed update: where it is stored, its sha256, its sample count and the salt."""
        return self._send("reveal", task_id, round_, cid, update_digest, num_samples, salt)

    # ---------------------------------------------------------------- challenges and settlement

    def challenge(
        self, task_id: int, round_: int, evidence_cid: str, *, bond_wei: int | None = None
    ) -> TxReceipt:
        """Dispute an accepted round within its challenge window, locking the challenge bond."""
        if bond_wei is None:
            bond_wei = self.get_task(task_id).params.challenge_bond
        return self._send_paying(task_id, bond_wei, "challenge", task_id, round_, evidence_cid)

    def resolve_challenge(self, task_id: int, round_: int, winner: str) -> TxReceipt:
        """Arbiter: uphold ``winner``'s challenge of a round (the task halts), or reject every challenge of
        the round with ``winner`` the zero address (only after its challenge window; their bonds burn)."""
        return self._send("resolveChallenge", task_id, round_, to_checksum_address(winner))

    def withdraw_challenge_bond(self, task_id: int, round_: int) -> TxReceipt:
        """Challenger: take the bond back once the round was upheld for another winner, dismissed or
        voided."""
        return self._send("withdrawChallengeBond", task_id, round_)

    def forfeit_unrevealed(self, task_id: int, round_: int, account: str) -> TxReceipt:
        """Anyone, after a round's reveal phase: take the stake of ``account``, which committed in the round
        and did not reveal; the caller is credited stake / ``FORFEIT_BOUNTY_DIVISOR``, the rest burns."""
        return self._send("forfeitUnrevealed", task_id, round_, to_checksum_address(account))

    def finalize_round(self, task_id: int, round_: int) -> TxReceipt:
        """Make an accepted round's rewards claimable once its challenge window has passed."""
        return self._send("finalizeRound", task_id, round_)

    def claim(
        self, task_id: int, round_: int, index: int, account: str, amount: int, proof: Sequence[bytes]
    ) -> TxReceipt:
        """Pay a finalized round's reward leaf ``(index, account, amount)`` to ``account``."""
        return self._send("claim", task_id, round_, index, account, amount, list(proof))

    def slash_contributor(
        self, task_id: int, round_: int, index: int, account: str, amount: int, proof: Sequence[bytes]
    ) -> TxReceipt:
        """Apply a finalized round's slash leaf to a contributor's stake, within the slash window."""
        return self._send("slashContributor", task_id, round_, index, account, amount, list(proof))

    def withdraw_credit(self) -> TxReceipt:
        """Withdraw the account's credits (challenge payouts, forfeit bounties)."""
        return self._send("withdrawCredit")

    def withdraw_token_credit(self, token: str) -> TxReceipt:
        """Withdraw the account's credits in ``token`` (from token tasks)."""
        return self._send("withdrawTokenCredit", to_checksum_address(token))

    # ---------------------------------------------------------------- tokens

    def token_contract(self, token: str) -> Any:
        """Bindings for the ERC20 ``token`` (approve, allowance, balanceOf) on the market's connection."""
        return self.client.w3.eth.contract(address=to_checksum_address(token), abi=ERC20_ABI)

    def approve(self, token: str, amount: int) -> TxReceipt:
        """Allow the market to pull exactly ``amount`` of ``token`` from this account."""
        return self.client.transact(self.token_contract(token).functions.approve(self.address, amount))

    def token_balance(self, token: str, account: str) -> int:
        """What ``account`` holds of ``token``."""
        return int(self.token_contract(token).functions.balanceOf(to_checksum_address(account)).call())

    # ---------------------------------------------------------------- views

    def phase(self, task_id: int) -> Phase:
        """The phase of the task's current round (``CLOSED`` once the task is not active)."""
        return self._view("phase", task_id)

    def get_task(self, task_id: int) -> Task:
        """A task's parameters, status and money buckets."""
        return self._view("getTask", task_id)

    def get_round(self, task_id: int, round_: int) -> Round:
        """A round's schedule, counters, status and accepted result."""
        return self._view("getRound", task_id, round_)

    def validators_of(self, task_id: int) -> tuple[str, ...]:
        """The task's validators in creation order."""
        return self._view("validatorsOf", task_id)

    def validator_info(self, task_id: int, account: str) -> Validator:
        """Whether ``account`` validates the task, has bonded, and its bond left."""
        return self._view("validatorInfo", task_id, account)

    def contributor_info(self, task_id: int, account: str) -> Contributor:
        """A contributor's membership, stake and the rounds that lock it."""
        return self._view("contributorInfo", task_id, account)

    def commitment_of(self, task_id: int, round_: int, account: str) -> bytes:
        """The contributor's commitment in a round; :data:`REVEALED` once revealed, :data:`FORFEITED` once
        forfeited unopened, zero if none."""
        return self._view("commitmentOf", task_id, round_, account)

    def proposal_of(self, task_id: int, round_: int, account: str) -> bytes:
        """The hash a validator proposed for a round (see :meth:`Proposal.proposal_hash`), or zero."""
        return self._view("proposalOf", task_id, round_, account)

    def is_claimed(self, task_id: int, round_: int, index: int) -> bool:
        """Whether reward leaf ``index`` of a round was paid."""
        return self._view("isClaimed", task_id, round_, index)

    def is_slashed(self, task_id: int, round_: int, index: int) -> bool:
        """Whether slash leaf ``index`` of a round was applied."""
        return self._view("isSlashed", task_id, round_, index)

    def task_holdings(self, task_id: int) -> int:
        """Wei the market holds for a task, all buckets together."""
        return self._view("taskHoldings", task_id)

    def require_task(self, task_id: int) -> None:
        """Raise a one-line ConfigError unless the market has a task ``task_id``."""
        count = self.task_count()
        if not 1 <= task_id <= count:
            held = f"its tasks are 1 to {count}" if count else "no task has been posted there yet"
            raise ConfigError(f"there is no task {task_id} on market {self.address}: {held}")

    def task_count(self) -> int:
        """Tasks created so far (ids count from 1)."""
        return self._view("taskCount")

    def token_of(self, task_id: int) -> str:
        """The ERC20 token the task's budget, stakes and bonds are in; the zero address for ETH."""
        return to_checksum_address(self._view("tokenOf", task_id))

    def token_credits(self, token: str, account: str) -> int:
        """Units of ``token`` credited to ``account`` (see :meth:`withdraw_token_credit`)."""
        return self._view("tokenCredits", to_checksum_address(token), to_checksum_address(account))

    def total_token_credits(self, token: str) -> int:
        """Sum of all accounts' credits in ``token``."""
        return self._view("totalTokenCredits", to_checksum_address(token))

    def credits(self, account: str) -> int:
        """Wei credited to ``account`` (see :meth:`withdraw_credit`)."""
        return self._view("credits", account)

    def total_credits(self) -> int:
        """Sum of all accounts' credits."""
        return self._view("totalCredits")

    def max_rounds(self) -> int:
        """``MAX_ROUNDS``."""
        return self._view("MAX_ROUNDS")

    def max_validators(self) -> int:
        """``MAX_VALIDATORS``."""
        return self._view("MAX_VALIDATORS")

    def max_cid_bytes(self) -> int:
        """``MAX_CID_BYTES``."""
        return self._view("MAX_CID_BYTES")

    def forfeit_bounty_divisor(self) -> int:
        """``FORFEIT_BOUNTY_DIVISOR``: a forfeit's caller is credited stake / this."""
        return self._view("FORFEIT_BOUNTY_DIVISOR")

    def upheld_reward_divisor(self) -> int:
        """``UPHELD_REWARD_DIVISOR``: an upheld challenge's winner is credited slashed bonds / this."""
        return self._view("UPHELD_REWARD_DIVISOR")

    # ---------------------------------------------------------------- events

    def events(
        self,
        names: str | Iterable[str] | None = None,
        *,
        task_id: int | None = None,
        from_block: int | None = None,
        to_block: int | str = "latest",
        chunk: int | None = None,
    ) -> list[MarketEvent]:
        """Scan the market's logs, page by page (see :meth:`ChainClient.get_logs`), into decoded events.

        Parameters
        ----------
        names : str or Iterable[str], optional
            Event names to keep; all when None.
        task_id : int, optional
            Keep only this task's events (filtered by the node on the indexed ``taskId``); with
            ``names=None`` that is every event that has a ``taskId``.
        from_block : int, optional
            First block; the market's deploy block when None.
        to_block : int, "latest" or "final"
            Last block, inclusive; "final" is the newest with the client's ``confirmations`` on top.
        chunk : int, optional
            Blocks per ``eth_getLogs`` request at most; the client's ``log_page_blocks`` when None.

        Returns
        -------
        list[MarketEvent]
            Sorted by (block, log index).

        Raises
        ------
        ConfigError
            If a name is unknown, or ``task_id`` is given with an event that has no ``taskId``.
        """
        if chunk is not None and chunk < 1:
            raise ConfigError(f"chunk must be at least 1 block, got {chunk}")
        wanted = self._select_events(names)
        if task_id is not None:
            untagged = sorted(e["name"] for e in wanted.values() if not _indexes_task(e))
            if untagged and names is not None:
                raise ConfigError(f"{', '.join(untagged)} carry no taskId: scan them without task_id")
            wanted = {topic: e for topic, e in wanted.items() if _indexes_task(e)}
        topics: list[Any] = [[HexBytes(topic).to_0x_hex() for topic in wanted]]
        if task_id is not None:
            topics.append("0x" + task_id.to_bytes(32, "big").hex())
        first = self.deploy_block if from_block is None else from_block
        if to_block == "latest":
            last = self.client.block_number()
        elif to_block == "final":
            last = self.client.final_block()
        else:
            last = int(to_block)
        logs = self.client.get_logs(self.address, topics, first, last, page=chunk)
        records = [self._decode_log(log) for log in logs if not log.get("removed")]
        return sorted(records, key=lambda event: (event.block, event.log_index))

    def event_topics(self, names: Iterable[str]) -> list[str]:
        """The ``0x`` topic hashes of the named events (for a log filter or subscription).

        Raises
        ------
        ConfigError
            If a name is not an event of the market.
        """
        return [HexBytes(topic).to_0x_hex() for topic in self._select_events(names)]

    def receipt_events(self, receipt: TxReceipt) -> list[MarketEvent]:
        """The market events a transaction emitted, in log order."""
        return [
            self._decode_log(log)
            for log in receipt["logs"]
            if log["address"] == self.address
            and log["topics"]
            and bytes(log["topics"][0]) in self._event_abis
        ]

    # ---------------------------------------------------------------- internals

    def _send(self, name: str, *args: Any, value: int = 0) -> TxReceipt:
        function = self.contract.functions[name](*args)
        floor = GAS_FLOORS.get(name)
        if floor is None:
            return self.client.transact(function, value=value)
        # Estimated before others act, a call may end up doing more (the quorum-reaching proposal).
        estimate = self.client.estimate_gas(function, value=value)
        return self.client.transact(function, value=value, gas=max(floor, math.ceil(estimate * 1.25)))

    def _send_paying(self, task_id: int, amount: int, name: str, *args: Any) -> TxReceipt:
        """Send a call that brings ``amount`` of the task's currency: as value on an ETH task, or on a token
        task as an approval of exactly ``amount`` followed by the call without value."""
        token = self.token_of(task_id)
        if token == ZERO_ADDRESS:
            return self._send(name, *args, value=amount)
        self.approve(token, amount)
        return self._send(name, *args)

    def _view(self, name: str, *args: Any) -> Any:
        view = self._views[name]
        data = view.selector + eth_abi.encode(view.inputs, [_to_abi(arg) for arg in args])
        output = self.client.call(self.address, data, label=name)
        try:
            values = eth_abi.decode(view.outputs, output)
        except DecodingError as error:
            raise ChainError(
                f"{name} at {self.address} answered {len(output)} bytes that do not decode: {error}"
            ) from error
        outputs = view.abi["outputs"]
        if len(outputs) == 1:
            return _from_abi(outputs[0], values[0])
        return tuple(_from_abi(param, item) for param, item in zip(outputs, values, strict=True))

    def _select_events(self, names: str | Iterable[str] | None) -> dict[bytes, Mapping[str, Any]]:
        if names is None:
            return dict(self._event_abis)
        wanted = {names} if isinstance(names, str) else set(names)
        selected = {topic: entry for topic, entry in self._event_abis.items() if entry["name"] in wanted}
        unknown = wanted - {entry["name"] for entry in selected.values()}
        if unknown:
            known = sorted(entry["name"] for entry in self._event_abis.values())
            raise ConfigError(f"unknown market events {sorted(unknown)}; the market emits {known}")
        return selected

    def _decode_log(self, log: Mapping[str, Any]) -> MarketEvent:
        """A log as the node sends it (hex strings) or as web3 formats a receipt's (bytes and ints)."""
        topics = [bytes(HexBytes(topic)) for topic in log["topics"]]
        entry = self._event_abis[topics[0]]
        indexed = [param for param in entry["inputs"] if param["indexed"]]
        plain = [param for param in entry["inputs"] if not param["indexed"]]
        # Every indexed parameter of the market's events is a static type, stored whole in its topic.
        values = {
            param["name"]: eth_abi.decode([param["type"]], topic)[0]
            for param, topic in zip(indexed, topics[1:], strict=True)
        }
        decoded = eth_abi.decode([collapse_if_tuple(param) for param in plain], bytes(HexBytes(log["data"])))
        values |= {param["name"]: value for param, value in zip(plain, decoded, strict=True)}
        return MarketEvent(
            name=entry["name"],
            args=MappingProxyType(
                {param["name"]: _from_abi(param, values[param["name"]]) for param in entry["inputs"]}
            ),
            block=_quantity(log["blockNumber"]),
            block_hash=HexBytes(log["blockHash"]).to_0x_hex(),
            tx_hash=HexBytes(log["transactionHash"]).to_0x_hex(),
            log_index=_quantity(log["logIndex"]),
        )


@dataclass(frozen=True)
class _View:
    """A read-only market function, encoded and decoded by eth_abi without web3's contract layer."""

    abi: Mapping[str, Any]
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> _View:
        inputs = tuple(collapse_if_tuple(param) for param in entry["inputs"])
        return cls(
            abi=entry,
            selector=keccak(text=f"{entry['name']}({','.join(inputs)})")[:4],
            inputs=inputs,
            outputs=tuple(collapse_if_tuple(param) for param in entry["outputs"]),
        )


def _quantity(value: Any) -> int:
    """A JSON-RPC quantity: hex text from the node, an int from web3."""
    return int(value, 16) if isinstance(value, str) else int(value)


def _indexes_task(event: Mapping[str, Any]) -> bool:
    inputs = event.get("inputs", [])
    return bool(inputs) and inputs[0]["name"] == "taskId" and bool(inputs[0].get("indexed"))


def deploy_market(client: ChainClient) -> Market:
    """Deploy a TrainingMarket from the shipped bytecode with the client's account; return its bindings.

    Raises
    ------
    ContractRevert, ChainError
        If the deployment fails.
    """
    _check_bindings()
    artifact = load_artifact()
    client.register_abi(artifact["abi"], ENUMS, REVERT_WORDS)
    factory = client.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = client.transact(factory.constructor())
    address = receipt["contractAddress"]
    if address is None:
        raise ChainError(f"deployment transaction {receipt['transactionHash']!r} created no contract")
    return Market(client, address, deploy_block=int(receipt["blockNumber"]))
