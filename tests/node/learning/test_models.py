"""Tests for cotrain.learning.models."""

import math

import pytest
import torch
from cotrain.errors import ConfigError
from cotrain.learning.models import MODELS, build_model
from cotrain.learning.state import model_state

CASES = [
    ("logistic", {}, (30,)),
    ("mlp", {}, (64,)),
    ("mlp", {"hidden": [32, 16]}, (64,)),
    ("mlp", {"hidden": []}, (2, 3)),
    ("cnn", {}, (1, 8, 8)),
    ("cnn", {"channels": [4, 8, 8]}, (3, 8, 8)),
]


@pytest.mark.parametrize(("name", "params", "input_shape"), CASES)
def test_model_maps_a_batch_to_class_logits(name, params, input_shape):
    # Prepare
    model = build_model(name, params, input_shape=input_shape, num_classes=7, seed=0)

    # Execute
    logits = model(torch.zeros((5, *input_shape)))

    # Assert
    assert logits.shape == (5, 7)
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())


@pytest.mark.parametrize(("name", "params", "input_shape"), CASES)
def test_same_seed_gives_identical_weights_and_another_seed_does_not(name, params, input_shape):
    first = model_state(build_model(name, params, input_shape=input_shape, num_classes=3, seed=11))
    again = model_state(build_model(name, params, input_shape=input_shape, num_classes=3, seed=11))
    other = model_state(build_model(name, params, input_shape=input_shape, num_classes=3, seed=12))

    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_build_neither_uses_nor_changes_the_global_rng():
    # Prepare
    torch.manual_seed(5)
    untouched = torch.rand(3)

    # Execute
    torch.manual_seed(5)
    first = model_state(build_model("cnn", {}, input_shape=(1, 8, 8), num_classes=10, seed=0))
    after_build = torch.rand(3)
    torch.manual_seed(123)
    second = model_state(build_model("cnn", {}, input_shape=(1, 8, 8), num_classes=10, seed=0))

    # Assert
    assert torch.equal(after_build, untouched)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_initial_weights_follow_the_fan_in_bound():
    state = model_state(build_model("mlp", {"hidden": [50]}, input_shape=(100,), num_classes=2, seed=1))

    assert state["1.weight"].abs().max() <= 1 / math.sqrt(100)
    assert state["3.weight"].abs().max() <= 1 / math.sqrt(50)


def test_unknown_model_lists_the_registry():
    with pytest.raises(ConfigError) as info:
        build_model("resnet50", {}, input_shape=(3, 32, 32), num_classes=10, seed=0)

    for name in MODELS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("logistic", {"hidden": [4]}),
        ("mlp", {"hiden": [4]}),
        ("mlp", {"hidden": [True]}),
        ("mlp", {"hidden": [0]}),
        ("mlp", {"hidden": 64}),
        ("mlp", {"hidden": ["64"]}),
        ("cnn", {"channels": []}),
        ("cnn", {"channels": [8, -1]}),
    ],
)
def test_bad_params_are_a_config_error(name, params):
    input_shape = (1, 8, 8) if name == "cnn" else (64,)
    with pytest.raises(ConfigError):
        build_model(name, params, input_shape=input_shape, num_classes=10, seed=0)


def test_cnn_needs_an_image_shape():
    with pytest.raises(ConfigError, match="flat=False"):
        build_model("cnn", {}, input_shape=(64,), num_classes=10, seed=0)


def test_cnn_refuses_more_halvings_than_the_image_allows():
    with pytest.raises(ConfigError, match="at most 3"):
        build_model("cnn", {"channels": [4, 4, 4, 4]}, input_shape=(1, 8, 8), num_classes=10, seed=0)


@pytest.mark.parametrize(
    ("input_shape", "num_classes", "seed"),
    [((0,), 2, 0), ((), 2, 0), ((4,), 1, 0), ((4,), True, 0), ((4,), 2, -1), ((4,), 2, 1.5)],
)
def test_bad_shapes_classes_or_seed_are_a_config_error(input_shape, num_classes, seed):
    with pytest.raises(ConfigError):
        build_model("logistic", {}, input_shape=input_shape, num_classes=num_classes, seed=seed)
