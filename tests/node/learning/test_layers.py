"""Tests for cotrain.learning.layers: the allowlist, shape checks, parameter counts and presets (no torch)."""

from __future__ import annotations

from typing import Any

import pytest
from cotrain.errors import ConfigError
from cotrain.learning.layers import (
    LAYER_NAMES,
    MAX_LAYERS,
    MAX_VALUES,
    Layer,
    parameter_count,
    plan_layers,
    plan_model,
    preset_layers,
    tensor_layout,
)
from pydantic import TypeAdapter, ValidationError

LAYERS = TypeAdapter(list[Layer])


def _layers(*layers: dict[str, Any]) -> list[Any]:
    return LAYERS.validate_python(list(layers))


def _plan(input_shape: tuple[int, ...], classes: int, *layers: dict[str, Any]) -> Any:
    return plan_layers(_layers(*layers), input_shape, classes)


# (input shape, classes, layers, the one-line message)
MISFITS = {
    "conv2d on a flat row": (
        (64,),
        10,
        [{"type": "conv2d", "out": 16, "kernel": 3}, {"type": "flatten"}, {"type": "linear", "out": 10}],
        "model.layers[0] (conv2d out 16 kernel 3 stride 1 padding 0) receives shape (64,); conv2d takes "
        "(channels, height, width)",
    ),
    "kernel larger than the map": (
        (1, 8, 8),
        10,
        [
            {"type": "conv2d", "out": 4, "kernel": 3},
            {"type": "max_pool2d", "kernel": 4},
            {"type": "max_pool2d", "kernel": 2},
            {"type": "flatten"},
            {"type": "linear", "out": 10},
        ],
        "model.layers[2] (max_pool2d kernel 2 stride 2) receives shape (4, 1, 1): its 1x1 is smaller than "
        "kernel 2",
    ),
    "padding counted": (
        (2, 3),
        3,
        [
            {"type": "conv1d", "out": 2, "kernel": 6, "padding": 1},
            {"type": "flatten"},
            {"type": "linear", "out": 3},
        ],
        "model.layers[0] (conv1d out 2 kernel 6 stride 1 padding 1) receives shape (2, 3): its 3 "
        "(padded by 1) is smaller than kernel 6",
    ),
    "groups that do not divide": (
        (16, 5),
        3,
        [{"type": "group_norm", "groups": 3}, {"type": "flatten"}, {"type": "linear", "out": 3}],
        "model.layers[0] (group_norm groups 3) receives 16 channels, which 3 groups do not divide",
    ),
    "heads that do not divide": (
        (4,),
        7,
        [
            {"type": "embedding", "vocab": 7, "dim": 10},
            {"type": "transformer", "heads": 4, "ff": 8},
            {"type": "sequence_pool", "mode": "last"},
            {"type": "linear", "out": 7},
        ],
        "model.layers[1] (transformer heads 4 ff 8 causal false) receives 10 features, which 4 heads do not "
        "divide",
    ),
    "lstm on a flat row": (
        (30,),
        2,
        [
            {"type": "lstm", "hidden": 8},
            {"type": "sequence_pool", "mode": "last"},
            {"type": "linear", "out": 2},
        ],
        "model.layers[0] (lstm hidden 8) receives shape (30,); lstm takes a sequence (steps, features)",
    ),
    "sequence pool of an image": (
        (1, 8, 8),
        10,
        [{"type": "sequence_pool", "mode": "mean"}, {"type": "linear", "out": 10}],
        "model.layers[0] (sequence_pool mode mean) receives shape (1, 8, 8); sequence_pool takes a sequence "
        "(steps, features)",
    ),
    "embedding after the first layer": (
        (4,),
        2,
        [
            {"type": "relu"},
            {"type": "embedding", "vocab": 9, "dim": 2},
            {"type": "flatten"},
            {"type": "linear", "out": 2},
        ],
        "model.layers[1] (embedding vocab 9 dim 2) must be the first layer: it reads token ids, which only "
        "the input holds",
    ),
    "wrong number of classes": (
        (30,),
        2,
        [{"type": "linear", "out": 16}, {"type": "relu"}, {"type": "linear", "out": 3}],
        "model.layers[2] (linear out 3) outputs shape (3,), but the model must output one value per class, "
        "shape (2,) for data.num_classes 2",
    ),
    "a sequence left unpooled": (
        (4,),
        5,
        [
            {"type": "embedding", "vocab": 5, "dim": 3},
            {"type": "gru", "hidden": 4},
            {"type": "linear", "out": 5},
        ],
        "model.layers[2] (linear out 5) outputs shape (4, 5), but the model must output one value per class, "
        "shape (5,) for data.num_classes 5",
    ),
    "an output over the value bound": (
        (2048,),
        2,
        [{"type": "embedding", "vocab": 3, "dim": 8193}, {"type": "flatten"}, {"type": "linear", "out": 2}],
        f"model.layers[0] (embedding vocab 3 dim 8193) outputs shape (2048, 8193), 16779264 values per "
        f"example, more than {MAX_VALUES}",
    ),
    "attention scores over the value bound": (
        (1024, 32),
        2,
        [{"type": "transformer", "heads": 32, "ff": 8}, {"type": "sequence_pool", "mode": "last"}],
        f"model.layers[0] (transformer heads 32 ff 8 causal false) receives 1024 steps: 32 heads of "
        f"1024x1024 attention scores are more than {MAX_VALUES} values",
    ),
}


