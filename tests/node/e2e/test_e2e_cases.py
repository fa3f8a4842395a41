"""Each seed case end to end on a real local network, in-process: the owner posts the case's spec pinning its
held-out file, two contributors train on their own raw CSV files read through the posted spec's contract, a
validator judges, everyone settles and claims, and an audit re-runs every round and reports the case's
metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chain_clock import ChainClock
from cotrain.cases import case_files
from cotrain.chain.market import RoundStatus, TaskStatus
from cotrain.demo import DemoSettings, demo_spec
from cotrain.learning.data import ArrayDataset
from cotrain.learning.dataset_digest import dataset_digest
from cotrain.learning.local_data import load_local_data
from cotrain.localnet import local_network
from cotrain.protocol.task_spec import TaskSpec, with_held_out_digest
from cotrain.roles.auditor import audit_task
from cotrain.roles.contributor import ContributorNode
from cotrain.roles.journal import Journal
from cotrain.roles.owner import post_task
from cotrain.roles.task_view import TaskView
from cotrain.roles.validator import ValidatorNode
from e2e_helpers import RunCli, error_line, logs_of, run_until

ROUNDS = 2


def _read(spec: TaskSpec, path: Path) -> ArrayDataset:
    """A raw file as a participant reads it: through the posted spec's column contract."""
    shape, classes = tuple(spec.data.input_shape), spec.data.num_classes
    return load_local_data(path, input_shape=shape, num_classes=classes, contract=spec.data.columns)


def _metrics_in_range(case: str, accuracy: float, metrics: dict[str, float]) -> None:
    if case == "hospital":
        assert set(metrics) == {"auroc"}
        assert accuracy > 0.9 and 0.95 < metrics["auroc"] <= 1.0
    elif case == "bank":
        assert set(metrics) == {"auprc", "recall_at_fpr:0.01"}
        # Fraud is about 1% of the held-out set: a ranking by chance scores about 0.01 in both.
        assert 0.2 < metrics["auprc"] <= 1.0 and 0.2 < metrics["recall_at_fpr:0.01"] <= 1.0
    else:
        assert set(metrics) == {"perplexity", "top_k_accuracy:3"}
        # A uniform guess over the 1001 words has perplexity 1001 and top-3 accuracy 0.003.
        assert 1.0 < metrics["perplexity"] < 600
        assert accuracy < metrics["top_k_accuracy:3"] and metrics["top_k_accuracy:3"] > 0.1


@pytest.mark.parametrize("case", ["hospital", "bank", "phone"])
def test_a_case_runs_end_to_end_from_raw_files(tmp_path: Path, case: str) -> None:
    with local_network(tmp_path / "net", storage="embedded", block_time=1, accounts=5) as net:
        # Prepare: account 0 the owner, 1 the validator, 2-3 the contributors, 4 the arbiter.
        owner, validator, arbiter = net.signer(0), net.signer(1), net.signer(4)
        market, store = net.config.connect(owner)
        settings = DemoSettings(contributors=2, validators=1, rounds=ROUNDS, case=case)
        spec = demo_spec(settings, arbiter.address, [validator.address])
        files = case_files(case, tmp_path / "data", 2)
        held_out = _read(spec, files.held_out)
        task_id, _ = post_task(market, store, with_held_out_digest(spec, dataset_digest(held_out)))
        view = TaskView(market, store, task_id)
        contributors = [
            ContributorNode(
                *net.config.connect(net.signer(2 + i)),
                task_id,
                Journal(tmp_path / f"c{i}"),
                data=_read(view.spec, path),
            )
            for i, path in enumerate(files.shards)
        ]
        judge = ValidatorNode(*net.config.connect(validator), task_id, _read(view.spec, files.held_out))

        # Execute
        nodes = [*contributors, judge]
        clock = ChainClock(net.anvil, market, task_id, [n.address for n in nodes])
        run_until("every participant settled", [n.step for n in nodes], deadline_s=300, after_pass=clock)

        # Assert
        assert market.get_task(task_id).status == TaskStatus.COMPLETED
        statuses = [market.get_round(task_id, r).status for r in range(ROUNDS)]
        assert statuses == [RoundStatus.FINALIZED] * ROUNDS
        accounts = sorted(c.address.lower() for c in contributors)
        for round_ in range(ROUNDS):
            record = view.accepted_record(round_)
            assert sorted(u.contributor for u in record.updates) == accounts
            assert all(u.verdict == "accepted" for u in record.updates), record.updates
        audit = audit_task(view, held_out)
        assert [(r.passed, r.problems) for r in audit] == [(True, [])] * ROUNDS
        for r in audit:
            assert r.accuracy is not None
            _metrics_in_range(case, r.accuracy, r.metrics)
        owed: dict[str, int] = {}
        for r in audit:
            for account, amount in r.rewards.items():
                owed[account.lower()] = owed.get(account.lower(), 0) + amount
        claimed: dict[str, int] = {}
        for event in market.events(task_id=task_id):
            if event.name == "RewardClaimed":
                who = event.args["account"].lower()
                claimed[who] = claimed.get(who, 0) + event.args["amount"]
        assert sorted(claimed) == accounts and all(amount > 0 for amount in claimed.values())
        assert claimed == owed
        assert sum(claimed.values()) == spec.budget_wei  # every round's budget, nothing left to refund


def test_demo_runs_a_case_and_shows_its_metrics(run_cli: RunCli, tmp_path: Path) -> None:
    directory, summary_path = tmp_path / "demo", tmp_path / "summary.json"
    result = run_cli(
        "demo",
        "--case",
        "hospital",
        "--contributors",
        2,
        "--validators",
        1,
        "--rounds",
        1,
        "--dir",
        directory,
        "--summary",
        summary_path,
        timeout=300,
    )

    assert result.returncode == 0, result.explain() + "\n" + logs_of(directory)
    assert "audit: 1 rounds passed, 0 failed" in result.stdout, result.explain()
    assert "held-out metrics*" in result.stdout and "auroc" in result.stdout, result.explain()
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert summary["dataset"] == "hospital"
    assert [p["reasons"] for p in summary["contributor_results"]] == [["ok"], ["ok"]]
    assert 0.95 < summary["rounds"][0]["metrics"]["auroc"] <= 1.0
    # Each contributor got its raw file, with the columns a hospital keeps.
    header = (directory / "contributor-0" / "data.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("mean radius,") and header.endswith(",diagnosis")


def test_demo_refuses_more_contributors_than_a_case_has_owners(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("demo", "--case", "phone", "--contributors", 5, "--dir", tmp_path / "demo")

    line = error_line(result)
    assert (
        "this case has 4 data owners (mail, web, async, testing); ask for 1 to 4 contributors, not 5" in line
    )
    assert not (tmp_path / "demo").exists()
