"""One scripted training task through the market on a local anvil: `brownie run scripts/demo_task.py`.

Until the node software drives real training, update and model files are stand-in bytes named by their sha256.
Everything on-chain is real: escrow, stakes, commit-reveal, quorum, slashing, challenge window, Merkle claims
built by cotrain's own Python code, refunds, and a final check that every wei is accounted for.
"""

import hashlib

from brownie import TrainingMarket, accounts, chain
from cotrain.protocol.commitment import new_salt, update_commitment
from cotrain.protocol.merkle import Allocation, allocation_tree
from rich.console import Console
from rich.table import Table

ETHER = 10**18
ROUNDS = 3
BUDGET = 3 * ETHER
STAKE = ETHER // 10
console = Console()


def stand_in_file(label: str) -> tuple[str, bytes]:
    """A stand-in storage location and sha256 digest for a file described by label."""
    digest = hashlib.sha256(label.encode()).digest()
    return f"sha256:{digest.hex()}", digest


def wait_until(timestamp: int) -> None:
    """Let the local chain's clock pass timestamp (the phases that cannot end early)."""
    gap = timestamp - chain.time()
    if gap > 0:
        chain.sleep(gap)
    chain.mine()


def round_view(market, task_id: int, round_: int):
    return market.getRound(task_id, round_)


def main():
    owner, arbiter, validators, contributors = accounts[0], accounts[1], accounts[2:5], accounts[5:9]
    honest, dissenter = validators[:2], validators[2]
    market = TrainingMarket.deploy({"from": owner})
    console.print(f"[bold]TrainingMarket[/] at {market.address}")

    spec_cid, spec_digest = stand_in_file("digits CNN, 3 rounds, FedAvg")
    params = (
        spec_digest,
        ROUNDS,
        2,
        4,
        600,
        3600,
        1800,
        1800,
        3600,
        2,
        STAKE,
        ETHER,
        ETHER // 4,
        ETHER // 2,
        arbiter.address,
    )
    tx = market.createTask(params, spec_cid, validators, {"from": owner, "value": BUDGET})
    task_id = tx.return_value
    for validator in validators:
        market.bondValidator(task_id, {"from": validator, "value": ETHER})
    for contributor in contributors:
        market.join(task_id, {"from": contributor, "value": STAKE})
    console.print(
        f"task {task_id}: budget {BUDGET / ETHER} ETH over {ROUNDS} rounds; 4 contributors joined, "
        "so the join phase ended early"
    )

    table = Table("round", "revealed", "accepted by", "rewards (ETH)", "slashed", "gas per update")
    rewards_by_round = []
    for round_ in range(ROUNDS):
        # In round 1 the last contributor's update is bad: the record slashes it and pays it nothing.
        bad = contributors[-1] if round_ == 1 else None
        gas = []
        submissions = []
        for contributor in contributors:
            cid, digest = stand_in_file(f"update {round_} {contributor}")
            salt = new_salt()
            commitment = update_commitment(contributor.address, task_id, round_, digest, salt)
            gas.append(market.commit(task_id, round_, commitment, {"from": contributor}).gas_used)
            submissions.append((contributor, cid, digest, salt))
        for contributor, cid, digest, salt in submissions:
            tx = market.reveal(task_id, round_, cid, digest, 100, salt, {"from": contributor})
            gas[contributors.index(contributor)] += tx.gas_used

        budget = market.getTask(task_id)[6]
        paid = [c for c in contributors if c != bad]
        rewards = [Allocation(c.address, budget // len(paid)) for c in paid]
        slashes = [Allocation(bad.address, STAKE // 2)] if bad else []
        reward_tree = allocation_tree(rewards)
        slash_tree = allocation_tree(slashes) if slashes else None
        model_cid, model_digest = stand_in_file(f"model after round {round_}")
        record_cid, record_digest = stand_in_file(f"record of round {round_}")
        proposal = (
            model_digest,
            record_digest,
            reward_tree.root,
            slash_tree.root if slash_tree else b"\0" * 32,
            sum(a.amount for a in rewards),
            model_cid,
            record_cid,
        )
        for validator in honest:
            market.propose(task_id, round_, proposal, {"from": validator})
        # The third validator disagrees (a different model digest); it loses part of its bond at finalization.
        market.propose(
            task_id, round_, (stand_in_file("a different model")[1], *proposal[1:]), {"from": dissenter}
        )
        rewards_by_round.append((reward_tree, rewards, slash_tree, slashes))
        table.add_row(
            str(round_),
            str(round_view(market, task_id, round_)[4]),
            "2 of 3 validators",
            f"{sum(a.amount for a in rewards) / ETHER:.4f}",
            "1 (half its stake)" if bad else "-",
            f"{sorted(gas)[len(gas) // 2]:,}",
        )
    console.print(table)

    for round_ in range(ROUNDS):
        wait_until(round_view(market, task_id, round_)[6] + 3600)
        market.finalizeRound(task_id, round_, {"from": owner})
    console.print("challenge windows passed without a challenge; all rounds finalized")

    claims = Table("contributor", "claimed (ETH)", "stake back (ETH)")
    before = {c: c.balance() for c in contributors}
    for round_, (reward_tree, rewards, slash_tree, slashes) in enumerate(rewards_by_round):
        for index, allocation in enumerate(rewards):
            proof = reward_tree.proof(index)
            market.claim(
                task_id, round_, index, allocation.account, allocation.amount, proof, {"from": owner}
            )
        for index, allocation in enumerate(slashes):
            market.slashContributor(
                task_id,
                round_,
                index,
                allocation.account,
                allocation.amount,
                slash_tree.proof(index),
                {"from": owner},
            )
    claimed = {c: c.balance() - before[c] for c in contributors}
    wait_until(chain.time() + 3601)
    for contributor in contributors:
        balance = contributor.balance()
        market.leave(task_id, {"from": contributor})
        claims.add_row(
            contributor.address,
            f"{claimed[contributor] / ETHER:.4f}",
            f"{(contributor.balance() - balance) / ETHER:.4f}",
        )
    console.print(claims)

    dissenter_bond = market.validatorInfo(task_id, dissenter)[2]
    console.print(
        f"dissenting validator kept {dissenter_bond / ETHER:.2f} of its 1 ETH bond after 3 dissents"
    )
    refund_before = owner.balance()
    market.withdrawRefund(task_id, {"from": owner})
    for validator in validators:
        market.withdrawBond(task_id, {"from": validator})
    console.print(
        f"owner refunded {(owner.balance() - refund_before) / ETHER:.4f} ETH "
        "(the slashed stake and validator bond, plus rounding dust)"
    )

    held = market.balance()
    if held != 0 or market.taskHoldings(task_id) != 0:
        raise SystemExit(f"accounting error: the market still holds {held} wei")
    console.print("[bold green]every wei accounted for:[/] the market holds 0 wei after the task")
