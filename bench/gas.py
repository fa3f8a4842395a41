"""Section 2 of BENCHMARKS.md: the gas of every TrainingMarket function at 10, 100 and 1000 contributors.

One anvil (automine, its own port) and one market deployed from the shipped artifact; every transaction
goes through the node's own bindings (:class:`cotrain.chain.market.Market`). For each size ``n`` a task
runs one round end to end with ``n`` contributors (join, commit, reveal, two proposals, a rejected
challenge, finalization, ``n`` claims, slashes, leaves), its next round fails for lack of updates, the
owner cancels and takes the refund, the validators their bonds; a small side task has its accepted round
challenged and upheld, so ``resolveChallenge`` (upheld) and ``withdrawCredit`` are measured too.
Contributors are local accounts with keys drawn from keccak of a seed, funded with ``anvil_setBalance``.

Every row is compared with the floor ``21,000 + 20,000 x new storage slots`` (a slot going from zero to
non-zero); :data:`NEW_SLOTS` gives each function's count read from the contract code, and the benchmark checks
it against anvil's ``prestateTracer`` storage diff of the first such transaction at every size.

Run alone: ``python -m bench.gas [--quick]`` prints the JSON the runner writes to bench/results/gas.json.
"""

from __future__ import annotations

import hashlib
import json
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cotrain.chain.anvil import Anvil
from cotrain.chain.client import ChainClient
from cotrain.chain.keys import Signer
from cotrain.chain.market import Market, Phase, Proposal, RoundStatus, TaskParams, deploy_market
from cotrain.protocol.commitment import update_commitment
from cotrain.protocol.merkle import Allocation, StandardMerkleTree, allocation_tree
from eth_utils import keccak
from web3.types import TxReceipt

SIZES = (10, 100, 1000)
QUICK_SIZES = (10, 100)
PORT = 8651  # this benchmark's own anvil; bench.scale uses 8652
BASE_GAS = 21_000
NEW_SLOT_GAS = 20_000
STAKE = 10**15
REWARD = 10**12  # every reward leaf pays the same, so claims differ only in their proofs
SLASHED = 5  # slash leaves per round, at every size
LEAVERS = 10
DAY = 86_400
CHALLENGE = 3_600
TARGETS = {
    "commit+reveal per contributor": "<= 120,000",
    "finalizeRound, propose (quorum)": "independent of the number of contributors",
    "claim": "<= 80,000",
}

#: New storage slots (zero to non-zero) each measured call writes, read from contracts/TrainingMarket.sol.
NEW_SLOTS: dict[str, tuple[int, str]] = {
    "createTask": (
        20,
        "task.params 8 (specDigest, the 8 packed uint32, quorum, 4 amounts, arbiter), owner/status slot, "
        "roundBudget, escrow; per validator (3) its Validator slot plus its _validators element, the array "
        "length; round 0's two schedule slots (taskCount is already non-zero)",
    ),
    "bondValidator (first)": (1, "task.bonds 0 -> bond (Validator slot already set at creation)"),
    "bondValidator": (0, "Validator slot and task.bonds already non-zero"),
    "join (first)": (2, "the Contributor slot, task.stakes 0 -> stake"),
    "join": (1, "the Contributor slot"),
    "join (last: opens the round)": (1, "the Contributor slot; the reschedule rewrites non-zero slots"),
    "commit": (1, "_commitments[task][round][sender]; round.commits shares the schedule slot"),
    "commit (last: ends the phase)": (1, "_commitments entry; the reschedule rewrites non-zero slots"),
    "reveal": (0, "the commitment becomes REVEALED (non-zero to non-zero); round.reveals is packed"),
    "reveal (last: ends the phase)": (0, "as reveal; the reschedule rewrites non-zero slots"),
    "propose (not accepting)": (2, "_proposals[validator], _votes[hash] 0 -> 1"),
    "propose (quorum)": (
        10,
        "_proposals[validator]; acceptedHash, modelDigest, rewardsRoot, slashRoot, rewardTotal; "
        "task.reserved, task.pendingRounds' slot; the next round's two schedule slots",
    ),
    "challenge": (2, "round.challenger/challengedAt (one packed slot), task.challengeBonds"),
    "resolveChallenge (rejected)": (0, "clears the challenger; the bond goes to the non-zero escrow"),
    "resolveChallenge (upheld)": (2, "credits[challenger], totalCredits (first credit ever on this chain)"),
    "failRound (too few reveals)": (2, "the next round's two schedule slots"),
    "finalizeRound": (1, "task.unclaimed 0 -> total (the absent validator's slash moves non-zero slots)"),
    "claim (first)": (2, "the claimed-bitmap word, round.rewardClaimed"),
    "claim (first of a bitmap word)": (1, "a new claimed-bitmap word (indices 256, 512, 768)"),
    "claim": (0, "sets a bit in a non-zero bitmap word"),
    "slashContributor (first)": (
        2,
        "the slashed-bitmap word; task.escrow 0 -> slash (the scenario's cancelTask just emptied it)",
    ),
    "slashContributor": (0, "sets a bit in a non-zero bitmap word"),
    "cancelTask": (0, "status and escrow change, nothing new"),
    "withdrawRefund": (0, "escrow -> 0"),
    "withdrawBond": (0, "bond -> 0"),
    "leave": (0, "the Contributor slot is cleared (a refund)"),
    "withdrawCredit": (0, "credits -> 0"),
}


