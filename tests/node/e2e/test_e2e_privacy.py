"""Sealed tasks with DP-SGD on a real local network. In-process nodes: updates are stored sealed, each record
carries every contributor's declared epsilon, a contributor refuses the round that would pass the task's
budget, the arbiter's key audits everything and a keyless auditor runs the public checks. Then `cotrain demo
--privacy both`, one process per participant, and the command-line pieces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chain_clock import ChainClock
from cotrain.chain.market import RoundStatus, TaskStatus
from cotrain.demo import DemoSettings, demo_spec, parse_privacy
from cotrain.errors import ConfigError
from cotrain.learning.tensor_files import UpdateRejected, decode_arrays
from cotrain.localnet import local_network
from cotrain.privacy.dp import epsilon
from cotrain.privacy.sealed import MAGIC, generate_reader_key, load_reader_key, reader_public_hex
from cotrain.protocol.epsilon import declare
from cotrain.protocol.task_model import builtin_split, round_mechanism
from cotrain.protocol.task_spec import validate_spec
from cotrain.roles.account_status import round_result
from cotrain.roles.auditor import audit_task
from cotrain.roles.contributor import LEDGER_KEY, ContributorNode
from cotrain.roles.journal import Journal
from cotrain.roles.owner import post_task
from cotrain.roles.task_view import TaskView
from cotrain.roles.validator import ValidatorNode
from e2e_helpers import RunCli, error_line, logs_of, run_until
from opacus.accountants import RDPAccountant

SHARDS = (192, 192, 30)  # the last contributor's few examples spend its budget fastest
MAX_EPSILON = 15.0
NOISE = 1.0
DELTA = 1e-5
ROUNDS = 2


def _opacus_epsilon(samples: int, batch_size: int, epochs: int, rounds: int) -> float:
    """Epsilon straight from Opacus's accountant, stepped as DP-SGD steps: the reference for the ledger."""
    batches = -(-samples // batch_size)
    accountant = RDPAccountant()
    for _ in range(rounds * epochs * batches):
        accountant.step(noise_multiplier=NOISE, sample_rate=1 / batches)
    return float(accountant.get_epsilon(DELTA))


def test_a_sealed_dp_task_runs_refuses_past_the_budget_and_audits(tmp_path: Path) -> None:
    with local_network(tmp_path / "net", storage="embedded", block_time=1, accounts=6) as net:
        owner, validator, arbiter = net.signer(0), net.signer(1), net.signer(5)
        market, store = net.config.connect(owner)
        keys = {validator.address: generate_reader_key(), arbiter.address: generate_reader_key()}
        settings = DemoSettings(len(SHARDS), 1, ROUNDS, "breast_cancer")
        data = demo_spec(settings, arbiter.address, [validator.address]).model_dump(mode="json")
        data["phases"]["commit"] = 20  # round 1 waits out its commit phase for the one who stays out
        data["privacy"] = {
            "readers": [{"account": a, "key": reader_public_hex(k)} for a, k in keys.items()],
            "dp": {
                "mechanism": "sample",
                "noise_multiplier": NOISE,
                "clip_norm": 1.0,
                "delta": DELTA,
                "max_epsilon": MAX_EPSILON,
            },
        }
        task_id, spec = post_task(market, store, validate_spec(data))
        train, held_out = builtin_split(spec)
        contributors, start = [], 0
        for i, size in enumerate(SHARDS):
            c_market, c_store = net.config.connect(net.signer(2 + i))
            shard = train.subset(list(range(start, start + size)))
            start += size
            contributors.append(
                ContributorNode(c_market, c_store, task_id, Journal(tmp_path / f"c{i}"), data=shard)
            )
        with pytest.raises(ConfigError, match="pass --reader-key"):
            ValidatorNode(*net.config.connect(validator), task_id, held_out)
        validator_node = ValidatorNode(
            *net.config.connect(validator), task_id, held_out, reader_key=keys[validator.address]
        )

        nodes = [*contributors, validator_node]
        clock = ChainClock(net.anvil, market, task_id, [n.address for n in nodes])
        run_until("every participant settled", [n.step for n in nodes], deadline_s=180, after_pass=clock)

        assert market.get_task(task_id).status == TaskStatus.COMPLETED
        assert [market.get_round(task_id, r).status for r in range(ROUNDS)] == [RoundStatus.FINALIZED] * 2
        view = TaskView(market, store, task_id)
        batch, epochs = spec.training.batch_size, spec.training.local_epochs
        expected = {
            c.address.lower(): [declare(_opacus_epsilon(size, batch, epochs, r + 1)) for r in range(ROUNDS)]
            for c, size in zip(contributors, SHARDS, strict=True)
        }
        small = contributors[-1].address.lower()
        # Each record holds what each update declared: the ledger's epsilon is Opacus's, round by round.
        for round_ in range(ROUNDS):
            record = view.accepted_record(round_)
            declared = {u.contributor: u.epsilon for u in record.updates}
            assert all(u.verdict == "accepted" for u in record.updates), record.updates
            wanted = {who: eps[round_] for who, eps in expected.items() if who != small or round_ == 0}
            assert declared == wanted
        # The small shard's second round would spend about 19 of the 15 allowed: it never committed.
        assert float(expected[small][1]) > MAX_EPSILON > float(expected[small][0])
        assert market.commitment_of(task_id, 1, contributors[-1].address) == bytes(32)
        # `cotrain status` shows each round's declared epsilon from the record.
        assert round_result(view, 0, small).epsilon == expected[small][0]
        assert round_result(view, 1, small).epsilon is None
        ledger = contributors[-1].journal.get(LEDGER_KEY)
        assert ledger is not None and [r["round"] for r in ledger["rounds"]] == [0]
        assert round_mechanism(spec, SHARDS[0]).steps == epochs * 6

        # What the store holds is sealed: a keyless observer fetches an update and cannot parse it.
        update = view.accepted_record(0).updates[0]
        stored = store.get(update.cid, max_size=10**7)
        assert stored.startswith(MAGIC)
        with pytest.raises(UpdateRejected):
            decode_arrays(stored, expected=view.model_layout, max_bytes=len(stored))

        full = audit_task(view, held_out, keys[arbiter.address])
        assert [(r.scope, r.passed, r.problems) for r in full] == [("full", True, [])] * ROUNDS
        public = audit_task(view, held_out)
        assert [(r.scope, r.passed, r.problems) for r in public] == [("public", True, [])] * ROUNDS
        assert [r.rewards for r in public] == [r.rewards for r in full]
        with pytest.raises(ConfigError, match="is not among task"):
            audit_task(view, held_out, generate_reader_key())


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("", (False, None)),
        ("encrypted", (True, None)),
        ("dp:3", (False, 3.0)),
        ("both", (True, 8.0)),
        ("both:1.5", (True, 1.5)),
    ],
)
def test_the_privacy_option_is_read(text: str, parsed: tuple[bool, float | None]) -> None:
    assert parse_privacy(text) == parsed


