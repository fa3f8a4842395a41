"""A contributor's or validator's own data, from the path they point at, checked against the task's schema."""

from __future__ import annotations

from pathlib import Path

from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset, check_schema, load_csv, load_image_folder, load_npz


def load_local_data(
    path: str | Path, *, input_shape: tuple[int, ...], num_classes: int, label_column: str = "label"
) -> ArrayDataset:
    """Load ``path`` (a ``.npz`` archive, a ``.csv`` file or a folder of class sub-folders of images).

    Image folders are resized to the task's ``input_shape`` (channels, height, width).

    Raises
    ------
    ConfigError
        If the path does not exist, its kind is unknown, or the data does not fit the task's schema.
    """
    path = Path(path)
    if path.is_dir():
        if len(input_shape) != 3:
            raise ConfigError(
                f"{path} is an image folder, but the task expects inputs of shape {input_shape}"
            )
        dataset = load_image_folder(path, (input_shape[1], input_shape[2]))
    elif path.suffix == ".npz":
        dataset = load_npz(path)
    elif path.suffix == ".csv":
        dataset = load_csv(path, label_column)
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


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for dim in shape:
        size *= dim
    return size