@dataclass
class Sent:
    """One measured transaction."""

    label: str
    gas: int
    tx_hash: str
    extra: dict[str, Any] = field(default_factory=dict)


class Bench:
    """The chain, the market and the accounts one size's scenario acts with."""

    def __init__(self, anvil: Anvil, market: Market) -> None:
        self.anvil = anvil
        self.market = market
        self.owner = market
        self.validators = [market.with_account(anvil.signer(i)) for i in (1, 2, 3)]
        self.arbiter = market.with_account(anvil.signer(8))
        self.outsider = market.with_account(anvil.signer(9))
        self.crowd: list[Market] = []
        self.sent: list[Sent] = []
        self.traced: dict[str, int] = {}  # label -> new slots of its first transaction

    def fund_crowd(self, count: int) -> None:
        """Make sure ``count`` funded contributor accounts exist (deterministic keys, anvil_setBalance)."""
        for i in range(len(self.crowd), count):
            signer = Signer.from_key(keccak(text=f"cotrain bench contributor {i}"), source=f"bench {i}")
            self.anvil.rpc("anvil_setBalance", [signer.address, hex(10**20)])
            self.crowd.append(self.market.with_account(signer))

    def record(self, label: str, send: Callable[[], TxReceipt], **extra: Any) -> TxReceipt:
        """Send, keep the receipt's gas under ``label``."""
        receipt = send()
        tx_hash = receipt["transactionHash"].to_0x_hex()
        if label not in self.traced:  # at once: anvil keeps the states of recent blocks only
            self.traced[label] = new_slots(self.anvil, self.market.address, tx_hash)
        self.sent.append(Sent(label, int(receipt["gasUsed"]), tx_hash, extra))
        return receipt

    def jump_to(self, timestamp: int) -> None:
        """Mine an empty block at ``timestamp`` (gas estimates run against the latest block's clock)."""
        self.anvil.set_next_block_timestamp(max(timestamp, self.anvil.timestamp() + 1))
        self.anvil.mine()


def _params(n: int, *, rounds: int, arbiter: str, min_contributors: int = 2) -> TaskParams:
    return TaskParams(
        spec_digest=hashlib.sha256(b"bench task spec").digest(),
        num_rounds=rounds,
        min_contributors=min_contributors,
        max_contributors=n,
        join_duration=DAY,
        commit_duration=DAY,
        reveal_duration=DAY,
        validation_duration=CHALLENGE,
        challenge_duration=CHALLENGE,
        quorum=2,
        contributor_stake=STAKE,
        validator_bond=10**18,
        validator_slash=10**17,
        challenge_bond=10**17,
        arbiter=arbiter,
    )


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _proposal(label: str, rewards: StandardMerkleTree, slashes: StandardMerkleTree, total: int) -> Proposal:
    return Proposal(
        model_digest=_digest(label),
        record_digest=_digest(label + " record"),
        rewards_root=rewards.root,
        slash_root=slashes.root,
        reward_total=total,
        model_cid="bafkrei" + "m" * 52,  # CIDv1 raw, as long as a real one
        record_cid="bafkrei" + "r" * 52,
    )