@pytest.mark.parametrize("text", ["dp", "dp:0", "dp:-1", "dp:x", "encrypted:3", "sealed", "both:inf"])
def test_a_bad_privacy_option_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--privacy"):
        parse_privacy(text)


def test_the_demo_noise_keeps_the_smallest_shard_within_the_epsilon() -> None:
    spec = demo_spec(DemoSettings(4, 1, 3, "digits", privacy="dp:2"), "0x" + "11" * 20, ["0x" + "22" * 20])
    dp = spec.privacy.dp if spec.privacy is not None else None
    assert dp is not None and spec.privacy is not None and spec.privacy.readers is None
    assert (dp.mechanism, dp.max_epsilon, dp.delta) == ("sample", 2.0, DELTA)
    spent = epsilon([round_mechanism(spec, 1)] * spec.rounds, DELTA)
    assert 1.9 < spent <= 2.0  # the noise is the smallest (to 1%) that fits


def test_reader_key_writes_a_private_file_and_prints_its_public_key(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "reader.pem"
    result = run_cli("reader-key", path)
    assert result.returncode == 0, result.explain()
    public = result.stdout.strip()
    assert public == reader_public_hex(load_reader_key(path))
    assert path.stat().st_mode & 0o777 == 0o600
    again = run_cli("reader-key", path)
    assert again.returncode != 0 and "already exists" in error_line(again), again.explain()


def test_demo_with_sealed_dp_updates_passes_both_audits(run_cli: RunCli, tmp_path: Path) -> None:
    directory, summary_path = tmp_path / "demo", tmp_path / "summary.json"
    result = run_cli(
        "demo",
        "--contributors",
        2,
        "--validators",
        1,
        "--rounds",
        1,
        "--dataset",
        "breast_cancer",
        "--privacy",
        "both:4",
        "--dir",
        directory,
        "--summary",
        summary_path,
        timeout=240,
    )
    assert result.returncode == 0, result.explain() + "\n" + logs_of(directory)
    assert "audit: 1 rounds passed, 0 failed" in result.stdout, result.explain()
    assert "public audit (no reader key): 1 rounds passed, 0 failed" in result.stdout, result.explain()
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert summary["public_audit"]["problems"] == []
    assert summary["public_audit"]["needs_a_reader"], summary["public_audit"]
    people = summary["contributor_results"]
    assert [p["reasons"] for p in people] == [["ok"], ["ok"]]
    # One round of DP-SGD on half the training split, with the noise for 4 over the task: spent, not past.
    assert all(0 < float(p["epsilon"]) <= 4 for p in people), people
    assert sorted(path.name for path in (directory / "reader-keys").iterdir()) == [
        "arbiter.pem",
        "validator-0.pem",
    ]
