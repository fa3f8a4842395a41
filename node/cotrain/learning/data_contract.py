"""A column contract for tabular data: the named, typed columns of a task's CSV files, the label and its
classes, and the preprocessing every contributor and validator applies, with its parameters pinned.

A task spec carries a :class:`ColumnContract` as ``data.columns``, so a contributor brings a raw CSV file and
every node turns it into the same arrays (:func:`load_contract_csv`). Columns are found by their header name,
never by position. Each cell goes through these steps, in this order:

1. An empty cell, or one reading ``nan``, takes the column's ``impute`` value; without one it is refused.
2. A numeric value below ``min`` or above ``max`` is clipped to the bound (``clip: true``) or refused.
3. Numeric columns are standardized with the pinned ``mean`` and ``std`` (``(x - mean) / std`` in float64,
   then float32, as the built-in sets are); categorical ones become one-hot vectors (``encoding: one_hot``) or
   the category's index (``encoding: index``).

Features come out in the contract's column order, whatever the file's; labels are indices into
``label.classes``, matched as text. :func:`fit_contract` writes a contract from a sample file.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset, read_csv_rows, standardization, standardize
from cotrain.learning.rules.params import float_from_text


def _stripped_name(value: str) -> str:
    # Cells and header names are read stripped, and an empty cell means a missing value.
    if not value or value != value.strip():
        raise ValueError(f"{value!r} must be non-empty text without surrounding spaces")
    return value


def _text_from_integer(value: Any) -> Any:
    # YAML reads `classes: [0, 1]` as integers; they name the classes as a CSV file writes them, "0" and "1".
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _unique(names: list[str]) -> list[str]:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise ValueError(f"{repeated} listed more than once; name each once")
    return names


Name = Annotated[str, BeforeValidator(_text_from_integer), AfterValidator(_stripped_name)]
Names = Annotated[list[Name], AfterValidator(_unique)]
Finite = Annotated[float, BeforeValidator(float_from_text), Field(allow_inf_nan=False)]


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NumericColumn(_Contract):
    """A column of numbers: standardized with the pinned ``mean`` and ``std``, optionally bounded by ``min``
    and ``max`` (values outside refused, or clipped with ``clip``), empty cells refused unless ``impute``
    gives the raw value that replaces them."""

    name: Name
    type: Literal["numeric"]
    mean: Finite = 0.0
    std: Annotated[float, BeforeValidator(float_from_text), Field(gt=0, allow_inf_nan=False)] = 1.0
    min: Finite | None = None
    max: Finite | None = None
    clip: bool = False
    impute: Finite | None = None

    @model_validator(mode="after")
    def _consistent(self) -> NumericColumn:
        low = -math.inf if self.min is None else self.min
        high = math.inf if self.max is None else self.max
        if low > high:
            raise ValueError(f"column {self.name!r}: min ({self.min}) must be at most max ({self.max})")
        if self.clip and self.min is None and self.max is None:
            raise ValueError(f"column {self.name!r}: clip needs a min or a max to clip to")
        if self.impute is not None and not low <= self.impute <= high:
            raise ValueError(f"column {self.name!r}: impute ({self.impute}) must lie within min and max")
        return self


class CategoricalColumn(_Contract):
    """A column of category names: one-hot (one feature per category, in the listed order) or the category's
    index (one feature); a name not listed is refused, and empty cells unless ``impute`` names a category."""

    name: Name
    type: Literal["categorical"]
    categories: Annotated[Names, Field(min_length=1)]
    encoding: Literal["one_hot", "index"] = "one_hot"
    impute: Name | None = None

    @model_validator(mode="after")
    def _known_impute(self) -> CategoricalColumn:
        if self.impute is not None and self.impute not in self.categories:
            raise ValueError(f"column {self.name!r}: impute {self.impute!r} is not among its categories")
        return self


Column = Annotated[NumericColumn | CategoricalColumn, Field(discriminator="type")]


class LabelColumn(_Contract):
    """The label column and the class names, in index order; a cell must be one of them exactly."""

    name: Name
    classes: Annotated[Names, Field(min_length=2)]


class ColumnContract(_Contract):
    """The columns of a task's CSV files: the label and the features, in the order the model takes them."""

    label: LabelColumn
    features: Annotated[list[Column], Field(min_length=1)]

    @model_validator(mode="after")
    def _distinct_names(self) -> ColumnContract:
        _unique([self.label.name, *(column.name for column in self.features)])
        return self

    @property
    def width(self) -> int:
        """How many feature values one row becomes."""
        return sum(_width(column) for column in self.features)


def _width(column: NumericColumn | CategoricalColumn) -> int:
    if isinstance(column, CategoricalColumn) and column.encoding == "one_hot":
        return len(column.categories)
    return 1


class _CellError(ValueError):
    """What is wrong with one cell; the caller adds the file, line and column."""