def _submit(bench: Bench, task_id: int, round_: int, members: list[Market], label: str) -> None:
    """Every member commits, then reveals; the last of each ends its phase."""
    updates = {
        m.client.address: (_digest(f"{label} {m.client.address}"), _digest(f"salt {m.client.address}"))
        for m in members
    }
    for i, member in enumerate(members):
        digest, salt = updates[member.client.address]
        commitment = update_commitment(member.client.address, task_id, round_, digest, salt)
        name = "commit (last: ends the phase)" if i == len(members) - 1 else "commit"
        bench.record(name, lambda m=member, c=commitment: m.commit(task_id, round_, c))
    for i, member in enumerate(members):
        digest, salt = updates[member.client.address]
        name = "reveal (last: ends the phase)" if i == len(members) - 1 else "reveal"
        bench.record(
            name,
            lambda m=member, d=digest, s=salt: m.reveal(task_id, round_, "bafkrei" + "u" * 52, d, 100, s),
        )


def credit_side_task(bench: Bench) -> None:
    """A two-contributor task whose accepted round is challenged and upheld; measures the upheld ruling and
    ``withdrawCredit``. Neither loops over contributors (only over validators and rounds)."""
    arbiter = bench.arbiter.client.address
    pair = bench.crowd[:2]
    task_id = bench.owner.create_task(
        _params(2, rounds=1, arbiter=arbiter),
        "bafkreispec",
        [v.client.address for v in bench.validators],
        10 * REWARD,
    )
    for validator in bench.validators:
        validator.bond_validator(task_id, bond_wei=10**18)
    for member in pair:
        member.join(task_id, stake_wei=STAKE)
    side = Bench(bench.anvil, bench.market)  # its commits and reveals are not part of the table
    _submit(side, task_id, 0, pair, "credit")
    allocations = [Allocation(m.client.address, REWARD) for m in pair]
    tree = allocation_tree(allocations)
    proposal = _proposal("credit model", tree, tree, 2 * REWARD)
    for validator in bench.validators[:2]:
        validator.propose(task_id, 0, proposal)
    bench.outsider.challenge(task_id, 0, "bafkreievidence", bond_wei=10**17)
    winner = bench.outsider.client.address
    bench.record("resolveChallenge (upheld)", lambda: bench.arbiter.resolve_challenge(task_id, 0, winner))
    bench.record("withdrawCredit", bench.outsider.withdraw_credit)


