"""Tests for cotrain.learning.dataset_digest: one digest per set of examples, whatever file they came in."""

from __future__ import annotations

import csv
import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cotrain.learning.data import ArrayDataset
from cotrain.learning.dataset_digest import DATASET_DIGEST_PREFIX, dataset_bytes, dataset_digest
from cotrain.learning.local_data import load_local_data

# Values a float32 holds exactly, and 0.1, which it does not: every way of writing them loads alike.
FEATURES = np.array(
    [[0.5, -1.25, 3.0], [0.1, 0.0, 7.75], [-2.0, 1.0, 0.1], [4.5, -0.5, 2.25]], dtype=np.float32
)
LABELS = np.array([1, 0, 2, 1], dtype=np.int64)


def _load(path: Path) -> ArrayDataset:
    return load_local_data(path, input_shape=(3,), num_classes=3)


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _reference() -> ArrayDataset:
    return ArrayDataset(FEATURES.copy(), LABELS.copy(), ("0", "1", "2"))


def test_the_encoding_is_the_documented_bytes() -> None:
    # Prepare: 2 examples of 2 features; one is negative zero.
    dataset = ArrayDataset(
        np.array([[1.0, -0.0], [0.5, 2.0]], dtype=np.float32), np.array([1, 0], dtype=np.int64), ("a", "b")
    )
    expected = (
        b"cotrain:dataset:v1\x00"
        + bytes.fromhex("02000000")  # two dimensions
        + bytes.fromhex("02000000000000000200000000000000")  # shape (2, 2)
        + bytes.fromhex("0000803f000000000000003f00000040")  # 1.0, +0.0, 0.5, 2.0
        + bytes.fromhex("01000000000000000000000000000000")  # labels 1, 0
    )

    # Execute
    encoded = dataset_bytes(dataset)

    # Assert
    assert DATASET_DIGEST_PREFIX == b"cotrain:dataset:v1\x00"
    assert encoded == expected
    assert dataset_digest(dataset) == hashlib.sha256(expected).digest()


def test_the_digest_is_the_same_for_npz_and_csv_files_of_the_same_examples(tmp_path: Path) -> None:
    plain = tmp_path / "plain.npz"
    np.savez(plain, features=FEATURES, labels=LABELS)
    # Another layout of the same arrays: compressed, other dtypes, another order, a classes array.
    packed = tmp_path / "packed.npz"
    np.savez_compressed(
        packed, labels=LABELS.astype(np.int32), classes=np.array(["x", "y", "z"]), features=FEATURES
    )
    # The label column among the features, numbers in float32's shortest digits ("0.1").
    header = ["f0", "label", "f1", "f2"]
    rows = zip(FEATURES, LABELS, strict=True)
    terse = _write_csv(
        tmp_path / "terse.csv",
        [header, *([str(f0), str(label), str(f1), str(f2)] for (f0, f1, f2), label in rows)],
    )
    # The same numbers written otherwise: exponents, trailing zeros, spaces, float64 digits of 0.1.
    wordy = _write_csv(
        tmp_path / "wordy.csv",
        [
            header,
            ["5e-1", "1", " -1.250", "3"],
            ["0.10000000149011612", "0", "-0", "775E-2"],
            ["-2.000", "2", "1.0", "0.1"],
            ["4.5", "1", "-0.5", "2.25000"],
        ],
    )
    digests = {path.name: dataset_digest(_load(path)) for path in (plain, packed, terse, wordy)}

    assert len({path.read_bytes() for path in (plain, packed)}) == 2
    assert set(digests.values()) == {dataset_digest(_reference())}, digests


def test_a_resaved_npz_has_other_bytes_and_the_same_digest(tmp_path: Path) -> None:
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    np.savez(first, features=FEATURES, labels=LABELS)
    # Re-save its members as a zip tool does: with each entry's time stamp (numpy writes 1980-01-01).
    with zipfile.ZipFile(first) as source, zipfile.ZipFile(second, "w") as target:
        for name in reversed(source.namelist()):
            target.writestr(zipfile.ZipInfo(name, date_time=(2026, 12, 3, 8, 30, 0)), source.read(name))

    assert first.read_bytes() != second.read_bytes()
    assert dataset_digest(_load(first)) == dataset_digest(_load(second)) == dataset_digest(_reference())


def _one_value(dataset: ArrayDataset) -> ArrayDataset:
    features = dataset.features.copy()
    features[2, 1] = np.nextafter(features[2, 1], np.float32(np.inf))
    return ArrayDataset(features, dataset.labels, dataset.classes)


def _one_label(dataset: ArrayDataset) -> ArrayDataset:
    labels = dataset.labels.copy()
    labels[3] = 2
    return ArrayDataset(dataset.features, labels, dataset.classes)


def _row_order(dataset: ArrayDataset) -> ArrayDataset:
    return dataset.subset([1, 0, 2, 3])


def _one_row_fewer(dataset: ArrayDataset) -> ArrayDataset:
    return dataset.subset([0, 1, 2])


def _other_shape(dataset: ArrayDataset) -> ArrayDataset:
    return ArrayDataset(dataset.features.reshape(4, 1, 3), dataset.labels, dataset.classes)


@pytest.mark.parametrize(
    "change", [_one_value, _one_label, _row_order, _one_row_fewer, _other_shape], ids=lambda f: f.__name__
)
def test_the_digest_changes_with_the_examples(change: Callable[[ArrayDataset], ArrayDataset]) -> None:
    assert dataset_digest(change(_reference())) != dataset_digest(_reference())


def test_class_names_and_negative_zero_do_not_change_the_digest() -> None:
    renamed = ArrayDataset(FEATURES, LABELS, ("cat", "dog", "eel", "fox"))
    signed = FEATURES.copy()
    signed[1, 1] = -0.0

    assert dataset_digest(renamed) == dataset_digest(_reference())
    assert dataset_digest(ArrayDataset(signed, LABELS, ("0", "1", "2"))) == dataset_digest(_reference())


def test_the_digest_does_not_depend_on_memory_layout() -> None:
    fortran = ArrayDataset(np.asfortranarray(FEATURES), LABELS, ("0", "1", "2"))
    big_endian = ArrayDataset(FEATURES.astype(">f4").astype(np.float32), LABELS, ("0", "1", "2"))

    assert dataset_digest(fortran) == dataset_digest(big_endian) == dataset_digest(_reference())
