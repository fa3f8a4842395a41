"""Gas of the market's hot functions with 10 and with 100 contributors in one round.

One module fixture runs a round end to end at each size (extra contributors are local accounts with keys
derived from keccak of a seed, funded from accounts[0]), records every transaction's gas, writes the medians
to reports/gas.json as {function: {"10": gas, "100": gas}} and prints them (run with -s). The tests then
assert the protocol's gas properties, not timings:

- commit + reveal costs at most 120,000 gas per contributor;
- finalizeRound and the quorum-reaching propose cost the same at both sizes: their execution gas (gas used
  less the 21,000 base and the calldata bytes) is identical, and any difference in the total comes from the
  calldata price of a zero byte (4) versus a non-zero one (16) in the roots and amounts they carry;
- a later claim costs at most 80,000 gas and grows only with its proof's length (log2 of the leaves),
  not with the number of contributors beyond that.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
from pathlib import Path

import pytest
from brownie import accounts, chain
from conftest import (
    ACCEPTED,
    COMMIT,
    REVEAL,
    VALIDATE,
    digest_of,
    make_proposal,
    next_block_at,
    task_params,
)
from cotrain.protocol.commitment import update_commitment
from eth_utils import keccak

SIZES = (10, 100)
STAKE = 10**15
REWARD = 10**12  # every reward leaf pays the same, so claims differ only in their proofs
SLASHED = 5  # slash leaves per round, at both sizes
LEAVERS = 10
CHALLENGE = 600
REPORT = Path(__file__).resolve().parents[2] / "reports" / "gas.json"


def calldata_gas(tx) -> int:
    """What the transaction's input bytes cost: 4 gas per zero byte, 16 per non-zero byte."""
    data = bytes.fromhex(tx.input[2:])
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


def execution_gas(tx) -> int:
    return tx.gas_used - 21_000 - calldata_gas(tx)


def median(values) -> int:
    return int(statistics.median_low(values))


def proof_length(tree, index: int) -> int:
    return len(tree.proof(index))


def at(timestamp: int) -> None:
    """Give the next transaction this timestamp (the chain's clock never goes back)."""
    next_block_at(max(timestamp, chain[-1].timestamp + 1))


@pytest.fixture(scope="module")
def crowd():
    """100 funded local accounts with deterministic keys."""
    funder = accounts[0]
    crowd = []
    for i in range(max(SIZES)):
        key = "0x" + keccak(text=f"cotrain gas contributor {i}").hex()
        account = accounts.add(key)
        funder.transfer(account, 10 * STAKE, silent=True)
        crowd.append(account)
    return crowd


