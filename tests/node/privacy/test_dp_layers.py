"""DP-SGD over every allowlisted layer (cotrain.privacy.dp with cotrain.learning.models): Opacus's per-example
gradients equal one backward pass per example, and train_local_dp trains each layer."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from cotrain.learning.data import ArrayDataset
from cotrain.learning.layers import LAYER_NAMES, Layer
from cotrain.learning.models import build_layers
from cotrain.learning.state import model_state
from cotrain.privacy.dp import load_opacus, train_local_dp
from opacus import GradSampleModule
from pydantic import TypeAdapter
from torch import nn

LAYERS = TypeAdapter(list[Layer])
VOCAB = 9

# name: (layers, input shape, whether the features are token ids); 3 classes; every allowlisted type.
MODELS: dict[str, tuple[list[dict[str, Any]], tuple[int, ...], bool]] = {
    "dense": (
        [
            {"type": "linear", "out": 6},
            {"type": "layer_norm"},
            {"type": "leaky_relu"},
            {"type": "dropout", "p": 0.0},
            {"type": "linear", "out": 5, "bias": False},
            {"type": "silu"},
            {"type": "linear", "out": 3},
        ],
        (4,),
        False,
    ),
    "conv2d": (
        [
            {"type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
            {"type": "group_norm", "groups": 2},
            {"type": "gelu"},
            {"type": "max_pool2d", "kernel": 2},
            {"type": "avg_pool2d", "kernel": 2, "stride": 1},
            {"type": "global_avg_pool"},
            {"type": "linear", "out": 3},
        ],
        (1, 6, 6),
        False,
    ),
    "conv1d": (
        [
            {"type": "conv1d", "out": 4, "kernel": 3},
            {"type": "tanh"},
            {"type": "max_pool1d", "kernel": 2},
            {"type": "avg_pool1d", "kernel": 2, "stride": 1},
            {"type": "flatten"},
            {"type": "sigmoid"},
            {"type": "linear", "out": 3},
        ],
        (2, 8),
        False,
    ),
    "lstm": (
        [
            {"type": "embedding", "vocab": VOCAB, "dim": 6},
            {"type": "lstm", "hidden": 5},
            {"type": "sequence_pool", "mode": "last"},
            {"type": "relu"},
            {"type": "linear", "out": 3},
        ],
        (4,),
        True,
    ),
    "gru": (
        [
            {"type": "embedding", "vocab": VOCAB, "dim": 6},
            {"type": "gru", "hidden": 5},
            {"type": "sequence_pool", "mode": "mean"},
            {"type": "linear", "out": 3},
        ],
        (4,),
        True,
    ),
    "transformer": (
        [
            {"type": "embedding", "vocab": VOCAB, "dim": 8},
            {"type": "position"},
            {"type": "transformer", "heads": 2, "ff": 16, "causal": True},
            {"type": "layer_norm"},
            {"type": "sequence_pool", "mode": "last"},
            {"type": "linear", "out": 3},
        ],
        (5,),
        True,
    ),
}


def _model(name: str) -> nn.Sequential:
    layers, shape, _ = MODELS[name]
    return build_layers(LAYERS.validate_python(layers), input_shape=shape, num_classes=3, seed=2)


def _features(name: str, count: int, generator: torch.Generator) -> torch.Tensor:
    _, shape, ids = MODELS[name]
    if ids:
        return torch.randint(0, VOCAB, (count, *shape), generator=generator).float()
    return torch.randn(count, *shape, generator=generator)


def test_the_models_use_every_allowlisted_layer() -> None:
    assert {layer["type"] for layers, *_ in MODELS.values() for layer in layers} == set(LAYER_NAMES)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_opacus_per_example_gradients_are_each_examples_own(name: str) -> None:
    # Prepare: float64, so the comparison is tight.
    model = _model(name).double()
    generator = torch.Generator().manual_seed(0)
    features = _features(name, 5, generator).double()
    labels = torch.randint(0, 3, (5,), generator=generator)

    # Execute: with cotrain's per-example gradient rules registered, as train_local_dp registers them.
    load_opacus()
    sampled = GradSampleModule(model, loss_reduction="sum")
    nn.functional.cross_entropy(sampled(features), labels, reduction="sum").backward()
    per_example = {key: p.grad_sample.clone() for key, p in model.named_parameters()}
    sampled._close()

    # Assert
    assert sorted(per_example) == sorted(model.state_dict())
    for i in range(len(labels)):
        model.zero_grad()
        nn.functional.cross_entropy(model(features[i : i + 1]), labels[i : i + 1], reduction="sum").backward()
        for key, p in model.named_parameters():
            torch.testing.assert_close(per_example[key][i], p.grad, rtol=1e-9, atol=1e-12, msg=key)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_dp_sgd_trains_every_layer(name: str) -> None:
    # Prepare
    generator = torch.Generator().manual_seed(1)
    features = _features(name, 40, generator)
    data = ArrayDataset(features.numpy(), np.arange(40, dtype=np.int64) % 3, ("a", "b", "c"))
    model = _model(name)
    start = model_state(model)

    # Execute
    result, spent = train_local_dp(
        model,
        start,
        data,
        epochs=1,
        batch_size=8,
        lr=0.1,
        optimizer="sgd",
        seed=0,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        delta=1e-5,
        generator=torch.Generator().manual_seed(2),
    )

    # Assert
    assert list(result.delta) == sorted(start)
    assert all(bool(torch.isfinite(delta).all()) for delta in result.delta.values())
    assert all(bool(delta.abs().max() > 0) for delta in result.delta.values())
    assert math.isfinite(spent) and spent > 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_an_empty_poisson_batch_passes_through_every_model(name: str) -> None:
    model = _model(name)

    logits = model(_features(name, 0, torch.Generator()))

    assert logits.shape == (0, 3)
