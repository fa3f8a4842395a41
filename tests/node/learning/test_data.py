"""Tests for cotrain.learning.data."""

import sys

import numpy as np
import pytest
from cotrain.errors import ConfigError
from cotrain.learning.data import (
    ArrayDataset,
    check_schema,
    load_breast_cancer,
    load_builtin,
    load_csv,
    load_digits,
    load_image_folder,
    load_npz,
    split_train_test,
    standardization,
    standardize,
)


def _tiny(labels=(0, 1, 1), classes=("a", "b")) -> ArrayDataset:
    features = np.arange(len(labels) * 2, dtype=np.float32).reshape(len(labels), 2)
    return ArrayDataset(features, np.array(labels, dtype=np.int64), classes)


def test_digits_are_standardized_images_or_flat_rows(digits):
    flat = load_digits(flat=True)

    assert digits.features.shape == (1797, 1, 8, 8) and digits.features.dtype == np.float32
    assert flat.features.shape == (1797, 64)
    assert np.array_equal(digits.features.reshape(1797, 64), flat.features)
    assert digits.classes == tuple(str(i) for i in range(10))
    assert np.allclose(flat.features.mean(axis=0), 0, atol=1e-5)
    # Pixels that vary have unit variance; the always-blank ones stay 0 instead of dividing by zero.
    assert set(np.round(flat.features.std(axis=0), 4)) <= {0.0, 1.0}


def test_breast_cancer_has_30_standardized_features(breast_cancer):
    assert breast_cancer.features.shape == (569, 30)
    assert breast_cancer.classes == ("malignant", "benign")
    assert np.allclose(breast_cancer.features.std(axis=0), 1, atol=1e-4)


def test_load_builtin_by_name_and_unknown_name_lists_them():
    assert load_builtin("digits", flat=True).input_shape == (64,)
    assert load_builtin("breast_cancer").num_classes == 2
    with pytest.raises(ConfigError, match="breast_cancer"):
        load_builtin("mnist")


@pytest.mark.parametrize(
    ("features", "labels", "classes"),
    [
        (np.zeros((2, 2), dtype=np.float64), np.zeros(2, dtype=np.int64), ("a",)),
        (np.zeros(2, dtype=np.float32), np.zeros(2, dtype=np.int64), ("a",)),
        (np.zeros((2, 2), dtype=np.float32), np.zeros(2, dtype=np.int32), ("a",)),
        (np.zeros((2, 2), dtype=np.float32), np.zeros(3, dtype=np.int64), ("a",)),
        (np.zeros((2, 2), dtype=np.float32), np.array([0, 2]), ("a", "b")),
        (np.zeros((2, 2), dtype=np.float32), np.array([0, -1]), ("a", "b")),
        (np.zeros((2, 2), dtype=np.float32), np.zeros(2, dtype=np.int64), ("a", "a")),
        (np.zeros((2, 2), dtype=np.float32), np.zeros(2, dtype=np.int64), ()),
        (np.array([[0, np.nan]], dtype=np.float32), np.zeros(1, dtype=np.int64), ("a",)),
    ],
)
def test_array_dataset_refuses_inconsistent_arrays(features, labels, classes):
    with pytest.raises(ConfigError):
        ArrayDataset(features, labels, classes)


def test_subset_copies_the_chosen_rows():
    dataset = _tiny()

    part = dataset.subset([2, 0])

    assert np.array_equal(part.labels, [1, 0])
    assert np.array_equal(part.features, [[4, 5], [0, 1]])
    assert part.classes == dataset.classes


def test_load_csv_with_index_labels(tmp_path):
    # Prepare
    path = tmp_path / "data.csv"
    path.write_text("x1,label,x2\n0.5,2,1\n-1,0,2e3\n", encoding="utf-8")

    # Execute
    dataset = load_csv(path, "label")

    # Assert
    assert np.array_equal(dataset.features, np.array([[0.5, 1], [-1, 2000]], dtype=np.float32))
    assert np.array_equal(dataset.labels, [2, 0])
    assert dataset.classes == ("0", "1", "2")


def test_load_csv_with_named_labels_follows_the_given_class_order(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("f,diagnosis\n1,benign\n2,malignant\n3,benign\n", encoding="utf-8")

    dataset = load_csv(path, "diagnosis", classes=["malignant", "benign"])

    assert np.array_equal(dataset.labels, [1, 0, 1])
    assert dataset.classes == ("malignant", "benign")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a,label\n", "no rows"),
        ("a,b\n1,2\n", "no column 'label'"),
        ("a,label\nx,1\n", "not a number"),
        ("a,label\n1,0\n\n1\n", "line 4: 1 fields"),
        ("a,label\nnan,1\n", "NaN"),
        ("a,label\n1,cat\n", "classes="),
        ("a,label\n1,-1\n", "negative"),
    ],
)
def test_load_csv_explains_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError, match=message):
        load_csv(path, "label")


