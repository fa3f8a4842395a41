"""The auditor end to end: a task runs on a local chain (nodes stepped in this process, as a scheduler
would), then `cotrain audit` re-runs every round from chain events and storage alone.

- An honest history passes every round; the JSON and HTML reports say so with the right numbers.
- A quorum that proposes rewards of its own choosing (a self-consistent record paying one contributor
  less than its share) fails that round's audit with exactly the fields that differ, the other round
  still passes, and `cotrain audit --challenge` disputes the round on chain, the findings its evidence.
  A second account challenges too; `cotrain arbitrate` upholds the first challenge (the challenger is
  credited its bond and half the proposer's bond, the task halts), and `cotrain claim` pays the winner its
  credit and the other challenger its bond back.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from chain_clock import ChainClock
from cotrain.chain.market import ChallengeOutcome, Market, Phase, Proposal, RoundStatus, TaskStatus
from cotrain.demo import DemoSettings, demo_spec
from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import evaluate
from cotrain.learning.partition import partition_iid
from cotrain.localnet import LocalNetwork, local_network
from cotrain.protocol.round_record import COMPUTED_FIELDS, RoundRecord, parse_record, record_bytes
from cotrain.protocol.task_model import builtin_split, task_model
from cotrain.protocol.task_spec import TaskSpec, validate_spec
from cotrain.roles.auditor import audit_task
from cotrain.roles.challenges import file_challenge
from cotrain.roles.contributor import ContributorNode
from cotrain.roles.journal import Journal
from cotrain.roles.owner import post_task
from cotrain.roles.task_view import TaskView
from cotrain.roles.validator import ValidatorNode, judge
from cotrain.storage.base import ContentStore
from cotrain.storage.unixfs import compute_cid
from e2e_helpers import CliResult, RunCli, error_line, run_until

CONTRIBUTORS = 3
ROUNDS = 2
ARBITER = -3  # the dev account after the contributors; the last two are spare
ENV = {"COLUMNS": "200", "OMP_NUM_THREADS": "1"}


@dataclass
class Task:
    """A posted task on a running local network, with a node per participant."""

    net: LocalNetwork
    market: Market  # the owner's
    store: ContentStore
    task_id: int
    spec: TaskSpec
    held_out: ArrayDataset
    contributors: list[ContributorNode]
    validators: list[ValidatorNode]

    @property
    def network(self) -> Path:
        return self.net.accounts_file.parent / "network.json"


@contextmanager
def running_task(directory: Path, validators: int, challenge_s: int) -> Iterator[Task]:
    """A breast-cancer task like the demo's (owner 0, validators 1.., contributors next, then the arbiter,
    then two spare dev accounts), posted on a fresh local network, and a node object per participant."""
    accounts = 1 + validators + CONTRIBUTORS + 3
    with local_network(directory / "net", storage="embedded", block_time=1, accounts=accounts) as net:
        owner = net.signer(0)
        market, store = net.config.connect(owner)
        settings = DemoSettings(CONTRIBUTORS, validators, ROUNDS, "breast_cancer")
        addresses = [net.anvil.addresses[1 + i] for i in range(validators)]
        arbiter = net.anvil.addresses[ARBITER]
        data = demo_spec(settings, arbiter, addresses).model_dump(mode="json")
        data["phases"]["challenge"] = challenge_s
        task_id, spec = post_task(market, store, validate_spec(data, source="audit test spec"))
        train, held_out = builtin_split(spec)
        contributors = []
        for i, part in enumerate(partition_iid(len(train), CONTRIBUTORS, 0)):
            c_market, c_store = net.config.connect(net.signer(1 + validators + i))
            journal = Journal(directory / f"contributor-{i}")
            node = ContributorNode(c_market, c_store, task_id, journal, data=train.subset(part))
            contributors.append(node)
        validator_nodes = [
            ValidatorNode(*net.config.connect(net.signer(1 + i)), task_id, held_out)
            for i in range(validators)
        ]
        yield Task(net, market, store, task_id, spec, held_out, contributors, validator_nodes)


def audit(run_cli: RunCli, task: Task, out: Path, *extra: str, env: dict | None = None) -> CliResult:
    """`cotrain audit` of the task, writing out.json and out.html."""
    return run_cli(
        "audit",
        "--task",
        task.task_id,
        "--network",
        task.network,
        "--json",
        out.with_suffix(".json"),
        "--html",
        out.with_suffix(".html"),
        *extra,
        env={**ENV, **(env or {})},
        timeout=120,
    )


def test_honest_history_passes_the_audit(run_cli: RunCli, tmp_path: Path) -> None:
    with running_task(tmp_path, validators=2, challenge_s=DemoSettings().window_s) as task:
        nodes = [*task.contributors, *task.validators]
        clock = ChainClock(task.net.anvil, task.market, task.task_id, [n.address for n in nodes])
        run_until("every participant settled", [n.step for n in nodes], after_pass=clock)
        market, task_id = task.market, task.task_id
        assert market.get_task(task_id).status == TaskStatus.COMPLETED
        statuses = [market.get_round(task_id, r).status for r in range(ROUNDS)]
        assert statuses == [RoundStatus.FINALIZED] * ROUNDS

        view = TaskView(market, task.store, task_id)
        rounds = audit_task(view, task.held_out)
        assert [r.passed for r in rounds] == [True] * ROUNDS, rounds
        assert all(r.problems == [] for r in rounds), rounds

        result = audit(run_cli, task, tmp_path / "out")
        assert result.returncode == 0, result.explain()
        assert "Traceback" not in result.output, result.explain()
        summary = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
        assert summary["task_id"] == task_id
        assert (summary["rounds_passed"], summary["rounds_failed"]) == (ROUNDS, 0), summary
        assert "advisory" in summary["metrics_note"] and "this machine" in summary["metrics_note"]

        round_budget = market.get_task(task_id).round_budget
        claimed: Counter[str] = Counter()
        for event in market.events("RewardClaimed", task_id=task_id):
            claimed[event.args["account"]] += event.args["amount"]
        contributors = sorted(c.address for c in task.contributors)
        assert [r["round"] for r in summary["rounds"]] == list(range(ROUNDS))
        for r in summary["rounds"]:
            record = view.record(r["round"])
            assert (r["status"], r["audit"], r["problems"]) == ("finalized", "PASS", []), r
            assert (r["accepted"], r["rejected"]) == (CONTRIBUTORS, 0), r
            # Accuracy and loss: the accepted model measured on this machine (advisory, not in the record).
            measured = evaluate(task_model(task.spec), view.load_model(record.new_model), task.held_out)
            assert r["accuracy"] == measured.accuracy, (r, measured)
            assert r["loss"] == pytest.approx(measured.loss, rel=1e-5), (r, measured)
            assert r["model_cid"] == record.new_model.cid
            assert r["rewards"] == {a.account: str(a.amount) for a in record.reward_allocations}, r
            assert sorted(r["rewards"]) == contributors, r
            assert sum(int(wei) for wei in r["rewards"].values()) == round_budget, r
            # Per update: verdict, reason, score and amounts, exactly as the record has them.
            assert r["updates"] == [
                {
                    "contributor": u.contributor,
                    "verdict": "accepted",
                    "reason": "ok",
                    "score": u.score,
                    "weight": u.weight,
                    "reward": str(u.reward),
                    "slash": "0",
                }
                for u in record.updates
            ], r
        rewards = {account: int(wei) for account, wei in summary["rewards"].items()}
        assert sorted(rewards) == contributors
        assert sum(rewards.values()) == ROUNDS * round_budget == task.spec.budget_wei
        assert rewards == dict(claimed), "the audit's rewards differ from what was claimed on chain"

        report = (tmp_path / "out.html").read_text(encoding="utf-8")
        assert report.count("<table>") == 2 and report.count("</table>") == 2
        assert "Accuracy per round (advisory, this machine)" in report
        for r in summary["rounds"]:
            row = f"<tr><td>{r['round']}</td><td>finalized</td><td>{CONTRIBUTORS}</td><td>0</td>"
            assert f"{row}<td>{r['accuracy']:.4f}</td><td>PASS</td><td></td></tr>" in report
            for u in r["updates"]:
                assert (
                    f"<tr><td>{r['round']}</td><td>{u['contributor']}</td><td>accepted</td><td>ok</td>"
                    f"<td>{u['score']}</td><td>{u['reward']}</td><td>0</td></tr>"
                ) in report
        assert report.count("<svg ") == 2 and report.count("</svg>") == 2
        assert report.count("<polyline ") == 1, "the accuracy plot"
        assert all(f">{r['accuracy']:.3f}</text>" in report for r in summary["rounds"])
        assert report.count("<rect ") == CONTRIBUTORS, "the rewards plot: a bar per contributor"


def _proposal(record: RoundRecord, record_file: bytes) -> Proposal:
    return Proposal(
        model_digest=record.new_model.digest,
        record_digest=hashlib.sha256(record_file).digest(),
        rewards_root=record.rewards_root,
        slash_root=record.slash_root,
        reward_total=record.reward_total,
        model_cid=record.new_model.cid,
        record_cid=compute_cid(record_file),
    )


def cheat(validator: ValidatorNode, round_: int) -> tuple[Proposal, Proposal]:
    """Propose ``round_``'s honest model with a record of its own that pays the first contributor half
    its share (the rest stays in escrow); return (the honest proposal, the one proposed)."""
    validator.view.refresh()  # the node did not step during this round
    outcome = judge(validator.view, round_, validator.held_out)
    assert len(outcome.record.updates) == CONTRIBUTORS
    data = json.loads(outcome.record_file)
    for name in COMPUTED_FIELDS:
        del data[name]  # derived from the updates
    data["updates"][0]["reward"] = str(int(data["updates"][0]["reward"]) // 2)
    forged = RoundRecord.model_validate(data)
    forged_file = record_bytes(forged)
    assert parse_record(forged_file) == forged, "the forged record must be well formed itself"
    for file in (outcome.model_file, forged_file):
        validator.store.add(file)
    proposed = _proposal(forged, forged_file)
    validator.market.propose(validator.task_id, round_, proposed)
    return _proposal(outcome.record, outcome.record_file), proposed


def mismatch(field: str, proposed: bytes | int, recomputed: bytes | int) -> str:
    """The auditor's problem line for one field."""

    def show(value: bytes | int) -> str:
        return "0x" + value.hex() if isinstance(value, bytes) else str(value)

    return f"{field}: proposed {show(proposed)}, recomputed {show(recomputed)}"


