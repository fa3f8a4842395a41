"""Gas of the market's hot functions with 10 and with 100 contributors in one round.

One module fixture runs a round end to end at each size (extra contributors are local accounts with keys
derived from keccak of a seed, funded from accounts[0]), records every transaction's gas, writes the medians
to reports/gas.json as {function: {"10": gas, "100": gas}} and prints them (run with -s). Two small side
tasks, run again at each size, measure the dispute and penalty paths, which do not depend on the round's
size: forfeitUnrevealed, leave forfeiting, challenge, resolveChallenge upheld and rejected,
withdrawChallengeBond, withdrawCredit, and finalizeRound dismissing a challenge after a failed round; the
main round also measures bondValidator topping up a slashed bond, slashContributor re-applying a leaf (a
no-op) and cancelTask. The tests then assert the protocol's gas properties, not timings:

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
    ZERO_ADDRESS,
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
CHALLENGE = 600  # the challenge window, and the validation phase (which may not be longer)
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
        funder.transfer(account, 20 * STAKE, silent=True)
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
        validationDuration=CHALLENGE,
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
    # validators[2] proposed nothing: finalization slashed it, and it tops its bond up to propose again.
    slash = params[12]
    record("bondValidator (top-up)", market.bondValidator(task_id, {"from": validators[2], "value": slash}))
    for i, c in enumerate(contributors):
        proof = result.reward_proof(i)
        record("claim", market.claim(task_id, 0, i, str(c), REWARD, proof, {"from": outsider}))
    for i, c in enumerate(contributors[:SLASHED]):
        proof = result.slashes.proof(i)
        record(
            "slashContributor",
            market.slashContributor(task_id, 0, i, str(c), STAKE // 2, proof, {"from": outsider}),
        )
    # A second validator racing to apply the same leaf: a no-op.
    proof = result.slashes.proof(0)
    record(
        "slashContributor (no-op)",
        market.slashContributor(
            task_id, 0, 0, str(contributors[0]), STAKE // 2, proof, {"from": validators[0]}
        ),
    )

    at(market.getRound(task_id, 0)[7] + CHALLENGE + 1)  # finalizedAt + challengeDuration + 1
    for c in contributors[-LEAVERS:]:
        record("leave", market.leave(task_id, {"from": c}))
    # Round 1 is open without reveals: the owner may still cancel, and is refunded the unspent escrow.
    record("cancelTask", market.cancelTask(task_id, {"from": owner}))
    return {"txs": txs, "tree": result.rewards}


def side_task(market, owner, validators, arbiter, contributors, **overrides) -> int:
    """A small task (joined by `contributors`, round 0's commit phase open at once) for the dispute paths."""
    params = task_params(
        **{
            "numRounds": 3,
            "minContributors": 1,
            "maxContributors": len(contributors),
            "joinDuration": 0,
            "validationDuration": CHALLENGE,
            "challengeDuration": CHALLENGE,
            "contributorStake": STAKE,
            "challengeBond": STAKE,
            "arbiter": str(arbiter),
            **overrides,
        }
    )
    market.createTask(params, "bafkreispec", validators, {"from": owner, "value": 30 * REWARD})
    task_id = market.taskCount()
    for v in validators:
        market.bondValidator(task_id, {"from": v, "value": params[11]})
    for c in contributors:
        market.join(task_id, {"from": c, "value": STAKE})
    return task_id


def commit_round(market, task_id, round_, contributors) -> dict:
    """Every contributor commits to round_; returns (digest, salt) by contributor."""
    secrets = {}
    for c in contributors:
        digest, salt = digest_of(f"side update {task_id} {round_} {c}"), digest_of(f"side salt {round_} {c}")
        market.commit(task_id, round_, update_commitment(str(c), task_id, round_, digest, salt), {"from": c})
        secrets[c] = (digest, salt)
    return secrets


def reveal_round(market, task_id, round_, secrets, contributors) -> None:
    for c in contributors:
        digest, salt = secrets[c]
        market.reveal(task_id, round_, "bafkreiupdate", digest, 100, salt, {"from": c})


def accept_side_round(market, validators, task_id, round_, payees) -> None:
    proposal = make_proposal([(c, REWARD) for c in payees], label=f"side {task_id} {round_}").proposal
    for v in validators[:2]:
        market.propose(task_id, round_, proposal, {"from": v})


def dispute_paths(market, owner, validators, arbiter, outsider, crowd) -> dict:
    """The penalty and dispute paths in two side tasks; returns their transactions by function.

    Task A: of three committers only one reveals; the round is accepted; one silent committer is forfeited by
    an outsider, the other leaves (and so forfeits); two accounts challenge, the arbiter upholds the first,
    the second withdraws its bond and the winner its credit.
    Task B: round 0 is challenged twice and both challenges are rejected after the window; round 1 fails (one
    reveal of two needed); round 2 is challenged and never ruled on, so finalizing it dismisses the challenge
    (checking the failed round 1 and the finalized round 0 on the way), and the challenger withdraws its bond.
    """
    txs: dict[str, list] = {}

    def record(name, tx):
        txs.setdefault(name, []).append(tx)
        return tx

    contributors, challengers = crowd[:3], crowd[3:5]

    task_a = side_task(market, owner, validators, arbiter, contributors)
    secrets = commit_round(market, task_a, 0, contributors)  # the third commit ends the commit phase
    reveal_round(market, task_a, 0, secrets, contributors[:1])
    at(market.getRound(task_a, 0)[2])  # revealEnd
    accept_side_round(market, validators, task_a, 0, contributors[:1])
    forfeit = market.forfeitUnrevealed(task_a, 0, contributors[1], {"from": outsider})
    record("forfeitUnrevealed", forfeit)
    record("leave (forfeit)", market.leave(task_a, {"from": contributors[2]}))
    for name, c in zip(("challenge (first)", "challenge (another)"), challengers, strict=True):
        record(name, market.challenge(task_a, 0, "bafkreievidence", {"from": c, "value": STAKE}))
    upheld = market.resolveChallenge(task_a, 0, challengers[0], {"from": arbiter})
    record("resolveChallenge (upheld)", upheld)
    returned = market.withdrawChallengeBond(task_a, 0, {"from": challengers[1]})
    record("withdrawChallengeBond (upheld for another)", returned)
    record("withdrawCredit", market.withdrawCredit({"from": challengers[0]}))

    task_b = side_task(market, owner, validators, arbiter, contributors[:2], minContributors=2)
    secrets = commit_round(market, task_b, 0, contributors[:2])
    reveal_round(market, task_b, 0, secrets, contributors[:2])
    accept_side_round(market, validators, task_b, 0, contributors[:2])
    for c in challengers:
        market.challenge(task_b, 0, "bafkreievidence", {"from": c, "value": STAKE})
    at(market.getRound(task_b, 0)[6] + CHALLENGE)  # acceptedAt + challengeDuration
    rejected = market.resolveChallenge(task_b, 0, ZERO_ADDRESS, {"from": arbiter})
    record("resolveChallenge (rejected)", rejected)
    market.finalizeRound(task_b, 0, {"from": outsider})
    secrets = commit_round(market, task_b, 1, contributors[:1])
    at(market.getRound(task_b, 1)[1])  # commitEnd
    reveal_round(market, task_b, 1, secrets, contributors[:1])
    at(market.getRound(task_b, 1)[2])  # revealEnd: one reveal of the two needed
    market.failRound(task_b, {"from": outsider})
    secrets = commit_round(market, task_b, 2, contributors[:2])
    reveal_round(market, task_b, 2, secrets, contributors[:2])
    accept_side_round(market, validators, task_b, 2, contributors[:2])
    market.challenge(task_b, 2, "bafkreievidence", {"from": challengers[0], "value": STAKE})
    at(market.getRound(task_b, 2)[6] + 2 * CHALLENGE)  # the arbitration window is over
    dismissed = market.finalizeRound(task_b, 2, {"from": outsider})
    assert "ChallengesDismissed" in dismissed.events
    record("finalizeRound (dismissed, after a failed round)", dismissed)
    returned = market.withdrawChallengeBond(task_b, 2, {"from": challengers[0]})
    record("withdrawChallengeBond (dismissed)", returned)
    # The forfeit bounties are withdrawn too, so that the next size's forfeits also find their credit slots
    # (and totalCredits) at zero: both sizes measure the same, dearest case.
    for account in (outsider, contributors[2]):
        market.withdrawCredit({"from": account})
    assert market.totalCredits() == 0
    return txs


@pytest.fixture(scope="module")
def gas(market, owner, validators, arbiter, outsider, crowd):
    """{size: {"txs": {function: [tx, ...]}, "tree": rewards tree}}; writes and prints the medians table."""
    runs = {}
    with contextlib.redirect_stdout(io.StringIO()):  # brownie prints every transaction
        for n in SIZES:
            # The side tasks first, so that both measured createTask calls find taskCount already non-zero.
            side = dispute_paths(market, owner, validators, arbiter, outsider, crowd)
            runs[n] = run_round(market, owner, validators, arbiter, outsider, crowd[:n])
            runs[n]["txs"].update(side)

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
    print(f"  {'function':<50}{'10':>10}{'100':>10}")
    for name, row in table.items():
        print(f"  {name:<50}{row['10']:>10,}{row['100']:>10,}")
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
        "bondValidator (top-up)",
        "slashContributor (no-op)",
        "cancelTask",
        "forfeitUnrevealed",
        "leave (forfeit)",
        "challenge (first)",
        "challenge (another)",
        "resolveChallenge (upheld)",
        "resolveChallenge (rejected)",
        "withdrawChallengeBond (upheld for another)",
        "withdrawChallengeBond (dismissed)",
        "finalizeRound (dismissed, after a failed round)",
    ):
        assert set(table[name]) == {"10", "100"}, name
        assert all(value > 21_000 for value in table[name].values()), name


DISPUTE_PATHS = (
    "forfeitUnrevealed",
    "leave (forfeit)",
    "challenge (first)",
    "challenge (another)",
    "resolveChallenge (upheld)",
    "resolveChallenge (rejected)",
    "withdrawChallengeBond (upheld for another)",
    "withdrawChallengeBond (dismissed)",
    "finalizeRound (dismissed, after a failed round)",
    "bondValidator (top-up)",
    "cancelTask",
)


@pytest.mark.parametrize("name", DISPUTE_PATHS)
def test_dispute_and_penalty_paths_do_not_depend_on_the_round_size(gas, name):
    small, large = gas[10]["txs"][name], gas[100]["txs"][name]
    assert [tx.gas_used for tx in small] == [tx.gas_used for tx in large]


def test_reapplying_a_slash_leaf_is_cheaper_than_applying_it(gas):
    for n in SIZES:
        no_op = gas[n]["txs"]["slashContributor (no-op)"][0]
        assert "ContributorSlashed" not in no_op.events
        assert no_op.gas_used < 35_000 < min(tx.gas_used for tx in gas[n]["txs"]["slashContributor"])


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
