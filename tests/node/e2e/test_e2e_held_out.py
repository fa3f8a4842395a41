"""The held-out set is pinned by digest in the spec, through the real command: the owner pins a file with
`cotrain task post --held-out`, and a validator or auditor whose file does not match refuses in one line
before sending anything."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from cotrain.demo import DemoSettings, demo_spec
from cotrain.learning.data import ArrayDataset
from cotrain.learning.dataset_digest import dataset_digest
from cotrain.localnet import LocalNetwork, local_network
from cotrain.protocol.task_model import builtin_split
from cotrain.roles.task_view import TaskView
from e2e_helpers import RunCli, builtin_spec, cotrain_command, error_line

VALIDATOR = 1


@dataclass(frozen=True)
class PinnedTask:
    net: LocalNetwork
    task_id: int
    held_out: ArrayDataset
    matching: Path
    other: Path
    other_digest: bytes

    @property
    def network(self) -> Path:
        return self.net.accounts_file.parent / "network.json"


def _save(path: Path, dataset: ArrayDataset) -> Path:
    np.savez(path, features=dataset.features, labels=dataset.labels)
    return path


@pytest.fixture(scope="module")
def pinned_task(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PinnedTask]:
    """A running chain with one task without built-in data, posted with `cotrain task post --held-out`."""
    directory = tmp_path_factory.mktemp("pinned")
    with local_network(directory, storage="embedded", accounts=5) as net:
        settings = DemoSettings(contributors=2, validators=1, rounds=1, dataset="breast_cancer")
        arbiter = net.anvil.addresses[-1]
        builtin = demo_spec(settings, arbiter, [net.anvil.addresses[VALIDATOR]])
        held_out = builtin_split(builtin)[1]
        spec = builtin.model_dump(mode="json")
        spec["data"]["builtin"] = None  # the owner's own data: breast-cancer rows standing in for it
        spec_path = directory / "own-data.yaml"
        spec_path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        matching = _save(directory / "held-out.npz", held_out)
        # One label flipped: what a validator with another copy of the data might have.
        labels = held_out.labels.copy()
        labels[0] = 1 - labels[0]
        flipped = ArrayDataset(held_out.features, labels, held_out.classes)
        other = _save(directory / "other.npz", flipped)
        post = ["task", "post", str(spec_path), "--held-out", str(matching)]
        posted = subprocess.run(
            [*cotrain_command(), *post, "--network", str(directory / "network.json")],
            env={**os.environ, "COTRAIN_PRIVATE_KEY": net.anvil.private_keys[0]},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert posted.returncode == 0, posted.stderr
        yield PinnedTask(net, int(posted.stdout.strip()), held_out, matching, other, dataset_digest(flipped))


def test_task_post_pins_the_digest_of_the_held_out_file(pinned_task: PinnedTask) -> None:
    market, store = pinned_task.net.config.connect(None)
    spec = TaskView(market, store, pinned_task.task_id).spec

    assert spec.data.builtin is None
    assert spec.data.validation.held_out_digest == dataset_digest(pinned_task.held_out)


@pytest.mark.parametrize("command", ["validate", "audit"])
def test_a_held_out_file_the_spec_does_not_pin_ends_with_one_line_and_no_transaction(
    run_cli: RunCli, tmp_path: Path, pinned_task: PinnedTask, command: str
) -> None:
    market, _ = pinned_task.net.config.connect(None)
    validator = pinned_task.net.anvil.addresses[VALIDATOR]
    nonce = market.client.w3.eth.get_transaction_count(validator)
    # --once: without the check, the validator would bond and exit 0 rather than run on.
    state = ["--once", "--state", tmp_path / "state"] if command == "validate" else []

    result = run_cli(
        command,
        "--task",
        pinned_task.task_id,
        "--data",
        pinned_task.other,
        "--network",
        pinned_task.network,
        *state,
        env={"COTRAIN_PRIVATE_KEY": pinned_task.net.anvil.private_keys[VALIDATOR]},
        timeout=60,
    )

    line = error_line(result)
    assert f"held-out set {pinned_task.other} has digest 0x{pinned_task.other_digest.hex()}" in line, line
    assert f"the task's spec pins 0x{dataset_digest(pinned_task.held_out).hex()}" in line, line
    assert market.client.w3.eth.get_transaction_count(validator) == nonce
    assert not market.validator_info(pinned_task.task_id, validator).bonded


def test_a_validator_with_the_pinned_held_out_file_starts(
    run_cli: RunCli, tmp_path: Path, pinned_task: PinnedTask
) -> None:
    market, _ = pinned_task.net.config.connect(None)
    validator = pinned_task.net.anvil.addresses[VALIDATOR]

    result = run_cli(
        "validate",
        "--once",
        "--task",
        pinned_task.task_id,
        "--data",
        pinned_task.matching,
        "--network",
        pinned_task.network,
        "--state",
        tmp_path / "state",
        env={"COTRAIN_PRIVATE_KEY": pinned_task.net.anvil.private_keys[VALIDATOR]},
        timeout=60,
    )

    assert result.returncode == 0, result.explain()
    said = " ".join(result.stderr.split())  # rich wraps lines at the terminal's width
    assert f"on {len(pinned_task.held_out)} held-out examples" in said, result.explain()
    assert market.validator_info(pinned_task.task_id, validator).bonded, result.explain()


def test_a_spec_without_builtin_data_or_a_held_out_digest_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    spec = builtin_spec("digits")
    spec["data"]["builtin"] = None
    path = tmp_path / "unpinned.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")

    result = run_cli("task", "post", path, "--network", tmp_path / "unused.json", timeout=60)

    assert result.returncode == 1, result.explain()
    assert "Traceback" not in result.output, result.explain()
    first, *details = result.stderr.strip().splitlines()
    assert first == f"error: {path}: invalid task spec", result.explain()
    assert len(details) == 1, result.explain()
    assert details[0].startswith("  - data.validation.held_out_digest: required when data.builtin is null")


def test_task_post_refuses_a_held_out_file_other_than_the_one_the_spec_pins(
    run_cli: RunCli, tmp_path: Path, pinned_task: PinnedTask
) -> None:
    market, store = pinned_task.net.config.connect(None)
    spec = TaskView(market, store, pinned_task.task_id).spec.model_dump(mode="json")
    spec["initial_model"] = None
    path = tmp_path / "pinned.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")

    # No network is needed to find out: the check comes before any connection.
    result = run_cli(
        "task", "post", path, "--held-out", pinned_task.other, "--network", tmp_path / "unused.json"
    )

    line = error_line(result)
    assert f"held-out set {pinned_task.other} has digest 0x{pinned_task.other_digest.hex()}" in line, line
    assert f"the task's spec pins 0x{dataset_digest(pinned_task.held_out).hex()}" in line, line
