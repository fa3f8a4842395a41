"""Honest participants never lose money or work through the node software: the scenarios a new user met,
through the real `cotrain` command on a real anvil.

- Two tasks in a row for the same contributors (breast_cancer, then digits), then a restarted local network
  whose first task again gets id 1 on the same market address: each update is trained for its own task, every
  update is accepted and every reward is claimed in full. (Before, the contributors' state carried no task:
  task 2 re-sent task 1's update, rejected as shape_mismatch and slashed, and after the restart the node
  believed its rewards claimed.)
- Two processes for one account: the second refuses to start with one line, and a crash releases the lock.
- Cases that retried forever end with one line and status 1: a key that is not the task's validator, a task
  that does not exist or is over, an incomplete network config, a journal that does not match the commitment.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cotrain.chain.market import Market, Phase, RoundStatus, TaskStatus
from cotrain.demo import DemoSettings, demo_spec
from cotrain.errors import NodeStateError
from cotrain.learning.partition import partition_iid
from cotrain.localnet import LocalNetwork, local_network
from cotrain.protocol.round_outcome import RoundOutcome
from cotrain.protocol.round_record import COMPUTED_FIELDS, RoundRecord, record_bytes
from cotrain.protocol.task_model import builtin_split
from cotrain.protocol.task_spec import TaskSpec
from cotrain.roles.contributor import ContributorNode
from cotrain.roles.journal import Journal
from cotrain.roles.owner import post_task
from cotrain.roles.task_view import TaskView
from cotrain.roles.validator import ValidatorNode
from e2e_helpers import RunCli, cotrain_command, error_line

CONTRIBUTORS = 2
# Dev accounts: 0 the owner, 1 the validator, 2 and 3 the contributors, 4 and 5 outsiders, 6 the arbiter.
VALIDATOR = 1
OUTSIDER = 4
SECOND_OUTSIDER = 5
ARBITER = 6
DEADLINE_S = 180.0
ENV = {"COLUMNS": "200", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def post(net: LocalNetwork, dataset: str) -> tuple[int, TaskSpec]:
    """Post a one-round demo task for the 2 contributors and validator 1 (quorum 1)."""
    market, store = net.config.connect(net.signer(0))
    settings = DemoSettings(CONTRIBUTORS, 1, 1, dataset)
    spec = demo_spec(settings, net.anvil.addresses[ARBITER], [net.anvil.addresses[VALIDATOR]])
    return post_task(market, store, spec)


def write_shards(spec: TaskSpec, folder: Path, tag: str) -> list[Path]:
    """Each contributor's private shard of the task's built-in training set, as an .npz file."""
    train, _ = builtin_split(spec)
    paths = []
    for i, part in enumerate(partition_iid(len(train), CONTRIBUTORS, 0)):
        shard = train.subset(part)
        paths.append(folder / f"{tag}-{i}.npz")
        np.savez(paths[-1], features=shard.features, labels=shard.labels)
    return paths


def spawn(args: list[str | Path], key: str, cwd: Path, log: Path) -> subprocess.Popen:
    """`cotrain ARGS` as the account of ``key``, in its own session, output appended to ``log``."""
    with log.open("a", encoding="utf-8") as out:
        return subprocess.Popen(
            [*cotrain_command(), *map(str, args)],
            cwd=cwd,
            env={**os.environ, **ENV, "COTRAIN_PRIVATE_KEY": key},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_task(net: LocalNetwork, dataset: str, user: Path) -> int:
    """Post a task, run `cotrain contribute` for both contributors from the same folder ``user`` (so they
    use the default state folder, as a user would), step the validator here until everyone is done."""
    task_id, spec = post(net, dataset)
    shards = write_shards(spec, user, f"{dataset}-{task_id}")
    network = net.accounts_file.parent / "network.json"
    processes = [
        spawn(
            ["contribute", "--task", task_id, "--data", shard, "--network", network, "--poll", "0.2"],
            net.anvil.private_keys[2 + i],
            user,
            user / f"contributor-{i}.log",
        )
        for i, shard in enumerate(shards)
    ]
    _, held_out = builtin_split(spec)
    validator = ValidatorNode(*net.config.connect(net.signer(VALIDATOR)), task_id, held_out)
    deadline = time.monotonic() + DEADLINE_S
    validator_done = False
    try:
        while not validator_done or any(p.poll() is None for p in processes):
            logs = "\n".join((user / f"contributor-{i}.log").read_text("utf-8")[-3000:] for i in range(2))
            assert time.monotonic() < deadline, f"task {task_id} did not finish\n{logs}"
            assert all(p.poll() in (None, 0) for p in processes), f"a contributor failed\n{logs}"
            validator_done = validator_done or validator.step()
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return task_id


def claimed_by(market: Market, task_id: int) -> dict[str, int]:
    """Wei each account claimed from the task, from the RewardClaimed events."""
    paid: dict[str, int] = {}
    for event in market.events("RewardClaimed", task_id=task_id):
        account = event.args["account"].lower()
        paid[account] = paid.get(account, 0) + event.args["amount"]
    return paid


def assert_paid_in_full(net: LocalNetwork, task_id: int, user: Path) -> None:
    """Every contributor's update accepted, its reward claimed to the wei, its stake taken back; and each
    contributor's log said so as it happened."""
    market, store = net.config.connect(None)
    record = TaskView(market, store, task_id).record(0)
    assert record is not None, f"task {task_id}: round 0 has no accepted record"
    verdicts = {u.contributor: (u.verdict, u.reason.value) for u in record.updates}
    contributors = [net.anvil.addresses[2 + i].lower() for i in range(CONTRIBUTORS)]
    assert verdicts == {c: ("accepted", "ok") for c in contributors}, verdicts
    owed = {a.account.lower(): a.amount for a in record.reward_allocations}
    assert set(owed) == set(contributors) and all(owed.values()), owed
    assert claimed_by(market, task_id) == owed
    assert market.get_round(task_id, 0).reward_claimed == market.get_round(task_id, 0).reward_total
    for i in range(CONTRIBUTORS):
        info = market.contributor_info(task_id, net.anvil.addresses[2 + i])
        assert (info.joined, info.stake) == (False, 0), "the stake was not taken back"
        log = (user / f"contributor-{i}.log").read_text(encoding="utf-8").split("contributing")[-1]
        reward = owed[net.anvil.addresses[2 + i].lower()]
        assert re.search(f"round 0: accepted, score [0-9.]+, reward {reward} wei", log), log
        assert (
            f"task {task_id} is over: 1 of 1 rounds accepted, {reward} wei rewarded ({reward} claimed)"
            in (" ".join(log.split()))
        ), log


