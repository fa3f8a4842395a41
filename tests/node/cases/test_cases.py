"""Tests for cotrain.cases: each case's spec is what its documented data source gives, every contributor's raw
file loads through the spec's contract, and the data has the shape the case promises."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from cotrain.cases import CASE_NAMES, bank, case_files, get_case, hospital, phone, write_table
from cotrain.demo import DemoSettings, demo_spec
from cotrain.errors import ConfigError
from cotrain.learning.data_contract import NumericColumn, fit_contract
from cotrain.learning.local_data import load_local_data
from cotrain.protocol.task_spec import TaskSpec, load_spec


def _spec(name: str) -> TaskSpec:
    return load_spec(get_case(name).spec_path, pinning_held_out=True)


def _load(spec: TaskSpec, path: Path):
    shape, classes = tuple(spec.data.input_shape), spec.data.num_classes
    return load_local_data(path, input_shape=shape, num_classes=classes, contract=spec.data.columns)


def test_the_hospital_spec_pins_the_whole_sets_standardization(tmp_path: Path) -> None:
    raw = write_table(tmp_path / "raw.csv", hospital.raw_table())
    fitted = fit_contract(raw, hospital.LABEL, classes=["malignant", "benign"])
    contract = _spec("hospital").data.columns

    assert contract is not None and contract.label == fitted.label
    assert [(c.name, c.mean, c.std) for c in contract.features if isinstance(c, NumericColumn)] == [
        (c.name, c.mean, c.std) for c in fitted.features if isinstance(c, NumericColumn)
    ]


def test_the_bank_generator_is_deterministic_rare_and_different_per_bank() -> None:
    first, again = bank.case_data(4), bank.case_data(4)
    assert first == again

    rates = [sum(row[-1] == "yes" for row in rows) / len(rows) for _, rows in first.shards]
    pooled = sum(r * len(rows) for r, (_, rows) in zip(rates, first.shards, strict=True)) / 20000
    assert pooled < 0.02 and max(rates) < 0.03
    assert max(rates) > 3 * min(rates)  # each bank its own fraud rate
    ages = [np.mean([int(row[5]) for row in rows]) for _, rows in first.shards]
    assert max(ages) - min(ages) > 20  # and its own customers


def test_the_bank_spec_pins_the_pooled_standardization_to_three_digits(tmp_path: Path) -> None:
    rows = [r for i, b in enumerate(bank.BANKS) for r in bank.transactions(b, 5000, bank.SEED + i)[1]]
    path = write_table(tmp_path / "pooled.csv", (bank.HEADER, rows))
    fitted = fit_contract(path, "fraud", classes=["no", "yes"], categorical=["merchant", "card_present"])
    pinned = {c.name: c for c in _spec("bank").data.columns.features if isinstance(c, NumericColumn)}

    for column in fitted.features:
        if isinstance(column, NumericColumn):
            assert pinned[column.name].mean == float(f"{column.mean:.3g}")
            assert pinned[column.name].std == float(f"{column.std:.3g}")


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11), reason="the vocabulary was built from Python 3.11's library"
)
def test_the_phone_spec_pins_the_vocabulary_built_from_the_library() -> None:
    spec = _spec("phone")
    vocabulary = phone.build_vocabulary()
    assert spec.data.columns is not None
    assert spec.data.columns.label.classes == vocabulary
    assert all(column.categories == vocabulary for column in spec.data.columns.features)
    header = get_case("phone").spec_path.read_text(encoding="utf-8")
    assert re.search(r"\b[0-9a-f]{64}\b", header).group(0) == phone.vocabulary_digest(vocabulary)
    assert len(vocabulary) == spec.data.num_classes == 1001 and vocabulary[0] == "<unk>"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_every_contributors_raw_file_loads_through_the_case_contract(tmp_path: Path, name: str) -> None:
    spec = _spec(name)
    written = case_files(name, tmp_path, 2)

    shards = [_load(spec, path) for path in written.shards]
    held_out = _load(spec, written.held_out)

    assert [len(shard) for shard in shards] == written.sizes
    assert all(len(shard) >= 40 for shard in shards) and len(held_out) >= 140
    assert len(set(np.unique(held_out.labels))) >= 2
    assert written.shards == [tmp_path / f"contributor-{i}" / "data.csv" for i in range(2)]


def test_the_phone_context_is_token_ids_for_the_embedding(tmp_path: Path) -> None:
    spec = _spec("phone")
    shard = _load(spec, case_files("phone", tmp_path, 1).shards[0])

    ids = shard.features
    assert ids.shape[1:] == (phone.CONTEXT,)
    assert np.array_equal(ids, np.round(ids)) and ids.min() >= 0 and ids.max() < spec.data.num_classes
    assert (shard.labels != 0).all()  # no window asks to predict <unk>


def test_the_hospitals_see_different_case_mixes() -> None:
    data = hospital.case_data(4)
    malignant = [sum(row[-1] == "malignant" for row in rows) / len(rows) for _, rows in data.shards]
    assert max(malignant) - min(malignant) > 0.1
    held = {tuple(row) for row in data.held_out[1]}
    assert not any(tuple(row) in held for _, rows in data.shards for row in rows)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_more_contributors_than_data_owners_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="ask for 1 to 4 contributors, not 5") as caught:
        case_files(name, tmp_path, 5)
    assert "\n" not in str(caught.value)


def test_an_unknown_case_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown case 'school'; use one of hospital, bank, phone"):
        get_case("school")


def test_the_demo_resizes_a_case_and_refuses_it_with_privacy() -> None:
    settings = DemoSettings(contributors=3, validators=1, rounds=2, case="bank")
    spec = demo_spec(settings, "0x" + "11" * 20, ["0x" + "22" * 20])
    assert (spec.name, spec.rounds, spec.contributors.max) == ("bank-fraud-case", 2, 3)
    assert spec.training.class_weights == [1.0, 25.0]
    assert spec.data.validation.held_out_digest is None  # pinned when posting
    with pytest.raises(ConfigError, match="--case runs without --privacy"):
        demo_spec(DemoSettings(case="bank", privacy="encrypted"), "0x" + "11" * 20, ["0x" + "22" * 20])
