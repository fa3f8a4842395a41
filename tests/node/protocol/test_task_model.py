"""Tests for cotrain.protocol.task_model: what every participant derives from a spec alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cotrain.errors import ConfigError
from cotrain.learning.data import load_breast_cancer
from cotrain.learning.dataset_digest import dataset_digest
from cotrain.learning.state import model_state
from cotrain.learning.training import train_local
from cotrain.protocol.task_model import (
    builtin_split,
    check_held_out,
    check_held_out_pin,
    initial_state,
    pinned_held_out_digest,
    task_model,
    train_round,
)
from cotrain.protocol.task_spec import TaskSpec, load_spec, validate_spec

SPECS = Path(__file__).resolve().parents[3] / "node" / "cotrain" / "protocol" / "specs"


@pytest.fixture(scope="module")
def breast_cancer_spec() -> TaskSpec:
    return load_spec(SPECS / "breast_cancer.yaml")


@pytest.fixture(scope="module")
def digits_spec() -> TaskSpec:
    return load_spec(SPECS / "digits.yaml")


def _changed(spec: TaskSpec, section: str, **fields: Any) -> TaskSpec:
    data = spec.model_dump()
    data[section] = {**data[section], **fields}
    return validate_spec(data)


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(tensor.shape) for key, tensor in state.items()}


def test_the_breast_cancer_model_is_a_linear_layer_on_30_features(breast_cancer_spec: TaskSpec) -> None:
    state = initial_state(breast_cancer_spec)

    assert _shapes(state) == {"1.bias": (2,), "1.weight": (2, 30)}
    assert all(tensor.dtype == torch.float32 for tensor in state.values())
    assert task_model(breast_cancer_spec)(torch.zeros(5, 30)).shape == (5, 2)


def test_the_digits_task_is_the_specified_cnn(digits_spec: TaskSpec) -> None:
    state = initial_state(digits_spec)

    # channels [16, 32] from the spec, 3x3 kernels, then 10 classes from 32 * 2 * 2 features.
    assert _shapes(state) == {
        "0.bias": (16,),
        "0.weight": (16, 1, 3, 3),
        "3.bias": (32,),
        "3.weight": (32, 16, 3, 3),
        "7.bias": (10,),
        "7.weight": (10, 128),
    }
    assert task_model(digits_spec)(torch.zeros(4, 1, 8, 8)).shape == (4, 10)


def test_initial_state_is_the_same_on_every_call_and_follows_the_seed(digits_spec: TaskSpec) -> None:
    first, second = initial_state(digits_spec), initial_state(digits_spec)
    reseeded = initial_state(_changed(digits_spec, "training", seed=digits_spec.training.seed + 1))

    assert list(first) == sorted(first)
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert all(
        torch.equal(first[key], tensor) for key, tensor in model_state(task_model(digits_spec)).items()
    )
    assert not torch.equal(first["0.weight"], reseeded["0.weight"])


def test_builtin_split_of_breast_cancer_is_stratified_and_repeats(breast_cancer_spec: TaskSpec) -> None:
    train, held_out = builtin_split(breast_cancer_spec)
    again_train, again_held_out = builtin_split(breast_cancer_spec)

    # 212 malignant and 357 benign; a quarter of each, rounded, is held out.
    assert (len(train), len(held_out)) == (427, 142)
    assert np.bincount(held_out.labels).tolist() == [53, 89]
    assert np.bincount(train.labels).tolist() == [159, 268]
    assert held_out.classes == ("malignant", "benign")
    assert np.array_equal(held_out.features, again_held_out.features)
    assert np.array_equal(train.labels, again_train.labels)
    # Together the two parts are the whole data set, each example once.
    whole = load_breast_cancer()
    rows = np.concatenate([train.features, held_out.features])
    assert np.array_equal(np.unique(rows, axis=0), np.unique(whole.features, axis=0))
    assert len(np.unique(rows, axis=0)) == len(whole)


def test_builtin_split_of_digits_follows_the_spec_shape(digits_spec: TaskSpec) -> None:
    data = digits_spec.model_dump()
    data["data"]["input_shape"] = [64]
    data["model"] = {"name": "mlp", "params": {}}  # the cnn preset refuses flat input
    flat = validate_spec(data)
    seeded = _changed(
        digits_spec,
        "data",
        validation={"split_seed": 1, "test_fraction": digits_spec.data.validation.test_fraction},
    )

    train, held_out = builtin_split(digits_spec)
    flat_train, flat_held_out = builtin_split(flat)
    _, reseeded = builtin_split(seeded)

    assert (len(train), len(held_out)) == (1438, 359)
    assert (train.input_shape, flat_train.input_shape) == ((1, 8, 8), (64,))
    assert np.array_equal(flat_held_out.features, held_out.features.reshape(-1, 64))
    assert np.bincount(reseeded.labels).tolist() == np.bincount(held_out.labels).tolist()
    assert not np.array_equal(reseeded.features, held_out.features)


def _pinned(spec: TaskSpec, digest: bytes, **data: Any) -> TaskSpec:
    validation = {**spec.data.validation.model_dump(), "held_out_digest": digest}
    return _changed(spec, "data", validation=validation, **data)


def test_builtin_split_needs_a_builtin_data_set(breast_cancer_spec: TaskSpec) -> None:
    spec = _pinned(breast_cancer_spec, bytes(32), builtin=None)

    with pytest.raises(ConfigError, match="names no built-in data set"):
        builtin_split(spec)


def test_the_pinned_held_out_digest_is_the_builtin_splits_unless_the_spec_pins_one(
    breast_cancer_spec: TaskSpec,
) -> None:
    split = dataset_digest(builtin_split(breast_cancer_spec)[1])
    own = _pinned(breast_cancer_spec, bytes(range(32)), builtin=None)

    assert pinned_held_out_digest(breast_cancer_spec) == split
    assert pinned_held_out_digest(_pinned(breast_cancer_spec, split)) == split
    assert pinned_held_out_digest(own) == bytes(range(32))


def test_check_held_out_passes_the_pinned_set_and_refuses_another_in_one_line(
    breast_cancer_spec: TaskSpec,
) -> None:
    held_out = builtin_split(breast_cancer_spec)[1]
    other = held_out.subset(np.arange(len(held_out) - 1))
    split, wrong = dataset_digest(held_out), dataset_digest(other)

    assert check_held_out(breast_cancer_spec, held_out, "held.npz") is held_out
    with pytest.raises(ConfigError) as refused:
        check_held_out(breast_cancer_spec, other, "held.npz")
    message = str(refused.value)
    assert "\n" not in message
    assert f"held-out set held.npz has digest 0x{wrong.hex()}" in message
    assert f"the task's spec pins 0x{split.hex()}" in message


def test_check_held_out_pin_refuses_a_pin_that_is_not_the_splits(breast_cancer_spec: TaskSpec) -> None:
    split = dataset_digest(builtin_split(breast_cancer_spec)[1])

    check_held_out_pin(breast_cancer_spec)
    check_held_out_pin(_pinned(breast_cancer_spec, split))
    check_held_out_pin(_pinned(breast_cancer_spec, bytes(32), builtin=None))
    with pytest.raises(ConfigError, match=f"is not the digest of the breast_cancer split .*0x{split.hex()}"):
        check_held_out_pin(_pinned(breast_cancer_spec, bytes(32)))


def test_check_held_out_pin_refuses_own_data_without_a_pin(breast_cancer_spec: TaskSpec) -> None:
    data = breast_cancer_spec.model_dump()
    data["data"]["builtin"] = None
    unpinned = validate_spec(data, pinning_held_out=True)

    with pytest.raises(ConfigError, match="does not pin its held-out set"):
        check_held_out_pin(unpinned)


def _bits(state: dict[str, torch.Tensor]) -> dict[str, bytes]:
    return {key: tensor.numpy().tobytes() for key, tensor in state.items()}


@pytest.mark.parametrize("mu", [None, 0.5])
def test_train_round_trains_with_the_specs_hyperparameters_and_proximal_mu(
    breast_cancer_spec: TaskSpec, mu: float | None
) -> None:
    # Prepare
    spec = _changed(breast_cancer_spec, "training", proximal_mu=mu)
    train = builtin_split(spec)[0].subset(np.arange(100))
    base = initial_state(spec)
    hyper = spec.training

    # Execute
    result = train_round(spec, base, train, 3)

    # Assert
    expected = train_local(
        task_model(spec),
        base,
        train,
        epochs=hyper.local_epochs,
        batch_size=hyper.batch_size,
        lr=hyper.lr,
        optimizer=hyper.optimizer,
        seed=hyper.seed + 3,
        proximal_mu=mu or 0.0,
    )
    plain = train_round(breast_cancer_spec, base, train, 3)
    assert _bits(result.delta) == _bits(expected.delta)
    assert (_bits(result.delta) == _bits(plain.delta)) == (mu is None)
