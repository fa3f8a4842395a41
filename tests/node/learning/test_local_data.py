"""Tests for cotrain.learning.local_data: one's own data, loaded and fitted to the task schema."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from cotrain.errors import ConfigError
from cotrain.learning.local_data import load_local_data


def _features(rows: int, *shape: int) -> np.ndarray:
    return np.arange(rows * int(np.prod(shape)), dtype=np.float32).reshape(rows, *shape) / 10


def _npz(path: Path, features: np.ndarray, labels: list[int], **extra: np.ndarray) -> Path:
    np.savez(path, features=features, labels=np.array(labels, dtype=np.int64), **extra)
    return path


def test_an_npz_archive_is_loaded_as_it_is(tmp_path: Path) -> None:
    features = _features(4, 3)
    path = _npz(tmp_path / "data.npz", features, [0, 1, 1, 0], classes=np.array(["no", "yes"]))

    dataset = load_local_data(path, input_shape=(3,), num_classes=2)

    assert np.array_equal(dataset.features, features)
    assert dataset.labels.tolist() == [0, 1, 1, 0]
    assert dataset.classes == ("no", "yes")


def test_a_csv_file_is_loaded_with_its_label_column(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,diagnosis,b\n1.5,1,2\n-3,0,4.25\n", encoding="utf-8")

    dataset = load_local_data(path, input_shape=(2,), num_classes=2, label_column="diagnosis")

    assert dataset.features.tolist() == [[1.5, 2.0], [-3.0, 4.25]]
    assert dataset.labels.tolist() == [1, 0]
    assert dataset.classes == ("0", "1")


def test_a_csv_file_without_the_label_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b,c\n1,2,0\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="no column 'label'"):
        load_local_data(path, input_shape=(2,), num_classes=2)


def test_flat_examples_are_reshaped_to_the_task_shape(tmp_path: Path) -> None:
    flat = _features(3, 64)
    path = _npz(tmp_path / "flat.npz", flat, [0, 9, 4])

    dataset = load_local_data(path, input_shape=(1, 8, 8), num_classes=10)

    assert dataset.input_shape == (1, 8, 8)
    assert np.array_equal(dataset.features, flat.reshape(3, 1, 8, 8))
    assert dataset.labels.tolist() == [0, 9, 4]


def test_shaped_examples_are_flattened_for_a_flat_task(tmp_path: Path) -> None:
    shaped = _features(2, 1, 8, 8)
    path = _npz(tmp_path / "shaped.npz", shaped, [3, 1])

    dataset = load_local_data(path, input_shape=(64,), num_classes=10)

    assert dataset.input_shape == (64,)
    assert np.array_equal(dataset.features, shaped.reshape(2, 64))


def test_examples_of_another_size_are_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "data.npz", _features(2, 30), [0, 1])

    with pytest.raises(ConfigError, match=r"shaped \(30,\), the task's model takes \(1, 8, 8\)"):
        load_local_data(path, input_shape=(1, 8, 8), num_classes=10)


def test_more_classes_than_the_task_has_are_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "data.npz", _features(3, 2), [0, 1, 2])

    with pytest.raises(ConfigError, match="3 classes"):
        load_local_data(path, input_shape=(2,), num_classes=2)


@pytest.mark.parametrize("input_shape", [(2, 2), (4,), (1, 2, 2)])
def test_an_empty_archive_is_refused_in_any_shape(tmp_path: Path, input_shape: tuple[int, ...]) -> None:
    path = _npz(tmp_path / "empty.npz", np.zeros((0, 2, 2), dtype=np.float32), [])

    with pytest.raises(ConfigError, match="empty"):
        load_local_data(path, input_shape=input_shape, num_classes=2)


def test_an_unknown_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1")

    with pytest.raises(ConfigError, match=r"use a \.npz archive, a \.csv file or a folder of images"):
        load_local_data(path, input_shape=(2,), num_classes=2)


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no data at"):
        load_local_data(tmp_path / "nowhere", input_shape=(2,), num_classes=2)
    with pytest.raises(ConfigError, match="cannot load"):
        load_local_data(tmp_path / "nowhere.npz", input_shape=(2,), num_classes=2)
    with pytest.raises(ConfigError, match="cannot read CSV"):
        load_local_data(tmp_path / "nowhere.csv", input_shape=(2,), num_classes=2)


def test_an_image_folder_needs_an_image_task(tmp_path: Path) -> None:
    (tmp_path / "images" / "cat").mkdir(parents=True)

    with pytest.raises(ConfigError, match="is an image folder"):
        load_local_data(tmp_path / "images", input_shape=(64,), num_classes=2)


def test_an_image_folder_is_resized_to_the_task_shape(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    for name, value in (("dark", 0), ("light", 255)):
        (tmp_path / name).mkdir()
        image.new("L", (16, 12), color=value).save(tmp_path / name / "a.png")

    dataset = load_local_data(tmp_path, input_shape=(1, 4, 4), num_classes=2)

    assert dataset.input_shape == (1, 4, 4)
    assert dataset.classes == ("dark", "light")
    assert dataset.labels.tolist() == [0, 1]
    assert dataset.features[0].max() == 0.0
    assert dataset.features[1].min() == 1.0


def test_a_csv_file_without_a_contract_is_read_raw_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data.csv"
    path.write_text("b,a,label\n100,2,1\n", encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="cotrain.learning.local_data"):
        dataset = load_local_data(path, input_shape=(2,), num_classes=2)

    assert dataset.features.tolist() == [[100.0, 2.0]]  # in file order, unscaled
    assert "no column contract (data.columns)" in caplog.text
