"""A task spec's column contract (``data.columns``): checked against the model when parsed, left out of the
canonical bytes when unset, written by `cotrain task contract`, and applied to the held-out set it pins."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cotrain.cli import app
from cotrain.errors import ConfigError
from cotrain.learning.data import load_breast_cancer
from cotrain.learning.dataset_digest import dataset_digest
from cotrain.learning.local_data import load_local_data
from cotrain.protocol.task_model import check_held_out
from cotrain.protocol.task_spec import (
    load_spec,
    parse_spec_bytes,
    spec_bytes,
    validate_spec,
    with_held_out_digest,
)
from sklearn.datasets import load_breast_cancer as sklearn_breast_cancer
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[3]
SPECS = REPO_ROOT / "node" / "cotrain" / "protocol" / "specs"
VECTORS = REPO_ROOT / "tests" / "vectors" / "spec"
README = REPO_ROOT / "README.md"
DIGEST = "0x" + "ab" * 32
WIDTH = "  - data.columns: the contract's columns make 5 features,"


def _own_data(data: dict[str, Any]) -> dict[str, Any]:
    """The breast-cancer demo spec with ``data`` in place of its built-in data block."""
    spec: dict[str, Any] = yaml.safe_load((SPECS / "breast_cancer.yaml").read_text(encoding="utf-8"))
    spec["data"] = data
    return spec


def _columns(**changes: Any) -> dict[str, Any]:
    """A data block for two numeric columns and a three-category one-hot column: 5 features."""
    data: dict[str, Any] = {
        "input_shape": [5],
        "num_classes": 2,
        "columns": {
            "label": {"name": "y", "classes": ["no", "yes"]},
            "features": [
                {"name": "a", "type": "numeric", "mean": 1.5, "std": 2},
                {"name": "b", "type": "numeric", "min": 0, "max": 1, "clip": True},
                {"name": "c", "type": "categorical", "categories": ["u", "v", "w"]},
            ],
        },
        "validation": {"held_out_digest": DIGEST},
    }
    data.update(changes)
    return data


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        validate_spec(_own_data(data))
    return str(raised.value).splitlines()[1:]


@pytest.mark.parametrize("path", sorted(VECTORS.glob("*.json")), ids=lambda path: path.stem)
def test_committed_spec_vectors_keep_their_canonical_bytes(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))

    canonical = spec_bytes(validate_spec(vector["input"]["spec"]))

    assert canonical.decode("utf-8") == vector["output"]["spec_bytes"]
    has_columns = "columns" in vector["input"]["spec"]["data"]
    assert (b'"columns":' in canonical) == has_columns


def test_a_spec_with_a_contract_round_trips_through_its_canonical_bytes() -> None:
    spec = validate_spec(_own_data(_columns()))

    again = parse_spec_bytes(spec_bytes(spec))

    assert again == spec
    assert again.data.columns is not None and again.data.columns.width == 5
    # Defaults are written out, so the digest pins every number of the preprocessing.
    b = json.loads(spec_bytes(spec))["data"]["columns"]["features"][1]
    assert b == {
        "name": "b",
        "type": "numeric",
        "mean": 0.0,
        "std": 1.0,
        "min": 0.0,
        "max": 1.0,
        "clip": True,
        "impute": None,
    }
    assert b"split_seed" not in spec_bytes(spec)


def test_a_pinned_statistic_changes_the_digest() -> None:
    data = _columns()
    other = _columns()
    other["columns"]["features"][0]["mean"] = 1.25

    assert spec_bytes(validate_spec(_own_data(data))) != spec_bytes(validate_spec(_own_data(other)))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_columns(input_shape=[6]), f"{WIDTH} but data.input_shape [6] holds 6 values (a one-hot column"),
        (_columns(input_shape=[1, 2, 2]), f"{WIDTH} but data.input_shape [1, 2, 2] holds 4 values"),
        (_columns(num_classes=3), "  - data.columns.label.classes: 2 classes, but data.num_classes is 3"),
        (
            _columns(
                builtin="breast_cancer", input_shape=[30], validation={"split_seed": 0, "test_fraction": 0.25}
            ),
            "  - data.columns: a column contract describes contributors' own CSV files, but data.builtin",
        ),
    ],
    ids=["too many features", "shaped too small", "other classes", "beside a built-in set"],
)
def test_a_contract_that_contradicts_the_model_is_one_line(data: dict[str, Any], expected: str) -> None:
    problems = _problems(data)

    assert any(line.startswith(expected) for line in problems), problems


def test_a_broken_column_is_named_by_its_path() -> None:
    data = _columns()
    data["columns"]["features"][0]["std"] = 0

    problems = _problems(data)

    assert problems == ["  - data.columns.features[0].numeric.std: Input should be greater than 0, got 0"]


def test_a_misspelt_column_field_is_shown_the_fields_of_its_type() -> None:
    data = _columns()
    data["columns"]["features"][0]["stdev"] = 2
    data["columns"]["features"][2]["default"] = "u"

    problems = _problems(data)

    assert problems == [
        "  - data.columns.features[0].numeric.stdev: unknown field; allowed fields: name, type, mean, std, "
        "min, max, clip, impute",
        "  - data.columns.features[2].categorical.default: unknown field; allowed fields: name, type, "
        "categories, encoding, impute",
    ]


def test_split_parameters_are_optional_without_a_built_in_set_and_required_with_one() -> None:
    builtin = yaml.safe_load((SPECS / "breast_cancer.yaml").read_text(encoding="utf-8"))
    del builtin["data"]["validation"]["test_fraction"]

    own = validate_spec(
        _own_data({"input_shape": [30], "num_classes": 2, "validation": {"held_out_digest": DIGEST}})
    )

    assert own.data.validation.split_seed is None and own.data.validation.test_fraction is None
    assert json.loads(spec_bytes(own))["data"]["validation"] == {"held_out_digest": DIGEST}
    with pytest.raises(
        ConfigError, match=r"data\.validation\.test_fraction: required when data\.builtin is set"
    ):
        validate_spec(builtin)


def test_the_contract_command_output_loads_as_the_spec_s_data_block(
    tmp_path: Path, raw_breast_cancer_csv: Callable[..., Path]
) -> None:
    # Prepare
    sample = raw_breast_cancer_csv(tmp_path / "sample.csv")

    # Execute: the owner's steps: write the block, paste it into the spec, pin the held-out file
    result = CliRunner().invoke(
        app,
        ["task", "contract", "--csv", str(sample), "--label", "diagnosis", "--classes", "malignant, benign"],
    )
    assert result.exit_code == 0, result.output
    block = yaml.safe_load(result.stdout)
    spec_path = tmp_path / "own.yaml"
    spec_path.write_text(yaml.safe_dump(_own_data(block["data"])), encoding="utf-8")
    spec = load_spec(spec_path, pinning_held_out=True)
    held_out = load_local_data(sample, input_shape=(30,), num_classes=2, contract=spec.data.columns)
    spec = with_held_out_digest(spec, dataset_digest(held_out))

    # Assert: the YAML is commented for the owner, and the spec reads the raw file as the built-in set
    assert result.stdout.startswith("# The data block for sample.csv")
    assert spec.data.input_shape == [30] and spec.data.num_classes == 2
    assert parse_spec_bytes(spec_bytes(spec)) == spec
    assert held_out.features.tobytes() == load_breast_cancer().features.tobytes()


def test_a_held_out_file_with_its_columns_reordered_has_the_pinned_digest(
    tmp_path: Path, raw_breast_cancer_csv: Callable[..., Path]
) -> None:
    # Prepare: the owner pins the file as written; a validator's copy has its columns reversed
    result = CliRunner().invoke(
        app,
        [
            "task",
            "contract",
            "--csv",
            str(raw_breast_cancer_csv(tmp_path / "owner.csv")),
            "--label",
            "diagnosis",
        ],
    )
    spec = validate_spec(_own_data(yaml.safe_load(result.stdout)["data"]), pinning_held_out=True)
    owner = load_local_data(
        tmp_path / "owner.csv", input_shape=(30,), num_classes=2, contract=spec.data.columns
    )
    spec = with_held_out_digest(spec, dataset_digest(owner))
    reversed_csv = raw_breast_cancer_csv(tmp_path / "validator.csv", reverse=True)

    # Execute
    validator = load_local_data(reversed_csv, input_shape=(30,), num_classes=2, contract=spec.data.columns)

    # Assert
    assert check_held_out(spec, validator, str(reversed_csv)) is validator
    assert spec.data.columns is not None and spec.data.columns.label.classes == ["benign", "malignant"]
    np.testing.assert_array_equal(validator.labels, 1 - sklearn_breast_cancer().target)


def test_the_contract_command_explains_a_bad_request(
    tmp_path: Path, raw_breast_cancer_csv: Callable[..., Path]
) -> None:
    sample = raw_breast_cancer_csv(tmp_path / "s.csv")

    result = CliRunner().invoke(app, ["task", "contract", "--csv", str(sample), "--label", "target"])

    assert result.exit_code != 0
    assert re.search(r"has no column 'target'", str(result.exception)), result.output


def test_the_readme_columns_block_is_a_valid_data_block(readme_block: Callable[..., str]) -> None:
    data = yaml.safe_load(readme_block("columns", "yaml"))["data"]

    spec = validate_spec(_own_data(data), pinning_held_out=True)

    assert spec.data.columns is not None and spec.data.columns.width == 4


def test_the_readme_recipe_for_a_raw_csv_and_its_contract_runs_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readme_block: Callable[..., str]
) -> None:
    # Prepare: the README's sample file, and its command line without the leading `cotrain` and the redirect
    subprocess.run([sys.executable, "-c", readme_block("raw csv")], cwd=tmp_path, check=True, timeout=120)
    command = next(
        line
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.startswith("cotrain task contract")
    )
    arguments = shlex.split(command.split(">")[0])[1:]
    monkeypatch.chdir(tmp_path)

    # Execute
    result = CliRunner().invoke(app, arguments)

    # Assert: the block loads as a spec, which reads the sample as the built-in set
    assert result.exit_code == 0, result.output
    spec = validate_spec(_own_data(yaml.safe_load(result.stdout)["data"]), pinning_held_out=True)
    sample = load_local_data("sample.csv", input_shape=(30,), num_classes=2, contract=spec.data.columns)
    assert sample.features.tobytes() == load_breast_cancer().features.tobytes()
    assert sample.classes == ("malignant", "benign")
