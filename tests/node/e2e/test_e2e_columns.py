"""A task on the owner's own CSV data, through the real commands: `cotrain task contract` writes the column
contract from a sample, `cotrain task post --held-out` pins the held-out file read through it, a validator
whose copy has its columns in another order starts, and a contributor whose file breaks the contract stops in
one line naming the file, line and column before sending anything."""

from __future__ import annotations

import csv
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from cotrain.demo import DemoSettings, demo_spec
from cotrain.learning.data import load_breast_cancer
from cotrain.learning.dataset_digest import dataset_digest
from cotrain.localnet import LocalNetwork, local_network
from cotrain.roles.task_view import TaskView
from e2e_helpers import RunCli, cotrain_command, error_line

VALIDATOR, CONTRIBUTOR = 1, 2


@dataclass(frozen=True)
class ColumnsTask:
    net: LocalNetwork
    task_id: int
    raw: Path
    reversed: Path

    @property
    def network(self) -> Path:
        return self.net.accounts_file.parent / "network.json"


def _cotrain(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cotrain_command(), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def columns_task(
    tmp_path_factory: pytest.TempPathFactory, raw_breast_cancer_csv: Callable[..., Path]
) -> Iterator[ColumnsTask]:
    """A running chain with one task whose spec carries the contract `cotrain task contract` wrote."""
    directory = tmp_path_factory.mktemp("columns")
    raw = raw_breast_cancer_csv(directory / "raw.csv")
    reversed_csv = raw_breast_cancer_csv(directory / "reversed.csv", reverse=True)
    with local_network(directory, storage="embedded", accounts=5) as net:
        settings = DemoSettings(contributors=2, validators=1, rounds=1, dataset="breast_cancer")
        spec = demo_spec(settings, net.anvil.addresses[-1], [net.anvil.addresses[VALIDATOR]]).model_dump(
            mode="json"
        )
        written = _cotrain(
            "task", "contract", "--csv", str(raw), "--label", "diagnosis", "--classes", "malignant,benign"
        )
        assert written.returncode == 0, written.stderr
        spec["data"] = yaml.safe_load(written.stdout)["data"]
        spec_path = directory / "own-data.yaml"
        spec_path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        posted = _cotrain(
            "task",
            "post",
            str(spec_path),
            "--held-out",
            str(raw),
            "--network",
            str(directory / "network.json"),
            env={"COTRAIN_PRIVATE_KEY": net.anvil.private_keys[0]},
        )
        assert posted.returncode == 0, posted.stderr
        yield ColumnsTask(net, int(posted.stdout.strip()), raw, reversed_csv)


def test_the_posted_spec_pins_the_held_out_file_read_through_its_contract(columns_task: ColumnsTask) -> None:
    market, store = columns_task.net.config.connect(None)
    spec = TaskView(market, store, columns_task.task_id).spec

    assert spec.data.columns is not None and spec.data.columns.label.classes == ["malignant", "benign"]
    # Read through the contract written from the whole raw set, the file is the built-in set exactly.
    assert spec.data.validation.held_out_digest == dataset_digest(load_breast_cancer())


def test_a_validator_with_the_columns_in_another_order_starts(
    run_cli: RunCli, tmp_path: Path, columns_task: ColumnsTask
) -> None:
    market, _ = columns_task.net.config.connect(None)

    result = run_cli(
        "validate",
        "--once",
        "--task",
        columns_task.task_id,
        "--data",
        columns_task.reversed,
        "--network",
        columns_task.network,
        "--state",
        tmp_path / "state",
        env={"COTRAIN_PRIVATE_KEY": columns_task.net.anvil.private_keys[VALIDATOR]},
        timeout=60,
    )

    assert result.returncode == 0, result.explain()
    assert "on 569 held-out examples" in " ".join(result.stderr.split()), result.explain()
    validator = columns_task.net.anvil.addresses[VALIDATOR]
    assert market.validator_info(columns_task.task_id, validator).bonded, result.explain()


@pytest.mark.parametrize("kind", ["extra column", "npz"])
def test_a_contributor_whose_file_breaks_the_contract_stops_in_one_line_before_any_transaction(
    run_cli: RunCli, tmp_path: Path, columns_task: ColumnsTask, kind: str
) -> None:
    # Prepare
    if kind == "npz":
        data = tmp_path / "data.npz"
        np.savez(data, features=np.zeros((8, 30), np.float32), labels=np.arange(8) % 2)
        expected = f"{data}: this task's spec has a column contract (data.columns)"
    else:
        data = tmp_path / "data.csv"
        with columns_task.raw.open(newline="", encoding="utf-8") as handle:
            header, *rows = csv.reader(handle)
        with data.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([[*header, "id"], *([*row, str(i)] for i, row in enumerate(rows))])
        expected = f"{data}, line 1, column 'id': not a column of the task's contract (data.columns)"
    market, _ = columns_task.net.config.connect(None)
    contributor = columns_task.net.anvil.addresses[CONTRIBUTOR]
    nonce = market.client.w3.eth.get_transaction_count(contributor)

    # Execute
    result = run_cli(
        "contribute",
        "--once",
        "--task",
        columns_task.task_id,
        "--data",
        data,
        "--network",
        columns_task.network,
        "--state",
        tmp_path / "state",
        env={"COTRAIN_PRIVATE_KEY": columns_task.net.anvil.private_keys[CONTRIBUTOR]},
        timeout=60,
    )

    # Assert
    line = error_line(result)
    assert expected in line, line
    assert market.client.w3.eth.get_transaction_count(contributor) == nonce