def test_two_tasks_in_a_row_and_a_restarted_network_pay_every_contributor_in_full(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    with local_network(tmp_path / "net", storage="embedded", block_time=0.5, accounts=7) as net:
        first = run_task(net, "breast_cancer", user)
        assert_paid_in_full(net, first, user)
        second = run_task(net, "digits", user)  # another model: the first task's update would not fit
        assert_paid_in_full(net, second, user)
        market_address = net.config.market
    with local_network(tmp_path / "net", storage="embedded", block_time=0.5, accounts=7) as net:
        assert net.config.market == market_address, (
            "a restarted chain redeploys the market at its old address"
        )
        again = run_task(net, "breast_cancer", user)
        assert again == first, "the restarted market counts tasks from 1 again"
        assert_paid_in_full(net, again, user)
    # One state folder per (chain, market, task with its creation block, account): 3 tasks x 2 contributors.
    folders = sorted((user / ".cotrain" / "state").glob("chain-*/*/task-*/*"))
    assert len(folders) == 3 * CONTRIBUTORS, folders


# ---------------------------------------------------------------- one account, one process


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    """A running chain with a market (embedded store); tests post their own tasks."""
    with local_network(tmp_path_factory.mktemp("live"), storage="embedded", accounts=7) as net:
        yield net


def wait_for(what: str, condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)
    return value


def test_a_second_process_for_the_same_account_refuses_to_start(
    run_cli: RunCli, live: LocalNetwork, tmp_path: Path
) -> None:
    task_id, spec = post(live, "breast_cancer")
    shard = write_shards(spec, tmp_path, "shard")[0]
    network = live.accounts_file.parent / "network.json"
    key = live.anvil.private_keys[2]
    args = [
        "contribute",
        "--task",
        task_id,
        "--data",
        shard,
        "--network",
        network,
        "--state",
        tmp_path / "state",
    ]
    first = spawn(args, key, tmp_path, tmp_path / "first.log")
    try:
        # It joins, then waits for the second contributor, holding its state folder's lock.
        lock = wait_for(
            "the first process holds the lock", lambda: next((tmp_path / "state").rglob("lock"), None)
        )
        wait_for("the lock names its pid", lambda: lock.read_text().strip() == str(first.pid))
        log = tmp_path / "first.log"
        wait_for(
            "it says what it waits for",
            lambda: "waiting for the join phase to end in about" in log.read_text(),
        )

        second = run_cli(*args, env={**ENV, "COTRAIN_PRIVATE_KEY": key}, timeout=60)
        line = error_line(second)
        assert f"another cotrain process (pid {first.pid}) already acts for" in line, line
        assert f"on task {task_id}" in line, line

        claim = run_cli(
            "claim",
            "--task",
            task_id,
            "--network",
            network,
            "--state",
            tmp_path / "state",
            env={**ENV, "COTRAIN_PRIVATE_KEY": key},
            timeout=60,
        )
        assert f"(pid {first.pid}) already acts for" in error_line(claim)
        assert first.poll() is None, (tmp_path / "first.log").read_text()
    finally:
        first.kill()
        first.wait()
    # A crash releases the lock: the next process starts and does its step.
    after = run_cli(*args, "--once", env={**ENV, "COTRAIN_PRIVATE_KEY": key}, timeout=60)
    assert after.returncode == 0, after.explain()
    assert lock.read_text().strip() != str(first.pid)


# ---------------------------------------------------------------- errors that used to retry forever


def test_a_key_that_is_not_the_tasks_validator_ends_with_one_line(
    run_cli: RunCli, live: LocalNetwork
) -> None:
    task_id, _ = post(live, "breast_cancer")
    network = live.accounts_file.parent / "network.json"
    result = run_cli(
        "validate",
        "--task",
        task_id,
        "--network",
        network,
        env={**ENV, "COTRAIN_PRIVATE_KEY": live.anvil.private_keys[OUTSIDER]},
        timeout=60,
    )
    line = error_line(result)
    assert f"{live.anvil.addresses[OUTSIDER]} is not a validator of task {task_id}" in line, line
    assert live.anvil.addresses[VALIDATOR] in line, line


@pytest.mark.parametrize(
    ("command", "task"), [("contribute", "-1"), ("validate", "0"), ("claim", "99"), ("audit", "-1")]
)
def test_a_task_the_market_does_not_have_ends_with_one_line(
    run_cli: RunCli, live: LocalNetwork, tmp_path: Path, command: str, task: str
) -> None:
    network = live.accounts_file.parent / "network.json"
    extra = ["--data", tmp_path / "unused.npz"] if command == "contribute" else []
    result = run_cli(
        command,
        "--task",
        task,
        "--network",
        network,
        *extra,
        env={**ENV, "COTRAIN_PRIVATE_KEY": live.anvil.private_keys[2]},
        timeout=60,
    )
    count = live.config.connect(None)[0].task_count()
    line = error_line(result)
    assert f"there is no task {task} on market {live.config.market}" in line, line
    assert f"its tasks are 1 to {count}" in line or "no task has been posted" in line, line


def test_contributing_to_a_task_that_is_over_ends_with_one_line(
    run_cli: RunCli, live: LocalNetwork, tmp_path: Path
) -> None:
    task_id, spec = post(live, "breast_cancer")
    owner, _ = live.config.connect(live.signer(0))
    owner.cancel_task(task_id)
    shard = write_shards(spec, tmp_path, "shard")[0]
    result = run_cli(
        "contribute",
        "--task",
        task_id,
        "--data",
        shard,
        "--network",
        live.accounts_file.parent / "network.json",
        env={**ENV, "COTRAIN_PRIVATE_KEY": live.anvil.private_keys[2]},
        timeout=60,
    )
    line = error_line(result)
    assert f"task {task_id} is cancelled and {live.anvil.addresses[2]} holds no stake in it" in line, line


def test_an_incomplete_network_config_ends_with_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "network.json"
    config.write_text(json.dumps({"rpc_url": "http://127.0.0.1:1", "deploy_block": "7"}), encoding="utf-8")
    line = error_line(run_cli("task", "status", "1", "--network", config, timeout=60))
    assert f"{config} is not a valid network config" in line, line
    assert "missing market; missing storage; deploy_block must be an integer" in line, line


def test_a_journal_that_does_not_match_the_commitment_stops_the_node(
    live: LocalNetwork, tmp_path: Path
) -> None:
    task_id, spec = post(live, "breast_cancer")
    train, _ = builtin_split(spec)
    market, store = live.config.connect(live.signer(2))
    journal = Journal(tmp_path / "journal")
    node = ContributorNode(market, store, task_id, journal, data=train.subset(range(64)))
    node.step()  # joins
    live.anvil.increase_time(spec.phases.join)
    live.anvil.mine()
    assert market.phase(task_id) == Phase.COMMIT
    node.step()  # trains, journals and commits
    commitment = market.commitment_of(task_id, 0, market.client.address)
    assert commitment != bytes(32)
    # Another process for this account (or a restored backup) rewrote the salt after the commit.
    entry = journal.get("round-0")
    assert entry is not None
    journal.put("round-0", {**entry, "salt": "00" * 32})
    assert market.phase(task_id) == Phase.REVEAL  # the only contributor committed: reveals open at once

    with pytest.raises(NodeStateError) as stopped:
        node.step()

    message = str(stopped.value)
    assert "\n" not in message
    assert "round 0: the update in this node's journal" in message
    assert "does not match" in message and market.client.address in message
    assert market.commitment_of(task_id, 0, market.client.address) == commitment, "nothing was revealed"
    assert market.get_round(task_id, 0).reveals == 0
    assert market.get_task(task_id).status == TaskStatus.ACTIVE
    assert market.get_round(task_id, 0).status == RoundStatus.OPEN


# ---------------------------------------------------------------- validators that disagree


class MiscountingValidator(ValidatorNode):
    """A faulty validator (fault injection): it judges like the others, then pays the first contributor in
    address order half its reward (the rest stays unpaid), in a record re-encoded to be well formed, so
    its proposal differs from the honest ones in that reward and the rewards root and total only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.miscounted: set[int] = set()

    def _outcome(self, round_: int, *, fetch_deadline: float | None = None) -> RoundOutcome:
        outcome = super()._outcome(round_, fetch_deadline=fetch_deadline)
        if round_ not in self.miscounted:
            data = json.loads(outcome.record_file)
            for name in COMPUTED_FIELDS:
                del data[name]  # derived from the updates
            data["updates"][0]["reward"] = str(int(data["updates"][0]["reward"]) // 2)
            record = RoundRecord.model_validate(data)
            outcome = dataclasses.replace(outcome, record=record, record_file=record_bytes(record))
            self.outcomes[round_] = outcome
            self.miscounted.add(round_)
        return outcome


def judged_task(
    live: LocalNetwork, tmp_path: Path, faulty: dict[int, bool]
) -> tuple[Market, int, TaskSpec, list[ContributorNode], list[ValidatorNode]]:
    """A one-round task whose validators (dev account -> whether it miscounts rewards) judge it, and its
    participants, stepped until every validator proposed."""
    market, store = live.config.connect(live.signer(0))
    validators = [live.anvil.addresses[index] for index in faulty]
    settings = DemoSettings(CONTRIBUTORS, len(validators), 1, "breast_cancer")
    spec = demo_spec(settings, live.anvil.addresses[ARBITER], validators)
    task_id, spec = post_task(market, store, spec)
    train, held_out = builtin_split(spec)
    nodes = [
        ContributorNode(
            *live.config.connect(live.signer(2 + i)), task_id, Journal(tmp_path / str(i)), data=shard
        )
        for i, shard in enumerate(train.subset(p) for p in partition_iid(len(train), CONTRIBUTORS, 0))
    ]
    judges = [
        (MiscountingValidator if miscounts else ValidatorNode)(
            *live.config.connect(live.signer(index)), task_id, held_out
        )
        for index, miscounts in faulty.items()
    ]
    deadline = time.monotonic() + DEADLINE_S
    while any(market.proposal_of(task_id, 0, v) == bytes(32) for v in validators):
        assert time.monotonic() < deadline, "the validators never all proposed"
        for node in [*nodes, *judges]:
            node.step()
        time.sleep(0.2)
    return market, task_id, spec, nodes, judges


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_validators_that_disagree_say_on_which_fields(
    run_cli: RunCli, live: LocalNetwork, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Two validators, quorum 2, one of them faulty: their records differ in one reward and what follows.
    caplog.set_level("INFO", logger="cotrain")
    market, task_id, spec, _, judges = judged_task(live, tmp_path, {VALIDATOR: False, OUTSIDER: True})
    live.anvil.increase_time(spec.phases.validation)  # no quorum: the round expires
    live.anvil.mine()
    deadline = time.monotonic() + DEADLINE_S
    while market.get_round(task_id, 0).status != RoundStatus.FAILED or len(judges[0].settled) < 1:
        assert time.monotonic() < deadline, "the round never failed"
        for node in judges:
            node.step()

    failed = logged(caplog, "failed: validators proposed")
    assert failed and "2 different results" in failed[0], failed
    fields = logged(caplog, "fields where")
    assert len(fields) == 2, fields  # each validator names the other's differences
    assert all("updates[0].reward (" in line and "here, " in line for line in fields), fields
    assert all("rewards_root (" in line and "reward_total (" in line for line in fields), fields
    assert all("verdict" not in line and "new_model" not in line for line in fields), "only rewards differ"

    network = live.accounts_file.parent / "network.json"
    result = run_cli("task", "status", task_id, "--network", network, env=ENV)
    assert result.returncode == 0, result.explain()
    assert "failed (validators disagreed)" in result.stdout, result.explain()
    assert "0 of 1 rounds accepted" in result.stdout, result.explain()


def test_a_validator_outvoted_by_the_quorum_says_on_which_fields(
    live: LocalNetwork, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Three validators, quorum 2: two judge honestly, one miscounts a reward.
    caplog.set_level("INFO", logger="cotrain")
    faulty = {VALIDATOR: False, SECOND_OUTSIDER: False, OUTSIDER: True}
    market, task_id, _, _, judges = judged_task(live, tmp_path, faulty)
    assert market.get_round(task_id, 0).status == RoundStatus.ACCEPTED
    for node in judges:
        node.step()

    lost = logged(caplog, "the quorum accepted another result")
    assert len(lost) == 1, lost  # only the outvoted validator
    assert "updates[0].reward (" in lost[0] and "rewards_root (" in lost[0], lost
    assert "verdict" not in lost[0] and "new_model" not in lost[0], lost