@pytest.mark.parametrize("case", sorted(MISFITS))
def test_a_layer_that_does_not_fit_is_named_by_index_with_the_shape(case: str) -> None:
    input_shape, classes, layers, message = MISFITS[case]

    with pytest.raises(ConfigError) as info:
        _plan(input_shape, classes, *layers)

    assert str(info.value) == message


def test_shapes_flow_through_every_layer_kind() -> None:
    # Prepare: an image net, a signal net and a token net; between them every allowlisted type.
    image = _layers(
        {"type": "conv2d", "out": 6, "kernel": 3, "stride": 2, "padding": 1},  # (6, 4, 4)
        {"type": "group_norm", "groups": 3},
        {"type": "leaky_relu", "slope": 0.2},
        {"type": "avg_pool2d", "kernel": 2, "stride": 1},  # (6, 3, 3)
        {"type": "max_pool2d", "kernel": 2},  # (6, 1, 1)
        {"type": "global_avg_pool"},  # (6,)
        {"type": "dropout", "p": 0.25},
        {"type": "linear", "out": 3},
    )
    signal = _layers(
        {"type": "conv1d", "out": 4, "kernel": 3},  # (4, 8)
        {"type": "max_pool1d", "kernel": 2},  # (4, 4)
        {"type": "avg_pool1d", "kernel": 3, "stride": 1},  # (4, 2)
        {"type": "flatten"},  # (8,)
        {"type": "layer_norm"},
        {"type": "tanh"},
        {"type": "linear", "out": 3},
    )
    tokens = _layers(
        {"type": "embedding", "vocab": 50, "dim": 8},  # (6, 8)
        {"type": "position"},
        {"type": "transformer", "heads": 2, "ff": 16, "causal": True},
        {"type": "lstm", "hidden": 5},  # (6, 5)
        {"type": "gru", "hidden": 4},  # (6, 4)
        {"type": "gelu"},
        {"type": "silu"},
        {"type": "sigmoid"},
        {"type": "relu"},
        {"type": "sequence_pool", "mode": "mean"},  # (4,)
        {"type": "linear", "out": 3, "bias": False},
    )

    # Execute
    plans = [
        plan_layers(image, (3, 8, 8), 3),
        plan_layers(signal, (2, 10), 3),
        plan_layers(tokens, (6,), 3),
    ]

    # Assert
    used = {plan.layer.type for plans_ in plans for plan in plans_}
    assert used == set(LAYER_NAMES)
    assert [p.output_shape for p in plans[0]] == [
        (6, 4, 4),
        (6, 4, 4),
        (6, 4, 4),
        (6, 3, 3),
        (6, 1, 1),
        (6,),
        (6,),
        (3,),
    ]
    assert [p.output_shape for p in plans[1]][:4] == [(4, 8), (4, 4), (4, 2), (8,)]
    assert [p.output_shape for p in plans[2]][:5] == [(6, 8), (6, 8), (6, 8), (6, 5), (6, 4)]


def test_tensor_names_shapes_and_counts_by_hand() -> None:
    plans = _plan(
        (12,),
        20,
        {"type": "embedding", "vocab": 20, "dim": 8},
        {"type": "lstm", "hidden": 16},
        {"type": "sequence_pool", "mode": "last"},
        {"type": "linear", "out": 20},
    )

    assert tensor_layout(plans) == [
        ("0.weight", (20, 8)),
        ("1.hh.bias", (64,)),
        ("1.hh.weight", (64, 16)),
        ("1.ih.bias", (64,)),
        ("1.ih.weight", (64, 8)),
        ("3.bias", (20,)),
        ("3.weight", (20, 16)),
    ]
    assert parameter_count(plans) == 20 * 8 + 64 * (8 + 16 + 2) + 20 * 16 + 20
    # Drawn in layer order, each layer's tensors in the listed order.
    assert [(t.name, t.init, t.fan_in) for t in plans[1].tensors] == [
        ("ih.weight", "uniform", 16),
        ("ih.bias", "uniform", 16),
        ("hh.weight", "uniform", 16),
        ("hh.bias", "uniform", 16),
    ]
    assert [(t.name, t.init) for t in plans[0].tensors] == [("weight", "normal")]