def _number(text: str) -> float:
    """The number in a stripped cell: NaN when missing (empty or ``nan``), infinities refused."""
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise _CellError(f"{text!r} is not a number") from None
    if math.isinf(value):
        raise _CellError(f"{text!r} is not a finite number")
    return value


def _missing(text: str) -> _CellError:
    shown = "empty cell" if not text else f"{text!r} marks a missing value"
    return _CellError(f"{shown}, and the task's contract (data.columns) pins no impute value for the column")


def _numeric_value(column: NumericColumn, text: str) -> float:
    value = _number(text)
    if math.isnan(value):
        if column.impute is None:
            raise _missing(text)
        return column.impute
    if column.min is not None and value < column.min:
        if not column.clip:
            raise _CellError(f"{text} is below the column's min {column.min} in the task's contract")
        return column.min
    if column.max is not None and value > column.max:
        if not column.clip:
            raise _CellError(f"{text} is above the column's max {column.max} in the task's contract")
        return column.max
    return value


def _category_index(column: CategoricalColumn, index: dict[str, int], text: str) -> float:
    if not text:
        if column.impute is None:
            raise _missing(text)
        text = column.impute
    if text not in index:
        raise _CellError(f"{text!r} is not among the column's categories {column.categories}")
    return float(index[text])


def load_contract_csv(path: str | Path, contract: ColumnContract) -> ArrayDataset:
    """Load a CSV file through ``contract``: columns matched by header name, each cell checked, imputed,
    clipped and encoded as the contract says.

    Parameters
    ----------
    path : str or Path
        A CSV file with a header row holding exactly the contract's columns, in any order.
    contract : ColumnContract
        The task's ``data.columns``.

    Returns
    -------
    ArrayDataset
        float32 features shaped ``(N, contract.width)``, labels indexing ``contract.label.classes``.

    Raises
    ------
    ConfigError
        In one line naming the file, the line and the column: a missing, extra or repeated column, a row of
        the wrong length, a label not among the classes, or a cell the contract refuses.
    """
    path = Path(path)
    header, rows = read_csv_rows(path)
    at = _positions(path, header, contract)
    if not rows:
        raise ConfigError(f"CSV file {path} has a header but no rows")
    classes = {name: i for i, name in enumerate(contract.label.classes)}
    indexes = [
        {name: i for i, name in enumerate(column.categories)} if isinstance(column, CategoricalColumn) else {}
        for column in contract.features
    ]
    raw = np.empty((len(rows), len(contract.features)), dtype=np.float64)
    labels = np.empty(len(rows), dtype=np.int64)
    for row_index, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise ConfigError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
        label = row[at[contract.label.name]].strip()
        if label not in classes:
            shown = "empty label cell" if not label else f"label {label!r}"
            raise ConfigError(
                f"{path}, line {line}, column {contract.label.name!r}: {shown} is not among the task's "
                f"classes {contract.label.classes}"
            )
        labels[row_index] = classes[label]
        for j, column in enumerate(contract.features):
            text = row[at[column.name]].strip()
            try:
                if isinstance(column, CategoricalColumn):
                    raw[row_index, j] = _category_index(column, indexes[j], text)
                else:
                    raw[row_index, j] = _numeric_value(column, text)
            except _CellError as problem:
                raise ConfigError(f"{path}, line {line}, column {column.name!r}: {problem}") from None
    return ArrayDataset(_encode(contract, raw), labels, tuple(contract.label.classes))


def _positions(path: Path, header: list[str], contract: ColumnContract) -> dict[str, int]:
    """Where each of the contract's columns is in ``header``; any other column, or a repeated one, is
    refused."""
    wanted = [contract.label.name, *(column.name for column in contract.features)]
    at: dict[str, int] = {}
    for position, name in enumerate(header):
        if name in at:
            raise ConfigError(f"{path}, line 1, column {name!r}: the header names this column twice")
        at[name] = position
    missing = [name for name in wanted if name not in at]
    extra = [name for name in header if name not in wanted]
    if missing:
        # A renamed column is both missing and extra: say both in the one line.
        unnamed = f"; it has {', '.join(map(repr, extra))}, which the contract does not name" if extra else ""
        raise ConfigError(
            f"{path}, line 1: no column {', '.join(map(repr, missing))}, which the task's contract "
            f"(data.columns) requires{unnamed}"
        )
    if extra:
        raise ConfigError(
            f"{path}, line 1, column {extra[0]!r}: not a column of the task's contract (data.columns); "
            "remove it from the file"
        )
    return at


