"""Chaos, end to end: a 5-round task where nothing is as kind as a local test chain.

Every participant runs its own IPFS node, peered on loopback (cotrain.storage.jsipfs.PeerGroup), and reaches
the chain through a fault-injecting proxy (rpc_faults.FaultyRpc: 5% of requests dropped, eth_getLogs capped
at 5 blocks), treating a transaction or an event as final after 2 confirmations. In the middle:

- round 1: contributor 0's IPFS node is killed as soon as the first validator's proposal is on chain, so the
  other validators and the auditor must get its update from the nodes that fetched and pinned it; it comes
  back (and contributor 0 claims) once the task's rounds are over;
- round 2: a 2-block reorganisation (``anvil_reorg``) while contributions are committed, and validator 1
  restarted (a fresh node: nothing but the chain and storage to resume from) when validation opens.

Then every round is accepted and finalized, the audit passes, no account sent the same call twice or had a
transaction fail, and every wei of the budget is paid out: the market holds nothing at the end. The test
prints the timeline it saw.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from chain_clock import ChainClock
from cotrain.chain.market import Phase, RoundStatus, TaskStatus
from cotrain.chain.settings import ChainSettings
from cotrain.demo import DemoSettings, demo_spec
from cotrain.errors import StorageError
from cotrain.learning.partition import partition_iid
from cotrain.localnet import local_network
from cotrain.protocol.round_record import Reason
from cotrain.protocol.task_model import builtin_split
from cotrain.roles.auditor import audit_task
from cotrain.roles.contributor import ContributorNode
from cotrain.roles.journal import Journal
from cotrain.roles.owner import post_task
from cotrain.roles.task_view import TaskView
from cotrain.roles.validator import ValidatorNode
from e2e_helpers import run_until
from rpc_faults import Faults, FaultyRpc

CONTRIBUTORS = 4
VALIDATORS = 3
ROUNDS = 5
CHAIN = ChainSettings(confirmations=2, retry_budget=30.0)
OWNER, ARBITER, FIRST_VALIDATOR = 0, 1, 2
FIRST_CONTRIBUTOR = FIRST_VALIDATOR + VALIDATORS


def test_a_task_survives_lost_requests_a_reorg_a_dead_ipfs_node_and_a_restart(tmp_path: Path) -> None:
    validators = [f"validator-{i}" for i in range(VALIDATORS)]
    contributors = [f"contributor-{i}" for i in range(CONTRIBUTORS)]
    with (
        local_network(
            tmp_path / "net",
            storage="ipfs",
            participants=[*validators, *contributors],
            block_time=1,
            accounts=FIRST_CONTRIBUTOR + CONTRIBUTORS,
        ) as net,
        FaultyRpc(
            net.anvil.rpc_url, Faults(drop=0.05, log_block_cap=5, spare=frozenset({"anvil_reorg"})), seed=16
        ) as proxy,
    ):
        assert net.peers is not None

        def connect(name: str, account: int):  # the participant's node, through the proxy
            config = replace(net.config_of(name), rpc_url=proxy.url, chain=CHAIN)
            return config.connect(net.signer(account))

        # Prepare: the demo's breast-cancer task, a node object per participant.
        market, store = connect("owner", OWNER)
        addresses = [net.signer(FIRST_VALIDATOR + i).address for i in range(VALIDATORS)]
        settings = DemoSettings(CONTRIBUTORS, VALIDATORS, ROUNDS, "breast_cancer")
        spec = demo_spec(settings, net.signer(ARBITER).address, addresses)
        task_id, spec = post_task(market, store, spec)
        train, held_out = builtin_split(spec)
        nodes: list[ContributorNode | ValidatorNode] = [
            ContributorNode(
                *connect(name, FIRST_CONTRIBUTOR + i),
                task_id,
                Journal(tmp_path / name),
                data=train.subset(part),
            )
            for i, (name, part) in enumerate(
                zip(contributors, partition_iid(len(train), CONTRIBUTORS, 0), strict=True)
            )
        ]
        nodes += [
            ValidatorNode(*connect(name, FIRST_VALIDATOR + i), task_id, held_out)
            for i, name in enumerate(validators)
        ]
        offline = net.peers["contributor-0"]
        timeline: list[str] = []
        started = time.monotonic()

        def note(what: str) -> None:
            block = int(net.anvil.rpc("eth_blockNumber"), 16)
            timeline.append(f"{time.monotonic() - started:6.1f} s  block {block:4d}  {what}")

        def step(index: int) -> bool:
            try:
                return nodes[index].step()
            except StorageError:
                if index == 0 and not offline.running:
                    return False  # its own node is down: it waits, as `cotrain contribute` retries
                raise

        # The test watches the chain directly, not through the proxy.
        watch, _ = net.config.connect(None)
        clock = ChainClock(net.anvil, watch, task_id, [n.address for n in nodes])
        done = {"killed": False, "back": False, "reorg": False, "restart": False}

        def chaos() -> None:
            clock()
            current = watch.get_task(task_id).current_round
            if not done["killed"]:
                proposed = [e for e in watch.events("RoundProposed", task_id=task_id) if e.args["round"] == 1]
                if proposed:
                    offline.stop()
                    done["killed"] = True
                    by = proposed[0].args["validator"]
                    note(f"round 1 proposed by {by}: contributor 0's IPFS node killed")
            if not done["reorg"] and current == 2:
                events = watch.events("UpdateCommitted", task_id=task_id)
                committed = [e for e in events if e.args["round"] == 2]
                if committed:
                    before = int(net.anvil.rpc("eth_blockNumber"), 16)
                    undone = sum(
                        len(net.anvil.rpc("eth_getBlockByNumber", [hex(n), False])["transactions"])
                        for n in (before - 1, before)
                    )
                    net.anvil.rpc("anvil_reorg", [2, []])
                    done["reorg"] = True
                    note(
                        f"2-block reorg at block {before} ({undone} transactions undone), after "
                        f"{len(committed)} of round 2's commits"
                    )
            if not done["restart"] and current == 2 and watch.phase(task_id) == Phase.VALIDATE:
                nodes[CONTRIBUTORS + 1] = ValidatorNode(
                    *connect("validator-1", FIRST_VALIDATOR + 1), task_id, held_out
                )
                done["restart"] = True
                note("validator 1 restarted: a fresh node on the same key")
            if done["killed"] and not done["back"] and watch.get_task(task_id).status != TaskStatus.ACTIVE:
                offline.start()
                for other in net.peers.daemons.values():
                    if other is not offline:
                        offline.connect(other)
                done["back"] = True
                note("contributor 0's IPFS node back online")

        # Execute
        run_until(
            "every participant settled",
            [lambda i=i: step(i) for i in range(len(nodes))],
            deadline_s=600,
            after_pass=chaos,
        )
        note("every participant settled")

        # Assert: every round accepted then finalized; the dead node's update was judged, not unavailable.
        print("\n".join(timeline))
        assert all(done.values()), done
        assert watch.get_task(task_id).status == TaskStatus.COMPLETED
        assert [watch.get_round(task_id, r).status for r in range(ROUNDS)] == [RoundStatus.FINALIZED] * ROUNDS
        view = TaskView(market, store, task_id)
        first = nodes[0].address.lower()
        round_1 = {u.contributor: u for u in view.record(1).updates}
        assert round_1[first].reason == Reason.OK, round_1[first]
        audit = audit_task(view, held_out)
        assert [r.passed for r in audit] == [True] * ROUNDS, audit

        # No account sent one call twice, and no transaction failed.
        sent: Counter[tuple[str, str]] = Counter()
        for number in range(market.deploy_block, int(net.anvil.rpc("eth_blockNumber"), 16) + 1):
            block = net.anvil.rpc("eth_getBlockByNumber", [hex(number), True])
            for tx in block["transactions"]:
                sent[(tx["from"], tx["input"])] += 1
                receipt = net.anvil.rpc("eth_getTransactionReceipt", [tx["hash"]])
                assert receipt["status"] == "0x1", (tx, receipt)
        twice = {key: count for key, count in sent.items() if count > 1}
        assert not twice, twice

        # Every wei of the budget went to contributors; the market keeps nothing.
        paid = sum(e.args["amount"] for e in watch.events("RewardClaimed", task_id=task_id))
        assert paid == spec.budget_wei
        assert int(net.anvil.rpc("eth_getBalance", [market.address, "latest"]), 16) == 0
        assert proxy.counts["drop"] > 0 and proxy.counts["log_cap"] > 0, proxy.counts
