"""Tests for cotrain.learning.models' layer lists: presets equal their layer lists, every allowlisted layer
builds, trains and travels in an update file, and the recurrent and transformer layers compute what
PyTorch's own do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset
from cotrain.learning.layers import LAYER_NAMES, Layer, plan_layers, tensor_layout
from cotrain.learning.models import build_layers, build_model
from cotrain.learning.state import layout, model_state
from cotrain.learning.tensor_files import decode_tensors, encode_update
from cotrain.learning.training import train_local
from cotrain.protocol.task_spec import ModelSpec
from pydantic import TypeAdapter
from torch import nn

LAYERS = TypeAdapter(list[Layer])
VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "model_layout"
VOCAB = 7

# name: (layers, input shape, classes, whether the features are token ids); together every allowlisted type.
ZOO: dict[str, tuple[list[dict[str, Any]], tuple[int, ...], int, bool]] = {
    "tabular": (
        [
            {"type": "linear", "out": 8},
            {"type": "layer_norm"},
            {"type": "relu"},
            {"type": "dropout", "p": 0.2},
            {"type": "linear", "out": 8, "bias": False},
            {"type": "silu"},
            {"type": "leaky_relu", "slope": 0.1},
            {"type": "linear", "out": 3},
        ],
        (6,),
        3,
        False,
    ),
    "image": (
        [
            {"type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
            {"type": "group_norm", "groups": 2},
            {"type": "gelu"},
            {"type": "max_pool2d", "kernel": 2},
            {"type": "conv2d", "out": 4, "kernel": 2, "stride": 1, "bias": False},
            {"type": "avg_pool2d", "kernel": 2, "stride": 1},
            {"type": "global_avg_pool"},
            {"type": "linear", "out": 3},
        ],
        (2, 6, 6),
        3,
        False,
    ),
    "signal": (
        [
            {"type": "conv1d", "out": 4, "kernel": 3, "stride": 1, "padding": 1},
            {"type": "tanh"},
            {"type": "max_pool1d", "kernel": 2},
            {"type": "avg_pool1d", "kernel": 2, "stride": 1},
            {"type": "flatten"},
            {"type": "sigmoid"},
            {"type": "linear", "out": 3},
        ],
        (2, 10),
        3,
        False,
    ),
    "lstm": (
        [
            {"type": "embedding", "vocab": VOCAB, "dim": 6},
            {"type": "lstm", "hidden": 5},
            {"type": "sequence_pool", "mode": "last"},
            {"type": "linear", "out": VOCAB},
        ],
        (5,),
        VOCAB,
        True,
    ),
    "gru": (
        [
            {"type": "embedding", "vocab": VOCAB, "dim": 6},
            {"type": "gru", "hidden": 5},
            {"type": "gru", "hidden": 4},
            {"type": "sequence_pool", "mode": "mean"},
            {"type": "linear", "out": VOCAB},
        ],
        (5,),
        VOCAB,
        True,
    ),
    "transformer": (
        [
            {"type": "embedding", "vocab": VOCAB, "dim": 8},
            {"type": "position"},
            {"type": "transformer", "heads": 2, "ff": 16, "causal": True},
            {"type": "transformer", "heads": 4, "ff": 8},
            {"type": "layer_norm"},
            {"type": "sequence_pool", "mode": "last"},
            {"type": "linear", "out": VOCAB},
        ],
        (5,),
        VOCAB,
        True,
    ),
}


def _build(name: str, seed: int = 0) -> nn.Sequential:
    layers, shape, classes, _ = ZOO[name]
    return build_layers(LAYERS.validate_python(layers), input_shape=shape, num_classes=classes, seed=seed)


def _data(name: str, count: int = 12) -> ArrayDataset:
    _, shape, classes, ids = ZOO[name]
    rng = np.random.default_rng(5)
    features = rng.integers(0, VOCAB, (count, *shape)) if ids else rng.standard_normal((count, *shape))
    labels = np.arange(count) % classes
    return ArrayDataset(features.astype(np.float32), labels.astype(np.int64), tuple(map(str, range(classes))))


def test_the_zoo_uses_every_allowlisted_layer() -> None:
    assert {layer["type"] for layers, *_ in ZOO.values() for layer in layers} == set(LAYER_NAMES)


# (preset, params, input shape, the same model written as layers by hand)
PRESET_EQUIVALENTS = [
    ("logistic", {}, (30,), [{"type": "flatten"}, {"type": "linear", "out": 7}]),
    (
        "mlp",
        {},
        (64,),
        [{"type": "flatten"}, {"type": "linear", "out": 64}, {"type": "relu"}, {"type": "linear", "out": 7}],
    ),
    (
        "mlp",
        {"hidden": [32, 16]},
        (2, 32),
        [
            {"type": "flatten"},
            {"type": "linear", "out": 32},
            {"type": "relu"},
            {"type": "linear", "out": 16},
            {"type": "relu"},
            {"type": "linear", "out": 7},
        ],
    ),
    ("mlp", {"hidden": []}, (2, 3), [{"type": "flatten"}, {"type": "linear", "out": 7}]),
    (
        "cnn",
        {},
        (1, 8, 8),
        [
            {"type": "conv2d", "out": 16, "kernel": 3, "padding": 1},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel": 2},
            {"type": "conv2d", "out": 32, "kernel": 3, "padding": 1},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel": 2},
            {"type": "flatten"},
            {"type": "linear", "out": 7},
        ],
    ),
    (
        "cnn",
        {"channels": [4, 8, 8]},
        (3, 8, 8),
        [
            {"type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel": 2},
            {"type": "conv2d", "out": 8, "kernel": 3, "padding": 1},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel": 2},
            {"type": "conv2d", "out": 8, "kernel": 3, "padding": 1},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel": 2},
            {"type": "flatten"},
            {"type": "linear", "out": 7},
        ],
    ),
]


@pytest.mark.parametrize(("name", "params", "input_shape", "layers"), PRESET_EQUIVALENTS)
@pytest.mark.parametrize("seed", [0, 11, 2**63 + 1])
def test_a_preset_builds_exactly_what_its_layer_list_builds(
    name: str, params: dict[str, Any], input_shape: tuple[int, ...], layers: list[dict[str, Any]], seed: int
) -> None:
    # Execute
    preset = model_state(build_model(name, params, input_shape=input_shape, num_classes=7, seed=seed))
    declared = model_state(
        build_layers(LAYERS.validate_python(layers), input_shape=input_shape, num_classes=7, seed=seed)
    )

    # Assert: the same names, shapes and initial weights, bit for bit.
    assert layout(preset) == layout(declared)
    assert all(torch.equal(preset[key], declared[key]) for key in preset)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_model_holds_exactly_its_planned_float32_parameters(name: str) -> None:
    layers, shape, classes, _ = ZOO[name]
    plans = plan_layers(LAYERS.validate_python(layers), shape, classes)

    model = _build(name)

    state = model.state_dict()
    assert [(key, tuple(t.shape)) for key, t in sorted(state.items())] == tensor_layout(plans)
    assert all(t.dtype == torch.float32 for t in state.values())
    assert not list(model.buffers())
    assert [type(module).__name__ for module in model] == [type(module).__name__ for module in _build(name)]


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_model_trains_a_step_and_its_update_round_trips_a_file(name: str) -> None:
    # Prepare
    model = _build(name)
    start = model_state(model)
    data = _data(name)

    # Execute: one step (the whole set in one batch).
    result = train_local(
        model, start, data, epochs=1, batch_size=len(data), lr=0.05, optimizer="adam", seed=3
    )
    file = encode_update(result.delta, {"round": "0"})
    decoded, _ = decode_tensors(file, expected=layout(start), max_bytes=len(file))

    # Assert
    assert list(result.delta) == sorted(start)
    for key, delta in result.delta.items():
        assert bool(delta.abs().max() > 0), f"{key} did not move"
        assert torch.equal(decoded[key], delta)
    assert np.isfinite(result.loss)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_initial_weights_follow_the_seed_and_leave_the_global_rng_alone(name: str) -> None:
    torch.manual_seed(5)
    untouched = torch.rand(3)
    torch.manual_seed(5)

    first = model_state(_build(name, seed=21))
    after = torch.rand(3)
    again = model_state(_build(name, seed=21))
    other = model_state(_build(name, seed=22))

    assert torch.equal(after, untouched)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert all(not torch.equal(first[key], other[key]) for key in first if first[key].std() > 0)


def test_initial_values_follow_each_layers_rule() -> None:
    state = model_state(_build("transformer", seed=1))

    assert torch.equal(state["2.ln1.weight"], torch.ones(8)) and torch.equal(
        state["2.ln1.bias"], torch.zeros(8)
    )
    assert state["2.fc2.weight"].abs().max() <= 1 / 16**0.5  # fan_in 16
    assert state["2.qkv.weight"].abs().max() <= 1 / 8**0.5
    assert 0.5 < float(state["0.weight"].std()) < 1.5  # N(0, 1)


@pytest.mark.parametrize("path", sorted(VECTORS.glob("*.json")), ids=lambda path: path.stem)
def test_the_model_layout_vectors_are_the_torch_models_state(path: Path) -> None:
    # The vectors' handler plans without torch; the torch model must hold exactly that.
    vector = json.loads(path.read_text(encoding="utf-8"))
    inp = vector["input"]
    spec = ModelSpec.model_validate(inp["model"])
    shape, classes = tuple(inp["input_shape"]), inp["num_classes"]

    if spec.layers is None:
        model = build_model(spec.name, spec.params, input_shape=shape, num_classes=classes, seed=0)
    else:
        model = build_layers(spec.layers, input_shape=shape, num_classes=classes, seed=0)

    assert [[key, list(t.shape)] for key, t in sorted(model.state_dict().items())] == vector["output"][
        "tensors"
    ]


@pytest.mark.parametrize(
    ("ids", "bad"),
    [([[0.0, 6.0, 2.5]], "2.5"), ([[0.0, -1.0, 2.0]], "-1.0"), ([[7.0, 1.0, 2.0]], "7.0")],
)
def test_token_ids_must_be_integers_within_the_vocabulary(ids: list[list[float]], bad: str) -> None:
    model = _build("lstm")

    with pytest.raises(ConfigError) as info:
        model(torch.tensor(ids))

    assert str(info.value).startswith(f"token id {bad} is not an integer in [0, 7), the vocabulary")


def test_token_ids_held_as_float32_or_int64_give_the_same_logits() -> None:
    model = _build("gru").eval()
    ids = torch.tensor([[0, 6, 2, 3, 1]])

    assert torch.equal(model(ids.float()), model(ids))


def _copy(module: nn.Module, **tensors: torch.Tensor) -> nn.Module:
    with torch.no_grad():
        for name, value in tensors.items():
            getattr(module, name).copy_(value)
    return module


def test_the_lstm_layer_computes_what_pytorchs_lstm_does() -> None:
    ours = _build("lstm")[1]
    theirs = _copy(
        nn.LSTM(6, 5, batch_first=True),
        weight_ih_l0=ours.ih.weight,
        bias_ih_l0=ours.ih.bias,
        weight_hh_l0=ours.hh.weight,
        bias_hh_l0=ours.hh.bias,
    )
    x = torch.randn(3, 5, 6, generator=torch.Generator().manual_seed(0))

    torch.testing.assert_close(ours(x), theirs(x)[0])


def test_the_gru_layer_computes_what_pytorchs_gru_does() -> None:
    ours = _build("gru")[1]
    theirs = _copy(
        nn.GRU(6, 5, batch_first=True),
        weight_ih_l0=ours.ih.weight,
        bias_ih_l0=ours.ih.bias,
        weight_hh_l0=ours.hh.weight,
        bias_hh_l0=ours.hh.bias,
    )
    x = torch.randn(3, 5, 6, generator=torch.Generator().manual_seed(0))

    torch.testing.assert_close(ours(x), theirs(x)[0])


@pytest.mark.parametrize("causal", [True, False])
def test_the_transformer_block_computes_what_pytorchs_pre_norm_encoder_layer_does(causal: bool) -> None:
    model = _build("transformer")
    ours = model[2]
    ours.causal = causal
    theirs = nn.TransformerEncoderLayer(
        8, 2, 16, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    ).eval()
    _copy(theirs.self_attn, in_proj_weight=ours.qkv.weight, in_proj_bias=ours.qkv.bias)
    _copy(theirs.self_attn.out_proj, weight=ours.proj.weight, bias=ours.proj.bias)
    _copy(theirs.linear1, weight=ours.fc1.weight, bias=ours.fc1.bias)
    _copy(theirs.linear2, weight=ours.fc2.weight, bias=ours.fc2.bias)
    _copy(theirs.norm1, weight=ours.ln1.weight, bias=ours.ln1.bias)
    _copy(theirs.norm2, weight=ours.ln2.weight, bias=ours.ln2.bias)
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    mask = nn.Transformer.generate_square_subsequent_mask(5) if causal else None

    torch.testing.assert_close(ours(x), theirs(x, src_mask=mask, is_causal=causal))


def test_an_lstm_learns_to_predict_the_next_token() -> None:
    # Prepare: sequences counting up modulo the vocabulary; the label is the next number.
    rng = np.random.default_rng(0)
    starts = rng.integers(0, VOCAB, 128)
    features = ((starts[:, None] + np.arange(5)) % VOCAB).astype(np.float32)
    labels = ((starts + 5) % VOCAB).astype(np.int64)
    data = ArrayDataset(features, labels, tuple(map(str, range(VOCAB))))
    model = _build("lstm")

    # Execute
    result = train_local(
        model, model_state(model), data, epochs=12, batch_size=32, lr=0.05, optimizer="adam", seed=0
    )

    # Assert
    model.eval()
    with torch.no_grad():
        accuracy = float(
            (model(torch.from_numpy(features)).argmax(1) == torch.from_numpy(labels)).float().mean()
        )
    assert result.loss < 0.3 and accuracy > 0.95, (result.loss, accuracy)
