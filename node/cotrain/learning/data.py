"""Local data sets: the in-memory form training uses, loaders for the formats contributors keep their data in,
a seeded stratified split, and the check that a data set fits a task's schema.

Labels are class indices. Contributors of one task must agree on what index means which class, so loaders
never number string labels by what happens to be present locally: pass ``classes`` to fix the order.
"""

from __future__ import annotations

import csv
import importlib
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cotrain.errors import ConfigError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """Examples held in memory.

    Attributes
    ----------
    features : numpy.ndarray
        float32, shaped ``(N, *input_shape)``, all finite.
    labels : numpy.ndarray
        int64, shaped ``(N,)``, each in ``range(len(classes))``.
    classes : tuple[str, ...]
        The class names; a label is an index into this tuple.
    """

    features: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.features, np.ndarray) or self.features.dtype != np.float32:
            raise ConfigError("features must be a float32 numpy array")
        if self.features.ndim < 2:
            raise ConfigError(f"features must be shaped (N, *input_shape), got shape {self.features.shape}")
        if not isinstance(self.labels, np.ndarray) or self.labels.dtype != np.int64 or self.labels.ndim != 1:
            raise ConfigError("labels must be a one-dimensional int64 numpy array")
        if len(self.features) != len(self.labels):
            raise ConfigError(f"{len(self.features)} feature rows but {len(self.labels)} labels")
        if not self.classes or not all(isinstance(c, str) for c in self.classes):
            raise ConfigError("classes must be a non-empty tuple of class names")
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"class names must be unique, got {self.classes}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ConfigError(
                f"labels must lie in [0, {len(self.classes)}) to index the classes {self.classes}"
            )
        if not np.isfinite(self.features).all():
            raise ConfigError("features contain NaN or infinite values; clean or impute them first")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example."""
        return tuple(self.features.shape[1:])

    @property
    def num_classes(self) -> int:
        """``len(classes)``."""
        return len(self.classes)

    def subset(self, indices: np.ndarray | Sequence[int]) -> ArrayDataset:
        """Return the examples at ``indices`` (a copy), with the same classes."""
        index = np.asarray(indices, dtype=np.int64)
        return ArrayDataset(self.features[index], self.labels[index], self.classes)


def standardization(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and population standard deviation of float64 ``features`` shaped ``(N, columns)``,
    over the values present (NaN marks a missing one); a zero deviation is returned as 1.

    Raises
    ------
    ConfigError
        If a column has no value at all.
    """
    missing = np.isnan(features)
    if missing.all(axis=0).any():
        raise ConfigError("a column has no values to compute its mean and standard deviation from")
    # np.mean/np.std when nothing is missing: their sums run in another order than nanmean's, and these are
    # the statistics the built-in sets are standardized with, bit for bit.
    if missing.any():
        mean, std = np.nanmean(features, axis=0), np.nanstd(features, axis=0)
    else:
        mean, std = features.mean(axis=0), features.std(axis=0)
    # Constant columns (the always-blank corner pixels of digits) would divide by zero; they stay at 0.
    std[std == 0] = 1.0
    return mean, std


def standardize(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(features - mean) / std`` per column, in float64, rounded to float32 at the end."""
    standardized: np.ndarray = ((np.asarray(features, dtype=np.float64) - mean) / std).astype(np.float32)
    return standardized


def _standardize(features: np.ndarray) -> np.ndarray:
    return standardize(features, *standardization(features))


def load_digits(*, flat: bool = False) -> ArrayDataset:
    """The 1797 8x8 handwritten digits bundled with scikit-learn, standardized per pixel.

    The mean and standard deviation come from the whole bundled set, so every simulated client preprocesses
    identically.

    Parameters
    ----------
    flat : bool
        ``False`` (default) gives examples shaped ``(1, 8, 8)`` for the ``cnn`` model; ``True`` gives
        ``(64,)``.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    features = _standardize(bunch.data)
    if not flat:
        features = features.reshape(-1, 1, 8, 8)
    classes = tuple(str(name) for name in bunch.target_names)
    return ArrayDataset(features, bunch.target.astype(np.int64), classes)


def load_breast_cancer() -> ArrayDataset:
    """The 569-example Wisconsin breast cancer set bundled with scikit-learn: 30 standardized features,
    classes ``("malignant", "benign")``."""
    from sklearn.datasets import load_breast_cancer as sklearn_breast_cancer

    bunch = sklearn_breast_cancer()
    classes = tuple(str(name) for name in bunch.target_names)
    return ArrayDataset(_standardize(bunch.data), bunch.target.astype(np.int64), classes)


BUILTIN_DATASETS: dict[str, Callable[..., ArrayDataset]] = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
}


