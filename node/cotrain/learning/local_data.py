"""A contributor's or validator's own data, from the path they point at, checked against the task's schema."""

from __future__ import annotations

import logging
from pathlib import Path

from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset, check_schema, load_csv, load_image_folder, load_npz
from cotrain.learning.data_contract import ColumnContract, load_contract_csv

log = logging.getLogger(__name__)


def load_local_data(
    path: str | Path,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    label_column: str | None = None,
    contract: ColumnContract | None = None,
) -> ArrayDataset:
    """Load ``path`` (a ``.npz`` archive, a ``.csv`` file or a folder of class sub-folders of images).

    Image folders are resized to the task's ``input_shape`` (channels, height, width). A task with a column
    contract (``contract``, the spec's ``data.columns``) takes only a ``.csv`` file, read through the contract
    (:func:`cotrain.learning.data_contract.load_contract_csv`); without one a CSV file's label column is
    ``label_column`` (default ``label``) and its other columns are the features, raw, in file order.

    Raises
    ------
    ConfigError
        If the path does not exist, its kind is unknown, or the data does not fit the task's schema or
        contract.
    """
    path = Path(path)
    if contract is not None:
        dataset = _load_with_contract(path, contract, label_column)
    elif path.is_dir():
        if len(input_shape) != 3:
            raise ConfigError(
                f"{path} is an image folder, but the task expects inputs of shape {input_shape}"
            )
        dataset = load_image_folder(path, (input_shape[1], input_shape[2]))
    elif path.suffix == ".npz":
        dataset = load_npz(path)
    elif path.suffix == ".csv":
        dataset = load_csv(path, label_column or "label")
        log.warning(
            "%s: the task has no column contract (data.columns), so its columns are read in file order and "
            "unscaled; they must be in the order and scale every other participant uses",
            path,
        )
    elif not path.exists():
        raise ConfigError(f"no data at {path}")
    else:
        raise ConfigError(f"{path}: use a .npz archive, a .csv file or a folder of images per class")
    if dataset.input_shape != tuple(input_shape) and _size(dataset.input_shape) == _size(input_shape):
        dataset = ArrayDataset(
            dataset.features.reshape(len(dataset), *input_shape), dataset.labels, dataset.classes
        )
    check_schema(dataset, input_shape=tuple(input_shape), num_classes=num_classes)
    return dataset


def _load_with_contract(path: Path, contract: ColumnContract, label_column: str | None) -> ArrayDataset:
    if path.suffix != ".csv":
        raise ConfigError(
            f"{path}: this task's spec has a column contract (data.columns), which every participant applies "
            "to a raw .csv file with those columns; bring a .csv file"
        )
    if label_column is not None and label_column != contract.label.name:
        raise ConfigError(
            f"the task's contract names the label column {contract.label.name!r}, not {label_column!r}; "
            "leave out --label-column"
        )
    return load_contract_csv(path, contract)


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for dim in shape:
        size *= dim
    return size