def main_task(bench: Bench, n: int) -> dict[str, Any]:
    """One task with ``n`` contributors through every function; returns the rewards tree's proof lengths."""
    members = bench.crowd[:n]
    validators = bench.validators
    budget = 3 * n * REWARD
    task_id = -1

    def create() -> TxReceipt:
        nonlocal task_id
        params = _params(n, rounds=3, arbiter=bench.arbiter.client.address)
        before = bench.market.client.block_number()
        addresses = [v.client.address for v in validators]
        task_id = bench.owner.create_task(params, "bafkreispec", addresses, budget)
        created = bench.market.events("TaskCreated", task_id=task_id, from_block=before + 1)
        return bench.market.client.w3.eth.get_transaction_receipt(created[-1].tx_hash)  # type: ignore[arg-type]

    bench.record("createTask", create)
    for i, validator in enumerate(validators):
        name = "bondValidator (first)" if i == 0 else "bondValidator"
        bench.record(name, lambda v=validator: v.bond_validator(task_id, bond_wei=10**18))
    for i, member in enumerate(members):
        name = "join (first)" if i == 0 else "join (last: opens the round)" if i == n - 1 else "join"
        bench.record(name, lambda m=member: m.join(task_id, stake_wei=STAKE))
    assert bench.market.phase(task_id) == Phase.COMMIT
    _submit(bench, task_id, 0, members, "update")
    assert bench.market.phase(task_id) == Phase.VALIDATE

    rewards = allocation_tree([Allocation(m.client.address, REWARD) for m in members])
    slashes = allocation_tree([Allocation(m.client.address, STAKE // 2) for m in members[:SLASHED]])
    proposal = _proposal(f"model {n}", rewards, slashes, n * REWARD)
    bench.record("propose (not accepting)", lambda: validators[0].propose(task_id, 0, proposal))
    bench.record("propose (quorum)", lambda: validators[1].propose(task_id, 0, proposal))
    assert bench.market.get_round(task_id, 0).status == RoundStatus.ACCEPTED
    bench.record(
        "challenge", lambda: bench.outsider.challenge(task_id, 0, "bafkreievidence", bond_wei=10**17)
    )
    # Rejecting must wait for the challenge window to close (no other challenge can still come).
    bench.jump_to(bench.market.get_round(task_id, 0).accepted_at + CHALLENGE)
    zero = "0x" + "00" * 20
    bench.record("resolveChallenge (rejected)", lambda: bench.arbiter.resolve_challenge(task_id, 0, zero))

    # Round 1 gets no updates: past its reveal end it fails for too few reveals and round 2 opens.
    bench.jump_to(bench.market.get_round(task_id, 1).reveal_end)
    bench.record("failRound (too few reveals)", lambda: bench.outsider.fail_round(task_id))
    bench.record("finalizeRound", lambda: bench.outsider.finalize_round(task_id, 0))

    for i, member in enumerate(members):
        name = "claim (first)" if i == 0 else "claim (first of a bitmap word)" if i % 256 == 0 else "claim"
        proof = rewards.proof(i)
        bench.record(
            name,
            lambda m=member, i=i, p=proof: m.claim(task_id, 0, i, m.client.address, REWARD, p),
            proof_length=len(proof),
        )
    bench.record("cancelTask", lambda: bench.owner.cancel_task(task_id))
    for i, member in enumerate(members[:SLASHED]):
        name = "slashContributor (first)" if i == 0 else "slashContributor"
        proof = slashes.proof(i)
        bench.record(
            name,
            lambda m=member, i=i, p=proof: bench.outsider.slash_contributor(
                task_id, 0, i, m.client.address, STAKE // 2, p
            ),
        )
    bench.record("withdrawRefund", lambda: bench.owner.withdraw_refund(task_id))
    for validator in validators:
        bench.record("withdrawBond", lambda v=validator: v.withdraw_bond(task_id))
    bench.jump_to(bench.market.get_round(task_id, 0).finalized_at + CHALLENGE + 1)
    for member in members[-LEAVERS:]:
        bench.record("leave", lambda m=member: m.leave(task_id))
    return {"task_id": task_id}


def new_slots(anvil: Anvil, market_address: str, tx_hash: str) -> int:
    """Storage slots of the market that the transaction took from zero to non-zero (prestateTracer diff)."""
    diff = anvil.rpc(
        "debug_traceTransaction", [tx_hash, {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}}]
    )
    key = market_address.lower()
    before = {k: int(v, 16) for k, v in diff["pre"].get(key, {}).get("storage", {}).items()}
    after = {k: int(v, 16) for k, v in diff["post"].get(key, {}).get("storage", {}).items()}
    return sum(1 for slot, value in after.items() if value and not before.get(slot))


def calldata_gas(data: bytes) -> int:
    """What a transaction's input bytes cost: 4 gas per zero byte, 16 per non-zero byte."""
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


def summarise(bench: Bench, n: int) -> dict[str, Any]:
    """Per label: count, median, min, max gas; the measured new slots of the first such transaction."""
    by_label: dict[str, list[Sent]] = {}
    for sent in bench.sent:
        by_label.setdefault(sent.label, []).append(sent)
    rows: dict[str, Any] = {}
    w3 = bench.market.client.w3
    for label, group in by_label.items():
        gas = [s.gas for s in group]
        first = group[0]
        row: dict[str, Any] = {
            "count": len(gas),
            "median": int(statistics.median_low(gas)),
            "min": min(gas),
            "max": max(gas),
            "new_slots_traced": bench.traced[label],
        }
        if label in ("finalizeRound", "propose (quorum)"):
            data = bytes(w3.eth.get_transaction(first.tx_hash)["input"])  # type: ignore[arg-type]
            row["execution_gas"] = first.gas - BASE_GAS - calldata_gas(data)
        if label == "claim":
            lengths: dict[int, list[int]] = {}
            for s in group:
                lengths.setdefault(s.extra["proof_length"], []).append(s.gas)
            row["median_by_proof_length"] = {
                str(k): int(statistics.median_low(v)) for k, v in sorted(lengths.items())
            }
        rows[label] = row
    commits = [s.gas for s in bench.sent if s.label.startswith("commit")]
    reveals = [s.gas for s in bench.sent if s.label.startswith("reveal")]
    pairs = [c + r for c, r in zip(commits, reveals, strict=True)]
    rows["commit+reveal"] = {
        "count": len(pairs),
        "median": int(statistics.median_low(pairs)),
        "min": min(pairs),
        "max": max(pairs),
    }
    return rows


def floors() -> dict[str, dict[str, Any]]:
    """The floor of every function: 21,000 + 20,000 per new storage slot, with the slots' reasons."""
    table = {
        label: {"new_slots": slots, "floor": BASE_GAS + NEW_SLOT_GAS * slots, "slots": why}
        for label, (slots, why) in NEW_SLOTS.items()
    }
    commit, reveal = NEW_SLOTS["commit"][0], NEW_SLOTS["reveal"][0]
    table["commit+reveal"] = {
        "new_slots": commit + reveal,
        "floor": 2 * BASE_GAS + NEW_SLOT_GAS * (commit + reveal),
        "slots": "two transactions: commit's one slot, reveal's none",
    }
    return table


def verdicts(table: dict[str, dict[str, Any]], sizes: tuple[int, ...]) -> dict[str, Any]:
    """The targets, measured (never asserted)."""
    largest = str(max(sizes))
    commit_reveal = {size: row["median"] for size, row in table["commit+reveal"].items()}
    claims = {
        size: max(table[label][size]["max"] for label in ("claim", "claim (first)") if size in table[label])
        for size in table["claim"]
    }
    later_claims = {size: row["max"] for size, row in table["claim"].items()}

    def flat(label: str, key: str) -> dict[str, int]:
        return {size: row[key] for size, row in table[label].items()}

    return {
        "commit+reveal <= 120k": {"median": commit_reveal, "met": max(commit_reveal.values()) <= 120_000},
        "claim <= 80k": {
            "max later claim": later_claims,
            "max any claim (incl. the first, which opens two slots)": claims,
            "met (later claims)": max(later_claims.values()) <= 80_000,
            "met (every claim)": max(claims.values()) <= 80_000,
        },
        "finalizeRound independent of n": {
            "gas": flat("finalizeRound", "median"),
            "execution_gas": flat("finalizeRound", "execution_gas"),
            "met": len(set(flat("finalizeRound", "execution_gas").values())) == 1,
        },
        "propose (quorum) independent of n": {
            "gas": flat("propose (quorum)", "median"),
            "execution_gas": flat("propose (quorum)", "execution_gas"),
            "met": len(set(flat("propose (quorum)", "execution_gas").values())) == 1,
        },
        "largest size": int(largest),
    }


def run(quick: bool) -> dict[str, Any]:
    """Measure every function's gas at each size; return the JSON-able section.

    Parameters
    ----------
    quick : bool
        10 and 100 contributors only (about 15 s); otherwise also 1000 (about 2 minutes here).
    """
    sizes = QUICK_SIZES if quick else SIZES
    started = time.perf_counter()
    table: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    with Anvil(PORT) as anvil:
        client = ChainClient(anvil.rpc_url, anvil.signer(0), poll=0.01)
        market = deploy_market(client)
        for n in sizes:
            size_started = time.perf_counter()
            bench = Bench(anvil, market)
            bench.fund_crowd(n)
            # The side task first, so that every measured createTask finds taskCount already non-zero.
            credit_side_task(bench)
            main_task(bench, n)
            for label, row in summarise(bench, n).items():
                table.setdefault(label, {})[str(n)] = row
            seconds[str(n)] = round(time.perf_counter() - size_started, 1)
    floor = floors()
    mismatches = {
        label: {size: row["new_slots_traced"] for size, row in rows.items()}
        for label, rows in table.items()
        if label in floor
        and "new_slots_traced" in next(iter(rows.values()))
        and any(row["new_slots_traced"] != floor[label]["new_slots"] for row in rows.values())
    }
    over_floor = {
        label: {size: row["median"] - floor[label]["floor"] for size, row in rows.items()}
        for label, rows in table.items()
        if label in floor
    }
    return {
        "sizes": list(sizes),
        "quick": quick,
        "gas": table,
        "floor": floor,
        "over_floor": over_floor,
        "slot_count_mismatches": mismatches,
        "targets": TARGETS,
        "verdicts": verdicts(table, sizes),
        "notes": [
            "claims are sent by the contributor itself (its address is warm: the payout call costs 100 gas "
            "for the account access instead of 2,600 when a third party claims for it)",
            "join/commit/reveal '(last ...)' rows reschedule the round's phases",
            "the floor counts only the 21,000 base and 20,000 per zero-to-non-zero storage slot",
        ],
        "seconds": {"per_size": seconds, "total": round(time.perf_counter() - started, 1)},
    }


if __name__ == "__main__":
    # Stopped from outside, still leave through the context managers: anvil stops, temp files go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(json.dumps(run("--quick" in sys.argv[1:]), indent=2))