def load_builtin(name: str, *, flat: bool = False) -> ArrayDataset:
    """Load a built-in data set by name (``"digits"`` or ``"breast_cancer"``); ``flat`` applies to digits.

    Raises
    ------
    ConfigError
        For an unknown name, listing the built-in ones.
    """
    if name == "digits":
        return load_digits(flat=flat)
    if name in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[name]()
    raise ConfigError(f"unknown built-in data set {name!r}; choose one of {sorted(BUILTIN_DATASETS)}")


def _label_indices(
    raw: Sequence[str], classes: Sequence[str] | None, source: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    if classes is not None:
        names = tuple(str(c) for c in classes)
        index = {name: i for i, name in enumerate(names)}
        unknown = sorted({label for label in raw if label not in index})
        if unknown:
            raise ConfigError(f"{source}: labels {unknown[:5]} are not among the classes {names}")
        return np.array([index[label] for label in raw], dtype=np.int64), names
    try:
        labels = np.array([int(label) for label in raw], dtype=np.int64)
    except ValueError:
        raise ConfigError(
            f"{source}: labels are not class indices (0, 1, ...); pass classes=[...] to say which name is "
            "which index, in the same order as every other contributor of the task"
        ) from None
    if len(labels) and labels.min() < 0:
        raise ConfigError(f"{source}: class indices must not be negative")
    top = int(labels.max()) + 1 if len(labels) else 1
    return labels, tuple(str(i) for i in range(top))


def read_csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Read a CSV file with a header row: the header's names (stripped of surrounding spaces) and each
    non-blank row with the line it ends on, for error messages.

    Raises
    ------
    ConfigError
        If the file cannot be read as UTF-8 CSV or is empty.
    """
    try:
        # utf-8-sig: a spreadsheet's byte-order mark would otherwise become part of the first column's name.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read CSV file {path}: {exc}") from exc
    if not rows:
        raise ConfigError(f"CSV file {path} is empty; it needs a header row")
    return [name.strip() for name in rows[0][1]], rows[1:]


def load_csv(path: str | Path, label_column: str, *, classes: Sequence[str] | None = None) -> ArrayDataset:
    """Load a CSV file with a header row: one label column, every other column a numeric feature.

    Parameters
    ----------
    path : str or Path
        The file.
    label_column : str
        The header name of the label column.
    classes : Sequence[str], optional
        Class names in index order; labels are then names from this list. Without it labels must be the class
        indices themselves, and the classes are named ``"0"`` up to the largest index present.

    Returns
    -------
    ArrayDataset
        float32 features shaped ``(N, columns - 1)``, unscaled.

    Raises
    ------
    ConfigError
        If the file cannot be read, lacks the label column, or holds a non-numeric or non-finite feature.
    """
    path = Path(path)
    header, numbered = read_csv_rows(path)
    if label_column not in header:
        raise ConfigError(f"CSV file {path} has no column {label_column!r}; its columns are {header}")
    if not numbered:
        raise ConfigError(f"CSV file {path} has a header but no rows")
    label_at = header.index(label_column)
    feature_at = [i for i in range(len(header)) if i != label_at]
    features = np.empty((len(numbered), len(feature_at)), dtype=np.float32)
    for index, (line, row) in enumerate(numbered):
        if len(row) != len(header):
            raise ConfigError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
        for column, at in enumerate(feature_at):
            try:
                features[index, column] = float(row[at])
            except ValueError:
                raise ConfigError(
                    f"{path}, line {line}, column {header[at]!r}: {row[at]!r} is not a number"
                ) from None
    if not np.isfinite(features).all():
        raise ConfigError(f"CSV file {path} holds NaN or infinite feature values; clean or impute them first")
    labels, names = _label_indices([row[label_at].strip() for _, row in numbered], classes, str(path))
    return ArrayDataset(features, labels, names)


def load_npz(path: str | Path, *, classes: Sequence[str] | None = None) -> ArrayDataset:
    """Load a ``.npz`` archive with arrays ``features`` (numeric, ``(N, ...)``) and ``labels`` (integer class
    indices, ``(N,)``), and optionally ``classes`` (strings). Pickled objects are never loaded.

    Parameters
    ----------
    path : str or Path
        The archive, as written by ``numpy.savez``.
    classes : Sequence[str], optional
        Class names in index order; overrides a ``classes`` array in the file. Without either, the classes are
        named ``"0"`` up to the largest label present.

    Raises
    ------
    ConfigError
        If the file is not an npz archive, needs pickle, lacks an array, or holds the wrong kinds of numbers.
    """
    path = Path(path)
    try:
        # NEVER set allow_pickle to true: a pickle in a data file runs arbitrary code when loaded.
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"cannot load {path} as an npz archive without pickle: {exc}") from exc
    missing = sorted({"features", "labels"} - set(arrays))
    if missing:
        raise ConfigError(f"{path} lacks arrays {missing}; it holds {sorted(arrays)}")
    features, labels = arrays["features"], arrays["labels"]
    if features.dtype.kind not in "biuf" or features.ndim < 2:
        raise ConfigError(f"{path}: 'features' must be a numeric array shaped (N, ...), got {features.dtype}")
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise ConfigError(f"{path}: 'labels' must be a one-dimensional integer array, got {labels.dtype}")
    if classes is None and "classes" in arrays:
        if arrays["classes"].dtype.kind != "U":
            raise ConfigError(f"{path}: 'classes' must be an array of strings")
        classes = [str(name) for name in arrays["classes"]]
    if classes is None:
        top = int(labels.max()) + 1 if len(labels) else 1
        classes = [str(i) for i in range(top)]
    return ArrayDataset(features.astype(np.float32), labels.astype(np.int64), tuple(classes))


def _pillow_image_module() -> Any:
    try:
        return importlib.import_module("PIL.Image")
    except ImportError:
        raise ConfigError(
            "loading an image folder needs Pillow, which is not installed; install it with "
            "`pip install pillow` or convert the images to an npz archive"
        ) from None


def load_image_folder(
    path: str | Path, size: int | tuple[int, int], *, classes: Sequence[str] | None = None
) -> ArrayDataset:
    """Load images laid out one sub-folder per class, as grayscale scaled to ``[0, 1]``.

    Parameters
    ----------
    path : str or Path
        A folder whose sub-folders are named after the classes and hold the images.
    size : int or (int, int)
        The ``(height, width)`` every image is resized to (one int for a square).
    classes : Sequence[str], optional
        Class names in index order; every sub-folder must be one of them. Without it the sub-folder names,
        sorted, are the classes.

    Returns
    -------
    ArrayDataset
        Features shaped ``(N, 1, height, width)``.

    Raises
    ------
    ConfigError
        If Pillow is missing, the folder has no class folders or images, or a file is not a readable image.
    """
    image_module = _pillow_image_module()
    height, width = (size, size) if isinstance(size, int) else size
    if height < 1 or width < 1:
        raise ConfigError(f"image size must be positive, got {size!r}")
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"image folder {root} does not exist or is not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ConfigError(f"image folder {root} has no class sub-folders")
    names = tuple(classes) if classes is not None else tuple(p.name for p in folders)
    strays = [p.name for p in folders if p.name not in names]
    if strays:
        raise ConfigError(f"sub-folders {strays} of {root} are not among the classes {names}")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for folder in folders:
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with image_module.open(file) as image:
                    gray = image.convert("L").resize((width, height), image_module.Resampling.BILINEAR)
                    images.append(np.asarray(gray, dtype=np.float32) / 255.0)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read image {file}: {exc}") from exc
            labels.append(names.index(folder.name))
    if not images:
        raise ConfigError(f"image folder {root} holds no images with suffixes {sorted(IMAGE_SUFFIXES)}")
    features = np.stack(images)[:, None, :, :]  # (N, 1, H, W)
    return ArrayDataset(features, np.array(labels, dtype=np.int64), names)


def split_train_test(
    dataset: ArrayDataset, *, test_fraction: float, seed: int
) -> tuple[ArrayDataset, ArrayDataset]:
    """Split ``dataset`` into train and test sets, stratified by class and seeded.

    Each class contributes ``round(count * test_fraction)`` examples to the test set, chosen by a permutation
    drawn from ``numpy.random.Generator(PCG64(seed))``; both parts keep the original example order.

    Raises
    ------
    ConfigError
        If ``test_fraction`` is not strictly between 0 and 1, or either part would be empty.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    rng = np.random.Generator(np.random.PCG64(seed))
    test_mask = np.zeros(len(dataset), dtype=bool)
    for label in range(dataset.num_classes):
        members = np.flatnonzero(dataset.labels == label)
        take = round(len(members) * test_fraction)
        test_mask[rng.permutation(members)[:take]] = True
    if test_mask.all() or not test_mask.any():
        raise ConfigError(
            f"splitting {len(dataset)} examples with test_fraction={test_fraction} leaves one part empty"
        )
    return dataset.subset(np.flatnonzero(~test_mask)), dataset.subset(np.flatnonzero(test_mask))


def check_schema(dataset: ArrayDataset, *, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Check that ``dataset`` fits a task whose model takes ``input_shape`` and predicts ``num_classes``
    classes.

    Raises
    ------
    ConfigError
        If the data set is empty, an example has another shape, or there are more classes or larger labels
        than the task has.
    """
    if len(dataset) == 0:
        raise ConfigError("the data set is empty")
    if dataset.input_shape != tuple(input_shape):
        hint = ""
        if np.prod(dataset.input_shape) == np.prod(input_shape):
            hint = " (same number of values: reshape, e.g. load digits with flat=True or flat=False)"
        raise ConfigError(
            f"examples are shaped {dataset.input_shape}, the task's model takes {tuple(input_shape)}{hint}"
        )
    if dataset.num_classes > num_classes:
        raise ConfigError(
            f"the data set has {dataset.num_classes} classes {dataset.classes}, the task has {num_classes}"
        )