def run_round(market, owner, validators, arbiter, outsider, contributors) -> dict:
    """One round with every contributor committing and revealing; returns the transactions by function."""
    n = len(contributors)
    txs: dict[str, list] = {}

    def record(name, tx):
        txs.setdefault(name, []).append(tx)
        return tx

    params = task_params(
        numRounds=2,
        minContributors=2,
        maxContributors=n,
        challengeDuration=CHALLENGE,
        contributorStake=STAKE,
        arbiter=str(arbiter),
    )
    budget = 2 * n * REWARD
    tx = record(
        "createTask", market.createTask(params, "bafkreispec", validators, {"from": owner, "value": budget})
    )
    task_id = tx.events["TaskCreated"]["taskId"]
    bond = params[11]
    for v in validators:
        record("bondValidator", market.bondValidator(task_id, {"from": v, "value": bond}))
    for c in contributors:  # the last join fills the round and opens its commit phase at once
        record("join", market.join(task_id, {"from": c, "value": STAKE}))
    assert market.phase(task_id) == COMMIT

    salts = {str(c): digest_of(f"salt {c}") for c in contributors}
    updates = {str(c): digest_of(f"update {c}") for c in contributors}
    for c in contributors:  # the last commit ends the commit phase
        commitment = update_commitment(str(c), task_id, 0, updates[str(c)], salts[str(c)])
        record("commit", market.commit(task_id, 0, commitment, {"from": c}))
    assert market.phase(task_id) == REVEAL
    for c in contributors:  # the last reveal ends the reveal phase
        args = (task_id, 0, "bafkreiupdate", updates[str(c)], 100, salts[str(c)])
        record("reveal", market.reveal(*args, {"from": c}))
    assert market.phase(task_id) == VALIDATE

    result = make_proposal(
        [(c, REWARD) for c in contributors],
        [(c, STAKE // 2) for c in contributors[:SLASHED]],
        label="gas model",
    )
    record("propose (not accepting)", market.propose(task_id, 0, result.proposal, {"from": validators[0]}))
    record("propose (quorum)", market.propose(task_id, 0, result.proposal, {"from": validators[1]}))
    round_ = market.getRound(task_id, 0)
    assert round_[8] == ACCEPTED

    at(round_[6] + CHALLENGE)  # acceptedAt + challengeDuration
    record("finalizeRound", market.finalizeRound(task_id, 0, {"from": outsider}))
    for i, c in enumerate(contributors):
        proof = result.reward_proof(i)
        record("claim", market.claim(task_id, 0, i, str(c), REWARD, proof, {"from": outsider}))
    for i, c in enumerate(contributors[:SLASHED]):
        proof = result.slashes.proof(i)
        record(
            "slashContributor",
            market.slashContributor(task_id, 0, i, str(c), STAKE // 2, proof, {"from": outsider}),
        )

    at(market.getRound(task_id, 0)[7] + CHALLENGE + 1)  # finalizedAt + challengeDuration + 1
    for c in contributors[-LEAVERS:]:
        record("leave", market.leave(task_id, {"from": c}))
    return {"txs": txs, "tree": result.rewards}


def credit_withdrawal(market, owner, validators, arbiter, outsider, contributor):
    """A one-contributor task whose accepted round is challenged and upheld; returns withdrawCredit's tx."""
    params = task_params(
        numRounds=1,
        minContributors=1,
        maxContributors=1,
        quorum=1,
        joinDuration=0,
        contributorStake=STAKE,
        arbiter=str(arbiter),
    )
    market.createTask(params, "bafkreispec", validators, {"from": owner, "value": 10 * REWARD})
    task_id = market.taskCount()
    for v in validators:
        market.bondValidator(task_id, {"from": v, "value": params[11]})
    market.join(task_id, {"from": contributor, "value": params[10]})
    digest, salt = digest_of("credit update"), digest_of("credit salt")
    market.commit(
        task_id, 0, update_commitment(str(contributor), task_id, 0, digest, salt), {"from": contributor}
    )
    market.reveal(task_id, 0, "bafkreiupdate", digest, 100, salt, {"from": contributor})
    market.propose(task_id, 0, make_proposal([(contributor, REWARD)]).proposal, {"from": validators[0]})
    market.challenge(task_id, 0, "bafkreievidence", {"from": outsider, "value": params[13]})
    market.resolveChallenge(task_id, 0, True, {"from": arbiter})
    return market.withdrawCredit({"from": outsider})


@pytest.fixture(scope="module")
def gas(market, owner, validators, arbiter, outsider, crowd):
    """{size: {"txs": {function: [tx, ...]}, "tree": rewards tree}}; writes and prints the medians table."""
    runs = {}
    with contextlib.redirect_stdout(io.StringIO()):  # brownie prints every transaction
        for n in SIZES:
            # The side task first, so that both measured createTask calls find taskCount already non-zero.
            credit = credit_withdrawal(market, owner, validators, arbiter, outsider, crowd[0])
            runs[n] = run_round(market, owner, validators, arbiter, outsider, crowd[:n])
            runs[n]["txs"]["withdrawCredit"] = [credit]

    table: dict[str, dict[str, int]] = {}
    for n, run in runs.items():
        txs = run["txs"]
        rows = {name: median(tx.gas_used for tx in group) for name, group in txs.items() if name != "claim"}
        pairs = zip(txs["commit"], txs["reveal"], strict=True)
        rows["commit+reveal"] = median(c.gas_used + r.gas_used for c, r in pairs)
        rows["claim (first)"] = txs["claim"][0].gas_used
        rows["claim (later, median)"] = median(tx.gas_used for tx in txs["claim"][1:])
        for name, value in rows.items():
            table.setdefault(name, {})[str(n)] = value

    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(table, indent=2) + "\n")
    print(f"\nmedian gas per call (written to {REPORT})")
    print(f"  {'function':<26}{'10':>10}{'100':>10}")
    for name, row in table.items():
        print(f"  {name:<26}{row['10']:>10,}{row['100']:>10,}")
    return runs


def test_report_lists_every_hot_function(gas):
    table = json.loads(REPORT.read_text())
    for name in (
        "createTask",
        "bondValidator",
        "join",
        "commit",
        "reveal",
        "propose (not accepting)",
        "propose (quorum)",
        "finalizeRound",
        "claim (first)",
        "claim (later, median)",
        "slashContributor",
        "leave",
        "withdrawCredit",
    ):
        assert set(table[name]) == {"10", "100"}, name
        assert all(value > 21_000 for value in table[name].values()), name


@pytest.mark.parametrize("n", SIZES)
def test_commit_plus_reveal_costs_at_most_120k_per_contributor(gas, n):
    txs = gas[n]["txs"]
    per_contributor = [c.gas_used + r.gas_used for c, r in zip(txs["commit"], txs["reveal"], strict=True)]
    assert median(per_contributor) <= 120_000
    assert len(per_contributor) == n


@pytest.mark.parametrize("name", ["finalizeRound", "propose (quorum)"])
def test_round_settlement_does_not_grow_with_contributors(gas, name):
    small, large = gas[10]["txs"][name][0], gas[100]["txs"][name][0]
    # The same storage writes and loops (over the validators, never the contributors) at both sizes ...
    assert execution_gas(small) == execution_gas(large)
    # ... so the totals differ at most by the calldata price of zero versus non-zero bytes.
    assert abs(small.gas_used - large.gas_used) == abs(calldata_gas(small) - calldata_gas(large))
    assert abs(small.gas_used - large.gas_used) <= small.gas_used / 100


def test_later_claims_grow_only_with_proof_length(gas):
    by_length: dict[int, dict[int, int]] = {}  # size -> proof length -> median gas of later claims
    for n in SIZES:
        claims, tree = gas[n]["txs"]["claim"], gas[n]["tree"]
        groups: dict[int, list[int]] = {}
        for i, tx in enumerate(claims[1:], start=1):
            groups.setdefault(proof_length(tree, i), []).append(tx.gas_used)
        by_length[n] = {length: median(values) for length, values in sorted(groups.items())}
        print(f"\n{n} contributors: median later claim by proof length {by_length[n]}")
        assert median(tx.gas_used for tx in claims[1:]) <= 80_000
        assert max(by_length[n]) == (n - 1).bit_length()  # a complete tree: depth ceil(log2 n)

    # The cost of one proof element, from claims of the same round whose proofs differ by one element.
    steps = [
        table[length + 1] - table[length]
        for table in by_length.values()
        for length in table
        if length + 1 in table
    ]
    assert steps, by_length
    per_element = max(steps)
    assert 0 < per_element <= 1_000, steps
    # Any later claim is the shortest proof's claim plus the extra proof elements, whatever the size of the
    # round (a little slack for the calldata bytes of the index, which grows from one byte to one byte).
    base_length = min(by_length[10])
    base = by_length[10][base_length]
    for n, table in by_length.items():
        for length, value in table.items():
            expected = base + (length - base_length) * per_element
            assert abs(value - expected) <= 100 * (1 + abs(length - base_length)), (
                n,
                length,
                value,
                expected,
            )