def test_load_csv_refuses_labels_outside_the_classes(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("f,label\n1,cat\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="not among the classes"):
        load_csv(path, "label", classes=["dog"])


def test_load_csv_reads_a_spreadsheet_header_with_a_byte_order_mark_and_spaces(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("\ufeffx , label\n1.5,1\n".encode())

    dataset = load_csv(path, "label")

    assert dataset.features.tolist() == [[1.5]]
    assert dataset.labels.tolist() == [1]


def test_standardization_is_per_column_over_the_values_present():
    # Prepare: column 0 has a missing value, column 1 is constant
    features = np.array([[1.0, 5.0], [np.nan, 5.0], [3.0, 5.0]])

    # Execute
    mean, std = standardization(features)
    scaled = standardize(np.array([[3.0, 5.0]]), mean, std)

    # Assert: mean 2 and std 1 over (1, 3); a constant column keeps std 1 and scales to 0
    assert mean.tolist() == [2.0, 5.0]
    assert std.tolist() == [1.0, 1.0]
    assert scaled.dtype == np.float32 and scaled.tolist() == [[1.0, 0.0]]


def test_standardization_refuses_a_column_without_values():
    with pytest.raises(ConfigError, match="no values"):
        standardization(np.array([[1.0, np.nan], [2.0, np.nan]]))


def test_load_npz_round_trip(tmp_path):
    path = tmp_path / "data.npz"
    features = np.arange(12, dtype=np.float64).reshape(3, 2, 2)
    np.savez(path, features=features, labels=np.array([1, 0, 1]), classes=np.array(["no", "yes"]))

    dataset = load_npz(path)

    assert dataset.features.dtype == np.float32 and dataset.input_shape == (2, 2)
    assert np.array_equal(dataset.features, features)
    assert np.array_equal(dataset.labels, [1, 0, 1])
    assert dataset.classes == ("no", "yes")


def test_load_npz_never_unpickles(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, features=np.array([[object()]], dtype=object), labels=np.array([0]))

    with pytest.raises(ConfigError, match="without pickle"):
        load_npz(path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((1, 2))}, "lacks arrays"),
        ({"features": np.zeros(2), "labels": np.zeros(2, dtype=int)}, "features"),
        ({"features": np.zeros((2, 2)), "labels": np.zeros(2)}, "labels"),
        ({"features": np.array([["a"]]), "labels": np.zeros(1, dtype=int)}, "numeric"),
    ],
)
def test_load_npz_explains_missing_or_mistyped_arrays(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)

    with pytest.raises(ConfigError, match=message):
        load_npz(path)


def test_load_npz_refuses_a_file_that_is_not_an_archive(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"not a zip file")

    with pytest.raises(ConfigError):
        load_npz(path)


def test_load_image_folder_reads_one_class_per_sub_folder(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    # Prepare
    for name, shade in (("cat", 0), ("dog", 255)):
        (tmp_path / name).mkdir()
        for i in range(2):
            image_module.new("RGB", (6, 4), (shade, shade, shade)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image", encoding="utf-8")

    # Execute
    dataset = load_image_folder(tmp_path, (3, 5))

    # Assert
    assert dataset.features.shape == (4, 1, 3, 5)
    assert dataset.classes == ("cat", "dog")
    assert np.array_equal(dataset.labels, [0, 0, 1, 1])
    assert np.allclose(dataset.features[:2], 0) and np.allclose(dataset.features[2:], 1)


def test_load_image_folder_follows_given_classes_and_names_an_unreadable_image(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    (tmp_path / "dog").mkdir()
    image_module.new("L", (4, 4), 255).save(tmp_path / "dog" / "0.png")

    dataset = load_image_folder(tmp_path, 4, classes=["cat", "dog", "fox"])

    assert dataset.classes == ("cat", "dog", "fox") and np.array_equal(dataset.labels, [1])
    (tmp_path / "dog" / "1.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match=r"1\.png"):
        load_image_folder(tmp_path, 4)
    with pytest.raises(ConfigError, match="not among the classes"):
        load_image_folder(tmp_path, 4, classes=["cat"])


def test_load_image_folder_without_pillow_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)

    with pytest.raises(ConfigError, match="pip install pillow"):
        load_image_folder(tmp_path, 8)


def test_split_is_stratified_disjoint_covering_and_seeded(digits):
    # Execute
    train, test = split_train_test(digits, test_fraction=0.25, seed=3)
    again, _ = split_train_test(digits, test_fraction=0.25, seed=3)
    other, _ = split_train_test(digits, test_fraction=0.25, seed=4)

    # Assert
    assert len(train) + len(test) == len(digits)
    rows = {row.tobytes() for row in train.features} | {row.tobytes() for row in test.features}
    assert len(rows) == len({row.tobytes() for row in digits.features})
    for label in range(10):
        count = int((digits.labels == label).sum())
        assert (test.labels == label).sum() == round(count * 0.25)
    assert np.array_equal(train.features, again.features)
    assert not np.array_equal(train.features, other.features)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 0.01])
def test_split_refuses_fractions_that_leave_a_part_empty(fraction):
    with pytest.raises(ConfigError):
        split_train_test(_tiny(), test_fraction=fraction, seed=0)


def test_check_schema_accepts_a_fitting_data_set(digits, breast_cancer):
    check_schema(digits, input_shape=(1, 8, 8), num_classes=10)
    check_schema(breast_cancer, input_shape=(30,), num_classes=2)
    check_schema(_tiny(), input_shape=(2,), num_classes=5)


@pytest.mark.parametrize(
    ("input_shape", "num_classes", "message"),
    [((64,), 10, "flat=True"), ((1, 8, 9), 10, "takes"), ((1, 8, 8), 9, "has 10 classes")],
)
def test_check_schema_explains_a_mismatch(digits, input_shape, num_classes, message):
    with pytest.raises(ConfigError, match=message):
        check_schema(digits, input_shape=input_shape, num_classes=num_classes)


def test_check_schema_refuses_an_empty_data_set():
    with pytest.raises(ConfigError, match="empty"):
        check_schema(_tiny(labels=()), input_shape=(2,), num_classes=2)


def test_breast_cancer_loader_is_repeatable():
    assert np.array_equal(load_breast_cancer().features, load_breast_cancer().features)
