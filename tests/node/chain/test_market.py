"""Typed market bindings: ABI agreement, one task from creation to claim, decoded reverts, event scanning."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, fields

import pytest
from cotrain.chain.client import ContractRevert
from cotrain.chain.keys import Signer
from cotrain.chain.market import (
    ENUMS,
    STRUCTS,
    ZERO_ADDRESS,
    ZERO_BYTES32,
    ChallengeOutcome,
    Market,
    Phase,
    Proposal,
    RoundStatus,
    TaskStatus,
    _from_abi,
    binding_mismatches,
    load_artifact,
    snake_case,
)
from cotrain.errors import ChainError, ConfigError
from cotrain.protocol.commitment import update_commitment
from cotrain.protocol.merkle import Allocation, StandardMerkleTree, allocation_tree
from erc20_token import deploy_test_token
from task_terms import BUDGET, ETHER, SPEC_CID, task_params

REVEALED = (1).to_bytes(32, "big")


# ---------------------------------------------------------------- bindings against the ABI


def test_enums_and_dataclasses_match_the_shipped_abi():
    assert binding_mismatches() == []


def test_mismatched_bindings_are_reported():
    # Prepare: an artifact whose Phase enum and TaskParams struct changed under the bindings.
    artifact = copy.deepcopy(load_artifact())
    artifact["enums"]["ITrainingMarket.Phase"][1:3] = ["Reveal", "Commit"]
    create = next(e for e in artifact["abi"] if e.get("name") == "createTask")
    create["inputs"][0]["components"][1]["name"] = "roundCount"

    # Execute
    problems = binding_mismatches(artifact)

    # Assert
    assert any(p.startswith("IntEnum Phase") for p in problems)
    assert any(p.startswith("dataclass TaskParams") and "round_count" in p for p in problems)


def test_an_error_without_words_and_words_without_an_error_are_reported():
    artifact = copy.deepcopy(load_artifact())
    artifact["abi"] = [e for e in artifact["abi"] if e.get("name") != "NotJoined"]
    artifact["abi"].append({"type": "error", "name": "BrandNew", "inputs": []})

    problems = binding_mismatches(artifact)

    assert "ABI error BrandNew has no words in REVERT_WORDS" in problems
    assert "REVERT_WORDS names NotJoined, which the ABI lacks" in problems


def test_every_contract_function_has_a_market_method():
    functions = {e["name"] for e in load_artifact()["abi"] if e["type"] == "function"}

    missing = sorted(name for name in functions if not callable(getattr(Market, snake_case(name), None)))

    assert missing == []


def test_struct_and_enum_names_mirror_solidity():
    assert list(ENUMS) == ["TaskStatus", "RoundStatus", "Phase", "ChallengeOutcome"]
    assert [m.name for m in ChallengeOutcome] == ["NONE", "REJECTED", "UPHELD", "DISMISSED"]
    assert [m.name for m in Phase] == ["JOIN", "COMMIT", "REVEAL", "VALIDATE", "EXPIRED", "CLOSED"]
    assert [f.name for f in fields(STRUCTS["Proposal"])] == [
        "model_digest",
        "record_digest",
        "rewards_root",
        "slash_root",
        "reward_total",
        "model_cid",
        "record_cid",
    ]


def test_market_runs_the_shipped_bytecode(market, client):
    assert client.get_code(market.address) == bytes.fromhex(load_artifact()["deployedBytecode"][2:])


def test_market_refuses_an_address_without_code(client):
    with pytest.raises(ChainError, match="no contract at"):
        Market(client, "0x" + "12" * 20)


# ---------------------------------------------------------------- one task, start to finish


@dataclass
class Flow:
    """What the end-to-end flow leaves behind for the assertions."""

    task_id: int
    proposal: Proposal
    tree: StandardMerkleTree
    gas: dict[str, int]


def _advance(anvil, seconds: int) -> None:
    anvil.increase_time(seconds)
    anvil.mine()


@pytest.fixture(scope="module")
def flow(market, anvil, owner, validators, contributors, outsider) -> Flow:
    """Drive one task through create, bond, join, commit, reveal, propose, finalize and claim."""
    return _drive_flow(market, anvil, validators, contributors, outsider, ZERO_ADDRESS)


def _drive_flow(
    market, anvil, validators, contributors, outsider, token: str, *, settle: bool = True
) -> Flow:
    """One task in ``token`` (the zero address: ETH) through round 0's acceptance and, with ``settle``, its
    finalization and every claim."""
    gas: dict[str, int] = {}
    params = task_params()
    task_id = market.create_task(params, SPEC_CID, [v.address for v in validators], BUDGET, token=token)
    for validator in validators:
        gas["bondValidator"] = market.with_account(validator).bond_validator(task_id)["gasUsed"]
    assert market.phase(task_id) == Phase.JOIN
    for contributor in contributors[:2]:
        gas["join"] = market.with_account(contributor).join(task_id)["gasUsed"]
    assert market.phase(task_id) == Phase.COMMIT  # max_contributors joined: the round starts at once

    updates = {
        c.address: (
            hashlib.sha256(f"update {c.address}".encode()).digest(),
            hashlib.sha256(c.address.encode()).digest(),
        )
        for c in contributors[:2]
    }
    for contributor in contributors[:2]:
        digest, salt = updates[contributor.address]
        commitment = update_commitment(contributor.address, task_id, 0, digest, salt)
        gas["commit"] = market.with_account(contributor).commit(task_id, 0, commitment)["gasUsed"]
        assert market.commitment_of(task_id, 0, contributor.address) == commitment
    assert market.phase(task_id) == Phase.REVEAL  # everyone committed: the reveal phase opens early
    for contributor in contributors[:2]:
        digest, salt = updates[contributor.address]
        receipt = market.with_account(contributor).reveal(task_id, 0, "bafkreiupdate", digest, 100, salt)
        gas["reveal"] = receipt["gasUsed"]
    assert market.phase(task_id) == Phase.VALIDATE

    round_budget = market.get_task(task_id).round_budget
    tree = allocation_tree([Allocation(c.address, round_budget // 2) for c in contributors[:2]])
    proposal = Proposal(
        model_digest=hashlib.sha256(b"model 0").digest(),
        record_digest=hashlib.sha256(b"record 0").digest(),
        rewards_root=tree.root,
        slash_root=ZERO_BYTES32,
        reward_total=round_budget // 2 * 2,
        model_cid="bafkreimodel",
        record_cid="bafkreirecord",
    )
    for validator in validators[:2]:  # quorum 2 of 3: the third validator stays silent
        gas["propose"] = market.with_account(validator).propose(task_id, 0, proposal)["gasUsed"]

    if not settle:
        return Flow(task_id, proposal, tree, gas)
    _advance(anvil, params.challenge_duration)
    gas["finalizeRound"] = market.with_account(outsider).finalize_round(task_id, 0)["gasUsed"]
    for index, (_, account, amount) in enumerate(tree.values):
        receipt = market.with_account(outsider).claim(task_id, 0, index, account, amount, tree.proof(index))
        gas["claim"] = receipt["gasUsed"]
    created = market.events("TaskCreated", task_id=task_id)[0]
    gas["createTask"] = market.client.w3.eth.get_transaction_receipt(created.tx_hash)["gasUsed"]
    return Flow(task_id, proposal, tree, gas)


def test_flow_accepts_the_round_with_the_proposal_hash(market, flow, validators):
    round_ = market.get_round(flow.task_id, 0)

    assert round_.status == RoundStatus.FINALIZED
    assert round_.accepted_hash == flow.proposal.proposal_hash()
    assert (round_.rewards_root, round_.model_digest) == (flow.tree.root, flow.proposal.model_digest)
    assert market.proposal_of(flow.task_id, 0, validators[0].address) == flow.proposal.proposal_hash()
    assert market.proposal_of(flow.task_id, 0, validators[2].address) == ZERO_BYTES32


def test_flow_pays_every_reward_leaf(market, flow, contributors):
    task = market.get_task(flow.task_id)

    assert all(market.is_claimed(flow.task_id, 0, i) for i in range(len(flow.tree)))
    assert not market.is_claimed(flow.task_id, 0, len(flow.tree))
    assert task.unclaimed == 0 and task.reserved == 0
    assert [market.commitment_of(flow.task_id, 0, c.address) for c in contributors[:2]] == [REVEALED] * 2


def test_flow_moves_the_task_to_its_next_round(market, flow, contributors):
    task = market.get_task(flow.task_id)

    assert task.status == TaskStatus.ACTIVE and task.current_round == 1 and task.pending_rounds == 0
    # Round 1 started when round 0 was accepted; its clock has been running since.
    assert market.get_round(flow.task_id, 1).starts_at == market.get_round(flow.task_id, 0).accepted_at
    assert market.get_round(flow.task_id, 1).status == RoundStatus.OPEN
    assert market.contributor_info(flow.task_id, contributors[0].address).last_round == 1


def test_flow_slashes_the_silent_validator(market, flow, validators):
    bonds = [market.validator_info(flow.task_id, v.address).bond for v in validators]
    params = market.get_task(flow.task_id).params

    assert bonds == [
        params.validator_bond,
        params.validator_bond,
        params.validator_bond - params.validator_slash,
    ]


def test_flow_events_tell_the_task_history_in_order(market, flow):
    names = [event.name for event in market.events(task_id=flow.task_id)]

    assert names == [
        "TaskCreated",
        "RoundScheduled",
        *["ValidatorBonded"] * 3,
        *["ContributorJoined", "ContributorJoined", "RoundScheduled"],
        *["UpdateCommitted", "UpdateCommitted", "RoundScheduled"],
        *["UpdateRevealed", "UpdateRevealed", "RoundScheduled"],
        *["RoundProposed", "RoundProposed", "RoundAccepted", "RoundScheduled"],
        *["ValidatorSlashed", "RoundFinalized"],
        *["RewardClaimed", "RewardClaimed"],
    ]


def test_events_decode_structs_into_the_bindings(market, flow, owner, validators):
    created = market.events("TaskCreated", task_id=flow.task_id)[0]
    proposed = market.events("RoundProposed", task_id=flow.task_id)

    assert created.args["params"] == task_params()
    assert created.args["validators"] == tuple(v.address for v in validators)
    assert (created.task_id, created.args["owner"], created.args["budget"]) == (
        flow.task_id,
        owner.address,
        BUDGET,
    )
    assert [e.args["proposal"] for e in proposed] == [flow.proposal, flow.proposal]
    assert {e.args["proposalHash"] for e in proposed} == {flow.proposal.proposal_hash()}


def test_events_decode_as_web3s_contract_layer_decodes_them(market, flow):
    # The market decodes logs with eth_abi directly; web3's contract events are the reference.
    logs = market.client.w3.eth.get_logs({"address": market.address, "fromBlock": market.deploy_block})
    ours = market.events(task_id=flow.task_id)
    theirs = []
    for log in logs:
        event = market.receipt_events({"logs": [log]})[0]
        if event.task_id != flow.task_id:
            continue
        reference = getattr(market.contract.events, event.name)().process_log(log)["args"]
        inputs = next(e["inputs"] for e in market.contract.abi if e.get("name") == event.name)
        theirs.append((event.name, {p["name"]: _from_abi(p, reference[p["name"]]) for p in inputs}))

    assert len(ours) == len(theirs) == 22
    assert [(event.name, dict(event.args)) for event in ours] == theirs


def test_gas_of_every_call_in_the_flow_is_recorded(flow):
    assert set(flow.gas) == {
        "createTask", "bondValidator", "join", "commit", "reveal", "propose", "finalizeRound", "claim"
    }  # fmt: skip
    assert all(21_000 < used < 1_000_000 for used in flow.gas.values())


# ---------------------------------------------------------------- decoded reverts


def _revert(call) -> ContractRevert:
    with pytest.raises(ContractRevert) as info:
        call()
    return info.value


def test_join_with_the_wrong_stake_is_wrong_amount(market, new_task, contributors):
    task_id = new_task()
    stake = market.get_task(task_id).params.contributor_stake

    error = _revert(lambda: market.with_account(contributors[0]).join(task_id, stake_wei=stake + 1))

    assert (error.name, error.arguments) == ("WrongAmount", {"expected": stake, "sent": stake + 1})


def test_commit_outside_the_commit_phase_is_wrong_phase(market, new_task, contributors):
    task_id = new_task()
    market.with_account(contributors[0]).join(task_id)

    error = _revert(lambda: market.with_account(contributors[0]).commit(task_id, 0, b"\x02" * 32))

    assert (error.name, error.arguments) == ("WrongPhase", {"expected": Phase.COMMIT, "actual": Phase.JOIN})


def test_validator_joining_is_a_conflict_of_interest(market, new_task, validators):
    task_id = new_task()

    error = _revert(lambda: market.with_account(validators[0]).join(task_id))

    assert (error.name, error.arguments) == ("ConflictOfInterest", {"account": validators[0].address})


def test_reveal_with_another_salt_is_a_commitment_mismatch(market, new_task, contributors, anvil):
    task_id = new_task()
    for contributor in contributors[:2]:
        market.with_account(contributor).join(task_id)
    digest, salt = hashlib.sha256(b"update").digest(), b"\x07" * 32
    for contributor in contributors[:2]:
        commitment = update_commitment(contributor.address, task_id, 0, digest, salt)
        market.with_account(contributor).commit(task_id, 0, commitment)

    error = _revert(
        lambda: market.with_account(contributors[0]).reveal(task_id, 0, "bafkrei", digest, 1, b"\x08" * 32)
    )

    assert (error.name, error.arguments) == ("CommitmentMismatch", {})


def test_proposal_over_the_round_budget_is_refused(market, new_task, contributors, validators):
    task_id = new_task()
    for contributor in contributors[:2]:
        market.with_account(contributor).join(task_id)
    digest, salt = hashlib.sha256(b"update").digest(), b"\x07" * 32
    for contributor in contributors[:2]:
        market.with_account(contributor).commit(
            task_id, 0, update_commitment(contributor.address, task_id, 0, digest, salt)
        )
    for contributor in contributors[:2]:
        market.with_account(contributor).reveal(task_id, 0, "bafkrei", digest, 1, salt)
    budget = market.get_task(task_id).round_budget
    greedy = Proposal(
        ZERO_BYTES32, ZERO_BYTES32, ZERO_BYTES32, ZERO_BYTES32, budget + 1, "bafkreim", "bafkreir"
    )

    error = _revert(lambda: market.with_account(validators[0]).propose(task_id, 0, greedy))

    assert (error.name, error.arguments) == (
        "RewardsOverBudget",
        {"rewardTotal": budget + 1, "roundBudget": budget},
    )


def test_finalizing_an_open_round_is_wrong_round_status(market, new_task):
    task_id = new_task()

    error = _revert(lambda: market.finalize_round(task_id, 0))

    assert (error.name, error.arguments) == ("WrongRoundStatus", {"status": RoundStatus.OPEN})


def test_outsider_cannot_cancel(market, new_task, outsider):
    task_id = new_task()

    error = _revert(lambda: market.with_account(outsider).cancel_task(task_id))

    assert (error.name, error.arguments) == ("NotOwner", {"account": outsider.address})


def test_cancel_and_refund_settle_the_escrow(market, new_task, anvil, owner):
    task_id = new_task(bond=False)
    balance = anvil.rpc("eth_getBalance", [owner.address, "latest"])

    receipt = market.cancel_task(task_id)

    refunded = int(anvil.rpc("eth_getBalance", [owner.address, "latest"]), 16) - int(balance, 16)
    assert refunded == BUDGET - receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert market.get_task(task_id).status == TaskStatus.CANCELLED
    assert market.phase(task_id) == Phase.CLOSED
    assert _revert(lambda: market.withdraw_refund(task_id)).name == "NothingToWithdraw"


# ---------------------------------------------------------------- event scanning


def test_event_scan_is_the_same_whatever_the_chunk_size(market, flow):
    everything = market.events(chunk=2000)

    assert market.events(chunk=1) == everything
    assert market.events(chunk=7) == everything
    assert everything == sorted(everything, key=lambda e: (e.block, e.log_index))
    assert len({(e.block, e.log_index) for e in everything}) == len(everything)


def test_event_scan_filters_by_name_task_and_blocks(market, flow, new_task):
    other = new_task()
    claims = market.events(["RewardClaimed"], task_id=flow.task_id, chunk=1)
    window = market.events(from_block=claims[0].block, to_block=claims[-1].block)

    assert [e.args["index"] for e in claims] == [0, 1]
    assert all(e.task_id == flow.task_id for e in market.events(task_id=flow.task_id))
    assert {e.task_id for e in market.events("TaskCreated")} >= {flow.task_id, other}
    assert [e for e in window if e.name == "RewardClaimed"] == claims


def test_event_scan_rejects_unknown_names_and_untagged_events(market):
    with pytest.raises(ConfigError, match="unknown market events"):
        market.events("TaskCreatd")
    with pytest.raises(ConfigError, match="CreditWithdrawn carry no taskId"):
        market.events(["CreditWithdrawn", "TaskCreated"], task_id=1)


def test_receipt_events_decode_one_transaction(market, new_task, contributors):
    task_id = new_task()

    receipt = market.with_account(contributors[0]).join(task_id)

    (joined,) = market.receipt_events(receipt)
    assert (joined.name, joined.args["contributor"], joined.task_id) == (
        "ContributorJoined",
        contributors[0].address,
        task_id,
    )


def test_market_repr_shows_the_account_not_its_key(market, anvil):
    as_contributor = market.with_account(Signer.from_key(anvil.private_keys[4]))

    assert anvil.private_keys[4].removeprefix("0x") not in repr(as_contributor).lower()
    assert anvil.addresses[4] in repr(as_contributor)


# ---------------------------------------------------------------- a task in an ERC20 token

TOKEN_SUPPLY = 100 * ETHER


@pytest.fixture(scope="module")
def token(market, anvil) -> str:
    """contracts/test/TestToken (a standard ERC20) from the brownie build; accounts 0-9 get TOKEN_SUPPLY."""
    return deploy_test_token(
        market.client, [anvil.signer(index).address for index in range(10)], TOKEN_SUPPLY
    )


def test_token_task_is_paid_in_the_token_and_leaves_ether_alone(
    market, anvil, token, owner, validators, contributors, outsider
):
    eth_before = market.client.w3.eth.get_balance(market.address)
    flow = _drive_flow(market, anvil, validators, contributors, outsider, token)
    params = task_params()
    task = market.get_task(flow.task_id)

    assert market.token_of(flow.task_id) == token
    assert market.token_balance(token, owner.address) == TOKEN_SUPPLY - BUDGET
    assert [market.token_balance(token, c.address) for c in contributors[:2]] == [
        TOKEN_SUPPLY - params.contributor_stake + task.round_budget // 2
    ] * 2
    assert [market.token_balance(token, v.address) for v in validators] == [
        TOKEN_SUPPLY - params.validator_bond
    ] * 3
    assert market.token_balance(token, market.address) == market.task_holdings(flow.task_id)
    assert market.client.w3.eth.get_balance(market.address) == eth_before


def test_upheld_challenge_on_a_token_task_credits_and_withdraws_the_token(
    market, anvil, token, arbiter, validators, contributors, outsider
):
    flow = _drive_flow(market, anvil, validators, contributors, outsider, token, settle=False)
    params = task_params()
    before = market.token_balance(token, outsider.address)
    market.with_account(outsider).challenge(flow.task_id, 0, "bafkreievidence")
    assert market.token_balance(token, outsider.address) == before - params.challenge_bond

    market.with_account(arbiter).resolve_challenge(flow.task_id, 0, outsider.address)
    # both accepting validators lose their whole bond; the winner gets its bond back and a share of theirs
    payout = params.challenge_bond + 2 * params.validator_bond // market.upheld_reward_divisor()
    assert market.token_credits(token, outsider.address) == payout
    assert market.credits(outsider.address) == 0
    market.with_account(outsider).withdraw_token_credit(token)

    assert market.token_balance(token, outsider.address) == before - params.challenge_bond + payout
    assert market.token_credits(token, outsider.address) == market.total_token_credits(token) == 0
    with pytest.raises(ContractRevert, match="NothingToWithdraw"):
        market.with_account(outsider).withdraw_token_credit(token)


def test_a_token_task_refuses_ether_with_its_stake(market, token, validators, outsider):
    task_id = market.create_task(
        task_params(), SPEC_CID, [v.address for v in validators], BUDGET, token=token
    )
    stake = task_params().contributor_stake
    tokens_before = market.token_balance(token, outsider.address)

    error = _revert(lambda: market.with_account(outsider)._send("join", task_id, value=stake))

    assert (error.name, error.arguments) == ("WrongAmount", {"expected": 0, "sent": stake})
    assert market.token_balance(token, outsider.address) == tokens_before
    assert not market.contributor_info(task_id, outsider.address).joined
