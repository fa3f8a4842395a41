"""A contributor that commits and never reveals loses its whole stake, end to end on a local chain (nodes
stepped in this process, the chain's clock moved by anvil instead of waiting out the reveal phase).

- Round 0: one of three contributors goes silent after committing. Once the reveal phase is over, the
  validator forfeits its stake (a tenth to the validator as a bounty, the rest burned) and logs one line; the
  round is judged on the two updates revealed. The silent contributor, back, says its stake was forfeited and
  joins again with a new stake. `cotrain status` and `cotrain task status` show the forfeit.
- Round 1: it goes silent again, and the validator is kept from forfeiting. In round 2 the contributor finds
  its own unopened commitment blocking its commit, forfeits it itself (the bounty comes back to it), says so,
  joins again and commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cotrain.chain.market import FORFEITED, Market, RoundStatus
from cotrain.demo import DemoSettings, demo_spec
from cotrain.learning.partition import partition_iid
from cotrain.localnet import LocalNetwork, local_network
from cotrain.protocol.task_model import builtin_split
from cotrain.protocol.task_spec import TaskSpec
from cotrain.roles.account_status import account_standing, describe
from cotrain.roles.contributor import ContributorNode
from cotrain.roles.journal import Journal
from cotrain.roles.owner import post_task
from cotrain.roles.validator import ValidatorNode
from e2e_helpers import RunCli, run_until

CONTRIBUTORS = 3
ROUNDS = 3
EMPTY = bytes(32)
ENV = {"COLUMNS": "220", "OMP_NUM_THREADS": "1"}


@dataclass
class Task:
    net: LocalNetwork
    market: Market
    task_id: int
    spec: TaskSpec
    honest: list[ContributorNode]
    silent: ContributorNode
    validator: ValidatorNode

    @property
    def network(self) -> Path:
        return self.net.accounts_file.parent / "network.json"

    def joined(self, node: ContributorNode) -> bool:
        return self.market.contributor_info(self.task_id, node.address).joined

    def committed(self, round_: int) -> bool:
        return self.market.commitment_of(self.task_id, round_, self.silent.address) != EMPTY

    def until_committed(self, round_: int) -> Callable[[], bool]:
        """A step for the silent contributor that acts only until it committed in ``round_``."""

        def step() -> bool:
            if self.committed(round_):
                return True
            self.silent.step()
            return False

        return step

    def reveal_phase_over(self, round_: int) -> None:
        """Move the chain's clock past ``round_``'s reveal deadline (the silent contributor keeps it open)."""
        reveal_end = self.market.get_round(self.task_id, round_).reveal_end
        self.net.anvil.set_next_block_timestamp(max(reveal_end, self.net.anvil.timestamp() + 1))
        self.net.anvil.mine()


@pytest.fixture
def task(tmp_path: Path) -> Iterator[Task]:
    """A breast-cancer task: dev account 0 posts it, 1 validates (quorum 1), 2-4 contribute (4 goes
    silent), 5 arbitrates."""
    with local_network(tmp_path / "net", storage="embedded", block_time=1, accounts=6) as net:
        market, store = net.config.connect(net.signer(0))
        settings = DemoSettings(CONTRIBUTORS, 1, ROUNDS, "breast_cancer")
        spec = demo_spec(settings, net.anvil.addresses[5], [net.anvil.addresses[1]])
        task_id, spec = post_task(market, store, spec)
        train, held_out = builtin_split(spec)
        nodes = [
            ContributorNode(
                *net.config.connect(net.signer(2 + i)),
                task_id,
                Journal(tmp_path / f"contributor-{i}"),
                data=train.subset(part),
            )
            for i, part in enumerate(partition_iid(len(train), CONTRIBUTORS, 0))
        ]
        validator = ValidatorNode(*net.config.connect(net.signer(1)), task_id, held_out)
        yield Task(net, market, task_id, spec, nodes[:-1], nodes[-1], validator)


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_unopened_commitments_are_forfeited(
    task: Task, run_cli: RunCli, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="cotrain")
    market, task_id, silent, validator = task.market, task.task_id, task.silent, task.validator
    stake = task.spec.contributors.stake_wei
    bounty = stake // market.forfeit_bounty_divisor()
    honest = [node.step for node in task.honest]

    # Round 0: everyone commits, the silent contributor reveals nothing; the reveal phase stays open.
    def revealed_but_one() -> bool:
        return task.committed(0) and market.get_round(task_id, 0).reveals == CONTRIBUTORS - 1

    run_until("all but one revealed round 0", [*honest, task.until_committed(0)], revealed_but_one)
    run_until("the validator bonded", [validator.step], lambda: market.get_task(task_id).bonds > 0)
    assert not market.events("CommitmentForfeited", task_id=task_id), "forfeited within the reveal phase"
    task.reveal_phase_over(0)
    before = market.get_task(task_id)

    run_until(
        "the validator forfeited the silent stake and round 0 was accepted",
        [validator.step],
        lambda: market.get_round(task_id, 0).status == RoundStatus.ACCEPTED,
    )

    (event,) = market.events("CommitmentForfeited", task_id=task_id)
    assert dict(event.args) == {
        "taskId": task_id,
        "round": 0,
        "contributor": silent.address,
        "amount": stake,
        "caller": validator.address,
        "bounty": bounty,
    }
    lines = logged(caplog, "committed and never revealed: forfeited its stake")
    assert lines == [
        f"round 0: {silent.address} committed and never revealed: forfeited its stake of {stake} wei, "
        f"a bounty of {bounty} wei to this validator"
    ], lines
    assert market.credits(validator.address) == bounty
    assert market.commitment_of(task_id, 0, silent.address) == FORFEITED
    info = market.contributor_info(task_id, silent.address)
    assert (info.joined, info.stake) == (False, 0)
    after = market.get_task(task_id)
    assert after.burned == before.burned + stake - bounty
    assert after.stakes == before.stakes - stake
    assert market.get_round(task_id, 0).reveals == CONTRIBUTORS - 1, "judged on the updates revealed"

    # What the silent account sees: a forfeited round in `status`, a forfeit in `task status`.
    (standing,) = account_standing(market, validator.store, silent.address, [task_id])
    assert (standing.rounds[0].verdict, standing.forfeited_wei) == ("forfeited", stake)
    assert describe(standing.rounds[0], standing.unit) == (
        f"round 0: committed but never revealed: the whole stake of {stake} wei was forfeited"
    )
    status = run_cli("task", "status", task_id, "--network", task.network, env=ENV)
    assert status.returncode == 0, status.explain()
    row = next(line for line in status.stdout.splitlines() if line.strip("│┃ ").startswith("0 "))
    assert f"1 ({stake})" in row, status.explain()
    assert f"burned in task {task_id}: {stake - bounty} wei" in status.stdout, status.explain()

    # Round 1: back, the silent contributor says what happened and joins again (alone first, so the round
    # waits for its commit); then it goes silent again, and the validator is kept from forfeiting this time.
    caplog.clear()
    run_until("the silent contributor joined again", [silent.step], lambda: task.joined(silent))
    joins = [
        e
        for e in market.events("ContributorJoined", task_id=task_id)
        if e.args["contributor"] == silent.address
    ]
    assert len(joins) == 2
    (noted,) = logged(caplog, "so its whole stake of")
    assert noted == (
        f"round 0: this account committed and never revealed, so its whole stake of {stake} wei was "
        f"forfeited ({validator.address} was credited a bounty of {bounty} wei)"
    ), noted
    assert logged(caplog, f"joining task {task_id} again with a stake of {stake} wei")
    validator.forfeits_done.add(1)
    run_until(
        "all but one revealed round 1",
        [*honest, task.until_committed(1), validator.step],
        lambda: task.committed(1) and market.get_round(task_id, 1).reveals == CONTRIBUTORS - 1,
    )
    task.reveal_phase_over(1)
    run_until(
        "round 1 was accepted",
        [validator.step],
        lambda: market.get_round(task_id, 1).status == RoundStatus.ACCEPTED,
    )
    assert len(market.events("CommitmentForfeited", task_id=task_id)) == 1

    # Round 2: its unopened round-1 commitment blocks its commit; it forfeits it itself and joins again.
    caplog.clear()
    run_until(
        "the silent contributor forfeited its own stake and joined again",
        [silent.step],
        lambda: len(market.events("CommitmentForfeited", task_id=task_id)) == 2 and task.joined(silent),
    )
    own = [e for e in market.events("CommitmentForfeited", task_id=task_id) if e.args["round"] == 1]
    assert [(e.args["contributor"], e.args["caller"], e.args["bounty"]) for e in own] == [
        (silent.address, silent.address, bounty)
    ]
    assert market.credits(silent.address) == bounty
    (said,) = logged(caplog, "cannot commit:")
    assert said.startswith(
        "round 2: cannot commit: this account's commitment of round 1 was never revealed and its reveal "
        "phase is over, so its whole stake is forfeit; forfeiting it now"
    ), said
    (noted,) = logged(caplog, "was credited a bounty")
    assert noted.startswith("round 1: this account committed and never revealed") and "(this account" in noted
    run_until(
        "it committed round 2", [*honest, task.until_committed(2), validator.step], lambda: task.committed(2)
    )
