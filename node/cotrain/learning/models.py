"""Models as PyTorch modules: each allowlisted layer of :mod:`cotrain.learning.layers` built as a fixed
module, in an ``nn.Sequential``. A task spec names a preset (``logistic``, ``mlp``, ``cnn``) with its
parameters, or lists its layers; no model code ever comes from the network.

Weights are initialised from an explicit seed with one local generator, layer by layer in index order, each
layer's tensors in the order :meth:`~cotrain.learning.layers.LayerBase.tensors` lists them: linear and
convolutional layers as PyTorch does by default (uniform in ``±1/sqrt(fan_in)``, weight then bias),
recurrent layers as PyTorch's LSTM and GRU do (uniform in ``±1/sqrt(hidden)``), embeddings and positions
N(0, 1), normalisation weights 1 and biases 0. So the same layers, shapes and seed give the same initial state
bit for bit, whatever the global RNG holds.

The recurrent and transformer layers are written here from ``nn.Linear`` and ``nn.LayerNorm`` rather than
taken from ``nn.LSTM``, ``nn.GRU`` or ``nn.MultiheadAttention``: Opacus computes per-example gradients for
those two module types (and refuses the others), and the tensor names stay ours (PROTOCOL.md section 6.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.errors import ConfigError
from cotrain.learning import layers as L
from cotrain.learning.layers import PRESETS, LayerBase, LayerPlan, plan_layers, preset_layers

#: The presets (built-in models) by name; :data:`cotrain.learning.layers.PRESETS`.
MODELS = PRESETS


class TokenEmbedding(nn.Embedding):
    """``nn.Embedding`` that reads token ids held as float32 features (the data path's only dtype).

    Every id must be an integer in ``[0, num_embeddings)``; float32 holds every integer up to ``2**24`` (the
    largest vocabulary a spec may name) exactly.
    """

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        bad = (ids < 0) | (ids >= self.num_embeddings)
        if ids.is_floating_point():
            bad |= ids != ids.round()
        if bool(bad.any()):
            value = ids[bad][0].item()
            raise ConfigError(
                f"token id {value!r} is not an integer in [0, {self.num_embeddings}), the vocabulary of the "
                "model's embedding layer; every feature of the examples must be a token id in that range"
            )
        return super().forward(ids.long())


class Position(nn.Module):
    """A learned vector per position added to a sequence: ``(B, T, F) -> (B, T, F)``."""

    def __init__(self, steps: int, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(steps, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


class LSTM(nn.Module):
    """One LSTM layer, batch first, from zero state, returning every step's hidden state.

    Per step ``t``: ``i, f, g, o = split(ih(x_t) + hh(h), 4)``; ``c = sigmoid(f) * c + sigmoid(i) * tanh(g)``;
    ``h = sigmoid(o) * tanh(c)`` (PyTorch's ``nn.LSTM``; ``ih``/``hh`` hold its ``weight_ih_l0`` and
    ``bias_ih_l0`` / ``weight_hh_l0`` and ``bias_hh_l0``).
    """

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.ih = nn.Linear(features, 4 * hidden)
        self.hh = nn.Linear(hidden, 4 * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        inputs = self.ih(x)  # (B, T, 4H)
        h = x.new_zeros(batch, self.hidden)
        c = x.new_zeros(batch, self.hidden)
        outputs = []
        for t in range(steps):
            i, f, g, o = (inputs[:, t] + self.hh(h)).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)  # (B, T, H)


class GRU(nn.Module):
    """One GRU layer, batch first, from zero state, returning every step's hidden state.

    Per step: ``xr, xz, xn = split(ih(x_t), 3)``, ``hr, hz, hn = split(hh(h), 3)``; ``r = sigmoid(xr + hr)``,
    ``z = sigmoid(xz + hz)``, ``n = tanh(xn + r * hn)``, ``h = (1 - z) * n + z * h`` (PyTorch's ``nn.GRU``).
    """

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.ih = nn.Linear(features, 3 * hidden)
        self.hh = nn.Linear(hidden, 3 * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        inputs = self.ih(x)  # (B, T, 3H)
        h = x.new_zeros(batch, self.hidden)
        outputs = []
        for t in range(steps):
            xr, xz, xn = inputs[:, t].chunk(3, dim=1)
            hr, hz, hn = self.hh(h).chunk(3, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            outputs.append(h)
        return torch.stack(outputs, dim=1)  # (B, T, H)


class TransformerBlock(nn.Module):
    """A pre-norm transformer block (GPT-2's layout, without dropout), batch first: ``(B, T, C)`` in and out.

    ``x = x + proj(attention(ln1(x)))`` with ``heads`` heads of ``C / heads`` features, scores scaled by
    ``1 / sqrt(C / heads)`` and, when ``causal``, step ``t`` attending to steps ``<= t`` only; then
    ``x = x + fc2(gelu(fc1(ln2(x))))``.
    """

    def __init__(self, features: int, heads: int, ff: int, causal: bool) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.ln1 = nn.LayerNorm(features, eps=L.NORM_EPS)
        self.qkv = nn.Linear(features, 3 * features)
        self.proj = nn.Linear(features, features)
        self.ln2 = nn.LayerNorm(features, eps=L.NORM_EPS)
        self.fc1 = nn.Linear(features, ff)
        self.fc2 = nn.Linear(ff, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, features = x.shape
        width = features // self.heads
        q, k, v = self.qkv(self.ln1(x)).split(features, dim=2)  # each (B, T, C)
        q, k, v = (part.view(batch, steps, self.heads, width).transpose(1, 2) for part in (q, k, v))
        scores = q @ k.transpose(2, 3) / math.sqrt(width)  # (B, H, T, T)
        if self.causal:
            later = torch.ones(steps, steps, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(later, float("-inf"))
        attended = (scores.softmax(dim=3) @ v).transpose(1, 2).reshape(batch, steps, features)
        x = x + self.proj(attended)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class SequencePool(nn.Module):
    """``(B, T, F) -> (B, F)``: the last step, or the mean over steps."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1] if self.mode == "last" else x.mean(dim=1)


class GlobalAvgPool(nn.Module):
    """``(B, C, ...) -> (B, C)``: each channel's mean over the other axes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).mean(dim=2)


def _module(plan: LayerPlan) -> nn.Module:
    layer, shape = plan.layer, plan.input_shape
    if isinstance(layer, L.Linear):
        return nn.Linear(shape[-1], layer.out, bias=layer.bias)
    if isinstance(layer, (L.Conv1d, L.Conv2d)):
        conv = nn.Conv1d if isinstance(layer, L.Conv1d) else nn.Conv2d
        return conv(shape[0], layer.out, layer.kernel, layer.stride, layer.padding, bias=layer.bias)
    pools: dict[type[LayerBase], type[nn.Module]] = {
        L.MaxPool1d: nn.MaxPool1d,
        L.MaxPool2d: nn.MaxPool2d,
        L.AvgPool1d: nn.AvgPool1d,
        L.AvgPool2d: nn.AvgPool2d,
    }
    if isinstance(layer, (L.MaxPool1d, L.MaxPool2d, L.AvgPool1d, L.AvgPool2d)):
        return pools[type(layer)](layer.kernel, layer.stride)
    if isinstance(layer, L.LayerNorm):
        return nn.LayerNorm(shape[-1], eps=L.NORM_EPS)
    if isinstance(layer, L.GroupNorm):
        return nn.GroupNorm(layer.groups, shape[0], eps=L.NORM_EPS)
    if isinstance(layer, L.Embedding):
        return TokenEmbedding(layer.vocab, layer.dim)
    if isinstance(layer, L.Position):
        return Position(*shape)
    if isinstance(layer, L.LSTM):
        return LSTM(shape[1], layer.hidden)
    if isinstance(layer, L.GRU):
        return GRU(shape[1], layer.hidden)
    if isinstance(layer, L.Transformer):
        return TransformerBlock(shape[1], layer.heads, layer.ff, layer.causal)
    if isinstance(layer, L.SequencePool):
        return SequencePool(layer.mode)
    if isinstance(layer, L.Dropout):
        return nn.Dropout(layer.p)
    if isinstance(layer, L.LeakyReLU):
        return nn.LeakyReLU(layer.slope)
    simple: dict[type[LayerBase], type[nn.Module]] = {
        L.GlobalAvgPool: GlobalAvgPool,
        L.Flatten: nn.Flatten,
        L.ReLU: nn.ReLU,
        L.GELU: nn.GELU,
        L.Tanh: nn.Tanh,
        L.Sigmoid: nn.Sigmoid,
        L.SiLU: nn.SiLU,
    }
    return simple[type(layer)]()


def _init_parameters(model: nn.Sequential, plans: Sequence[LayerPlan], seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for index, plan in enumerate(plans):
            params = dict(model[index].named_parameters())
            if sorted(params) != sorted(t.name for t in plan.tensors):
                raise AssertionError(f"layer {index} holds {sorted(params)}, its plan {plan.tensors}")
            for spec in plan.tensors:
                tensor = params[spec.name]
                if tuple(tensor.shape) != spec.shape:
                    raise AssertionError(
                        f"{index}.{spec.name} is {tuple(tensor.shape)}, planned {spec.shape}"
                    )
                if spec.init == "uniform":
                    bound = 1.0 / math.sqrt(spec.fan_in)
                    tensor.uniform_(-bound, bound, generator=generator)
                elif spec.init == "normal":
                    tensor.normal_(0.0, 1.0, generator=generator)
                else:
                    tensor.fill_(1.0 if spec.init == "ones" else 0.0)


def _check_build_arguments(input_shape: tuple[int, ...], num_classes: int, seed: int) -> None:
    if not input_shape or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape
    ):
        raise ConfigError(f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ConfigError(f"seed must be an integer in [0, 2**64), got {seed!r}")


def build_layers(
    layers: Sequence[LayerBase],
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    seed: int,
    where: str = "model.layers",
) -> nn.Sequential:
    """Build a declarative model with deterministic initial weights.

    Parameters
    ----------
    layers : Sequence[LayerBase]
        The layers, e.g. a spec's ``model.layers`` or :func:`~cotrain.learning.layers.preset_layers`.
    input_shape : tuple[int, ...]
        The shape of one example, without the batch dimension.
    num_classes : int
        The number of output classes (at least 2); the last layer must output that many values.
    seed : int
        Seeds the initial weights; the global RNG is neither used nor changed.
    where : str
        How error messages name the layer list.

    Returns
    -------
    torch.nn.Sequential
        A float32 CPU model: layer ``i`` of ``layers`` is its module ``i``, and its ``state_dict`` holds the
        float32 parameters :func:`~cotrain.learning.layers.tensor_layout` lists, and nothing else.

    Raises
    ------
    ConfigError
        For bad shapes, classes or seed, or a layer that does not fit the shape it receives.
    """
    _check_build_arguments(tuple(input_shape), num_classes, seed)
    plans = plan_layers(layers, input_shape, num_classes, where=where)
    # Layer constructors draw their default init from the global RNG; fork it so callers never see a change.
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(*(_module(plan) for plan in plans))
    _init_parameters(model, plans, seed)
    return model


def build_model(
    name: str, params: Mapping[str, Any], *, input_shape: tuple[int, ...], num_classes: int, seed: int
) -> nn.Sequential:
    """Build a preset model with deterministic initial weights: :func:`build_layers` of its layers.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`: ``"logistic"``, ``"mlp"`` or ``"cnn"``.
    params : Mapping[str, Any]
        The model's parameters from the task spec; missing ones take the defaults in :data:`MODELS`.
    input_shape, num_classes, seed
        As for :func:`build_layers`.

    Raises
    ------
    ConfigError
        For an unknown name or parameter, a badly typed parameter, or shapes the model cannot take; the
        message lists the models that exist and their parameters.
    """
    _check_build_arguments(tuple(input_shape), num_classes, seed)
    layers = preset_layers(name, params, input_shape, num_classes)
    return build_layers(
        layers, input_shape=input_shape, num_classes=num_classes, seed=seed, where=f"model {name!r} layers"
    )
