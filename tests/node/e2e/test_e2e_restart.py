"""Restart safety, end to end: participants are SIGKILLed at the worst moments and restarted on the same
journal, and the chain shows that nothing was trained, committed, revealed, proposed or claimed twice.

The network is built here as `cotrain demo` builds it (local chain, embedded store, the built-in
breast-cancer task resized), but each participant is a `python -m cotrain contribute|validate` process
that this test starts, kills and restarts itself:

- round 0: contributor 0 dies right after it journalled its update (its commit not yet mined, or in
  flight); validator 0 dies right after its proposal is on chain;
- round 1: a contributor dies after its commit is on chain but before its reveal, and validator 1 dies at
  the same moment, before it could propose.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from cotrain.chain.market import Market, RoundStatus, TaskStatus
from cotrain.demo import DemoSettings, demo_spec
from cotrain.learning.partition import partition_iid
from cotrain.localnet import local_network
from cotrain.protocol.task_model import builtin_split
from cotrain.roles.auditor import audit_task
from cotrain.roles.owner import post_task
from cotrain.roles.task_view import TaskView
from e2e_helpers import builtin_spec

CONTRIBUTORS = 3
VALIDATORS = 2
ROUNDS = 2
EMPTY = bytes(32)
REVEALED = (1).to_bytes(32, "big")
DEADLINE_S = 180.0  # for the whole task; it takes 40-60 s on two cores

T = TypeVar("T")


@dataclass
class Participant:
    """One participant's OS process, started (and restarted) like `cotrain demo` starts it."""

    name: str
    address: str
    key: str
    command: list[str]
    folder: Path
    process: subprocess.Popen | None = None
    kills: list[int] = field(default_factory=list)

    def start(self) -> None:
        env = {**os.environ, "COTRAIN_PRIVATE_KEY": self.key, "OMP_NUM_THREADS": "1", "COLUMNS": "160"}
        with (self.folder / "log.txt").open("a", encoding="utf-8") as log:
            log.write(f"==== start {self.name} ({len(self.kills)} kills so far)\n")
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cotrain", *self.command],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no clean-up, no atexit, no flushing; the process just stops."""
        assert self.process is not None and self.process.poll() is None, f"{self.name} is not running"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.kills.append(self.process.returncode)

    def log_tail(self, limit: int = 3000) -> str:
        return (self.folder / "log.txt").read_text("utf-8", "replace")[-limit:]


class Network:
    """The participants of one task, and a way to wait for the chain without missing a dead process."""

    def __init__(self, participants: list[Participant]) -> None:
        self.participants = participants
        self.deadline = time.monotonic() + DEADLINE_S

    def check_alive(self) -> None:
        for p in self.participants:
            code = p.process.poll() if p.process else None
            if code not in (None, 0):
                tail = p.log_tail()
                raise AssertionError(f"{p.name} exited with status {code}; its log ends:\n{tail}")

    def wait_for(self, what: str, condition: Callable[[], T], poll: float = 0.02) -> T:
        """Poll ``condition`` until it returns something true, and return that."""
        while not (value := condition()):
            self.check_alive()
            if time.monotonic() > self.deadline:
                raise AssertionError(f"timed out waiting until {what}\n{self.logs()}")
            time.sleep(poll)
        return value

    def wait_all_done(self) -> None:
        def finished() -> bool:
            return all(p.process is not None and p.process.poll() == 0 for p in self.participants)

        self.wait_for("every participant finished", finished, 0.5)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail(1500)}" for p in self.participants)

    def stop(self) -> None:
        for p in self.participants:
            if p.process is not None and p.process.poll() is None:
                p.process.kill()
                p.process.wait()


def journal_entry(contributor: Participant, round_: int) -> dict | None:
    """The contributor's journal entry for ``round_`` (its state folder holds the one task's journal)."""
    paths = list((contributor.folder / "state").glob(f"chain-*/*/task-*/*/round-{round_}.json"))
    assert len(paths) <= 1, paths
    return json.loads(paths[0].read_text(encoding="utf-8")) if paths else None


def trainings(participant: Participant, round_: int) -> int:
    """How often the participant trained for ``round_``: its timings file has a line per training."""
    path = participant.folder / "timings.jsonl"
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return sum(e["round"] == round_ and e["kind"] == "training" for e in entries)


def per_round(market: Market, task_id: int, event: str, who: str) -> Counter:
    """How many ``event`` events each (round, ``who``) has on chain."""
    return Counter((e.args["round"], e.args[who]) for e in market.events(event, task_id=task_id))