def test_dishonest_quorum_fails_the_audit_and_is_challenged(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheated = 0  # the round the only validator (quorum 1) forges; round 1 it proposes honestly
    # A challenge window far longer than the test: the forged round must still be open to a challenge.
    with running_task(tmp_path, validators=1, challenge_s=120) as task:
        market, task_id = task.market, task.task_id
        (validator,) = task.validators
        proposals: list[tuple[Proposal, Proposal]] = []

        def validate() -> bool:
            current = market.get_task(task_id).current_round
            bonded = market.validator_info(task_id, validator.address).bonded
            if current != cheated or not bonded:
                return validator.step()
            if market.phase(task_id) == Phase.VALIDATE and not proposals:
                proposals.append(cheat(validator, cheated))
            return False

        def completed() -> bool:
            return market.get_task(task_id).status == TaskStatus.COMPLETED

        steps = [c.step for c in task.contributors] + [validate]
        run_until("both rounds were accepted", steps, completed)
        ((honest, proposed),) = proposals
        forged = market.get_round(task_id, cheated)
        assert forged.status == RoundStatus.ACCEPTED and forged.accepted_hash == proposed.proposal_hash()
        assert market.get_round(task_id, 1).status == RoundStatus.ACCEPTED
        # Only the record, its rewards root and its total differ from the honest result.
        assert (proposed.model_digest, proposed.slash_root) == (honest.model_digest, honest.slash_root)
        assert proposed.reward_total < honest.reward_total
        expected = [
            mismatch("record digest", proposed.record_digest, honest.record_digest),
            mismatch("rewards root", proposed.rewards_root, honest.rewards_root),
            mismatch("reward total", proposed.reward_total, honest.reward_total),
        ]

        rounds = audit_task(TaskView(market, task.store, task_id), task.held_out)
        assert [r.passed for r in rounds] == [False, True], rounds
        assert rounds[cheated].problems == expected, rounds[cheated].problems
        assert rounds[1].problems == [], rounds[1]

        # The auditor needs no key to audit; the failed round makes the command exit 1.
        for variable in ("COTRAIN_PRIVATE_KEY", "COTRAIN_KEYSTORE"):
            monkeypatch.delenv(variable, raising=False)
        result = audit(run_cli, task, tmp_path / "audit")
        assert result.returncode == 1, result.explain()
        assert "Traceback" not in result.output, result.explain()
        assert "FAIL" in result.stdout and "PASS" in result.stdout, result.explain()
        summary = json.loads((tmp_path / "audit.json").read_text(encoding="utf-8"))
        assert (summary["rounds_passed"], summary["rounds_failed"]) == (1, 1), summary
        failed, passed = summary["rounds"]
        assert (failed["round"], failed["status"], failed["audit"]) == (cheated, "accepted", "FAIL")
        assert failed["problems"] == expected, failed
        assert (passed["round"], passed["audit"], passed["problems"]) == (1, "PASS", []), passed
        report = (tmp_path / "audit.html").read_text(encoding="utf-8")
        assert "<td>FAIL</td><td>" + "; ".join(expected) + "</td>" in report
        assert not market.events("RoundChallenged", task_id=task_id), "auditing alone challenged"

        # --challenge, with a funded dev account that is no validator, disputes the round in its window.
        challenger = task.net.anvil.addresses[-1]
        assert not market.validator_info(task_id, challenger).listed
        w3 = market.client.w3
        before = w3.eth.get_balance(challenger)
        window_end = forged.accepted_at + task.spec.phases.challenge
        assert w3.eth.get_block("latest")["timestamp"] < window_end, "the window closed too soon"
        key = {"COTRAIN_PRIVATE_KEY": task.net.anvil.private_keys[-1]}
        result = audit(run_cli, task, tmp_path / "challenge", "--challenge", env=key)
        assert result.returncode == 1, result.explain()
        assert "Traceback" not in result.output, result.explain()

        (event,) = market.events("RoundChallenged", task_id=task_id)
        assert (event.args["round"], event.args["challenger"]) == (cheated, challenger), event
        assert f"challenged round {cheated} of task {task_id} with a bond of" in result.stderr, (
            result.explain()
        )
        evidence = json.loads(task.store.get(event.args["evidenceCid"], max_size=1 << 20))
        assert evidence == {"task_id": task_id, "round": cheated, "problems": expected}
        challenged = market.get_round(task_id, cheated)
        assert (challenged.status, challenged.challenges) == (RoundStatus.ACCEPTED, 1)
        assert challenged.outcome == ChallengeOutcome.NONE
        assert json.loads((tmp_path / "challenge.json").read_text(encoding="utf-8")) == summary
        bond = market.get_task(task_id).params.challenge_bond
        assert bond == task.spec.challenge_bond_wei > 0
        assert market.get_task(task_id).challenge_bonds == bond
        receipt = w3.eth.get_transaction_receipt(event.tx_hash)
        gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        assert before - w3.eth.get_balance(challenger) == bond + gas

        # The same account cannot challenge twice: the auditor says so instead of sending.
        as_challenger = market.with_account(task.net.signer(len(task.net.anvil.addresses) - 1))
        view = TaskView(as_challenger, task.store, task_id)
        again = file_challenge(view, cheated, expected)
        assert again.startswith(f"{challenger} already challenged round {cheated} of task {task_id}"), again
        # Another account challenges the same round: challenges do not block each other.
        other = task.net.anvil.addresses[-2]
        market.with_account(task.net.signer(len(task.net.anvil.addresses) - 2)).challenge(
            task_id, cheated, event.args["evidenceCid"]
        )
        assert market.get_round(task_id, cheated).challenges == 2
        assert market.get_task(task_id).challenge_bonds == 2 * bond

        # The arbiter upholds the first challenge: the forger's whole bond is slashed, half of it goes to the
        # challenger with its bond back, the rest burns; both accepted rounds are voided and the task halts.
        arbiter_key = {"COTRAIN_PRIVATE_KEY": task.net.anvil.private_keys[ARBITER]}
        network = ["--network", task.network]
        stranger = run_cli(
            "arbitrate", "--task", task_id, "--round", cheated, "--winner", challenger, *network, env=key
        )
        assert "is not the arbiter of task" in error_line(stranger), stranger.explain()
        validator_bond = market.validator_info(task_id, validator.address).bond
        assert validator_bond == market.get_task(task_id).params.validator_bond
        result = run_cli(
            "arbitrate",
            "--task",
            task_id,
            "--round",
            cheated,
            "--winner",
            challenger,
            *network,
            env=arbiter_key,
        )
        assert result.returncode == 0, result.explain()
        payout = bond + validator_bond // 2
        assert result.stderr.strip() == (
            f"upheld {challenger}'s challenge of round {cheated} of task {task_id}: it is credited {payout} "
            f"wei, the proposers lost {validator_bond} wei of bonds, and the task halted"
        ), result.explain()
        assert market.credits(challenger) == payout, "the challenger's credit did not arrive"
        after = market.get_task(task_id)
        assert after.status == TaskStatus.HALTED
        assert (after.burned, after.challenge_bonds) == (validator_bond - validator_bond // 2, bond)
        assert [market.get_round(task_id, r).status for r in range(ROUNDS)] == [RoundStatus.VOIDED] * ROUNDS
        assert market.get_round(task_id, cheated).outcome == ChallengeOutcome.UPHELD
        assert market.validator_info(task_id, validator.address).bond == 0

        status = run_cli("task", "status", task_id, *network, env=ENV)
        assert status.returncode == 0, status.explain()
        assert f"2, upheld for {challenger}" in status.stdout, status.explain()

        # `cotrain claim` pays the winner its credit, and the other challenger its bond back.
        result = run_cli("claim", "--task", task_id, *network, env={**ENV, **key})
        assert result.returncode == 0, result.explain()
        assert f"withdrew {payout} wei of credits" in result.stderr, result.explain()
        assert market.credits(challenger) == 0
        other_key = {"COTRAIN_PRIVATE_KEY": task.net.anvil.private_keys[-2]}
        result = run_cli("claim", "--task", task_id, *network, env={**ENV, **other_key})
        assert result.returncode == 0, result.explain()
        assert f"took back the challenge bond of round {cheated}: {bond} wei" in result.stderr, (
            result.explain()
        )
        (returned,) = market.events("ChallengeBondReturned", task_id=task_id)
        assert (returned.args["challenger"], returned.args["amount"]) == (other, bond)
        assert market.get_task(task_id).challenge_bonds == 0