def _encode(contract: ColumnContract, raw: np.ndarray) -> np.ndarray:
    """Turn checked raw values (float64 ``(N, len(contract.features))``: numbers, or category indices) into
    the model's float32 features ``(N, contract.width)``, in the contract's column order."""
    # Categorical columns pass through standardize unchanged (mean 0, std 1) and are encoded below.
    mean = np.array([c.mean if isinstance(c, NumericColumn) else 0.0 for c in contract.features])
    std = np.array([c.std if isinstance(c, NumericColumn) else 1.0 for c in contract.features])
    values = standardize(raw, mean, std)
    parts = []
    for j, column in enumerate(contract.features):
        if isinstance(column, CategoricalColumn) and column.encoding == "one_hot":
            parts.append(np.eye(len(column.categories), dtype=np.float32)[raw[:, j].astype(np.int64)])
        else:
            parts.append(values[:, j : j + 1])
    return np.concatenate(parts, axis=1)


#: How :func:`fit_contract` bounds numeric columns: not at all, or by the sample's range, refusing or clipping
#: values outside it.
BOUNDS: tuple[str, ...] = ("none", "refuse", "clip")


def fit_contract(
    path: str | Path,
    label: str,
    *,
    classes: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    bounds: str = "none",
) -> ColumnContract:
    """Write a contract from a sample CSV file: every column but ``label`` is a feature, in the file's order.

    A column is categorical when named in ``categorical`` or when one of its cells is not a number; its
    categories are the names present, sorted. A numeric column pins the sample's mean and population standard
    deviation (1 for a constant column), computed as the built-in sets' are, and with ``bounds`` ``"refuse"``
    or ``"clip"`` the sample's min and max. A column with empty cells imputes its mean or its most frequent
    category. The classes are ``classes`` in that order, or else the labels present, sorted (by value when
    all are integers). The sample is loaded through the contract before it is returned, so the contract
    accepts it.

    Raises
    ------
    ConfigError
        If ``bounds`` is unknown, ``label`` or a ``categorical`` name is not a column, a column has no value
        or an infinite one, or the sample does not load through the contract (a label not in ``classes``).
    """
    path = Path(path)
    if bounds not in BOUNDS:
        raise ConfigError(f"unknown bounds {bounds!r}; use one of {', '.join(BOUNDS)}")
    header, rows = read_csv_rows(path)
    for name in (label, *categorical):
        if name not in header:
            raise ConfigError(f"CSV file {path} has no column {name!r}; its columns are {header}")
    repeated = [name for position, name in enumerate(header) if name in header[:position]]
    if repeated:
        raise ConfigError(f"{path}, line 1, column {repeated[0]!r}: the header names this column twice")
    if not rows:
        raise ConfigError(f"CSV file {path} has a header but no rows")
    for line, row in rows:
        if len(row) != len(header):
            raise ConfigError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
    lines = [line for line, _ in rows]
    cells = {name: [row[i].strip() for _, row in rows] for i, name in enumerate(header)}
    columns: list[dict[str, Any]] = []
    numeric: list[np.ndarray] = []
    for name in header:
        if name == label:
            continue
        empty = f"{path}, column {name!r}: no values in the sample; fill it or drop the column"
        if name not in categorical and all(_is_number(text) for text in cells[name] if text):
            numeric.append(_numbers(path, name, lines, cells[name]))
            if np.isnan(numeric[-1]).all():
                raise ConfigError(empty)
            columns.append({"name": name, "type": "numeric"})
        elif not any(cells[name]):
            raise ConfigError(empty)
        else:
            present = [text for text in cells[name] if text]
            column: dict[str, Any] = {"name": name, "type": "categorical", "categories": sorted(set(present))}
            if len(present) < len(cells[name]):
                column["impute"] = Counter(present).most_common(1)[0][0]
            columns.append(column)
    if numeric:
        values = np.column_stack(numeric)  # (N, numeric columns), float64, NaN where a cell is missing
        mean, std = standardization(values)
        numeric_columns = (column for column in columns if column["type"] == "numeric")
        for j, column in enumerate(numeric_columns):
            column.update(mean=float(mean[j]), std=float(std[j]))
            if bounds != "none":
                column.update(min=float(np.nanmin(values[:, j])), max=float(np.nanmax(values[:, j])))
                column["clip"] = bounds == "clip"
            if np.isnan(values[:, j]).any():
                column["impute"] = float(mean[j])
    if classes is None:
        present = sorted({text for text in cells[label] if text})
        classes = sorted(present, key=int) if all(map(_is_integer, present)) else present
    try:
        contract = ColumnContract.model_validate(
            {"label": {"name": label, "classes": list(classes)}, "features": columns}
        )
    except ValidationError as exc:
        problems = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise ConfigError(f"{path}: cannot write a contract: {problems}") from None
    load_contract_csv(path, contract)
    return contract


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers(path: Path, name: str, lines: list[int], cells: list[str]) -> np.ndarray:
    """A numeric column's cells as float64, NaN where missing; an infinite value is refused."""
    values = np.empty(len(cells), dtype=np.float64)
    for i, (line, text) in enumerate(zip(lines, cells, strict=True)):
        try:
            values[i] = _number(text)
        except _CellError as problem:
            raise ConfigError(f"{path}, line {line}, column {name!r}: {problem}") from None
    return values