def test_killed_participants_resume_without_duplicates(tmp_path: Path) -> None:
    settings = DemoSettings(CONTRIBUTORS, VALIDATORS, ROUNDS, "breast_cancer", "embedded", tmp_path)
    # The owner, then the validators, then the contributors, then the arbiter.
    accounts = 1 + VALIDATORS + CONTRIBUTORS + 1
    with local_network(tmp_path / "net", storage="embedded", accounts=accounts) as net:
        keys, addresses = net.anvil.private_keys, net.anvil.addresses
        owner = net.signer(0)
        market, store = net.config.connect(owner)
        validator_addresses = list(addresses[1 : 1 + VALIDATORS])
        spec = demo_spec(settings, addresses[-1], validator_addresses)
        task_id, spec = post_task(market, store, spec)
        train, held_out = builtin_split(spec)
        common = [
            "--network",
            str(tmp_path / "net" / "network.json"),
            "--task",
            str(task_id),
            "--poll",
            "0.5",
        ]

        contributors: list[Participant] = []
        for i, part in enumerate(partition_iid(len(train), CONTRIBUTORS, 0)):
            folder = tmp_path / f"contributor-{i}"
            folder.mkdir()
            shard = train.subset(part)
            np.savez(folder / "data.npz", features=shard.features, labels=shard.labels)
            index = 1 + VALIDATORS + i
            data, state, timings = folder / "data.npz", folder / "state", folder / "timings.jsonl"
            command = ["contribute", *common, "--data", str(data), "--state", str(state)]
            command += ["--timings", str(timings)]
            contributors.append(
                Participant(f"contributor-{i}", addresses[index], keys[index], command, folder)
            )
        validators: list[Participant] = []
        for i in range(VALIDATORS):
            folder = tmp_path / f"validator-{i}"
            folder.mkdir()
            command = ["validate", *common, "--timings", str(folder / "timings.jsonl")]
            command += ["--state", str(folder / "state")]
            name, index = f"validator-{i}", 1 + i
            validators.append(Participant(name, addresses[index], keys[index], command, folder))
        network = Network(contributors + validators)
        c0 = contributors[0]
        v0, v1 = validators

        try:
            for p in network.participants:
                p.start()

            # Round 0: contributor 0 dies as soon as its update is journalled, before its commit is mined
            network.wait_for(
                "contributor 0 journalled round 0", lambda: journal_entry(c0, 0) is not None, 0.01
            )
            c0.kill()
            entry_0 = journal_entry(c0, 0)
            # Usually its commit is not even sent yet; at the latest it is in flight, never revealed.
            assert market.commitment_of(task_id, 0, c0.address) != REVEALED
            c0.start()

            # Validator 0 dies right after its proposal for round 0 is on chain, then comes back.
            def v0_proposed() -> bool:
                return market.proposal_of(task_id, 0, v0.address) != EMPTY

            network.wait_for("validator 0 proposed round 0", v0_proposed)
            v0.kill()
            v0.start()

            # Round 1: the first contributor seen with its commit on chain but not yet revealed dies (the
            # first committers wait longest for the reveal phase), and validator 1 dies with it, before
            # it could propose: the round cannot reach its validation phase without that reveal.
            def committed_unrevealed() -> Participant | None:
                for c in contributors:
                    if market.commitment_of(task_id, 1, c.address) not in (EMPTY, REVEALED):
                        return c
                return None

            c1 = network.wait_for(
                "a contributor committed round 1 and has not revealed", committed_unrevealed
            )
            c1.kill()
            v1.kill()
            entry_1 = journal_entry(c1, 1)
            assert entry_1 is not None, f"{c1.name} committed without a journal entry"
            assert market.proposal_of(task_id, 1, v1.address) == EMPTY
            c1.start()
            v1.start()

            network.wait_all_done()
        finally:
            network.stop()

        # The task completed, every round through finalization.
        task = market.get_task(task_id)
        assert task.status == TaskStatus.COMPLETED, network.logs()
        for round_ in range(ROUNDS):
            assert market.get_round(task_id, round_).status == RoundStatus.FINALIZED, round_
        kills = {p.name: p.kills for p in network.participants if p.kills}
        expected = [c0.name, c1.name, v0.name, v1.name]
        assert sorted(n for n, codes in kills.items() for _ in codes) == sorted(expected), kills
        assert all(code == -signal.SIGKILL for codes in kills.values() for code in codes), kills

        # Every contributor committed and revealed exactly once per round; no validator proposed twice.
        everyone = {(r, c.address) for r in range(ROUNDS) for c in contributors}
        commits = per_round(market, task_id, "UpdateCommitted", "contributor")
        reveals = per_round(market, task_id, "UpdateRevealed", "contributor")
        assert commits == Counter(everyone), commits
        assert reveals == Counter(everyone), reveals
        proposals = per_round(market, task_id, "RoundProposed", "validator")
        assert max(proposals.values()) == 1, proposals
        assert proposals[(0, v0.address)] == 1 and proposals[(1, v1.address)] == 1, proposals

        # The restarted contributors did not train again: same journal entry (cid and salt), one
        # training, and what they revealed is what they had journalled before dying.
        for who, round_, before in ((c0, 0, entry_0), (c1, 1, entry_1)):
            assert journal_entry(who, round_) == before, f"{who.name} rewrote its round-{round_} entry"
            assert trainings(who, round_) == 1, f"{who.name} trained twice for round {round_}"
            revealed = [
                e.args
                for e in market.events("UpdateRevealed", task_id=task_id)
                if e.args["round"] == round_ and e.args["contributor"] == who.address
            ]
            assert [(r["cid"], r["updateDigest"].hex()) for r in revealed] == [
                (before["cid"], before["digest"])
            ]

        # Rewards: each contributor claimed each round once, the whole budget; the market keeps nothing.
        claims = per_round(market, task_id, "RewardClaimed", "account")
        assert claims == Counter(everyone), claims
        paid = sum(e.args["amount"] for e in market.events("RewardClaimed", task_id=task_id))
        assert paid == int(builtin_spec("breast_cancer")["budget_wei"])
        if market.get_task(task_id).escrow:
            market.withdraw_refund(task_id)
        assert market.client.w3.eth.get_balance(market.address) == 0

        # And an auditor, replaying every round from chain events and storage, agrees with the result.
        audit = audit_task(TaskView(market, store, task_id), held_out)
        assert [r.passed for r in audit] == [True] * ROUNDS, audit
        assert all(r.accepted == CONTRIBUTORS and r.rejected == 0 for r in audit), audit
