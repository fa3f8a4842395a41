"""The registry of built-in models. A task spec names one of these with its parameters; no model code ever
comes from the network.

Weights are initialised from an explicit seed with a local generator, using PyTorch's default scheme for
linear and convolutional layers (uniform in ``±1/sqrt(fan_in)``), so the same name, parameters, shapes and
seed give the same initial state bit for bit, whatever the global RNG holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cotrain.errors import ConfigError


@dataclass(frozen=True)
class ModelInfo:
    """A registry entry: how to build one model family and which parameters it takes."""

    builder: Callable[[Mapping[str, Any], tuple[int, ...], int], nn.Module]
    defaults: Mapping[str, Any]
    description: str


def _positive_ints(model: str, key: str, value: Any, *, allow_empty: bool) -> tuple[int, ...]:
    # bool is an int subclass; `true` in a JSON spec must not become a layer of width 1.
    if (
        not isinstance(value, (list, tuple))
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        or (not value and not allow_empty)
    ):
        kind = "a list" if allow_empty else "a non-empty list"
        raise ConfigError(
            f"model {model!r}: parameter {key!r} must be {kind} of positive integers, got {value!r}"
        )
    return tuple(value)


def _build_logistic(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def _build_mlp(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    hidden = _positive_ints("mlp", "hidden", params["hidden"], allow_empty=True)
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _build_cnn(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    channels = _positive_ints("cnn", "channels", params["channels"], allow_empty=False)
    if len(input_shape) != 3:
        raise ConfigError(
            f"model 'cnn' needs images shaped (channels, height, width), got input shape {input_shape}; "
            "load digits with flat=False"
        )
    in_channels, height, width = input_shape
    if min(height, width) < 2 ** len(channels):
        raise ConfigError(
            f"model 'cnn': {len(channels)} conv blocks halve a {height}x{width} image {len(channels)} times; "
            f"use at most {int(math.log2(min(height, width)))} entries in 'channels'"
        )
    layers: list[nn.Module] = []
    for out_channels in channels:
        # (B, C, H, W) -> (B, C', H/2, W/2)
        layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        in_channels = out_channels
        height, width = height // 2, width // 2
    layers += [nn.Flatten(), nn.Linear(in_channels * height * width, num_classes)]
    return nn.Sequential(*layers)


MODELS: Mapping[str, ModelInfo] = {
    "logistic": ModelInfo(_build_logistic, {}, "multinomial logistic regression (one linear layer)"),
    "mlp": ModelInfo(
        _build_mlp, {"hidden": [64]}, "fully connected ReLU network; 'hidden' lists layer widths"
    ),
    "cnn": ModelInfo(
        _build_cnn,
        {"channels": [16, 32]},
        "small conv net (3x3 conv, ReLU, 2x2 max-pool per entry of 'channels', then a linear layer)",
    ),
}


def _describe_models() -> str:
    return "; ".join(f"{name} {dict(info.defaults)}: {info.description}" for name, info in MODELS.items())


def _init_parameters(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)


def build_model(
    name: str, params: Mapping[str, Any], *, input_shape: tuple[int, ...], num_classes: int, seed: int
) -> nn.Module:
    """Build a registry model with deterministic initial weights.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`: ``"logistic"``, ``"mlp"`` or ``"cnn"``.
    params : Mapping[str, Any]
        The model's parameters from the task spec; missing ones take the defaults in :data:`MODELS`.
    input_shape : tuple[int, ...]
        The shape of one example, without the batch dimension, e.g. ``(1, 8, 8)`` or ``(64,)``.
    num_classes : int
        The number of output classes (at least 2).
    seed : int
        Seeds the initial weights; the global RNG is neither used nor changed.

    Returns
    -------
    torch.nn.Module
        A float32 CPU model whose ``state_dict`` holds only float32 parameters.

    Raises
    ------
    ConfigError
        For an unknown name or parameter, a badly typed parameter, or shapes the model cannot take; the
        message lists the models that exist and their parameters.
    """
    info = MODELS.get(name)
    if info is None:
        raise ConfigError(f"unknown model {name!r}; the built-in models are: {_describe_models()}")
    unknown = sorted(set(params) - set(info.defaults))
    if unknown:
        raise ConfigError(
            f"model {name!r} takes no parameter {', '.join(map(repr, unknown))}; "
            f"it takes {sorted(info.defaults) or 'none'} (defaults {dict(info.defaults)})"
        )
    if not input_shape or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape
    ):
        raise ConfigError(f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ConfigError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    # Layer constructors draw their default init from the global RNG; fork it so callers never see a change.
    with torch.random.fork_rng(devices=[]):
        model = info.builder({**info.defaults, **params}, tuple(input_shape), num_classes)
    _init_parameters(model, seed)
    return model
