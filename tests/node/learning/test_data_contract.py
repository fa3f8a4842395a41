"""Tests for cotrain.learning.data_contract: raw CSV files read by header name through a pinned contract."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset, load_csv, split_train_test
from cotrain.learning.data_contract import (
    ColumnContract,
    NumericColumn,
    fit_contract,
    load_contract_csv,
)
from cotrain.learning.evaluation import evaluate
from cotrain.learning.local_data import load_local_data
from cotrain.learning.models import build_model
from cotrain.learning.state import model_state
from cotrain.learning.training import train_local
from pydantic import ValidationError
from sklearn.datasets import load_breast_cancer as sklearn_breast_cancer

CLASSES = ["malignant", "benign"]


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def raw_csv(tmp_path_factory: pytest.TempPathFactory, raw_breast_cancer_csv: Callable[..., Path]) -> Path:
    return raw_breast_cancer_csv(tmp_path_factory.mktemp("raw") / "breast_cancer.csv")


@pytest.fixture(scope="module")
def contract(raw_csv: Path) -> ColumnContract:
    return fit_contract(raw_csv, "diagnosis", classes=CLASSES)


def _contract(**features: dict[str, Any]) -> ColumnContract:
    """A contract with label ``y`` (classes ``no``, ``yes``) and the given feature columns, in order."""
    return ColumnContract.model_validate(
        {
            "label": {"name": "y", "classes": ["no", "yes"]},
            "features": [{"name": name, **column} for name, column in features.items()],
        }
    )


def test_a_raw_csv_is_standardized_with_the_pinned_statistics(
    raw_csv: Path, contract: ColumnContract
) -> None:
    # Prepare: the raw matrix, and the pinned mean and std applied to it in numpy
    bunch = sklearn_breast_cancer()
    numeric = [column for column in contract.features if isinstance(column, NumericColumn)]
    assert len(numeric) == 30
    mean, std = np.array([c.mean for c in numeric]), np.array([c.std for c in numeric])
    expected = ((bunch.data - mean) / std).astype(np.float32)

    # Execute
    dataset = load_contract_csv(raw_csv, contract)

    # Assert: the same arrays, the text labels as indices into the classes
    np.testing.assert_array_equal(dataset.features, expected)
    np.testing.assert_array_equal(dataset.labels, bunch.target)
    assert dataset.classes == tuple(CLASSES)


def test_a_contract_fitted_on_the_whole_set_reproduces_the_built_in_set(
    raw_csv: Path, contract: ColumnContract, breast_cancer: ArrayDataset
) -> None:
    dataset = load_contract_csv(raw_csv, contract)

    # Bit for bit: the same statistics, the same arithmetic, so the validators' held-out digest agrees too.
    assert dataset.features.tobytes() == breast_cancer.features.tobytes()
    assert dataset.labels.tobytes() == breast_cancer.labels.tobytes()


def test_columns_are_matched_by_name_not_position(
    raw_csv: Path, contract: ColumnContract, tmp_path: Path, raw_breast_cancer_csv: Callable[..., Path]
) -> None:
    reversed_csv = raw_breast_cancer_csv(tmp_path / "reversed.csv", reverse=True)

    in_order, reversed_order = load_contract_csv(raw_csv, contract), load_contract_csv(reversed_csv, contract)

    assert reversed_order.features.tobytes() == in_order.features.tobytes()
    assert reversed_order.labels.tobytes() == in_order.labels.tobytes()


def test_string_labels_follow_the_order_of_the_classes(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", ["x", "y"], [[1, "yes"], [2, "no"], [3, "yes"]])

    yes_first = ColumnContract.model_validate(
        {"label": {"name": "y", "classes": ["yes", "no"]}, "features": [{"name": "x", "type": "numeric"}]}
    )

    assert load_contract_csv(path, _contract(x={"type": "numeric"})).labels.tolist() == [1, 0, 1]
    assert load_contract_csv(path, yes_first).labels.tolist() == [0, 1, 0]


def _problem(path: Path, contract: ColumnContract) -> str:
    with pytest.raises(ConfigError) as raised:
        load_contract_csv(path, contract)
    message = str(raised.value)
    assert "\n" not in message, message
    assert message.startswith(str(path)), message
    return message


BAD_FILES = {
    "missing column": (["a", "y"], [["1", "no"]], "line 1: no column 'b', which the task's contract"),
    "renamed column": (
        ["a", "B", "y"],
        [["1", "2", "no"]],
        "line 1: no column 'b', which the task's contract "
        "(data.columns) requires; it has 'B', which the contract does not name",
    ),
    "extra column": (["a", "b", "id", "y"], [["1", "2", "7", "no"]], "line 1, column 'id': not a column"),
    "repeated column": (
        ["a", "b", "a", "y"],
        [["1", "2", "1", "no"]],
        "line 1, column 'a': the header names",
    ),
    "unknown label": (["a", "b", "y"], [["1", "2", "no"], ["1", "2", "maybe"]], "line 3, column 'y': label"),
    "empty label": (["a", "b", "y"], [["1", "2", ""]], "line 2, column 'y': empty label cell"),
    "NaN": (["a", "b", "y"], [["1", "2", "no"], ["NaN", "2", "no"]], "line 3, column 'a': 'NaN' marks"),
    "empty cell": (["a", "b", "y"], [["1", "", "no"]], "line 2, column 'b': empty cell"),
    "below min": (["a", "b", "y"], [["-1", "2", "no"]], "line 2, column 'a': -1 is below the column's min 0"),
    "above max": (
        ["a", "b", "y"],
        [["11", "2", "no"]],
        "line 2, column 'a': 11 is above the column's max 10",
    ),
    "not a number": (["a", "b", "y"], [["one", "2", "no"]], "line 2, column 'a': 'one' is not a number"),
    "infinite": (["a", "b", "y"], [["inf", "2", "no"]], "line 2, column 'a': 'inf' is not a finite number"),
    "unknown category": (["a", "b", "y"], [["1", "z", "no"]], "line 2, column 'b': 'z' is not among"),
    "short row": (["a", "b", "y"], [["1", "2", "no"], ["1", "no"]], "line 3: 2 fields, the header has 3"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_file_the_contract_refuses_is_named_with_its_line_and_column(tmp_path: Path, case: str) -> None:
    # Prepare: "b" is numeric except where the case is about categories
    header, rows, expected = BAD_FILES[case]
    path = _write_csv(tmp_path / "bad.csv", header, rows)
    b = {"type": "categorical", "categories": ["2"]} if case == "unknown category" else {"type": "numeric"}
    contract = _contract(a={"type": "numeric", "min": 0, "max": 10}, b=b)

    # Execute
    message = _problem(path, contract)

    # Assert
    assert f"{path}, {expected}" in message, message


def test_the_contract_can_clip_and_impute_instead_of_refusing(tmp_path: Path) -> None:
    # Prepare
    path = _write_csv(
        tmp_path / "d.csv",
        ["y", "age", "smoker", "site"],
        [["no", "130", "", "b"], ["yes", "", "yes", "a"], ["no", "nan", "no", ""]],
    )
    contract = _contract(
        age={"type": "numeric", "mean": 40, "std": 20, "min": 0, "max": 120, "clip": True, "impute": 40},
        smoker={"type": "categorical", "categories": ["no", "yes"], "impute": "no"},
        site={"type": "categorical", "categories": ["a", "b"], "encoding": "index", "impute": "a"},
    )

    # Execute
    dataset = load_contract_csv(path, contract)

    # Assert: age clipped to 120 then (120-40)/20 = 4, imputed 40 -> 0; smoker one-hot; site an index
    assert contract.width == 4
    assert dataset.features.tolist() == [[4.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
    assert dataset.labels.tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"type": "numeric", "min": 2, "max": 1}, "min (2.0) must be at most max (1.0)"),
        ({"type": "numeric", "clip": True}, "clip needs a min or a max"),
        ({"type": "numeric", "max": 1, "impute": 2}, "impute (2.0) must lie within min and max"),
        ({"type": "numeric", "std": 0}, "greater than 0"),
        ({"type": "numeric", "mean": "nan"}, "finite"),
        ({"type": "categorical", "categories": ["u", "v"], "impute": "w"}, "impute 'w' is not among"),
        ({"type": "categorical", "categories": ["u", "u"]}, "['u'] listed more than once"),
        ({"type": "categorical", "categories": [" u"]}, "without surrounding spaces"),
        ({"type": "text"}, "'numeric', 'categorical'"),
        ({"type": "numeric", "stdev": 2}, "Extra inputs are not permitted"),
    ],
)
def test_an_inconsistent_column_is_refused(column: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        _contract(x=column)


def test_names_are_unique_across_the_label_and_the_features() -> None:
    with pytest.raises(ValidationError, match=r"\['y'\] listed more than once"):
        _contract(y={"type": "numeric"})


def test_integer_class_names_are_read_as_the_text_a_csv_file_holds(tmp_path: Path) -> None:
    contract = ColumnContract.model_validate(
        {"label": {"name": "y", "classes": [0, 1]}, "features": [{"name": "x", "type": "numeric"}]}
    )
    path = _write_csv(tmp_path / "d.csv", ["x", "y"], [[1, 1], [2, 0]])

    assert contract.label.classes == ["0", "1"]
    assert load_contract_csv(path, contract).labels.tolist() == [1, 0]


def test_fit_finds_types_categories_classes_and_imputes(tmp_path: Path) -> None:
    # Prepare: a numeric column with a gap, a text column with a gap, a numeric-looking category, int labels
    path = _write_csv(
        tmp_path / "sample.csv",
        ["age", "city", "zip", "outcome"],
        [
            ["20", "Oslo", "10", "2"],
            ["", "Bergen", "20", "10"],
            ["40", "", "10", "2"],
            ["30", "Oslo", "30", "1"],
        ],
    )

    # Execute
    contract = fit_contract(path, "outcome", categorical=["zip"], bounds="refuse")

    # Assert
    age, city, zip_code = contract.features
    assert contract.label.classes == ["1", "2", "10"]  # integers sort by value
    assert age == NumericColumn(
        name="age", type="numeric", mean=30.0, std=float(np.std([20, 40, 30])), min=20, max=40, impute=30
    )
    assert city.model_dump() == {
        "name": "city",
        "type": "categorical",
        "categories": ["Bergen", "Oslo"],
        "encoding": "one_hot",
        "impute": "Oslo",
    }
    assert zip_code.model_dump()["categories"] == ["10", "20", "30"]
    assert contract.width == 1 + 2 + 3
    assert len(load_contract_csv(path, contract)) == 4


def test_fit_refuses_a_sample_its_classes_do_not_cover(raw_csv: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 2, column 'diagnosis': label 'malignant' is not among"):
        fit_contract(raw_csv, "diagnosis", classes=["benign", "other"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label": "nope"}, "has no column 'nope'"),
        ({"label": "diagnosis", "bounds": "wide"}, "unknown bounds 'wide'"),
    ],
)
def test_fit_explains_a_wrong_request(raw_csv: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fit_contract(raw_csv, **kwargs)


def test_fit_refuses_an_infinite_value_and_an_empty_column(tmp_path: Path) -> None:
    infinite = _write_csv(tmp_path / "inf.csv", ["x", "y"], [["1", "a"], ["-inf", "b"]])
    empty = _write_csv(tmp_path / "empty.csv", ["x", "e", "y"], [["1", "", "a"], ["2", "", "b"]])

    with pytest.raises(ConfigError, match=r"line 3, column 'x': '-inf' is not a finite number"):
        fit_contract(infinite, "y")
    with pytest.raises(ConfigError, match=r"column 'e': no values in the sample"):
        fit_contract(empty, "y")


def test_local_data_applies_the_contract_and_only_to_csv(
    raw_csv: Path, contract: ColumnContract, tmp_path: Path
) -> None:
    dataset = load_local_data(raw_csv, input_shape=(30,), num_classes=2, contract=contract)
    npz = tmp_path / "d.npz"
    np.savez(npz, features=dataset.features, labels=dataset.labels)

    assert dataset.features.tobytes() == load_contract_csv(raw_csv, contract).features.tobytes()
    with pytest.raises(ConfigError, match=r"has a column contract .* bring a \.csv file"):
        load_local_data(npz, input_shape=(30,), num_classes=2, contract=contract)
    with pytest.raises(ConfigError, match="names the label column 'diagnosis', not 'label'"):
        load_local_data(raw_csv, input_shape=(30,), num_classes=2, label_column="label", contract=contract)


def _accuracy(dataset: ArrayDataset) -> float:
    """Logistic regression trained as the breast-cancer spec trains it, measured on a quarter held out."""
    train, test = split_train_test(dataset, test_fraction=0.25, seed=0)
    model = build_model("logistic", {}, input_shape=(30,), num_classes=2, seed=7)
    start = model_state(model)
    train_local(model, start, train, epochs=5, batch_size=32, lr=0.1, optimizer="sgd", seed=7)
    return evaluate(model, model_state(model), test).accuracy


def test_training_on_a_raw_csv_through_the_contract_matches_the_built_in_set(
    raw_csv: Path,
    contract: ColumnContract,
    breast_cancer: ArrayDataset,
    tmp_path: Path,
    raw_breast_cancer_csv: Callable[..., Path],
) -> None:
    # Prepare: the same measurements read raw (labels as indices, no contract)
    indexed = raw_breast_cancer_csv(tmp_path / "indexed.csv", indexed=True)

    # Execute
    through_contract = _accuracy(load_contract_csv(raw_csv, contract))
    built_in = _accuracy(breast_cancer)
    raw = _accuracy(load_csv(indexed, "label"))

    # Assert: the contract gives the built-in accuracy; raw measurements fall well short of it
    assert through_contract == built_in
    assert built_in > 0.95
    assert raw < built_in - 0.05