def test_a_transformer_block_holds_two_norms_and_four_linear_layers() -> None:
    plans = _plan(
        (5, 8),
        2,
        {"type": "transformer", "heads": 2, "ff": 32},
        {"type": "sequence_pool", "mode": "last"},
        {"type": "linear", "out": 2},
    )

    assert [(t.name, t.shape, t.init, t.fan_in) for t in plans[0].tensors] == [
        ("ln1.weight", (8,), "ones", 0),
        ("ln1.bias", (8,), "zeros", 0),
        ("qkv.weight", (24, 8), "uniform", 8),
        ("qkv.bias", (24,), "uniform", 8),
        ("proj.weight", (8, 8), "uniform", 8),
        ("proj.bias", (8,), "uniform", 8),
        ("ln2.weight", (8,), "ones", 0),
        ("ln2.bias", (8,), "zeros", 0),
        ("fc1.weight", (32, 8), "uniform", 8),
        ("fc1.bias", (32,), "uniform", 8),
        ("fc2.weight", (8, 32), "uniform", 32),
        ("fc2.bias", (8,), "uniform", 32),
    ]


def test_pooling_stride_defaults_to_the_kernel_and_is_written_out() -> None:
    [pool] = _layers({"type": "max_pool2d", "kernel": 3})

    assert pool.model_dump() == {"type": "max_pool2d", "kernel": 3, "stride": 3}


@pytest.mark.parametrize(
    ("layer", "problem"),
    [
        ({"type": "batch_norm"}, "batch_norm is not allowed: BatchNorm keeps running statistics"),
        ({"type": "batch_norm2d", "num_features": 4}, "use layer_norm or group_norm"),
        ({"type": "conv3d", "out": 2}, "does not match any of the expected tags: 'linear', 'conv1d'"),
        ({"type": "linear", "out": 0}, "greater than or equal to 1"),
        ({"type": "linear", "out": True}, "valid integer"),
        ({"type": "linear", "out": MAX_VALUES + 1}, "less than or equal to 16777216"),
        ({"type": "linear", "out": 4, "activation": "relu"}, "Extra inputs are not permitted"),
        ({"type": "dropout", "p": 1.0}, "less than 1"),
        ({"type": "sequence_pool", "mode": "max"}, "'last' or 'mean'"),
        ({"out": 4}, "Unable to extract tag using discriminator 'type'"),
    ],
)
def test_a_layer_outside_the_allowlist_or_its_bounds_is_refused(layer: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        _layers(layer)

    assert problem in str(info.value)


def test_the_layer_count_is_bounded() -> None:
    layers = _layers(*([{"type": "relu"}] * MAX_LAYERS), {"type": "linear", "out": 2})

    with pytest.raises(ConfigError, match=f"model.layers has {MAX_LAYERS + 1} layers; at most {MAX_LAYERS}"):
        plan_layers(layers, (4,), 2)


def test_a_float_field_takes_a_numeric_string_as_yaml_gives_it() -> None:
    [dropout] = _layers({"type": "dropout", "p": "5e-2"})

    assert dropout.model_dump() == {"type": "dropout", "p": 0.05}


@pytest.mark.parametrize(
    ("name", "params", "input_shape", "expected"),
    [
        ("logistic", {}, (30,), [{"type": "flatten"}, {"type": "linear", "out": 4, "bias": True}]),
        (
            "mlp",
            {"hidden": [8]},
            (2, 3),
            [
                {"type": "flatten"},
                {"type": "linear", "out": 8, "bias": True},
                {"type": "relu"},
                {"type": "linear", "out": 4, "bias": True},
            ],
        ),
        (
            "cnn",
            {"channels": [5]},
            (1, 4, 4),
            [
                {"type": "conv2d", "out": 5, "kernel": 3, "stride": 1, "padding": 1, "bias": True},
                {"type": "relu"},
                {"type": "max_pool2d", "kernel": 2, "stride": 2},
                {"type": "flatten"},
                {"type": "linear", "out": 4, "bias": True},
            ],
        ),
    ],
)
def test_presets_are_layer_lists(
    name: str, params: dict[str, Any], input_shape: tuple[int, ...], expected: list[dict[str, Any]]
) -> None:
    layers = preset_layers(name, params, input_shape, 4)

    assert [layer.model_dump() for layer in layers] == expected


@pytest.mark.parametrize(
    ("name", "params", "input_shape", "problem"),
    [
        ("resnet", {}, (3, 8, 8), "unknown model 'resnet'; the built-in models are: logistic {}"),
        ("mlp", {"hiden": [4]}, (4,), "model 'mlp' takes no parameter 'hiden'"),
        ("mlp", {"hidden": [True]}, (4,), "must be a list of positive integers"),
        ("cnn", {}, (64,), "model 'cnn' needs images shaped (channels, height, width)"),
        ("cnn", {"channels": [4, 4, 4, 4]}, (1, 8, 8), "use at most 3 entries in 'channels'"),
        ("mlp", {"hidden": [MAX_VALUES + 1]}, (4,), "must be a list of positive integers"),
    ],
)
def test_a_preset_that_cannot_be_built_is_a_config_error(
    name: str, params: dict[str, Any], input_shape: tuple[int, ...], problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        plan_model(name, params, None, input_shape, 10)

    assert problem in str(info.value)


def test_a_declared_model_needs_its_layers() -> None:
    with pytest.raises(ConfigError, match=r"model 'layers' needs model\.layers"):
        plan_model("layers", {}, None, (4,), 2)
